//! `ping`: answered with `result: pong`.

use super::put;
use crate::ng::value::Dict;

/// The reply.
pub(super) fn run() -> Dict {
    let mut d = Dict::new();
    put(&mut d, "result", "pong");
    d
}
