//! `[llm]` in config: providers (endpoints and where their keys are), model aliases (what
//! plugins are granted), prices, fallbacks, retry and circuit-breaker tuning.
//!
//! ```toml
//! [llm.providers.claude]
//! kind = "anthropic"
//! base_url = "https://api.anthropic.com"
//! api_key_env = "ANTHROPIC_API_KEY"
//!
//! [llm.providers.local]
//! kind = "openai"
//! base_url = "http://127.0.0.1:8080"
//! structured_output = "json_object_schema"
//!
//! [llm.models.qualifier]
//! provider = "claude"
//! model = "claude-sonnet-4-5"
//! input_usd_per_mtok = 3.0
//! output_usd_per_mtok = 15.0
//! fallback = ["local-small"]
//!
//! [llm.models.local-small]
//! provider = "local"
//! model = "smollm2-135m"
//! ```

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// The `anthropic-version` header sent when a provider sets none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// `[llm]` in config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LlmSettings {
    /// `[llm.providers.<name>]`: endpoints.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// `[llm.models.<alias>]`: the aliases plugins are granted.
    pub models: BTreeMap<String, ModelSettings>,
    /// `[llm.retry]`: attempts per alias and backoff.
    pub retry: RetrySettings,
    /// `[llm.breaker]`: per-provider circuit breaker.
    pub breaker: BreakerSettings,
}

/// Wire protocol of a provider.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Anthropic Messages API: `POST {base_url}/v1/messages`.
    Anthropic,
    /// OpenAI-compatible chat completions (OpenAI, llama.cpp `llama-server`,
    /// llama-cpp-python, Ollama, vLLM, LiteLLM): `POST {base_url}/v1/chat/completions`.
    #[default]
    Openai,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Openai => "openai",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a JSON schema is asked for. Whatever the dialect, the answer is always parsed and
/// validated against the schema by the broker before it is returned.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// OpenAI: `response_format: {type: "json_schema", json_schema: {name, schema, strict: true}}`
    /// (default for `openai`). OpenAI proper only accepts schemas of its strict subset.
    JsonSchema,
    /// llama-cpp-python: `response_format: {type: "json_object", schema: …}` (it answers
    /// HTTP 500 to the `json_schema` form).
    JsonObjectSchema,
    /// llama.cpp `llama-server` and llama-cpp-python: the schema compiled into a GBNF
    /// `grammar` (bounded numbers, enums, escaped strings, required properties in order),
    /// which the server enforces while sampling. A schema outside the compiled subset
    /// (see `llm/gbnf.rs`) is sent as `json_object_schema` instead.
    Gbnf,
    /// Anthropic: one tool whose `input_schema` is the schema, forced with `tool_choice`;
    /// the tool input is the answer (default for `anthropic`). A schema whose root is not an
    /// object is wrapped as `{value: schema}` and unwrapped again.
    Tool,
    /// Any provider: the schema goes into the system prompt as an instruction and nothing
    /// else is sent; for servers that support no constrained output.
    Prompt,
}

impl StructuredOutput {
    pub fn as_str(self) -> &'static str {
        match self {
            StructuredOutput::JsonSchema => "json_schema",
            StructuredOutput::JsonObjectSchema => "json_object_schema",
            StructuredOutput::Gbnf => "gbnf",
            StructuredOutput::Tool => "tool",
            StructuredOutput::Prompt => "prompt",
        }
    }

    /// Whether `kind` understands this dialect.
    pub fn fits(self, kind: ProviderKind) -> bool {
        match self {
            StructuredOutput::JsonSchema
            | StructuredOutput::JsonObjectSchema
            | StructuredOutput::Gbnf => kind == ProviderKind::Openai,
            StructuredOutput::Tool => kind == ProviderKind::Anthropic,
            StructuredOutput::Prompt => true,
        }
    }
}

/// Name of the output-length field in an OpenAI-compatible request.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_tokens`: what llama.cpp, llama-cpp-python, Ollama, vLLM and LiteLLM read.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: what OpenAI's reasoning models require.
    MaxCompletionTokens,
}

