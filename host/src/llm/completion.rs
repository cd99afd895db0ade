//! What the broker hands back: the answer, who gave it, what it cost, and every attempt
//! made on the way (failed ones too, with the tokens they consumed).

use super::error::LlmErrorKind;
use serde::Serialize;
use std::time::Duration;

/// A successful call.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Completion {
    /// The raw text answer. With the anthropic `tool` dialect: the tool input as JSON text.
    pub text: String,
    /// Some iff the request had a schema: the answer parsed and validated against it.
    pub json: Option<serde_json::Value>,
    /// Alias that finally answered (after fallbacks).
    pub alias: String,
    pub provider: String,
    /// Model as configured for `alias`.
    pub model: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Cost of the answering attempt, from the price table of `alias`. Failed attempts
    /// that consumed tokens are priced in `attempts` ([`Completion::total_cost_usd`]).
    pub cost_usd: f64,
    /// The whole call, retries, backoff and fallbacks included.
    pub latency: Duration,
    /// Every attempt in order, the answering one last.
    pub attempts: Vec<Attempt>,
}

impl Completion {
    /// Cost of every attempt of the call (what a budget should be charged).
    pub fn total_cost_usd(&self) -> f64 {
        total_cost_usd(&self.attempts)
    }
}

/// One request to a provider (or one skipped because its circuit was open).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attempt {
    pub alias: String,
    pub provider: String,
    pub model: String,
    /// `ok`, or the error that ended the attempt (names provider, alias, status and a
    /// short body excerpt; never a key).
    pub outcome: String,
    /// None for `ok`; else the error's category.
    pub error_kind: Option<LlmErrorKind>,
    pub latency: Duration,
    /// Tokens the provider reported (0 when the attempt never got an answer).
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Priced with the alias's table; non-zero for answers rejected by the schema too.
    pub cost_usd: f64,
}

impl Attempt {
    pub fn is_ok(&self) -> bool {
        self.error_kind.is_none()
    }
}

/// Sum of the attempts' costs.
pub fn total_cost_usd(attempts: &[Attempt]) -> f64 {
    attempts.iter().map(|a| a.cost_usd).sum()
}
