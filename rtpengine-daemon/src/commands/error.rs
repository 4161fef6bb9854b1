//! Upstream's error strings, byte for byte, in one table. Kamailio and
//! OpenSIPS match some of them (`Ran out of ports`, `Parallel session limit
//! reached`) to fail over to another daemon.

use crate::call;
use crate::ng::frame::NgError;
use crate::sdp::attr_ops::AttrOpError;

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
/// A media control command's `address` that is no address.
pub const BAD_ADDRESS: NgError = NgError::Other("Failed to parse network address");
/// The `message` of a `load limit` result.
pub const SESSION_LIMIT: &str = "Parallel session limit reached";

impl From<call::Error> for NgError {
    fn from(e: call::Error) -> NgError {
        NgError::Other(match e {
            call::Error::UnknownCall => "Unknown call-id",
            call::Error::InvalidDialogue => "Invalid dialogue association",
            call::Error::OutOfPorts => "Ran out of ports",
            call::Error::SessionLimit => SESSION_LIMIT,
            // Ours (upstream has no such limit).
            call::Error::TooManyPorts => "Too many ports for one call",
        })
    }
}

impl From<call::controls::ControlError> for NgError {
    fn from(e: call::controls::ControlError) -> NgError {
        use call::controls::ControlError as E;
        NgError::Other(match e {
            E::UnknownCall => "Unknown call-ID",
            E::NoTag => "From-tag given, but no such tag exists",
            E::NoLabel => "No monologue matching the given label",
            E::NoAddress => "Failed to match address to any tag",
            E::NoToTag => "Media flow not found (to-tag not found)",
            E::NoToLabel => "Media flow not found (to-label not found)",
            E::NotSubscribed => "Media flow not found (to-tag not subscribed)",
            E::NoFlows => "No eligible media subscriptions found",
        })
    }
}

/// `sdp-attr` or one of its scopes is not a dictionary (upstream's text).
pub const WRONG_TYPE: NgError = NgError::Other("wrong type used");
/// More codec names than `sdp::codecs::MAX_CODEC_NAMES`.
pub const TOO_MANY_CODECS: NgError = NgError::Other("too many codecs listed");

impl From<AttrOpError> for NgError {
    fn from(e: AttrOpError) -> NgError {
        NgError::Other(match e {
            AttrOpError::Scope(_) => "unsupported sdp section",
            AttrOpError::Command(_) => "unknown manipulation command",
            AttrOpError::Substitute(_) => "invalid token given",
            AttrOpError::Value(_) => "invalid sdp-attr value",
            AttrOpError::TooMany => "too many sdp-attr operations",
        })
    }
}
