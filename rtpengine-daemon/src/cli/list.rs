//! `list …` and `get …`: counts, limits and timeouts, in upstream's words.

use super::{dispatch, sessions, totals, Cli, Handler};

use crate::logging::SUBSYSTEMS;

/// The words, in upstream's table order (those this daemon has).
const TABLE: &[(&str, Handler)] = &[
    ("numsessions", numsessions),
    ("sessions", sessions::run),
    ("totals", totals::totals),
    ("counters", totals::counters),
    ("maxopenfiles", maxopenfiles),
    ("maxsessions", |cli, _| {
        let max = cli.calls.settings().max_sessions;
        format!("Maximum sessions configured on rtpengine: {max}\n")
    }),
    ("timeout", |cli, _| {
        format!("TIMEOUT={}\n", cli.calls.settings().timeout)
    }),
    ("silenttimeout", |cli, _| {
        format!("SILENT_TIMEOUT={}\n", cli.calls.settings().silent_timeout)
    }),
    ("offertimeout", |cli, _| {
        format!("OFFER_TIMEOUT={}\n", cli.calls.settings().offer_timeout)
    }),
    ("finaltimeout", |cli, _| {
        format!("FINAL_TIMEOUT={}\n", cli.calls.settings().final_timeout)
    }),
    ("loglevels", |_, _| {
        SUBSYSTEMS
            .iter()
            .map(|(name, what)| format!("{name} - {what}\n"))
            .collect()
    }),
    ("loglevel", loglevel),
    ("controltos", |_, _| "0\n".to_owned()),
    ("deletedelay", |cli, _| {
        format!("{}\n", cli.calls.settings().delete_delay)
    }),
    ("interfaces", totals::interfaces),
    ("jsonstats", totals::jsonstats),
];

/// Runs `list`/`get` with the rest of the line.
pub(super) fn run(cli: &Cli, rest: &str) -> String {
    dispatch(cli, rest, TABLE)
}

/// Session counts, with the address families of their media.
fn numsessions(cli: &Cli, _: &str) -> String {
    let total = cli.calls.len();
    let (v4, v6, mixed) = cli.calls.families();
    format!(
        "Current sessions own: {total}\n\
         Current sessions foreign: 0\n\
         Current sessions total: {total}\n\
         Current transcoded media: 0\n\
         Current sessions ipv4 only media: {v4}\n\
         Current sessions ipv6 only media: {v6}\n\
         Current sessions ip mixed  media: {mixed}\n"
    )
}

/// The open-files limit the daemon runs with.
fn maxopenfiles(_: &Cli, _: &str) -> String {
    let limit = match crate::net::open_files_limit().map(|l| l.rlim_cur) {
        Err(_) => "unknown".to_owned(),
        Ok(libc::RLIM_INFINITY) => "infinite".to_owned(),
        Ok(n) => n.to_string(),
    };
    format!(
        "Maximum open-files configured on rtpengine: {limit}; cat /proc/{}/limits\n",
        std::process::id()
    )
}

/// `loglevel` (every subsystem) or `loglevel <subsystem>` (its level).
fn loglevel(cli: &Cli, rest: &str) -> String {
    let levels = cli.logging.levels();
    if rest.is_empty() {
        return SUBSYSTEMS
            .iter()
            .zip(&levels)
            .map(|((name, _), level)| format!("{name} = {level}\n"))
            .collect();
    }
    // Upstream prints nothing for a subsystem it does not know.
    match crate::logging::subsystem(rest).and_then(|i| levels.get(i)) {
        Some(level) => format!("{level}\n"),
        None => String::new(),
    }
}
