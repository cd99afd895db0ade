//! `qualification` (sales): `lead.enriched` → `lead.qualified`.
//!
//! Scores the lead with the granted rule-based scorer (`scoring.score-lead("bant")`), writes
//! the outcome back through the CRM's MCP tool `update_lead` (status `qualified` for
//! immediate/high priority, `nurture` otherwise; attributes `strata_score`,
//! `strata_priority`) and emits the scored lead. A failed write-back is reported in the
//! output, not fatal: the score stands.

use serde_json::{json, Map, Value};
use strata_sdk::layer::{self, crm_call, is_held_back, outcome, priority_name};
use strata_sdk::{
    export_layer, log, scoring, Layer, LayerOutcome, PluginError, Priority, RunContext, Score,
};

/// The scorer this layer asks for.
pub const STRATEGY: &str = "bant";

struct Qualification;

/// CRM status for a priority.
pub fn status_for(p: Priority) -> &'static str {
    match p {
        Priority::Immediate | Priority::High => "qualified",
        Priority::Medium | Priority::Low => "nurture",
    }
}

/// The `score` object of `lead.qualified`.
pub fn score_json(s: &Score) -> Value {
    let factors: Map<String, Value> = s
        .factors
        .iter()
        .map(|f| (f.name.clone(), json!(f.score)))
        .collect();
    json!({
        "value": s.value,
        "priority": priority_name(s.priority),
        "recommended_action": s.recommended_action,
        "reasoning": s.reasoning,
        "confidence": s.confidence,
        "factors": factors,
    })
}

/// The attributes written back to the CRM.
pub fn score_attributes(s: &Score) -> Value {
    json!({
        "strata_score": format!("{:.1}", s.value),
        "strata_priority": priority_name(s.priority),
    })
}

/// The lead with its new status and the score attributes merged in.
pub fn qualified_lead(lead: &Map<String, Value>, lead_id: &str, s: &Score) -> Value {
    let mut out = lead.clone();
    out.entry("id").or_insert_with(|| json!(lead_id));
    out.insert("status".into(), json!(status_for(s.priority)));
    let mut attrs = out
        .get("attributes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Value::Object(new) = score_attributes(s) {
        attrs.extend(new);
    }
    out.insert("attributes".into(), Value::Object(attrs));
    Value::Object(out)
}

impl Layer for Qualification {
    fn run_layer(ctx: RunContext) -> Result<LayerOutcome, PluginError> {
        let p = layer::parse_payload(&ctx.topic, &ctx.payload)?;
        let lead_id = layer::str_field(&Value::Object(p.clone()), "lead_id")
            .ok_or_else(|| layer::invalid("lead_id is missing"))?;
        let lead = p
            .get("lead")
            .and_then(Value::as_object)
            .ok_or_else(|| layer::invalid("lead is missing or not an object"))?;
        let mut typed = layer::lead_from_json(&lead_id, &Value::Object(lead.clone()));
        typed.id = lead_id.clone();

        let scored = scoring::score_lead(STRATEGY, &typed).map_err(|e| {
            layer::failed(format!(
                "scorer {STRATEGY:?} failed: {}",
                layer::capability_error_text(&e)
            ))
        })?;
        let s = &scored.score;
        let status = status_for(s.priority);

        let args = json!({"id": lead_id, "status": status, "attributes": score_attributes(s)});
        let (crm, crm_error) = match crm_call("update_lead", &args) {
            Ok(r) if is_held_back(&r) => ("held_back", None),
            Ok(_) => ("updated", None),
            Err(e) => {
                log::warn(&format!("lead {lead_id}: write-back failed: {e}"));
                ("failed", Some(e.to_string()))
            }
        };

        let mut event = json!({
            "lead_id": lead_id,
            "lead": qualified_lead(lead, &lead_id, s),
            "score": score_json(s),
            "strategy": scored.strategy,
        });
        if let Some(now) = p.get("now_ms").filter(|v| v.is_i64()) {
            event["now_ms"] = now.clone();
        }
        Ok(outcome(
            json!({"lead_id": lead_id, "strategy": scored.strategy, "value": s.value,
                   "priority": priority_name(s.priority), "status": status, "crm": crm,
                   "crm_error": crm_error}),
            vec![("lead.qualified".into(), event)],
        ))
    }
}

export_layer!(Qualification);

#[cfg(test)]
mod tests {
    use super::*;
    use strata_sdk::Factor;

    fn score(p: Priority) -> Score {
        Score {
            value: 81.25,
            priority: p,
            recommended_action: "call".into(),
            reasoning: "r".into(),
            confidence: 0.8,
            factors: vec![Factor {
                name: "budget".into(),
                score: 90.0,
            }],
        }
    }

    #[test]
    fn status_by_priority() {
        assert_eq!(status_for(Priority::Immediate), "qualified");
        assert_eq!(status_for(Priority::High), "qualified");
        assert_eq!(status_for(Priority::Medium), "nurture");
        assert_eq!(status_for(Priority::Low), "nurture");
    }

    #[test]
    fn score_and_lead_json() {
        let s = score(Priority::High);
        assert_eq!(
            score_json(&s),
            json!({"value": 81.25, "priority": "high", "recommended_action": "call",
                   "reasoning": "r", "confidence": 0.8, "factors": {"budget": 90.0}})
        );
        let lead = json!({"company": "Acme", "attributes": {"country": "DE"}});
        let q = qualified_lead(lead.as_object().unwrap(), "l1", &s);
        assert_eq!(q["id"], "l1");
        assert_eq!(q["status"], "qualified");
        assert_eq!(
            q["attributes"],
            json!({"country": "DE", "strata_score": "81.2", "strata_priority": "high"})
        );
    }

    #[test]
    fn schemas_match_producer_and_consumer() {
        assert_eq!(
            include_str!("../schemas/lead-enriched.json"),
            include_str!("../../enrichment/schemas/lead-enriched.json")
        );
        assert_eq!(
            include_str!("../schemas/lead-qualified.json"),
            include_str!("../../booking/schemas/lead-qualified.json")
        );
    }
}
