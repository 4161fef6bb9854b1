//! Upstream's CLI (`--listen-cli`, and `GET /cli/<command>` over HTTP), the
//! text protocol Debian's `rtpengine-ctl` speaks: one command line in, a
//! text reply out. Replies are byte for byte what rtpengine 10.5 prints for
//! the same state, so scripts that parse them keep working.
//!
//! Commands are matched as upstream matches them: a word of the table
//! matches when the line starts with it, and one character (the space)
//! after it is skipped; what is left goes to the next level.
//!
//! Implemented: `list`/`get` of the session counts, the call table and one
//! call in detail (`sessions all|own|foreign|<call-id>`), `totals`,
//! `counters`, `jsonstats`, `interfaces`, limits, timeouts, delete delay and
//! log levels; `set` of the same; `terminate`. Other upstream commands
//! answer `Unknown or incomplete command::…`, as upstream does for words it
//! does not know.

mod list;
mod sessions;
mod set;
mod terminate;
mod totals;

use std::sync::Arc;

use crate::call::Calls;
use crate::logging::Logging;
use crate::metrics::ControlStats;

/// What the CLI works on.
pub struct Cli {
    /// The calls.
    pub calls: Arc<Calls>,
    /// The log level.
    pub logging: Arc<Logging>,
    /// Per-proxy ng request counters (`list totals`, `list jsonstats`).
    pub control: Arc<ControlStats>,
}

/// Upstream's reply when a level needs more words.
const MORE: &str = "More parameters required.\n";

/// A command table entry: the word and what it does with the rest.
type Handler = fn(&Cli, &str) -> String;

impl Cli {
    /// Runs one command line and returns the reply.
    pub fn run(&self, line: &str) -> String {
        tracing::info!("Got CLI command: {line}");
        dispatch(
            self,
            line,
            &[
                ("list", list::run),
                ("terminate", terminate::run),
                ("set", set::run),
                ("get", list::run),
            ],
        )
    }
}

/// Upstream's table walk: the first word that starts `line` gets the rest
/// (one separating character dropped); `help` lists the words.
fn dispatch(cli: &Cli, line: &str, table: &[(&str, Handler)]) -> String {
    if line.is_empty() {
        return MORE.to_owned();
    }
    if line == "help" {
        let mut out = String::from("Available sub-commands at this level:\n");
        for (word, _) in table {
            out.push('\t');
            out.push_str(word);
            out.push('\n');
        }
        return out;
    }
    for (word, handler) in table {
        if let Some(rest) = line.strip_prefix(word) {
            let mut rest = rest.chars();
            rest.next();
            return handler(cli, rest.as_str());
        }
    }
    format!("Unknown or incomplete command::{line}\n")
}

/// C's `strtol` on the start of `s` as upstream parses numbers: leading
/// blanks and a sign allowed, trailing junk ignored; `None` when no digit
/// was read.
fn strtol(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    let n: i64 = digits[..end].parse().ok()?;
    Some(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_like_strtol() {
        assert_eq!(strtol("12abc"), Some(12));
        assert_eq!(strtol("  -1"), Some(-1));
        assert_eq!(strtol("+7"), Some(7));
        assert_eq!(strtol("abc"), None);
        assert_eq!(strtol(""), None);
        assert_eq!(strtol("-"), None);
    }
}
