//! What the agent asks the model: the prompts and the JSON schema of the answer.

use serde_json::{json, Value};

/// The five factor scores every qualification carries (the BANT scorer's factors).
pub const FACTORS: [&str; 5] = ["budget", "authority", "fit", "timeline", "complexity"];

pub const SYSTEM_PROMPT: &str = "You are a B2B sales-qualification analyst. Judge the lead \
with BANT (budget, authority, need/fit, timeline) plus deal complexity. Answer only with a \
JSON object matching the given schema: score 0-100, priority (immediate >= 85, high >= 65, \
medium >= 40, low below), one concrete recommended action, short reasoning naming the \
evidence, confidence 0-1 (lower when fields are missing), and each factor 0-100.";

/// Prefix of the attributes Strata writes back to the CRM (`strata_score`, …).
pub const WRITE_BACK_PREFIX: &str = "strata_";

/// Top-level fields holding an earlier qualification, which the model must not see.
const EARLIER_SCORE_FIELDS: [&str; 6] = [
    "score",
    "scores",
    "latest_score",
    "last_score",
    "lead_score",
    "qualification",
];

/// The lead as the model gets it: without Strata's own write-back (any key starting with
/// [`WRITE_BACK_PREFIX`], at any depth, e.g. `attributes.strata_action`), without earlier
/// scores ([`EARLIER_SCORE_FIELDS`]) and without empty fields (`null`, `""`, `{}`), so
/// the model judges the lead, not the last answer about it.
pub fn clean_lead_for_prompt(lead: &Value) -> Value {
    fn clean(v: &Value, top: bool) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            Value::Object(m) => {
                let kept: serde_json::Map<String, Value> = m
                    .iter()
                    .filter(|(k, _)| {
                        !k.to_ascii_lowercase().starts_with(WRITE_BACK_PREFIX)
                            && !(top && EARLIER_SCORE_FIELDS.contains(&k.as_str()))
                    })
                    .filter_map(|(k, v)| clean(v, false).map(|v| (k.clone(), v)))
                    .collect();
                (top || !kept.is_empty()).then_some(Value::Object(kept))
            }
            Value::Array(items) => Some(Value::Array(
                items.iter().filter_map(|i| clean(i, false)).collect(),
            )),
            other => Some(other.clone()),
        }
    }
    clean(lead, true).unwrap_or(Value::Null)
}

/// The user message: the lead as JSON, cleaned ([`clean_lead_for_prompt`]).
pub fn user_prompt(lead: &Value) -> String {
    format!("Qualify this lead:\n{}", clean_lead_for_prompt(lead))
}

/// The follow-up message after an answer the agent rejected: what was wrong and how to
/// answer instead.
pub fn correction_prompt(problem: &str) -> String {
    format!(
        "Your answer was rejected: {problem}. Answer again with one JSON object matching the \
schema. The priority must match the score (immediate >= 85, high >= 65, medium >= 40, low \
below); recommended_action must be a concrete next step for a salesperson and reasoning must \
name the evidence, both in your own words, not copied from the lead and not a bare yes/no."
    )
}

/// JSON Schema of the model's answer.
pub fn qualification_schema() -> Value {
    let factor = json!({ "type": "number", "minimum": 0, "maximum": 100 });
    json!({
        "type": "object",
        "properties": {
            "score": { "type": "number", "minimum": 0, "maximum": 100 },
            "priority": { "type": "string", "enum": ["immediate", "high", "medium", "low"] },
            "recommended_action": { "type": "string", "minLength": 1 },
            "reasoning": { "type": "string", "minLength": 1 },
            "confidence": { "type": "number", "minimum": 0, "maximum": 1 },
            "factors": {
                "type": "object",
                "properties": {
                    "budget": factor, "authority": factor, "fit": factor,
                    "timeline": factor, "complexity": factor
                },
                "required": FACTORS,
                "additionalProperties": false
            }
        },
        "required": ["score", "priority", "recommended_action", "reasoning", "confidence", "factors"],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_leaves_out_strata_write_back_and_earlier_scores() {
        let lead = json!({
            "id": "demo-012", "name": "Dana Lee", "company": "Acme", "industry": "Manufacturing",
            "employees": 1200, "budget": 50000, "notes": null, "email": "",
            "score": 39, "latest_score": {"value": 39, "priority": "low"},
            "strata_score": "39.0",
            "attributes": {
                "strata_score": "39.0", "strata_priority": "low",
                "strata_action": "Keep in marketing automation", "strata_strategy": "Bant@1.0.0",
                "STRATA_note": "x", "region": "EMEA"
            }
        });
        let clean = clean_lead_for_prompt(&lead);
        assert_eq!(
            clean,
            json!({
                "id": "demo-012", "name": "Dana Lee", "company": "Acme",
                "industry": "Manufacturing", "employees": 1200, "budget": 50000,
                "attributes": {"region": "EMEA"}
            })
        );
        let prompt = user_prompt(&lead);
        for gone in ["Bant@1.0.0", "strata_", "marketing automation", "39"] {
            assert!(!prompt.contains(gone), "{gone} in {prompt}");
        }
        assert!(prompt.contains("Manufacturing"));
        // Only Strata's write-back in the attributes: they go entirely.
        let only = json!({"id": "L", "attributes": {"strata_action": "Call"}});
        assert_eq!(clean_lead_for_prompt(&only), json!({"id": "L"}));
        // Not an object: unchanged.
        assert_eq!(clean_lead_for_prompt(&json!([1, null])), json!([1]));
    }

    #[test]
    fn the_correction_names_the_problem() {
        let m = correction_prompt("priority \"immediate\" contradicts score 2.7");
        assert!(m.contains("contradicts score 2.7") && m.contains("immediate >= 85"));
    }
}
