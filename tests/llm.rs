//! The LLM broker over real HTTP against a scripted mock provider (`support/llm_mock.rs`):
//! both wire protocols, structured-output dialects and validation, retries with
//! `Retry-After`, fallbacks, timeouts, the circuit breaker, config validation, and that no
//! key ever reaches an error message.
//!
//! No test asserts a duration: the machine is shared and noisy. Small timeouts appear only
//! where a timeout has to happen.

mod common;
#[path = "support/llm_mock.rs"]
mod llm_mock;

use common::llm::{
    set_keys, settings, LlmToml, ANTHROPIC_KEY, OPENAI_KEY, OPENAI_KEY_VAR, UNSET_KEY_VAR,
};
use llm_mock::{Behaviour, MockLlm};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use strata::llm::{
    BreakerState, CompletionRequest, LlmBroker, LlmError, LlmErrorKind, LlmSettings, Message,
    ProviderKind,
};

fn request() -> CompletionRequest {
    CompletionRequest::user(
        "Qualify this lead: ACME, 200 employees, budget approved.",
        256,
    )
    .with_system("You are a CRM assistant.")
}

fn score_schema() -> Value {
    json!({
        "type": "object",
        "required": ["score", "reason"],
        "properties": {
            "score": {"type": "integer", "minimum": 0, "maximum": 100},
            "reason": {"type": "string"}
        },
        "additionalProperties": false
    })
}

fn valid_score() -> Value {
    json!({"score": 82, "reason": "budget approved"})
}

fn assert_no_sampling_params(body: &Value) {
    for key in ["temperature", "top_p", "top_k"] {
        assert!(body.get(key).is_none(), "{key} was sent: {body}");
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[tokio::test]
async fn anthropic_happy_path_reports_tokens_and_cost() {
    let mock = MockLlm::start().await;
    let b = LlmToml::claude_qualifier(&mock.url(), "").broker();
    mock.push(Behaviour::text("Qualified: strong budget signal.").with_tokens(1200, 300));

    let c = b
        .complete("qualifier", &request())
        .await
        .expect("completion");
    assert_eq!(c.text, "Qualified: strong budget signal.");
    assert_eq!(c.json, None);
    assert_eq!(
        (c.alias.as_str(), c.provider.as_str()),
        ("qualifier", "claude")
    );
    assert_eq!(c.model, "claude-sonnet-4-5");
    assert_eq!((c.input_tokens, c.output_tokens), (1200, 300));
    assert!(
        close(c.cost_usd, (1200.0 * 3.0 + 300.0 * 15.0) / 1e6),
        "{}",
        c.cost_usd
    );
    assert_eq!(c.attempts.len(), 1);
    assert!(c.attempts[0].is_ok());
    assert_eq!(c.attempts[0].outcome, "ok");
    assert!(close(c.total_cost_usd(), c.cost_usd));

    let sent = mock.requests();
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("authorization"), None);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        r.body,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "system": "You are a CRM assistant.",
            "messages": [{"role": "user", "content": "Qualify this lead: ACME, 200 employees, budget approved."}]
        })
    );
    assert_no_sampling_params(&r.body);
}

#[tokio::test]
async fn anthropic_version_header_is_configurable() {
    let mock = MockLlm::start().await;
    let b = LlmToml::claude_qualifier(&mock.url(), "anthropic_version = \"2026-10-21\"").broker();
    mock.push(Behaviour::text("ok"));
    b.complete("qualifier", &request())
        .await
        .expect("completion");
    let r = &mock.requests()[0];
    assert_eq!(r.header("anthropic-version"), Some("2026-10-21"));
    assert_no_sampling_params(&r.body);
}

