//! `mcp`: tools of the configured MCP servers, through the host's [`McpManager`]. A
//! plugin reaches only the `server/tool` pairs both its manifest and its grant name
//! (globs, e.g. `crm/get_*`); everything else is denied and audited. A tool pinned for
//! the plugin ([`crate::mcp::pins`]) whose definition changed is refused as well.
//!
//! [`McpManager`]: crate::mcp::McpManager

use super::grants::matches_any;
use super::{CallState, Capability};
use crate::wit::since_v0_1_0::{agent, mcp as wit, types::CapabilityError};
use serde::Deserialize;
use serde_json::Value;
use std::time::Instant;
use wasmtime::component::{HasSelf, Linker};

/// Scope of `mcp`: `server/tool` globs. Declared in a manifest (empty = whatever the
/// grant allows) and granted in config (empty = nothing).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct McpScope {
    #[serde(default)]
    pub tools: Vec<String>,
    /// In an effective grant: the manifest's globs, which a call must match as well.
    #[serde(default, skip_deserializing, skip_serializing_if = "Vec::is_empty")]
    pub declared: Vec<String>,
}

impl McpScope {
    /// The effective scope: the grant's globs, kept with the manifest's.
    pub fn narrow(&self, granted: &McpScope) -> McpScope {
        McpScope {
            tools: granted.tools.clone(),
            declared: self.tools.clone(),
        }
    }

    /// May the plugin call `tool` of `server`?
    pub fn allows(&self, server: &str, tool: &str) -> bool {
        let key = format!("{server}/{tool}");
        matches_any(&self.tools, &key)
            && (self.declared.is_empty() || matches_any(&self.declared, &key))
    }

    /// May the plugin reach any tool of `server`?
    pub fn allows_server(&self, server: &str) -> bool {
        let prefix = |globs: &[String]| {
            globs.iter().any(|g| {
                g.split('/')
                    .next()
                    .is_some_and(|s| matches_any(&[s.to_string()], server))
            })
        };
        prefix(&self.tools) && (self.declared.is_empty() || prefix(&self.declared))
    }
}

pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    agent::strata::plugin::mcp::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
}

impl CallState {
    fn mcp_scope(&self) -> Result<&super::McpScope, CapabilityError> {
        self.grants
            .mcp
            .as_ref()
            .ok_or_else(|| CapabilityError::Denied("mcp is not granted".into()))
    }

    fn mcp_manager(&self) -> Result<std::sync::Arc<crate::mcp::McpManager>, CapabilityError> {
        self.services
            .mcp
            .clone()
            .ok_or_else(|| CapabilityError::Unavailable("no MCP servers configured".into()))
    }
}

impl CallState {
    /// A tool pinned for this plugin may be called only while its server offers the
    /// pinned definition ([`crate::mcp::pins`]); otherwise the call is refused (denied,
    /// audited with the reason, counted in `mcp_pin_violations_total`).
    fn check_pin(
        &self,
        server: &str,
        tool: &str,
        mgr: &crate::mcp::McpManager,
    ) -> Result<(), CapabilityError> {
        let Some(pins) = self.services.mcp_pins.clone() else {
            return Ok(());
        };
        match self
            .services
            .block_on(pins.check(&self.plugin.name, server, tool, mgr))
        {
            Ok(None) => Ok(()),
            Ok(Some(v)) => {
                metrics::counter!(
                    "mcp_pin_violations_total",
                    "plugin" => v.plugin.clone(),
                    "server" => v.server.clone(),
                    "tool" => v.tool.clone()
                )
                .increment(1);
                tracing::warn!(
                    plugin = %v.plugin, server = %v.server, tool = %v.tool,
                    pinned_sha256 = %v.pinned_sha256, current_sha256 = ?v.current_sha256,
                    "MCP call refused: tool definition changed since it was pinned"
                );
                Err(CapabilityError::Denied(v.message()))
            }
            Err(crate::mcp::pins::CheckError::Mcp(e)) => Err(unavailable(e)),
            Err(e) => Err(CapabilityError::Unavailable(e.to_string())),
        }
    }
}

fn unavailable(e: crate::mcp::McpError) -> CapabilityError {
    CapabilityError::Unavailable(e.to_string())
}

