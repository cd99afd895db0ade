//! `llm`: completions through the host's [`LlmBroker`]. A plugin names a model alias its
//! grant allows; the host picks the provider, holds the key, applies the fallback chain,
//! validates structured output, and counts tokens and cost against the plugin's daily
//! budgets (the `llm_usage` ledger). Every call is audited with tokens, cost and outcome.
//!
//! [`LlmBroker`]: crate::llm::LlmBroker

use super::grants::{min_opt, min_opt_f64, narrow_names};
use super::{CallState, Capability};
use crate::db::llm_usage::utc_day;
use crate::llm::{CompletionRequest, LlmError, LlmErrorKind, Message, MessageRole};
use crate::wit::since_v0_1_0::{agent, llm as wit};
use serde::Deserialize;
use std::time::Instant;
use wasmtime::component::{HasSelf, Linker};
use wit::LlmError as GuestError;

/// Scope of `llm`: the model aliases a plugin may use and its budgets.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LlmScope {
    /// Model aliases (`[llm.models.<alias>]`). Declared: what the plugin asks for (empty =
    /// whatever is granted); granted: what it may use (empty = nothing).
    #[serde(default)]
    pub models: Vec<String>,
    /// Tokens (in + out) per UTC day.
    pub daily_tokens: Option<u64>,
    /// US dollars per UTC day.
    pub daily_cost_usd: Option<f64>,
    /// Ceiling on one request's `max-tokens` (default 4096).
    pub max_tokens_per_call: Option<u32>,
}

pub const DEFAULT_MAX_TOKENS_PER_CALL: u32 = 4096;

impl LlmScope {
    /// Declared ∩ granted aliases; the tighter of each budget.
    pub fn narrow(&self, granted: &LlmScope) -> LlmScope {
        LlmScope {
            models: narrow_names(&self.models, &granted.models),
            daily_tokens: min_opt(self.daily_tokens, granted.daily_tokens),
            daily_cost_usd: min_opt_f64(self.daily_cost_usd, granted.daily_cost_usd),
            max_tokens_per_call: min_opt(self.max_tokens_per_call, granted.max_tokens_per_call),
        }
    }
}

pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    agent::strata::plugin::llm::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
}

fn guest_error(e: &LlmError) -> GuestError {
    let m = e.to_string();
    match e.kind() {
        LlmErrorKind::RateLimited => GuestError::RateLimited(m),
        LlmErrorKind::Timeout => GuestError::Timeout(m),
        LlmErrorKind::InvalidOutput => GuestError::InvalidOutput(m),
        LlmErrorKind::Unavailable | LlmErrorKind::Config => GuestError::Unavailable(m),
    }
}

/// The budget check before a call: `Err` when a daily budget is spent; else the tokens
/// left today (the request's `max-tokens` is capped to it).
fn check_budget(scope: &LlmScope, used: &crate::db::LlmUsage) -> Result<Option<u64>, String> {
    if let Some(limit) = scope.daily_tokens {
        let used_tokens = used.tokens().max(0) as u64;
        if used_tokens >= limit {
            return Err(format!(
                "daily token budget spent: {used_tokens} of {limit} tokens used today"
            ));
        }
    }
    if let Some(limit) = scope.daily_cost_usd {
        if used.cost_usd >= limit {
            return Err(format!(
                "daily cost budget spent: ${:.4} of ${limit:.4} used today",
                used.cost_usd
            ));
        }
    }
    Ok(scope
        .daily_tokens
        .map(|l| l.saturating_sub(used.tokens().max(0) as u64)))
}

/// Tokens in, tokens out and cost of a call's attempts.
fn spent(attempts: &[crate::llm::Attempt]) -> (u64, u64, f64) {
    attempts.iter().fold((0, 0, 0.0), |(i, o, c), a| {
        (
            i + a.input_tokens as u64,
            o + a.output_tokens as u64,
            c + a.cost_usd,
        )
    })
}

struct Outcome {
    result: Result<wit::Completion, GuestError>,
    tokens_in: u64,
    tokens_out: u64,
    cost_usd: f64,
    detail: Option<String>,
    allowed: bool,
    target: String,
}

impl Outcome {
    /// A call that ended before reaching a provider: nothing spent. `allowed` says whether
    /// the grant allowed it (a host-side failure) or refused it (denied, over budget).
    fn refused(target: String, allowed: bool, error: fn(String) -> GuestError, m: String) -> Self {
        Outcome {
            result: Err(error(m.clone())),
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
            detail: Some(m),
            allowed,
            target,
        }
    }
}

