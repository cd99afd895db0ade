//! One configured provider: its endpoint, key (held privately, redacted from `Debug` and
//! from anything echoed back), circuit breaker and counters.

use super::anthropic;
use super::breaker::{Breaker, BreakerState};
use super::error::LlmError;
use super::openai;
use super::request::CompletionRequest;
use super::schema::OutputSchema;
use super::settings::{BreakerSettings, ProviderKind, ProviderSettings};
use super::transport::{post_json, Target};
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use serde::Serialize;
use std::collections::BTreeMap;
use std::env::VarError;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// What [`LlmBroker::status`](super::LlmBroker::status) reports per provider.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ProviderStatus {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    /// `json_schema`, `json_object_schema`, `gbnf`, `tool` or `prompt`.
    pub structured_output: String,
    pub breaker: BreakerState,
    /// Consecutive availability failures (what opens the breaker).
    pub consecutive_failures: u32,
    /// The last failed attempt's error message (no key in it), and when.
    pub last_error: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_error_at: Option<DateTime<Utc>>,
    /// Requests sent to the provider.
    pub calls: u64,
    /// Of those, the ones that did not produce a usable answer.
    pub failures: u64,
    /// The failures by kind: `timeout`, `unreachable`, `rate_limited`, `server_error`,
    /// `client_error`, `malformed`, `schema_violation`, `config`.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Attempts refused without a request because the circuit was open.
    pub short_circuited: u64,
    /// Tokens the provider reported for the requests sent (failed ones included).
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// A provider's answer before schema validation.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub text: String,
    /// JSON the provider returned as such (an anthropic tool input).
    pub structured: Option<serde_json::Value>,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// The provider stopped at `max_tokens`.
    pub truncated: bool,
}

/// An API key: never printed.
struct ApiKey {
    raw: String,
    header: HeaderValue,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(redacted)")
    }
}

#[derive(Debug, Default)]
struct Counters {
    calls: u64,
    failures: u64,
    failures_by_kind: BTreeMap<String, u64>,
    short_circuited: u64,
    input_tokens: u64,
    output_tokens: u64,
    last_error: Option<(String, DateTime<Utc>)>,
}

#[derive(Debug)]
pub(crate) struct Provider {
    pub name: String,
    pub settings: ProviderSettings,
    key: Option<ApiKey>,
    pub breaker: Breaker,
    counters: Mutex<Counters>,
}