impl wit::Host for CallState {
    fn list_tools(&mut self, server: String) -> Result<Vec<wit::Tool>, CapabilityError> {
        let target = format!("mcp:{server}");
        self.taped(Capability::Mcp, "list-tools", &target, Value::Null, |s| {
            s.mcp_list_tools(server)
        })
    }

    fn call_tool(
        &mut self,
        server: String,
        tool: String,
        arguments: String,
    ) -> Result<wit::ToolResult, CapabilityError> {
        let target = format!("mcp:{server}/{tool}");
        // Parsed when it is JSON, so a replay matches on the arguments, not their spacing.
        let request = serde_json::from_str::<Value>(&arguments)
            .map(|a| serde_json::json!({ "arguments": a }))
            .unwrap_or_else(|_| serde_json::json!({ "arguments_text": arguments }));
        self.taped(Capability::Mcp, "call-tool", &target, request, |s| {
            s.mcp_call_tool(server, tool, arguments)
        })
    }
}

impl CallState {
    fn mcp_list_tools(&mut self, server: String) -> Result<Vec<wit::Tool>, CapabilityError> {
        let started = Instant::now();
        let r = (|| {
            let scope = self.mcp_scope()?.clone();
            if !scope.allows_server(&server) {
                return Err(CapabilityError::Denied(format!(
                    "MCP server {server:?} is not granted"
                )));
            }
            let mgr = self.mcp_manager()?;
            let tools = self
                .services
                .block_on(mgr.list_tools(&server))
                .map_err(unavailable)?;
            Ok(tools
                .into_iter()
                .filter(|t| scope.allows(&server, &t.name))
                .map(|t| wit::Tool {
                    name: t.name,
                    description: t.description,
                    input_schema: t.input_schema.to_string(),
                })
                .collect::<Vec<_>>())
        })();
        self.audited(
            Capability::Mcp,
            "list-tools",
            &format!("mcp:{server}"),
            started,
            None,
            r,
        )
    }

    fn mcp_call_tool(
        &mut self,
        server: String,
        tool: String,
        arguments: String,
    ) -> Result<wit::ToolResult, CapabilityError> {
        let started = Instant::now();
        let target = format!("mcp:{server}/{tool}");
        let r = (|| {
            if !self.mcp_scope()?.allows(&server, &tool) {
                return Err(CapabilityError::Denied(format!(
                    "MCP tool {server}/{tool} is not granted"
                )));
            }
            let args: serde_json::Value = if arguments.trim().is_empty() {
                serde_json::json!({})
            } else {
                serde_json::from_str(&arguments)
                    .map_err(|e| CapabilityError::Invalid(format!("arguments are not JSON: {e}")))?
            };
            if !args.is_object() {
                return Err(CapabilityError::Invalid(
                    "arguments must be a JSON object".into(),
                ));
            }
            let mgr = self.mcp_manager()?;
            self.check_pin(&server, &tool, &mgr)?;
            if self.dry_run() && mgr.is_side_effecting(&server, &tool) {
                self.hold_back(
                    Capability::Mcp,
                    "call-tool",
                    &target,
                    serde_json::json!({ "arguments": args }),
                );
                self.usage
                    .mcp_tools
                    .push(format!("{server}/{tool} (dry-run)"));
                return Ok(wit::ToolResult {
                    is_error: false,
                    text: format!("dry run: {server}/{tool} was not executed"),
                    structured: Some(
                        serde_json::json!({ "dry_run": true, "executed": false }).to_string(),
                    ),
                });
            }
            let out = self
                .services
                .block_on(mgr.call_tool(&server, &tool, args))
                .map_err(unavailable)?;
            self.usage.mcp_tools.push(format!("{server}/{tool}"));
            // An upstream server may echo a configured secret: the plugin never sees it.
            let secrets = &self.services.secrets;
            Ok(wit::ToolResult {
                is_error: out.is_error,
                text: secrets.redact_string(out.text),
                structured: out.structured.map(|mut v| {
                    secrets.redact_json(&mut v);
                    v.to_string()
                }),
            })
        })();
        let note = r.as_ref().ok().and_then(|o| {
            if o.is_error {
                Some(format!(
                    "tool reported an error: {}",
                    truncate(&o.text, 200)
                ))
            } else if o.text.starts_with("dry run:") && self.dry_run() {
                Some("dry-run: held back, not executed".to_string())
            } else {
                None
            }
        });
        self.audited(Capability::Mcp, "call-tool", &target, started, note, r)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
