//! The capability audit: every call a plugin made through a host capability.

use crate::db::AuditFilter;
use crate::server::error::ApiResult;
use crate::server::AppState;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    pub plugin: Option<String>,
    pub capability: Option<String>,
    pub allowed: Option<bool>,
    pub request_id: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    pub since: Option<i64>,
    /// Milliseconds since the epoch, exclusive.
    pub until: Option<i64>,
    pub limit: Option<i64>,
}

/// Capability calls, newest first. `count` is how many calls a row stands for: 1, or
/// more for the summary of identical calls one plugin call made past
/// `runtime.audit_max_records_per_call` (its duration, tokens and cost are sums).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Object)), security(("api_key" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    st.audit.flush().await;
    let rows = st
        .db
        .list_audit(&AuditFilter {
            plugin: q.plugin,
            capability: q.capability,
            allowed: q.allowed,
            request_id: q.request_id,
            since_ms: q.since,
            until_ms: q.until,
            limit: q.limit.unwrap_or(100).clamp(1, 10_000),
            before: None,
        })
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let a = &r.record;
            json!({
                "id": r.id, "at": a.at, "plugin": a.plugin, "plugin_version": a.plugin_version,
                "capability": a.capability, "operation": a.operation, "target": a.target,
                "allowed": a.allowed, "detail": a.detail, "duration_us": a.duration_us,
                "tokens_in": a.tokens_in, "tokens_out": a.tokens_out, "cost_usd": a.cost_usd,
                "request_id": a.request_id, "count": a.count,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}
