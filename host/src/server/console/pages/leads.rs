//! Leads and scores: search with paging (the leads route's query, 50 a page), a lead with
//! its scores across strategies (reasoning, factors, overrides), and a human override
//! with its reason (operator), recorded as feedback by the scores route.

use super::super::layout::{self, csrf_field, enc, time};
use super::super::session::Session;
use super::super::{given, PageError, PageResult};
use crate::db::Role;
use crate::domain::{LeadStatus, Priority};
use crate::server::json::ApiJson;
use crate::server::routes;
use crate::server::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::{Extension, Form, Json};
use maud::html;
use serde::Deserialize;

const PAGE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct LeadSearch {
    pub q: Option<String>,
    pub status: Option<String>,
    pub offset: Option<String>,
}

fn status_of(v: Option<&str>) -> Result<Option<LeadStatus>, PageError> {
    v.map(|s| {
        serde_json::from_value(serde_json::Value::String(s.to_string()))
            .map_err(|_| PageError::bad_request(format!("status {s:?} is not a lead status")))
    })
    .transpose()
}

const STATUSES: &[&str] = &[
    "new",
    "contacted",
    "nurture",
    "qualified",
    "unqualified",
    "junk",
];

/// `GET /console/leads`.
pub async fn list(
    State(st): State<AppState>,
    Extension(s): Extension<Session>,
    Query(q): Query<LeadSearch>,
) -> PageResult {
    let offset = given(&q.offset)
        .and_then(|o| o.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    let Json(page) = routes::leads::list(
        State(st.clone()),
        Query(routes::leads::ListQuery {
            status: status_of(given(&q.status))?,
            source: None,
            q: given(&q.q).map(str::to_string),
            limit: Some(PAGE),
            offset: Some(offset),
        }),
    )
    .await?;
    let mut base = Vec::new();
    if let Some(t) = given(&q.q) {
        base.push(format!("q={}", enc(t)));
    }
    if let Some(t) = given(&q.status) {
        base.push(format!("status={}", enc(t)));
    }
    let link = |off: i64| {
        let mut p = base.clone();
        p.push(format!("offset={off}"));
        format!("/console/leads?{}", p.join("&"))
    };
    let content = html! {
        form.filters method="get" action="/console/leads" role="search" {
            div { label for="q" { "Name, email or company" } input id="q" name="q" type="search" value=[given(&q.q)]; }
            div {
                label for="status" { "Status" }
                select id="status" name="status" {
                    option value="" { "any" }
                    @for st in STATUSES { option value=(st) selected[given(&q.status) == Some(*st)] { (st) } }
                }
            }
            button type="submit" { "Search" }
        }
        p.muted { (page.total) " leads match; showing " (page.offset + 1) "–" (page.offset + page.items.len() as i64) "." }
        table {
            thead { tr { th { "Lead" } th { "Name" } th { "Company" } th { "Email" } th { "Status" } th { "Source" } } }
            tbody {
                @for l in &page.items {
                    tr {
                        td { a href=(format!("/console/leads/{}", enc(&l.id))) { (l.id) } }
                        td { (l.name.as_deref().unwrap_or("")) }
                        td { (l.company.as_deref().unwrap_or("")) }
                        td { (l.email.as_deref().unwrap_or("")) }
                        td { (serde_json::to_value(l.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }
                        td { (l.source.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if offset > 0 { a href=(link((offset - PAGE).max(0))) rel="prev" { "Previous" } }
            @if offset + PAGE < page.total { a href=(link(offset + PAGE)) rel="next" { "Next" } }
        }
    };
    Ok(layout::page(
        &s,
        "/console/leads",
        "Leads and scores",
        content,
    ))
}

#[derive(Deserialize)]
pub struct LeadQuery {
    pub done: Option<String>,
}

/// `GET /console/leads/{id}`.
pub async fn detail(
    State(st): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<LeadQuery>,
) -> PageResult {
    let Json(lead) = routes::leads::get(State(st.clone()), Path(id.clone())).await?;
    let Json(scores) = routes::scores::of_lead(State(st.clone()), Path(id.clone())).await?;
    let lead_json = serde_json::to_value(&lead).unwrap_or_default();
    let content = html! {
        (layout::notice(given(&q.done)))
        h2 { "Lead" }
        (layout::json_block(&lead_json))
        h2 { "Scores (newest first, across strategies)" }
        @if scores.history.is_empty() { p.muted { "Not scored yet." } }
        @for sc in &scores.history {
            section.card {
                h3 { (sc.strategy) " — " (format!("{:.1}", sc.score.value)) " · " (format!("{:?}", sc.score.priority).to_lowercase()) }
                p.muted { (time(sc.created_at)) " · confidence " (format!("{:.2}", sc.score.confidence)) @if sc.fallback_used { " · fallback used" } }
                p { strong { "Recommended: " } (sc.score.recommended_action) }
                p { strong { "Reasoning: " } (sc.score.reasoning) }
                @if !sc.score.factors.is_empty() {
                    table {
                        thead { tr { th { "Factor" } th { "Score" } } }
                        tbody { @for f in &sc.score.factors { tr { td { (f.name) } td { (format!("{:.2}", f.score)) } } } }
                    }
                }
                @if let Some(o) = &sc.human_override {
                    p.notice {
                        "Override by " (o.by) " at " (time(o.at)) ": "
                        @if let Some(v) = o.value { "score " (format!("{v:.1}")) " " }
                        @if let Some(p) = o.priority { "priority " (format!("{p:?}").to_lowercase()) " " }
                        "— " (o.reason)
                    }
                }
            }
        }
        @if s.can(Role::Operator) && scores.latest.is_some() {
            h2 { "Override the latest score" }
            form.stack method="post" action=(format!("/console/leads/{}/override", enc(&id))) {
                (csrf_field(&s))
                div { label for="score" { "Score (0–100)" } input id="score" name="score" type="number" min="0" max="100" step="0.1"; }
                div {
                    label for="priority" { "Priority" }
                    select id="priority" name="priority" {
                        option value="" { "unchanged" }
                        @for p in ["immediate", "high", "medium", "low"] { option value=(p) { (p) } }
                    }
                }
                div { label for="reason" { "Reason (required)" } textarea id="reason" name="reason" required rows="3" cols="60" {} }
                div { button type="submit" { "Record override" } }
            }
        }
    };
    Ok(layout::page(
        &s,
        "/console/leads",
        &format!("Lead {id}"),
        content,
    ))
}

#[derive(Deserialize)]
pub struct OverrideForm {
    pub score: Option<String>,
    pub priority: Option<String>,
    pub reason: Option<String>,
}

/// `POST /console/leads/{id}/override`: through the scores route (same checks, the
/// signed-in key recorded as who).
pub async fn set_override(
    State(st): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<OverrideForm>,
) -> PageResult {
    s.require(Role::Operator)?;
    let score = given(&f.score)
        .map(|v| {
            v.parse::<f64>()
                .map_err(|_| PageError::bad_request(format!("score {v:?} is not a number")))
        })
        .transpose()?;
    let priority: Option<Priority> = given(&f.priority)
        .map(|p| {
            serde_json::from_value(serde_json::Value::String(p.to_string()))
                .map_err(|_| PageError::bad_request(format!("priority {p:?} is not a priority")))
        })
        .transpose()?;
    let _ = routes::scores::set_override(
        State(st.clone()),
        Path(id.clone()),
        Extension(s.caller()),
        ApiJson(routes::scores::OverrideRequest {
            score,
            priority,
            reason: f.reason.unwrap_or_default(),
        }),
    )
    .await?;
    tracing::info!(lead = %id, key = %s.name, "console score override");
    Ok(Redirect::to(&format!("/console/leads/{}?done=override", enc(&id))).into_response())
}
