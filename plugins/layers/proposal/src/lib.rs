//! `proposal` (operations): `meeting.booked` → `proposal.drafted`.
//!
//! Prices a quote from the lead ([`pricebook`]: licence seats by company size, onboarding
//! package by size, support tier by priority) and asks the LLM for a short cover text.
//! When the LLM is not granted, not configured or fails in any way, a deterministic
//! template is used and `fallback_used` is true. A webhook booking carries no lead: it is
//! read from the CRM through the MCP tool `get_lead`.

pub mod pricebook;

use serde_json::{json, Value};
use strata_sdk::layer::{self, crm_call, outcome, stable_id};
use strata_sdk::{export_layer, llm, log, Layer, LayerOutcome, PluginError, RunContext};

struct Proposal;

/// Most tokens the cover text may take.
pub const MAX_TOKENS: u32 = 300;

/// The proposal id: one proposal per lead and booking.
pub fn proposal_id(lead_id: &str, booking_id: Option<&str>) -> String {
    stable_id("prop-", &format!("{lead_id}|{}", booking_id.unwrap_or("")))
}

/// The lead's priority: the payload's, else the CRM attribute `strata_priority`.
pub fn priority(payload: &Value, lead: &Value) -> Option<String> {
    payload
        .get("priority")
        .and_then(Value::as_str)
        .or_else(|| lead.get("attributes")?.get("strata_priority")?.as_str())
        .and_then(layer::priority_of)
        .map(|p| layer::priority_name(p).to_string())
}

fn cover_text(lead: &Value, items: &[pricebook::Item], subtotal: f64) -> Result<String, String> {
    let request = llm::CompletionRequest {
        model: None,
        system: Some(pricebook::SYSTEM_PROMPT.to_string()),
        messages: vec![llm::Message {
            role: llm::Role::User,
            content: pricebook::user_prompt(lead, items, subtotal),
        }],
        max_tokens: MAX_TOKENS,
        json_schema: None,
    };
    let c = llm::complete(&request).map_err(|e| layer::llm_error_text(&e))?;
    let text = c.text.trim();
    if text.is_empty() {
        return Err("the model returned an empty text".into());
    }
    Ok(text.to_string())
}

impl Layer for Proposal {
    fn run_layer(ctx: RunContext) -> Result<LayerOutcome, PluginError> {
        let p = Value::Object(layer::parse_payload(&ctx.topic, &ctx.payload)?);
        let lead_id =
            layer::str_field(&p, "lead_id").ok_or_else(|| layer::invalid("lead_id is missing"))?;
        let booking_id = layer::str_field(&p, "booking_id");
        let (lead, lead_from) = match p.get("lead").filter(|l| l.is_object()) {
            Some(l) => (l.clone(), "payload"),
            None => {
                let r = crm_call("get_lead", &json!({ "id": lead_id }))
                    .map_err(|e| e.into_plugin_error("get_lead"))?;
                let l = layer::unwrap_lead(&r).cloned().ok_or_else(|| {
                    layer::failed(format!("MCP crm/get_lead returned no lead for {lead_id:?}"))
                })?;
                (l, "crm")
            }
        };
        let typed = layer::lead_from_json(&lead_id, &lead);
        let prio = priority(&p, &lead);
        let items = pricebook::quote(typed.employees, prio.as_deref());
        let subtotal = pricebook::subtotal(&items);
        let (text, llm_error) = match cover_text(&lead, &items, subtotal) {
            Ok(t) => (t, None),
            Err(e) => {
                log::info(&format!("cover text from the template: {e}"));
                (pricebook::template_text(&lead, &items, subtotal), Some(e))
            }
        };
        let fallback_used = llm_error.is_some();
        let id = proposal_id(&lead_id, booking_id.as_deref());
        let mut event = json!({
            "proposal_id": id, "lead_id": lead_id, "booking_id": booking_id,
            "items": items, "subtotal": subtotal, "currency": "USD",
            "text": text, "fallback_used": fallback_used, "lead": lead, "priority": prio,
        });
        if let Some(now) = p.get("now_ms").filter(|v| v.is_i64()) {
            event["now_ms"] = now.clone();
        }
        Ok(outcome(
            json!({"proposal_id": id, "lead_id": lead_id, "subtotal": subtotal,
                   "items": items.len(), "fallback_used": fallback_used,
                   "llm_error": llm_error, "lead_from": lead_from}),
            vec![("proposal.drafted".into(), event)],
        ))
    }
}

export_layer!(Proposal);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_priority() {
        assert_eq!(proposal_id("l1", Some("b1")), proposal_id("l1", Some("b1")));
        assert_ne!(proposal_id("l1", Some("b1")), proposal_id("l1", Some("b2")));
        let lead = json!({"attributes": {"strata_priority": "high"}});
        assert_eq!(priority(&json!({}), &lead).as_deref(), Some("high"));
        assert_eq!(
            priority(&json!({"priority": "immediate"}), &lead).as_deref(),
            Some("immediate")
        );
        assert_eq!(priority(&json!({"priority": null}), &json!({})), None);
    }

    #[test]
    fn schemas_match_producers_and_consumers() {
        assert_eq!(
            include_str!("../schemas/meeting-booked.json"),
            include_str!("../../booking/schemas/meeting-booked.json")
        );
        let drafted = include_str!("../schemas/proposal-drafted.json");
        assert_eq!(
            drafted,
            include_str!("../../pricing/schemas/proposal-drafted.json")
        );
        assert_eq!(
            drafted,
            include_str!("../../forecast/schemas/proposal-drafted.json")
        );
    }
}
