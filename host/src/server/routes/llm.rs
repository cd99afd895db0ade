//! The LLM broker's providers: circuit breaker, last error, calls, failures by kind, tokens.

use crate::llm::ProviderStatus;
use crate::server::AppState;
use axum::extract::State;
use axum::Json;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct LlmStatusResponse {
    /// Whether `[llm]` configures any provider (without one, `llm` calls answer
    /// "unavailable" and agents fall back to their rule-based scorer).
    pub configured: bool,
    /// One entry per `[llm.providers.<name>]`, sorted by name; counters since the process
    /// started.
    pub providers: Vec<ProviderStatus>,
}

/// Every configured LLM provider: circuit breaker state (`closed`, `open`, `half_open`),
/// consecutive failures, last error and when, requests sent, failures by kind, calls
/// refused while the circuit was open, tokens. Reads the recorded state (no I/O).
#[utoipa::path(get, path = "/api/v1/llm/status", tag = "llm",
    responses((status = 200, body = LlmStatusResponse)),
    security(("api_key" = [])))]
pub async fn llm_status(State(st): State<AppState>) -> Json<LlmStatusResponse> {
    let providers = st.llm.as_ref().map(|b| b.status()).unwrap_or_default();
    Json(LlmStatusResponse {
        configured: !providers.is_empty(),
        providers,
    })
}
