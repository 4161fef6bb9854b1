//! `list`: call-ids, at most `limit` (default 32).

use super::error::BAD_LIMIT;
use super::put;
use crate::call::Calls;
use crate::ng::frame::NgError;
use crate::ng::request::Request;
use crate::ng::value::{Dict, Value};

/// How many call-ids `list` returns without `limit`.
const DEFAULT_LIMIT: usize = 32;

/// The reply.
pub(super) fn run(calls: &Calls, req: &Request) -> Result<Dict, NgError> {
    let limit = match req.int("limit") {
        Ok(None) => DEFAULT_LIMIT,
        Ok(Some(l)) => usize::try_from(l).map_err(|_| BAD_LIMIT)?,
        Err(_) => return Err(BAD_LIMIT),
    };
    let ids = calls.ids(limit).into_iter().map(Value::str).collect();
    let mut d = Dict::new();
    put(&mut d, "calls", Value::List(ids));
    Ok(d)
}
