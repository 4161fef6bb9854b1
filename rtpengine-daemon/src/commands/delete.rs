//! `delete`: ends a call (after `delete-delay`, default `--delete-delay`)
//! and answers with its statistics tree. With no delay the reply goes out
//! once the call's ports are closed, so a proxy may reuse them at once.

use super::call_stats::call_stats;
use super::error::{CALL_NOT_FOUND, NO_CALL_ID};
use super::put;
use crate::call::{Calls, Delete, Deleted};
use crate::ng::frame::NgError;
use crate::ng::request::Request;
use crate::ng::value::Dict;

/// Runs it.
pub(super) async fn run(calls: &Calls, req: &Request) -> Result<Dict, NgError> {
    let call_id = req.nonempty("call-id").ok_or(NO_CALL_ID)?;
    let delay_secs = match req.int("delete-delay") {
        Ok(Some(d)) if d >= 0 => d.unsigned_abs(),
        _ => calls.settings().delete_delay,
    };
    let d = Delete {
        call_id,
        from_tag: req.nonempty("from-tag"),
        // Upstream honours a given to-tag with or without the `to-tag` flag.
        to_tag: req.nonempty("to-tag"),
        via_branch: req.nonempty("via-branch"),
        delay_secs,
    };
    let fast = req.flag("fast");
    let report = |call: &crate::call::Call| {
        if fast {
            Dict::new()
        } else {
            call.merge_kernel();
            call_stats(call, &[])
        }
    };
    match calls.delete(&d, report) {
        Deleted::NotFound if req.flag("fatal") => Err(NgError::Other(CALL_NOT_FOUND)),
        Deleted::NotFound => {
            let mut d = Dict::new();
            put(&mut d, "warning", CALL_NOT_FOUND);
            Ok(d)
        }
        Deleted::Later { report } => Ok(report),
        Deleted::Branch { report, sockets } => {
            for s in sockets {
                s.close().await;
            }
            Ok(report)
        }
        Deleted::Now { report, call } => {
            call.close().await;
            Ok(report)
        }
    }
}
