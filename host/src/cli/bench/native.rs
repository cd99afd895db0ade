//! The native reference: the shipped BANT plugin's logic compiled into the host, what
//! the benchmarks measure the sandbox against. Bench code only — `strata bench`'s
//! `native_call` figure and the route `strata bench serve` adds for `bench/load.sh`; the
//! production router (`strata serve`) has no native route.

use crate::domain::{Lead, Score};
use crate::server::json::ApiJson;
use crate::server::routes::scoring::{ScoreRequest, ScoreResponse};
use crate::server::AppState;
use axum::routing::post;
use axum::{Json, Router};
use std::time::Instant;
use strata_sdk as sdk;

// The lead in and the score out convert exactly as at the component boundary (one
// definition for both bindings), so the comparison is fair.
crate::wit::convert::scorer_call_conversions!(sdk);

/// What the native route answers as `strategy`.
pub const STRATEGY: &str = "native-bant";

/// The bench-only route: `POST` with the body of `/api/v1/score` (its `strategy` is
/// ignored), answered like `/api/v1/score` by the native BANT logic.
pub const PATH: &str = "/bench/native-bant";

/// Scores a lead with the BANT logic natively.
pub fn bant_score(l: &Lead) -> Score {
    bant::score_lead(&sdk::Lead::from(l)).into()
}

/// The routes `strata bench serve` adds to the production router (operator role, behind
/// the same middleware as `/api/v1/score`).
pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, post(score))
}

/// Pure and a few µs: inline on the async worker, like a proven-fast pure plugin.
async fn score(ApiJson(req): ApiJson<ScoreRequest>) -> Json<ScoreResponse> {
    let started = Instant::now();
    let score = bant_score(&req.lead);
    Json(ScoreResponse {
        strategy: STRATEGY.into(),
        sha256: String::new(),
        lead_id: req.lead.id,
        score,
        duration_us: started.elapsed().as_micros() as u64,
    })
}