impl CallState {
    fn llm_call(&mut self, req: wit::CompletionRequest) -> Outcome {
        let denied = |target, m| Outcome::refused(target, false, GuestError::Denied, m);
        let Some(scope) = self.grants.llm.clone() else {
            return denied("llm".into(), "llm is not granted".into());
        };
        let alias = match req.model.clone().or_else(|| scope.models.first().cloned()) {
            Some(a) => a,
            None => return denied("llm".into(), "no model alias is granted".into()),
        };
        let target = format!("model:{alias}");
        if !scope.models.contains(&alias) {
            return denied(
                target,
                format!(
                    "model alias {alias:?} is not granted (granted: {:?})",
                    scope.models
                ),
            );
        }
        let invalid = |target, m| Outcome::refused(target, false, GuestError::InvalidRequest, m);
        if req.messages.is_empty() {
            return invalid(
                target,
                "a completion request needs at least one message".into(),
            );
        }
        let schema = match req.json_schema.as_deref().map(serde_json::from_str) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => return invalid(target, format!("json-schema is not JSON: {e}")),
        };
        let Some(broker) = self.services.llm.clone() else {
            let m = "no LLM provider is configured on this host".to_string();
            return Outcome::refused(target, true, GuestError::Unavailable, m);
        };
        let day = utc_day(crate::domain::now_ms());
        let db = self.services.db.clone();
        let used = match &db {
            Some(db) => match self
                .services
                .block_on(db.llm_usage(&self.plugin.name, &day))
            {
                Ok(u) => u,
                Err(e) => {
                    let m = format!("cannot read the LLM usage ledger: {e}");
                    return Outcome::refused(target, true, GuestError::Unavailable, m);
                }
            },
            None => Default::default(),
        };
        let tokens_left = match check_budget(&scope, &used) {
            Ok(left) => left,
            Err(m) => return Outcome::refused(target, false, GuestError::OverBudget, m),
        };
        let mut max_tokens = req
            .max_tokens
            .min(
                scope
                    .max_tokens_per_call
                    .unwrap_or(DEFAULT_MAX_TOKENS_PER_CALL),
            )
            .max(1);
        if let Some(left) = tokens_left {
            max_tokens = max_tokens.min(left.min(u32::MAX as u64) as u32).max(1);
        }
        let request = CompletionRequest {
            system: req.system,
            messages: req
                .messages
                .into_iter()
                .map(|m| Message {
                    role: match m.role {
                        wit::Role::User => MessageRole::User,
                        wit::Role::Assistant => MessageRole::Assistant,
                    },
                    content: m.content,
                })
                .collect(),
            max_tokens,
            json_schema: schema,
        };
        let result = self.services.block_on(broker.complete(&alias, &request));
        // Failed attempts that consumed tokens (e.g. a schema-violating answer) count too.
        let (tokens_in, tokens_out, cost_usd) = match &result {
            Ok(c) if c.attempts.is_empty() => {
                (c.input_tokens as u64, c.output_tokens as u64, c.cost_usd)
            }
            Ok(c) => spent(&c.attempts),
            Err(e) => spent(e.attempts()),
        };
        if let Some(db) = &db {
            if tokens_in + tokens_out > 0 || cost_usd > 0.0 {
                if let Err(e) = self.services.block_on(db.add_llm_usage(
                    &self.plugin.name,
                    &day,
                    tokens_in as i64,
                    tokens_out as i64,
                    cost_usd,
                )) {
                    tracing::error!(plugin = %self.plugin.id, error = %e, "cannot record LLM usage");
                }
            }
        }
        match result {
            Ok(c) => Outcome {
                detail: Some(format!(
                    "answered by {} ({} {}) in {} attempt(s)",
                    c.alias,
                    c.provider,
                    c.model,
                    c.attempts.len().max(1)
                )),
                result: Ok(wit::Completion {
                    text: c.text,
                    json: c.json.map(|v| v.to_string()),
                    model: c.alias,
                    usage: wit::Usage {
                        input_tokens: c.input_tokens,
                        output_tokens: c.output_tokens,
                        cost_usd: c.cost_usd,
                    },
                    latency_ms: c.latency.as_millis().min(u32::MAX as u128) as u32,
                }),
                tokens_in,
                tokens_out,
                cost_usd,
                allowed: true,
                target,
            },
            Err(e) => Outcome {
                detail: Some(format!("failed: {e}")),
                result: Err(guest_error(&e)),
                tokens_in,
                tokens_out,
                cost_usd,
                allowed: true,
                target,
            },
        }
    }
}

impl wit::Host for CallState {
    fn complete(&mut self, request: wit::CompletionRequest) -> Result<wit::Completion, GuestError> {
        let started = Instant::now();
        let o = self.llm_call(request);
        self.usage.add_llm(o.tokens_in, o.tokens_out, o.cost_usd);
        self.audit_with_usage(
            Capability::Llm,
            "complete",
            &o.target,
            o.allowed,
            o.detail,
            started,
            (o.tokens_in, o.tokens_out, o.cost_usd),
        );
        o.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::LlmUsage;

    #[test]
    fn budget_denies_when_spent_and_caps_tokens_left() {
        let scope = LlmScope {
            models: vec!["m".into()],
            daily_tokens: Some(1000),
            daily_cost_usd: Some(1.0),
            max_tokens_per_call: None,
        };
        let used = |t: i64, c: f64| LlmUsage {
            calls: 1,
            tokens_in: t,
            tokens_out: 0,
            cost_usd: c,
        };
        assert_eq!(check_budget(&scope, &used(400, 0.1)), Ok(Some(600)));
        assert!(check_budget(&scope, &used(1000, 0.1))
            .unwrap_err()
            .contains("token budget"));
        assert!(check_budget(&scope, &used(10, 1.5))
            .unwrap_err()
            .contains("cost budget"));
    }

    #[test]
    fn narrowing_keeps_only_aliases_both_sides_name_and_the_tighter_budgets() {
        let declared = LlmScope {
            models: vec!["a".into(), "b".into()],
            daily_tokens: Some(500),
            ..Default::default()
        };
        let granted = LlmScope {
            models: vec!["b".into(), "c".into()],
            daily_tokens: Some(1000),
            daily_cost_usd: Some(2.0),
            max_tokens_per_call: Some(256),
        };
        let e = declared.narrow(&granted);
        assert_eq!(e.models, vec!["b".to_string()]);
        assert_eq!(e.daily_tokens, Some(500));
        assert_eq!(e.daily_cost_usd, Some(2.0));
        assert_eq!(e.max_tokens_per_call, Some(256));
        assert_eq!(LlmScope::default().narrow(&granted).models, granted.models);
    }
}
