//! The legacy rtpproxy control protocol (`--listen-udp`), so users of
//! Kamailio's and OpenSIPS's `rtpproxy` modules can switch too. The wire
//! format is in [`protocol`]; this module runs its commands on the call
//! model:
//!
//! - `U`/`L` become an offer/answer whose SDP is one audio stream at the
//!   given address and port (the protocol carries no SDP); the reply is the
//!   port and address of the rewritten SDP. `I`/`E` choose the interfaces
//!   named `internal`/`external` (or IPv4/IPv6 for the recipient when no
//!   such interfaces exist), as upstream.
//! - `D` is a `delete` with `--delete-delay`; `Q` reports the time left
//!   before the silent timeout and the packets relayed.
//!
//! Replies to `U`/`L`/`D`/`Q` go through a cookie cache like ng's, so
//! Kamailio's retransmissions run a command once.
//!
//! Differences from upstream 10.5, on purpose: a bare `VF` is answered (10.5
//! crashes), `Q` never wedges the call (10.5 unlocks it twice), and a
//! second media stream (`tag;2`) is refused with a warning instead of
//! overwriting the first stream's endpoint.

pub mod protocol;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tracing::{debug, info_span, warn, Instrument};

use crate::call::{self, Calls, Delete, Deleted, OfferAnswer, Side};
use crate::clock;
use crate::ng::cookie_cache::{self, CookieCache, Lookup};
use protocol::{Command, Dialogue, Direction, Update};

/// Upstream's only error code on this protocol.
const ERROR: &str = "E8";

/// The rtpproxy-protocol control plane.
pub struct Rtpproxy {
    calls: Arc<Calls>,
    cache: CookieCache,
}

impl Rtpproxy {
    /// A control plane over `calls`.
    pub fn new(calls: Arc<Calls>) -> Arc<Rtpproxy> {
        Arc::new(Rtpproxy {
            calls,
            cache: CookieCache::default(),
        })
    }

    /// Handles one datagram from `peer`; `None` when upstream would not
    /// answer (no cookie).
    pub async fn handle(&self, msg: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
        let text = String::from_utf8_lossy(msg);
        let Some(d) = protocol::parse(&text) else {
            debug!(%peer, "Empty rtpproxy datagram, ignored");
            return None;
        };
        let payload = match &d.command {
            // A version query is answered from the cache when its cookie is
            // there (upstream looks it up), but never stored.
            Command::Version { capability } => match self.cache.lookup(d.cookie.as_bytes()) {
                Lookup::Cached(r) => return Some(r.to_vec()),
                Lookup::InProgress(rx) => return cookie_cache::wait(rx).await.map(|r| r.to_vec()),
                Lookup::New(_forgotten_on_drop) => match capability {
                    None => protocol::VERSION.to_owned(),
                    Some(date) => protocol::capability(date).to_owned(),
                },
            },
            Command::Echo { port, addr } => {
                // Debug only: anyone can send junk, and a line each would let
                // them flood the log.
                debug!(%peer, line = %text.trim_end(), "Unparseable rtpproxy update, answering with its own address");
                format!("{port} {addr}")
            }
            Command::Invalid => {
                debug!(%peer, line = %text.trim_end(), "Unsupported or invalid rtpproxy command, answering E8");
                ERROR.to_owned()
            }
            // The commands that change or read calls run once per cookie.
            cmd => {
                let span = info_span!("rtpproxy", cookie = d.cookie, call_id = call_id(cmd));
                let reply = match self.cache.lookup(d.cookie.as_bytes()) {
                    Lookup::Cached(r) => Some(r),
                    Lookup::InProgress(rx) => cookie_cache::wait(rx).await,
                    Lookup::New(ticket) => {
                        let payload = self.run(cmd, peer).instrument(span).await;
                        let r: Arc<[u8]> = Arc::from(protocol::reply(d.cookie, &payload));
                        ticket.complete(Arc::clone(&r));
                        Some(r)
                    }
                };
                return reply.map(|r| r.to_vec());
            }
        };
        Some(protocol::reply(d.cookie, &payload))
    }

    async fn run(&self, cmd: &Command<'_>, peer: SocketAddr) -> String {
        match cmd {
            Command::Update(u) => self.update(u, peer),
            Command::Delete(d) => self.delete(d).await,
            Command::Query(q) => self.query(q),
            _ => ERROR.to_owned(),
        }
    }

