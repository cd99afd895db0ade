//! `intake` (sales): `lead.received` → `lead.accepted` | `lead.rejected`.
//!
//! Normalises the raw lead ([`normalize`]), validates it, derives a stable id (so the same
//! person always maps to the same lead: de-duplication), upserts it through the CRM's MCP
//! tool `upsert_lead` and emits the normalised lead. A lead that fails validation is a
//! business outcome (`lead.rejected`), not an error. In a dry run the upsert is held back
//! by the host, so whether the lead was a duplicate is unknown: `duplicate` is `null`.

pub mod normalize;

use normalize::{NormalLead, Verdict};
use serde_json::{json, Map, Value};
use strata_sdk::layer::{self, crm_call, is_held_back, outcome};
use strata_sdk::{export_layer, log, Layer, LayerOutcome, PluginError, RunContext};

struct Intake;

impl Layer for Intake {
    fn run_layer(ctx: RunContext) -> Result<LayerOutcome, PluginError> {
        let raw = layer::parse_payload(&ctx.topic, &ctx.payload)?;
        match normalize::normalize(&raw) {
            Verdict::Rejected { reasons } => Ok(rejected(&raw, reasons)),
            Verdict::Accepted { lead, changes } => accept(&raw, lead, changes),
        }
    }
}

export_layer!(Intake);

fn rejected(raw: &Map<String, Value>, reasons: Vec<String>) -> LayerOutcome {
    log::info(&format!("lead rejected: {}", reasons.join("; ")));
    outcome(
        json!({"accepted": false, "lead_id": null, "duplicate": null, "crm": "skipped",
               "changes": [], "reasons": reasons}),
        vec![(
            "lead.rejected".into(),
            json!({"reasons": reasons, "raw": Value::Object(raw.clone())}),
        )],
    )
}

/// Arguments of `upsert_lead`: the id and every known field.
pub fn upsert_args(lead: &NormalLead) -> Value {
    let mut v = serde_json::to_value(lead).unwrap_or_else(|_| json!({"id": lead.id}));
    if let Value::Object(m) = &mut v {
        m.retain(|_, val| !val.is_null());
    }
    v
}

/// The `lead` of `lead.accepted`: the normalised fields, plus `attributes.country`.
pub fn event_lead(lead: &NormalLead) -> Value {
    let mut v = serde_json::to_value(lead).unwrap_or_else(|_| json!({"id": lead.id}));
    if let (Value::Object(m), Some(c)) = (&mut v, &lead.country) {
        m.insert("attributes".into(), json!({ "country": c }));
    }
    v
}

fn accept(
    raw: &Map<String, Value>,
    lead: NormalLead,
    changes: Vec<String>,
) -> Result<LayerOutcome, PluginError> {
    let result = crm_call("upsert_lead", &upsert_args(&lead))
        .map_err(|e| e.into_plugin_error("upsert_lead"))?;
    let (crm, duplicate) = if is_held_back(&result) {
        ("held_back", Value::Null)
    } else {
        match result.get("created").and_then(Value::as_bool) {
            Some(true) => ("created", json!(false)),
            Some(false) => ("updated", json!(true)),
            None => {
                return Err(layer::failed(format!(
                    "MCP crm/upsert_lead answered without `created`: {result}"
                )))
            }
        }
    };
    if let Some(country) = &lead.country {
        // upsert_lead has no attributes; the country goes in as a custom attribute.
        let args = json!({"id": lead.id, "attributes": {"country": country}});
        if let Err(e) = crm_call("update_lead", &args) {
            log::warn(&format!("could not store the country of {}: {e}", lead.id));
        }
    }
    let mut event = json!({
        "lead_id": lead.id,
        "lead": event_lead(&lead),
        "duplicate": duplicate,
        "changes": changes,
    });
    if let Some(now) = raw.get("now_ms").filter(|v| v.is_i64()) {
        event["now_ms"] = now.clone();
    }
    Ok(outcome(
        json!({"accepted": true, "lead_id": lead.id, "duplicate": duplicate, "crm": crm,
               "changes": changes, "reasons": []}),
        vec![("lead.accepted".into(), event)],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_args_skip_unknown_fields_and_country() {
        let lead = NormalLead {
            id: "lead-1".into(),
            email: Some("a@b.com".into()),
            employees: Some(5),
            country: Some("DE".into()),
            ..NormalLead::default()
        };
        assert_eq!(
            upsert_args(&lead),
            json!({"id": "lead-1", "email": "a@b.com", "employees": 5})
        );
        let ev = event_lead(&lead);
        assert_eq!(ev["attributes"]["country"], "DE");
        assert_eq!(ev["name"], Value::Null);
    }

    #[test]
    fn schemas_match_the_consumers() {
        assert_eq!(
            include_str!("../schemas/lead-accepted.json"),
            include_str!("../../enrichment/schemas/lead-accepted.json")
        );
    }
}
