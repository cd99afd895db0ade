//! Pipelines: the configured pipelines, their runs (status, Φ_sync) newest first; one run
//! with its layers on a timeline (durations), its events and their deliveries, and what a
//! dry run held back; starting a run (operator), through the pipelines route.

use super::super::layout::{self, csrf_field, enc, text, time, time_of};
use super::super::session::Session;
use super::super::{given, PageError, PageResult};
use crate::db::Role;
use crate::server::routes;
use crate::server::{AppState, RequestId};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::{Extension, Form, Json};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
pub struct RunsQuery {
    pub pipeline: Option<String>,
    pub limit: Option<String>,
}

/// `GET /console/pipelines`.
pub async fn list(
    State(st): State<AppState>,
    Extension(s): Extension<Session>,
    Query(q): Query<RunsQuery>,
) -> PageResult {
    let pipeline = given(&q.pipeline);
    let limit = given(&q.limit)
        .and_then(|l| l.parse::<i64>().ok())
        .unwrap_or(50)
        .clamp(1, 500);
    let runs = st.db.list_runs(pipeline, limit).await?;
    let defs = st.pipelines.pipelines();
    let content = html! {
        @if defs.is_empty() { p.muted { "No pipeline is configured ([pipelines.<name>] in the configuration)." } }
        table {
            caption.muted { "Configured pipelines" }
            thead { tr { th { "Pipeline" } th { "Start topic" } th { "Layers" } th { "Description" } } }
            tbody {
                @for (name, d) in defs {
                    tr {
                        td { a href=(format!("/console/pipelines?pipeline={}", enc(name))) { (name) } }
                        td { code { (d.start_topic) } }
                        td { (d.layers.iter().map(|l| l.layer.as_str()).collect::<Vec<_>>().join(", ")) }
                        td { (d.description) }
                    }
                }
            }
        }
        form.filters method="get" action="/console/pipelines" {
            div {
                label for="pipeline" { "Pipeline" }
                select id="pipeline" name="pipeline" {
                    option value="" { "all" }
                    @for name in defs.keys() { option value=(name) selected[pipeline == Some(name.as_str())] { (name) } }
                }
            }
            button type="submit" { "Show runs" }
        }
        table {
            caption.muted { "Runs, newest first" }
            thead { tr { th { "Run" } th { "Pipeline" } th { "Status" } th { "Φ_sync" } th { "Dry run" } th { "Created" } th { "Finished" } } }
            tbody {
                @for r in &runs {
                    @let v = serde_json::to_value(r).unwrap_or_default();
                    tr {
                        td { a href=(format!("/console/pipelines/runs/{}", enc(&r.id))) { code { (r.id) } } }
                        td { (r.pipeline) }
                        td { (status(&v["status"])) }
                        td { @if let Some(p) = r.phi_sync { (format!("{p:.3}")) } @else { "—" } }
                        td { @if r.dry_run { "yes" } @else { "no" } }
                        td { (time(r.created_at)) }
                        td { @if let Some(f) = r.finished_at { (time(f)) } @else { "—" } }
                    }
                }
            }
        }
        @if s.can(Role::Operator) && !defs.is_empty() {
            h2 { "Start a run" }
            form.stack method="post" action="/console/pipelines" {
                (csrf_field(&s))
                div {
                    label for="start-pipeline" { "Pipeline" }
                    select id="start-pipeline" name="pipeline" required {
                        @for name in defs.keys() { option value=(name) selected[pipeline == Some(name.as_str())] { (name) } }
                    }
                }
                div {
                    label for="payload" { "Trigger payload (a JSON object)" }
                    textarea id="payload" name="payload" rows="6" cols="60" required { "{}" }
                }
                div { input type="checkbox" id="dry_run" name="dry_run" value="yes"; label for="dry_run" { " Dry run (side effects recorded, not executed)" } }
                div { button type="submit" { "Start run" } }
            }
        }
    };
    Ok(layout::page(&s, "/console/pipelines", "Pipelines", content))
}

fn status(v: &Value) -> Markup {
    let s = v.as_str().unwrap_or("?");
    html! {
        @match s {
            "succeeded" | "acked" => span.ok { (s) },
            "failed" | "incomplete" => span.bad { (s) },
            _ => span.warn { (s) },
        }
    }
}

#[derive(Deserialize)]
pub struct RunQuery {
    pub done: Option<String>,
}

