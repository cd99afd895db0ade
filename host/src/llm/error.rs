//! Why a call failed. Messages name the provider, the alias, the HTTP status and a short
//! body excerpt (at most [`EXCERPT_CHARS`] characters, with the provider's key redacted);
//! never a key or an `Authorization` header.

use super::completion::{total_cost_usd, Attempt};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Longest body excerpt put into an error message.
pub const EXCERPT_CHARS: usize = 300;

/// The plugin-facing category of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmErrorKind {
    /// No provider could answer (5xx, connection error, circuit open); try later.
    Unavailable,
    /// The provider throttled the call (HTTP 429).
    RateLimited,
    /// No answer within the provider's deadline.
    Timeout,
    /// An answer came but was unusable: not the protocol's JSON, not JSON when a schema
    /// was asked for, or not valid against the schema.
    InvalidOutput,
    /// Retrying cannot help: unknown alias, configuration, a rejected request (HTTP 4xx
    /// other than 429, e.g. authentication) or an invalid request (empty, bad schema).
    Config,
}

impl LlmErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LlmErrorKind::Unavailable => "unavailable",
            LlmErrorKind::RateLimited => "rate_limited",
            LlmErrorKind::Timeout => "timeout",
            LlmErrorKind::InvalidOutput => "invalid_output",
            LlmErrorKind::Config => "config",
        }
    }
}

impl fmt::Display for LlmErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An LLM call's failure.
///
/// [`LlmBroker::complete`](super::LlmBroker::complete) returns [`LlmError::Exhausted`]
/// once it has made (or skipped, circuit open) at least one attempt, so the attempts and
/// the tokens they consumed are always available ([`LlmError::attempts`]); `last` is why
/// the final attempt failed and decides [`LlmError::kind`]. Errors before any attempt
/// (unknown alias, invalid request) come bare.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("unknown LLM alias {0:?}")]
    UnknownAlias(String),
    /// Configuration (settings validation, a missing key variable, HTTP client setup).
    #[error("LLM configuration: {0}")]
    Config(String),
    /// The request itself cannot be sent (no messages, `max_tokens = 0`, invalid schema).
    #[error("invalid LLM request: {0}")]
    InvalidRequest(String),
    #[error("LLM provider {provider:?} (alias {alias:?}) did not answer within {} ms", .timeout.as_millis())]
    Timeout {
        provider: String,
        alias: String,
        timeout: Duration,
    },
    #[error("LLM provider {provider:?} (alias {alias:?}) rate-limited the call (HTTP 429{}){}", retry_after_text(.retry_after), excerpt_suffix(.body))]
    RateLimited {
        provider: String,
        alias: String,
        /// From `Retry-After` (or `retry-after-ms`), when the provider sent it.
        retry_after: Option<Duration>,
        body: String,
    },
    #[error("LLM provider {provider:?} (alias {alias:?}) answered HTTP {status}{}", excerpt_suffix(.body))]
    Upstream {
        provider: String,
        alias: String,
        status: u16,
        /// Redacted, truncated excerpt of the response body.
        body: String,
        retry_after: Option<Duration>,
    },
    #[error("LLM provider {provider:?} (alias {alias:?}) is unreachable: {detail}")]
    Unreachable {
        provider: String,
        alias: String,
        detail: String,
    },
    /// The answer could not be read: a body that is not the protocol's JSON, or an answer
    /// that is not JSON although a schema was asked for. Names provider and alias.
    #[error("malformed LLM answer: {0}")]
    Malformed(String),
    /// The answer is JSON but not valid against the requested schema. Names provider,
    /// alias and the first violations.
    #[error("LLM answer violates the requested JSON schema: {0}")]
    SchemaViolation(String),
    #[error("LLM provider {provider:?} is failing: its circuit breaker is open")]
    CircuitOpen { provider: String },
    #[error("LLM call failed after {} attempt(s) ({}); last: {last}", .attempts.len(), attempt_path(.attempts))]
    Exhausted {
        attempts: Vec<Attempt>,
        last: Box<LlmError>,
    },
}

