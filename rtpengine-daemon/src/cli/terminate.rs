//! `terminate all|own|foreign|<call-id>`: end calls on the operator's word
//! (counted as forced terminations).

use super::{Cli, MORE};

/// Runs `terminate` with the rest of the line.
pub(super) fn run(cli: &Cli, what: &str) -> String {
    if what.is_empty() {
        return MORE.to_owned();
    }
    // As upstream: any prefix of the keywords selects them.
    if "all".starts_with(what) {
        cli.calls.terminate(None);
        return "All calls terminated by operator.\n".to_owned();
    }
    if "own".starts_with(what) {
        // Every call here is our own (no foreign calls without Redis).
        cli.calls.terminate(None);
        return "All own calls terminated by operator.\n".to_owned();
    }
    if "foreign".starts_with(what) {
        return "All foreign calls terminated by operator.\n".to_owned();
    }
    match cli.calls.terminate(Some(what)).is_empty() {
        false => format!("\nCall Id ({what}) successfully terminated by operator.\n\n"),
        true => format!("\nCall Id not found ({what}).\n\n"),
    }
}
