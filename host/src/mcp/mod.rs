//! MCP client: the manager for the MCP servers in config (stdio, streamable HTTP, and the
//! in-process `builtin` transport to Strata's own server, [`crate::crm::mcp`]) that the
//! `mcp` capability brokers.
//!
//! * [`settings`] — `[mcp]` in config ([`McpSettings`], [`McpServerSettings`]).
//! * [`manager`] — [`McpManager`]: connections, cached tool lists, per-call deadlines,
//!   reconnect with backoff, circuit breaker, status.
//! * `upstream` — one configured server: its connection, breaker, backoff, deadlines,
//!   probe and status.
//! * [`pins`] — [`McpPins`]: MCP tool pinning (a plugin's covered tools pinned by hash;
//!   a changed definition refuses its calls until an admin pins again).
//! * `tools` — [`ToolInfo`], [`ToolOutput`] from rmcp's types.
//! * `connect` — one session: a child process the host owns (pid, stderr to the log,
//!   killed on drop) or a streamable HTTP session.
//! * `builtin` — `transport = "builtin"`: Strata's own server in the host process over an
//!   in-memory pipe, on the host's database ([`BuiltinCrm`]).
//! * `breaker` — the breaker and backoff state machines.
//! * [`error`] — [`McpError`].

mod breaker;
mod builtin;
mod connect;
pub mod error;
pub mod manager;
pub mod pins;
pub mod settings;
mod tools;
mod upstream;

pub use breaker::BreakerState;
pub use builtin::BuiltinCrm;
pub use error::{ConnectError, McpError};
pub use manager::{McpManager, ServerStatus, ToolInfo, ToolOutput};
pub use pins::{McpPins, PinViolation};
pub use settings::{McpServerSettings, McpSettings, McpTransport};
