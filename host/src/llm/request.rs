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
}

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
