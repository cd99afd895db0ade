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

// ---------------------------------------------------------------------------------------
// Budgets under concurrency and secrets echoed by a provider (issue 19, items 13 and 11):
// the `llm` capability as a plugin meets it — the qualification agent (Wasm) asking the
// mock provider through the broker, the ledger and reservations on SQLite and PostgreSQL.
// Self-contained: nothing above is used but the mock and the key constants.

mod support;

mod budgets {
    use super::llm_mock::{Behaviour, MockLlm};
    use super::{common, support, OPENAI_KEY_VAR};
    use serde_json::{json, Value};
    use strata::app::App;
    use strata::config::Config;
    use strata::db::{AuditFilter, Db, LlmReservation};

    const AGENT: &str = "qualify-agent";
    /// 1,500 tokens a call, as in the issue: 1,200 in + 300 out.
    const TOKENS_IN: u32 = 1200;
    const TOKENS_OUT: u32 = 300;
    /// $5 / $15 per Mtok: $0.0105 a call.
    const PRICES: (f64, f64) = (5.0, 15.0);
    const CALL_COST: f64 = (1200.0 * 5.0 + 300.0 * 15.0) / 1e6;

    pub(super) fn answer(reasoning: &str) -> Value {
        json!({
            "score": 80.0, "priority": "high",
            "recommended_action": "Call the CFO this week",
            "reasoning": reasoning,
            "confidence": 0.8,
            "factors": {"budget": 90, "authority": 85, "fit": 80, "timeline": 75, "complexity": 60}
        })
    }

    pub(super) struct Host {
        pub app: App,
        pub llm: MockLlm,
        _tmp: tempfile::TempDir,
    }

    /// A host on `db`: the agent and BANT, the mock behind alias `qualifier` (OpenAI
    /// protocol, keyed with `OPENAI_KEY`), Strata's MCP server built in, and `llm_grant`
    /// appended to the agent's `llm` grant.
    pub(super) async fn host(db: Db, llm_grant: &str) -> Host {
        super::set_keys();
        let tmp = tempfile::tempdir().unwrap();
        let plugins = tmp.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        common::install(&plugins, "bant", "bant");
        common::install(&plugins, "qualify-agent", AGENT);
        let llm = MockLlm::start().await;
        let text = format!(
            r#"
[plugins]
dir = "{plugins}"
watch = false
[runtime]
cache_dir = "{cache}"
pool_instances = 96
[llm.providers.mock]
kind = "openai"
base_url = "{llm_url}"
api_key_env = "{OPENAI_KEY_VAR}"
timeout_ms = 10000
structured_output = "json_schema"
[llm.models.qualifier]
provider = "mock"
model = "mock-model"
input_usd_per_mtok = {pin:?}
output_usd_per_mtok = {pout:?}
[llm.retry]
max_attempts = 2
base_delay_ms = 1
max_delay_ms = 5
[mcp.servers.crm]
transport = "builtin"
side_effect_tools = ["update_*", "qualify_*"]
[qualify]
agent = "{AGENT}"
[grants.bant]
capabilities = []
[grants.{AGENT}]
capabilities = ["llm", "mcp", "scoring"]
llm = {{ models = ["qualifier"]{llm_grant} }}
mcp = {{ tools = ["crm/get_lead", "crm/update_lead"] }}
scoring = {{ strategies = ["bant"] }}
limits = {{ deadline_ms = 120000 }}
"#,
            plugins = plugins.display(),
            cache = tmp.path().join("cache").display(),
            llm_url = llm.url(),
            pin = PRICES.0,
            pout = PRICES.1,
        );
        let config: Config = toml::from_str(&text).expect("test config");
        config.validate().expect("valid config");
        db.upsert_lead(&common::hot_lead("L-1")).await.unwrap();
        let app = App::with_db(config, db).unwrap();
        let report = app.manager.load_all().await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        Host {
            app,
            llm,
            _tmp: tmp,
        }
    }

