//! Overview: health and readiness, plugins live, rejected loads, the job queue (depth,
//! dead jobs), recent Φ_sync per pipeline (a small chart), MCP servers and LLM providers
//! with their state.

use super::super::layout::{self, enc, text};
use super::super::session::Session;
use super::super::PageResult;
use crate::plugins::dirs::DirState;
use crate::server::routes;
use crate::server::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use maud::html;

/// `GET /console`.
pub async fn page(State(st): State<AppState>, Extension(s): Extension<Session>) -> PageResult {
    let Json(health) = routes::health::health(State(st.clone())).await;
    let ready = routes::health::ready(State(st.clone())).await;
    let live = st
        .manager
        .registry()
        .slots()
        .iter()
        .filter(|s| s.live().is_some())
        .count();
    let rejected: Vec<_> = st
        .manager
        .directories()
        .into_iter()
        .filter(|d| d.state == DirState::Rejected)
        .collect();
    let depth = st.db.queue_depth().await?;
    let mut phi = Vec::new();
    for name in st.pipelines.pipelines().keys() {
        let mut values = st.db.recent_phi(name, 30).await?;
        values.reverse();
        phi.push((name.clone(), values));
    }
    let Json(mcp) = routes::mcp::mcp_status(State(st.clone())).await;
    let Json(llm) = routes::llm::llm_status(State(st.clone())).await;
    let mcp = serde_json::to_value(&mcp.servers).unwrap_or_default();
    let llm = serde_json::to_value(&llm.providers).unwrap_or_default();
    let content = html! {
        div.cards {
            div.card { div.muted { "Health" } div.n.ok { (health.status) } div.muted { "v" (health.version) ", up " (health.uptime_s) " s" } }
            div.card {
                div.muted { "Readiness" }
                @match &ready {
                    Ok(Json(r)) => { div.n.ok { (r.status) } div.muted { (r.database) ", default scorer " (r.default_scorer) } },
                    Err(e) => { div.n.bad { "not ready" } div.muted { (e.detail) } },
                }
            }
            div.card { div.muted { "Plugins live" } div.n { a href="/console/plugins" { (live) } } }
            div.card { div.muted { "Rejected loads" } div.n { @if rejected.is_empty() { "0" } @else { span.bad { (rejected.len()) } } } }
            div.card { div.muted { "Jobs queued / running" } div.n { (depth.queued) " / " (depth.running) } }
            div.card { div.muted { "Dead jobs" } div.n { @if depth.dead > 0 { span.bad { (depth.dead) } } @else { "0" } } }
        }
        @if !rejected.is_empty() {
            h2 { "Rejected loads" }
            table {
                thead { tr { th { "Directory" } th { "Plugin" } th { "Reason" } } }
                tbody {
                    @for d in &rejected {
                        tr {
                            td { code { (d.dir.display().to_string()) } }
                            td { @if let Some(n) = &d.name { a href=(format!("/console/plugins/{}", enc(n))) { (n) } } }
                            td.bad { (d.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        h2 { "Φ_sync of recent runs" }
        @if phi.is_empty() { p.muted { "No pipeline is configured." } }
        table {
            thead { tr { th { "Pipeline" } th { "Last 30 finished runs (oldest → newest)" } th { "Latest" } } }
            tbody {
                @for (name, values) in &phi {
                    tr {
                        td { a href=(format!("/console/pipelines?pipeline={}", enc(name))) { (name) } }
                        td { (layout::sparkline(values, &format!("Φ_sync of {name}'s recent runs"))) }
                        td { @if let Some(v) = values.last() { (format!("{v:.3}")) } @else { "—" } }
                    }
                }
            }
        }
        div.side {
            div {
                h2 { "MCP servers" }
                @if mcp.as_array().is_none_or(|a| a.is_empty()) { p.muted { "None configured." } }
                table {
                    thead { tr { th { "Server" } th { "Connected" } th { "Breaker" } th { "Tools" } th { "Last error" } } }
                    tbody {
                        @for m in mcp.as_array().into_iter().flatten() {
                            tr {
                                td { (text(&m["name"])) }
                                td { @if m["connected"] == true { span.ok { "yes" } } @else { span.bad { "no" } } }
                                td { (text(&m["breaker"])) }
                                td { (text(&m["tool_count"])) }
                                td { (text(&m["last_error"])) }
                            }
                        }
                    }
                }
            }
            div {
                h2 { "LLM providers" }
                @if llm.as_array().is_none_or(|a| a.is_empty()) { p.muted { "None configured." } }
                table {
                    thead { tr { th { "Provider" } th { "Breaker" } th { "Calls" } th { "Failures" } th { "Last error" } } }
                    tbody {
                        @for p in llm.as_array().into_iter().flatten() {
                            tr {
                                td { (text(&p["name"])) }
                                td { (text(&p["breaker"])) }
                                td { (text(&p["calls"])) }
                                td { (text(&p["failures"])) }
                                td { (text(&p["last_error"])) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&s, "/console", "Overview", content))
}
