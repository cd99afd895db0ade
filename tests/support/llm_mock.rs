//! A scriptable mock LLM provider over real HTTP, speaking both protocols the broker does:
//! Anthropic `POST /v1/messages` and OpenAI-compatible `POST /v1/chat/completions`.
//!
//! ```ignore
//! #[path = "support/llm_mock.rs"]
//! mod llm_mock;
//! let mock = llm_mock::MockLlm::start().await;
//! mock.push(llm_mock::Behaviour::text("hello").with_tokens(12, 3));
//! // point a provider's base_url at mock.url(), call the broker, then:
//! let sent = mock.requests();
//! ```
//!
//! Each request pops the next queued [`Behaviour`] (the default one, HTTP 500, when the
//! queue is empty) and is recorded (path, headers, body) before it is answered, so tests
//! can assert what the broker sent.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the mock does with one request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 with a text answer.
    Text {
        text: String,
        input_tokens: u32,
        output_tokens: u32,
    },
    /// 200 with a JSON answer: a `tool_use` block when an Anthropic request forced a tool,
    /// else the JSON as the message text.
    Json {
        value: Value,
        input_tokens: u32,
        output_tokens: u32,
    },
    /// 200 with a JSON answer that violates any schema with a required property or
    /// `additionalProperties: false`: `{"unexpected": true}`.
    SchemaViolating,
    /// 200 with a body that is not JSON (cut off mid-object).
    MalformedJson,
    /// Any status, an optional `Retry-After` header value, a body.
    Status {
        status: u16,
        retry_after: Option<String>,
        body: String,
    },
    /// Sleeps, then answers text "slow answer" (or is dropped by the client first).
    Slow(Duration),
    /// 401 whose body echoes the credentials it received (`x-api-key`, `authorization`),
    /// as a careless server would: proves the broker redacts them.
    EchoCredentials,
}

impl Behaviour {
    pub fn text(text: impl Into<String>) -> Self {
        Behaviour::Text {
            text: text.into(),
            input_tokens: 10,
            output_tokens: 5,
        }
    }

    pub fn json(value: Value) -> Self {
        Behaviour::Json {
            value,
            input_tokens: 10,
            output_tokens: 5,
        }
    }

    pub fn status(status: u16) -> Self {
        Behaviour::Status {
            status,
            retry_after: None,
            body:
                json!({"error": {"type": "mock_error", "message": format!("mock status {status}")}})
                    .to_string(),
        }
    }

    /// 429 with `Retry-After: <secs>`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Behaviour::Status {
            status: 429,
            retry_after: Some(retry_after_secs.to_string()),
            body: json!({"error": {"type": "rate_limit_error", "message": "slow down"}})
                .to_string(),
        }
    }

    /// The same answer with other token counts (for `Text` and `Json`).
    pub fn with_tokens(self, input: u32, output: u32) -> Self {
        match self {
            Behaviour::Text { text, .. } => Behaviour::Text {
                text,
                input_tokens: input,
                output_tokens: output,
            },
            Behaviour::Json { value, .. } => Behaviour::Json {
                value,
                input_tokens: input,
                output_tokens: output,
            },
            other => other,
        }
    }
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub path: String,
    pub headers: HeaderMap,
    /// The JSON body (a JSON string holding the raw text if it was not JSON).
    pub body: Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Behaviour>>,
    default: Mutex<Option<Behaviour>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// The running mock; stopped when dropped.
