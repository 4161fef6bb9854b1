//! `set …`: change limits, timeouts, the delete delay and the log level
//! while the daemon runs, with upstream's replies.

use super::{dispatch, strtol, Cli, Handler, MORE};
use crate::call::Settings;

const TABLE: &[(&str, Handler)] = &[
    ("maxsessions", maxsessions),
    ("timeout", |cli, v| timeout(cli, v, |s, t| s.timeout = t)),
    ("silenttimeout", |cli, v| {
        timeout(cli, v, |s, t| s.silent_timeout = t)
    }),
    ("offertimeout", |cli, v| {
        timeout(cli, v, |s, t| s.offer_timeout = t)
    }),
    ("finaltimeout", |cli, v| {
        timeout(cli, v, |s, t| s.final_timeout = t)
    }),
    ("loglevel", loglevel),
    ("deletedelay", deletedelay),
];

/// Runs `set` with the rest of the line.
pub(super) fn run(cli: &Cli, rest: &str) -> String {
    dispatch(cli, rest, TABLE)
}

fn maxsessions(cli: &Cli, v: &str) -> String {
    if v.is_empty() {
        return MORE.to_owned();
    }
    match strtol(v) {
        None => format!("Fail setting maxsessions to {v}; no digists found\n"),
        Some(n) if n < -1 => {
            format!("Fail setting maxsessions to {v}; either positive or -1 values allowed\n")
        }
        Some(n) => {
            cli.calls.update_settings(|s| s.max_sessions = n);
            match n {
                -1 => "Success setting maxsessions to -1; disable feature\n".to_owned(),
                n => format!("Success setting maxsessions to {n}\n"),
            }
        }
    }
}

/// The four timeouts, which upstream all confirms as "timeout".
fn timeout(cli: &Cli, v: &str, set: fn(&mut Settings, u64)) -> String {
    if v.is_empty() {
        return MORE.to_owned();
    }
    match strtol(v) {
        None => format!("Fail setting timeout to {v}; no digists found\n"),
        Some(n) => match u64::try_from(n) {
            Ok(t) => {
                cli.calls.update_settings(|s| set(s, t));
                format!("Success setting timeout to {t}\n")
            }
            Err(_) => format!("Fail setting timeout to {v}; errno=0\n"),
        },
    }
}

/// `loglevel N` (every subsystem) or `loglevel <subsystem> N`. An
/// unknown subsystem changes nothing and still reports success, as
/// upstream.
fn loglevel(cli: &Cli, v: &str) -> String {
    let (subsystem, number) = match v.split_once(' ') {
        Some((name, n)) => match crate::logging::subsystem(name) {
            Some(i) => (Some(i), n),
            // An unknown subsystem: success reported, nothing changed (10.5).
            None => {
                return match strtol(n) {
                    Some(n) => format!("Success setting loglevel to {n}\n"),
                    None => format!("Fail setting loglevel to {n}; no digists found\n"),
                };
            }
        },
        None if v.bytes().any(|b| b.is_ascii_digit()) => (None, v),
        None => return MORE.to_owned(),
    };
    match strtol(number).and_then(|n| i32::try_from(n).ok()) {
        Some(n) => {
            let set = match subsystem {
                Some(i) => cli.logging.set_one(i, n),
                None => cli.logging.set(n),
            };
            format!("Success setting loglevel to {set}\n")
        }
        None => format!("Fail setting loglevel to {number}; no digists found\n"),
    }
}

fn deletedelay(cli: &Cli, v: &str) -> String {
    if v.is_empty() {
        return MORE.to_owned();
    }
    match strtol(v).and_then(|n| u64::try_from(n).ok()) {
        Some(d) => {
            cli.calls.update_settings(|s| s.delete_delay = d);
            format!("Success setting delete-delay to {d}\n")
        }
        None => "Invalid delete-delay value\n".to_owned(),
    }
}
