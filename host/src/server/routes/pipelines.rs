//! Pipelines, their runs, the containers' event tracking, and signed webhooks.

use crate::db::{RunDetail, WebhookOutcome};
use crate::pipelines::webhook::{self, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::pipelines::PipelineError;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{AppState, RequestId};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::UnknownPipeline(_)
            | PipelineError::UnknownWebhook(_)
            | PipelineError::UnknownRun(_) => ApiError::not_found(e.to_string()),
            PipelineError::BadTrigger(_) => ApiError::unprocessable(e.to_string()),
            PipelineError::Executor(_) => ApiError::internal(e.to_string()),
            PipelineError::Db(e) => e.into(),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The trigger event's payload (JSON object), published on the pipeline's start topic.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Record side effects instead of executing them (also forced by `[pipeline] dry_run`).
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunAccepted {
    pub run_id: String,
    pub pipeline: String,
    pub dry_run: bool,
    pub trigger_event_id: String,
    pub job_id: Option<String>,
    /// Where to follow the run.
    pub href: String,
}

/// The configured pipelines: layers, containers, topics.
#[utoipa::path(get, path = "/api/v1/pipelines", tag = "pipelines",
    responses((status = 200, body = Object)), security(("api_key" = [])))]
pub async fn list(State(st): State<AppState>) -> Json<Value> {
    let o = &st.pipelines;
    Json(json!({
        "dry_run": o.settings().dry_run,
        "pipelines": o.pipelines(),
    }))
}

