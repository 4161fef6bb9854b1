//! BUNDLE (RFC 9143) in offer/answer, as upstream's `bundle` option: which
//! of a party's media sections share one transport, and the SDP that says
//! so. The relay side is in [`crate::relay::bundle`].
//!
//! Each bundled section keeps sockets of its own (they hold the section's
//! learning, SRTP and counters); the party is told the head's port for all
//! of them, its packets arrive there and are handed on by section, and
//! media to it leaves through the head's socket. With `accept` a bundled
//! offer is answered bundled and goes on unbundled; with `offer` our offer
//! proposes a bundle, which the answer's group confirms.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use super::webrtc::IceMode;
use super::{OfferAnswer, Side};
use crate::call::Call;
use crate::relay::bundle::{Member, Routes, Section, MAX_SSRCS};
use crate::relay::MediaSocket;
use crate::sdp::{Attribute, Media, Session};

/// The RTP header extension naming a packet's section (RFC 9143 §9.2).
pub const MID_EXT: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";

/// The `bundle` options (list, or `BUNDLE-…` flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BundleOptions {
    /// `accept`: a bundled offer is served bundled, and its answer says so.
    pub accept: bool,
    /// `reject`: bundles are broken up (each section its own transport).
    pub reject: bool,
    /// `offer`: the offer going on proposes one bundle of its sections.
    pub offer: bool,
    /// `require`: … on one port for all, marked `bundle-only`.
    pub require: bool,
    /// `strict`: … with port 0 for all but the first (RFC 9143's
    /// `bundle-only`; not remembered for later offers, as upstream).
    pub strict: bool,
}

/// A media section's place in its party's bundle.
#[derive(Debug, Clone)]
pub struct Bundled {
    /// The index of the bundle's head (its first section; its own for the
    /// head).
    pub head: usize,
    /// What the party announced for the section.
    pub section: Section,
    /// The ID the party's packets carry the MID extension under.
    pub mid_ext: Option<u8>,
    /// The party is told the head's port for this section (a bundle it
    /// offered, or one we offered with `require`); else its own, until
    /// an answer confirms the bundle.
    pub shared: bool,
    /// Written `bundle-only` in our offers (`require`).
    pub only: bool,
    /// The party was told the MID extension under `mid_ext` for this
    /// section: our media to it carries it.
    pub stamp: bool,
}

/// The `a=group:BUNDLE` lines of an SDP: the mids of each.
fn groups(sdp: &Session) -> Vec<Vec<&str>> {
    sdp.attributes
        .iter()
        .filter_map(bundle_mids)
        .map(|v| v.split_whitespace().collect())
        .collect()
}

/// The mids of an `a=group:BUNDLE` line (`None`: another attribute).
fn bundle_mids(a: &Attribute) -> Option<&str> {
    let v = a.value.as_deref()?.strip_prefix("BUNDLE")?;
    (a.name == "group" && (v.is_empty() || v.starts_with(' '))).then_some(v)
}

fn is_bundle_group(a: &Attribute) -> bool {
    bundle_mids(a).is_some()
}

/// The `a=extmap` lines among `attrs`: (ID, whether it is the MID
/// extension); an ID that is no number is `None`.
fn extmaps<'a>(
    attrs: impl Iterator<Item = &'a Attribute> + 'a,
) -> impl Iterator<Item = (Option<u8>, bool)> + 'a {
    attrs
        .filter(|a| a.name == "extmap")
        .filter_map(|a| a.value.as_deref())
        .map(|v| {
            let id = v.split(['/', ' ']).next().and_then(|i| i.parse().ok());
            (id, v.split_whitespace().nth(1) == Some(MID_EXT))
        })
}

fn mid(m: &Media) -> Option<&str> {
    m.attr("mid").and_then(|a| a.value.as_deref())
}