pub struct MockLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl MockLlm {
    /// Starts on 127.0.0.1 on a free port.
    pub async fn start() -> MockLlm {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/v1/messages", post(anthropic))
            .route("/v1/chat/completions", post(openai))
            .fallback(unknown)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock LLM");
        let addr = listener.local_addr().expect("mock address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockLlm { addr, shared, task }
    }

    /// `http://127.0.0.1:<port>`: a provider's `base_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a behaviour for the next unanswered request.
    pub fn push(&self, behaviour: Behaviour) -> &Self {
        self.shared.queue.lock().unwrap().push_back(behaviour);
        self
    }

    /// What to do when the queue is empty (HTTP 500 unless set).
    pub fn set_default(&self, behaviour: Behaviour) {
        *self.shared.default.lock().unwrap() = Some(behaviour);
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Behaviours still queued.
    pub fn pending(&self) -> usize {
        self.shared.queue.lock().unwrap().len()
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    Anthropic,
    OpenAi,
}

async fn anthropic(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(s, Protocol::Anthropic, uri, headers, body).await
}

async fn openai(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(s, Protocol::OpenAi, uri, headers, body).await
}

async fn unknown(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&s, &uri, &headers, &body);
    (StatusCode::NOT_FOUND, "no such mock route").into_response()
}

fn record(s: &Shared, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Value {
    let body = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    s.requests.lock().unwrap().push(RecordedRequest {
        path: uri.path().to_string(),
        headers: headers.clone(),
        body: body.clone(),
    });
    body
}

async fn answer(
    s: Arc<Shared>,
    protocol: Protocol,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let request = record(&s, &uri, &headers, &raw);
    let next = s.queue.lock().unwrap().pop_front();
    let behaviour = next
        .or_else(|| s.default.lock().unwrap().clone())
        .unwrap_or(Behaviour::Status {
            status: 500,
            retry_after: None,
            body: "llm mock: no behaviour queued".into(),
        });
    let model = request.get("model").cloned().unwrap_or(json!("mock-model"));
    match behaviour {
        Behaviour::Text {
            text,
            input_tokens,
            output_tokens,
        } => ok(
            protocol,
            &model,
            &request,
            Reply::Text(text),
            input_tokens,
            output_tokens,
        ),
        Behaviour::Json {
            value,
            input_tokens,
            output_tokens,
        } => ok(
            protocol,
            &model,
            &request,
            Reply::Json(value),
            input_tokens,
            output_tokens,
        ),
        Behaviour::SchemaViolating => ok(
            protocol,
            &model,
            &request,
            Reply::Json(json!({"unexpected": true})),
            10,
            5,
        ),
        Behaviour::MalformedJson => (
            StatusCode::OK,
            [("content-type", "application/json")],
            r#"{"id": "msg_broken", "content": [{"type": "text", "te"#,
        )
            .into_response(),
        Behaviour::Status {
            status,
            retry_after,
            body,
        } => {
            let mut resp = (
                StatusCode::from_u16(status).expect("status"),
                [("content-type", "application/json")],
                body,
            )
                .into_response();
            if let Some(ra) = retry_after {
                resp.headers_mut().insert(
                    "retry-after",
                    HeaderValue::from_str(&ra).expect("retry-after"),
                );
            }
            resp
        }
        Behaviour::Slow(d) => {
            tokio::time::sleep(d).await;
            ok(
                protocol,
                &model,
                &request,
                Reply::Text("slow answer".into()),
                10,
                5,
            )
        }
        Behaviour::EchoCredentials => {
            let seen = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            let body = json!({"error": {
                "type": "authentication_error",
                "message": format!(
                    "invalid credentials: x-api-key={} authorization={}",
                    seen("x-api-key"),
                    seen("authorization")
                )
            }});
            (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
        }
    }
}

enum Reply {
    Text(String),
    Json(Value),
}

fn ok(
    protocol: Protocol,
    model: &Value,
    request: &Value,
    reply: Reply,
    input: u32,
    output: u32,
) -> Response {
    let body = match protocol {
        Protocol::Anthropic => {
            let forced_tool =
                request.pointer("/tool_choice/type").and_then(Value::as_str) == Some("tool");
            let (content, stop) = match reply {
                Reply::Json(value) if forced_tool => {
                    let name = request
                        .pointer("/tool_choice/name")
                        .cloned()
                        .unwrap_or(json!("respond"));
                    (
                        json!([{"type": "tool_use", "id": "toolu_mock", "name": name, "input": value}]),
                        "tool_use",
                    )
                }
                Reply::Json(value) => (
                    json!([{"type": "text", "text": value.to_string()}]),
                    "end_turn",
                ),
                Reply::Text(text) => (json!([{"type": "text", "text": text}]), "end_turn"),
            };
            json!({
                "id": "msg_mock",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop,
                "usage": {"input_tokens": input, "output_tokens": output}
            })
        }
        Protocol::OpenAi => {
            let text = match reply {
                Reply::Json(value) => value.to_string(),
                Reply::Text(text) => text,
            };
            json!({
                "id": "chatcmpl-mock",
                "object": "chat.completion",
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop"
                }],
                "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}
            })
        }
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}
