//! Command handlers behind the ng dispatcher: they validate a request, run it
//! against the call model, and build the reply.

use std::sync::Arc;

use crate::call::{
    call_stats, kernel_packets, relayed, Call, Calls, EndReason, Negotiation, Side, Totals,
};
use crate::clock;
use crate::ng::frame::NgError;
use crate::ng::request::{Command, Request};
use crate::ng::value::{Dict, Value};
use crate::sdp;

/// The call-related commands.
pub struct Commands {
    /// The call registry.
    pub calls: Arc<Calls>,
}

fn reply() -> Dict {
    Dict::new()
}

fn put(d: &mut Dict, k: &str, v: impl Into<Value>) {
    d.insert(k.as_bytes().to_vec(), v.into());
}

const CALL_NOT_FOUND: &str = "Call-ID not found or tags didn't match";

impl Commands {
    /// Handlers over `calls`.
    pub fn new(calls: Arc<Calls>) -> Commands {
        Commands { calls }
    }

    /// Runs one command and returns its reply (without `result: ok`, which
    /// the dispatcher adds when the handler did not set a result).
    pub async fn run(&self, req: &Request) -> Result<Dict, NgError> {
        match req.command {
            Command::Offer => self.offer_answer(req, Side::Offer),
            Command::Answer => self.offer_answer(req, Side::Answer),
            Command::Delete => self.delete(req).await,
            Command::Query => self.query(req),
            Command::List => self.list(req),
            Command::Statistics => Ok(self.statistics()),
            Command::Ping | Command::Unsupported(_) => Err(NgError::UnknownCommand),
        }
    }

    fn offer_answer(&self, req: &Request, side: Side) -> Result<Dict, NgError> {
        let body = req
            .get("sdp")
            .and_then(Value::as_bytes)
            .filter(|b| !b.is_empty())
            .ok_or(NgError::Other("No SDP body in message"))?;
        let neg = Negotiation::from_request(req, side, self.calls.settings.learning)?;
        let sdp = sdp::parse(body).map_err(|e| {
            tracing::warn!(error = %e, "Failed to parse SDP");
            NgError::Other("Failed to parse SDP")
        })?;
        match neg.run(&self.calls, &sdp) {
            Ok(out) => {
                let mut d = reply();
                put(&mut d, "sdp", Value::Bytes(out));
                Ok(d)
            }
            Err(NgError::Other(m @ "Parallel session limit reached"))
                if supports_load_limit(req) =>
            {
                let mut d = reply();
                put(&mut d, "result", "load limit");
                put(&mut d, "message", m);
                Ok(d)
            }
            Err(e) => Err(e),
        }
    }

    /// `delete`: with no delay the reply goes out once the call's ports are
    /// closed, so a proxy may reuse them at once.
    async fn delete(&self, req: &Request) -> Result<Dict, NgError> {
        let (reply, ended) = self.delete_locked(req)?;
        if let Some(call) = ended {
            call.close().await;
        }
        Ok(reply)
    }

    /// The part of `delete` that runs with the call table locked; returns the
    /// reply and the call if it ended now.
    fn delete_locked(&self, req: &Request) -> Result<(Dict, Option<Call>), NgError> {
        let id = req
            .nonempty("call-id")
            .ok_or(NgError::Other("No call-id in message"))?;
        let fatal = req.flag("fatal");
        let delay = match req.int("delete-delay") {
            Ok(Some(d)) if d >= 0 => d as u64,
            _ => self.calls.settings.delete_delay,
        };
        let mut map = self.calls.lock();
        let found = map
            .get(id)
            .is_some_and(|call| match req.nonempty("from-tag") {
                None => true,
                Some(from) => call.party(from).is_some_and(|i| {
                    // The to-tag only narrows the match with the `to-tag` flag.
                    match (req.flag("to-tag"), req.nonempty("to-tag")) {
                        (true, Some(to)) => {
                            call.parties[i]
                                .peer
                                .and_then(|p| call.parties[p].tag.as_deref())
                                == Some(to)
                        }
                        _ => true,
                    }
                }),
            });
        if !found {
            if fatal {
                return Err(NgError::Other(CALL_NOT_FOUND));
            }
            let mut d = reply();
            put(&mut d, "warning", CALL_NOT_FOUND);
            return Ok((d, None));
        }
        let mut d = match (req.flag("fast"), map.get(id)) {
            (false, Some(call)) => {
                call.merge_kernel();
                call_stats(call, &[])
            }
            _ => reply(),
        };
        d.remove(&b"result"[..]);
        if delay == 0 {
            return Ok((d, self.calls.destroy(&mut map, id, EndReason::Deleted)));
        }
        if let Some(call) = map.get_mut(id) {
            let at = clock::now_ms().saturating_add(delay.saturating_mul(1000));
            call.destroy_at_ms = Some(call.destroy_at_ms.map_or(at, |t| t.min(at)));
        }
        Ok((d, None))
    }

