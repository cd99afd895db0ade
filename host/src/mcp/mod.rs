//! MCP: the client manager for the MCP servers in config (stdio and streamable HTTP) that
//! the `mcp` capability brokers, and Strata's own MCP server (`strata mcp serve`).
//!
//! (Skeleton: being filled in.)

use serde::{Deserialize, Serialize};

/// `[mcp]` in config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct McpSettings {}