/// The ID of the MID extension in a section's (or the session's)
/// `a=extmap` lines.
fn mid_ext(m: &Media, sdp: &Session) -> Option<u8> {
    extmaps(m.attributes.iter().chain(&sdp.attributes)).find_map(|(id, mid)| id.filter(|_| mid))
}

/// A section as the party announced it: mid, payload types, SSRCs.
fn section(m: &Media) -> Section {
    Section {
        mid: mid(m).map(str::to_owned),
        payload_types: m
            .formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|&pt| pt < 128)
            .fold(Vec::new(), |mut v, pt| {
                if !v.contains(&pt) {
                    v.push(pt);
                }
                v
            }),
        ssrcs: m
            .attributes
            .iter()
            .filter(|a| a.name == "ssrc")
            .filter_map(|a| a.value.as_deref()?.split_whitespace().next()?.parse().ok())
            .fold(Vec::new(), |mut v, s| {
                if !v.contains(&s) && v.len() < MAX_SSRCS {
                    v.push(s);
                }
                v
            }),
    }
}

impl OfferAnswer {
    /// Which of the sender's sections are bundled: those of each
    /// `a=group:BUNDLE` of its SDP, with `accept` in an offer, or once it
    /// is bundled (its re-offers and answers; one without a group breaks
    /// the bundle up, as does `reject`). A bundled section that is
    /// `bundle-only` (port 0) is not rejected: it takes the head's
    /// transport, as every member does.
    pub(super) fn update_bundle(&self, call: &mut Call, snd: usize, sdp: &Session) {
        let medias = &mut call.parties[snd].medias;
        let was = medias.iter().any(|m| m.bundle.is_some());
        for m in medias.iter_mut() {
            m.bundle = None;
        }
        let wanted = match self.side {
            Side::Offer => self.bundle.accept || was,
            Side::Answer => was,
        };
        // Upstream ignores bundles with `force-relay` (we are only one
        // candidate there, not the transport).
        if !wanted || self.bundle.reject || self.webrtc.ice == IceMode::ForceRelay {
            return;
        }
        let mut taken = HashSet::new();
        for group in groups(sdp) {
            let mut members = Vec::new();
            for g in &group {
                let Some(i) = sdp.media.iter().position(|m| mid(m) == Some(g)) else {
                    continue;
                };
                let m = &sdp.media[i];
                // A section its sender rejects is out of the bundle.
                if !m.is_rtp() || (m.port == 0 && !m.has_attr("bundle-only")) {
                    continue;
                }
                if !taken.insert(i) {
                    tracing::warn!(mid = %g, "Media section found in multiple BUNDLE groups, ignoring it");
                    continue;
                }
                members.push(i);
            }
            let Some(&head) = members.first() else {
                continue;
            };
            if sdp.media[head].port == 0 || members.len() < 2 {
                continue;
            }
            let ext = mid_ext(&sdp.media[head], sdp);
            // Upstream's consistency rule: a section is told apart by the
            // head's MID extension, else by payload types no other one
            // lists; one that cannot be is left out (the head: no bundle).
            let mut listed: HashMap<u8, usize> = HashMap::new();
            for &i in &members {
                for pt in section(&sdp.media[i]).payload_types {
                    *listed.entry(pt).or_default() += 1;
                }
            }
            let distinct = |i: usize| {
                let m = &sdp.media[i];
                match mid_ext(m, sdp) {
                    Some(id) => Some(id) == ext && mid(m).is_some_and(|v| !v.is_empty()),
                    None => section(m)
                        .payload_types
                        .iter()
                        .all(|pt| listed.get(pt) == Some(&1)),
                }
            };
            if !distinct(head) {
                tracing::warn!(media = head, "BUNDLE head cannot be told apart (MID extension or payload types): not bundled");
                continue;
            }
            members.retain(|&i| {
                let ok = distinct(i);
                if !ok {
                    tracing::warn!(media = i, "Bundled section cannot be told apart (MID extension or payload types): not bundled");
                }
                ok
            });
            if members.len() < 2 {
                continue;
            }
            let (rtp, mux) = (medias[head].rtp_endpoint, medias[head].mux_offered);
            for &i in &members {
                let pm = &mut medias[i];
                // Remembered as `bundle-only` for our later offers to it,
                // as upstream.
                pm.bundle = Some(Bundled {
                    head,
                    section: section(&sdp.media[i]),
                    mid_ext: ext,
                    shared: true,
                    only: true,
                    // It declared the extension under that ID itself.
                    stamp: ext.is_some() && mid_ext(&sdp.media[i], sdp) == ext,
                });
                if i != head {
                    // Its packets come from, and go to, the head's
                    // transport, RTCP muxed (RFC 9143 §9.3).
                    pm.rejected = false;
                    pm.rtp_endpoint = rtp;
                    pm.rtcp_endpoint = rtp;
                    pm.mux_offered = mux;
                }
            }
        }
    }

