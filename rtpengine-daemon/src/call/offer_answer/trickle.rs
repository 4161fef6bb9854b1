//! Trickle ICE: candidates a party sends after its SDP (RFC 8838), in the
//! SDP fragments that proxies pass in an `offer` with the `fragment` flag
//! (RFC 8840). They join the party's ICE and its agent checks them; the
//! fragment is consumed, and nothing is written back (as upstream).

use super::webrtc::update_leg;
use crate::call::{Calls, Error};
use crate::sdp::FragmentSection;

impl Calls {
    /// Adds the candidates of `sections` to the ICE of party `from_tag` of
    /// call `call_id`: a section by its `a=mid`, else by its position, and
    /// only while the party's ICE credentials are the fragment's. Returns
    /// how many candidates are new.
    pub fn trickle(
        &self,
        call_id: &str,
        from_tag: &str,
        sections: &[FragmentSection],
    ) -> Result<usize, Error> {
        let id = self.dtls_identity();
        let mut map = self.lock();
        let call = map.get_mut(call_id).ok_or(Error::UnknownCall)?;
        let p = call.party(from_tag).ok_or(Error::InvalidDialogue)?;
        let medias = &mut call.parties[p].medias;
        let mut added = 0;
        for (n, s) in sections.iter().enumerate() {
            let i = match &s.mid {
                Some(mid) => medias
                    .iter()
                    .position(|m| m.negotiated.mid.as_deref() == Some(mid.as_str())),
                None => Some(n),
            };
            let Some(m) = i.and_then(|i| medias.get_mut(i)) else {
                tracing::warn!(mid = ?s.mid, "No matching media for trickle ICE update found");
                continue;
            };
            let Some(peer) = m.negotiated.ice_peer.as_mut() else {
                tracing::warn!(mid = ?s.mid, "Media for trickle ICE update is not ICE-enabled");
                continue;
            };
            if s.ufrag.as_ref().is_some_and(|u| *u != peer.ufrag) {
                // Candidates of an ICE generation the party has left (or
                // not yet signalled).
                tracing::warn!(mid = ?s.mid, "Trickle ICE update for other ICE credentials: ignored");
                continue;
            }
            added += peer.trickle(s.candidates.iter().map(String::as_str));
            update_leg(m, &id);
        }
        Ok(added)
    }
}
