//! Strata's own MCP server (`strata mcp serve`): the CRM's operations ([`super::Crm`]) as
//! tools for agents and other MCP clients, over stdio here, over streamable HTTP in
//! `server::mcp_http`, and in process for the `builtin` MCP transport.
//!
//! Tools: `get_lead`, `list_leads`, `upsert_lead`, `get_company`, `update_lead` (status,
//! notes, custom attributes only), `get_lead_score` (latest score and its human override),
//! `qualify_lead` (enqueues the same durable job as `POST /api/v1/leads/qualify/{id}`; a
//! `strata serve` worker runs it). Failures are tool errors (`isError`) whose text names
//! the cause, e.g. `no lead "x"`.
//!
//! In stdio mode stdout carries the protocol: everything else (logs) goes to stderr.

use super::{Crm, CrmError, QualifyRequest};
use crate::db::leads::LeadUpdate;
use crate::db::{Db, LeadFilter};
use crate::domain::{Lead, LeadStatus};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most leads `list_leads` returns at once.
pub const MAX_LIST_LIMIT: i64 = 500;
/// Most stored leads `get_company` reads industries from (counts and maxima cover all).
const MAX_COMPANY_LEADS: i64 = 2_000;

/// What the server needs beyond the database.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Strategy `qualify_lead` uses when the caller names none (`Config::qualify_strategy`).
    pub default_strategy: String,
    /// Attempts of an enqueued qualify job (`server.job_max_attempts`).
    pub job_max_attempts: i64,
}

impl Default for ServeOptions {
    fn default() -> Self {
        let cfg = crate::config::Config::default();
        Self::from_config(&cfg)
    }
}

