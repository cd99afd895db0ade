//! What a caller asks of the broker: a conversation, an output bound and optionally a
//! JSON schema the answer must satisfy.

use serde::{Deserialize, Serialize};

/// One completion call, provider-neutral.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CompletionRequest {
    /// System prompt (Anthropic `system`, OpenAI a leading `system` message); a blank one
    /// is not sent.
    pub system: Option<String>,
    /// The conversation, oldest first: at least one message, the first from the user, none
    /// blank.
    pub messages: Vec<Message>,
    /// Upper bound on output tokens; at least 1.
    pub max_tokens: u32,
    /// When set, the answer must be JSON valid against this schema: the provider is asked
    /// for it in its dialect and the broker validates it before returning
    /// ([`Completion::json`](super::Completion::json)).
    pub json_schema: Option<serde_json::Value>,
}

impl CompletionRequest {
    /// A single user turn.
    pub fn user(prompt: impl Into<String>, max_tokens: u32) -> Self {
        Self {
            system: None,
            messages: vec![Message::user(prompt)],
            max_tokens,
            json_schema: None,
        }
    }

    pub fn with_system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    pub fn with_schema(mut self, schema: serde_json::Value) -> Self {
        self.json_schema = Some(schema);
        self
    }

    /// A conservative upper bound on the input tokens one attempt of this request can be
    /// billed, without a tokenizer: the UTF-8 bytes of the system prompt, the messages and
    /// the schema (byte-level BPE tokenizers, which the supported providers use, never
    /// make more tokens than bytes), plus [`TOKENS_PER_MESSAGE`] per message,
    /// [`TOKENS_PER_REQUEST`] for the request and [`TOKENS_FOR_SCHEMA`] for the tool or
    /// format wrapping of a schema. Typical English text is ~4 bytes per token, so this
    /// over-reserves about 4× on the prompt; the reservation is settled to the actual
    /// usage once the call is done.
    pub fn input_tokens_upper_bound(&self) -> u64 {
        let text: usize = self.system.as_deref().map_or(0, str::len)
            + self.messages.iter().map(|m| m.content.len()).sum::<usize>();
        let schema = self
            .json_schema
            .as_ref()
            .map_or(0, |s| s.to_string().len() as u64 + TOKENS_FOR_SCHEMA);
        text as u64
            + schema
            + TOKENS_PER_MESSAGE * (self.messages.len() as u64 + 1)
            + TOKENS_PER_REQUEST
    }

    /// [`Self::input_tokens_upper_bound`] + `max_tokens`: the most one attempt can use.
    pub fn tokens_upper_bound(&self) -> u64 {
        self.input_tokens_upper_bound() + u64::from(self.max_tokens)
    }
}

/// Framing tokens counted per message (the system prompt counts as one) in
/// [`CompletionRequest::input_tokens_upper_bound`].
pub const TOKENS_PER_MESSAGE: u64 = 8;
/// Framing tokens counted per request.
pub const TOKENS_PER_REQUEST: u64 = 16;
/// Tokens counted for a schema's wrapping (tool definition, format instructions).
pub const TOKENS_FOR_SCHEMA: u64 = 256;

/// One turn of the conversation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Message {
    pub role: MessageRole,
    pub content: String,
}

impl Message {
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: MessageRole::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: MessageRole::Assistant,
            content: content.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    User,
    Assistant,
}

impl MessageRole {
    /// The role's name on the wire (the same in both protocols).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
        }
    }
}
