//! The LLM broker: providers (Anthropic Messages, OpenAI-compatible chat completions),
//! model aliases, fallback chain, retries, circuit breakers, prices. Plugins reach it
//! only through the `llm` capability and never see a URL or a key.
//!
//! (Skeleton: being filled in.)

use serde::{Deserialize, Serialize};

/// `[llm]` in config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LlmSettings {}