    pub(super) async fn qualify(h: &Host) -> Value {
        let agent = h.app.manager.registry().get(AGENT).unwrap();
        h.app
            .qualify
            .run(agent, "L-1", None)
            .await
            .expect("qualified (by the LLM or the BANT fallback)")
    }

    /// `n` qualifications at once; how many the LLM answered (the others fell back).
    async fn qualify_concurrently(h: &std::sync::Arc<Host>, n: usize) -> usize {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let h = h.clone();
            tasks.spawn(async move { qualify(&h).await });
        }
        let mut by_llm = 0;
        while let Some(v) = tasks.join_next().await {
            if v.unwrap()["fallback_used"] == false {
                by_llm += 1;
            }
        }
        by_llm
    }

    pub(super) async fn llm_audit(h: &Host) -> Vec<strata::db::AuditRecord> {
        h.app.audit.flush().await;
        h.app
            .db
            .list_audit(&AuditFilter {
                plugin: Some(AGENT.into()),
                capability: Some("llm".into()),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.record)
            .collect()
    }

    fn today() -> String {
        strata::db::llm_usage::utc_day(strata::domain::now_ms())
    }

    /// The issue's case: 10,000 tokens a day (six calls of 1,500), 40 qualifications at
    /// once. Before reservations all 40 went through (60,000 tokens). Now the ledger ends
    /// within the budget, every LLM answer is in it, and no reservation is left behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forty_concurrent_calls_never_exceed_the_token_budget() {
        support::both_backends_with_url(|db, url| async move {
            let h = std::sync::Arc::new(host(db, ", daily_tokens = 10000").await);
            h.llm.set_default(
                Behaviour::json(answer("Budget approved")).with_tokens(TOKENS_IN, TOKENS_OUT),
            );
            let by_llm = qualify_concurrently(&h, 40).await;
            let used = h.app.db.llm_usage(AGENT, &today()).await.unwrap();
            eprintln!(
                "40 concurrent calls, token budget 10000: {} tokens spent in {} LLM answers, {} provider requests",
                used.tokens(),
                by_llm,
                h.llm.request_count()
            );
            assert!(used.tokens() <= 10_000, "{used:?} exceeds the budget");
            assert!(by_llm >= 1, "no call went through");
            assert_eq!(used.tokens(), (h.llm.request_count() * 1500) as i64);
            assert_eq!(
                support::scalar_i64(&url, "SELECT COUNT(*) FROM llm_reservations").await,
                0,
                "a reservation outlived its call"
            );
            let refused: Vec<_> = llm_audit(&h).await.into_iter().filter(|r| !r.allowed).collect();
            assert!(!refused.is_empty(), "nothing was refused");
            let d = refused[0].detail.as_deref().unwrap();
            assert!(d.contains("daily token budget") && d.contains("of 10000"), "{d}");
            let h = std::sync::Arc::into_inner(h).expect("no other owner");
            h.app.shutdown().await;
        })
        .await;
    }

    /// The cost side: $0.063 a day (six calls of $0.0105), 40 at once — before: 6.7× over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forty_concurrent_calls_never_exceed_the_cost_budget() {
        support::both_backends(|db| async move {
            let h = std::sync::Arc::new(host(db, ", daily_cost_usd = 0.063").await);
            h.llm.set_default(
                Behaviour::json(answer("Budget approved")).with_tokens(TOKENS_IN, TOKENS_OUT),
            );
            let by_llm = qualify_concurrently(&h, 40).await;
            let used = h.app.db.llm_usage(AGENT, &today()).await.unwrap();
            eprintln!(
                "40 concurrent calls, cost budget $0.063: ${:.6} spent in {} LLM answers",
                used.cost_usd, by_llm
            );
            assert!(used.cost_usd <= 0.063 + 1e-9, "{used:?} exceeds the budget");
            assert!(by_llm >= 1, "no call went through");
            let requests = h.llm.request_count() as f64;
            assert!(
                (used.cost_usd - requests * CALL_COST).abs() < 1e-9,
                "{used:?}"
            );
            let refused: Vec<_> = llm_audit(&h)
                .await
                .into_iter()
                .filter(|r| !r.allowed)
                .collect();
            let d = refused[0].detail.as_deref().unwrap();
            assert!(
                d.contains("daily cost budget") && d.contains("$0.063000"),
                "{d}"
            );
            let h = std::sync::Arc::into_inner(h).expect("no other owner");
            h.app.shutdown().await;
        })
        .await;
    }

    /// One call at a time until refused: the ledger ends within the budget (before: 7 calls,
    /// 10,500 tokens — 500 over), and the refusal reached no provider.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_call_at_a_time_ends_within_the_token_budget() {
        support::both_backends(|db| async move {
            let h = host(db, ", daily_tokens = 10000").await;
            h.llm.set_default(
                Behaviour::json(answer("Budget approved")).with_tokens(TOKENS_IN, TOKENS_OUT),
            );
            let mut by_llm = 0;
            for _ in 0..12 {
                if qualify(&h).await["fallback_used"] == false {
                    by_llm += 1;
                }
            }
            let used = h.app.db.llm_usage(AGENT, &today()).await.unwrap();
            eprintln!(
                "sequential calls, token budget 10000: {} tokens in {by_llm} calls",
                used.tokens()
            );
            assert!(used.tokens() <= 10_000, "{used:?} exceeds the budget");
            assert!(by_llm >= 4, "only {by_llm} calls fitted 10,000 tokens");
            assert_eq!(h.llm.request_count(), by_llm);
            h.app.shutdown().await;
        })
        .await;
    }

    /// A reservation is atomic against the others, counts until it expires (a crashed
    /// call's), is cleaned up by the next reservation after that, and settling replaces
    /// it by the actual usage.
    #[tokio::test]
    async fn reservations_fit_expire_and_settle() {
        support::both_backends_with_url(|db, url| async move {
            let now = strata::domain::now_ms();
            let r = |id: &str, tokens: i64, expires_at: i64| LlmReservation {
                id: id.into(),
                plugin: "p".into(),
                day: "2026-12-02".into(),
                tokens,
                cost_usd: tokens as f64 / 1e6,
                expires_at,
            };
            // 1,000 tokens, $0.001: 900 fit, another 200 do not (tokens and cost alike).
            assert!(db
                .reserve_llm(&r("a", 900, now + 1000), Some(1000), None, now)
                .await
                .unwrap());
            assert!(!db
                .reserve_llm(&r("b", 200, now + 1000), Some(1000), None, now)
                .await
                .unwrap());
            assert!(!db
                .reserve_llm(&r("b", 200, now + 1000), None, Some(0.001), now)
                .await
                .unwrap());
            let s = db.llm_budget_state("p", "2026-12-02", now).await.unwrap();
            assert_eq!((s.used.tokens(), s.reserved_tokens), (0, 900));
            // "a" crashed: after its expiry it no longer counts and is deleted.
            let later = now + 2000;
            assert!(db
                .reserve_llm(&r("b", 200, later + 1000), Some(1000), None, later)
                .await
                .unwrap());
            assert_eq!(
                support::scalar_i64(&url, "SELECT COUNT(*) FROM llm_reservations").await,
                1
            );
            // Settling "b" to its actual usage; settling the lapsed "a" is harmless.
            db.settle_llm("b", "p", "2026-12-02", 120, 30, 0.00015)
                .await
                .unwrap();
            db.settle_llm("a", "p", "2026-12-02", 0, 0, 0.0)
                .await
                .unwrap();
            let s = db.llm_budget_state("p", "2026-12-02", later).await.unwrap();
            assert_eq!(
                (s.used.tokens(), s.used.calls, s.reserved_tokens),
                (150, 1, 0)
            );
            // 40 reservations at once of 100 tokens against 1,000 − 150: exactly 8 fit.
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..40 {
                let db = db.clone();
                tasks.spawn(async move {
                    let r = LlmReservation {
                        id: format!("c{i}"),
                        plugin: "p".into(),
                        day: "2026-12-02".into(),
                        tokens: 100,
                        cost_usd: 0.0,
                        expires_at: later + 60_000,
                    };
                    db.reserve_llm(&r, Some(1000), Some(1.0), later)
                        .await
                        .unwrap()
                });
            }
            let mut fitted = 0;
            while let Some(ok) = tasks.join_next().await {
                fitted += ok.unwrap() as i32;
            }
            assert_eq!(fitted, 8);
        })
        .await;
    }
}

