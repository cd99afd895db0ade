//! `enrichment` (sales): `lead.accepted` → `lead.enriched`.
//!
//! Looks the lead's company up through the CRM's MCP tool `get_company` (facts computed
//! from the CRM's stored leads) and fills the lead's missing `employees`, `industry` and
//! `annual_revenue` from them; values the lead has are never overwritten. `sources` says
//! where each of those fields came from. When the lookup fails the lead goes on
//! un-enriched (`enriched: false`, `error`): enrichment is a nice-to-have.

use serde_json::{json, Map, Value};
use strata_sdk::layer::{self, crm_call, outcome};
use strata_sdk::{export_layer, log, Layer, LayerOutcome, PluginError, RunContext};

struct Enrichment;

/// The fields enrichment may fill.
pub const FIELDS: [&str; 3] = ["employees", "industry", "annual_revenue"];

/// What enrichment did to a lead.
#[derive(Debug, Clone, PartialEq)]
pub struct Enriched {
    pub lead: Map<String, Value>,
    pub filled: Vec<&'static str>,
    /// field → "lead" | "company", for the fields that have a value.
    pub sources: Map<String, Value>,
}

fn present(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}

/// The company's value for `field`: `employees` and `annual_revenue` as given, `industry`
/// the first non-empty of `industries`.
fn fact(facts: &Value, field: &str) -> Option<Value> {
    let v = match field {
        "industry" => facts
            .get("industries")?
            .as_array()?
            .iter()
            .find(|i| present(Some(i)))?
            .clone(),
        "employees" => json!(facts.get(field)?.as_f64().filter(|n| *n >= 0.0)?.round() as u64),
        _ => json!(facts.get(field)?.as_f64().filter(|n| *n >= 0.0)?),
    };
    present(Some(&v)).then_some(v)
}

/// Fills the lead's missing fields from the company facts (pure).
pub fn enrich(lead: &Map<String, Value>, facts: Option<&Value>) -> Enriched {
    let mut out = lead.clone();
    let mut filled = Vec::new();
    let mut sources = Map::new();
    for field in FIELDS {
        if present(lead.get(field)) {
            sources.insert(field.into(), json!("lead"));
        } else if let Some(v) = facts.and_then(|f| fact(f, field)) {
            out.insert(field.into(), v);
            filled.push(field);
            sources.insert(field.into(), json!("company"));
        }
    }
    Enriched {
        lead: out,
        filled,
        sources,
    }
}

impl Layer for Enrichment {
    fn run_layer(ctx: RunContext) -> Result<LayerOutcome, PluginError> {
        let p = layer::parse_payload(&ctx.topic, &ctx.payload)?;
        let lead_id = layer::str_field(&Value::Object(p.clone()), "lead_id")
            .ok_or_else(|| layer::invalid("lead_id is missing"))?;
        let lead = p
            .get("lead")
            .and_then(Value::as_object)
            .ok_or_else(|| layer::invalid("lead is missing or not an object"))?;
        let company = layer::str_field(&Value::Object(lead.clone()), "company");

        let (facts, error) = match &company {
            None => (None, None),
            Some(c) => match crm_call("get_company", &json!({ "company": c })) {
                Ok(f) if f.is_object() => (Some(f), None),
                Ok(other) => (
                    None,
                    Some(format!("get_company returned {}", layer::json_kind(&other))),
                ),
                Err(e) => (None, Some(e.to_string())),
            },
        };
        if let Some(e) = &error {
            log::warn(&format!("lead {lead_id}: enrichment skipped: {e}"));
        }
        let e = enrich(lead, facts.as_ref());
        let enriched = facts.is_some();
        let mut event = json!({
            "lead_id": lead_id,
            "lead": e.lead,
            "company": facts,
            "enriched": enriched,
            "filled": e.filled,
            "sources": e.sources,
            "error": error,
        });
        if let Some(now) = p.get("now_ms").filter(|v| v.is_i64()) {
            event["now_ms"] = now.clone();
        }
        Ok(outcome(
            json!({"lead_id": lead_id, "enriched": enriched, "filled": e.filled, "error": error}),
            vec![("lead.enriched".into(), event)],
        ))
    }
}

export_layer!(Enrichment);

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn fills_only_missing_fields() {
        let lead = obj(json!({"id": "l1", "company": "Acme", "employees": 40, "industry": null}));
        let facts = json!({"company": "Acme", "lead_count": 3, "industries": ["", "Software", "Retail"],
                           "employees": 250, "annual_revenue": 1.5e7, "qualified_count": 1});
        let e = enrich(&lead, Some(&facts));
        assert_eq!(
            e.lead["employees"], 40,
            "a given value is never overwritten"
        );
        assert_eq!(e.lead["industry"], "Software");
        assert_eq!(e.lead["annual_revenue"], 1.5e7);
        assert_eq!(e.filled, vec!["industry", "annual_revenue"]);
        assert_eq!(
            Value::Object(e.sources),
            json!({"employees": "lead", "industry": "company", "annual_revenue": "company"})
        );
    }

    #[test]
    fn unknown_company_or_no_facts_changes_nothing() {
        let lead = obj(json!({"id": "l1", "company": "Nobody", "budget": 5}));
        let facts = json!({"company": "Nobody", "lead_count": 0, "industries": [],
                           "employees": null, "annual_revenue": null, "qualified_count": 0});
        let e = enrich(&lead, Some(&facts));
        assert_eq!(e.lead, lead);
        assert!(e.filled.is_empty() && e.sources.is_empty());
        let e = enrich(&lead, None);
        assert_eq!(e.lead, lead);
        let blank = obj(json!({"id": "l1", "industry": "  "}));
        let e = enrich(&blank, Some(&json!({"industries": ["Retail"]})));
        assert_eq!(
            e.lead["industry"], "Retail",
            "a blank value counts as missing"
        );
    }

    #[test]
    fn schemas_match_producer_and_consumer() {
        assert_eq!(
            include_str!("../schemas/lead-accepted.json"),
            include_str!("../../intake/schemas/lead-accepted.json")
        );
        assert_eq!(
            include_str!("../schemas/lead-enriched.json"),
            include_str!("../../qualification/schemas/lead-enriched.json")
        );
    }
}
