//! `llm`: completions through the host's [`LlmBroker`]. A plugin names a model alias its
//! grant allows; the host picks the provider, holds the key, applies the fallback chain,
//! validates structured output, and counts tokens and cost against the plugin's daily
//! budgets (the `llm_usage` ledger). Every call is audited with tokens, cost and outcome.
//!
//! [`LlmBroker`]: crate::llm::LlmBroker

use super::grants::{min_opt, min_opt_f64, narrow_names};
use super::{CallState, Capability};
use crate::db::llm_usage::utc_day;
use crate::llm::{Allowance, CompletionRequest, LlmError, LlmErrorKind, Message, MessageRole};
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

/// How long a reservation outlives the longest a call can take (the broker's worst case:
/// every attempt of every alias of the chain timing out after the longest retry delay).
const RESERVATION_MARGIN_MS: i64 = 60_000;
/// Reservation attempts when concurrent calls keep taking what was left in between.
const RESERVE_TRIES: usize = 4;

/// What one call may use: `max_tokens` for the request and the reservation's estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Plan {
    max_tokens: u32,
    tokens: u64,
    cost_usd: f64,
}

/// The budget check before a call, on what is spent and reserved today: `Err` (naming the
/// budget and the numbers) when even one output token would not fit; else the estimate
/// to reserve — the prompt's upper bound ([`CompletionRequest::input_tokens_upper_bound`])
/// plus `max_tokens`, capped so both fit what is left of the token budget and, priced
/// with `prices`, of the cost budget.
fn plan(
    scope: &LlmScope,
    state: &crate::db::LlmBudgetState,
    input: u64,
    max_tokens: u32,
    prices: Option<&crate::llm::ModelSettings>,
) -> Result<Plan, String> {
    let mut max_tokens = max_tokens.max(1);
    let committed = state.committed_tokens().max(0) as u64;
    let in_flight = |reserved: String| {
        if state.reserved_tokens > 0 || state.reserved_cost_usd > 0.0 {
            format!(" and {reserved} reserved by calls in flight")
        } else {
            String::new()
        }
    };
    if let Some(limit) = scope.daily_tokens {
        let left = limit.saturating_sub(committed);
        if input + 1 > left {
            return Err(format!(
                "daily token budget: this call needs at least {} tokens (prompt bound {input} + 1), \
                 {left} of {limit} are left today ({} used{})",
                input + 1,
                state.used.tokens(),
                in_flight(state.reserved_tokens.to_string())
            ));
        }
        max_tokens = max_tokens.min((left - input).min(u32::MAX as u64) as u32);
    }
    let (price_in, price_out) = prices.map_or((0.0, 0.0), |m| {
        (m.input_usd_per_mtok, m.output_usd_per_mtok)
    });
    if let Some(limit) = scope.daily_cost_usd {
        let committed = state.committed_cost_usd();
        let left = limit - committed;
        let input_cost = input as f64 * price_in / 1e6;
        let one = input_cost + price_out / 1e6;
        if committed >= limit || one > left + crate::db::llm_usage::COST_EPSILON_USD {
            return Err(format!(
                "daily cost budget: this call needs at least ${one:.6} (prompt bound {input} tokens + 1), \
                 ${:.6} of ${limit:.6} is left today (${:.6} used{})",
                left.max(0.0),
                state.used.cost_usd,
                in_flight(format!("${:.6}", state.reserved_cost_usd))
            ));
        }
        if price_out > 0.0 {
            let affordable = ((left - input_cost) * 1e6 / price_out).floor().max(1.0);
            max_tokens = max_tokens.min(affordable.min(u32::MAX as f64) as u32);
        }
    }
    let max_tokens = max_tokens.max(1);
    Ok(Plan {
        max_tokens,
        tokens: input + u64::from(max_tokens),
        cost_usd: (input as f64 * price_in + f64::from(max_tokens) * price_out) / 1e6,
    })
}

