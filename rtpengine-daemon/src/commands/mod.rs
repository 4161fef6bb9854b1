//! The ng command handlers, one file per command (or tight family): each
//! turns a typed [`Request`] into call-model operations and builds its reply,
//! like tokio's mini-redis `cmd/`. Upstream's error strings for call-model
//! failures are in one table ([`error`]); the `query`/`delete` statistics
//! tree is built in [`call_stats`].

mod call_stats;
mod delete;
pub mod error;
mod list;
mod media_control;
mod offer_answer;
mod ping;
mod query;
mod sdp_options;
mod statistics;

use std::sync::Arc;

use crate::call::Calls;
use crate::ng::frame::NgError;
use crate::ng::request::{Command, Request};
use crate::ng::value::{Dict, Value};

/// The command handlers over the call registry.
pub struct Commands {
    /// The call registry.
    pub calls: Arc<Calls>,
}

impl Commands {
    /// Handlers over `calls`.
    pub fn new(calls: Arc<Calls>) -> Commands {
        Commands { calls }
    }

    /// Runs one command and returns its reply (without `result: ok`, which
    /// the dispatcher adds when the handler did not set a result).
    pub async fn run(&self, req: &Request) -> Result<Dict, NgError> {
        match req.command {
            Command::Ping => Ok(ping::run()),
            Command::Offer => offer_answer::run(&self.calls, req, crate::call::Side::Offer),
            Command::Answer => offer_answer::run(&self.calls, req, crate::call::Side::Answer),
            Command::Delete => delete::run(&self.calls, req).await,
            Command::Query => query::run(&self.calls, req),
            Command::List => list::run(&self.calls, req),
            Command::Statistics => Ok(statistics::run(&self.calls)),
            Command::Control(which, on) => media_control::run(&self.calls, req, which, on),
            Command::Unsupported(_) => Err(error::UNSUPPORTED),
        }
    }
}

/// Adds `key: value` to a reply.
pub(crate) fn put(d: &mut Dict, key: &str, value: impl Into<Value>) {
    d.insert(key.as_bytes().to_vec(), value.into());
}
