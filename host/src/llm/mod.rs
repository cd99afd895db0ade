//! The LLM broker: providers (Anthropic Messages, OpenAI-compatible chat completions),
//! model aliases, fallback chain, retries, circuit breakers, prices. Plugins reach it
//! only through the `llm` capability and never see a URL or a key.
//!
//! - `settings.rs` — `[llm]` config and its validation.
//! - `broker.rs` — [`LlmBroker`]: alias → fallback chain → retries/backoff → breaker →
//!   schema validation → [`Completion`] (retry/fallback rules in its module docs).
//! - `anthropic.rs`, `openai.rs` — the two wire protocols (request body, answer parsing,
//!   structured-output dialects).
//! - `transport.rs` — one bounded HTTP exchange and its error mapping; `Retry-After`.
//! - `breaker.rs` — per-provider circuit breaker.
//! - `gbnf.rs` — JSON Schema → llama.cpp GBNF grammar (`structured_output = "gbnf"`).
//! - `schema.rs` — schema compilation, JSON extraction (```json fences), validation.
//! - `provider.rs` — a configured provider: key (never printed), breaker, counters.
//! - `request.rs`, `completion.rs`, `error.rs` — the public types.
//!
//! Secrets: keys are read once from the environment variables named in config, sent only
//! as `x-api-key` / `Authorization` header values marked sensitive, redacted from any
//! response body echoed into an error, and never logged. Redirects are not followed.

mod anthropic;
mod breaker;
mod broker;
mod completion;
mod error;
mod gbnf;
mod openai;
mod provider;
mod request;
mod schema;
mod settings;
mod transport;

pub use anthropic::TOOL_NAME as ANTHROPIC_TOOL_NAME;
pub use breaker::BreakerState;
pub use broker::{Allowance, LlmBroker};
pub use completion::{Attempt, Completion};
pub use error::{LlmError, LlmErrorKind, EXCERPT_CHARS};
pub use openai::SCHEMA_NAME as OPENAI_SCHEMA_NAME;
pub use provider::ProviderStatus;
pub use request::{CompletionRequest, Message, MessageRole};
pub use settings::{
    BreakerSettings, LlmSettings, MaxTokensField, ModelSettings, ProviderKind, ProviderSettings,
    RetrySettings, StructuredOutput, DEFAULT_ANTHROPIC_VERSION,
};