    fn query(&self, req: &Request) -> Result<Dict, NgError> {
        let id = req
            .nonempty("call-id")
            .ok_or(NgError::Other("No call-id in message"))?;
        let map = self.calls.lock();
        let call = map.get(id).ok_or(NgError::Other("Unknown call-id"))?;
        call.merge_kernel();
        let only: Vec<&str> = [req.nonempty("from-tag"), req.nonempty("to-tag")]
            .into_iter()
            .flatten()
            .collect();
        Ok(call_stats(call, &only))
    }

    fn list(&self, req: &Request) -> Result<Dict, NgError> {
        let limit = match req.int("limit") {
            Ok(None) => 32,
            Ok(Some(l)) if l >= 0 => l as usize,
            _ => return Err(NgError::Other("invalid limit, must be >= 0")),
        };
        let map = self.calls.lock();
        let calls = map.keys().take(limit).map(Value::str).collect();
        let mut d = reply();
        put(&mut d, "calls", Value::List(calls));
        Ok(d)
    }

    fn statistics(&self) -> Dict {
        let (n, live, kernel) = self.live_totals();
        let stats = self.calls.stats.statistics(n, live, kernel);
        let mut d = reply();
        put(&mut d, "statistics", Value::Dict(stats));
        d
    }

    /// Number of calls, what their sockets have relayed so far, and how many
    /// of those packets the kernel forwarded.
    pub fn live_totals(&self) -> (usize, Totals, u64) {
        let map = self.calls.lock();
        let mut t = Totals::default();
        let mut kernel = 0;
        for c in map.values() {
            let r = relayed(c);
            t.packets += r.packets;
            t.bytes += r.bytes;
            t.errors += r.errors;
            kernel += kernel_packets(c);
        }
        (map.len(), t, kernel)
    }

    /// The once-per-second timer: ends calls and updates rates.
    pub fn tick(&self, last: &mut Totals, last_kernel: &mut u64) {
        self.calls.tick();
        let (_, live, kernel) = self.live_totals();
        let kernel = kernel
            + self
                .calls
                .stats
                .ended_kernel
                .load(std::sync::atomic::Ordering::Relaxed);
        self.calls.stats.kernel_rate.store(
            kernel.saturating_sub(*last_kernel),
            std::sync::atomic::Ordering::Relaxed,
        );
        *last_kernel = kernel;
        let ended = &self.calls.stats.ended_totals;
        let now = Totals {
            packets: live.packets + ended[0].load(std::sync::atomic::Ordering::Relaxed),
            bytes: live.bytes + ended[1].load(std::sync::atomic::Ordering::Relaxed),
            errors: live.errors + ended[2].load(std::sync::atomic::Ordering::Relaxed),
        };
        let rates = &self.calls.stats.rates;
        for (r, (n, l)) in rates.iter().zip([
            (now.packets, last.packets),
            (now.bytes, last.bytes),
            (now.errors, last.errors),
        ]) {
            r.store(n.saturating_sub(l), std::sync::atomic::Ordering::Relaxed);
        }
        *last = now;
    }
}

fn supports_load_limit(req: &Request) -> bool {
    req.words("supports").iter().any(|w| w == "load-limit")
}
