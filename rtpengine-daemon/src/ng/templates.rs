//! Signalling templates (`--templates=SECTION`): named flag strings in the
//! `rtpp-flags` syntax that requests pick with the `template` key. As
//! upstream, a template named `default` applies to every request and one
//! named after a command (`offer`, `answer`, …) to every such request;
//! the order is `default`, the command's, the requested one, and the
//! request's own keys win over all of them. Names are case-insensitive.

use std::collections::HashMap;

use super::request::Request;

/// The configured templates.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    by_name: HashMap<String, String>,
}

impl Templates {
    /// Templates from `(name, flags)` pairs.
    pub fn new(pairs: &[(String, String)]) -> Templates {
        Templates {
            by_name: pairs
                .iter()
                .map(|(n, f)| (n.to_ascii_lowercase(), f.clone()))
                .collect(),
        }
    }

    /// Applies the templates `req` gets; an unknown `template` is logged and
    /// skipped.
    pub fn apply(&self, req: &mut Request) {
        if self.by_name.is_empty() && req.str("template").is_none() {
            return;
        }
        let mut chosen: Vec<&str> = Vec::new();
        for name in ["default", req.command.name()] {
            if let Some(t) = self.by_name.get(&name.to_ascii_lowercase()) {
                chosen.push(t);
            }
        }
        if let Some(name) = req.str("template") {
            match self.by_name.get(&name.to_ascii_lowercase()) {
                Some(t) => chosen.push(t),
                None => tracing::warn!(template = name, "Unknown template, ignored"),
            }
        }
        req.apply_templates(&chosen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ng::value::{Dict, Value};

    fn req(pairs: &[(&str, &str)]) -> Request {
        let d: Dict = pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), Value::str(v)))
            .collect();
        Request::from_dict(d).unwrap()
    }

    #[test]
    fn default_command_and_requested_in_order_request_wins() {
        let t = Templates::new(&[
            ("default".into(), "TOS=10 strict-source".into()),
            ("Offer".into(), "TOS=20 ICE=remove".into()),
            (
                "WebRTC".into(),
                "TOS=30 transport-protocol=UDP/TLS/RTP/SAVPF".into(),
            ),
        ]);
        let mut r = req(&[("command", "offer"), ("template", "webrtc")]);
        t.apply(&mut r);
        assert_eq!(r.str("tos"), Some("30"));
        assert_eq!(r.str("ice"), Some("remove"));
        assert_eq!(r.str("transport-protocol"), Some("UDP/TLS/RTP/SAVPF"));
        assert!(r.flag("strict-source"));
        let mut r = req(&[("command", "answer"), ("TOS", "40")]);
        t.apply(&mut r);
        assert_eq!(r.str("tos"), Some("40"), "the request's own key wins");
        assert_eq!(r.str("ice"), None, "offer's template is for offers");
        let mut r = req(&[("command", "offer"), ("template", "nope")]);
        t.apply(&mut r);
        assert_eq!(r.str("tos"), Some("20"));
    }
}
