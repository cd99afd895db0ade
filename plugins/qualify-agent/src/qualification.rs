//! The agent's task, its outcome, and the checks an LLM answer must pass.

use crate::schema::FACTORS;
use serde_json::{json, Value};
use strata_sdk::llm::LlmError;
use strata_sdk::scoring::Scored;
use strata_sdk::{CapabilityError, Factor, Priority, Score};

/// The task the host sends: the lead as the host read it from the CRM (without Strata's
/// own write-back fields), the model and the fallback scorer.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub lead_id: String,
    /// The lead, shaped like Strata's lead.
    pub lead: Value,
    /// Model alias; none = the first granted alias.
    pub model: Option<String>,
    pub fallback_strategy: String,
}

impl Task {
    pub fn parse(input: &str) -> Result<Task, String> {
        let v: Value = serde_json::from_str(input).map_err(|e| format!("task is not JSON: {e}"))?;
        let s = |k: &str, default: Option<&str>| -> Result<String, String> {
            match v.get(k) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::Null) | None => default
                    .map(str::to_string)
                    .ok_or_else(|| format!("task needs a string `{k}`")),
                Some(other) => Err(format!("task field `{k}` must be a string, got {other}")),
            }
        };
        Ok(Task {
            lead_id: s("lead_id", None)?,
            lead: match v.get("lead") {
                Some(l @ Value::Object(_)) => l.clone(),
                _ => return Err("task needs the lead as an object `lead`".into()),
            },
            model: v.get("model").and_then(Value::as_str).map(str::to_string),
            fallback_strategy: s("fallback_strategy", Some("bant"))?,
        })
    }
}

/// What one run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub lead_id: String,
    pub score: Score,
    /// `llm` or the fallback scorer's `plugin@version`.
    pub strategy: String,
    pub fallback_used: bool,
    pub fallback_reason: Option<String>,
    pub model: Option<String>,
    pub tokens_in: u32,
    pub tokens_out: u32,
    pub cost_usd: f64,
}

pub fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::Immediate => "immediate",
        Priority::High => "high",
        Priority::Medium => "medium",
        Priority::Low => "low",
    }
}

fn priority_of(name: &str) -> Option<Priority> {
    match name {
        "immediate" => Some(Priority::Immediate),
        "high" => Some(Priority::High),
        "medium" => Some(Priority::Medium),
        "low" => Some(Priority::Low),
        _ => None,
    }
}

fn in_range(v: &Value, key: &str, lo: f64, hi: f64) -> Result<f64, String> {
    let n = v
        .get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("answer has no number `{key}`"))?;
    if !(lo..=hi).contains(&n) {
        return Err(format!("answer `{key}` = {n} is outside {lo}..={hi}"));
    }
    Ok(n)
}

impl Outcome {
    /// Checks the model's answer (the host validated it against the schema already; this
    /// re-checks what the agent relies on, so a lax provider cannot slip a bad score in).
    pub fn from_llm(lead_id: &str, v: &Value) -> Result<Outcome, String> {
        let value = in_range(v, "score", 0.0, 100.0)?;
        let confidence = in_range(v, "confidence", 0.0, 1.0)?;
        let priority = v
            .get("priority")
            .and_then(Value::as_str)
            .and_then(priority_of)
            .ok_or("answer has no valid `priority`")?;
        let text = |k: &str| -> Result<String, String> {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("answer has no `{k}`"))
        };
        let factors_v = v.get("factors").ok_or("answer has no `factors`")?;
        let mut factors = Vec::new();
        for name in FACTORS {
            factors.push(Factor {
                name: name.to_string(),
                score: in_range(factors_v, name, 0.0, 100.0)?,
            });
        }
        Ok(Outcome {
            lead_id: lead_id.to_string(),
            score: Score {
                value,
                priority,
                recommended_action: text("recommended_action")?,
                reasoning: text("reasoning")?,
                confidence,
                factors,
            },
            strategy: "llm".into(),
            fallback_used: false,
            fallback_reason: None,
            model: None,
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
        })
    }

    pub fn from_fallback(lead_id: &str, scored: Scored, reason: String) -> Outcome {
        let mut score = scored.score;
        score.reasoning = format!(
            "Rule-based fallback ({}) because the LLM qualification failed: {reason}. {}",
            scored.strategy, score.reasoning
        );
        Outcome {
            lead_id: lead_id.to_string(),
            score,
            strategy: scored.strategy,
            fallback_used: true,
            fallback_reason: Some(reason),
            model: None,
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
        }
    }

    /// The agent's output: what the host stores as the score and the execution output.
    pub fn to_json(&self) -> Value {
        json!({
            "lead_id": self.lead_id,
            "score": {
                "value": self.score.value,
                "priority": priority_name(self.score.priority),
                "recommended_action": self.score.recommended_action,
                "reasoning": self.score.reasoning,
                "confidence": self.score.confidence,
                "factors": self.score.factors.iter().map(|f| json!({"name": f.name, "score": f.score})).collect::<Vec<_>>(),
            },
            "strategy": self.strategy,
            "fallback_used": self.fallback_used,
            "fallback_reason": self.fallback_reason,
            "model": self.model,
            "usage": { "input_tokens": self.tokens_in, "output_tokens": self.tokens_out, "cost_usd": self.cost_usd },
        })
    }
}