/// `[llm.providers.<name>]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    pub kind: ProviderKind,
    /// Scheme, host, port and an optional path prefix; the broker appends `/v1/…`. No
    /// credentials, query or fragment.
    pub base_url: String,
    /// Environment variable holding the API key (`x-api-key` for anthropic,
    /// `Authorization: Bearer` for openai). None: no key is sent (local servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Deadline of one attempt (connect, send, whole answer).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Structured-output dialect; default `tool` for anthropic, `json_schema` for openai.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_output: Option<StructuredOutput>,
    /// `anthropic-version` header (anthropic only); default `2023-06-01`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic_version: Option<String>,
    /// Output-length field name (openai only); default `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<MaxTokensField>,
}

fn default_timeout_ms() -> u64 {
    30_000
}

impl ProviderSettings {
    /// The dialect in effect (the configured one, else the kind's default).
    pub fn structured_output(&self) -> StructuredOutput {
        self.structured_output.unwrap_or(match self.kind {
            ProviderKind::Anthropic => StructuredOutput::Tool,
            ProviderKind::Openai => StructuredOutput::JsonSchema,
        })
    }

    pub fn anthropic_version(&self) -> &str {
        self.anthropic_version
            .as_deref()
            .unwrap_or(DEFAULT_ANTHROPIC_VERSION)
    }

    pub fn max_tokens_field(&self) -> MaxTokensField {
        self.max_tokens_field.unwrap_or_default()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// `base_url` without trailing slashes, ready for `/v1/…` to be appended.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

/// `[llm.models.<alias>]`: a model alias plugins are granted.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// A key of `[llm.providers]`.
    pub provider: String,
    /// Model name as the provider knows it.
    pub model: String,
    #[serde(default)]
    pub input_usd_per_mtok: f64,
    #[serde(default)]
    pub output_usd_per_mtok: f64,
    /// Other aliases tried in order when this one is unavailable (429, 5xx, timeout,
    /// connection error, circuit open) or keeps answering invalid output. Only this list
    /// is used: a fallback's own fallbacks are not followed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
}

impl ModelSettings {
    /// Price of a call that used these tokens.
    pub fn cost_usd(&self, input_tokens: u32, output_tokens: u32) -> f64 {
        (f64::from(input_tokens) * self.input_usd_per_mtok
            + f64::from(output_tokens) * self.output_usd_per_mtok)
            / 1_000_000.0
    }
}

/// `[llm.retry]`: attempts per alias (per provider) with exponential backoff and full
/// jitter; a `Retry-After` up to `max_delay_ms` is waited out, a longer one moves on to
/// the fallback at once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay_ms: 200,
            max_delay_ms: 5_000,
        }
    }
}

/// `[llm.breaker]`: a provider's circuit opens after `failure_threshold` consecutive
/// failures; after `open_ms` one probe call is let through (half-open).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    pub failure_threshold: u32,
    pub open_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_ms: 30_000,
        }
    }
}

