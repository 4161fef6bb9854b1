//! The offer/answer keys and flags that shape the SDP written onwards
//! (`codec`, `sdp-attr`, `sdp-media-remove`, `ptime`, `transport-protocol`,
//! `extmap`), in dictionary form, flag form (`codec-strip-PCMA`,
//! `sdp-attr-add-audio-ptime:20`) and `rtpp-flags` form, read into one
//! [`SdpOptions`].

use super::error::{TOO_MANY_CODECS, WRONG_TYPE};
use crate::call::offer_answer::{SdpOptions, SWITCHABLE};
use crate::call::Side;
use crate::crypto::negotiate::SdesOptions;
use crate::crypto::Suite;
use crate::ng::frame::NgError;
use crate::ng::request::Request;
use crate::ng::value::Value;
use crate::sdp::attr_ops::{AttrCommand, AttrOpError, AttrOps, MEDIA_TYPES};
use crate::sdp::codecs::{self, CodecOps, MAX_CODEC_NAMES};

/// A sub-key of a dictionary value, matched in canonical form.
fn sub<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Dict(d) => d
            .iter()
            .find(|(k, _)| crate::ng::request::canonical(k) == key)
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Reads the options. `ptime`, `ptime-reverse` and the `codec` lists other
/// than `except` act in offers only (upstream ignores them in answers).
pub(super) fn sdp_options(req: &Request, side: Side) -> Result<SdpOptions, NgError> {
    let mut o = SdpOptions {
        allow_no_codec_media: [
            "allow-no-codec-media",
            "allow-no-codec-medias",
            "allow-empty-codec-media",
            "allow-empty-codec-medias",
        ]
        .iter()
        .any(|f| req.flag(f)),
        single_codec: side == Side::Answer && req.flag("single-codec"),
        static_codecs: side == Side::Offer
            && (req.flag("static-codecs") || req.flag("static-codec")),
        reuse_codecs: req.flag("reuse-codecs") || req.flag("no-codec-renegotiation"),
        ..SdpOptions::default()
    };
    if side == Side::Offer {
        o.codecs = codec_ops(req)?;
        let ms = |key: &str| match req.int(key) {
            Ok(Some(p)) if p > 0 => u32::try_from(p).ok(),
            _ => None,
        };
        o.ptime = ms("ptime");
        o.ptime_reverse = ms("ptime-reverse").or_else(|| ms("reverse-ptime"));
    }
    o.attrs = attr_ops(req)?;
    o.media_remove = req.words("sdp-media-remove");
    if o.media_remove
        .iter()
        .any(|t| t != "other" && !MEDIA_TYPES.contains(&t.as_str()))
    {
        return Err(AttrOpError::Scope(String::new()).into());
    }
    match req.str("transport-protocol").map(str::to_ascii_uppercase) {
        Some(t) if t == "ACCEPT" => o.accept_transport = side == Side::Answer,
        Some(t) => o.transport = SWITCHABLE.iter().find(|p| **p == t).copied(),
        None => {}
    }
    if let Some(e) = req.get("extmap") {
        o.extmap_strip = sub(e, "strip").map(Value::strings).unwrap_or_default();
        o.extmap_mask = sub(e, "mask").map(Value::strings).unwrap_or_default();
    }
    o.generate_mid = req.flag("generate-mid");
    if req.flag("strip-extmap") {
        o.extmap_strip.push("all".to_owned());
    }
    Ok(o)
}

/// `codec` (or `codecs`) and the `codec-…-` flag families.
fn codec_ops(req: &Request) -> Result<CodecOps, NgError> {
    let dict = req.get("codec").or_else(|| req.get("codecs"));
    let list = |keys: &[&str]| -> Vec<String> {
        let mut out = Vec::new();
        for key in keys {
            if let Some(v) = dict.and_then(|d| sub(d, key)) {
                out.extend(codecs::names(v.strings()));
            }
            let prefix = format!("codec-{key}-");
            out.extend(codecs::names(req.prefixed(&prefix).map(str::to_owned)));
        }
        out
    };
    let ops = CodecOps {
        // Without transcoding, masking and consuming remove the codec
        // from the SDP exactly as stripping does.
        strip: list(&["strip", "mask", "consume"]),
        except: list(&["except"]),
        offer: list(&["offer"]),
    };
    if ops.len() > MAX_CODEC_NAMES {
        return Err(TOO_MANY_CODECS);
    }
    Ok(ops)
}