pub fn capability_error(e: &CapabilityError) -> String {
    match e {
        CapabilityError::Denied(m) => format!("denied: {m}"),
        CapabilityError::Invalid(m) => format!("invalid: {m}"),
        CapabilityError::Unavailable(m) => format!("unavailable: {m}"),
    }
}

pub fn llm_error(e: &LlmError) -> String {
    match e {
        LlmError::Denied(m) => format!("LLM denied: {m}"),
        LlmError::OverBudget(m) => format!("LLM budget exhausted: {m}"),
        LlmError::Unavailable(m) => format!("LLM unavailable: {m}"),
        LlmError::RateLimited(m) => format!("LLM rate-limited: {m}"),
        LlmError::Timeout(m) => format!("LLM timed out: {m}"),
        LlmError::InvalidOutput(m) => format!("LLM answer invalid: {m}"),
        LlmError::InvalidRequest(m) => format!("LLM request invalid: {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Value {
        json!({
            "score": 82.5, "priority": "high", "recommended_action": "Call", "reasoning": "Budget fits",
            "confidence": 0.8,
            "factors": {"budget": 90, "authority": 80, "fit": 70, "timeline": 85, "complexity": 60}
        })
    }

    #[test]
    fn a_valid_answer_becomes_a_score_with_five_factors() {
        let o = Outcome::from_llm("L1", &answer()).unwrap();
        assert_eq!(o.score.value, 82.5);
        assert_eq!(o.score.priority, Priority::High);
        assert_eq!(o.score.factors.len(), 5);
        assert!(!o.fallback_used);
    }

    #[test]
    fn out_of_range_or_missing_fields_are_rejected() {
        let mut a = answer();
        a["score"] = json!(120);
        assert!(Outcome::from_llm("L1", &a).unwrap_err().contains("score"));
        let mut a = answer();
        a["factors"].as_object_mut().unwrap().remove("timeline");
        assert!(Outcome::from_llm("L1", &a)
            .unwrap_err()
            .contains("timeline"));
        let mut a = answer();
        a["priority"] = json!("urgent");
        assert!(Outcome::from_llm("L1", &a).is_err());
    }

    #[test]
    fn task_defaults_and_errors() {
        let t = Task::parse(r#"{"lead_id": "L1", "lead": {"id": "L1"}}"#).unwrap();
        assert_eq!(t.fallback_strategy, "bant");
        assert_eq!(t.lead["id"], "L1");
        assert!(Task::parse("{}").unwrap_err().contains("lead_id"));
        assert!(Task::parse(r#"{"lead_id": "L1"}"#)
            .unwrap_err()
            .contains("`lead`"));
        assert!(Task::parse(r#"{"lead_id": 5}"#)
            .unwrap_err()
            .contains("string"));
    }
}
