//! The dispatcher: one entry point shared by every transport. It answers
//! retransmissions from the cookie cache, decodes the body, types the
//! request, puts its templates under it and hands it to [`Commands`], names
//! in the reply's `warning` what the request asked for that is not
//! implemented ([`support`]), counts it per proxy, then encodes the reply in
//! the request's encoding.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, field, info_span, warn, Instrument};

use crate::commands::Commands;
use crate::metrics::ControlStats;
use crate::ng::cookie_cache::{self, CookieCache, Lookup};
use crate::ng::frame::{self, NgError};
use crate::ng::request::{Command, Request};
use crate::ng::support;
use crate::ng::templates::Templates;
use crate::ng::value::{Dict, Value};
use crate::persist::Origin;

/// The control plane: cookie cache, command handlers, and the per-proxy
/// counters of what it ran.
pub struct Control {
    /// Persistence (`--redis`), once set.
    persist: std::sync::OnceLock<Arc<crate::persist::Persist>>,
    cache: CookieCache,
    commands: Commands,
    stats: Arc<ControlStats>,
    templates: Templates,
    warned: Warned,
}

/// Which calls were already told (in the log) which unsupported options
/// they asked for: once per call and text. Bounded: forgotten wholesale
/// when full, so a flood of call-ids costs a repeat log line, not memory.
#[derive(Default)]
struct Warned(std::sync::Mutex<std::collections::HashSet<(String, String)>>);

impl Warned {
    const MAX: usize = 10_000;

    fn first_time(&self, call_id: &str, text: &str) -> bool {
        let mut set = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if set.len() >= Self::MAX {
            set.clear();
        }
        set.insert((call_id.to_owned(), text.to_owned()))
    }
}

impl Control {
    /// A control plane that runs commands with `commands`.
    pub fn new(commands: Commands) -> Arc<Control> {
        Self::with_templates(commands, Templates::default())
    }

    /// The same, with signalling templates (`--templates`).
    pub fn with_templates(commands: Commands, templates: Templates) -> Arc<Control> {
        Arc::new(Control {
            persist: std::sync::OnceLock::new(),
            cache: CookieCache::default(),
            commands,
            stats: Arc::default(),
            templates,
            warned: Warned::default(),
        })
    }

    /// The per-proxy request counters (for `/metrics`).
    /// Journals every request that changes a call from now on (set once).
    pub fn set_persist(&self, p: Arc<crate::persist::Persist>) {
        let _ = self.persist.set(p);
    }

    /// Runs a stored request again (restoring a call after a restart):
    /// the same path as one received from `peer`, without the cookie cache.
    pub async fn replay(&self, request: &[u8], peer: SocketAddr) -> Result<Dict, NgError> {
        let dict = crate::ng::bencode::decode_bencode(request).map_err(|_| NgError::BadBencode)?;
        self.dispatch(dict, peer, &mut None, Origin::Replay).await
    }

    pub fn stats(&self) -> Arc<ControlStats> {
        Arc::clone(&self.stats)
    }

    /// Forgets cookie-cache generations that are due; see
    /// [`CookieCache::expire`].
    pub fn expire_cookies(&self) -> usize {
        self.cache.expire()
    }

    /// Handles one cookie-framed message from `peer` and returns the framed
    /// reply, or `None` when upstream would not answer (no cookie).
    pub async fn handle_framed(&self, msg: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
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
                    let r: Arc<[u8]> = Arc::from(self.handle_body(body, peer).await);
                    ticket.complete(r.clone());
                    Some(r)
                }
            }
        }
        .instrument(span)
        .await?;
        Some(frame::with_cookie(cookie, &reply))
    }

    /// Handles one body without cookie (cookie-less transports) from `peer`
    /// and returns the encoded reply body.
    pub async fn handle_body(&self, body: &[u8], peer: SocketAddr) -> Vec<u8> {
        let start = Instant::now();
        let (enc, dict) = frame::decode_body(body);
        let mut command = None;
        let reply = match dict {
            Ok(dict) => self.dispatch(dict, peer, &mut command, Origin::Live).await,
            Err(e) => Err(e),
        };
        self.stats
            .record(peer.ip(), command, start.elapsed(), reply.is_err());
        let reply = reply.unwrap_or_else(|e| {
            warn!(error = %e, "Protocol error");
            frame::error_reply(&e)
        });
        frame::encode(enc, &reply)
    }

    /// Runs one decoded request; `command` learns which command it was.
    async fn dispatch(
        &self,
        dict: Dict,
        peer: SocketAddr,
        command: &mut Option<Command>,
        origin: Origin,
    ) -> Result<Dict, NgError> {
        // As received: what a restart replays.
        let raw = self
            .persist
            .get()
            .map(|_| crate::ng::bencode::encode_bencode(&dict));
        let mut req = Request::from_dict(dict)?;
        req.peer = Some(peer);
        self.templates.apply(&mut req);
        *command = Some(req.command);
        let span = tracing::Span::current();
        span.record("command", req.command.name());
        if let Some(id) = req.str("call-id") {
            span.record("call_id", id);
        }
        if let Some(tag) = req.str("from-tag") {
            span.record("from_tag", tag);
        }
        debug!(flags = ?req.flags, "Received command");
        let unsupported = support::unsupported(&req);
        let ran = self.commands.run(&req).await;
        if let (Err(_), Some(p), Some(id)) = (&ran, self.persist.get(), req.str("call-id")) {
            if req.command.changes_calls() {
                p.failed(&self.commands.calls, id);
            }
        }
        let mut reply = ran?;
        if let (Some(p), Some(raw), Some(id)) = (self.persist.get(), raw, req.str("call-id")) {
            if req.command.changes_calls() {
                let write = !req.flag("no-redis-update");
                p.record(&self.commands.calls, id, raw, peer, origin, write);
            }
        }
        reply.entry(b"result".to_vec()).or_insert(Value::str("ok"));
        // Never silent: what was asked for and not done is named in the
        // reply (after a warning of the command's own, as `delete`'s), and
        // logged once per call.
        if !unsupported.is_empty()
            && reply.get(&b"result"[..]).and_then(Value::as_str) == Some("ok")
        {
            let text = support::warning(&unsupported);
            if self
                .warned
                .first_time(req.str("call-id").unwrap_or_default(), &text)
            {
                warn!("{text}");
            }
            let warning = match reply.get(&b"warning"[..]).and_then(Value::as_str) {
                Some(own) => format!("{own}; {text}"),
                None => text,
            };
            reply.insert(b"warning".to_vec(), Value::str(&warning));
        }
        Ok(reply)
    }
}
