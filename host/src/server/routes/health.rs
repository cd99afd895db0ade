//! Liveness, readiness and Prometheus metrics.

use crate::server::error::ApiError;
use crate::server::AppState;
use axum::extract::State;
use axum::Json;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub uptime_s: u64,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health)))]
pub async fn health(State(st): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: st.started.elapsed().as_secs(),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    pub status: &'static str,
    pub database: String,
    pub plugins_live: usize,
    pub default_scorer: String,
    /// Released plugins (`PUT /api/v1/plugins/{name}/release`) this replica does not serve,
    /// and why (e.g. its grants do not cover the released version); empty when it serves
    /// the whole release state.
    pub release_problems: std::collections::BTreeMap<String, String>,
}

/// Readiness: the database answers and the default scorer is live.
#[utoipa::path(get, path = "/ready", tag = "ops",
    responses((status = 200, body = Ready), (status = 503, body = crate::server::error::Problem)))]
pub async fn ready(State(st): State<AppState>) -> Result<Json<Ready>, ApiError> {
    st.db
        .ping()
        .await
        .map_err(|e| ApiError::unavailable(format!("database not reachable: {e}")))?;
    let registry = st.manager.registry();
    let live = registry
        .slots()
        .iter()
        .filter(|s| s.live().is_some())
        .count();
    let default = &st.config.plugins.default_scorer;
    if let Err(e) = registry.get(default) {
        return Err(ApiError::unavailable(format!(
            "default scorer not ready: {e}"
        )));
    }
    Ok(Json(Ready {
        status: "ready",
        database: st.db.backend().as_str().into(),
        plugins_live: live,
        default_scorer: default.clone(),
        release_problems: st
            .releases
            .as_ref()
            .map(|f| f.problems())
            .unwrap_or_default(),
    }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(st): State<AppState>) -> String {
    crate::server::metrics::refresh_gauges(&st).await;
    st.metrics.render()
}
