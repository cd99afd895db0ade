//! MCP: the client manager for the MCP servers in config (stdio and streamable HTTP) that
//! the `mcp` capability brokers, and Strata's own MCP server (`strata mcp serve`).
//!
//! * [`settings`] — `[mcp]` in config ([`McpSettings`], [`McpServerSettings`]).
//! * [`manager`] — [`McpManager`]: connections, cached tool lists, per-call deadlines,
//!   reconnect with backoff, circuit breaker, status.
//! * `connect` — one session: a child process the host owns (pid, stderr to the log,
//!   killed on drop) or a streamable HTTP session.
//! * `builtin` — `transport = "builtin"`: Strata's own server in the host process over an
//!   in-memory pipe, on the host's database ([`BuiltinCrm`]).
//! * `breaker` — the breaker and backoff state machines.
//! * [`server`] — Strata's own MCP server over its database ([`serve_stdio`],
//!   [`serve_http`]).
//! * [`error`] — [`McpError`].

mod breaker;
mod builtin;
mod connect;
pub mod error;
pub mod manager;
pub mod server;
pub mod settings;

pub use breaker::BreakerState;
pub use builtin::BuiltinCrm;
pub use error::McpError;
pub use manager::{McpManager, ServerStatus, ToolInfo, ToolOutput};
pub use server::{serve_http, serve_http_with, serve_stdio, serve_stdio_with, ServeOptions};
pub use settings::{McpServerSettings, McpSettings, McpTransport};
