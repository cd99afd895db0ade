//! OpenAI-compatible chat completions (OpenAI, llama.cpp `llama-server`, llama-cpp-python,
//! Ollama, vLLM, LiteLLM): `POST {base_url}/v1/chat/completions`, `Authorization: Bearer`
//! when a key is configured. The system prompt is a leading `system` message; no sampling
//! parameters are sent.
//!
//! Structured output by dialect: `json_schema` sends OpenAI's
//! `response_format: {type: "json_schema", json_schema: {name, schema, strict: true}}`,
//! `json_object_schema` sends llama-cpp-python's `{type: "json_object", schema}`, `prompt`
//! puts the schema into the system prompt, `gbnf` compiles it into a llama.cpp GBNF
//! `grammar` (`llm/gbnf.rs`) the server enforces while sampling, and puts the schema into
//! the system prompt too so the model knows what the fields mean (a schema the grammar
//! compiler does not cover goes as `json_object_schema`). The broker validates the answer
//! in every case.

use super::gbnf;
use super::provider::Answer;
use super::request::CompletionRequest;
use super::schema::{instruction, OutputSchema};
use super::settings::{MaxTokensField, StructuredOutput};
use super::transport::Target;
use super::LlmError;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// `json_schema.name` sent with the `json_schema` dialect.
pub const SCHEMA_NAME: &str = "response";

pub(crate) fn path() -> &'static str {
    "/v1/chat/completions"
}

/// The request body.
pub(crate) fn body(
    model: &str,
    req: &CompletionRequest,
    schema: Option<&OutputSchema>,
    dialect: StructuredOutput,
    max_tokens_field: MaxTokensField,
) -> Value {
    let mut system = req.system.clone().filter(|s| !s.trim().is_empty());
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    let field = match max_tokens_field {
        MaxTokensField::MaxTokens => "max_tokens",
        MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
    };
    body.insert(field.into(), json!(req.max_tokens));
    if let Some(schema) = schema {
        let dialect = match dialect {
            StructuredOutput::Gbnf => match gbnf::compile(schema.schema()) {
                Ok(grammar) => {
                    body.insert("grammar".into(), json!(grammar));
                    StructuredOutput::Prompt
                }
                Err(why) => {
                    tracing::debug!(
                        reason = %why,
                        "the output schema has no GBNF grammar; asking with json_object_schema"
                    );
                    StructuredOutput::JsonObjectSchema
                }
            },
            other => other,
        };
        match dialect {
            StructuredOutput::JsonSchema => {
                body.insert(
                    "response_format".into(),
                    json!({
                        "type": "json_schema",
                        "json_schema": {"name": SCHEMA_NAME, "schema": schema.schema(), "strict": true}
                    }),
                );
            }
            StructuredOutput::JsonObjectSchema => {
                body.insert(
                    "response_format".into(),
                    json!({"type": "json_object", "schema": schema.schema()}),
                );
            }
            StructuredOutput::Prompt | StructuredOutput::Tool | StructuredOutput::Gbnf => {
                let inst = instruction(schema.schema());
                system = Some(match system {
                    Some(s) => format!("{s}\n\n{inst}"),
                    None => inst,
                });
            }
        }
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.extend(
        req.messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content})),
    );
    body.insert("messages".into(), Value::Array(messages));
    Value::Object(body)
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Value,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

/// The answer out of a 2xx body.
pub(crate) fn parse(value: Value, target: Target<'_>) -> Result<Answer, LlmError> {
    let resp: ChatResponse = serde_json::from_value(value)
        .map_err(|e| target.malformed(format!("not a chat completion: {e}")))?;
    let usage = resp.usage.unwrap_or_default();
    let Some(choice) = resp.choices.into_iter().next() else {
        return Err(target.malformed("the answer has no choices"));
    };
    let text = match choice.message.content {
        Value::String(s) => s,
        // Some servers answer with content parts.
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        Value::Null => {
            return Err(match choice.message.refusal {
                Some(r) => target.malformed(format!("the model refused: {r}")),
                None => target.malformed("the answer has no content"),
            })
        }
        other => {
            return Err(target.malformed(format!(
                "message content is neither text nor parts: {}",
                super::error::truncate_chars(&other.to_string(), 100)
            )))
        }
    };
    Ok(Answer {
        text,
        structured: None,
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
        truncated: choice.finish_reason.as_deref() == Some("length"),
    })
}
