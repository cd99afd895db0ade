//! API keys (admin): list, create (the secret is shown once), revoke.

use crate::db::Role;
use crate::server::error::{ApiError, ApiResult};
use crate::server::json::ApiJson;
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

fn key_json(k: &crate::db::ApiKeyRecord) -> Value {
    json!({
        "id": k.id, "name": k.name, "role": k.role.as_str(), "prefix": k.prefix,
        "created_at": k.created_at, "last_used_at": k.last_used_at, "revoked_at": k.revoked_at,
    })
}

/// Every key (never the secrets).
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", responses((status = 200, body = Object)),
    security(("api_key" = [])))]
pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let keys = st.db.list_api_keys().await?;
    Ok(Json(
        json!({ "items": keys.iter().map(key_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// 1–100 characters, not only blanks (space, tab, line breaks).
    #[schema(max_length = 100, pattern = r"[^\t\n\x0b\x0c\r ]")]
    pub name: String,
    /// Exactly one of the role names (lower case); anything else is a 422.
    pub role: Role,
}

/// Create a key. The response holds the secret; it is not stored and never shown again.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = NewKey,
    responses((status = 201, body = Object), (status = 422, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn create(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<NewKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // The rules of the schema above, exactly (its `pattern` and `maxLength`, which
    // counts characters).
    if req.name.chars().count() > 100
        || req
            .name
            .chars()
            .all(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'))
    {
        return Err(ApiError::unprocessable(
            "name must be 1-100 characters, not only blanks",
        ));
    }
    let (rec, secret) = crate::server::auth::create_key(&st.db, &req.name, req.role).await?;
    let mut v = key_json(&rec);
    v["key"] = json!(secret);
    Ok((StatusCode::CREATED, Json(v)))
}

/// Revoke a key by its id (as listed; never by prefix). Effective at once on this server
/// and for admin routes everywhere; other replicas refuse it within `server.key_cache_ms`.
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn revoke(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    match st.db.revoke_api_key(&id).await? {
        true => {
            st.keys.forget(id.trim());
            Ok(StatusCode::NO_CONTENT)
        }
        false => Err(ApiError::not_found(format!("no active key {id:?}"))),
    }
}