/// `GET /console/pipelines/runs/{id}`.
pub async fn run(
    State(st): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<RunQuery>,
) -> PageResult {
    let Json(detail) = routes::pipelines::run(State(st.clone()), Path(id.clone())).await?;
    let v = serde_json::to_value(&detail).unwrap_or_default();
    let layers = v["layer_runs"].as_array().cloned().unwrap_or_default();
    let start = layers
        .iter()
        .filter_map(|l| l["started_at"].as_i64())
        .min()
        .unwrap_or(0);
    let end = layers
        .iter()
        .filter_map(|l| l["finished_at"].as_i64())
        .max()
        .unwrap_or(start);
    let span = (end - start).max(1) as f64;
    let content = html! {
        (layout::notice(given(&q.done)))
        div.cards {
            div.card { div.muted { "Pipeline" } div.n { (text(&v["pipeline"])) } }
            div.card { div.muted { "Status" } div.n { (status(&v["status"])) } }
            div.card { div.muted { "Φ_sync" } div.n { @if let Some(p) = v["phi_sync"].as_f64() { (format!("{p:.3}")) } @else { "—" } } }
            div.card { div.muted { "Dry run" } div.n { @if v["dry_run"] == json!(true) { "yes" } @else { "no" } } }
        }
        p.muted { "Created " (time_of(&v["created_at"])) " · started " (time_of(&v["started_at"])) " · finished " (time_of(&v["finished_at"])) }
        @if let Some(e) = v["error"].as_str() { p.error { (e) } }
        h2 { "Layers" }
        @if layers.is_empty() { p.muted { "No layer has run yet." } }
        ol.timeline {
            @for l in &layers {
                @let offset = (l["started_at"].as_i64().unwrap_or(start) - start) as f64 / span * 100.0;
                @let width = (l["duration_ms"].as_f64().unwrap_or(0.0) / span * 100.0).clamp(0.5, 100.0);
                @let failed = l["status"] != "succeeded";
                li class=(if failed { "failed" } else { "" }) {
                    strong { (text(&l["layer"])) } " "
                    span.muted { "(" (text(&l["container"])) ", " code { (text(&l["topic"])) } ", attempt " (text(&l["attempt"])) ")" } " "
                    (status(&l["status"])) " · " (format!("{:.1} ms", l["duration_ms"].as_f64().unwrap_or(0.0))) " "
                    svg width="300" height="14" viewBox="0 0 100 14" role="img" aria-label=(format!("{} ms from the run's first layer", l["started_at"].as_i64().unwrap_or(start) - start)) {
                        rect x=(format!("{offset:.2}")) y="2" width=(format!("{width:.2}")) height="10" fill=(if failed { "#a4262c" } else { "#1f5fbf" }) {}
                    }
                    @if let Some(e) = l["error"].as_str() { div.error { (e) } }
                    @if !l["held_back"].is_null() {
                        details { summary { "Held back (dry run)" } (layout::json_block(&l["held_back"])) }
                    }
                    @if !l["output"].is_null() {
                        details { summary { "Output" } (layout::json_block(&l["output"])) }
                    }
                }
            }
        }
        h2 { "Events and deliveries" }
        table {
            thead { tr { th { "#" } th { "Topic" } th { "Container" } th { "Producer" } th { "Emitted" } th { "Deliveries" } } }
            tbody {
                @for e in v["events"].as_array().into_iter().flatten() {
                    tr {
                        td { (text(&e["seq"])) }
                        td { code { (text(&e["topic"])) } }
                        td { (text(&e["container"])) }
                        td { (text(&e["producer"])) }
                        td { (time_of(&e["emitted_at"])) }
                        td {
                            ul {
                                @for d in e["deliveries"].as_array().into_iter().flatten() {
                                    li { (text(&d["subscriber"])) ": " (status(&d["status"])) " (" (text(&d["attempts"])) " attempts)"
                                        @if let Some(err) = d["last_error"].as_str() { " — " span.bad { (err) } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &s,
        "/console/pipelines",
        &format!("Run {id}"),
        content,
    ))
}

#[derive(Deserialize)]
pub struct StartForm {
    pub pipeline: String,
    pub payload: Option<String>,
    pub dry_run: Option<String>,
}

/// `POST /console/pipelines`: starts a run through the pipelines route.
pub async fn start(
    State(st): State<AppState>,
    Extension(s): Extension<Session>,
    Extension(rid): Extension<RequestId>,
    Form(f): Form<StartForm>,
) -> PageResult {
    s.require(Role::Operator)?;
    let payload: Value = serde_json::from_str(given(&f.payload).unwrap_or("{}"))
        .map_err(|e| PageError::bad_request(format!("the payload is not JSON: {e}")))?;
    let body = json!({ "payload": payload, "dry_run": f.dry_run.as_deref() == Some("yes") });
    let (_, Json(accepted)) = routes::pipelines::start(
        State(st.clone()),
        Path(f.pipeline.clone()),
        Extension(rid),
        Bytes::from(body.to_string()),
    )
    .await?;
    tracing::info!(pipeline = %f.pipeline, key = %s.name, "console run started");
    Ok(Redirect::to(&format!(
        "/console/pipelines/runs/{}?done=started",
        enc(&accepted.run_id)
    ))
    .into_response())
}