    /// The bundling of the SDP going to the receiver: the sender's groups
    /// and `bundle-only` go (what the sender bundles is ours to
    /// unbundle); a bundled receiver gets its groups back, each section
    /// under its own mid, with the MID extension where it offered one.
    pub(super) fn bundle_out(&self, call: &mut Call, snd: usize, rcv: usize, out: &mut Session) {
        // We are only a candidate there, not the transport: the sender's
        // bundle passes as it is (upstream).
        if self.webrtc.ice == IceMode::ForceRelay {
            return;
        }
        out.attributes.retain(|a| !is_bundle_group(a));
        for (i, m) in out.media.iter_mut().enumerate() {
            m.attributes.retain(|a| a.name != "bundle-only");
            // A bundle-only section goes on as a section of its own.
            let bundled = call.parties[snd]
                .medias
                .get(i)
                .and_then(|pm| pm.bundle.as_ref());
            if let Some(b) = bundled.filter(|_| m.port == 0) {
                m.port = sdp_port_of(call, snd, b.head);
            }
        }
        if self.side == Side::Offer && self.bundle.offer {
            self.offer_bundle(call, rcv, out);
        }
        let medias = &mut call.parties[rcv].medias;
        let heads: Vec<usize> = (0..medias.len())
            .filter(|&i| medias[i].bundle.as_ref().is_some_and(|b| b.head == i))
            .collect();
        for h in heads {
            // The head first (it names the transport), then in order.
            let members: Vec<usize> = std::iter::once(h)
                .chain((0..medias.len()).filter(|&i| i != h))
                .filter(|&i| medias[i].bundle.as_ref().is_some_and(|b| b.head == h))
                .collect();
            let open = |i: usize| out.media.get(i).is_some_and(|m| m.port != 0);
            // A section refused leaves the bundle; a refused head passes
            // the transport to the first section left (RFC 8843 §7.3.1:
            // the answerer may tag another).
            for &i in members.iter().filter(|&&i| !open(i)) {
                medias[i].bundle = None;
            }
            let Some(&head) = members.iter().find(|&&i| open(i)) else {
                continue;
            };
            if head != h {
                tracing::warn!(
                    media = h,
                    new = head,
                    "BUNDLE head rejected: the next section carries the bundle"
                );
                for &i in &members {
                    if let Some(b) = medias[i].bundle.as_mut() {
                        b.head = head;
                    }
                }
            }
            let kept: Vec<usize> = members.iter().copied().filter(|&i| open(i)).collect();
            // One SRTP session per transport: the head's SDES lines stand
            // for every section the party sends on it.
            let head_crypto: Vec<Attribute> = out.media[head]
                .attributes
                .iter()
                .filter(|a| a.name == "crypto")
                .cloned()
                .collect();
            let head_keys = (
                medias[head].negotiated.crypto_out.clone(),
                medias[head].negotiated.key_out.clone(),
            );
            let mut mids = Vec::new();
            let mut sharing = Vec::new();
            for &i in &kept {
                let (Some(b), Some(m)) = (medias[i].bundle.as_mut(), out.media.get_mut(i)) else {
                    continue;
                };
                if let Some(mid) = &b.section.mid {
                    m.set_attr("mid", Some(mid.clone()));
                    mids.push(mid.clone());
                }
                if i != head && b.shared && !head_crypto.is_empty() {
                    m.attributes.retain(|a| a.name != "crypto");
                    m.attributes.extend(head_crypto.iter().cloned());
                    sharing.push(i);
                }
                if self.side == Side::Offer && i != head && (b.only || self.bundle.strict) {
                    m.attributes.push(Attribute {
                        name: "bundle-only".to_owned(),
                        value: None,
                    });
                }
                b.stamp = false;
                if let Some(id) = b.mid_ext {
                    // (ID, is the MID extension) of the section's lines.
                    let lines: Vec<(Option<u8>, bool)> = extmaps(m.attributes.iter()).collect();
                    let ours = lines.contains(&(Some(id), true));
                    // The ID taken by another extension, or the MID under
                    // another ID: our packets would say something else to
                    // the party, so they carry no MID.
                    let clash = lines.iter().any(|&(i, mid)| (i == Some(id)) != mid);
                    if !ours && !clash {
                        m.attributes.push(Attribute {
                            name: "extmap".to_owned(),
                            value: Some(format!("{id} {MID_EXT}")),
                        });
                    }
                    b.stamp = ours || !clash;
                }
            }
            // What it was told protects its media: the head's lines.
            for i in sharing {
                let n = &mut medias[i].negotiated;
                (n.crypto_out, n.key_out) = head_keys.clone();
            }
            out.attributes.push(Attribute {
                name: "group".to_owned(),
                value: Some(format!("BUNDLE {}", mids.join(" "))),
            });
        }
    }
}

