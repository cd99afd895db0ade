//! Reading published plugin versions (issue 21): the list of a plugin's published
//! versions with their review status and which one is released (merged into
//! `GET /api/v1/plugins/{name}/versions` beside the versions this host keeps), one
//! published version with its manifest, and a version's capability surface diff. Readers
//! may see all of it: a published version holds no secret (grants stay in each
//! replica's configuration).

use crate::db::ReleaseVersionRecord;
use crate::plugins::release::{Surface, SurfaceDiff};
use crate::server::error::{ApiError, ApiResult};
use crate::server::AppState;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// What the version was compared with.
pub(super) fn against_of(source: &str, version: Option<&str>, sha256: Option<&str>) -> Value {
    json!({ "source": source, "version": version, "sha256": sha256 })
}

/// The surface a published version recorded (in its `diff` document).
pub(super) fn stored_surface(rec: &ReleaseVersionRecord) -> Option<Surface> {
    let doc: Value = serde_json::from_str(rec.diff.as_deref()?).ok()?;
    serde_json::from_value(doc.get("surface")?.clone()).ok()
}

/// The diff document without the stored surface.
pub(super) fn doc_view(doc: &Value) -> Value {
    json!({
        "against": doc.get("against").cloned().unwrap_or(Value::Null),
        "changed": doc.get("changed").cloned().unwrap_or(Value::Null),
        "changes": doc.get("changes").cloned().unwrap_or(Value::Null),
        "text": doc.get("text").cloned().unwrap_or(Value::Null),
    })
}

/// A published version as the API shows it.
pub(super) fn version_body(rec: &ReleaseVersionRecord) -> Value {
    let doc: Value = rec
        .diff
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null);
    json!({
        "name": rec.name,
        "version": rec.version,
        "sha256": rec.sha256,
        "size": rec.size,
        "status": rec.status,
        "published_by": rec.published_by,
        "published_at": rec.published_at,
        "reviewed_by": rec.reviewed_by,
        "reviewed_at": rec.reviewed_at,
        "review_note": rec.review_note,
        // Files it carries besides manifest and component: relative path → sha256.
        "files": rec.files().unwrap_or_default(),
        "diff": if doc.is_null() { Value::Null } else { doc_view(&doc) },
    })
}

async fn published(st: &AppState, name: &str, version: &str) -> ApiResult<ReleaseVersionRecord> {
    st.db
        .get_release_version(name, version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no published version {name}@{version}")))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DiffQuery {
    /// Another published version to compare with (default: what the version was compared
    /// with when it was published).
    pub against: Option<String>,
}

/// A published version's capability surface diff: machine-readable (`changes`: added,
/// removed and changed imports, capabilities, scopes, limits) and as text. By default
/// against what it was compared with when published; `?against=V` compares with another
/// published version V (V → this version).
#[utoipa::path(get, path = "/api/v1/plugins/{name}/versions/{version}/diff", tag = "releases",
    params(("name" = String, Path), ("version" = String, Path), DiffQuery),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn diff(
    State(st): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<Json<Value>> {
    let rec = published(&st, &name, &version).await?;
    let status = rec.status.clone();
    let view = match q.against.as_deref().filter(|a| !a.is_empty()) {
        None => {
            let doc: Value = rec
                .diff
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            doc_view(&doc)
        }
        Some(other) => {
            let base = published(&st, &name, other).await?;
            let missing = |v: &str| {
                ApiError::internal(format!("{name}@{v} has no recorded capability surface"))
            };
            let old = stored_surface(&base).ok_or_else(|| missing(other))?;
            let new = stored_surface(&rec).ok_or_else(|| missing(&version))?;
            let d = SurfaceDiff::between(&old, &new);
            json!({
                "against": against_of("published", Some(&base.version), Some(&base.sha256)),
                "changed": !d.is_empty(),
                "text": d.text(),
                "changes": d,
            })
        }
    };
    let mut out =
        json!({ "name": name, "version": version, "sha256": rec.sha256, "status": status });
    if let (Value::Object(o), Value::Object(v)) = (&mut out, view) {
        o.extend(v);
    }
    Ok(Json(out))
}

/// A plugin's published versions, newest publish first, each marked `released` when the
/// release state names it, and the release state (`released`: version, sha256,
/// generation; null when the plugin is not released). `None` when nothing of the plugin
/// was ever published.
pub(super) async fn published_of(st: &AppState, name: &str) -> ApiResult<Option<Value>> {
    let rows = st.db.list_release_versions(name).await?;
    let state = st.db.get_release_state(name).await?;
    if rows.is_empty() && state.is_none() {
        return Ok(None);
    }
    let released = state.as_ref().map(|s| {
        json!({ "version": s.version, "sha256": s.sha256, "generation": s.generation,
                "updated_at": s.updated_at, "updated_by": s.updated_by })
    });
    let items: Vec<Value> = rows
        .iter()
        .map(|rec| {
            let mut v = version_body(rec);
            if let Value::Object(o) = &mut v {
                // The list stays short: the diff is one request away (`…/diff`).
                o.remove("diff");
            }
            v["released"] = json!(state.as_ref().is_some_and(|s| s.version == rec.version));
            v
        })
        .collect();
    Ok(Some(json!({ "released": released, "published": items })))
}

/// One published version: its review status, publisher, size, the `plugin.toml` it was
/// published with (`manifest`), the capability surface diff recorded at publish and
/// whether it is the released version. 404 (problem+json) for a plugin or version never
/// published.
#[utoipa::path(get, path = "/api/v1/plugins/{name}/versions/{version}", tag = "releases",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn get_version(
    State(st): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let rec = published(&st, &name, &version).await?;
    let state = st.db.get_release_state(&name).await?;
    let mut v = version_body(&rec);
    v["manifest"] = json!(rec.manifest);
    v["released"] = json!(state.is_some_and(|s| s.version == rec.version));
    Ok(Json(v))
}
