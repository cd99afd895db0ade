//! Audit: capability calls searchable by plugin, capability, outcome, request id and time,
//! newest first, 50 a page (keyset paging on `(at, id)`: the indexes on `at`,
//! `(plugin, at)`, `(capability, at)` and `request_id` keep a page cheap at millions of
//! rows). A denied call links to the plugin's grant.

use super::super::layout::{self, enc, time};
use super::super::session::Session;
use super::super::{given, PageError, PageResult};
use crate::db::AuditFilter;
use crate::server::AppState;
use axum::extract::{Query, State};
use axum::Extension;
use maud::html;
use serde::Deserialize;

const PAGE: i64 = 50;

/// The search form's fields (all optional; empty means any).
#[derive(Deserialize, Default)]
pub struct AuditSearch {
    pub plugin: Option<String>,
    pub capability: Option<String>,
    /// `allowed` or `denied`.
    pub outcome: Option<String>,
    pub request_id: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (UTC), inclusive.
    pub since: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (UTC), exclusive.
    pub until: Option<String>,
    /// Keyset: the last row of the previous page.
    pub before_at: Option<String>,
    pub before_id: Option<String>,
}

fn parse_time(field: &str, v: Option<&str>) -> Result<Option<i64>, PageError> {
    let Some(v) = v else { return Ok(None) };
    let t = chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| {
            PageError::bad_request(format!(
                "{field}: {v:?} is not a time such as 2026-01-31T14:05"
            ))
        })?;
    Ok(Some(t.and_utc().timestamp_millis()))
}

fn parse_int(field: &str, v: Option<&str>) -> Result<Option<i64>, PageError> {
    v.map(|v| {
        v.parse()
            .map_err(|_| PageError::bad_request(format!("{field}: {v:?} is not a number")))
    })
    .transpose()
}

/// The search's query string, without the paging keys.
fn query_of(q: &AuditSearch) -> String {
    let pairs: Vec<(&str, &str)> = [
        ("plugin", given(&q.plugin)),
        ("capability", given(&q.capability)),
        ("outcome", given(&q.outcome)),
        ("request_id", given(&q.request_id)),
        ("since", given(&q.since)),
        ("until", given(&q.until)),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET /console/audit`.
pub async fn page(
    State(st): State<AppState>,
    Extension(s): Extension<Session>,
    Query(q): Query<AuditSearch>,
) -> PageResult {
    let allowed = match given(&q.outcome) {
        None => None,
        Some("allowed") => Some(true),
        Some("denied") => Some(false),
        Some(o) => {
            return Err(PageError::bad_request(format!(
                "outcome {o:?}: use allowed or denied"
            )))
        }
    };
    let before = match (
        parse_int("before_at", given(&q.before_at))?,
        parse_int("before_id", given(&q.before_id))?,
    ) {
        (Some(at), Some(id)) => Some((at, id)),
        _ => None,
    };
    st.audit.flush().await;
    let rows = st
        .db
        .list_audit(&AuditFilter {
            plugin: given(&q.plugin).map(str::to_string),
            capability: given(&q.capability).map(str::to_string),
            allowed,
            request_id: given(&q.request_id).map(str::to_string),
            since_ms: parse_time("since", given(&q.since))?,
            until_ms: parse_time("until", given(&q.until))?,
            limit: PAGE,
            before,
        })
        .await?;
    let base = query_of(&q);
    let sep = if base.is_empty() { "" } else { "&" };
    let next = (rows.len() as i64 == PAGE)
        .then(|| rows.last())
        .flatten()
        .map(|r| {
            format!(
                "/console/audit?{base}{sep}before_at={}&before_id={}",
                r.record.at, r.id
            )
        });
    let content = html! {
        form.filters method="get" action="/console/audit" role="search" {
            div { label for="plugin" { "Plugin" } input id="plugin" name="plugin" type="text" value=[given(&q.plugin)]; }
            div { label for="capability" { "Capability" } input id="capability" name="capability" type="text" value=[given(&q.capability)]; }
            div {
                label for="outcome" { "Outcome" }
                select id="outcome" name="outcome" {
                    option value="" selected[allowed.is_none()] { "any" }
                    option value="allowed" selected[allowed == Some(true)] { "allowed" }
                    option value="denied" selected[allowed == Some(false)] { "denied" }
                }
            }
            div { label for="request_id" { "Request id" } input id="request_id" name="request_id" type="text" value=[given(&q.request_id)]; }
            div { label for="since" { "From (UTC)" } input id="since" name="since" type="datetime-local" value=[given(&q.since)]; }
            div { label for="until" { "Until (UTC)" } input id="until" name="until" type="datetime-local" value=[given(&q.until)]; }
            button type="submit" { "Search" }
        }
        table {
            caption.muted { "Newest first; " (rows.len()) " rows on this page" }
            thead { tr { th { "When" } th { "Plugin" } th { "Capability" } th { "Operation" } th { "Target" } th { "Outcome" } th { "Detail" } th { "Calls" } th { "Request" } } }
            tbody {
                @for r in &rows {
                    @let a = &r.record;
                    tr {
                        td { (time(a.at)) }
                        td { a href=(format!("/console/plugins/{}", enc(&a.plugin))) { (a.plugin) } "@" (a.plugin_version) }
                        td { (a.capability) }
                        td { (a.operation) }
                        td { @if let Some(t) = &a.target { code { (t) } } }
                        td {
                            @if a.allowed { span.allowed { "allowed" } }
                            @else {
                                span.denied { "denied" } " "
                                a href=(format!("/console/plugins/{}#grants", enc(&a.plugin))) { "see the grant" }
                            }
                        }
                        td { @if let Some(d) = &a.detail { (d) } }
                        td { (a.count) }
                        td { @if let Some(id) = &a.request_id { a href=(format!("/console/audit?request_id={}", enc(id))) { code { (id) } } } }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if before.is_some() { a href=(format!("/console/audit?{base}")) { "Newest" } }
            @if let Some(n) = next { a href=(n) rel="next" { "Older" } }
        }
    };
    Ok(layout::page(&s, "/console/audit", "Audit", content))
}
