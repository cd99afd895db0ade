//! The broker: resolves an alias, walks its fallback chain, retries per provider with
//! backoff, consults and feeds each provider's circuit breaker, validates structured
//! output, prices every attempt.
//!
//! Per alias of the chain `[alias, fallback…]`, up to `llm.retry.max_attempts` attempts:
//!
//! | outcome of an attempt                               | next                                    |
//! |-----------------------------------------------------|-----------------------------------------|
//! | answer (valid against the schema, if any)           | done                                    |
//! | timeout, connection error, HTTP 408/5xx             | retry after backoff (full jitter), then fall back |
//! | HTTP 429 / 503 with `Retry-After` ≤ `max_delay_ms`  | retry after that delay, then fall back  |
//! | `Retry-After` > `max_delay_ms`                      | fall back at once                       |
//! | unreadable answer or schema violation               | retry once at once, then fall back      |
//! | circuit open                                        | fall back at once (no request)          |
//! | other HTTP 4xx (auth, bad request, not found)       | stop: no retry, no fallback             |
//!
//! Invalid output is retried only once because a model that answered badly twice to the
//! same request usually keeps doing so; a different model is the better bet. Every attempt
//! (failed ones with the tokens they consumed) is listed in the result or in
//! [`LlmError::Exhausted`].
//!
//! `complete` is cancel-safe: dropping its future aborts the request in flight and frees a
//! half-open probe slot.

use super::completion::{Attempt, Completion};
use super::error::{is_retryable_status, LlmError, LlmErrorKind};
use super::provider::{Answer, Provider, ProviderStatus};
use super::request::{CompletionRequest, MessageRole};
use super::schema::{OutputProblem, OutputSchema};
use super::settings::{LlmSettings, ModelSettings, RetrySettings};
use rand::Rng;
use std::collections::BTreeMap;
use std::env::VarError;
use std::time::{Duration, Instant};

/// Brokers LLM calls for the host. `Send + Sync`; share it as `Arc<LlmBroker>`.
#[derive(Debug)]
pub struct LlmBroker {
    models: BTreeMap<String, ModelSettings>,
    retry: RetrySettings,
    providers: BTreeMap<String, Provider>,
    http: reqwest::Client,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<LlmBroker>();
};

/// How much one call may consume in all its attempts (`None`: no bound). The `llm`
/// capability passes what it reserved against the plugin's budgets: before each attempt
/// the broker checks that what the call consumed so far plus the attempt's upper bound
/// (prompt bound + `max_tokens`, priced with the attempt's alias) still fits, and stops
/// the chain otherwise — so retries and fallbacks never spend past the reservation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Allowance {
    pub tokens: Option<u64>,
    pub cost_usd: Option<f64>,
}

impl Allowance {
    /// Whether one more attempt on `model` (at most `tokens` tokens, `input` of them
    /// prompt) fits after `attempts`.
    fn covers(&self, attempts: &[Attempt], input: u64, output: u32, model: &ModelSettings) -> bool {
        let (spent_tokens, spent_cost) = attempts.iter().fold((0u64, 0.0), |(t, c), a| {
            (
                t + u64::from(a.input_tokens) + u64::from(a.output_tokens),
                c + a.cost_usd,
            )
        });
        let tokens_ok = self
            .tokens
            .is_none_or(|limit| spent_tokens + input + u64::from(output) <= limit);
        let cost_ok = self.cost_usd.is_none_or(|limit| {
            spent_cost + price(model, input, u64::from(output)) <= limit + 1e-9
        });
        tokens_ok && cost_ok
    }
}

/// The price of `input` + `output` tokens with `model`'s table.
pub fn price(model: &ModelSettings, input: u64, output: u64) -> f64 {
    (input as f64 * model.input_usd_per_mtok + output as f64 * model.output_usd_per_mtok)
        / 1_000_000.0
}

/// What to do after a failed attempt.
enum Next {
    Retry(Duration),
    Fallback,
    Stop,
}

impl LlmBroker {
    /// Validates `settings`, reads each provider's key from the environment variable its
    /// `api_key_env` names (a missing or empty variable is an error naming the variable)
    /// and builds the one HTTP client (rustls, no redirects) all providers share.
    pub fn new(settings: &LlmSettings) -> Result<LlmBroker, LlmError> {
        Self::with_env(settings, &|var| std::env::var(var))
    }

