//! Which version of a plugin the fleet serves: promote or roll back (one row per plugin,
//! followed by every replica), and what each replica reports it serves.

use crate::audit::AuditRecord;
use crate::db::DbError;
use crate::domain::now_ms;
use crate::plugins::follower::CHANNEL;
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

/// A change of the released version.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// An approved published version.
    #[schema(min_length = 1, max_length = 64)]
    pub version: String,
}

/// One replica's report (its heartbeat) for a plugin.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReplicaServing {
    pub replica_id: String,
    pub host: Option<String>,
    /// Milliseconds since the Unix epoch of its last heartbeat.
    pub seen_at: i64,
    pub version: Option<String>,
    pub sha256: Option<String>,
    /// It serves the released sha256.
    pub converged: bool,
}

/// The release of a plugin across the fleet.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReleaseStatus {
    pub name: String,
    /// The released version (none: the plugin is not released; replicas serve their
    /// plugins directory).
    pub version: Option<String>,
    pub sha256: Option<String>,
    /// Grows on every promotion or rollback.
    pub generation: Option<i64>,
    pub updated_at: Option<i64>,
    /// Key id that made the last change.
    pub updated_by: Option<String>,
    pub replicas: Vec<ReplicaServing>,
    /// Why the replica that answers does not serve the released version (its grants do
    /// not cover it, or it fails to compile or link here); null when it serves it. The
    /// release state stands either way.
    pub problem: Option<String>,
}

async fn status_of(st: &AppState, name: &str) -> Result<ReleaseStatus, ApiError> {
    let state = st.db.get_release_state(name).await?;
    let mut replicas = Vec::new();
    for hb in st.db.list_heartbeats().await? {
        let serving: serde_json::Value = serde_json::from_str(&hb.serving).unwrap_or_default();
        let mine = &serving[name];
        let sha256 = mine["sha256"].as_str().map(str::to_string);
        replicas.push(ReplicaServing {
            converged: state.as_ref().is_some_and(|s| {
                Some(&s.sha256) == sha256.as_ref() && mine["version"].as_str() == Some(&s.version)
            }),
            replica_id: hb.replica_id,
            host: hb.host,
            seen_at: hb.seen_at,
            version: mine["version"].as_str().map(str::to_string),
            sha256,
        });
    }
    Ok(ReleaseStatus {
        name: name.to_string(),
        version: state.as_ref().map(|s| s.version.clone()),
        sha256: state.as_ref().map(|s| s.sha256.clone()),
        generation: state.as_ref().map(|s| s.generation),
        updated_at: state.as_ref().map(|s| s.updated_at),
        updated_by: state.as_ref().and_then(|s| s.updated_by.clone()),
        replicas,
        problem: st.releases.as_ref().and_then(|f| f.problems().remove(name)),
    })
}

/// The released version of a plugin and what every replica serves.
#[utoipa::path(get, path = "/api/v1/plugins/{name}/release", tag = "plugins",
    params(("name" = String, Path)),
    responses((status = 200, body = ReleaseStatus)), security(("api_key" = [])))]
pub async fn get_release(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ReleaseStatus>> {
    Ok(Json(status_of(&st, &name).await?))
}

/// Promote (or roll back to) an approved published version on every replica. The change is
/// one row; replicas follow it (PostgreSQL NOTIFY, else their poll). This replica applies
/// it before answering.
///
/// A version never published is 404 and one that is not approved (awaiting approval or
/// rejected) is 409, both problem+json, and nothing changes. Otherwise the release state
/// is written — it is the fleet's, not this replica's — and the answer is 200 even when
/// the replica that takes the request cannot serve the version itself (its grants do not
/// cover it, or the component fails to compile or link here): then `problem` says why,
/// this replica keeps serving what it served before, the other replicas follow the
/// release as usual, and `/ready` and `GET /api/v1/plugins/{name}` report the same
/// reason until this replica's configuration allows the version or another is released.
#[utoipa::path(put, path = "/api/v1/plugins/{name}/release", tag = "plugins",
    params(("name" = String, Path)), request_body = ReleaseRequest,
    responses((status = 200, body = ReleaseStatus), (status = 404, body = crate::server::error::Problem),
        (status = 409, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn set_release(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    crate::server::json::ApiJson(req): crate::server::json::ApiJson<ReleaseRequest>,
) -> ApiResult<Json<ReleaseStatus>> {
    let started = std::time::Instant::now();
    let state = st
        .db
        .set_release_state(&name, &req.version, true, Some(&caller.key_id))
        .await
        .map_err(|e| match e {
            DbError::NotFound { .. } => ApiError::not_found(e.to_string()),
            DbError::Conflict { .. } => {
                ApiError::new(axum::http::StatusCode::CONFLICT, e.to_string())
            }
            other => other.into(),
        })?;
    st.audit.record(AuditRecord {
        at: now_ms(),
        plugin: name.clone(),
        plugin_version: state.version.clone(),
        capability: "release".into(),
        operation: "promote".into(),
        target: Some(format!(
            "{}@{} sha256 {}",
            name, state.version, state.sha256
        )),
        allowed: true,
        detail: Some(format!(
            "by key {} (generation {})",
            caller.key_id, state.generation
        )),
        duration_us: started.elapsed().as_micros() as i64,
        count: 1,
        ..AuditRecord::default()
    });
    if let Err(e) = st.db.notify(CHANNEL, &name).await {
        tracing::warn!(error = %e, "cannot notify replicas; they converge on their next poll");
    }
    if let Some(f) = &st.releases {
        f.converge().await?;
    }
    Ok(Json(status_of(&st, &name).await?))
}
