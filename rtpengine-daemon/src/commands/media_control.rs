//! `block media`, `unblock media`, `block DTMF`, `unblock DTMF`,
//! `silence media`, `unsilence media`: the request's selectors become a
//! [`ControlRequest`] for the call model (see `call::controls` for what
//! they select).

use super::error::{BAD_ADDRESS, NO_CALL_ID};
use crate::call::controls::{Control, ControlRequest, Flows, Selector};
use crate::call::Calls;
use crate::ng::frame::NgError;
use crate::ng::request::Request;
use crate::ng::value::Dict;

/// Runs one of the six commands.
pub(super) fn run(calls: &Calls, req: &Request, which: Control, on: bool) -> Result<Dict, NgError> {
    let call_id = req.nonempty("call-id").ok_or(NO_CALL_ID)?;
    // `all` as a flag or as `all=all`; `all=` with a flow keyword selects flows.
    let all_key = req.str("all").map(str::to_ascii_lowercase);
    let all = req.flag("all") || all_key.as_deref() == Some("all");
    // The block commands take a from-tag only with `directional`; silencing
    // takes it as given (upstream's IS_OP_DIRECTIONAL).
    let from_tag_counts = which == Control::SilenceMedia || req.flag("directional");
    let party = if all {
        None
    } else if let Some(l) = req.nonempty("label") {
        Some(Selector::Label(l))
    } else if let Some(a) = req.nonempty("address") {
        Some(Selector::Address(a.parse().map_err(|_| BAD_ADDRESS)?))
    } else {
        req.nonempty("from-tag")
            .filter(|_| from_tag_counts)
            .map(Selector::Tag)
    };
    // Flows matter to media blocking and silencing only (DTMF blocking is
    // per party upstream).
    let flows = match (which, req.nonempty("to-tag"), req.nonempty("to-label")) {
        (Control::BlockDtmf, ..) => Flows::Party,
        (_, Some(t), _) => Flows::To(Selector::Tag(t)),
        (_, None, Some(l)) => Flows::To(Selector::Label(l)),
        _ => match all_key.as_deref() {
            Some("offer-answer") | Some("flows") => Flows::All,
            Some("except-offer-answer") => Flows::NotOfferAnswer,
            _ => Flows::Party,
        },
    };
    calls.control(&ControlRequest {
        call_id,
        which,
        on,
        party,
        flows,
        all,
        set_label: req.nonempty("set-label"),
    })?;
    Ok(Dict::new())
}
