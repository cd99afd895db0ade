//! Leads: create/upsert (single and bulk), list, get.

use crate::db::LeadFilter;
use crate::domain::{Lead, LeadStatus};
use crate::input::{self, InputFormat, ReadOptions};
use crate::server::error::{ApiError, ApiResult};
use crate::server::json::ApiJson;
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

/// Create a lead, or update the lead with the same id.
#[utoipa::path(post, path = "/api/v1/leads", tag = "leads", request_body = Lead,
    responses((status = 201, body = Lead), (status = 400, body = crate::server::error::Problem),
              (status = 422, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn upsert(
    State(st): State<AppState>,
    ApiJson(lead): ApiJson<Lead>,
) -> ApiResult<(StatusCode, Json<Lead>)> {
    st.crm().put_lead(&lead).await?;
    Ok((StatusCode::CREATED, Json(lead)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkResult {
    pub upserted: u64,
}

/// Bulk upsert: a JSON Lines body (`application/x-ndjson`) or CSV (`text/csv`). All or
/// nothing: one bad record rejects the whole request, naming its line.
#[utoipa::path(post, path = "/api/v1/leads/bulk", tag = "leads",
    request_body(content = Lead, content_type = "application/x-ndjson",
        description = "JSON Lines: one `Lead` object per line (the schema is a line's). \
                       Or `text/csv`: a header row, then one lead per record."),
    responses((status = 201, body = BulkResult), (status = 400, body = crate::server::error::Problem),
              (status = 422, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn bulk(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<BulkResult>)> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = if ct.starts_with("text/csv") {
        InputFormat::Csv
    } else if ct.starts_with("application/x-ndjson") || ct.starts_with("application/jsonl") {
        InputFormat::Json
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bulk leads need Content-Type text/csv or application/x-ndjson",
        ));
    };
    let parsed = input::parse(&body, "request body", format, &ReadOptions::default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let n = st.crm().put_leads(&parsed.leads, &parsed.lines).await?;
    Ok((StatusCode::CREATED, Json(BulkResult { upserted: n })))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    pub status: Option<LeadStatus>,
    pub source: Option<String>,
    /// Text search over name, email, company.
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LeadPage {
    pub items: Vec<Lead>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// List leads with filters and pagination.
#[utoipa::path(get, path = "/api/v1/leads", tag = "leads", params(ListQuery),
    responses((status = 200, body = LeadPage)), security(("api_key" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<LeadPage>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let offset = q.offset.unwrap_or(0).max(0);
    let filter = LeadFilter {
        status: q.status,
        source: q.source,
        search: q.q,
        limit,
        offset,
    };
    let (items, total) = st.crm().list_leads(&filter).await?;
    Ok(Json(LeadPage {
        items,
        total,
        limit,
        offset,
    }))
}

/// One lead.
#[utoipa::path(get, path = "/api/v1/leads/{id}", tag = "leads", params(("id" = String, Path)),
    responses((status = 200, body = Lead), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn get(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Lead>> {
    Ok(Json(st.crm().lead(&id).await?))
}
