//! `block media`, `block DTMF`, `silence media` and their opposites: flags
//! on the whole call or on one party (what that party sends), turned into
//! a [`Filter`] on the sockets the party sends to.
//!
//! Selection as upstream: the whole call unless a party is named by `label`,
//! by `address` (its SDP media address) or by `from-tag` (for the block
//! commands only with the `directional` flag; `all` forces the whole call).
//! A media flow to one receiver (`to-tag`/`to-label`, `all=offer-answer`,
//! `all=flows`) is the named party's one flow here: each party sends to its
//! one peer (no subscriptions), so it is that party's flag once the flow is
//! checked to exist.

use std::net::IpAddr;

use super::{Call, Calls};
use crate::relay::filter::{Echo, ExtIds, Filter, PayloadTypes};
use crate::sdp::codecs::Codec;

/// What a command switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    /// `block media` / `unblock media`.
    BlockMedia,
    /// `block DTMF` / `unblock DTMF`.
    BlockDtmf,
    /// `silence media` / `unsilence media`.
    SilenceMedia,
}

/// The switches of a call or a party.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Controls {
    /// Media (not DTMF) dropped.
    pub block_media: bool,
    /// DTMF events dropped.
    pub block_dtmf: bool,
    /// G.711/G.722 payloads replaced with silence.
    pub silence: bool,
    /// `drop-traffic: start` (call-wide): every packet dropped.
    pub drop_all: bool,
}

impl Controls {
    fn set(&mut self, which: Control, on: bool) {
        match which {
            Control::BlockMedia => self.block_media = on,
            Control::BlockDtmf => self.block_dtmf = on,
            Control::SilenceMedia => self.silence = on,
        }
    }

    fn or(self, other: Controls) -> Controls {
        Controls {
            block_media: self.block_media || other.block_media,
            block_dtmf: self.block_dtmf || other.block_dtmf,
            silence: self.silence || other.silence,
            drop_all: self.drop_all || other.drop_all,
        }
    }
}

/// How a party is named.
#[derive(Debug, Clone, Copy)]
pub enum Selector<'a> {
    /// By `from-tag` / `to-tag`.
    Tag(&'a str),
    /// By `label` / `to-label`.
    Label(&'a str),
    /// By its SDP media address.
    Address(IpAddr),
}

/// Which flows of the named party (`to-tag`, `to-label`, `all=…`).
#[derive(Debug, Clone, Copy)]
pub enum Flows<'a> {
    /// The party itself (no receiver named).
    Party,
    /// The flow to this receiver.
    To(Selector<'a>),
    /// `all=offer-answer` or `all=flows`: every flow (here: its one).
    All,
    /// `all=except-offer-answer`: flows not from offer/answer (none here).
    NotOfferAnswer,
}

/// A control request.
#[derive(Debug, Clone, Copy)]
pub struct ControlRequest<'a> {
    /// The call.
    pub call_id: &'a str,
    /// What to switch.
    pub which: Control,
    /// On or off.
    pub on: bool,
    /// The party, or `None` for the whole call.
    pub party: Option<Selector<'a>>,
    /// Its flows.
    pub flows: Flows<'a>,
    /// `all`: turning the call's switch off also turns every party's off.
    pub all: bool,
    /// `set-label`: give the named party this label.
    pub set_label: Option<&'a str>,
}

/// Why a control request failed. The text upstream answers each with on
/// the wire is mapped in one table at the ng edge (`commands::error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No such call.
    #[error("unknown call")]
    UnknownCall,
    /// `from-tag` names no party.
    #[error("no party with that from-tag")]
    NoTag,
    /// `label` names no party.
    #[error("no party with that label")]
    NoLabel,
    /// `address` matches no party.
    #[error("no party with that media address")]
    NoAddress,
    /// `to-tag` names no party.
    #[error("no party with that to-tag")]
    NoToTag,
    /// `to-label` names no party.
    #[error("no party with that to-label")]
    NoToLabel,
    /// The receiver is not in dialogue with the party.
    #[error("no media flow between the two parties")]
    NotSubscribed,
    /// `all=…` but the party sends nowhere.
    #[error("the party has no media flow")]
    NoFlows,
}

impl Call {
    fn select(&self, s: Selector<'_>) -> Option<usize> {
        match s {
            Selector::Tag(t) => self.party(t),
            Selector::Label(l) => self
                .parties
                .iter()
                .position(|p| p.label.as_deref() == Some(l)),
            Selector::Address(a) => self.parties.iter().position(|p| {
                p.medias
                    .iter()
                    .any(|m| m.rtp_endpoint.is_some_and(|e| e.ip() == a))
            }),
        }
    }