impl ServeOptions {
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self {
            default_strategy: cfg.qualify_strategy(None),
            job_max_attempts: i64::from(cfg.server.job_max_attempts.max(1)),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetLeadArgs {
    /// The lead's id.
    pub id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListLeadsArgs {
    /// Only leads with this status: new, contacted, nurture, qualified, unqualified, junk.
    #[serde(default)]
    pub status: Option<String>,
    /// Most leads to return (default 50, at most 500).
    #[serde(default)]
    pub limit: Option<i64>,
    /// Leads to skip (for paging).
    #[serde(default)]
    pub offset: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLeadArgs {
    /// The lead's id.
    pub id: String,
    /// New status: new, contacted, nurture, qualified, unqualified, junk.
    #[serde(default)]
    pub status: Option<String>,
    /// New notes (replace the old ones).
    #[serde(default)]
    pub notes: Option<String>,
    /// Custom attributes to set (a null value removes the attribute); others are kept.
    #[serde(default)]
    pub attributes: Option<BTreeMap<String, Option<String>>>,
}

/// `upsert_lead`'s arguments: the lead's `id` and any of [`Lead`]'s other fields except
/// `status` and `attributes`. Its schema is `Lead`'s, so the two cannot drift apart.
#[derive(Debug, Deserialize)]
pub struct UpsertLeadArgs {
    /// The lead's id (stable: the same person keeps the same id).
    pub id: String,
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl JsonSchema for UpsertLeadArgs {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "UpsertLeadArgs".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = Lead::json_schema(generator);
        if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
            props.remove("status");
            props.remove("attributes");
        }
        schema.insert("required".into(), json!(["id"]));
        schema
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyArgs {
    /// The company's name (matched case-insensitively).
    pub company: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadIdArgs {
    /// The lead's id.
    pub lead_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualifyLeadArgs {
    /// The lead's id.
    pub lead_id: String,
    /// Scorer plugin to use (default: the host's default scorer).
    #[serde(default)]
    pub strategy: Option<String>,
}

/// A tool's outcome: its structured result, or the text of a tool error.
type ToolResult = Result<CallToolResult, String>;

/// The MCP server over one database.
#[derive(Clone)]
pub struct StrataMcpServer {
    crm: Crm,
    opts: Arc<ServeOptions>,
    tool_router: ToolRouter<StrataMcpServer>,
}

fn parse_status(s: &str) -> Result<LeadStatus, String> {
    s.parse::<LeadStatus>().map_err(|_| {
        let all: Vec<&str> = LeadStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown status {s:?}: expected one of {}", all.join(", "))
    })
}

/// The text of a tool error; database failures are logged here, once.
fn tool_error(e: CrmError) -> String {
    match e {
        CrmError::Db(e) => {
            tracing::error!(error = %e, "MCP tool: database error");
            format!("database error: {e}")
        }
        other => other.to_string(),
    }
}

fn structured<T: serde::Serialize>(v: &T) -> ToolResult {
    serde_json::to_value(v)
        .map(CallToolResult::structured)
        .map_err(|e| format!("cannot encode the result: {e}"))
}

fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    Ok(())
}

#[tool_router]
impl StrataMcpServer {
    pub fn new(db: Db, opts: ServeOptions) -> Self {
        Self {
            crm: Crm::new(db),
            opts: Arc::new(opts),
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Get one lead by id: contact, company, status, notes and custom attributes."
    )]
    async fn get_lead(&self, Parameters(a): Parameters<GetLeadArgs>) -> ToolResult {
        check_id("id", &a.id)?;
        structured(&self.crm.lead(&a.id).await.map_err(tool_error)?)
    }

    #[tool(
        description = "List leads, most recently updated first, optionally only those with a status. Returns {items, total}."
    )]
    async fn list_leads(&self, Parameters(a): Parameters<ListLeadsArgs>) -> ToolResult {
        let status = a.status.as_deref().map(parse_status).transpose()?;
        let limit = a.limit.unwrap_or(50);
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            return Err(format!(
                "limit must be within 1–{MAX_LIST_LIMIT}, not {limit}"
            ));
        }
        let offset = a.offset.unwrap_or(0);
        if offset < 0 {
            return Err(format!("offset must not be negative, not {offset}"));
        }
        let filter = LeadFilter {
            status,
            limit,
            offset,
            ..LeadFilter::default()
        };
        let (items, total) = self.crm.list_leads(&filter).await.map_err(tool_error)?;
        structured(&json!({ "items": items, "total": total }))
    }

    #[tool(
        description = "Create a lead, or merge the given fields into the stored lead with this id (fields not given are kept; status, attributes are untouched). Returns {lead, created}."
    )]
    async fn upsert_lead(&self, Parameters(a): Parameters<UpsertLeadArgs>) -> ToolResult {
        check_id("id", &a.id)?;
        let (lead, created) = self
            .crm
            .merge_lead(&a.id, &a.fields)
            .await
            .map_err(tool_error)?;
        tracing::info!(lead = %lead.id, created, "lead upserted over MCP");
        structured(&json!({ "lead": lead, "created": created }))
    }

    #[tool(
        description = "Facts about a company from the CRM's stored leads: lead count and ids, industries, the largest known employee count and annual revenue, how many of its leads are qualified."
    )]
    async fn get_company(&self, Parameters(a): Parameters<CompanyArgs>) -> ToolResult {
        let facts = self
            .crm
            .company(&a.company, 20, MAX_COMPANY_LEADS)
            .await
            .map_err(tool_error)?;
        structured(&json!({
            "company": a.company.trim(),
            "lead_count": facts.lead_count,
            "lead_ids": facts.lead_ids,
            "industries": facts.industries,
            "employees": facts.employees,
            "annual_revenue": facts.annual_revenue,
            "qualified_count": facts.qualified_count,
        }))
    }

    #[tool(
        description = "Update a lead's status, notes and/or custom attributes (nothing else). Attributes are merged: a null value removes one. Returns the updated lead."
    )]
    async fn update_lead(&self, Parameters(a): Parameters<UpdateLeadArgs>) -> ToolResult {
        check_id("id", &a.id)?;
        let update = LeadUpdate {
            status: a.status.as_deref().map(parse_status).transpose()?,
            notes: a.notes,
            attributes: a.attributes.unwrap_or_default(),
        };
        let lead = self
            .crm
            .update_lead(&a.id, &update)
            .await
            .map_err(tool_error)?;
        tracing::info!(lead = %a.id, "lead updated over MCP");
        structured(&lead)
    }

    #[tool(
        description = "The latest stored score of a lead (value, priority, factors, reasoning) and its human override, if any. score is null when the lead was never scored."
    )]
    async fn get_lead_score(&self, Parameters(a): Parameters<LeadIdArgs>) -> ToolResult {
        let latest = self
            .crm
            .latest_score(&a.lead_id)
            .await
            .map_err(tool_error)?;
        structured(&json!({
            "lead_id": a.lead_id,
            "human_override": latest.as_ref().and_then(|s| s.human_override.clone()),
            "score": latest,
        }))
    }

    #[tool(
        description = "Qualify a lead in the background: enqueues a durable scoring job (run by a `strata serve` worker) and returns its job id."
    )]
    async fn qualify_lead(&self, Parameters(a): Parameters<QualifyLeadArgs>) -> ToolResult {
        let job = self
            .crm
            .enqueue_qualify(&QualifyRequest {
                strategy: a
                    .strategy
                    .unwrap_or_else(|| self.opts.default_strategy.clone()),
                lead_id: a.lead_id.clone(),
                requested_by: "mcp".into(),
                request_id: None,
                max_attempts: self.opts.job_max_attempts,
            })
            .await
            .map_err(tool_error)?;
        tracing::info!(lead = %a.lead_id, job = %job.id, "qualify job enqueued over MCP");
        structured(&json!({
            "job_id": job.id,
            "status": job.status.as_str(),
            "href": format!("/api/v1/jobs/{}", job.id),
        }))
    }
}

