//! Strata's own MCP server (`strata mcp serve`): tools over Strata's database for
//! agents and other MCP clients, over stdio or streamable HTTP.
//!
//! Tools: `get_lead`, `list_leads`, `update_lead` (status, notes, custom attributes only),
//! `get_lead_score` (latest score and its human override), `qualify_lead` (enqueues the
//! same durable job as `POST /api/v1/leads/qualify/{id}`; a `strata serve` worker runs it).
//! Failures are tool errors (`isError`) whose text names the cause, e.g. `no lead "x"`.
//!
//! In stdio mode stdout carries the protocol: everything else (logs) goes to stderr.
//! Over HTTP every request needs an operator (or admin) API key of the HTTP API.

use crate::db::leads::LeadUpdate;
use crate::db::{Db, LeadFilter, NewJob};
use crate::domain::LeadStatus;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
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

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertLeadArgs {
    /// The lead's id (stable: the same person keeps the same id).
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub industry: Option<String>,
    #[serde(default)]
    pub employees: Option<u32>,
    #[serde(default)]
    pub annual_revenue: Option<f64>,
    #[serde(default)]
    pub budget: Option<f64>,
    #[serde(default)]
    pub timeline: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
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

type ToolResult = Result<CallToolResult, String>;

/// The MCP server over one database.
#[derive(Clone)]
pub struct StrataMcpServer {
    db: Db,
    opts: Arc<ServeOptions>,
    tool_router: ToolRouter<StrataMcpServer>,
}

fn parse_status(s: &str) -> Result<LeadStatus, String> {
    s.parse::<LeadStatus>().map_err(|_| {
        let all: Vec<&str> = LeadStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown status {s:?}: expected one of {}", all.join(", "))
    })
}

fn db_error(e: crate::db::DbError) -> String {
    tracing::error!(error = %e, "MCP tool: database error");
    format!("database error: {e}")
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

impl StrataMcpServer {
    /// Checks `lead_id` and that such a lead is stored.
    async fn require_lead(&self, lead_id: &str) -> Result<(), String> {
        check_id("lead_id", lead_id)?;
        match self.db.get_lead(lead_id).await.map_err(db_error)? {
            Some(_) => Ok(()),
            None => Err(format!("no lead {lead_id:?}")),
        }
    }
}

#[tool_router]
impl StrataMcpServer {
    pub fn new(db: Db, opts: ServeOptions) -> Self {
        Self {
            db,
            opts: Arc::new(opts),
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Get one lead by id: contact, company, status, notes and custom attributes."
    )]
    async fn get_lead(&self, Parameters(a): Parameters<GetLeadArgs>) -> ToolResult {
        check_id("id", &a.id)?;
        match self.db.get_lead(&a.id).await.map_err(db_error)? {
            Some(lead) => structured(&lead),
            None => Err(format!("no lead {:?}", a.id)),
        }
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
        let items = self.db.list_leads(&filter).await.map_err(db_error)?;
        let total = self.db.count_leads(&filter).await.map_err(db_error)?;
        structured(&json!({ "items": items, "total": total }))
    }

    #[tool(
        description = "Create a lead, or merge the given fields into the stored lead with this id (fields not given are kept; status, attributes are untouched). Returns {lead, created}."
    )]
    async fn upsert_lead(&self, Parameters(a): Parameters<UpsertLeadArgs>) -> ToolResult {
        check_id("id", &a.id)?;
        if a.budget.is_some_and(|b| !(b.is_finite() && b >= 0.0))
            || a.annual_revenue
                .is_some_and(|r| !(r.is_finite() && r >= 0.0))
        {
            return Err("budget and annual_revenue must be finite and not negative".into());
        }
        let existing = self.db.get_lead(&a.id).await.map_err(db_error)?;
        let created = existing.is_none();
        let mut lead = existing.unwrap_or_else(|| crate::domain::Lead {
            id: a.id.clone(),
            ..Default::default()
        });
        macro_rules! merge {
            ($($f:ident),*) => { $( if a.$f.is_some() { lead.$f = a.$f; } )* };
        }
        merge!(
            name,
            email,
            company,
            title,
            industry,
            employees,
            annual_revenue,
            budget,
            timeline,
            source,
            notes
        );
        self.db.upsert_lead(&lead).await.map_err(db_error)?;
        tracing::info!(lead = %lead.id, created, "lead upserted over MCP");
        structured(&json!({ "lead": lead, "created": created }))
    }

    #[tool(
        description = "Facts about a company from the CRM's stored leads: lead count and ids, industries, the largest known employee count and annual revenue, how many of its leads are qualified."
    )]
    async fn get_company(&self, Parameters(a): Parameters<CompanyArgs>) -> ToolResult {
        let name = a.company.trim();
        if name.is_empty() || name.len() > 200 {
            return Err("company must be 1-200 characters".into());
        }
        let facts = self
            .db
            .company_facts(name, 20, MAX_COMPANY_LEADS)
            .await
            .map_err(db_error)?;
        structured(&json!({
            "company": name,
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
        if update.is_empty() {
            return Err("nothing to update: give status, notes or attributes".into());
        }
        if let Some(k) = update.attributes.keys().find(|k| k.trim().is_empty()) {
            return Err(format!("attribute name {k:?} must not be empty"));
        }
        match self
            .db
            .update_lead(&a.id, &update)
            .await
            .map_err(db_error)?
        {
            Some(rec) => {
                tracing::info!(lead = %a.id, "lead updated over MCP");
                structured(&rec.lead)
            }
            None => Err(format!("no lead {:?}", a.id)),
        }
    }

    #[tool(
        description = "The latest stored score of a lead (value, priority, factors, reasoning) and its human override, if any. score is null when the lead was never scored."
    )]
    async fn get_lead_score(&self, Parameters(a): Parameters<LeadIdArgs>) -> ToolResult {
        self.require_lead(&a.lead_id).await?;
        let latest = self
            .db
            .latest_scores(&a.lead_id, 1)
            .await
            .map_err(db_error)?
            .into_iter()
            .next();
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
        self.require_lead(&a.lead_id).await?;
        let strategy = a
            .strategy
            .unwrap_or_else(|| self.opts.default_strategy.clone());
        if strategy.trim().is_empty() {
            return Err("strategy must not be empty".into());
        }
        let job = self
            .db
            .enqueue_job(&NewJob {
                kind: crate::server::worker::QUALIFY.into(),
                payload: json!({"lead_id": a.lead_id, "strategy": strategy, "requested_by": "mcp"}),
                max_attempts: self.opts.job_max_attempts,
                request_id: None,
                run_at: None,
            })
            .await
            .map_err(db_error)?;
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

/// Serves Strata's MCP server over streamable HTTP at `http://<bind>/mcp` until
/// `shutdown` resolves. Binding happens before this returns: the bound address (useful
/// with port 0) is returned and the server runs on a spawned task.
///
/// Every request needs an API key of the HTTP API with the operator role or above
/// (`Authorization: Bearer <key>`; the tools read and change leads and enqueue jobs):
/// 401 without a valid key, 403 for a reader key.
pub async fn serve_http(
    db: Db,
    bind: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<SocketAddr> {
    serve_http_with(db, ServeOptions::default(), bind, shutdown)
        .await
        .map(|(addr, _)| addr)
}

/// [`serve_http`] with explicit options; also returns the server task (it ends after
/// `shutdown` once open sessions are closed).
pub async fn serve_http_with(
    db: Db,
    opts: ServeOptions,
    bind: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    // DNS-rebinding protection: loopback names are allowed by default; a server bound
    // to a specific other address also accepts that address as Host.
    let mut config = StreamableHttpServerConfig::default();
    let ct = config.cancellation_token.clone();
    if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
        let mut hosts = config.allowed_hosts.clone();
        hosts.push(addr.ip().to_string());
        config = config.with_allowed_hosts(hosts);
    }
    let server = StrataMcpServer::new(db.clone(), opts);
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(db, require_key));
    let task = tokio::spawn(async move {
        let stop = ct.clone();
        let graceful = async move {
            shutdown.await;
            stop.cancel();
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(graceful)
            .await
        {
            tracing::error!("MCP HTTP server failed: {e}");
        }
    });
    tracing::info!(%addr, "MCP server serving streamable HTTP at http://{addr}/mcp");
    Ok((addr, task))
}

/// Middleware of the HTTP transport: an active API key with the operator role or above.
async fn require_key(
    axum::extract::State(db): axum::extract::State<Db>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use crate::db::Role;
    use crate::server::error::ApiError;
    use axum::response::IntoResponse;
    let Some(key) = crate::server::auth::presented_key(req.headers()) else {
        return ApiError::unauthorized("missing API key: send `Authorization: Bearer <key>`")
            .into_response();
    };
    match db
        .find_active_api_key(&crate::server::auth::hash_key(key))
        .await
    {
        Ok(Some(rec)) if rec.role.allows(Role::Operator) => next.run(req).await,
        Ok(Some(rec)) => ApiError::forbidden(format!(
            "the MCP server needs the operator role; key {:?} has {}",
            rec.name,
            rec.role.as_str()
        ))
        .into_response(),
        Ok(None) => ApiError::unauthorized("invalid or revoked API key").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