    /// `U`/`L`: an offer/answer with a one-stream SDP.
    fn update(&self, u: &Update<'_>, peer: SocketAddr) -> String {
        if u.index > 1 {
            warn!(
                index = u.index,
                "Only one media stream per call over the rtpproxy protocol"
            );
            return ERROR.to_owned();
        }
        let (side, to_tag) = match (u.offer, u.tag2) {
            (true, t) => (Side::Offer, t),
            (false, Some(t)) => (Side::Answer, Some(t)),
            (false, None) => {
                warn!("rtpproxy L without the answerer's tag");
                return ERROR.to_owned();
            }
        };
        let [from_dir, to_dir] = u.directions();
        let ifaces = &self.calls.interfaces;
        let named = ifaces.get("internal").is_some() || ifaces.get("external").is_some();
        let interface =
            |d: Option<Direction>| d.filter(|_| named).map(|d| d.interface().to_owned());
        let oa = OfferAnswer {
            via_branch: u.branch.map(str::to_owned),
            proxy: Some(peer),
            from_interface: interface(from_dir),
            to_interface: interface(to_dir),
            // Without interfaces of those names, upstream reads I as IPv4 and
            // E as IPv6 (for the recipient's side).
            ipv6: (!named)
                .then_some(to_dir)
                .flatten()
                .map(|d| d == Direction::External),
            ..OfferAnswer::new(
                side,
                u.call_id,
                u.tag1,
                to_tag,
                self.calls.settings().learning,
            )
        };
        let sdp = match crate::sdp::parse(one_stream_sdp(u.addr, u.port).as_bytes()) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "Cannot express the rtpproxy update as SDP");
                return ERROR.to_owned();
            }
        };
        match self.calls.offer_answer(&oa, &sdp) {
            // A rejected stream (port 0) has no address in the SDP; upstream
            // answers with the recipient's interface address.
            Ok(_) if u.port == 0 => {
                // The interface the recipient's side got (no new pick).
                let chosen = self.calls.with_call(u.call_id, |c| {
                    let tag = if u.offer { to_tag } else { Some(u.tag1) };
                    let party = match tag {
                        Some(t) => c.party(t),
                        None => c.party(u.tag1).and_then(|p| c.parties[p].peer),
                    };
                    party.and_then(|p| c.parties[p].interface.clone())
                });
                let iface = ifaces.resolve(chosen.flatten().as_deref());
                let addr = iface
                    .address(u.addr.is_ipv4())
                    .or_else(|| iface.addrs.first())
                    .map(|a| a.advertised);
                match addr {
                    Some(a) => format!("0 {a} {}", if a.is_ipv4() { 4 } else { 6 }),
                    None => ERROR.to_owned(),
                }
            }
            Ok(out) => match answer_of(&out) {
                Some((port, addr)) => {
                    let family = if addr.is_ipv4() { 4 } else { 6 };
                    format!("{port} {addr} {family}")
                }
                None => {
                    warn!("The rewritten SDP has no media stream");
                    ERROR.to_owned()
                }
            },
            // Upstream's answer to an L for a call it does not have.
            Err(call::Error::UnknownCall) if side == Side::Answer => "0 0.0.0.0".to_owned(),
            Err(e) => {
                warn!(error = %e, "rtpproxy update failed");
                ERROR.to_owned()
            }
        }
    }

    /// `D`: the call ends after `--delete-delay` if it has the party, as
    /// upstream matches it: the second tag if given and known, else the
    /// first, alone or as the offerer whose peer is still untagged.
    async fn delete(&self, d: &Dialogue<'_>) -> String {
        let matches = self.calls.with_call(d.call_id, |c| match d.tag2 {
            Some(t2) if c.party(t2).is_some() => true,
            Some(_) => c
                .party(d.tag1)
                .is_some_and(|p| c.parties[p].peer.is_none_or(|q| c.parties[q].tag.is_none())),
            None => c.party(d.tag1).is_some(),
        });
        if matches != Some(true) {
            return ERROR.to_owned();
        }
        let del = Delete {
            call_id: d.call_id,
            from_tag: None,
            to_tag: None,
            via_branch: None,
            delay_secs: self.calls.settings().delete_delay,
        };
        match self.calls.delete(&del, |_| ()) {
            Deleted::NotFound => ERROR.to_owned(),
            Deleted::Now { call, .. } => {
                call.close().await;
                "0".to_owned()
            }
            Deleted::Branch { sockets, .. } => {
                for s in sockets {
                    s.close().await;
                }
                "0".to_owned()
            }
            Deleted::Later { .. } => "0".to_owned(),
        }
    }

    /// `Q`: seconds left before the silent timeout, and the RTP and RTCP
    /// packets received from both parties of the dialogue.
    fn query(&self, q: &Dialogue<'_>) -> String {
        let silent = self.calls.settings().silent_timeout;
        let found = self.calls.with_call(q.call_id, |c| {
            let party = q.tag2.and_then(|t| c.party(t)).or_else(|| c.party(q.tag1));
            let Some(p) = party else {
                return format!("{silent} 0 0 0 0");
            };
            let parties = [Some(p), c.parties[p].peer];
            let (mut rtp, mut rtcp, mut last_ms) = (0u64, 0u64, c.created_ms);
            for s in parties
                .iter()
                .flatten()
                .filter_map(|&i| c.parties.get(i))
                .flat_map(|p| p.medias.iter())
                .filter_map(|m| m.sockets.as_ref())
                .flat_map(call::Sockets::all)
            {
                let n = s.stats_in.packets.load(Relaxed);
                if s.is_rtcp {
                    rtcp += n;
                } else {
                    rtp += n;
                }
                last_ms = last_ms.max(s.stats_in.last_ms.load(Relaxed));
            }
            let idle = clock::now_ms().saturating_sub(last_ms) / 1000;
            let ttl = silent as i64 - idle as i64;
            format!("{ttl} {rtp} {rtcp} 0 0")
        });
        found.unwrap_or_else(|| ERROR.to_owned())
    }
}

/// The call-id a command names, for the span.
fn call_id<'a>(cmd: &Command<'a>) -> &'a str {
    match cmd {
        Command::Update(u) => u.call_id,
        Command::Delete(d) | Command::Query(d) => d.call_id,
        _ => "",
    }
}

/// The SDP the protocol implies: one audio stream at `addr:port`.
fn one_stream_sdp(addr: IpAddr, port: u16) -> String {
    let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=- 0 0 IN {family} {addr}\r\ns=-\r\nc=IN {family} {addr}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\n"
    )
}

/// The first stream's port and address in the SDP we wrote.
fn answer_of(sdp: &[u8]) -> Option<(u16, IpAddr)> {
    let s = crate::sdp::parse(sdp).ok()?;
    let m = s.media.first()?;
    let c = m.connection.as_ref().or(s.connection.as_ref())?;
    Some((m.port, c.address))
}
