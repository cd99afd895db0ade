//! Plugins: what is loaded, what each declares/imports/is granted, versions; rollback,
//! disable, enable — all live, no restart.

use crate::server::error::{ApiError, ApiResult};
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

fn summary(st: &AppState, slot: &crate::plugins::Slot) -> Value {
    let live = slot.live();
    json!({
        "name": slot.name,
        "live_version": live.as_ref().map(|p| p.version().to_string()),
        "kind": live.as_ref().map(|p| p.kind().as_str()),
        "sha256": live.as_ref().map(|p| p.sha256.clone()),
        "disabled": slot.is_disabled(),
        "last_error": slot.last_error(),
        "default_scorer": st.config.plugins.default_scorer == slot.name,
    })
}

/// Every plugin the host knows, with its live version and last load error.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", responses((status = 200, body = Object)),
    security(("api_key" = [])))]
pub async fn list(State(st): State<AppState>) -> Json<Value> {
    let items: Vec<Value> = st
        .manager
        .registry()
        .slots()
        .iter()
        .map(|s| summary(&st, s))
        .collect();
    Json(json!({ "items": items }))
}

/// One plugin: manifest, imports, declared vs granted, limits, kept versions and the
/// recorded load attempts with their status and errors.
#[utoipa::path(get, path = "/api/v1/plugins/{name}", tag = "plugins", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn get(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let slot = st
        .manager
        .registry()
        .slot(&name)
        .ok_or_else(|| ApiError::not_found(format!("no plugin {name:?}")))?;
    let mut v = summary(&st, &slot);
    if let Some(p) = slot.live() {
        let grant = st.config.grant(&name);
        let caps: Vec<Value> = crate::capabilities::Capability::ALL
            .iter()
            .map(|&c| {
                json!({
                    "capability": c.interface(),
                    "declared": p.manifest.capabilities.declares(c),
                    "granted": c == crate::capabilities::Capability::Log
                        || grant.is_some_and(|g| g.capabilities.contains(&c)),
                    "effective": p.grants.has(c),
                    "imported": p.imports.iter().any(|i| i.class == format!("capability:{c}")),
                })
            })
            .collect();
        v["manifest"] = serde_json::to_value(&p.manifest).unwrap_or(Value::Null);
        v["imports"] = serde_json::to_value(&p.imports).unwrap_or(Value::Null);
        v["exports"] = json!(p.exports);
        v["capabilities"] = json!(caps);
        v["scopes"] = serde_json::to_value(&*p.grants).unwrap_or(Value::Null);
        v["limits"] = serde_json::to_value(p.limits).unwrap_or(Value::Null);
        v["contract_version"] = json!(p.contract_version);
        v["lane"] = json!({
            "inline": p.lane.inline(),
            "detail": serde_json::to_value(&p.lane).unwrap_or(Value::Null),
            // Calls one instance may serve on the inline lane (0: fresh per call).
            "reuse_calls": p.reuse_calls,
        });
    }
    v["kept_versions"] = json!(slot
        .history()
        .iter()
        .map(|(p, _)| json!({
            "version": p.version(), "sha256": p.sha256, "loaded_at": p.loaded_at,
        }))
        .collect::<Vec<_>>());
    let rows = st.db.list_plugin_versions(Some(&name), 50).await?;
    v["load_attempts"] = json!(rows
        .iter()
        .map(|r| json!({
            "id": r.id, "version": r.version, "sha256": r.sha256, "status": r.status.as_str(),
            "error": r.error, "created_at": r.created_at, "updated_at": r.updated_at,
        }))
        .collect::<Vec<_>>());
    Ok(Json(v))
}

/// Make the previous kept version live again.
#[utoipa::path(post, path = "/api/v1/plugins/{name}/rollback", tag = "plugins", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 409, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn rollback(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let live = st
        .manager
        .rollback(&name)
        .await
        .map_err(|e| ApiError::new(axum::http::StatusCode::CONFLICT, e))?;
    Ok(Json(
        json!({ "name": name, "live_version": live.version() }),
    ))
}

async fn switch(st: &AppState, name: &str, disabled: bool) -> ApiResult<Json<Value>> {
    let slot = st
        .manager
        .registry()
        .slot(name)
        .ok_or_else(|| ApiError::not_found(format!("no plugin {name:?}")))?;
    slot.set_disabled(disabled);
    tracing::info!(plugin = name, disabled, "plugin switched by an operator");
    Ok(Json(summary(st, &slot)))
}

/// Stop serving a plugin (calls get 503) without unloading it.
#[utoipa::path(post, path = "/api/v1/plugins/{name}/disable", tag = "plugins", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn disable(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    switch(&st, &name, true).await
}

/// Serve a disabled plugin again.
#[utoipa::path(post, path = "/api/v1/plugins/{name}/enable", tag = "plugins", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn enable(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    switch(&st, &name, false).await
}
