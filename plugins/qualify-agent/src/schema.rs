//! What the agent asks the model: the prompts and the JSON schema of the answer.

use serde_json::{json, Value};

/// The five factor scores every qualification carries (the BANT scorer's factors).
pub const FACTORS: [&str; 5] = ["budget", "authority", "fit", "timeline", "complexity"];

pub const SYSTEM_PROMPT: &str = "You are a B2B sales-qualification analyst. Judge the lead \
with BANT (budget, authority, need/fit, timeline) plus deal complexity. Answer only with a \
JSON object matching the given schema: score 0-100, priority (immediate >= 85, high >= 65, \
medium >= 40, low below), one concrete recommended action, short reasoning naming the \
evidence, confidence 0-1 (lower when fields are missing), and each factor 0-100.";

/// The user message: the lead as JSON.
pub fn user_prompt(lead: &Value) -> String {
    format!("Qualify this lead:\n{lead}")
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
