//! Why a call-model operation failed.

/// A failure of the call model. The text upstream answers each with on the
/// wire is mapped in one table at the ng edge (`commands::error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No call with that call-id (an answer or a query for an unknown call).
    #[error("unknown call")]
    UnknownCall,
    /// The tags do not name parties of the call that can talk to each other
    /// (a party as its own peer, an answer to nobody, too many parties).
    #[error("invalid dialogue association")]
    InvalidDialogue,
    /// No ports left on an interface (or none of the needed family).
    #[error("out of ports")]
    OutOfPorts,
    /// `--max-sessions` reached.
    #[error("session limit reached")]
    SessionLimit,
    /// The call would hold more than [`super::MAX_PORT_PAIRS`] port pairs.
    #[error("too many ports for one call")]
    TooManyPorts,
}