/// Issue 19 item 11: a provider answering 200 with the API key in its text. Neither the
/// plugin's output (the agent execution row, the stored score, the lead written back
/// through MCP) nor the audit log contains the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_echoed_by_the_provider_is_stored_nowhere() {
    support::both_backends(|db| async move {
        let h = budgets::host(db, "").await;
        let echoed = format!("Budget approved; my key is {OPENAI_KEY}, header Bearer {OPENAI_KEY}");
        h.llm.set_default(Behaviour::json(budgets::answer(&echoed)));
        let v = budgets::qualify(&h).await;
        assert_eq!(v["fallback_used"], false, "{v}");
        // The answer arrived (redacted), so the redaction did not just drop it.
        assert!(v.to_string().contains("my key is [redacted]"), "{v}");
        let mut stored = vec![v.to_string()];
        for e in h
            .app
            .db
            .list_executions(&strata::db::ExecutionFilter::default())
            .await
            .unwrap()
        {
            stored.push(format!("{:?} {:?}", e.output, e.error));
        }
        for s in h.app.db.latest_scores("L-1", 5).await.unwrap() {
            stored.push(format!("{:?}", s.score));
        }
        let lead = h.app.db.get_lead("L-1").await.unwrap().unwrap();
        stored.push(format!("{:?}", lead.attributes));
        h.app.audit.flush().await;
        for a in h
            .app
            .db
            .list_audit(&strata::db::AuditFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
        {
            stored.push(format!("{:?}", a.record));
        }
        for s in &stored {
            assert!(!s.contains(OPENAI_KEY), "the key was stored: {s}");
        }
        h.app.shutdown().await;
    })
    .await;
}