    fn with_env(
        settings: &LlmSettings,
        env: &dyn Fn(&str) -> Result<String, VarError>,
    ) -> Result<LlmBroker, LlmError> {
        settings.validate().map_err(LlmError::Config)?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry `x-api-key` to another host; providers do not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LlmError::Config(format!("cannot build the HTTP client: {e}")))?;
        let mut providers = BTreeMap::new();
        for (name, p) in &settings.providers {
            providers.insert(
                name.clone(),
                Provider::new(name, p, &settings.breaker, env)?,
            );
        }
        Ok(LlmBroker {
            models: settings.models.clone(),
            retry: settings.retry.clone(),
            providers,
            http,
        })
    }

    /// The configured aliases, sorted.
    pub fn aliases(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }

    /// Per provider (sorted by name): breaker state, counters, last error.
    pub fn status(&self) -> Vec<ProviderStatus> {
        self.providers.values().map(Provider::status).collect()
    }

    /// The settings of `alias` (prices, fallbacks).
    pub fn model(&self, alias: &str) -> Option<&ModelSettings> {
        self.models.get(alias)
    }

    /// The longest a call of `alias` can take: per alias of its chain, `max_attempts` ×
    /// (the provider's timeout + the longest retry delay).
    pub fn max_call_duration(&self, alias: &str) -> Duration {
        let Some(first) = self.models.get(alias) else {
            return Duration::ZERO;
        };
        let per_attempt_delay = Duration::from_millis(self.retry.max_delay_ms);
        std::iter::once(alias)
            .chain(first.fallback.iter().map(String::as_str))
            .filter_map(|name| self.models.get(name))
            .filter_map(|m| self.providers.get(&m.provider))
            .map(|p| (p.settings.timeout() + per_attempt_delay) * self.retry.max_attempts.max(1))
            .sum()
    }

    /// Completes `req` with `alias`, falling back along its chain. See the module docs for
    /// retry and fallback rules. Errors after at least one attempt are
    /// [`LlmError::Exhausted`]; [`LlmError::kind`] gives the plugin-facing category.
    pub async fn complete(
        &self,
        alias: &str,
        req: &CompletionRequest,
    ) -> Result<Completion, LlmError> {
        self.complete_within(alias, req, Allowance::default()).await
    }

    /// [`Self::complete`] consuming at most `allowance` over all attempts: an attempt
    /// that might pass it is not made (the chain ends with the errors so far).
    pub async fn complete_within(
        &self,
        alias: &str,
        req: &CompletionRequest,
        allowance: Allowance,
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let first = self
            .models
            .get(alias)
            .ok_or_else(|| LlmError::UnknownAlias(alias.to_string()))?;
        check_request(req)?;
        let schema = req
            .json_schema
            .as_ref()
            .map(OutputSchema::compile)
            .transpose()
            .map_err(LlmError::InvalidRequest)?;

        let chain = std::iter::once(alias).chain(first.fallback.iter().map(String::as_str));
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut last: Option<LlmError> = None;
        'chain: for name in chain {
            let Some(model) = self.models.get(name) else {
                continue; // validated at construction
            };
            let Some(provider) = self.providers.get(&model.provider) else {
                continue;
            };
            let mut invalid_outputs = 0u32;
            let input_bound = req.input_tokens_upper_bound();
            for number in 1..=self.retry.max_attempts {
                if !allowance.covers(&attempts, input_bound, req.max_tokens, model) {
                    tracing::info!(
                        alias = name,
                        attempts = attempts.len(),
                        "llm call stops: its budget reservation does not cover another attempt"
                    );
                    last.get_or_insert_with(|| {
                        LlmError::Config(format!(
                            "the budget reserved for this call does not cover an attempt on alias {name:?}"
                        ))
                    });
                    break 'chain;
                }
                let Some(permit) = provider.breaker.try_acquire() else {
                    provider.record_short_circuit();
                    let err = LlmError::CircuitOpen {
                        provider: provider.name.clone(),
                    };
                    attempts.push(failed_attempt(name, model, &err, Duration::ZERO, None));
                    log_attempt(attempts.last(), number);
                    last = Some(err);
                    continue 'chain;
                };
                if permit.is_probe() {
                    tracing::info!(provider = %provider.name, alias = name, "llm circuit half-open: probing");
                }
                let t = Instant::now();
                let result = provider
                    .call(&self.http, name, &model.model, req, schema.as_ref())
                    .await;
                let latency = t.elapsed();
                let (err, answer) = match result {
                    Ok(answer) => {
                        permit.success();
                        match check_answer(&answer, schema.as_ref(), &provider.name, name) {
                            Ok(json) => {
                                provider
                                    .record_call(None, (answer.input_tokens, answer.output_tokens));
                                let attempt = Attempt {
                                    alias: name.to_string(),
                                    provider: provider.name.clone(),
                                    model: model.model.clone(),
                                    outcome: "ok".into(),
                                    error_kind: None,
                                    latency,
                                    input_tokens: answer.input_tokens,
                                    output_tokens: answer.output_tokens,
                                    cost_usd: model
                                        .cost_usd(answer.input_tokens, answer.output_tokens),
                                };
                                attempts.push(attempt);
                                log_attempt(attempts.last(), number);
                                return Ok(self.finish(
                                    alias, name, model, provider, answer, json, attempts, started,
                                ));
                            }
                            Err(e) => (e, Some(answer)),
                        }
                    }
                    Err(e) => {
                        if is_breaker_failure(&e) {
                            permit.failure();
                        } else {
                            permit.success();
                        }
                        (e, None)
                    }
                };
                provider.record_call(
                    Some(&err),
                    answer
                        .as_ref()
                        .map_or((0, 0), |a| (a.input_tokens, a.output_tokens)),
                );
                attempts.push(failed_attempt(name, model, &err, latency, answer.as_ref()));
                log_attempt(attempts.last(), number);
                let next = self.next_step(&err, number, &mut invalid_outputs);
                last = Some(err);
                match next {
                    Next::Retry(delay) => {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                    }
                    Next::Fallback => continue 'chain,
                    Next::Stop => break 'chain,
                }
            }
        }
        let last = last
            .unwrap_or_else(|| LlmError::Config(format!("alias {alias:?} has no usable provider")));
        let err = LlmError::Exhausted {
            attempts,
            last: Box::new(last),
        };
        tracing::warn!(
            alias,
            attempts = err.attempts().len(),
            kind = %err.kind(),
            cost_usd = err.cost_usd(),
            latency_ms = started.elapsed().as_millis() as u64,
            error = %err,
            "llm call failed"
        );
        Err(err)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        requested: &str,
        alias: &str,
        model: &ModelSettings,
        provider: &Provider,
        answer: Answer,
        json: Option<serde_json::Value>,
        attempts: Vec<Attempt>,
        started: Instant,
    ) -> Completion {
        let completion = Completion {
            text: answer.text,
            json,
            alias: alias.to_string(),
            provider: provider.name.clone(),
            model: model.model.clone(),
            input_tokens: answer.input_tokens,
            output_tokens: answer.output_tokens,
            cost_usd: model.cost_usd(answer.input_tokens, answer.output_tokens),
            latency: started.elapsed(),
            attempts,
        };
        tracing::info!(
            alias = requested,
            answered_by = alias,
            provider = %completion.provider,
            model = %completion.model,
            input_tokens = completion.input_tokens,
            output_tokens = completion.output_tokens,
            cost_usd = completion.cost_usd,
            total_cost_usd = completion.total_cost_usd(),
            attempts = completion.attempts.len(),
            truncated = answer.truncated,
            latency_ms = completion.latency.as_millis() as u64,
            "llm call"
        );
        completion
    }

    fn next_step(&self, err: &LlmError, number: u32, invalid_outputs: &mut u32) -> Next {
        let out_of_attempts = number >= self.retry.max_attempts;
        let max_delay = Duration::from_millis(self.retry.max_delay_ms);
        match err {
            LlmError::Malformed(_) | LlmError::SchemaViolation(_) => {
                *invalid_outputs += 1;
                if *invalid_outputs >= 2 || out_of_attempts {
                    Next::Fallback
                } else {
                    Next::Retry(Duration::ZERO)
                }
            }
            LlmError::RateLimited { retry_after, .. } | LlmError::Upstream { retry_after, .. }
                if err.kind() != LlmErrorKind::Config =>
            {
                match retry_after {
                    _ if out_of_attempts => Next::Fallback,
                    Some(wait) if *wait > max_delay => Next::Fallback,
                    Some(wait) => Next::Retry(*wait),
                    None => Next::Retry(self.backoff(number)),
                }
            }
            LlmError::Timeout { .. } | LlmError::Unreachable { .. } => {
                if out_of_attempts {
                    Next::Fallback
                } else {
                    Next::Retry(self.backoff(number))
                }
            }
            LlmError::CircuitOpen { .. } => Next::Fallback,
            _ => Next::Stop,
        }
    }

    /// Full jitter: uniform in `[0, min(max_delay, base · 2^(number-1))]`.
    fn backoff(&self, number: u32) -> Duration {
        backoff(&self.retry, number, &mut rand::rng())
    }
}

