//! Strategies: each strategy with a challenger attached, and the champion/challenger
//! comparison over a window (the strategies route's report) with its charts.

use super::super::layout::{self, enc, text, time_of};
use super::super::session::Session;
use super::super::{given, PageResult};
use crate::server::routes;
use crate::server::AppState;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use maud::html;
use serde::Deserialize;
use serde_json::Value;

/// `GET /console/strategies`.
pub async fn list(State(st): State<AppState>, Extension(s): Extension<Session>) -> PageResult {
    let attached = st.db.list_challengers().await?;
    let content = html! {
        @if attached.is_empty() {
            p.muted { "No strategy has a challenger (" code { "PUT /api/v1/strategies/{name}/challenger" } ")." }
        }
        table {
            thead { tr { th { "Strategy (champion)" } th { "Challenger" } th { "Mode" } th { "Share" } } }
            tbody {
                @for c in &attached {
                    tr {
                        td { a href=(format!("/console/strategies/{}", enc(&c.strategy))) { (c.strategy) } }
                        td { (c.challenger) @if let Some(v) = &c.challenger_version { "@" (v) } }
                        td { (text(&serde_json::to_value(c.mode).unwrap_or_default())) }
                        td { (format!("{:.0} %", c.share * 100.0)) }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &s,
        "/console/strategies",
        "Strategies",
        content,
    ))
}

#[derive(Deserialize)]
pub struct WindowQuery {
    /// Days to compare over (default 7).
    pub days: Option<String>,
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v["value"].as_f64())
}

/// `GET /console/strategies/{name}`.
pub async fn detail(
    State(st): State<AppState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Query(q): Query<WindowQuery>,
) -> PageResult {
    let days = given(&q.days)
        .and_then(|d| d.parse::<i64>().ok())
        .unwrap_or(7)
        .clamp(1, 365);
    let since = crate::domain::now_ms() - days * 86_400_000;
    let Json(cmp) = routes::strategies::comparison(
        State(st.clone()),
        Path(name.clone()),
        Query(routes::strategies::ComparisonQuery { since: Some(since) }),
    )
    .await?;
    let v = serde_json::to_value(&cmp).unwrap_or_default();
    let arms = |key: &str| -> Vec<(String, f64)> {
        ["champion", "challenger"]
            .iter()
            .filter_map(|arm| num(&v[arm][key]).map(|x| (arm.to_string(), x)))
            .collect()
    };
    let quality: Vec<(String, f64)> = ["champion", "challenger"]
        .iter()
        .filter_map(|arm| num(&v["outcomes"][arm]["auc"]).map(|x| (format!("{arm} AUC"), x)))
        .collect();
    let scores: Vec<(String, f64)> = ["champion", "challenger"]
        .iter()
        .filter_map(|arm| {
            v[arm]["scores"]["mean"]
                .as_f64()
                .map(|x| (format!("{arm} mean score"), x))
        })
        .collect();
    let content = html! {
        form.filters method="get" {
            div { label for="days" { "Window (days)" } input id="days" name="days" type="number" min="1" max="365" value=(days); }
            button type="submit" { "Compare" }
        }
        div.cards {
            div.card { div.muted { "Paired results" } div.n { (text(&v["results"])) } }
            div.card { div.muted { "Rank correlation" } div.n { (text(&v["agreement"]["rank_correlation"])) } }
            div.card { div.muted { "Mean |difference|" } div.n { (text(&v["agreement"]["mean_absolute_difference"])) } }
            div.card { div.muted { "Drift (PSI)" } div.n { (text(&v["drift_psi"])) } }
            div.card { div.muted { "Leads with outcome" } div.n { (text(&v["outcomes"]["leads"])) } }
        }
        p.muted { "From " (time_of(&v["since"])) " to " (time_of(&v["until"])) }
        div.side {
            div { h2 { "Error rate" } (layout::bars(&arms("error_rate"), 1.0, "error rate by arm")) }
            div { h2 { "AUC on known outcomes" } (layout::bars(&quality, 1.0, "AUC by arm")) }
            div { h2 { "Mean score" } (layout::bars(&scores, 100.0, "mean score by arm")) }
        }
        h2 { "The whole comparison" }
        (layout::json_block(&v))
    };
    Ok(layout::page(
        &s,
        "/console/strategies",
        &format!("Strategy {name}"),
        content,
    ))
}
