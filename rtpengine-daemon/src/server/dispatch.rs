//! The dispatcher: one entry point shared by every transport. It answers
//! retransmissions from the cookie cache, decodes the body, types the
//! request and hands it to [`Commands`], then encodes the reply in the
//! request's encoding.

use std::sync::Arc;

use tracing::{debug, field, info_span, warn, Instrument};

use crate::commands::Commands;
use crate::ng::cookie_cache::{self, CookieCache, Lookup};
use crate::ng::frame::{self, NgError};
use crate::ng::request::Request;
use crate::ng::value::{Dict, Value};

/// The control plane: cookie cache plus command handlers.
pub struct Control {
    cache: CookieCache,
    commands: Commands,
}

impl Control {
    /// A control plane that runs commands with `commands`.
    pub fn new(commands: Commands) -> Arc<Control> {
        Arc::new(Control {
            cache: CookieCache::default(),
            commands,
        })
    }

    /// Handles one cookie-framed message and returns the framed reply, or
    /// `None` when upstream would not answer (no cookie).
    pub async fn handle_framed(&self, msg: &[u8]) -> Option<Vec<u8>> {
        let Some((cookie, body)) = frame::split_cookie(msg) else {
            warn!(
                len = msg.len(),
                "Received invalid NG data (no cookie), ignoring"
            );
            return None;
        };
        let cookie_str = String::from_utf8_lossy(cookie);
        let span = info_span!("ng", cookie = %cookie_str, command = field::Empty, call_id = field::Empty, from_tag = field::Empty);
        let reply = async {
            match self.cache.lookup(cookie) {
                Lookup::Cached(r) => {
                    debug!("Detected command as a duplicate, resending cached reply");
                    Some(r)
                }
                Lookup::InProgress(rx) => {
                    debug!("Detected command as a duplicate in progress, waiting for reply");
                    cookie_cache::wait(rx).await
                }
                Lookup::New(ticket) => {
                    let r: Arc<[u8]> = Arc::from(self.handle_body(body).await);
                    ticket.complete(r.clone());
                    Some(r)
                }
            }
        }
        .instrument(span)
        .await?;
        Some(frame::with_cookie(cookie, &reply))
    }

    /// Handles one body without cookie (cookie-less transports) and returns
    /// the encoded reply body.
    pub async fn handle_body(&self, body: &[u8]) -> Vec<u8> {
        let (enc, dict) = frame::decode_body(body);
        let reply = match dict {
            Ok(dict) => self.dispatch(dict).await,
            Err(e) => Err(e),
        };
        let reply = reply.unwrap_or_else(|e| {
            warn!(error = %e, "Protocol error");
            frame::error_reply(&e)
        });
        frame::encode(enc, &reply)
    }

    async fn dispatch(&self, dict: Dict) -> Result<Dict, NgError> {
        let req = Request::from_dict(dict)?;
        let span = tracing::Span::current();
        span.record("command", req.command.name());
        if let Some(id) = req.str("call-id") {
            span.record("call_id", id);
        }
        if let Some(tag) = req.str("from-tag") {
            span.record("from_tag", tag);
        }
        debug!(flags = ?req.flags, "Received command");
        let mut reply = self.commands.run(&req).await?;
        reply.entry(b"result".to_vec()).or_insert(Value::str("ok"));
        Ok(reply)
    }
}
