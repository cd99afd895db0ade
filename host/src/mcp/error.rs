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

/// Why a session with an MCP server could not be opened. Its message becomes the reason of
/// [`McpError::Unavailable`] and the server's `last_error`; it never carries a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot start {program:?}: {message}")]
    Spawn { program: String, message: String },
    #[error("child has no {0}")]
    Pipe(&'static str),
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The session opened, then failed; the text says how (and how the child exited).
    #[error("{0}")]
    Lost(String),
    #[error("environment variable {var} (env_from, for the child's {child}) is not set or empty")]
    EnvFrom { var: String, child: String },
    #[error("environment variable {var} (auth_header_env) {problem}")]
    AuthEnv { var: String, problem: &'static str },
    #[error("cannot open a session at {url}: {message}")]
    Session { url: String, message: String },
    #[error("transport \"builtin\" runs Strata's own CRM server on the host's database, and this MCP client has none")]
    NoBuiltin,
    #[error("connecting took longer than {0} ms")]
    Timeout(u128),
}