pub(crate) fn backoff(retry: &RetrySettings, number: u32, rng: &mut impl Rng) -> Duration {
    let factor = 1u64
        .checked_shl(number.saturating_sub(1))
        .unwrap_or(u64::MAX);
    let cap = retry
        .base_delay_ms
        .saturating_mul(factor)
        .min(retry.max_delay_ms);
    Duration::from_millis(rng.random_range(0..=cap))
}

/// Availability failures feed the breaker; any other HTTP answer shows the provider is up.
fn is_breaker_failure(err: &LlmError) -> bool {
    match err {
        LlmError::Timeout { .. } | LlmError::Unreachable { .. } | LlmError::RateLimited { .. } => {
            true
        }
        LlmError::Upstream { status, .. } => is_retryable_status(*status),
        _ => false,
    }
}

fn check_request(req: &CompletionRequest) -> Result<(), LlmError> {
    if req.messages.is_empty() {
        return Err(LlmError::InvalidRequest("no messages".into()));
    }
    if let Some(i) = req
        .messages
        .iter()
        .position(|m| m.content.trim().is_empty())
    {
        return Err(LlmError::InvalidRequest(format!("message {i} is empty")));
    }
    if req.messages[0].role != MessageRole::User {
        // Anthropic refuses it, and so do many chat templates of local servers.
        return Err(LlmError::InvalidRequest(
            "the first message must be from the user".into(),
        ));
    }
    if req.max_tokens == 0 {
        return Err(LlmError::InvalidRequest(
            "max_tokens must be at least 1".into(),
        ));
    }
    Ok(())
}