/// The budgets and what is spent and reserved against them, for a refusal's detail.
fn budget_numbers(scope: &LlmScope, state: &crate::db::LlmBudgetState) -> String {
    let mut parts = Vec::new();
    if let Some(limit) = scope.daily_tokens {
        parts.push(format!(
            "daily token budget: {} used + {} reserved of {limit}",
            state.used.tokens(),
            state.reserved_tokens
        ));
    }
    if let Some(limit) = scope.daily_cost_usd {
        parts.push(format!(
            "daily cost budget: ${:.6} used + ${:.6} reserved of ${limit:.6}",
            state.used.cost_usd, state.reserved_cost_usd
        ));
    }
    parts.join("; ")
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
        let mut request = CompletionRequest {
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
            max_tokens: req
                .max_tokens
                .min(
                    scope
                        .max_tokens_per_call
                        .unwrap_or(DEFAULT_MAX_TOKENS_PER_CALL),
                )
                .max(1),
            json_schema: schema,
        };
        let now = crate::domain::now_ms();
        let day = utc_day(now);
        let db = self.services.db.clone();
        let budgeted = scope.daily_tokens.is_some() || scope.daily_cost_usd.is_some();
        // Reserve the estimate before the call (see `db::llm_usage`).
        let mut reservation = None;
        if let (Some(db), true) = (&db, budgeted) {
            let input = request.input_tokens_upper_bound();
            let ttl = broker.max_call_duration(&alias).as_millis() as i64 + RESERVATION_MARGIN_MS;
            let unavailable = |e: crate::db::DbError| {
                let m = format!("cannot reserve against the LLM budget: {e}");
                Outcome::refused(target.clone(), true, GuestError::Unavailable, m)
            };
            let mut raced = None;
            for _ in 0..RESERVE_TRIES {
                let state =
                    match self
                        .services
                        .block_on(db.llm_budget_state(&self.plugin.name, &day, now))
                    {
                        Ok(s) => s,
                        Err(e) => return unavailable(e),
                    };
                let p = match plan(
                    &scope,
                    &state,
                    input,
                    request.max_tokens,
                    broker.model(&alias),
                ) {
                    Ok(p) => p,
                    Err(m) => return Outcome::refused(target, false, GuestError::OverBudget, m),
                };
                let r = crate::db::LlmReservation {
                    id: uuid::Uuid::now_v7().to_string(),
                    plugin: self.plugin.name.clone(),
                    day: day.clone(),
                    tokens: p.tokens.min(i64::MAX as u64) as i64,
                    cost_usd: p.cost_usd,
                    expires_at: now.saturating_add(ttl),
                };
                let limit_tokens = scope.daily_tokens.map(|l| l.min(i64::MAX as u64) as i64);
                match self.services.block_on(db.reserve_llm(
                    &r,
                    limit_tokens,
                    scope.daily_cost_usd,
                    now,
                )) {
                    Ok(true) => {
                        request.max_tokens = p.max_tokens;
                        reservation = Some(r);
                        break;
                    }
                    // Another call reserved in between: plan again on the new numbers.
                    Ok(false) => raced = Some((state, p)),
                    Err(e) => return unavailable(e),
                }
            }
            if let (None, Some((state, p))) = (&reservation, raced) {
                let m = format!(
                    "calls in flight reserved what was left before this call's estimate \
                     ({} tokens, ${:.6}) could be: {}",
                    p.tokens,
                    p.cost_usd,
                    budget_numbers(&scope, &state)
                );
                return Outcome::refused(target, false, GuestError::OverBudget, m);
            }
        }
        let allowance = Allowance {
            tokens: reservation
                .as_ref()
                .filter(|_| scope.daily_tokens.is_some())
                .map(|r| r.tokens as u64),
            cost_usd: reservation
                .as_ref()
                .filter(|_| scope.daily_cost_usd.is_some())
                .map(|r| r.cost_usd),
        };
        let result = self
            .services
            .block_on(broker.complete_within(&alias, &request, allowance));
        // Failed attempts that consumed tokens (e.g. a schema-violating answer) count too.
        let (tokens_in, tokens_out, cost_usd) = match &result {
            Ok(c) if c.attempts.is_empty() => {
                (c.input_tokens as u64, c.output_tokens as u64, c.cost_usd)
            }
            Ok(c) => spent(&c.attempts),
            Err(e) => spent(e.attempts()),
        };
        if let Some(db) = &db {
            // Settle the reservation to what the call consumed (nothing: a release), on the
            // day it was reserved on; without budgets just add to the ledger.
            let recorded = match &reservation {
                Some(r) => self.services.block_on(db.settle_llm(
                    &r.id,
                    &r.plugin,
                    &r.day,
                    tokens_in as i64,
                    tokens_out as i64,
                    cost_usd,
                )),
                None if tokens_in + tokens_out > 0 || cost_usd > 0.0 => {
                    self.services.block_on(db.add_llm_usage(
                        &self.plugin.name,
                        &day,
                        tokens_in as i64,
                        tokens_out as i64,
                        cost_usd,
                    ))
                }
                None => Ok(()),
            };
            if let Err(e) = recorded {
                tracing::error!(plugin = %self.plugin.id, error = %e, "cannot record LLM usage");
            }
        }
        let reserved = reservation.as_ref().map_or(String::new(), |r| {
            format!(
                "; reserved {} tokens / ${:.6} (max_tokens {}), settled to {} / ${cost_usd:.6}",
                r.tokens,
                r.cost_usd,
                request.max_tokens,
                tokens_in + tokens_out
            )
        });
        // What a provider answered may quote a configured secret: redacted here, before the
        // plugin (and so its output rows) or the audit log sees it.
        let secrets = self.services.secrets.clone();
        match result {
            Ok(c) => Outcome {
                detail: Some(format!(
                    "answered by {} ({} {}) in {} attempt(s){reserved}",
                    c.alias,
                    c.provider,
                    c.model,
                    c.attempts.len().max(1)
                )),
                result: Ok(wit::Completion {
                    text: secrets.redact_string(c.text),
                    json: c.json.map(|mut v| {
                        secrets.redact_json(&mut v);
                        v.to_string()
                    }),
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
                detail: Some(format!("failed: {e}{reserved}")),
                result: Err(match guest_error(&e) {
                    GuestError::RateLimited(m) => GuestError::RateLimited(secrets.redact_string(m)),
                    GuestError::Timeout(m) => GuestError::Timeout(secrets.redact_string(m)),
                    GuestError::InvalidOutput(m) => {
                        GuestError::InvalidOutput(secrets.redact_string(m))
                    }
                    GuestError::Unavailable(m) => GuestError::Unavailable(secrets.redact_string(m)),
                    other => other,
                }),
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
        let taped = super::tape::completion_request(&request);
        let target = request.model.clone().unwrap_or_default();
        self.taped(Capability::Llm, "complete", &target, taped, |s| {
            s.llm_complete(request)
        })
    }
}

impl CallState {
    fn llm_complete(
        &mut self,
        request: wit::CompletionRequest,
    ) -> Result<wit::Completion, GuestError> {
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
        use crate::db::LlmBudgetState;
        let scope = LlmScope {
            models: vec!["m".into()],
            daily_tokens: Some(1000),
            daily_cost_usd: Some(1.0),
            max_tokens_per_call: None,
        };
        let state = |t: i64, reserved: i64, c: f64| LlmBudgetState {
            used: LlmUsage {
                calls: 1,
                tokens_in: t,
                tokens_out: 0,
                cost_usd: c,
            },
            reserved_tokens: reserved,
            reserved_cost_usd: 0.0,
        };
        // 600 left, prompt bound 100: max_tokens capped to 500, estimate 600.
        let p = plan(&scope, &state(400, 0, 0.1), 100, 4096, None).unwrap();
        assert_eq!((p.max_tokens, p.tokens), (500, 600));
        // Reservations in flight count like spent tokens.
        let p = plan(&scope, &state(300, 100, 0.1), 100, 256, None).unwrap();
        assert_eq!((p.max_tokens, p.tokens), (256, 356));
        let e = plan(&scope, &state(900, 50, 0.1), 100, 256, None).unwrap_err();
        assert!(
            e.contains("token budget") && e.contains("50 of 1000") && e.contains("50 reserved"),
            "{e}"
        );
        assert!(plan(&scope, &state(1000, 0, 0.1), 0, 1, None)
            .unwrap_err()
            .contains("token budget"));
        assert!(plan(&scope, &state(10, 0, 1.5), 1, 1, None)
            .unwrap_err()
            .contains("cost budget"));
        // Priced: $0.01 left at $1/$10 per Mtok, prompt 1000 tokens ($0.001) → 900 out.
        let prices = crate::llm::ModelSettings {
            provider: "p".into(),
            model: "m".into(),
            input_usd_per_mtok: 1.0,
            output_usd_per_mtok: 10.0,
            fallback: vec![],
        };
        let scope = LlmScope {
            daily_tokens: None,
            daily_cost_usd: Some(0.02),
            ..scope
        };
        let p = plan(&scope, &state(0, 0, 0.01), 1000, 4096, Some(&prices)).unwrap();
        assert_eq!(p.max_tokens, 900);
        assert!((p.cost_usd - 0.01).abs() < 1e-12, "{}", p.cost_usd);
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
