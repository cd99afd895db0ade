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

/// Words that make an answer "bare" when nothing else is said (`"No"`, `"The answer is
/// no"`, `"N/A"`).
const BARE_WORDS: [&str; 18] = [
    "yes", "no", "y", "n", "true", "false", "ok", "okay", "maybe", "none", "null", "na", "n/a",
    "unknown", "the", "answer", "is", "it",
];

/// Whether `text` says nothing but yes/no and the like.
fn is_bare(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || (c.is_ascii_punctuation() && c != '/'))
        .filter(|w| !w.is_empty())
        .all(|w| BARE_WORDS.contains(&w.to_lowercase().as_str()))
}

/// Whether `text` is a plugin identifier such as `bant@1.0.0` (Strata's own strategy
/// names), not prose.
fn is_plugin_id(text: &str) -> bool {
    let Some((name, version)) = text.trim().split_once('@') else {
        return false;
    };
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !version.is_empty()
        && version.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Every string value in `v` (at any depth), trimmed and lowercased.
fn input_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_lowercase()),
        Value::Array(items) => items.iter().for_each(|i| input_strings(i, out)),
        Value::Object(m) => m.values().for_each(|i| input_strings(i, out)),
        _ => {}
    }
}

/// Checks the free-text field `key` of an answer: non-empty, not a bare yes/no, not a
/// plugin id, not a value copied from the lead.
fn check_text(key: &str, text: &str, lead_strings: &[String]) -> Result<(), String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("`{key}` is empty"));
    }
    if is_bare(t) {
        return Err(format!(
            "`{key}` = {t:?} is a bare yes/no, not an explanation"
        ));
    }
    if is_plugin_id(t) {
        return Err(format!(
            "`{key}` = {t:?} is a scorer's identifier, not a sentence"
        ));
    }
    if lead_strings.iter().any(|s| *s == t.to_lowercase()) {
        return Err(format!(
            "`{key}` = {t:?} is copied from the lead's data, not your own judgement"
        ));
    }
    Ok(())
}