/// The broker never starts an attempt its allowance (the call's budget reservation) might
/// not cover: a schema-violating answer is retried without one, not with one that covers
/// a single attempt.
#[tokio::test]
async fn allowance_stops_retries_past_the_reservation() {
    let mock = MockLlm::start().await;
    let b = LlmToml::claude_qualifier(&mock.url(), "")
        .retry(3, 5)
        .broker();
    let req = request().with_schema(score_schema());
    let one_attempt = req.tokens_upper_bound();
    mock.push(Behaviour::SchemaViolating);
    mock.push(Behaviour::json(valid_score()));
    let c = b
        .complete("qualifier", &req)
        .await
        .expect("retried without an allowance");
    assert_eq!(c.attempts.len(), 2);

    mock.push(Behaviour::SchemaViolating);
    mock.push(Behaviour::json(valid_score()));
    let before = mock.request_count();
    let allowance = strata::llm::Allowance {
        tokens: Some(one_attempt),
        cost_usd: None,
    };
    let e = b
        .complete_within("qualifier", &req, allowance)
        .await
        .expect_err("no second attempt fits");
    assert_eq!(mock.request_count() - before, 1);
    assert_eq!(mock.pending(), 1, "the valid answer was never asked for");
    assert_eq!(e.attempts().len(), 1);
    assert_eq!(e.kind(), LlmErrorKind::InvalidOutput, "{e}");
    // A cost allowance of one attempt's price lets exactly that attempt through.
    let price = (one_attempt - u64::from(req.max_tokens)) as f64 * 3.0 / 1e6
        + f64::from(req.max_tokens) * 15.0 / 1e6;
    // (The valid answer still queued answers it.)
    let before = mock.request_count();
    let allowance = strata::llm::Allowance {
        tokens: None,
        cost_usd: Some(price),
    };
    let c = b
        .complete_within("qualifier", &req, allowance)
        .await
        .expect("the first attempt fits");
    assert_eq!(mock.request_count() - before, 1);
    assert_eq!(c.attempts.len(), 1);
}

