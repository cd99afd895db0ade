//! MCP servers the host connects to: their state, and their tools; MCP tool pins of a
//! plugin ([`crate::mcp::pins`]): list (reader), pin again (admin).

use crate::mcp::{McpError, ServerStatus, ToolInfo};
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use serde::Serialize;

impl From<McpError> for ApiError {
    fn from(e: McpError) -> Self {
        let status = match &e {
            McpError::UnknownServer(_) => StatusCode::NOT_FOUND,
            McpError::Unavailable { .. } | McpError::CircuitOpen { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            McpError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            McpError::Protocol { .. } | McpError::ToolError { .. } => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, e.to_string())
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct McpStatusResponse {
    /// One entry per `[mcp.servers.<name>]`, sorted by name.
    pub servers: Vec<ServerStatus>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct McpToolsResponse {
    pub server: String,
    pub tools: Vec<ToolInfo>,
}

/// Every configured MCP server: connected or not, last error and latency, tool count,
/// restarts, circuit breaker state, and its pinned tools whose current definition
/// differs from the pin (`pin_violations`: calls to them are refused until an admin
/// pins again). Reads the recorded state and the pins (no I/O to the servers).
#[utoipa::path(get, path = "/api/v1/mcp/status", tag = "mcp",
    responses((status = 200, body = McpStatusResponse)),
    security(("api_key" = [])))]
pub async fn mcp_status(State(st): State<AppState>) -> Json<McpStatusResponse> {
    let mut servers = st.mcp.status();
    match st.mcp_pins.violations(&st.mcp).await {
        Ok(violations) => {
            for v in violations {
                if let Some(s) = servers.iter_mut().find(|s| s.name == v.server) {
                    s.pin_violations.push(v);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the MCP tool pins for the status"),
    }
    Json(McpStatusResponse { servers })
}

/// The tools of one MCP server (its cached list; connects first if needed).
#[utoipa::path(get, path = "/api/v1/mcp/servers/{name}/tools", tag = "mcp",
    params(("name" = String, Path, description = "server name in [mcp.servers]")),
    responses((status = 200, body = McpToolsResponse), (status = 404, body = crate::server::error::Problem),
              (status = 503, body = crate::server::error::Problem), (status = 504, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn mcp_server_tools(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<McpToolsResponse>> {
    let tools = st.mcp.list_tools(&name).await?;
    Ok(Json(McpToolsResponse {
        server: name,
        tools,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct McpPinsResponse {
    pub plugin: String,
    /// The pinned tools, sorted by server and tool.
    pub pins: Vec<crate::db::McpToolPin>,
    /// Those whose server now offers another definition (as its live connection lists
    /// it): calls to them are refused.
    pub violations: Vec<crate::mcp::PinViolation>,
}

async fn pins_response(st: &AppState, name: &str) -> ApiResult<McpPinsResponse> {
    let pins = st.mcp_pins.list(Some(name)).await?;
    let violations = st
        .mcp_pins
        .violations(&st.mcp)
        .await?
        .into_iter()
        .filter(|v| v.plugin == name)
        .collect();
    Ok(McpPinsResponse {
        plugin: name.to_string(),
        pins,
        violations,
    })
}

/// The MCP tools pinned for a plugin, with their pinned hash and definition, and the
/// pinned tools whose definition has changed since.
#[utoipa::path(get, path = "/api/v1/plugins/{name}/mcp-pins", tag = "mcp",
    params(("name" = String, Path, description = "plugin name")),
    responses((status = 200, body = McpPinsResponse)),
    security(("api_key" = [])))]
pub async fn plugin_pins(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<McpPinsResponse>> {
    Ok(Json(pins_response(&st, &name).await?))
}

/// Pin (again) the MCP tools the plugin's grant covers, as their servers define them now
/// (each covered server is probed first): replaces the plugin's pins, so calls to a tool
/// refused because its definition changed are allowed again. Review the new definitions
/// first (`GET /api/v1/mcp/servers/{server}/tools`). Audited with the admin's key id.
/// 404: no such plugin; 503: a covered server cannot list its tools (nothing changed).
#[utoipa::path(post, path = "/api/v1/plugins/{name}/mcp-pins", tag = "mcp",
    params(("name" = String, Path, description = "plugin name")),
    responses((status = 200, body = McpPinsResponse), (status = 404, body = crate::server::error::Problem),
              (status = 503, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn pin_plugin(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<McpPinsResponse>> {
    let started = std::time::Instant::now();
    let slot = st
        .manager
        .registry()
        .slot(&name)
        .ok_or_else(|| ApiError::not_found(format!("no plugin {name:?}")))?;
    // What the plugin may reach: its live version's effective grant, else the operator's.
    let config = st.manager.config();
    let scope = match slot.live() {
        Some(p) => p.grants.mcp.clone().unwrap_or_default(),
        None => config
            .grant(&name)
            .filter(|g| {
                g.capabilities
                    .contains(&crate::capabilities::Capability::Mcp)
            })
            .map(|g| g.mcp.clone())
            .unwrap_or_default(),
    };
    let pins = st
        .mcp_pins
        .pin_plugin(&name, &scope, &st.mcp, Some(&caller.key_id))
        .await
        .map_err(|e| match e {
            crate::mcp::pins::PinError::Db(e) => ApiError::from(e),
            e => ApiError::unavailable(e.to_string()),
        })?;
    let tools: Vec<String> = pins
        .iter()
        .map(|p| format!("{}/{} {}", p.server, p.tool, &p.sha256[..12]))
        .collect();
    st.audit.record(crate::audit::AuditRecord {
        at: crate::domain::now_ms(),
        plugin: "host".into(),
        plugin_version: env!("CARGO_PKG_VERSION").into(),
        capability: "mcp".into(),
        operation: "pin-tools".into(),
        target: Some(crate::audit::audit_target(&format!("mcp-pins:{name}"))),
        allowed: true,
        detail: Some(crate::audit::audit_target(&format!(
            "key {} pinned {} MCP tool(s) of plugin {name}: {}",
            caller.key_id,
            pins.len(),
            tools.join(", ")
        ))),
        duration_us: started.elapsed().as_micros() as i64,
        count: 1,
        ..crate::audit::AuditRecord::default()
    });
    Ok(Json(pins_response(&st, &name).await?))
}
