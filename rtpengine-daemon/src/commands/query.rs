//! `query`: the statistics tree of one call, optionally of the parties
//! named by `from-tag` / `to-tag` only.

use super::call_stats::call_stats;
use super::error::NO_CALL_ID;
use crate::call::{self, Calls};
use crate::ng::frame::NgError;
use crate::ng::request::Request;
use crate::ng::value::Dict;

/// The reply.
pub(super) fn run(calls: &Calls, req: &Request) -> Result<Dict, NgError> {
    let id = req.nonempty("call-id").ok_or(NO_CALL_ID)?;
    let only: Vec<&str> = [req.nonempty("from-tag"), req.nonempty("to-tag")]
        .into_iter()
        .flatten()
        .collect();
    calls
        .with_call(id, |call| call_stats(call, &only))
        .ok_or_else(|| call::Error::UnknownCall.into())
}