impl Provider {
    /// `env` looks up the key variable (`std::env::var` in production).
    pub fn new(
        name: &str,
        settings: &ProviderSettings,
        breaker: &BreakerSettings,
        env: &dyn Fn(&str) -> Result<String, VarError>,
    ) -> Result<Self, LlmError> {
        let key = match &settings.api_key_env {
            None => None,
            Some(var) => Some(read_key(name, settings.kind, var, env)?),
        };
        Ok(Self {
            name: name.to_string(),
            settings: settings.clone(),
            key,
            breaker: Breaker::new(
                breaker.failure_threshold,
                Duration::from_millis(breaker.open_ms),
            ),
            counters: Mutex::new(Counters::default()),
        })
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One request for `alias` (`model`), under the provider's deadline.
    pub async fn call(
        &self,
        http: &reqwest::Client,
        alias: &str,
        model: &str,
        req: &CompletionRequest,
        schema: Option<&OutputSchema>,
    ) -> Result<Answer, LlmError> {
        let s = &self.settings;
        let dialect = s.structured_output();
        let target = Target {
            provider: &self.name,
            alias,
            secret: self.key.as_ref().map(|k| k.raw.as_str()),
        };
        let mut headers = HeaderMap::new();
        let (path, body) = match s.kind {
            ProviderKind::Anthropic => {
                if let Some(key) = &self.key {
                    headers.insert(HeaderName::from_static("x-api-key"), key.header.clone());
                }
                // Validated as visible ASCII.
                if let Ok(v) = HeaderValue::from_str(s.anthropic_version()) {
                    headers.insert(HeaderName::from_static("anthropic-version"), v);
                }
                (
                    anthropic::path(),
                    anthropic::body(model, req, schema, dialect),
                )
            }
            ProviderKind::Openai => {
                if let Some(key) = &self.key {
                    headers.insert(AUTHORIZATION, key.header.clone());
                }
                (
                    openai::path(),
                    openai::body(model, req, schema, dialect, s.max_tokens_field()),
                )
            }
        };
        let url = format!("{}{path}", s.base());
        let value = post_json(http, &url, headers, &body, s.timeout(), target).await?;
        match s.kind {
            ProviderKind::Anthropic => anthropic::parse(value, schema, dialect, target),
            ProviderKind::Openai => openai::parse(value, target),
        }
    }

    /// Counts a request that was sent; `error` when it gave no usable answer; the tokens
    /// the provider reported for it. Also the Prometheus counters `llm_calls_total`,
    /// `llm_failures_total` and `llm_tokens_total`.
    pub fn record_call(&self, error: Option<&LlmError>, tokens: (u32, u32)) {
        let provider = self.name.clone();
        metrics::counter!("llm_calls_total", "provider" => provider.clone(),
            "outcome" => if error.is_some() { "failed" } else { "ok" })
        .increment(1);
        if let Some(e) = error {
            metrics::counter!("llm_failures_total", "provider" => provider.clone(),
                "kind" => e.failure_kind())
            .increment(1);
        }
        for (direction, n) in [("input", tokens.0), ("output", tokens.1)] {
            if n > 0 {
                metrics::counter!("llm_tokens_total", "provider" => provider.clone(),
                    "direction" => direction)
                .increment(u64::from(n));
            }
        }
        let mut c = self.counters();
        c.calls += 1;
        c.input_tokens += u64::from(tokens.0);
        c.output_tokens += u64::from(tokens.1);
        if let Some(e) = error {
            c.failures += 1;
            *c.failures_by_kind
                .entry(e.failure_kind().to_string())
                .or_default() += 1;
            c.last_error = Some((e.to_string(), Utc::now()));
        }
    }

    /// Counts an attempt refused because the circuit was open (`llm_short_circuits_total`).
    pub fn record_short_circuit(&self) {
        metrics::counter!("llm_short_circuits_total", "provider" => self.name.clone()).increment(1);
        self.counters().short_circuited += 1;
    }

    pub fn status(&self) -> ProviderStatus {
        let (breaker, consecutive_failures) = self.breaker.state();
        let c = self.counters();
        ProviderStatus {
            name: self.name.clone(),
            kind: self.settings.kind,
            base_url: self.settings.base_url.clone(),
            structured_output: self.settings.structured_output().as_str().to_string(),
            breaker,
            consecutive_failures,
            last_error: c.last_error.as_ref().map(|(m, _)| m.clone()),
            last_error_at: c.last_error.as_ref().map(|(_, t)| *t),
            calls: c.calls,
            failures: c.failures,
            failures_by_kind: c.failures_by_kind.clone(),
            short_circuited: c.short_circuited,
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
        }
    }
}

/// Reads and checks the key in `var`. Errors name the variable, never its value.
fn read_key(
    provider: &str,
    kind: ProviderKind,
    var: &str,
    env: &dyn Fn(&str) -> Result<String, VarError>,
) -> Result<ApiKey, LlmError> {
    let at = format!("llm.providers.{provider}.api_key_env");
    let raw = match env(var) {
        Ok(v) => v.trim().to_string(),
        Err(VarError::NotPresent) => {
            return Err(LlmError::Config(format!(
                "environment variable {var} (named by {at}) is not set"
            )))
        }
        Err(VarError::NotUnicode(_)) => {
            return Err(LlmError::Config(format!(
                "environment variable {var} (named by {at}) is not valid UTF-8"
            )))
        }
    };
    if raw.is_empty() {
        return Err(LlmError::Config(format!(
            "environment variable {var} (named by {at}) is empty"
        )));
    }
    let value = match kind {
        ProviderKind::Anthropic => raw.clone(),
        ProviderKind::Openai => format!("Bearer {raw}"),
    };
    let mut header = HeaderValue::from_str(&value).map_err(|_| {
        LlmError::Config(format!(
            "environment variable {var} (named by {at}) holds characters an HTTP header cannot carry"
        ))
    })?;
    header.set_sensitive(true);
    Ok(ApiKey { raw, header })
}