/// `sdp-attr` and the `sdp-attr-…-` flag families.
fn attr_ops(req: &Request) -> Result<AttrOps, NgError> {
    let mut ops = AttrOps::default();
    if let Some(v) = req.get("sdp-attr") {
        let Value::Dict(scopes) = v else {
            return Err(WRONG_TYPE);
        };
        for (scope, cmds) in scopes {
            let scope = String::from_utf8_lossy(scope);
            let Value::Dict(cmds) = cmds else {
                return Err(WRONG_TYPE);
            };
            for (cmd, values) in cmds {
                let cmd = AttrCommand::parse(&String::from_utf8_lossy(cmd))?;
                let Value::List(values) = values else {
                    return Err(WRONG_TYPE);
                };
                for v in values {
                    match (cmd, v) {
                        (AttrCommand::Substitute, Value::List(pair)) => {
                            let pair: Vec<&str> = pair.iter().filter_map(Value::as_str).collect();
                            let [from, to, ..] = pair[..] else {
                                return Err(AttrOpError::Substitute(pair.join(" ")).into());
                            };
                            ops.push(&scope, cmd, from, Some(to))?;
                        }
                        (AttrCommand::Substitute, v) => {
                            let s = v.as_str().ok_or(WRONG_TYPE)?;
                            ops.push_flag(cmd, &format!("{scope}-{s}"))?;
                        }
                        (_, v) => ops.push(&scope, cmd, v.as_str().ok_or(WRONG_TYPE)?, None)?,
                    }
                }
            }
        }
    }
    for cmd in [
        AttrCommand::Add,
        AttrCommand::Remove,
        AttrCommand::Substitute,
    ] {
        let prefix = format!("sdp-attr-{cmd}-");
        for rest in req.prefixed(&prefix) {
            ops.push_flag(cmd, rest)?;
        }
    }
    Ok(ops)
}

/// The values of list key `key` and of its flag family `<key>-<value>`
/// (`SDES: [off]` and `SDES-off`), canonical.
pub(super) fn list_and_flags(req: &Request, key: &str) -> Vec<String> {
    let prefix = format!("{key}-");
    let mut words = req.words(key);
    words.extend(
        req.flags
            .iter()
            .filter_map(|f| f.strip_prefix(prefix.as_str()))
            .map(str::to_owned),
    );
    words
}

/// The suites of an `SDES-order:`/`SDES-offerer_pref:` list (`;` or `,`
/// between them); unknown names are left out (and reported by
/// `ng::support`).
pub(crate) fn suite_list(list: &str) -> Vec<Suite> {
    Suite::list(list).flatten().collect()
}

/// The `SDES` list and the `SDES-…` flags (and the legacy `pad crypto`).
/// Values this daemon does not act on (`prefer`, unknown suites) are
/// reported by `ng::support`; the session-parameter switches take effect
/// in offers as upstream's do (clearing ones in answers too), `static` in
/// answers, `off` in offers.
pub(super) fn sdes_options(req: &Request, side: Side) -> SdesOptions {
    let words = list_and_flags(req, "sdes");
    let mut o = SdesOptions::default();
    o.write.pad = req.flag("pad-crypto");
    let offer = side == Side::Offer;
    for w in &words {
        match w.as_str() {
            "off" | "no" | "disable" | "disabled" => o.off = offer,
            "nonew" => o.nonew = true,
            "prefer" | "priority" => o.prefer = offer,
            "pad" => o.write.pad = true,
            "lifetime" => o.write.lifetime = true,
            "static" => o.static_keys = side == Side::Answer,
            "unencrypted-srtp" => o.params.unencrypted_srtp = Some(true),
            "unencrypted-srtcp" => o.params.unencrypted_srtcp = Some(true),
            "unauthenticated-srtp" => o.params.unauthenticated_srtp = Some(true),
            "encrypted-srtp" => o.params.unencrypted_srtp = Some(false),
            "encrypted-srtcp" => o.params.unencrypted_srtcp = Some(false),
            "authenticated-srtp" => o.params.unauthenticated_srtp = Some(false),
            other => {
                if let Some(s) = other.strip_prefix("no-").and_then(Suite::from_flag) {
                    o.no.insert(s);
                } else if let Some(s) = other.strip_prefix("only-").and_then(Suite::from_flag) {
                    o.only.insert(s);
                } else if let Some(l) = other.strip_prefix("order:") {
                    o.order = suite_list(l);
                } else if let Some(l) = other.strip_prefix("offerer-pref:") {
                    o.offerer_pref = suite_list(l);
                }
            }
        }
    }
    o
}
