//! Upstream's error strings, byte for byte, in one table. Kamailio and
//! OpenSIPS match some of them (`Ran out of ports`, `Parallel session limit
//! reached`) to fail over to another daemon.

use crate::call;
use crate::ng::frame::NgError;

/// A command upstream knows that this daemon does not implement.
pub const UNSUPPORTED: NgError = NgError::Other("Unsupported command");
/// `call-id` missing or empty.
pub const NO_CALL_ID: NgError = NgError::Other("No call-id in message");
/// `from-tag` missing or empty.
pub const NO_FROM_TAG: NgError = NgError::Other("No from-tag in message");
/// An answer without `to-tag`.
pub const NO_TO_TAG: NgError = NgError::Other("No to-tag in message");
/// An offer or answer without SDP.
pub const NO_SDP: NgError = NgError::Other("No SDP body in message");
/// SDP we cannot parse.
pub const BAD_SDP: NgError = NgError::Other("Failed to parse SDP");
/// `list` with a negative or non-numeric `limit`.
pub const BAD_LIMIT: NgError = NgError::Other("invalid limit, must be >= 0");
/// `delete` that matches nothing (a warning unless `fatal`).
pub const CALL_NOT_FOUND: &str = "Call-ID not found or tags didn't match";
/// The `message` of a `load limit` result.
pub const SESSION_LIMIT: &str = "Parallel session limit reached";

impl From<call::Error> for NgError {
    fn from(e: call::Error) -> NgError {
        NgError::Other(match e {
            call::Error::UnknownCall => "Unknown call-id",
            call::Error::InvalidDialogue => "Invalid dialogue association",
            call::Error::OutOfPorts => "Ran out of ports",
            call::Error::SessionLimit => SESSION_LIMIT,
        })
    }
}