impl Outcome {
    /// Checks the model's answer before it is accepted (the host validated it against the
    /// schema already; this re-checks what the agent relies on, so a lax provider cannot
    /// slip a bad score in, and checks what a schema cannot say): score 0–100, confidence
    /// 0–1, each factor 0–100; the priority is the score's band of the scorer contract
    /// ([`Priority::from_score`]: immediate >= 85, high >= 65, medium >= 40, low below);
    /// `recommended_action` and `reasoning` are non-empty, not a bare yes/no, not a
    /// plugin identifier and not a value copied from `lead` (the lead as the model saw it:
    /// [`crate::schema::clean_lead_for_prompt`]; an action equal to Strata's own earlier
    /// write-back, which the model did not see, is the same judgement again, not a copy).
    /// The error says what was wrong, in words the model can act on.
    pub fn from_llm(lead_id: &str, v: &Value, lead: &Value) -> Result<Outcome, String> {
        let value = in_range(v, "score", 0.0, 100.0)?;
        let confidence = in_range(v, "confidence", 0.0, 1.0)?;
        let priority = v
            .get("priority")
            .and_then(Value::as_str)
            .and_then(priority_of)
            .ok_or("answer has no valid `priority`")?;
        let band = Priority::from_score(value);
        if priority != band {
            return Err(format!(
                "priority {:?} contradicts score {value}, whose band is {:?} (immediate >= 85, high >= 65, medium >= 40, low below)",
                priority_name(priority),
                priority_name(band)
            ));
        }
        let mut lead_strings = Vec::new();
        input_strings(lead, &mut lead_strings);
        input_strings(&Value::String(lead_id.to_string()), &mut lead_strings);
        let text = |k: &str| -> Result<String, String> {
            let t = v
                .get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("answer has no `{k}`"))?;
            check_text(k, t, &lead_strings)?;
            Ok(t.trim().to_string())
        };
        let recommended_action = text("recommended_action")?;
        let reasoning = text("reasoning")?;
        let factors_v = v.get("factors").ok_or("answer has no `factors`")?;
        let mut factors = Vec::new();
        for name in FACTORS {
            factors.push(Factor {
                name: name.to_string(),
                score: in_range(factors_v, name, 0.0, 100.0)
                    .map_err(|e| e.replace("answer `", "answer `factors."))?,
            });
        }
        Ok(Outcome {
            lead_id: lead_id.to_string(),
            score: Score {
                value,
                priority,
                recommended_action,
                reasoning,
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

    fn lead() -> Value {
        json!({
            "id": "L1", "company": "Acme", "industry": "Manufacturing", "notes": "Wants a demo",
            "attributes": {"strategy": "Bant@1.0.0", "next_step": "Nurture by email"}
        })
    }

    fn check(a: &Value) -> Result<Outcome, String> {
        Outcome::from_llm("L1", a, &lead())
    }

    fn with(key: &str, value: Value) -> Value {
        let mut a = answer();
        a[key] = value;
        a
    }

    #[test]
    fn a_valid_answer_becomes_a_score_with_five_factors() {
        let o = check(&answer()).unwrap();
        assert_eq!(o.score.value, 82.5);
        assert_eq!(o.score.priority, Priority::High);
        assert_eq!(o.score.factors.len(), 5);
        assert!(!o.fallback_used);
    }

    #[test]
    fn out_of_range_or_missing_fields_are_rejected() {
        let mut a = answer();
        a["score"] = json!(120);
        assert!(check(&a).unwrap_err().contains("score"));
        let mut a = answer();
        a["factors"].as_object_mut().unwrap().remove("timeline");
        assert!(check(&a).unwrap_err().contains("timeline"));
        let mut a = answer();
        a["priority"] = json!("urgent");
        assert!(check(&a).is_err());
    }

    #[test]
    fn the_priority_must_be_the_score_band() {
        // demo-001: 2.7 with priority "immediate".
        let mut a = with("score", json!(2.7));
        a["priority"] = json!("immediate");
        let e = check(&a).unwrap_err();
        assert!(
            e.contains("contradicts score 2.7") && e.contains("\"low\""),
            "{e}"
        );
        for (score, priority) in [
            (85.0, "immediate"),
            (84.9, "high"),
            (65.0, "high"),
            (64.5, "medium"),
            (40.0, "medium"),
            (39.99, "low"),
            (0.0, "low"),
            (100.0, "immediate"),
        ] {
            let mut a = with("score", json!(score));
            a["priority"] = json!(priority);
            assert!(check(&a).is_ok(), "{score} {priority}");
        }
        for (score, priority) in [
            (85.0, "high"),
            (64.9, "high"),
            (40.0, "low"),
            (90.0, "medium"),
        ] {
            let mut a = with("score", json!(score));
            a["priority"] = json!(priority);
            assert!(
                check(&a).unwrap_err().contains("contradicts"),
                "{score} {priority}"
            );
        }
    }

    #[test]
    fn confidence_and_factors_must_be_in_range() {
        assert!(check(&with("confidence", json!(1.5)))
            .unwrap_err()
            .contains("confidence"));
        assert!(check(&with("confidence", json!(-0.1))).is_err());
        assert!(check(&with("confidence", json!("high"))).is_err());
        let mut a = answer();
        a["factors"]["budget"] = json!(-1000);
        let e = check(&a).unwrap_err();
        assert!(e.contains("factors.budget"), "{e}");
        a["factors"]["budget"] = json!(100.5);
        assert!(check(&a).is_err());
    }

    #[test]
    fn reasoning_and_action_must_be_present() {
        for key in ["reasoning", "recommended_action"] {
            assert!(check(&with(key, json!("  "))).unwrap_err().contains(key));
            let mut a = answer();
            a.as_object_mut().unwrap().remove(key);
            assert!(check(&a).unwrap_err().contains(key));
        }
    }

    #[test]
    fn a_bare_yes_or_no_is_rejected() {
        for bare in ["The answer is no", "No", "yes.", "N/A", "true", "OK!"] {
            let e = check(&with("recommended_action", json!(bare))).unwrap_err();
            assert!(e.contains("bare yes/no"), "{bare}: {e}");
            assert!(check(&with("reasoning", json!(bare))).is_err(), "{bare}");
        }
        for fine in [
            "No budget yet: nurture by email",
            "Call the CFO",
            "Yes, book a demo this week",
        ] {
            assert!(
                check(&with("recommended_action", json!(fine))).is_ok(),
                "{fine}"
            );
        }
    }

    #[test]
    fn text_copied_from_the_input_is_rejected() {
        // demo-012: the action was Strata's own earlier write-back.
        let e = check(&with("recommended_action", json!("Bant@1.0.0"))).unwrap_err();
        assert!(e.contains("recommended_action"), "{e}");
        for copied in [
            "Nurture by email",
            "acme",
            " Wants a demo ",
            "L1",
            "Manufacturing",
        ] {
            let e = check(&with("recommended_action", json!(copied))).unwrap_err();
            assert!(e.contains("copied from the lead"), "{copied}: {e}");
            assert!(
                check(&with("reasoning", json!(copied))).is_err(),
                "{copied}"
            );
        }
        // A plugin identifier not in the lead is still not an action.
        let e = check(&with("recommended_action", json!("xeducation@2.1.0"))).unwrap_err();
        assert!(e.contains("identifier"), "{e}");
        // Mentioning a lead's value is fine; being one is not.
        assert!(check(&with(
            "reasoning",
            json!("Acme is a manufacturer that wants a demo")
        ))
        .is_ok());
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
