//! [`CrmLink`]: the host's connection to the CRM for qualification — reads a lead and
//! writes a qualification back through the CRM's MCP server, as `[qualify.crm]` says.
//!
//! These calls are the host's, not a plugin's: the agent only judges the lead it is
//! given (least privilege: it holds no CRM write power); what reaches the CRM is the
//! operator's mapping. Each call is audited as `host` with capability `mcp` and target
//! `mcp:<server>/<tool>`, and listed in the execution's `mcp_tools_used`.

use super::mapping::{coerce_to_schema, CrmMapping, MappingError, Verdict};
use crate::audit::{audit_target, AuditRecord, AuditSink};
use crate::domain::{now_ms, Lead};
use crate::mcp::{McpError, McpManager, ToolInfo, ToolOutput};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// Why the CRM could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("cannot list the tools of MCP server {server}: {source}")]
    Tools { server: String, source: McpError },
    #[error("CRM read {server}/{tool} for lead {lead_id:?}: {source}")]
    Call {
        server: String,
        tool: String,
        lead_id: String,
        source: McpError,
    },
    /// The tool answered with `isError` (e.g. the lead does not exist in the CRM).
    #[error("CRM read {server}/{tool} for lead {lead_id:?} failed: {text}")]
    Refused {
        server: String,
        tool: String,
        lead_id: String,
        text: String,
    },
    #[error("CRM read {server}/{tool} for lead {lead_id:?} returned no lead object (set [qualify.crm] record to its JSON pointer)")]
    NoRecord {
        server: String,
        tool: String,
        lead_id: String,
    },
}

/// One write-back call's outcome.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WriteBackStep {
    /// `server/tool`.
    pub tool: String,
    /// `done`, `failed` or `skipped`.
    pub status: &'static str,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What the write-back did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WriteBack {
    /// Every call that was not skipped succeeded.
    pub written_back: bool,
    pub steps: Vec<WriteBackStep>,
}

impl WriteBack {
    /// The failures, one line.
    pub fn errors(&self) -> String {
        self.steps
            .iter()
            .filter(|s| s.status == "failed")
            .map(|s| format!("{}: {}", s.tool, s.detail.as_deref().unwrap_or("failed")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `server/tool` of the calls made.
    pub fn tools_called(&self) -> impl Iterator<Item = &str> {
        self.steps
            .iter()
            .filter(|s| s.status != "skipped")
            .map(|s| s.tool.as_str())
    }
}

/// The CRM as qualification reaches it.
pub struct CrmLink {
    mcp: Arc<McpManager>,
    mapping: CrmMapping,
    audit: AuditSink,
}

impl CrmLink {
    /// `None` when `[mcp.servers]` has no server named by `[qualify.crm] mcp_server`:
    /// then qualification uses the stored leads and writes nothing back.
    pub fn new(mcp: Arc<McpManager>, mapping: CrmMapping, audit: AuditSink) -> Option<CrmLink> {
        mcp.servers()
            .contains(&mapping.mcp_server)
            .then_some(CrmLink {
                mcp,
                mapping,
                audit,
            })
    }

    pub fn server(&self) -> &str {
        &self.mapping.mcp_server
    }

    /// The server's tools, with every call of the mapping checked against their schemas.
    pub async fn check(&self) -> Result<Vec<ToolInfo>, LinkError> {
        let tools =
            self.mcp
                .list_tools(self.server())
                .await
                .map_err(|source| LinkError::Tools {
                    server: self.server().to_string(),
                    source,
                })?;
        self.mapping.check_against(&tools)?;
        Ok(tools)
    }

    /// Lead `lead_id` as the CRM has it, mapped onto Strata's lead.
    pub async fn read_lead(
        &self,
        lead_id: &str,
        request_id: Option<&str>,
    ) -> Result<Lead, LinkError> {
        self.check().await?;
        let tool = &self.mapping.read.tool;
        let args = self.mapping.read_arguments(lead_id);
        let (server, lead) = (self.server().to_string(), lead_id.to_string());
        let out = self.call(tool, args, lead_id, request_id).await;
        let out = out.map_err(|source| LinkError::Call {
            server: server.clone(),
            tool: tool.clone(),
            lead_id: lead.clone(),
            source,
        })?;
        if out.is_error {
            return Err(LinkError::Refused {
                server,
                tool: tool.clone(),
                lead_id: lead,
                text: one_line(&out.text),
            });
        }
        let record = self
            .mapping
            .record_of(out.structured.as_ref(), &out.text)
            .ok_or_else(|| LinkError::NoRecord {
                server,
                tool: tool.clone(),
                lead_id: lead,
            })?;
        Ok(self.mapping.lead_from_record(lead_id, &record))
    }

    /// Writes `verdict` back with the mapping's calls, in order; a failed call does not
    /// stop the later ones (each is reported).
    pub async fn write_back(&self, verdict: &Verdict, request_id: Option<&str>) -> WriteBack {
        let tools = match self.check().await {
            Ok(t) => t,
            Err(e) => {
                return WriteBack {
                    written_back: false,
                    steps: vec![WriteBackStep {
                        tool: self.server().to_string(),
                        status: "failed",
                        detail: Some(e.to_string()),
                    }],
                }
            }
        };
        let mut steps = Vec::new();
        for (tool, call) in self.mapping.write_back_calls(verdict) {
            let name = format!("{}/{tool}", self.server());
            let args = match call {
                Ok(a) => a,
                Err(skipped) => {
                    steps.push(WriteBackStep {
                        tool: name,
                        status: "skipped",
                        detail: Some(skipped),
                    });
                    continue;
                }
            };
            let schema = tools
                .iter()
                .find(|t| t.name == tool)
                .map(|t| &t.input_schema);
            let args = match schema {
                Some(s) => coerce_to_schema(args, s),
                None => args,
            };
            let detail = match self.call(&tool, args, &verdict.lead_id, request_id).await {
                Ok(out) if out.is_error => Some(one_line(&out.text)),
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            };
            steps.push(WriteBackStep {
                tool: name,
                status: if detail.is_some() { "failed" } else { "done" },
                detail,
            });
        }
        WriteBack {
            written_back: steps.iter().all(|s| s.status != "failed"),
            steps,
        }
    }

    async fn call(
        &self,
        tool: &str,
        args: Value,
        lead_id: &str,
        request_id: Option<&str>,
    ) -> Result<ToolOutput, McpError> {
        let started = Instant::now();
        let out = self.mcp.call_tool(self.server(), tool, args).await;
        let detail = match &out {
            Ok(o) if o.is_error => format!("qualify {lead_id}: tool error: {}", one_line(&o.text)),
            Ok(_) => format!("qualify {lead_id}"),
            Err(e) => format!("qualify {lead_id}: {e}"),
        };
        self.audit.record(AuditRecord {
            at: now_ms(),
            plugin: "host".into(),
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            capability: "mcp".into(),
            operation: "call-tool".into(),
            target: Some(audit_target(&format!("mcp:{}/{tool}", self.server()))),
            allowed: true,
            detail: Some(audit_target(&detail)),
            duration_us: started.elapsed().as_micros() as i64,
            request_id: request_id.map(str::to_string),
            count: 1,
            ..AuditRecord::default()
        });
        out
    }
}

/// `s` on one line, at most 300 characters.
fn one_line(s: &str) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}
