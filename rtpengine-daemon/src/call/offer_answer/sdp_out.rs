//! The SDP written for the receiver: our ports and addresses, the direction
//! and RTCP attributes, and the `replace` options on `o=` and `s=`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{OfferAnswer, Side};
use crate::call::{Call, SdpOutState};
use crate::sdp::{
    self, attr_ops, Direction, IceLines, IceOut, MediaOut, Origin, RtcpOut, Session, SessionOut,
};

impl OfferAnswer {
    pub(super) fn write_sdp(
        &self,
        call: &mut Call,
        snd: usize,
        rcv: usize,
        sdp: &Session,
    ) -> Vec<u8> {
        let mut media_out = Vec::with_capacity(sdp.media.len());
        // Sections rejected by their sender: written with our address once
        // it is known (upstream does the same).
        let mut rejected = Vec::new();
        for (i, m) in sdp.media.iter().enumerate() {
            let smedia = &call.parties[snd].medias[i];
            let rmedia = &call.parties[rcv].medias[i];
            let v6 = m.address(sdp).is_some_and(|a| a.is_ipv6());
            if m.is_passthrough() {
                media_out.push(MediaOut {
                    port: m.port,
                    address: m.address(sdp).unwrap_or(zero(v6)),
                    direction: m.direction(sdp),
                    rtcp: RtcpOut::None,
                    rtcp_mux: false,
                    passthrough: true,
                    ice: None,
                });
                continue;
            }
            let Some(sockets) = rmedia.sockets.as_ref().filter(|_| !smedia.rejected) else {
                if smedia.rejected {
                    rejected.push(i);
                }
                media_out.push(MediaOut {
                    port: 0,
                    address: zero(v6),
                    direction: m.direction(sdp),
                    rtcp: RtcpOut::None,
                    rtcp_mux: false,
                    passthrough: false,
                    ice: None,
                });
                continue;
            };
            let port = sockets.rtp.local.port();
            // A zero address is hold (RFC 2543): the direction says so too;
            // `replace: zero-address` only writes our address instead.
            let hold = smedia.zero_address;
            let address = if hold && !self.replace.zero_address {
                zero(sockets.advertised.is_ipv6())
            } else {
                sockets.advertised
            };
            let mut direction = m.direction(sdp);
            if hold && !self.original_sendrecv {
                direction = match direction {
                    Direction::SendRecv => Direction::SendOnly,
                    Direction::RecvOnly => Direction::Inactive,
                    d => d,
                };
            }
            // What the receiver is told about RTCP multiplexing.
            let (mux_attr, rtcp_on_rtp) = match self.side {
                Side::Offer => {
                    // A receiver already multiplexing keeps it, offered
                    // without a fallback port (upstream: the fallback may
                    // be closed already), whatever the sender offers: a
                    // re-INVITE from the SIP side must not offer a browser
                    // a demuxed stream.
                    let require = self.rtcp_mux.require || (rmedia.mux && !self.rtcp_mux.demux);
                    let offer = !self.rtcp_mux.reject
                        && !self.rtcp_mux.demux
                        && (smedia.mux_offered || self.rtcp_mux.offer);
                    (require || offer, require)
                }
                Side::Answer => (rmedia.mux, rmedia.mux),
            };
            let rtcp_port = if rtcp_on_rtp || sockets.rtcp.is_none() {
                port
            } else {
                port + 1
            };
            let rtcp = if self.no_rtcp_attr || !m.is_rtp() {
                RtcpOut::None
            } else if self.full_rtcp_attr {
                RtcpOut::Full(rtcp_port, address)
            } else {
                RtcpOut::Port(rtcp_port)
            };
            // ICE names our real address even on hold (as upstream): the
            // RTP port, and the RTCP port unless RTCP goes on the RTP port.
            let n = &rmedia.negotiated;
            let lines = match (&n.ice, n.ice_passthrough) {
                (_, true) => Some(IceLines::Theirs),
                (Some(c), false) => Some(IceLines::Ours {
                    ufrag: c.ufrag.clone(),
                    pwd: c.pwd.clone(),
                }),
                (None, false) => None,
            };
            let ice = lines.map(|lines| IceOut {
                // The sender's lite-ness passes with its lines.
                lite: match lines {
                    IceLines::Theirs => sdp.attr("ice-lite").is_some(),
                    IceLines::Ours { .. } => n.ice_lite,
                },
                lines,
                // Every address's sockets, the one on `c=` first.
                candidates: sockets
                    .sets()
                    .flat_map(|set| {
                        let port = set.rtp.local.port();
                        let rtcp = match &set.rtcp {
                            Some(r) if !rtcp_on_rtp => Some((2, set.advertised, r.local.port())),
                            _ => None,
                        };
                        std::iter::once((1, set.advertised, port)).chain(rtcp)
                    })
                    .collect(),
                relay: n.ice_relay,
                trickle: n.ice_trickle,
                ice2: n.ice2,
            });
            // `ICE=force-relay`: we are only a candidate; `c=`, `m=` and
            // the RTCP port stay the sender's (as upstream).
            let (port, address, rtcp) = match n.ice_relay {
                true => (m.port, m.address(sdp).unwrap_or(address), RtcpOut::None),
                false => (port, address, rtcp),
            };
            media_out.push(MediaOut {
                port,
                address,
                direction,
                rtcp,
                rtcp_mux: mux_attr && m.is_rtp(),
                passthrough: false,
                ice,
            });
        }
        // A bundled receiver is told its head's transport for every
        // section of the bundle (as upstream: ICE and DTLS lines too).
        for (i, rm) in call.parties[rcv].medias.iter().enumerate() {
            let Some(head) = rm
                .bundle
                .as_ref()
                .filter(|b| b.shared)
                .map(|b| b.head)
                .filter(|&h| h != i)
            else {
                continue;
            };
            let head_out = media_out.get(head).filter(|h| h.port != 0).cloned();
            if let (Some(h), Some(mo)) = (head_out, media_out.get_mut(i)) {
                if mo.port != 0 && self.side == Side::Offer && self.bundle.strict {
                    // RFC 9143's bundle-only: no port of its own.
                    mo.port = 0;
                } else if mo.port != 0 {
                    *mo = MediaOut {
                        direction: mo.direction,
                        rtcp_mux: true,
                        ..h
                    };
                }
            }
        }
        let local = media_out
            .iter()
            .filter(|m| !m.passthrough)
            .map(|m| m.address)
            .find(|a| !a.is_unspecified());
        for i in rejected {
            media_out[i].address = local.unwrap_or(media_out[i].address);
        }
        // Sections `sdp-media-remove` left out of this party's SDP.
        let kept =
            |i: usize| self.side != Side::Offer || !call.parties[rcv].medias[i].negotiated.removed;
        // The call's section of each one written.
        let index: Vec<usize> = (0..sdp.media.len()).filter(|&i| kept(i)).collect();
        let sdp = if !(0..sdp.media.len()).all(kept) {
            let mut narrowed = sdp.clone();
            narrowed.media = sdp
                .media
                .iter()
                .enumerate()
                .filter(|(i, _)| kept(*i))
                .map(|(_, m)| m.clone())
                .collect();
            media_out = media_out
                .into_iter()
                .enumerate()
                .filter(|(i, _)| kept(*i))
                .map(|(_, m)| m)
                .collect();
            std::borrow::Cow::Owned(narrowed)
        } else {
            std::borrow::Cow::Borrowed(sdp)
        };
        let mut sdp = sdp;
        self.expand_legacy(call, rcv, &index, &mut sdp, &mut media_out);
        let st = &mut call.parties[rcv].sdp_out;
        self.finish_sdp(&sdp, st, local, &media_out)
    }

