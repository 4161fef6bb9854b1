//! Command handlers behind the ng dispatcher.

use crate::ng::frame::NgError;
use crate::ng::request::Request;
use crate::ng::value::Dict;

/// Runs call-related commands.
#[derive(Default)]
pub struct Commands {}

impl Commands {
    /// Runs one command and returns its reply (without `result`, which the
    /// dispatcher adds).
    pub async fn run(&self, _req: &Request) -> Result<Dict, NgError> {
        Err(NgError::Other("Unsupported command"))
    }
}