/// The validated JSON (None without a schema), or the error that rejects the answer.
fn check_answer(
    answer: &Answer,
    schema: Option<&OutputSchema>,
    provider: &str,
    alias: &str,
) -> Result<Option<serde_json::Value>, LlmError> {
    let Some(schema) = schema else {
        return Ok(None);
    };
    let cut = if answer.truncated {
        " (the answer was cut off at max_tokens)"
    } else {
        ""
    };
    match schema.check(&answer.text, answer.structured.as_ref()) {
        Ok(json) => Ok(Some(json)),
        Err(OutputProblem::NotJson(m)) => Err(LlmError::Malformed(format!(
            "provider {provider:?} (alias {alias:?}): {m}{cut}"
        ))),
        Err(OutputProblem::Violation(m)) => Err(LlmError::SchemaViolation(format!(
            "provider {provider:?} (alias {alias:?}): {m}{cut}"
        ))),
    }
}

fn failed_attempt(
    alias: &str,
    model: &ModelSettings,
    err: &LlmError,
    latency: Duration,
    answer: Option<&Answer>,
) -> Attempt {
    let (input_tokens, output_tokens) =
        answer.map_or((0, 0), |a| (a.input_tokens, a.output_tokens));
    Attempt {
        alias: alias.to_string(),
        provider: model.provider.clone(),
        model: model.model.clone(),
        outcome: err.to_string(),
        error_kind: Some(err.kind()),
        latency,
        input_tokens,
        output_tokens,
        cost_usd: model.cost_usd(input_tokens, output_tokens),
    }
}

fn log_attempt(attempt: Option<&Attempt>, number: u32) {
    if let Some(a) = attempt {
        tracing::debug!(
            alias = %a.alias,
            provider = %a.provider,
            model = %a.model,
            attempt = number,
            outcome = %a.outcome,
            latency_ms = a.latency.as_millis() as u64,
            input_tokens = a.input_tokens,
            output_tokens = a.output_tokens,
            "llm attempt"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_is_capped_full_jitter() {
        let retry = RetrySettings {
            max_attempts: 10,
            base_delay_ms: 100,
            max_delay_ms: 1_000,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for number in 1..=70 {
            let cap = (100u64 << (number - 1).min(20)).min(1_000);
            for _ in 0..20 {
                let d = backoff(&retry, number, &mut rng);
                assert!(d <= Duration::from_millis(cap), "{number}: {d:?}");
            }
        }
    }

    #[test]
    fn missing_key_variable_is_named_not_valued() {
        let settings: LlmSettings = toml::from_str(
            r#"
            [providers.claude]
            kind = "anthropic"
            base_url = "https://api.anthropic.com"
            api_key_env = "NO_SUCH_KEY_VAR"
            "#,
        )
        .unwrap();
        let err = LlmBroker::with_env(&settings, &|_| Err(VarError::NotPresent)).unwrap_err();
        assert!(err.to_string().contains("NO_SUCH_KEY_VAR"), "{err}");
        let err = LlmBroker::with_env(&settings, &|_| Ok("bad\u{7f}key".into())).unwrap_err();
        assert!(!err.to_string().contains("bad"), "{err}");
    }
}
