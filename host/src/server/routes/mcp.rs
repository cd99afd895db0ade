//! MCP servers the host connects to: their state, and their tools.

use crate::mcp::{McpError, ServerStatus, ToolInfo};
use crate::server::error::{ApiError, ApiResult};
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
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
/// restarts, circuit breaker state. Reads the recorded state (no I/O).
#[utoipa::path(get, path = "/api/v1/mcp/status", tag = "mcp",
    responses((status = 200, body = McpStatusResponse)),
    security(("api_key" = [])))]
pub async fn mcp_status(State(st): State<AppState>) -> Json<McpStatusResponse> {
    Json(McpStatusResponse {
        servers: st.mcp.status(),
    })
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
