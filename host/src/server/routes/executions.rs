//! Agent executions and their statistics.

use crate::db::{ExecutionFilter, ExecutionStats};
use crate::server::error::ApiResult;
use crate::server::AppState;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ExecQuery {
    pub agent: Option<String>,
    pub status: Option<String>,
    pub lead_id: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Agent executions, newest first.
#[utoipa::path(get, path = "/api/v1/agents/executions", tag = "agents", params(ExecQuery),
    responses((status = 200, body = Object)), security(("api_key" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<ExecQuery>,
) -> ApiResult<Json<Value>> {
    let rows = st
        .db
        .list_executions(&ExecutionFilter {
            agent: q.agent,
            status: q.status,
            lead_id: q.lead_id,
            limit: q.limit.unwrap_or(50).clamp(1, 1000),
            offset: q.offset.unwrap_or(0).max(0),
        })
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|e| {
            json!({
                "id": e.id, "agent": e.agent, "agent_version": e.agent_version, "status": e.status,
                "input": e.input, "output": e.output, "tokens_in": e.tokens_in, "tokens_out": e.tokens_out,
                "cost": e.cost, "duration_ms": e.duration_ms, "lead_id": e.lead_id,
                "mcp_tools_used": e.mcp_tools_used, "error": e.error, "request_id": e.request_id,
                "created_at": e.created_at, "finished_at": e.finished_at,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct StatsQuery {
    /// Milliseconds since the epoch.
    pub since: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentStatsResponse {
    /// One entry per (agent, agent_version), sorted by both.
    pub items: Vec<ExecutionStats>,
}

/// Counts, success rate, fallback count and rate (runs the agent answered with its
/// rule-based fallback instead of the LLM), latency percentiles, tokens and cost by agent
/// and version.
#[utoipa::path(get, path = "/api/v1/agents/stats", tag = "agents", params(StatsQuery),
    responses((status = 200, body = AgentStatsResponse)), security(("api_key" = [])))]
pub async fn stats(
    State(st): State<AppState>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<AgentStatsResponse>> {
    let items = st.db.execution_stats(q.since).await?;
    Ok(Json(AgentStatsResponse { items }))
}