    /// Applies the `replace` options to `o=` and `s=`, then writes.
    fn finish_sdp(
        &self,
        sdp: &Session,
        st: &mut SdpOutState,
        local: Option<IpAddr>,
        media: &[MediaOut],
    ) -> Vec<u8> {
        let r = &self.replace;
        let mut origin = sdp.origin.clone();
        if let Some(local) = local.filter(|_| r.origin || r.origin_full) {
            origin.addr_type = if local.is_ipv4() { "IP4" } else { "IP6" }.into();
            origin.address = local.to_string();
        }
        if r.origin_full {
            // The first o= line this party got (with our address) stays,
            // all but its version, for the whole call (master's rule).
            let pinned = st.origin.get_or_insert_with(|| origin.clone());
            origin = Origin {
                version: origin.version,
                ..pinned.clone()
            };
        }
        if r.username {
            origin.username = st
                .origin
                .get_or_insert_with(|| origin.clone())
                .username
                .clone();
        }
        let name = if r.session_name {
            st.name.get_or_insert_with(|| sdp.name.clone()).clone()
        } else {
            sdp.name.clone()
        };
        // `sdp-attr` works on the finished text, so it reaches every line.
        let render = |s: &SessionOut| attr_ops::apply(&sdp::write(sdp, s, media), &self.sdp.attrs);
        let mut out = render(&SessionOut {
            origin: origin.clone(),
            name: name.clone(),
        });
        let body = without_origin(&out);
        let bump = r.force_increment_sdp_version;
        if r.sdp_version || bump || r.origin_full {
            let input: u64 = origin.version.parse().unwrap_or(0);
            let changed = st.last_body.as_deref() != Some(body.as_slice());
            let version = match st.version {
                None => input,
                Some(v) if bump || changed => v.wrapping_add(1),
                Some(v) => v,
            };
            st.version = Some(version);
            if version.to_string() != origin.version {
                origin.version = version.to_string();
                out = render(&SessionOut { origin, name });
            }
        }
        st.last_body = Some(body);
        out
    }
}

fn zero(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// The SDP without its `o=` line (line two), for change detection.
fn without_origin(sdp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sdp.len());
    for (i, line) in sdp.split_inclusive(|&b| b == b'\n').enumerate() {
        if i != 1 {
            out.extend_from_slice(line);
        }
    }
    out
}