impl LlmSettings {
    /// Checks what serde cannot; the message names the bad key.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in &self.providers {
            let key = format!("llm.providers.{name}");
            if name.trim().is_empty() {
                return Err("llm.providers has a provider with an empty name".into());
            }
            validate_base_url(&key, &p.base_url)?;
            if p.timeout_ms == 0 {
                return Err(format!("{key}.timeout_ms must be at least 1"));
            }
            if let Some(var) = &p.api_key_env {
                if var.is_empty() || var.contains('=') || var.contains('\0') {
                    return Err(format!(
                        "{key}.api_key_env = {var:?} is not an environment variable name"
                    ));
                }
            }
            if let Some(so) = p.structured_output {
                if !so.fits(p.kind) {
                    return Err(format!(
                        "{key}.structured_output = \"{}\" does not apply to kind = \"{}\" ({})",
                        so.as_str(),
                        p.kind,
                        match p.kind {
                            ProviderKind::Anthropic => "use \"tool\" or \"prompt\"",
                            ProviderKind::Openai =>
                                "use \"json_schema\", \"json_object_schema\", \"gbnf\" or \"prompt\"",
                        }
                    ));
                }
            }
            match (&p.anthropic_version, p.kind) {
                (Some(_), ProviderKind::Openai) => {
                    return Err(format!(
                        "{key}.anthropic_version only applies to kind = \"anthropic\""
                    ))
                }
                (Some(v), ProviderKind::Anthropic)
                    if v.trim().is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) =>
                {
                    return Err(format!(
                        "{key}.anthropic_version = {v:?} is not a version such as \"{DEFAULT_ANTHROPIC_VERSION}\""
                    ))
                }
                _ => {}
            }
            if p.max_tokens_field.is_some() && p.kind != ProviderKind::Openai {
                return Err(format!(
                    "{key}.max_tokens_field only applies to kind = \"openai\""
                ));
            }
        }
        for (alias, m) in &self.models {
            let key = format!("llm.models.{alias}");
            if alias.trim().is_empty() {
                return Err("llm.models has an alias with an empty name".into());
            }
            if !self.providers.contains_key(&m.provider) {
                return Err(format!(
                    "{key}.provider = {:?} is not a configured provider (llm.providers: {})",
                    m.provider,
                    list(self.providers.keys())
                ));
            }
            if m.model.trim().is_empty() {
                return Err(format!("{key}.model must not be empty"));
            }
            for (field, price) in [
                ("input_usd_per_mtok", m.input_usd_per_mtok),
                ("output_usd_per_mtok", m.output_usd_per_mtok),
            ] {
                if !price.is_finite() || price < 0.0 {
                    return Err(format!(
                        "{key}.{field} = {price} must be a finite price >= 0"
                    ));
                }
            }
            let mut seen = BTreeSet::new();
            for fb in &m.fallback {
                if fb == alias {
                    return Err(format!("{key}.fallback lists the alias itself ({fb:?})"));
                }
                if !self.models.contains_key(fb) {
                    return Err(format!(
                        "{key}.fallback names {fb:?}, which is not a configured alias (llm.models: {})",
                        list(self.models.keys())
                    ));
                }
                if !seen.insert(fb) {
                    return Err(format!("{key}.fallback lists {fb:?} twice"));
                }
            }
        }
        let r = &self.retry;
        if r.max_attempts == 0 {
            return Err("llm.retry.max_attempts must be at least 1".into());
        }
        if r.base_delay_ms > r.max_delay_ms {
            return Err(format!(
                "llm.retry.base_delay_ms = {} must not exceed llm.retry.max_delay_ms = {}",
                r.base_delay_ms, r.max_delay_ms
            ));
        }
        let b = &self.breaker;
        if b.failure_threshold == 0 {
            return Err("llm.breaker.failure_threshold must be at least 1".into());
        }
        if b.open_ms == 0 {
            return Err("llm.breaker.open_ms must be at least 1".into());
        }
        Ok(())
    }
}

fn validate_base_url(key: &str, raw: &str) -> Result<(), String> {
    // A URL with userinfo or a query may carry a credential: it is not echoed.
    let shown = if raw.contains('@') || raw.contains('?') {
        "(not shown)".to_string()
    } else {
        format!("{raw:?}")
    };
    let url = reqwest::Url::parse(raw)
        .map_err(|e| format!("{key}.base_url = {shown} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{key}.base_url = {shown} must be an http:// or https:// URL with a host"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: it holds a credential.
        return Err(format!(
            "{key}.base_url must not contain credentials; name an environment variable in {key}.api_key_env"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{key}.base_url = {shown} must not have a query or fragment"
        ));
    }
    if url.path().trim_end_matches('/').ends_with("/v1") {
        return Err(format!(
            "{key}.base_url = {raw:?} must not end in /v1: the broker appends /v1/messages or /v1/chat/completions"
        ));
    }
    Ok(())
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