#[tokio::test]
async fn openai_happy_path_sends_bearer_and_reads_usage() {
    let mock = MockLlm::start().await;
    let b = LlmToml::oa_small(&mock.url(), &format!("api_key_env = \"{OPENAI_KEY_VAR}\"")).broker();
    mock.push(Behaviour::text("Follow up next week.").with_tokens(42, 7));
    let mut req = request();
    req.messages.push(Message::assistant("Which lead?"));
    req.messages.push(Message::user("ACME."));

    let c = b.complete("small", &req).await.expect("completion");
    assert_eq!(c.text, "Follow up next week.");
    assert_eq!((c.input_tokens, c.output_tokens), (42, 7));
    assert!(close(c.cost_usd, (42.0 * 0.4 + 7.0 * 1.6) / 1e6));
    assert_eq!(
        (c.provider.as_str(), c.model.as_str()),
        ("oa", "gpt-4.1-mini")
    );

    let r = &mock.requests()[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert_eq!(r.header("x-api-key"), None);
    assert_eq!(
        r.body,
        json!({
            "model": "gpt-4.1-mini",
            "max_tokens": 256,
            "messages": [
                {"role": "system", "content": "You are a CRM assistant."},
                {"role": "user", "content": "Qualify this lead: ACME, 200 employees, budget approved."},
                {"role": "assistant", "content": "Which lead?"},
                {"role": "user", "content": "ACME."}
            ]
        })
    );
    assert_no_sampling_params(&r.body);
}

#[tokio::test]
async fn openai_without_key_sends_no_authorization_and_honours_max_tokens_field() {
    let mock = MockLlm::start().await;
    let b =
        LlmToml::local_small(&mock.url(), "max_tokens_field = \"max_completion_tokens\"").broker();
    mock.push(Behaviour::text("hi"));
    let c = b
        .complete("local-small", &request().with_system(" "))
        .await
        .expect("completion");
    assert_eq!(c.cost_usd, 0.0);
    let r = &mock.requests()[0];
    assert_eq!(r.header("authorization"), None);
    assert_eq!(r.body["max_completion_tokens"], json!(256));
    assert_eq!(
        r.body["messages"][0]["role"],
        json!("user"),
        "blank system not sent"
    );
    assert!(r.body.get("max_tokens").is_none());
}

#[tokio::test]
async fn structured_output_json_schema_dialect_is_requested_and_validated() {
    let mock = MockLlm::start().await;
    let b = LlmToml::oa_small(&mock.url(), "structured_output = \"json_schema\"").broker();
    mock.push(Behaviour::json(valid_score()));
    let c = b
        .complete("small", &request().with_schema(score_schema()))
        .await
        .expect("completion");
    assert_eq!(c.json, Some(valid_score()));
    assert_eq!(
        serde_json::from_str::<Value>(&c.text).unwrap(),
        valid_score()
    );
    let body = &mock.requests()[0].body;
    assert_eq!(
        body["response_format"],
        json!({
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": score_schema(), "strict": true}
        })
    );
    assert_no_sampling_params(body);
}

#[tokio::test]
async fn structured_output_json_object_schema_dialect_is_requested_and_validated() {
    let mock = MockLlm::start().await;
    let b =
        LlmToml::local_small(&mock.url(), "structured_output = \"json_object_schema\"").broker();
    // A fenced answer is tolerated.
    mock.push(Behaviour::text(format!(
        "```json\n{}\n```",
        serde_json::to_string_pretty(&valid_score()).unwrap()
    )));
    let c = b
        .complete("local-small", &request().with_schema(score_schema()))
        .await
        .expect("completion");
    assert_eq!(c.json, Some(valid_score()));
    let body = &mock.requests()[0].body;
    assert_eq!(
        body["response_format"],
        json!({"type": "json_object", "schema": score_schema()})
    );
}

#[tokio::test]
async fn anthropic_structured_output_forces_a_tool_and_validates_its_input() {
    let mock = MockLlm::start().await;
    let b = LlmToml::claude_qualifier(&mock.url(), "").broker();
    mock.push(Behaviour::json(valid_score()));
    let c = b
        .complete("qualifier", &request().with_schema(score_schema()))
        .await
        .expect("completion");
    assert_eq!(c.json, Some(valid_score()));
    assert_eq!(
        serde_json::from_str::<Value>(&c.text).unwrap(),
        valid_score()
    );
    let body = &mock.requests()[0].body;
    assert_eq!(body["tools"][0]["name"], json!("respond"));
    assert_eq!(body["tools"][0]["input_schema"], score_schema());
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "respond"})
    );
    assert_eq!(body["system"], json!("You are a CRM assistant."));
    assert_no_sampling_params(body);
}

#[tokio::test]
async fn anthropic_tool_dialect_wraps_a_non_object_schema() {
    let mock = MockLlm::start().await;
    let b = LlmToml::claude_qualifier(&mock.url(), "").broker();
    let schema = json!({"type": "array", "items": {"type": "string"}, "minItems": 1});
    // What Anthropic returns as the wrapped tool input.
    mock.push(Behaviour::json(json!({"value": ["call", "email"]})));
    let c = b
        .complete("qualifier", &request().with_schema(schema.clone()))
        .await
        .expect("completion");
    assert_eq!(c.json, Some(json!(["call", "email"])));
    let body = &mock.requests()[0].body;
    assert_eq!(body["tools"][0]["input_schema"]["type"], json!("object"));
    assert_eq!(
        body["tools"][0]["input_schema"]["properties"]["value"],
        schema
    );
}

