//! Configuration reload without a restart (admin): grants apply at once, the plugins they
//! concern are validated again; other changed settings are named as needing a restart.

use crate::server::error::{ApiError, ApiResult};
use crate::server::AppState;
use axum::extract::State;
use axum::Json;

/// Read the configuration again (as `SIGHUP` does) and apply its grants.
#[utoipa::path(post, path = "/api/v1/config/reload", tag = "config",
    responses((status = 200, body = Object), (status = 409, body = crate::server::error::Problem),
              (status = 422, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn reload(State(st): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let report = crate::server::reload_config(&st).await?;
    Ok(Json(
        serde_json::to_value(report).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}