    /// Sets the filters of every socket from the call's and the parties'
    /// switches (after a control command, and after every offer/answer,
    /// which may bring new sockets).
    pub(crate) fn apply_filters(&self) {
        for p in &self.parties {
            let c = self.controls.or(p.controls);
            for (i, m) in p.medias.iter().enumerate() {
                let Some(sockets) = &m.sockets else { continue };
                // RTCP feedback from an AVPF party to a peer given RTP/AVP
                // that announced none is removed (upstream's AVPF -> AVP
                // filter); only the sockets RTCP arrives on are filtered, so
                // RTP of a party that does not mux stays offloadable.
                let peer = p
                    .peer
                    .and_then(|q| self.parties.get(q))
                    .and_then(|q| q.medias.get(i));
                // SRTP we unprotect is filtered as the plain RTP it carries;
                // SRTP passed through (same keys on both sides) stays
                // encrypted and authenticated: nothing that rewrites payload
                // or header may touch it (silence, header extensions, the
                // echo's new SSRC).
                let terminated = sockets.rtp.state().transform.terminates();
                let encrypted = m.protocol.contains("SAVP") && !terminated;
                // The peer's protocol: its own SDP's once it sent one, else
                // what it was offered.
                let feedback =
                    m.protocol == "RTP/AVPF" || (m.protocol.ends_with("RTP/SAVPF") && terminated);
                let strip_fb = feedback
                    && peer.is_some_and(|q| {
                        let n = &q.negotiated;
                        !n.rtcp_fb
                            && matches!(
                                n.protocol_own.as_deref().or(n.protocol_sent.as_deref()),
                                Some("RTP/AVP" | "RTP/SAVP")
                            )
                    });
                let filter = Filter {
                    drop_all: c.drop_all,
                    block_media: c.block_media,
                    block_dtmf: c.block_dtmf,
                    silence: c.silence && !encrypted,
                    encrypted,
                    pts: payload_types(&[&m.negotiated.codecs_own, &m.negotiated.codecs_sent]),
                    echo: p.echo,
                    strip_rtcp_fb: false,
                    loop_check: m.loop_check,
                    strip_ext: match encrypted {
                        true => ExtIds::default(),
                        false => ext_ids(&m.negotiated.ext_strip_ids),
                    },
                };
                for s in sockets.all() {
                    let carries_rtcp = s.is_rtcp || m.mux;
                    s.set_filter(Filter {
                        strip_rtcp_fb: strip_fb && carries_rtcp,
                        ..filter
                    });
                }
            }
        }
    }
}

/// `media echo` of an offer or answer, relative to the message's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEcho {
    /// `forward`: the receiver's media comes back to it; the sender's is dropped.
    Forward,
    /// `backwards`: the sender's media comes back to it; the receiver's is dropped.
    Backwards,
    /// `both`: each side hears itself.
    Both,
    /// `blackhole`: everything is dropped.
    Blackhole,
}

impl MediaEcho {
    /// Parses upstream's spellings.
    pub fn parse(s: &str) -> Option<MediaEcho> {
        Some(match s {
            "blackhole" | "sinkhole" => MediaEcho::Blackhole,
            "forward" | "fwd" | "fw" => MediaEcho::Forward,
            "backward" | "backwards" | "reverse" | "back" | "bkw" | "bk" => MediaEcho::Backwards,
            "both" => MediaEcho::Both,
            _ => return None,
        })
    }

    /// What the sender's and the receiver's packets get.
    pub fn modes(self) -> (Echo, Echo) {
        match self {
            MediaEcho::Forward => (Echo::Blackhole, Echo::Reflect),
            MediaEcho::Backwards => (Echo::Reflect, Echo::Blackhole),
            MediaEcho::Both => (Echo::Reflect, Echo::Reflect),
            MediaEcho::Blackhole => (Echo::Blackhole, Echo::Blackhole),
        }
    }
}

fn ext_ids(ids: &[u8]) -> ExtIds {
    let mut set = ExtIds::default();
    for &i in ids {
        set.insert(i);
    }
    set
}

/// The payload types of `lists` the filters act on.
fn payload_types(lists: &[&Vec<Codec>]) -> PayloadTypes {
    let mut pts = PayloadTypes::default();
    for c in lists.iter().copied().flatten() {
        let Ok(pt) = c.pt.parse::<u8>() else { continue };
        let set = match c.encoding.to_ascii_uppercase().as_str() {
            "TELEPHONE-EVENT" => &mut pts.dtmf,
            "PCMU" => &mut pts.pcmu,
            "PCMA" => &mut pts.pcma,
            "G722" => &mut pts.g722,
            _ => continue,
        };
        set.insert(pt);
    }
    pts
}

impl Calls {
    /// Runs a control request.
    pub fn control(&self, r: &ControlRequest<'_>) -> Result<(), ControlError> {
        let mut map = self.lock();
        let call = map.get_mut(r.call_id).ok_or(ControlError::UnknownCall)?;
        let party = match r.party {
            None => None,
            Some(s) => Some(call.select(s).ok_or(match s {
                Selector::Tag(_) => ControlError::NoTag,
                Selector::Label(_) => ControlError::NoLabel,
                Selector::Address(_) => ControlError::NoAddress,
            })?),
        };
        match party {
            None => {
                call.controls.set(r.which, r.on);
                if !r.on && r.all {
                    for p in &mut call.parties {
                        p.controls.set(r.which, false);
                    }
                }
                tracing::info!(call_id = %r.call_id, control = ?r.which, on = r.on, "Media control (entire call)");
            }
            Some(p) => {
                match r.flows {
                    Flows::Party => {}
                    Flows::To(s) => {
                        let to = call.select(s).ok_or(match s {
                            Selector::Label(_) => ControlError::NoToLabel,
                            _ => ControlError::NoToTag,
                        })?;
                        let talking =
                            call.parties[p].peer == Some(to) || call.parties[to].peer == Some(p);
                        if !talking {
                            return Err(ControlError::NotSubscribed);
                        }
                    }
                    Flows::All if call.parties[p].peer.is_some() => {}
                    Flows::All | Flows::NotOfferAnswer => return Err(ControlError::NoFlows),
                }
                if let Some(l) = r.set_label {
                    call.parties[p].label = Some(l.to_owned());
                }
                call.parties[p].controls.set(r.which, r.on);
                tracing::info!(
                    call_id = %r.call_id,
                    tag = call.parties[p].tag.as_deref().unwrap_or_default(),
                    control = ?r.which,
                    on = r.on,
                    "Media control (directional)"
                );
            }
        }
        call.apply_filters();
        Ok(())
    }
}