impl OfferAnswer {
    /// `offer`: the receiver is offered one bundle of every section that
    /// goes on with ports and a mid (`generate-mid` comes with the
    /// option), the MID extension under the ID the sender gave it, else
    /// under the lowest free one. A receiver already bundled keeps its
    /// bundle (as upstream).
    fn offer_bundle(&self, call: &mut Call, rcv: usize, out: &Session) {
        let medias = &mut call.parties[rcv].medias;
        let eligible: Vec<usize> = (0..out.media.len().min(medias.len()))
            .filter(|&i| {
                let m = &out.media[i];
                m.is_rtp() && m.port != 0 && mid(m).is_some_and(|v| !v.is_empty())
            })
            .collect();
        // An existing bundle takes the sections not in one yet.
        let existing = medias.iter().enumerate().find_map(|(i, m)| {
            m.bundle
                .as_ref()
                .filter(|b| b.head == i)
                .map(|b| (i, b.mid_ext))
        });
        let members: Vec<usize> = eligible
            .iter()
            .copied()
            .filter(|&i| medias[i].bundle.is_none())
            .collect();
        let (head, ext) = match existing {
            Some(e) => e,
            None => {
                let Some(&head) = members.first() else {
                    return;
                };
                let attrs = eligible
                    .iter()
                    .flat_map(|&i| &out.media[i].attributes)
                    .chain(&out.attributes);
                let used: HashSet<u8> = extmaps(attrs).filter_map(|(id, _)| id).collect();
                let ext = eligible
                    .iter()
                    .find_map(|&i| mid_ext(&out.media[i], out))
                    .or_else(|| (1..=14).find(|id| !used.contains(id)));
                (head, ext)
            }
        };
        for &i in &members {
            medias[i].bundle = Some(Bundled {
                head,
                section: section(&out.media[i]),
                mid_ext: ext,
                shared: self.bundle.require,
                only: self.bundle.require,
                stamp: false,
            });
        }
    }
}

/// The port `p` announced for media `i` (a bundle head's).
fn sdp_port_of(call: &Call, p: usize, i: usize) -> u16 {
    call.parties[p].medias[i]
        .rtp_endpoint
        .map_or(9, |e| e.port())
}

