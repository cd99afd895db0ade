//! Scoring: the synchronous fast path (nothing stored) and qualification jobs.

use crate::challenger::{run_on, side, Challengers, Plan, Source};
use crate::domain::{Lead, Score};
use crate::runtime::lane::thread_cpu_time;
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::json::ApiJson;
use crate::server::{AppState, RequestId};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    pub lead: Lead,
    /// Scorer plugin name; default: `plugins.default_scorer`.
    pub strategy: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScoreResponse {
    /// `plugin@version` that produced the score.
    pub strategy: String,
    /// SHA-256 of that version's component: with `strategy`, the version's identity.
    pub sha256: String,
    pub lead_id: String,
    pub score: Score,
    pub duration_us: u64,
}

/// Score an inline lead now with a named or the default strategy. Nothing is stored as a
/// lead score. When the strategy has a challenger, a sampled call is scored again by it
/// off the response path (shadow, recorded for the comparison, never returned), or the
/// challenger answers for its share of leads (canary; `strategy` then names it).
#[utoipa::path(post, path = "/api/v1/score", tag = "scoring", request_body = ScoreRequest,
    responses((status = 200, body = ScoreResponse), (status = 404, body = crate::server::error::Problem),
              (status = 422, body = crate::server::error::Problem), (status = 502, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn score(
    State(st): State<AppState>,
    Extension(rid): Extension<RequestId>,
    ApiJson(req): ApiJson<ScoreRequest>,
) -> ApiResult<Json<ScoreResponse>> {
    // The one rule for a lead, whichever door it comes through.
    crate::crm::validate_lead(&req.lead)?;
    let name = st.config.scoring_strategy(req.strategy.as_deref());
    let plugin = st.manager.registry().get(&name)?;
    let plan = st.challengers.plan(&name, &req.lead.id);
    let started = Instant::now();
    let rid: Arc<str> = rid.0;
    let lead = req.lead;
    // Canary: the challenger answers for its share of leads; if it fails, the champion.
    let mut canary_run = None;
    if let Plan::Canary(att, true) = &plan {
        let (c, a, l, r) = (
            st.challengers.clone(),
            att.clone(),
            lead.clone(),
            rid.clone(),
        );
        let (challenger, run) = crate::server::run_blocking(move || {
            let p = c.resolve(&a);
            (p.clone().ok(), run_on(p, &a.challenger, &l, Some(r)))
        })
        .await?;
        if let (Some(p), Ok(score)) = (challenger, &run.result) {
            st.challengers.record(Challengers::result(
                att,
                &lead,
                Source::Api,
                true,
                None,
                Some(&run),
                Some(&rid),
            ));
            return Ok(Json(ScoreResponse {
                strategy: p.id().to_string(),
                sha256: p.sha256.clone(),
                lead_id: lead.id,
                score: score.clone(),
                duration_us: started.elapsed().as_micros() as u64,
            }));
        }
        canary_run = Some(run);
    }
    let budget = Duration::from_micros(st.config.server.inline_budget_us);
    let (lead, result) = if !budget.is_zero() && plugin.lane.inline() {
        crate::runtime::warm::take_cold();
        let cpu = thread_cpu_time();
        let r = plugin.score_inline(&lead, Some(rid.clone()));
        let used = thread_cpu_time().saturating_sub(cpu);
        // A call that set up a warm instance is not judged by the budget (see `take_cold`).
        let cold = crate::runtime::warm::take_cold();
        if !cold && plugin.lane.observe(used, budget) {
            tracing::warn!(plugin = %plugin.id(), cpu_us = used.as_micros() as u64,
                budget_us = budget.as_micros() as u64,
                "scorer call overran the inline budget; this version now runs on the blocking pool");
        }
        (lead, r.map(|s| (plugin, s)))
    } else {
        let rid = rid.clone();
        crate::server::run_blocking(move || {
            let r = plugin.score(&lead, Some(rid));
            (lead, r.map(|s| (plugin, s)))
        })
        .await?
    };
    let elapsed = started.elapsed();
    crate::server::metrics::plugin_call(&name, &result, elapsed);
    let (plugin, score) = result?;
    let lead_id = lead.id.clone();
    match plan {
        Plan::Champion => {}
        // Off the response path: the challenger runs after this response is built.
        Plan::Shadow(att) => st.challengers.shadow(
            att,
            lead,
            side(&plugin, &score, elapsed),
            Source::Api,
            Some(rid),
        ),
        Plan::Canary(att, _) => st.challengers.record(Challengers::result(
            &att,
            &lead,
            Source::Api,
            false,
            Some(side(&plugin, &score, elapsed)),
            canary_run.as_ref(),
            Some(&rid),
        )),
    }
    Ok(Json(ScoreResponse {
        strategy: plugin.id().to_string(),
        sha256: plugin.sha256.clone(),
        lead_id,
        score,
        duration_us: elapsed.as_micros() as u64,
    }))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QualifyRequest {
    /// Scorer or agent plugin name; default: `qualify.agent`, else `plugins.default_scorer`.
    #[schema(min_length = 1, max_length = 64)]
    pub strategy: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub job_id: String,
    pub status: String,
    /// Where to poll the job.
    pub href: String,
}

/// Qualify a lead in the background: enqueues a durable job (202 with its id). A lead
/// not stored in Strata is read from the CRM (`[qualify.crm]`) and stored first.
#[utoipa::path(post, path = "/api/v1/leads/qualify/{lead_id}", tag = "scoring",
    params(("lead_id" = String, Path)), request_body(content = Option<QualifyRequest>),
    responses((status = 202, body = Accepted), (status = 404, body = crate::server::error::Problem),
        (status = 422, body = crate::server::error::Problem), (status = 503, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn qualify(
    State(st): State<AppState>,
    Path(lead_id): Path<String>,
    Extension(rid): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    // No body, or JSON `null` (the document says the body is optional: nullable).
    let req: QualifyRequest = if body.trim_ascii().is_empty() || body.trim_ascii() == b"null" {
        QualifyRequest::default()
    } else {
        crate::server::json::parse(&body, st.config.server.json_depth_limit)?
    };
    if let Some(s) = &req.strategy {
        if s.is_empty() || s.chars().count() > 64 {
            return Err(ApiError::unprocessable(
                "strategy must be a plugin name of 1-64 characters",
            ));
        }
    }
    let crm = st.crm();
    match (crm.require_lead(&lead_id).await, st.qualify.crm()) {
        (Ok(()), _) => {}
        // A lead known only to the CRM: read and stored now, so the job has its lead.
        (Err(crate::crm::CrmError::NotFound(_)), Some(link)) => {
            use crate::qualify::{LinkError, QualifyError};
            st.qualify
                .sync_lead(&lead_id, Some(&rid.0))
                .await
                .map_err(|e| match e {
                    QualifyError::Crm(LinkError::Refused { .. }) => ApiError::not_found(format!(
                        "no lead {lead_id:?} in Strata, and MCP server {} does not have it: {e}",
                        link.server()
                    )),
                    QualifyError::Crm(LinkError::Mapping(m)) => {
                        ApiError::unprocessable(m.to_string())
                    }
                    other => ApiError::unavailable(other.to_string()),
                })?;
        }
        (Err(e), _) => return Err(e.into()),
    }
    let strategy = st.config.qualify_strategy(req.strategy.as_deref());
    st.manager.registry().get(&strategy)?;
    let job = crm
        .enqueue_qualify(&crate::crm::QualifyRequest {
            lead_id,
            strategy,
            requested_by: caller.name,
            request_id: Some(rid.0.to_string()),
            max_attempts: i64::from(st.config.server.job_max_attempts),
        })
        .await?;
    st.worker_wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            href: format!("/api/v1/jobs/{}", job.id),
            job_id: job.id,
            status: job.status.as_str().to_string(),
        }),
    ))
}

/// A job and its outcome.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "scoring", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn job(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let job = st
        .db
        .get_job(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id:?}")))?;
    Ok(Json(
        serde_json::to_value(job).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}