// ---------------------------------------------------------------------------------------
// Issue 20, "the LLM path, tried with a real local model": grammars for local servers,
// the agent's consistency checks and corrective retry, and what an operator sees (the
// providers' state over the API and in metrics, fallbacks in the agent stats).

#[tokio::test]
async fn gbnf_dialect_sends_a_grammar_and_the_schema_in_the_prompt() {
    let mock = MockLlm::start().await;
    let b = LlmToml::local_small(&mock.url(), "structured_output = \"gbnf\"").broker();
    mock.push(Behaviour::json(valid_score()));
    let c = b
        .complete("local-small", &request().with_schema(score_schema()))
        .await
        .expect("completion");
    assert_eq!(c.json, Some(valid_score()));
    let body = &mock.requests()[0].body;
    let grammar = body["grammar"].as_str().expect("a grammar");
    assert!(grammar.starts_with("root ::= "), "{grammar}");
    // The score's bounds are in the grammar: 0–100, no other number.
    assert!(grammar.contains(r#""1" "0" "0""#), "{grammar}");
    assert!(body.get("response_format").is_none(), "{body}");
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("JSON Schema"), "{system}");

    // A schema outside the compiled subset goes as json_object_schema.
    let with_pattern = json!({
        "type": "object", "required": ["code"],
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]+$"}}
    });
    mock.push(Behaviour::json(json!({"code": "ABC"})));
    b.complete("local-small", &request().with_schema(with_pattern.clone()))
        .await
        .expect("completion");
    let body = &mock.requests()[1].body;
    assert!(body.get("grammar").is_none(), "{body}");
    assert_eq!(
        body["response_format"],
        json!({"type": "json_object", "schema": with_pattern})
    );
}

#[test]
fn gbnf_applies_to_openai_kind_only() {
    let s = settings(
        "[llm.providers.c]\nkind = \"anthropic\"\nbase_url = \"https://api.anthropic.com\"\nstructured_output = \"gbnf\"\n",
    );
    let e = s.validate().unwrap_err();
    assert!(e.contains("structured_output = \"gbnf\""), "{e}");
}

/// An answer whose priority contradicts its score gets one corrective follow-up (the
/// answer and what was wrong go back to the model); the corrected answer is accepted.
/// Twice inconsistent: the fallback, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inconsistent_answer_gets_one_corrective_retry_then_the_fallback() {
    support::both_backends(|db| async move {
        let h = budgets::host(db, "").await;
        let mut bad = budgets::answer("Budget approved");
        bad["score"] = json!(2.7);
        bad["priority"] = json!("immediate");
        h.llm.push(Behaviour::json(bad.clone()));
        h.llm.push(Behaviour::json(budgets::answer(
            "Budget approved, CFO involved",
        )));
        let v = budgets::qualify(&h).await;
        assert_eq!(v["fallback_used"], false, "{v}");
        assert_eq!(v["score"]["value"], 80.0);
        let sent = h.llm.requests();
        assert_eq!(sent.len(), 2);
        let msgs = sent[1].body["messages"].as_array().unwrap().clone();
        let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        let correction = msgs[3]["content"].as_str().unwrap();
        assert!(correction.contains("contradicts score 2.7"), "{correction}");
        // The prompt carries no earlier write-back.
        assert!(!msgs[1]["content"].as_str().unwrap().contains("strata_"));

        // The action copied from the lead twice: the fallback says why.
        let mut copied = budgets::answer("Budget approved");
        copied["recommended_action"] = json!("L-1");
        h.llm.push(Behaviour::json(copied.clone()));
        h.llm.push(Behaviour::json(copied));
        let v = budgets::qualify(&h).await;
        assert_eq!(v["fallback_used"], true, "{v}");
        let reason = v["agent_output"]["fallback_reason"].as_str().unwrap();
        assert!(
            reason.contains("corrective retry") && reason.contains("copied from the lead"),
            "{reason}"
        );
        assert_eq!(h.llm.request_count(), 4);
        h.app.shutdown().await;
    })
    .await;
}