/// Start a run: the payload becomes the trigger event on the start topic; a durable job
/// runs it (202). Follow it at `href`.
#[utoipa::path(post, path = "/api/v1/pipelines/{name}/runs", tag = "pipelines",
    params(("name" = String, Path, description = "pipeline name in [pipelines]")),
    request_body = StartRun,
    responses((status = 202, body = RunAccepted), (status = 404, body = crate::server::error::Problem),
              (status = 422, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn start(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(rid): Extension<RequestId>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<RunAccepted>)> {
    let req: StartRun = crate::server::json::parse(&body, st.config.server.json_depth_limit)?;
    let created = st
        .pipelines
        .create_run(
            &name,
            req.payload,
            req.dry_run,
            Some(rid.0.to_string()),
            true,
        )
        .await?;
    st.worker_wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(RunAccepted {
            href: format!("/api/v1/pipelines/runs/{}", created.run.id),
            run_id: created.run.id,
            pipeline: created.run.pipeline,
            dry_run: created.run.dry_run,
            trigger_event_id: created.trigger.id,
            job_id: created.job.map(|j| j.id),
        }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct RunsQuery {
    /// Most runs (default 50, at most 500).
    pub limit: Option<i64>,
}

/// Runs of one pipeline, newest first.
#[utoipa::path(get, path = "/api/v1/pipelines/{name}/runs", tag = "pipelines",
    params(("name" = String, Path), RunsQuery),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn runs(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<RunsQuery>,
) -> ApiResult<Json<Value>> {
    if !st.pipelines.pipelines().contains_key(&name) {
        return Err(PipelineError::UnknownPipeline(name).into());
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let items = st.db.list_runs(Some(&name), limit).await?;
    Ok(Json(json!({ "items": items })))
}

/// One run: status, Φ_sync, every layer run (status, duration, plugin@version, output,
/// error, held-back side effects) and every event with its deliveries.
#[utoipa::path(get, path = "/api/v1/pipelines/runs/{id}", tag = "pipelines",
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn run(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<RunDetail>> {
    st.db
        .get_run(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no pipeline run {id:?}")))
}

/// Event tracking per container: events, pending and failed deliveries, layer runs.
/// Containers of configured pipelines appear even before their first event.
#[utoipa::path(get, path = "/api/v1/containers", tag = "pipelines",
    responses((status = 200, body = Object)), security(("api_key" = [])))]
pub async fn containers(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let mut items: Vec<Value> = st
        .db
        .containers_summary()
        .await?
        .into_iter()
        .map(|c| json!(c))
        .collect();
    for p in st.pipelines.pipelines().values() {
        for c in p.containers() {
            if !items.iter().any(|i| i["container"] == c) {
                items.push(json!({"container": c, "events": 0, "pending_deliveries": 0,
                    "failed_deliveries": 0, "last_event_at": null, "layer_runs": 0, "layer_runs_failed": 0}));
            }
        }
    }
    items.sort_by(|a, b| a["container"].as_str().cmp(&b["container"].as_str()));
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// Only this topic.
    pub topic: Option<String>,
    /// Events after this sequence number (paging).
    pub after: Option<i64>,
    /// Most events (default 100, at most 500).
    pub limit: Option<i64>,
}

/// The events of one container, oldest first, each with its deliveries.
#[utoipa::path(get, path = "/api/v1/containers/{name}/events", tag = "pipelines",
    params(("name" = String, Path), EventsQuery),
    responses((status = 200, body = Object)), security(("api_key" = [])))]
pub async fn container_events(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let items = st
        .db
        .container_events(&name, q.topic.as_deref(), q.after, limit)
        .await?;
    let next_after = items.last().map(|e| e.event.seq);
    Ok(Json(
        json!({ "container": name, "items": items, "next_after": next_after }),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookAccepted {
    pub webhook: String,
    pub delivery_id: String,
    /// True when this delivery id was received before: nothing was done again.
    pub duplicate: bool,
    pub run_id: String,
    pub event_id: String,
    pub href: String,
}

/// A signed webhook delivery (no API key: the HMAC-SHA256 signature authenticates it).
/// Headers: `x-strata-timestamp` (Unix seconds), `x-strata-signature: sha256=<hex of
/// HMAC(secret, "{timestamp}.{delivery id}.{body}")>`, `x-strata-delivery` (idempotency key). 202 once
/// the event is stored durably; 200 for a repeated delivery id (nothing done twice).
#[utoipa::path(post, path = "/api/v1/webhooks/{name}", tag = "pipelines",
    params(("name" = String, Path, description = "webhook name in [webhooks]")),
    request_body(content = Object, description = "the event payload (JSON object)"),
    responses((status = 202, body = WebhookAccepted), (status = 200, body = WebhookAccepted),
              (status = 401, body = crate::server::error::Problem), (status = 404, body = crate::server::error::Problem),
              (status = 413, body = crate::server::error::Problem), (status = 422, body = crate::server::error::Problem)))]
pub async fn webhook(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<WebhookAccepted>)> {
    let def = st
        .pipelines
        .webhook(&name)
        .ok_or_else(|| ApiError::not_found(format!("no webhook {name:?}")))?
        .clone();
    if body.len() > def.max_body_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body of {} bytes exceeds webhooks.{name}.max_body_bytes = {}",
                body.len(),
                def.max_body_bytes
            ),
        ));
    }
    let secret = std::env::var(&def.secret_env)
        .ok()
        .filter(|s| !s.is_empty());
    let Some(secret) = secret else {
        tracing::error!(webhook = %name, env = %def.secret_env, "webhook secret is not set; refusing deliveries");
        return Err(ApiError::unavailable(format!(
            "webhook {name:?} has no secret configured (environment variable {})",
            def.secret_env
        )));
    };
    let header = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    // Unsigned: 401 (below); signed but without a usable delivery id: 400.
    let delivery = header(DELIVERY_HEADER)
        .map(str::trim)
        .filter(|d| !d.is_empty() && d.len() <= 200);
    let signed = header(TIMESTAMP_HEADER).is_some() && header(SIGNATURE_HEADER).is_some();
    let delivery_id = match (delivery, signed) {
        (Some(d), _) => d.to_string(),
        (None, true) => {
            return Err(ApiError::bad_request(format!(
                "missing or overlong {DELIVERY_HEADER} header"
            )))
        }
        (None, false) => String::new(),
    };
    let now = crate::domain::now_ms() / 1000;
    webhook::verify(
        secret.as_bytes(),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &delivery_id,
        &body,
        now,
        def.tolerance_secs,
    )
    .map_err(|e| {
        tracing::warn!(webhook = %name, "webhook delivery refused: {e}");
        ApiError::unauthorized(format!("webhook signature check failed: {e}"))
    })?;
    let payload: Value = crate::server::json::parse(&body, st.config.server.json_depth_limit)?;
    let sha = crate::runtime::prepare::sha256_hex(&body);
    let outcome = st
        .pipelines
        .create_webhook_run(&name, &delivery_id, &sha, payload, Some(rid.0.to_string()))
        .await?;
    let (status, duplicate, run_id, event_id) = match outcome {
        WebhookOutcome::Created(c) => {
            st.worker_wake.notify_one();
            (StatusCode::ACCEPTED, false, c.run.id, c.trigger.id)
        }
        WebhookOutcome::Duplicate {
            run_id, event_id, ..
        } => {
            tracing::info!(webhook = %name, delivery = %delivery_id, "repeated webhook delivery; nothing done again");
            (StatusCode::OK, true, run_id, event_id)
        }
    };
    metrics::counter!("webhook_deliveries_total", "webhook" => name.clone(), "duplicate" => duplicate.to_string())
        .increment(1);
    Ok((
        status,
        Json(WebhookAccepted {
            href: format!("/api/v1/pipelines/runs/{run_id}"),
            webhook: name,
            delivery_id,
            duplicate,
            run_id,
            event_id,
        }),
    ))
}
