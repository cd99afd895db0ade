//! Plugins: what is loaded, what each declares/imports/is granted, versions; rollback,
//! pin, unpin, disable, enable — all live, no restart. A version is named by
//! `name@version` and its component's sha256 everywhere.

use crate::runtime::LoadedPlugin;
use crate::server::error::{ApiError, ApiResult};
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

fn summary(st: &AppState, slot: &crate::plugins::Slot) -> Value {
    let live = slot.live();
    json!({
        "name": slot.name,
        "id": live.as_ref().map(|p| p.id().to_string()),
        "live_version": live.as_ref().map(|p| p.version().to_string()),
        "kind": live.as_ref().map(|p| p.kind().as_str()),
        "sha256": live.as_ref().map(|p| p.sha256.clone()),
        "source_dir": st.manager.dir_of(&slot.name),
        "pinned": slot.is_pinned(),
        "disabled": slot.is_disabled(),
        "last_error": slot.last_error(),
        "default_scorer": st.config.plugins.default_scorer == slot.name,
        // Why this replica does not serve the released version, if it does not.
        "release_problem": st.releases.as_ref().and_then(|f| f.problems().remove(&slot.name)),
    })
}

/// A version as every plugin response names it.
fn version_of(p: &LoadedPlugin) -> Value {
    json!({ "id": p.id(), "version": p.version(), "sha256": p.sha256 })
}

/// Every plugin the host knows, with its live version and last load error, and every
/// plugin directory with its last outcome (rejected ones with their reason).
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", responses((status = 200, body = Object)),
    security(("api_key" = [])))]
pub async fn list(State(st): State<AppState>) -> Json<Value> {
    let items: Vec<Value> = st
        .manager
        .registry()
        .slots()
        .iter()
        .filter(|s| s.live().is_some() || s.last_error().is_some())
        .map(|s| summary(&st, s))
        .collect();
    Json(json!({ "items": items, "directories": st.manager.directories() }))
}

/// One plugin: manifest, imports, declared vs granted, limits, kept versions and the
/// recorded load attempts with their status and errors.
#[utoipa::path(get, path = "/api/v1/plugins/{name}", tag = "plugins", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn get(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let slot = slot_of(&st, &name)?;
    let mut v = summary(&st, &slot);
    if let Some(p) = slot.live() {
        let config = st.manager.config();
        let grant = config.grant(&name);
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
    v["kept_versions"] = kept(&slot);
    v["load_attempts"] = attempts(&st, &name).await?;
    Ok(Json(v))
}

fn kept(slot: &crate::plugins::Slot) -> Value {
    let live = slot.live();
    json!(slot
        .history()
        .iter()
        .map(|(p, _)| {
            let is_live = live.as_ref().is_some_and(|l| std::sync::Arc::ptr_eq(l, p));
            let mut v = version_of(p);
            v["loaded_at"] = json!(p.loaded_at);
            v["state"] = json!(if is_live { "live" } else { "available" });
            v
        })
        .collect::<Vec<_>>())
}

async fn attempts(st: &AppState, name: &str) -> ApiResult<Value> {
    let rows = st.db.list_plugin_versions(Some(name), 50).await?;
    Ok(json!(rows
        .iter()
        .map(|r| json!({
            "id": r.id, "version": r.version, "sha256": r.sha256, "status": r.status.as_str(),
            "error": r.error, "source_path": r.source_path,
            "created_at": r.created_at, "updated_at": r.updated_at,
        }))
        .collect::<Vec<_>>()))
}

fn slot_of(st: &AppState, name: &str) -> ApiResult<std::sync::Arc<crate::plugins::Slot>> {
    st.manager
        .registry()
        .slot(name)
        .ok_or_else(|| ApiError::not_found(format!("no plugin {name:?}")))
}

/// A plugin's versions: those kept in memory on this host (`live`, `pinned`, `kept`),
/// every recorded load attempt with its status and error (`attempts`), and the versions
/// published through the API (`published`: version, sha256, size, publisher key id,
/// published_at, review `status` — `awaiting-approval`, `approved` or `rejected` — and
/// `released`), with the fleet's release state (`released`: version, sha256, generation;
/// null when not released). 404 (problem+json) for a name neither loaded here nor ever
/// published.
#[utoipa::path(get, path = "/api/v1/plugins/{name}/versions", tag = "plugins", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn versions(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let slot = st.manager.registry().slot(&name);
    let published = super::published::published_of(&st, &name).await?;
    if slot.is_none() && published.is_none() {
        return Err(ApiError::not_found(format!(
            "no plugin {name:?} on this host, and none published"
        )));
    }
    let (released, published) = match published {
        Some(p) => (p["released"].clone(), p["published"].clone()),
        None => (Value::Null, json!([])),
    };
    Ok(Json(json!({
        "name": name,
        "live": slot.as_ref().and_then(|s| s.live()).as_deref().map(version_of),
        "pinned": slot.as_ref().is_some_and(|s| s.is_pinned()),
        "kept": slot.as_ref().map(|s| kept(s)).unwrap_or_else(|| json!([])),
        "attempts": attempts(&st, &name).await?,
        "released": released,
        "published": published,
    })))
}

/// `{"to": "1.0.0"}` picks the version; without it, the newest older than the live one.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub to: Option<String>,
}

/// `{"version": "1.0.0"}` makes that kept version live first; without it, the live one.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    pub version: Option<String>,
}

fn optional_body<T: Default + serde::de::DeserializeOwned>(
    st: &AppState,
    body: &[u8],
) -> ApiResult<T> {
    // No body, or JSON `null` (the document says the body is optional: nullable).
    if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        Ok(T::default())
    } else {
        crate::server::json::parse(body, st.config.server.json_depth_limit)
    }
}

fn moved(name: &str, slot: &crate::plugins::Slot, live: &LoadedPlugin) -> Json<Value> {
    Json(json!({
        "name": name, "live": version_of(live), "live_version": live.version(),
        "sha256": live.sha256, "pinned": slot.is_pinned(),
    }))
}

/// Make a kept version live again and pin it there (new versions from the directory are
/// kept as available until `unpin`).
#[utoipa::path(post, path = "/api/v1/plugins/{name}/rollback", tag = "plugins", params(("name" = String, Path)),
    request_body(content = Option<RollbackRequest>),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem),
              (status = 409, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn rollback(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let req: RollbackRequest = optional_body(&st, &body)?;
    let live = st.manager.rollback(&name, req.to.as_deref()).await?;
    let slot = slot_of(&st, &name)?;
    Ok(moved(&name, &slot, &live))
}

/// Pin the live version (or a kept one): new versions wait as available.
#[utoipa::path(post, path = "/api/v1/plugins/{name}/pin", tag = "plugins", params(("name" = String, Path)),
    request_body(content = Option<PinRequest>),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem),
              (status = 409, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn pin(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let req: PinRequest = optional_body(&st, &body)?;
    let live = st.manager.pin(&name, req.version.as_deref()).await?;
    let slot = slot_of(&st, &name)?;
    Ok(moved(&name, &slot, &live))
}

/// Unpin: the newest version the plugin's directory delivered goes live.
#[utoipa::path(post, path = "/api/v1/plugins/{name}/unpin", tag = "plugins", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn unpin(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let live = st.manager.unpin(&name).await?;
    let slot = slot_of(&st, &name)?;
    Ok(moved(&name, &slot, &live))
}

async fn switch(st: &AppState, name: &str, disabled: bool) -> ApiResult<Json<Value>> {
    let slot = slot_of(st, name)?;
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