mod observability {
    use super::common::{self, server::TestServer};
    use super::llm_mock::{Behaviour, MockLlm};
    use serde_json::{json, Value};
    use strata::config::Config;
    use strata::db::Role;

    struct Service {
        server: TestServer,
        reader: String,
        operator: String,
        http: reqwest::Client,
        _tmp: tempfile::TempDir,
    }

    impl Service {
        async fn get(&self, path: &str) -> Value {
            let r = self
                .http
                .get(self.server.url(path))
                .bearer_auth(&self.reader)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.json().await.unwrap()
        }

        async fn metrics(&self) -> String {
            self.http
                .get(self.server.url("/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }

        /// Qualifies L-1 through the API and waits for the job's result.
        async fn qualify(&self) -> Value {
            let r = self
                .http
                .post(self.server.url("/api/v1/leads/qualify/L-1"))
                .bearer_auth(&self.operator)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            let job: Value = r.json().await.unwrap();
            let href = job["href"].as_str().unwrap().to_string();
            for _ in 0..600 {
                let j = self.get(&href).await;
                match j["status"].as_str() {
                    Some("succeeded") => return j,
                    Some("dead") => panic!("job died: {j}"),
                    _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                }
            }
            panic!("job {href} did not finish");
        }
    }

    /// The service with the agent, BANT and Strata's CRM, its LLM provider `provider` at
    /// `llm_url` (one attempt per call; the circuit opens on the first failure).
    async fn service(provider: &str, llm_url: &str) -> Service {
        super::set_keys();
        let tmp = tempfile::tempdir().unwrap();
        let plugins = tmp.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        common::install(&plugins, "bant", "bant");
        common::install(&plugins, "qualify-agent", "qualify-agent");
        let url = common::sqlite_url(tmp.path());
        let db = common::migrated_db(&url).await;
        db.upsert_lead(&common::hot_lead("L-1")).await.unwrap();
        let key = |role| {
            let db = db.clone();
            async move {
                strata::server::auth::create_key(&db, &format!("{role:?}"), role)
                    .await
                    .unwrap()
                    .1
            }
        };
        let (reader, operator) = (key(Role::Reader).await, key(Role::Operator).await);
        db.close().await;
        let text = format!(
            r#"
[database]
url = "{url}"
[server]
bind = "127.0.0.1:0"
public_metrics = true
[plugins]
dir = "{plugins}"
watch = false
[runtime]
cache_dir = "{cache}"
[llm.providers.{provider}]
kind = "openai"
base_url = "{llm_url}"
timeout_ms = 10000
structured_output = "json_schema"
[llm.models.qualifier]
provider = "{provider}"
model = "m"
[llm.retry]
max_attempts = 1
base_delay_ms = 1
max_delay_ms = 5
[llm.breaker]
failure_threshold = 1
open_ms = 600000
[mcp.servers.crm]
transport = "builtin"
side_effect_tools = ["update_*", "qualify_*"]
[qualify]
agent = "qualify-agent"
[grants.bant]
capabilities = []
[grants.qualify-agent]
capabilities = ["llm", "mcp", "scoring"]
llm = {{ models = ["qualifier"] }}
mcp = {{ tools = ["crm/get_lead", "crm/update_lead"] }}
scoring = {{ strategies = ["bant"] }}
limits = {{ deadline_ms = 120000 }}
"#,
            plugins = plugins.display(),
            cache = tmp.path().join("cache").display(),
        );
        let config: Config = toml::from_str(&text).expect("test config");
        config.validate().expect("valid config");
        Service {
            server: TestServer::start(config).await,
            reader,
            operator,
            http: reqwest::Client::new(),
            _tmp: tmp,
        }
    }

    /// The provider dies: the qualification falls back, `/api/v1/llm/status` shows the
    /// circuit open with the last error and the failure's kind, and so does `/metrics`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_provider_shows_as_an_open_breaker_in_the_status_route_and_metrics() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let s = service("obs-dead", &dead).await;
        let before = s.get("/api/v1/llm/status").await;
        assert_eq!(before["configured"], true);
        assert_eq!(before["providers"][0]["breaker"], "closed", "{before}");

        let job = s.qualify().await;
        assert_eq!(job["result"]["fallback_used"], true, "{job}");

        let status = s.get("/api/v1/llm/status").await;
        let p = &status["providers"][0];
        assert_eq!(p["name"], "obs-dead");
        assert_eq!(p["kind"], "openai");
        assert_eq!(p["structured_output"], "json_schema");
        assert_eq!(p["breaker"], "open", "{status}");
        assert_eq!(p["calls"], 1);
        assert_eq!(p["failures"], 1);
        assert_eq!(p["failures_by_kind"], json!({"unreachable": 1}));
        assert!(
            p["last_error"].as_str().unwrap().contains("unreachable"),
            "{p}"
        );
        assert!(p["last_error_at"].is_string());

        // Open: the next qualification makes no request and counts a short circuit.
        s.qualify().await;
        let p = s.get("/api/v1/llm/status").await["providers"][0].clone();
        assert_eq!(
            (p["calls"].clone(), p["short_circuited"].clone()),
            (json!(1), json!(1))
        );

        let m = s.metrics().await;
        assert!(
            m.contains("llm_breaker_state{provider=\"obs-dead\"} 2"),
            "{m}"
        );
        assert!(
            m.contains("llm_failures_total{provider=\"obs-dead\",kind=\"unreachable\"} 1"),
            "{m}"
        );
        assert!(
            m.contains("llm_short_circuits_total{provider=\"obs-dead\"} 1"),
            "{m}"
        );
        s.server.stop().await;
    }

    /// One qualification answered by the LLM, one by the fallback (the provider refuses
    /// the request): the agent stats count one fallback in two, and the tokens.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn agent_stats_report_fallback_count_and_rate() {
        let llm = MockLlm::start().await;
        let s = service("obs-mock", &llm.url()).await;
        llm.push(Behaviour::json(super::budgets::answer("Budget approved")).with_tokens(1200, 300));
        llm.push(Behaviour::status(400));
        assert_eq!(s.qualify().await["result"]["fallback_used"], false);
        assert_eq!(s.qualify().await["result"]["fallback_used"], true);

        let stats = s.get("/api/v1/agents/stats").await;
        let items = stats["items"].as_array().unwrap();
        let agent = items
            .iter()
            .find(|i| i["agent"] == "qualify-agent")
            .unwrap_or_else(|| panic!("{stats}"));
        assert_eq!(agent["succeeded"], 2, "{agent}");
        assert_eq!(agent["success_rate"], 1.0);
        assert_eq!(agent["fallbacks"], 1, "{agent}");
        assert_eq!(agent["fallback_rate"], 0.5, "{agent}");

        let p = s.get("/api/v1/llm/status").await["providers"][0].clone();
        assert_eq!(
            (p["input_tokens"].clone(), p["output_tokens"].clone()),
            (json!(1200), json!(300))
        );
        assert_eq!(p["failures_by_kind"], json!({"client_error": 1}));
        assert_eq!(p["breaker"], "closed", "a 400 shows the provider is up");
        s.server.stop().await;
    }
}