impl LlmError {
    /// The plugin-facing category.
    pub fn kind(&self) -> LlmErrorKind {
        match self {
            LlmError::UnknownAlias(_) | LlmError::Config(_) | LlmError::InvalidRequest(_) => {
                LlmErrorKind::Config
            }
            LlmError::Timeout { .. } => LlmErrorKind::Timeout,
            LlmError::RateLimited { .. } => LlmErrorKind::RateLimited,
            LlmError::Upstream { status, .. } => {
                if is_retryable_status(*status) {
                    LlmErrorKind::Unavailable
                } else {
                    LlmErrorKind::Config
                }
            }
            LlmError::Unreachable { .. } | LlmError::CircuitOpen { .. } => {
                LlmErrorKind::Unavailable
            }
            LlmError::Malformed(_) | LlmError::SchemaViolation(_) => LlmErrorKind::InvalidOutput,
            LlmError::Exhausted { last, .. } => last.kind(),
        }
    }

    /// A finer category than [`Self::kind`], for counters and the status route:
    /// `timeout`, `unreachable`, `rate_limited`, `server_error` (HTTP 408/5xx),
    /// `client_error` (other HTTP 4xx), `malformed`, `schema_violation`, `circuit_open`,
    /// `config`.
    pub fn failure_kind(&self) -> &'static str {
        match self {
            LlmError::UnknownAlias(_) | LlmError::Config(_) | LlmError::InvalidRequest(_) => {
                "config"
            }
            LlmError::Timeout { .. } => "timeout",
            LlmError::RateLimited { .. } => "rate_limited",
            LlmError::Upstream { status, .. } if is_retryable_status(*status) => "server_error",
            LlmError::Upstream { .. } => "client_error",
            LlmError::Unreachable { .. } => "unreachable",
            LlmError::Malformed(_) => "malformed",
            LlmError::SchemaViolation(_) => "schema_violation",
            LlmError::CircuitOpen { .. } => "circuit_open",
            LlmError::Exhausted { last, .. } => last.failure_kind(),
        }
    }

    /// The error behind [`LlmError::Exhausted`] (itself otherwise).
    pub fn root(&self) -> &LlmError {
        match self {
            LlmError::Exhausted { last, .. } => last.root(),
            other => other,
        }
    }

    /// The attempts made before failing (empty for errors before any attempt).
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            LlmError::Exhausted { attempts, .. } => attempts,
            _ => &[],
        }
    }

    /// Cost of the failed call's attempts that consumed tokens.
    pub fn cost_usd(&self) -> f64 {
        total_cost_usd(self.attempts())
    }
}

/// 408, 429 and 5xx are worth another attempt; other statuses are the request's or the
/// configuration's fault.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}

fn retry_after_text(d: &Option<Duration>) -> String {
    match d {
        Some(d) => format!(", retry after {} ms", d.as_millis()),
        None => String::new(),
    }
}

fn excerpt_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

fn attempt_path(attempts: &[Attempt]) -> String {
    let mut aliases: Vec<&str> = Vec::new();
    for a in attempts {
        if aliases.last() != Some(&a.alias.as_str()) {
            aliases.push(&a.alias);
        }
    }
    aliases.join(" → ")
}

/// A body excerpt fit for an error message: the secret (when given) replaced, whitespace
/// collapsed, at most [`EXCERPT_CHARS`] characters.
pub(crate) fn excerpt(body: &[u8], secret: Option<&str>) -> String {
    let text = String::from_utf8_lossy(body);
    let text = redact(&text, secret);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate_chars(&collapsed, EXCERPT_CHARS)
}

/// `text` with every occurrence of `secret` replaced by `[redacted]`.
pub(crate) fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() && text.contains(s) => text.replace(s, "[redacted]"),
        _ => text.to_string(),
    }
}

/// At most `max` characters (a trailing `…` counts as one), cut on a char boundary.
pub(crate) fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_redacts_before_truncating_and_respects_char_boundaries() {
        let key = "sk-secret-123";
        let body = format!("{}{key}{}", "é".repeat(290), "x".repeat(50));
        let e = excerpt(body.as_bytes(), Some(key));
        assert!(!e.contains("sk-secret"));
        assert_eq!(e.chars().count(), EXCERPT_CHARS);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt(b"  short \n body ", None), "short body");
    }

    #[test]
    fn kinds() {
        let up = |status| LlmError::Upstream {
            provider: "p".into(),
            alias: "a".into(),
            status,
            body: String::new(),
            retry_after: None,
        };
        assert_eq!(up(503).kind(), LlmErrorKind::Unavailable);
        assert_eq!(up(401).kind(), LlmErrorKind::Config);
        let ex = LlmError::Exhausted {
            attempts: vec![],
            last: Box::new(LlmError::SchemaViolation("x".into())),
        };
        assert_eq!(ex.kind(), LlmErrorKind::InvalidOutput);
        assert!(matches!(ex.root(), LlmError::SchemaViolation(_)));
    }
}