#[tokio::test]
async fn anthropic_prompt_dialect_puts_the_schema_in_the_system_prompt() {
    let mock = MockLlm::start().await;
    let b = LlmToml::claude_qualifier(&mock.url(), "structured_output = \"prompt\"").broker();
    mock.push(Behaviour::json(valid_score()));
    let c = b
        .complete("qualifier", &request().with_schema(score_schema()))
        .await
        .expect("completion");
    assert_eq!(c.json, Some(valid_score()));
    let body = &mock.requests()[0].body;
    assert!(body.get("tools").is_none() && body.get("tool_choice").is_none());
    let system = body["system"].as_str().unwrap();
    assert!(system.starts_with("You are a CRM assistant."), "{system}");
    assert!(system.contains(&score_schema().to_string()), "{system}");
}

#[tokio::test]
async fn schema_violating_answer_is_retried_then_falls_back() {
    let primary = MockLlm::start().await;
    let backup = MockLlm::start().await;
    let b = LlmToml::qualifier_with_local_fallback(
        &primary.url(),
        "",
        &backup.url(),
        "structured_output = \"json_object_schema\"",
    )
    .retry(3, 20)
    .broker();
    primary.push(Behaviour::SchemaViolating);
    primary.push(Behaviour::SchemaViolating);
    primary.push(Behaviour::json(valid_score())); // must not be reached: retried once only
    backup.push(Behaviour::json(valid_score()));

    let c = b
        .complete("qualifier", &request().with_schema(score_schema()))
        .await
        .expect("fallback answers");
    assert_eq!(c.alias, "local-small");
    assert_eq!(c.provider, "local");
    assert_eq!(c.json, Some(valid_score()));
    assert_eq!(primary.request_count(), 2);
    assert_eq!(backup.request_count(), 1);
    let outcome: Vec<(&str, Option<LlmErrorKind>)> = c
        .attempts
        .iter()
        .map(|a| (a.alias.as_str(), a.error_kind))
        .collect();
    assert_eq!(
        outcome,
        [
            ("qualifier", Some(LlmErrorKind::InvalidOutput)),
            ("qualifier", Some(LlmErrorKind::InvalidOutput)),
            ("local-small", None)
        ]
    );
    // The rejected answers consumed tokens: they are priced with the qualifier's table.
    for a in &c.attempts[..2] {
        assert!(a.outcome.contains("schema"), "{}", a.outcome);
        assert_eq!((a.input_tokens, a.output_tokens), (10, 5));
        assert!(close(a.cost_usd, (10.0 * 3.0 + 5.0 * 15.0) / 1e6));
    }
    assert_eq!(c.cost_usd, 0.0);
    assert!(c.total_cost_usd() > 0.0);
}