impl StrataMcpServer {
    /// Runs `tool` with `args` in process, without JSON-RPC: the calls of the `builtin`
    /// transport. The same handlers, argument parsing and result conversion as a session's
    /// `tools/call`: arguments that do not parse and handler failures are tool errors
    /// (`isError`) naming the cause; `None` for a tool this server does not have.
    pub(crate) async fn call_in_process(
        &self,
        tool: &str,
        args: rmcp::model::JsonObject,
    ) -> Option<CallToolResult> {
        use rmcp::handler::server::tool::parse_json_object;
        use rmcp::model::ContentBlock;
        macro_rules! dispatch {
            ($($name:ident),* $(,)?) => {
                match tool {
                    $(stringify!($name) => match parse_json_object(args) {
                        Ok(a) => self.$name(Parameters(a)).await,
                        Err(e) => Err(e.message.to_string()),
                    },)*
                    _ => return None,
                }
            };
        }
        let result: ToolResult = dispatch!(
            get_lead,
            list_leads,
            upsert_lead,
            get_company,
            update_lead,
            get_lead_score,
            qualify_lead,
        );
        Some(
            result
                .unwrap_or_else(|message| CallToolResult::error(vec![ContentBlock::text(message)])),
        )
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "strata",
    instructions = "Strata CRM: read and update leads, read their scores, and queue qualification jobs."
)]
impl ServerHandler for StrataMcpServer {}

/// Serves Strata's MCP server on stdin/stdout until the client closes stdin.
pub async fn serve_stdio(db: Db) -> anyhow::Result<()> {
    serve_stdio_with(db, ServeOptions::default()).await
}

/// [`serve_stdio`] with explicit options.
pub async fn serve_stdio_with(db: Db, opts: ServeOptions) -> anyhow::Result<()> {
    let service = StrataMcpServer::new(db, opts)
        .serve(rmcp::transport::io::stdio_pipes())
        .await
        .map_err(|e| anyhow::anyhow!("MCP stdio handshake failed: {e}"))?;
    tracing::info!("MCP server serving on stdio");
    let reason = service.waiting().await?;
    tracing::info!(?reason, "MCP stdio session ended");
    Ok(())
}
