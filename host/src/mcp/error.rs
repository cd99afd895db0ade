//! What can go wrong talking to an MCP server.

/// An error of [`super::McpManager`]. Every message names the server (and the tool
/// where there is one) and never carries a credential.
///
/// A tool that ran and reported failure (`isError: true`) is not an error here: it is an
/// [`super::ToolOutput`] with `is_error` set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpError {
    /// No `[mcp.servers.<name>]` with this name.
    #[error("no MCP server named {0:?} in [mcp.servers]")]
    UnknownServer(String),
    /// The server cannot be reached: spawning or connecting failed, the connection was
    /// lost (the child exited, the HTTP session dropped), or a reconnect is backing off.
    #[error("MCP server {server:?} is unavailable: {reason}")]
    Unavailable { server: String, reason: String },
    /// The call did not finish within its deadline (it was cancelled).
    #[error("MCP server {server:?}: tool {tool:?} did not answer within {ms} ms")]
    Timeout {
        server: String,
        tool: String,
        ms: u64,
    },
    /// The server failed too often in a row; calls fail at once until the cool-down
    /// (`mcp.breaker_cooldown_ms`) has passed.
    #[error("MCP server {server:?}: circuit breaker open after repeated failures; calls are refused for now")]
    CircuitOpen { server: String },
    /// The server answered something this client cannot use.
    #[error("MCP server {server:?}: protocol error: {message}")]
    Protocol { server: String, message: String },
    /// The server refused the call with a JSON-RPC error (unknown tool, invalid
    /// arguments, internal error), or the arguments were not a JSON object.
    #[error("MCP server {server:?}: tool {tool:?} failed: {message}")]
    ToolError {
        server: String,
        tool: String,
        message: String,
    },
}

impl McpError {
    /// A short stable name of the variant, for metrics and audit rows.
    pub fn kind(&self) -> &'static str {
        match self {
            McpError::UnknownServer(_) => "unknown_server",
            McpError::Unavailable { .. } => "unavailable",
            McpError::Timeout { .. } => "timeout",
            McpError::CircuitOpen { .. } => "circuit_open",
            McpError::Protocol { .. } => "protocol",
            McpError::ToolError { .. } => "tool_error",
        }
    }

    /// True when trying again later may succeed (the server, not the request, failed).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            McpError::Unavailable { .. } | McpError::Timeout { .. } | McpError::CircuitOpen { .. }
        )
    }
}
