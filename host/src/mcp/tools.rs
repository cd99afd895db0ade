//! What the client hands on from MCP servers: a server's tools ([`ToolInfo`]) and one
//! tool call's result ([`ToolOutput`]), converted from rmcp's types.

use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};
use serde::{Deserialize, Serialize};

/// A tool a server offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolInfo {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    #[schema(value_type = Object)]
    pub input_schema: serde_json::Value,
}

impl ToolInfo {
    pub(crate) fn from_rmcp(t: &rmcp::model::Tool) -> Self {
        ToolInfo {
            name: t.name.to_string(),
            description: t.description.as_ref().map(|d| d.to_string()),
            input_schema: serde_json::Value::Object((*t.input_schema).clone()),
        }
    }
}

/// What a tool call returned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolOutput {
    /// The tool reported failure (`isError`); `text` says why.
    pub is_error: bool,
    /// The text contents joined with newlines; other contents appear as a bracketed
    /// placeholder (`[image image/png]`, `[resource file:///…]`).
    pub text: String,
    /// `structuredContent`, when the tool returned one.
    pub structured: Option<serde_json::Value>,
}

impl ToolOutput {
    pub(crate) fn from_rmcp(r: CallToolResult) -> Self {
        let parts: Vec<String> = r
            .content
            .iter()
            .map(|c| match c {
                ContentBlock::Text(t) => t.text.clone(),
                ContentBlock::Image(i) => format!("[image {}]", i.mime_type),
                ContentBlock::Audio(a) => format!("[audio {}]", a.mime_type),
                ContentBlock::Resource(e) => match &e.resource {
                    ResourceContents::TextResourceContents { text, .. } => text.clone(),
                    ResourceContents::BlobResourceContents { uri, .. } => {
                        format!("[resource {uri}]")
                    }
                    _ => "[resource]".to_string(),
                },
                ContentBlock::ResourceLink(l) => format!("[resource {}]", l.uri),
                _ => "[content]".to_string(),
            })
            .collect();
        ToolOutput {
            is_error: r.is_error.unwrap_or(false),
            text: parts.join("\n"),
            structured: r.structured_content,
        }
    }
}

pub(super) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