#[tokio::test]
async fn schema_violating_answer_without_fallback_is_schema_violation() {
    let mock = MockLlm::start().await;
    let b = LlmToml::oa_small(&mock.url(), "").retry(3, 20).broker();
    mock.push(Behaviour::SchemaViolating);
    mock.push(Behaviour::SchemaViolating);

    let err = b
        .complete("small", &request().with_schema(score_schema()))
        .await
        .expect_err("no valid answer");
    assert!(matches!(err, LlmError::Exhausted { .. }), "{err:?}");
    assert!(
        matches!(err.root(), LlmError::SchemaViolation(_)),
        "{err:?}"
    );
    assert_eq!(err.kind(), LlmErrorKind::InvalidOutput);
    let msg = err.to_string();
    assert!(msg.contains("\"oa\"") && msg.contains("\"small\""), "{msg}");
    assert_eq!(err.attempts().len(), 2);
    assert!(err.attempts().iter().all(|a| a.output_tokens == 5));
    assert!(close(err.cost_usd(), 2.0 * (10.0 * 0.4 + 5.0 * 1.6) / 1e6));
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn prose_answer_to_a_schema_request_is_malformed() {
    let mock = MockLlm::start().await;
    let b = LlmToml::oa_small(&mock.url(), "").retry(3, 20).broker();
    mock.push(Behaviour::text("I would score this lead 82."));
    mock.push(Behaviour::text("Score: 82"));
    let err = b
        .complete("small", &request().with_schema(score_schema()))
        .await
        .expect_err("prose is not JSON");
    assert!(matches!(err.root(), LlmError::Malformed(_)), "{err:?}");
    assert_eq!(err.kind(), LlmErrorKind::InvalidOutput);
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn rate_limited_with_retry_after_is_retried_then_succeeds() {
    let mock = MockLlm::start().await;
    let b = LlmToml::claude_qualifier(&mock.url(), "")
        .retry(3, 2_000)
        .broker();
    mock.push(Behaviour::rate_limited(1));
    mock.push(Behaviour::text("after the wait"));

    let c = b.complete("qualifier", &request()).await.expect("retried");
    assert_eq!(c.text, "after the wait");
    assert_eq!(mock.request_count(), 2);
    assert_eq!(c.attempts.len(), 2);
    assert_eq!(c.attempts[0].error_kind, Some(LlmErrorKind::RateLimited));
    assert!(
        c.attempts[0].outcome.contains("429"),
        "{}",
        c.attempts[0].outcome
    );
    assert!(
        c.attempts[0].outcome.contains("retry after 1000 ms"),
        "{}",
        c.attempts[0].outcome
    );
    assert!(c.attempts[1].is_ok());
}

#[tokio::test]
async fn retry_after_beyond_the_cap_falls_back_at_once() {
    let primary = MockLlm::start().await;
    let backup = MockLlm::start().await;
    let b = LlmToml::qualifier_with_local_fallback(&primary.url(), "", &backup.url(), "")
        .retry(3, 1_000)
        .broker();
    primary.push(Behaviour::rate_limited(3_600));
    backup.push(Behaviour::text("from the backup"));

    let c = b.complete("qualifier", &request()).await.expect("fallback");
    assert_eq!(c.alias, "local-small");
    assert_eq!(
        primary.request_count(),
        1,
        "no retry into a long Retry-After"
    );
}

#[tokio::test]
async fn server_errors_exhaust_retries_then_fallback_answers() {
    let primary = MockLlm::start().await;
    let backup = MockLlm::start().await;
    let b = LlmToml::qualifier_with_local_fallback(&primary.url(), "", &backup.url(), "")
        .retry(3, 20)
        .broker();
    for _ in 0..3 {
        primary.push(Behaviour::status(500));
    }
    backup.push(Behaviour::text("from the backup").with_tokens(20, 4));

    let c = b.complete("qualifier", &request()).await.expect("fallback");
    assert_eq!(
        (c.alias.as_str(), c.text.as_str()),
        ("local-small", "from the backup")
    );
    assert_eq!((c.input_tokens, c.output_tokens), (20, 4));
    assert_eq!(primary.request_count(), 3);
    assert_eq!(c.attempts.len(), 4);
    for a in &c.attempts[..3] {
        assert_eq!(
            (a.alias.as_str(), a.provider.as_str()),
            ("qualifier", "claude")
        );
        assert_eq!(a.error_kind, Some(LlmErrorKind::Unavailable));
        assert!(a.outcome.contains("HTTP 500"), "{}", a.outcome);
        assert!(
            a.outcome.contains("mock status 500"),
            "body excerpt: {}",
            a.outcome
        );
        assert_eq!(a.cost_usd, 0.0);
    }
    assert_eq!(
        (
            c.attempts[3].alias.as_str(),
            c.attempts[3].provider.as_str()
        ),
        ("local-small", "local")
    );
    assert!(c.attempts[3].is_ok());
}

#[tokio::test]
async fn server_errors_without_fallback_are_exhausted_unavailable() {
    let mock = MockLlm::start().await;
    let b = LlmToml::oa_small(&mock.url(), "").retry(2, 20).broker();
    mock.push(Behaviour::status(503));
    mock.push(Behaviour::status(502));
    let err = b
        .complete("small", &request())
        .await
        .expect_err("exhausted");
    assert_eq!(err.kind(), LlmErrorKind::Unavailable);
    assert!(
        matches!(err.root(), LlmError::Upstream { status: 502, .. }),
        "{err:?}"
    );
    assert_eq!(err.attempts().len(), 2);
    assert!(err.to_string().contains("2 attempt"), "{err}");
}

#[tokio::test]
async fn slow_provider_times_out_then_fallback_answers() {
    let primary = MockLlm::start().await;
    let backup = MockLlm::start().await;
    let b = LlmToml::qualifier_with_local_fallback(
        &primary.url(),
        "timeout_ms = 200",
        &backup.url(),
        "",
    )
    .retry(2, 20)
    .broker();
    primary.push(Behaviour::Slow(Duration::from_secs(60)));
    primary.push(Behaviour::Slow(Duration::from_secs(60)));
    backup.push(Behaviour::text("fast backup"));

    let c = b.complete("qualifier", &request()).await.expect("fallback");
    assert_eq!(c.alias, "local-small");
    assert_eq!(c.text, "fast backup");
    let kinds: Vec<_> = c.attempts.iter().map(|a| a.error_kind).collect();
    assert_eq!(
        kinds,
        [
            Some(LlmErrorKind::Timeout),
            Some(LlmErrorKind::Timeout),
            None
        ]
    );
    assert!(
        c.attempts[0].outcome.contains("within 200 ms"),
        "{}",
        c.attempts[0].outcome
    );
}

#[tokio::test]
async fn slow_provider_without_fallback_is_a_timeout() {
    let mock = MockLlm::start().await;
    let b = LlmToml::oa_small(&mock.url(), "timeout_ms = 150")
        .retry(1, 20)
        .broker();
    mock.push(Behaviour::Slow(Duration::from_secs(60)));
    let err = b.complete("small", &request()).await.expect_err("timeout");
    assert!(matches!(err.root(), LlmError::Timeout { .. }), "{err:?}");
    assert_eq!(err.kind(), LlmErrorKind::Timeout);
}

#[tokio::test]
async fn malformed_json_body_is_retried_once_then_malformed() {
    let mock = MockLlm::start().await;
    let b = LlmToml::claude_qualifier(&mock.url(), "")
        .retry(3, 20)
        .broker();
    mock.push(Behaviour::MalformedJson);
    mock.push(Behaviour::MalformedJson);
    mock.push(Behaviour::text("never reached"));

    let err = b
        .complete("qualifier", &request())
        .await
        .expect_err("malformed");
    match err.root() {
        LlmError::Malformed(m) => {
            assert!(
                m.contains("\"claude\"") && m.contains("\"qualifier\""),
                "{m}"
            );
            assert!(m.contains("not JSON"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.kind(), LlmErrorKind::InvalidOutput);
    assert_eq!(mock.request_count(), 2);
    assert_eq!(mock.pending(), 1);
}

#[tokio::test]
async fn client_error_is_neither_retried_nor_falls_back() {
    let primary = MockLlm::start().await;
    let backup = MockLlm::start().await;
    let b = LlmToml::qualifier_with_local_fallback(&primary.url(), "", &backup.url(), "")
        .retry(3, 20)
        .broker();
    primary.push(Behaviour::Status {
        status: 400,
        retry_after: None,
        body: json!({"type": "error", "error": {"type": "invalid_request_error", "message": "temperature: unsupported"}}).to_string(),
    });
    backup.push(Behaviour::text("must not be asked"));

    let err = b.complete("qualifier", &request()).await.expect_err("400");
    assert_eq!(err.kind(), LlmErrorKind::Config);
    assert!(
        matches!(err.root(), LlmError::Upstream { status: 400, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("\"claude\"")
            && msg.contains("HTTP 400")
            && msg.contains("temperature: unsupported"),
        "{msg}"
    );
    assert_eq!(primary.request_count(), 1);
    assert_eq!(backup.request_count(), 0);
}

#[tokio::test]
async fn connection_refused_is_retried_then_falls_back() {
    // A port that was free a moment ago: nothing listens there.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let backup = MockLlm::start().await;
    let b = LlmToml::qualifier_with_local_fallback(&dead, "", &backup.url(), "")
        .retry(2, 20)
        .broker();
    backup.push(Behaviour::text("from the backup"));
    let c = b.complete("qualifier", &request()).await.expect("fallback");
    assert_eq!(c.alias, "local-small");
    assert_eq!(c.attempts.len(), 3);
    for a in &c.attempts[..2] {
        assert_eq!(a.error_kind, Some(LlmErrorKind::Unavailable));
        assert!(a.outcome.contains("unreachable"), "{}", a.outcome);
    }
}

#[tokio::test]
async fn circuit_breaker_opens_after_threshold_and_fails_fast() {
    let flaky = MockLlm::start().await;
    let steady = MockLlm::start().await;
    let b = LlmToml::new()
        .anthropic("claude", &flaky.url(), "")
        .openai("local", &steady.url(), "")
        .qualifier_model(&["local-small"])
        .model(
            "claude-only",
            "claude",
            "claude-sonnet-4-5",
            (3.0, 15.0),
            &[],
        )
        .local_small_model()
        .retry(1, 20)
        .breaker(2, 600_000)
        .broker();
    flaky.push(Behaviour::status(500));
    flaky.push(Behaviour::status(500));
    flaky.set_default(Behaviour::text("must not be asked while open"));
    steady.set_default(Behaviour::text("steady"));

    // Two failures (each answered by the fallback) open the circuit.
    for _ in 0..2 {
        let c = b.complete("qualifier", &request()).await.expect("fallback");
        assert_eq!(c.alias, "local-small");
    }
    assert_eq!(flaky.request_count(), 2);

    // Open: the fallback answers without a request to the failing provider...
    let c = b.complete("qualifier", &request()).await.expect("fallback");
    assert_eq!(c.alias, "local-small");
    assert_eq!(c.attempts.len(), 2);
    assert_eq!(c.attempts[0].error_kind, Some(LlmErrorKind::Unavailable));
    assert!(
        c.attempts[0].outcome.contains("circuit breaker is open"),
        "{}",
        c.attempts[0].outcome
    );
    // ...and an alias without a fallback fails fast.
    let err = b
        .complete("claude-only", &request())
        .await
        .expect_err("open");
    assert!(
        matches!(err.root(), LlmError::CircuitOpen { provider } if provider == "claude"),
        "{err:?}"
    );
    assert_eq!(err.kind(), LlmErrorKind::Unavailable);
    assert_eq!(
        flaky.request_count(),
        2,
        "no request while the circuit is open"
    );

    let status = b.status();
    let claude = status.iter().find(|s| s.name == "claude").unwrap();
    assert_eq!(claude.kind, ProviderKind::Anthropic);
    assert_eq!(claude.base_url, flaky.url());
    assert_eq!(claude.breaker, BreakerState::Open);
    assert_eq!(
        (claude.calls, claude.failures, claude.short_circuited),
        (2, 2, 2)
    );
    assert!(claude.last_error.as_deref().unwrap().contains("HTTP 500"));
    assert!(claude.last_error_at.is_some());
    let local = status.iter().find(|s| s.name == "local").unwrap();
    assert_eq!(
        (local.breaker, local.calls, local.failures),
        (BreakerState::Closed, 3, 0)
    );
}

#[tokio::test]
async fn circuit_breaker_half_opens_after_open_ms() {
    let mock = MockLlm::start().await;
    let b = LlmToml::oa_small(&mock.url(), "")
        .retry(1, 20)
        .breaker(1, 300)
        .broker();
    mock.push(Behaviour::status(503));
    mock.push(Behaviour::text("recovered"));

    b.complete("small", &request()).await.expect_err("503");
    assert_ne!(
        b.status()[0].breaker,
        BreakerState::Closed,
        "the failure opened it"
    );

    // Sleeping past open_ms makes the next call the half-open probe (no upper bound is
    // assumed on how long anything takes).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.status()[0].breaker, BreakerState::HalfOpen);
    let c = b
        .complete("small", &request())
        .await
        .expect("probe succeeds");
    assert_eq!(c.text, "recovered");
    let s = &b.status()[0];
    assert_eq!(
        (s.breaker, s.consecutive_failures),
        (BreakerState::Closed, 0)
    );
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn missing_api_key_env_var_is_an_error_naming_the_variable() {
    set_keys();
    let s = settings(&format!(
        "[llm.providers.claude]\nkind = \"anthropic\"\nbase_url = \"https://api.anthropic.com\"\napi_key_env = \"{UNSET_KEY_VAR}\"\n{}",
        LlmToml::new().qualifier_model(&[]).text()
    ));
    let err = LlmBroker::new(&s).expect_err("missing key");
    assert_eq!(err.kind(), LlmErrorKind::Config);
    let msg = err.to_string();
    assert!(msg.contains(UNSET_KEY_VAR), "{msg}");
    assert!(msg.contains("llm.providers.claude.api_key_env"), "{msg}");
}

#[tokio::test]
async fn error_messages_never_contain_the_api_key() {
    let claude = MockLlm::start().await;
    let oa = MockLlm::start().await;
    let b = LlmToml::new()
        .anthropic("claude", &claude.url(), "")
        .openai(
            "oa",
            &oa.url(),
            &format!("api_key_env = \"{OPENAI_KEY_VAR}\""),
        )
        .qualifier_model(&[])
        .small_model()
        .broker();
    // Servers that echo the credentials they received into their error bodies.
    claude.push(Behaviour::EchoCredentials);
    oa.push(Behaviour::EchoCredentials);

    let mut texts = Vec::new();
    for alias in ["qualifier", "small"] {
        let err = b.complete(alias, &request()).await.expect_err("401");
        assert_eq!(err.kind(), LlmErrorKind::Config);
        let msg = err.to_string();
        assert!(
            msg.contains("HTTP 401") && msg.contains("[redacted]"),
            "{msg}"
        );
        texts.push(msg);
        texts.push(format!("{err:?}"));
        texts.extend(err.attempts().iter().map(|a| a.outcome.clone()));
    }
    texts.extend(b.status().iter().filter_map(|s| s.last_error.clone()));
    texts.push(format!("{b:?}"));
    texts.push(serde_json::to_string(&b.status()).unwrap());
    // The keys were sent (so there was something to leak)...
    assert_eq!(
        claude.requests()[0].header("x-api-key"),
        Some(ANTHROPIC_KEY)
    );
    assert_eq!(
        oa.requests()[0].header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    // ...and appear nowhere.
    for t in &texts {
        assert!(
            !t.contains(ANTHROPIC_KEY) && !t.contains(OPENAI_KEY),
            "key leaked: {t}"
        );
        assert!(!t.contains("SECRET"), "key fragment leaked: {t}");
    }
}

#[tokio::test]
async fn unknown_alias_and_invalid_requests_make_no_request() {
    let mock = MockLlm::start().await;
    let b = LlmToml::oa_small(&mock.url(), "").broker();
    assert_eq!(b.aliases(), ["small"]);
    let err = b.complete("large", &request()).await.expect_err("unknown");
    assert!(
        matches!(&err, LlmError::UnknownAlias(a) if a == "large"),
        "{err:?}"
    );
    assert_eq!(err.kind(), LlmErrorKind::Config);

    let mut empty = request();
    empty.messages.clear();
    let err = b.complete("small", &empty).await.expect_err("no messages");
    assert!(matches!(err, LlmError::InvalidRequest(_)), "{err:?}");

    let mut blank = request();
    blank.messages.push(Message::assistant("  "));
    let err = b
        .complete("small", &blank)
        .await
        .expect_err("blank message");
    assert!(matches!(err, LlmError::InvalidRequest(_)), "{err:?}");

    let mut assistant_first = request();
    assistant_first
        .messages
        .insert(0, Message::assistant("Hello."));
    let err = b
        .complete("small", &assistant_first)
        .await
        .expect_err("assistant first");
    assert!(matches!(err, LlmError::InvalidRequest(_)), "{err:?}");

    let mut no_tokens = request();
    no_tokens.max_tokens = 0;
    let err = b
        .complete("small", &no_tokens)
        .await
        .expect_err("max_tokens 0");
    assert!(matches!(err, LlmError::InvalidRequest(_)), "{err:?}");

    let bad_schema = request().with_schema(json!({"type": "no-such-type"}));
    let err = b
        .complete("small", &bad_schema)
        .await
        .expect_err("bad schema");
    assert!(matches!(err, LlmError::InvalidRequest(_)), "{err:?}");
    assert_eq!(err.kind(), LlmErrorKind::Config);
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_one_broker() {
    let mock = MockLlm::start().await;
    mock.set_default(Behaviour::text("ok"));
    let b = Arc::new(LlmToml::oa_small(&mock.url(), "").broker());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.complete("small", &request()).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().expect("completion").text, "ok");
    }
    assert_eq!(mock.request_count(), 8);
    assert_eq!(b.status()[0].calls, 8);
}

#[test]
fn config_example_parses_and_validates() {
    let s = settings(
        r#"
        [llm.providers.local]
        kind = "openai"
        base_url = "http://127.0.0.1:8080"
        api_key_env = "LOCAL_LLM_KEY"
        timeout_ms = 30000
        structured_output = "json_object_schema"

        [llm.providers.claude]
        kind = "anthropic"
        base_url = "https://api.anthropic.com"
        api_key_env = "ANTHROPIC_API_KEY"

        [llm.models.qualifier]
        provider = "claude"
        model = "claude-sonnet-4-5"
        input_usd_per_mtok = 3.0
        output_usd_per_mtok = 15.0
        fallback = ["local-small"]

        [llm.models.local-small]
        provider = "local"
        model = "smollm2-135m"

        [llm.retry]
        max_attempts = 3
        base_delay_ms = 200
        max_delay_ms = 5000

        [llm.breaker]
        failure_threshold = 5
        open_ms = 30000
        "#,
    );
    s.validate().expect("valid");
    assert_eq!(s.providers["claude"].kind, ProviderKind::Anthropic);
    assert_eq!(s.providers["claude"].timeout_ms, 30_000, "default");
    assert_eq!(s.providers["claude"].anthropic_version(), "2023-06-01");
    assert_eq!(s.models["qualifier"].fallback, ["local-small"]);
    assert_eq!(s.models["local-small"].input_usd_per_mtok, 0.0);
    assert_eq!(s.retry.max_attempts, 3);
    assert_eq!(s.breaker.open_ms, 30_000);
    assert_eq!(LlmSettings::default(), settings("[llm]\n"));

    // Unknown keys are refused (sampling parameters are not configurable).
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Root {
        llm: LlmSettings,
    }
    let err = toml::from_str::<Root>(
        "[llm.models.q]\nprovider = \"p\"\nmodel = \"m\"\ntemperature = 0.2\n",
    )
    .err()
    .expect("unknown key");
    assert!(err.to_string().contains("temperature"), "{err}");
}

#[test]
fn settings_validate_names_the_bad_key() {
    let base =
        "[llm.providers.claude]\nkind = \"anthropic\"\nbase_url = \"https://api.anthropic.com\"\n";
    let cases: &[(&str, &str)] = &[
        (
            "[llm.models.fast]\nprovider = \"x\"\nmodel = \"m\"\n",
            "llm.models.fast.provider = \"x\" is not a configured provider",
        ),
        (
            "[llm.models.fast]\nprovider = \"claude\"\nmodel = \"m\"\nfallback = [\"nope\"]\n",
            "llm.models.fast.fallback names \"nope\"",
        ),
        (
            "[llm.models.fast]\nprovider = \"claude\"\nmodel = \"m\"\nfallback = [\"fast\"]\n",
            "llm.models.fast.fallback lists the alias itself",
        ),
        (
            "[llm.models.fast]\nprovider = \"claude\"\nmodel = \"m\"\ninput_usd_per_mtok = -1.0\n",
            "llm.models.fast.input_usd_per_mtok",
        ),
        (
            "[llm.models.fast]\nprovider = \"claude\"\nmodel = \"\"\n",
            "llm.models.fast.model",
        ),
        (
            "[llm.providers.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:8080/v1\"\n",
            "llm.providers.local.base_url",
        ),
        (
            "[llm.providers.local]\nkind = \"openai\"\nbase_url = \"ftp://host\"\n",
            "llm.providers.local.base_url",
        ),
        (
            "[llm.providers.local]\nkind = \"openai\"\nbase_url = \"http://h\"\nstructured_output = \"tool\"\n",
            "llm.providers.local.structured_output = \"tool\"",
        ),
        (
            "[llm.providers.local]\nkind = \"openai\"\nbase_url = \"http://h\"\ntimeout_ms = 0\n",
            "llm.providers.local.timeout_ms",
        ),
        (
            "[llm.providers.local]\nkind = \"openai\"\nbase_url = \"http://h\"\nanthropic_version = \"2023-06-01\"\n",
            "llm.providers.local.anthropic_version",
        ),
        ("[llm.retry]\nmax_attempts = 0\n", "llm.retry.max_attempts"),
        (
            "[llm.retry]\nbase_delay_ms = 10\nmax_delay_ms = 1\n",
            "llm.retry.base_delay_ms",
        ),
        ("[llm.breaker]\nfailure_threshold = 0\n", "llm.breaker.failure_threshold"),
    ];
    for (extra, expected) in cases {
        let s = settings(&format!("{base}{extra}"));
        let err = s.validate().expect_err(extra);
        assert!(
            err.contains(expected),
            "{extra}\n→ {err}\nexpected: {expected}"
        );
        let broker_err = LlmBroker::new(&s).expect_err(extra);
        assert_eq!(broker_err.kind(), LlmErrorKind::Config);
        assert!(broker_err.to_string().contains(expected));
    }

    // A credential in a URL is refused without being echoed.
    let s = settings(
        "[llm.providers.local]\nkind = \"openai\"\nbase_url = \"https://user:hunter2@host\"\n",
    );
    let err = s.validate().expect_err("credentials");
    assert!(
        err.contains("llm.providers.local.base_url") && !err.contains("hunter2"),
        "{err}"
    );
}
