//! Structured output: compiling the caller's JSON schema, reading JSON out of an answer
//! (a ```json fence is tolerated) and validating it. Whatever a provider promises, every
//! answer to a schema request goes through [`OutputSchema::check`] before it is returned.

use super::error::{excerpt, truncate_chars, EXCERPT_CHARS};
use serde_json::Value;

/// Most schema violations listed in an error message.
const MAX_VIOLATIONS: usize = 3;

/// A caller's schema, compiled once per call.
pub(crate) struct OutputSchema {
    schema: Value,
    validator: jsonschema::Validator,
}

/// Why an answer was rejected.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OutputProblem {
    /// Not JSON at all (→ `LlmError::Malformed`).
    NotJson(String),
    /// JSON, but not valid against the schema (→ `LlmError::SchemaViolation`).
    Violation(String),
}

impl OutputSchema {
    /// Compiles `schema` (draft detected from `$schema`, else 2020-12). Remote `$ref`s are
    /// not resolved (the host fetches nothing on a plugin's behalf).
    pub fn compile(schema: &Value) -> Result<Self, String> {
        if !(schema.is_object() || schema.is_boolean()) {
            return Err("json_schema must be a JSON object".into());
        }
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| truncate_chars(&format!("json_schema is not a valid schema: {e}"), 300))?;
        Ok(Self {
            schema: schema.clone(),
            validator,
        })
    }

    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Whether the root is `{"type": "object", …}` (what tool inputs and OpenAI strict
    /// schemas must be).
    pub fn is_object_root(&self) -> bool {
        self.schema.get("type").and_then(Value::as_str) == Some("object")
    }

    /// The answer as validated JSON: `structured` when the provider returned JSON directly
    /// (a tool input), else parsed from `text`.
    pub fn check(&self, text: &str, structured: Option<&Value>) -> Result<Value, OutputProblem> {
        let value = match structured {
            Some(v) => v.clone(),
            None => parse_answer(text).map_err(OutputProblem::NotJson)?,
        };
        self.validate(&value).map_err(OutputProblem::Violation)?;
        Ok(value)
    }

    fn validate(&self, value: &Value) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut total = 0usize;
        for error in self.validator.iter_errors(value) {
            total += 1;
            if problems.len() < MAX_VIOLATIONS {
                let path = error.instance_path().to_string();
                let at = if path.is_empty() {
                    "/".to_string()
                } else {
                    path
                };
                problems.push(truncate_chars(&format!("at {at}: {error}"), 120));
            }
        }
        if total == 0 {
            return Ok(());
        }
        let mut msg = problems.join("; ");
        if total > problems.len() {
            msg.push_str(&format!(" (+{} more)", total - problems.len()));
        }
        Err(truncate_chars(&msg, EXCERPT_CHARS))
    }
}

/// JSON read from a model's text answer: the whole text, else the first fenced block
/// (```json … ``` or ``` … ```).
pub(crate) fn parse_answer(text: &str) -> Result<Value, String> {
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    let first_err = match serde_json::from_str::<Value>(trimmed) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    if let Some(inner) = fenced_block(trimmed) {
        if let Ok(v) = serde_json::from_str::<Value>(inner.trim()) {
            return Ok(v);
        }
    }
    if trimmed.is_empty() {
        return Err("the answer is empty, not JSON".into());
    }
    Err(format!(
        "the answer is not JSON ({first_err}): {}",
        excerpt(trimmed.as_bytes(), None)
    ))
}

/// Contents of the first ``` fence, its info string (e.g. `json`) skipped.
fn fenced_block(text: &str) -> Option<&str> {
    let start = text.find("```")?;
    let after = &text[start + 3..];
    let body_start = after.find('\n')? + 1;
    let body = &after[body_start..];
    let end = body.find("```").unwrap_or(body.len());
    Some(&body[..end])
}

/// The system-prompt instruction of the `prompt` dialect.
pub(crate) fn instruction(schema: &Value) -> String {
    format!(
        "Answer with a single JSON value and nothing else: no prose, no code fence. \
         The value must be valid against this JSON Schema:\n{schema}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> OutputSchema {
        OutputSchema::compile(&json!({
            "type": "object",
            "required": ["score"],
            "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 100}},
            "additionalProperties": false
        }))
        .unwrap()
    }

    #[test]
    fn plain_and_fenced_answers_parse() {
        assert_eq!(parse_answer(" {\"a\":1} ").unwrap(), json!({"a": 1}));
        assert_eq!(
            parse_answer("Here you go:\n```json\n{\"a\": 2}\n```\nThanks").unwrap(),
            json!({"a": 2})
        );
        assert_eq!(parse_answer("```\n[1,2]\n```").unwrap(), json!([1, 2]));
        assert!(parse_answer("sure! the score is 7").is_err());
        assert!(parse_answer("").is_err());
    }

    #[test]
    fn violations_are_listed() {
        let s = schema();
        assert_eq!(
            s.check("{\"score\": 7}", None).unwrap(),
            json!({"score": 7})
        );
        match s.check("{\"score\": 700, \"x\": 1}", None) {
            Err(OutputProblem::Violation(m)) => {
                assert!(m.contains("/score"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.check("nope", None),
            Err(OutputProblem::NotJson(_))
        ));
        assert!(s.check("", Some(&json!({"score": 1}))).is_ok());
    }

    #[test]
    fn invalid_schemas_are_refused() {
        assert!(OutputSchema::compile(&json!({"type": "no-such-type"})).is_err());
        assert!(OutputSchema::compile(&json!("string")).is_err());
    }
}