/// Sets up the relay for party `p`'s bundles: each head's RTP sockets hand
/// the party's packets to their sections' sockets, whose media to the
/// party leaves through the head's (its selected ICE address's) socket.
pub(crate) fn link(call: &Call, p: usize) {
    let Some(party) = call.parties.get(p) else {
        return;
    };
    let medias = &party.medias;
    // Only a bundle the party uses: one it offered or answered, or one we
    // offered on one port (not one it has yet to accept); of two
    // sections at least.
    let in_use = |i: usize| {
        medias[i].bundle.as_ref().filter(|b| {
            b.shared
                && (0..medias.len())
                    .filter(|&j| medias[j].bundle.as_ref().is_some_and(|o| o.head == b.head))
                    .nth(1)
                    .is_some()
        })
    };
    // The head first: its packets stay where they arrive.
    let members_of = |h: usize| -> Vec<usize> {
        std::iter::once(h)
            .chain((0..medias.len()).filter(|&i| i != h))
            .filter(|&i| in_use(i).is_some_and(|b| b.head == h))
            .collect()
    };
    for (i, m) in medias.iter().enumerate() {
        let Some(s) = &m.sockets else {
            continue;
        };
        let bundle = in_use(i);
        let head = bundle.map(|b| b.head);
        // What the party's packets of this section will be stamped with.
        let mid_out: Option<(u8, Arc<[u8]>)> = bundle.filter(|b| b.stamp).and_then(|b| {
            let mid = b.section.mid.as_deref().filter(|m| !m.is_empty())?;
            Some((b.mid_ext?, Arc::from(mid.as_bytes())))
        });
        let head_sockets = head.and_then(|h| Some((h, medias[h].sockets.as_ref()?)));
        match (head_sockets, bundle) {
            (Some((h, _)), Some(b)) if h == i => {
                let members = members_of(h)
                    .into_iter()
                    .filter_map(|j| {
                        let section = medias[j].bundle.as_ref()?.section.clone();
                        Some(Member::new(section, &medias[j].sockets.as_ref()?.rtp))
                    })
                    .collect();
                let routes = Arc::new(Routes {
                    mid_ext: b.mid_ext,
                    members,
                });
                for set in s.sets() {
                    set.rtp.set_via(None);
                    set.rtp.set_bundle(Some(routes.clone()));
                    set.rtp.set_mid_out(mid_out.clone());
                    if let Some(r) = &set.rtcp {
                        r.set_bundle(None);
                        r.set_via(None);
                    }
                }
            }
            (Some((h, hs)), Some(_)) => {
                let out: Weak<MediaSocket> = Arc::downgrade(hs.targets(medias[h].mux).0);
                for sock in s.all() {
                    sock.set_bundle(None);
                    sock.set_via(Some(out.clone()));
                    sock.set_mid_out(mid_out.clone());
                }
            }
            _ => {
                for sock in s.all() {
                    sock.set_bundle(None);
                    sock.set_via(None);
                    sock.set_mid_out(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_mid_extension_are_read() {
        let sdp = crate::sdp::parse(
            b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\na=group:BUNDLEX 2\r\na=group:LS 0 1\r\n\
m=audio 4000 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:0\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=ssrc:11 cname:x\r\na=ssrc:11 msid:y\r\na=ssrc:12 cname:x\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=bundle-only\r\na=extmap:4/sendrecv urn:ietf:params:rtp-hdrext:sdes:mid\r\n",
        )
        .expect("valid SDP");
        assert_eq!(groups(&sdp), vec![vec!["0", "1"]]);
        assert_eq!(mid_ext(&sdp.media[0], &sdp), Some(4));
        assert_eq!(mid_ext(&sdp.media[1], &sdp), Some(4));
        let s = section(&sdp.media[0]);
        assert_eq!(s.mid.as_deref(), Some("0"));
        assert_eq!(s.payload_types, vec![111, 0]);
        assert_eq!(s.ssrcs, vec![11, 12]);
    }
}
