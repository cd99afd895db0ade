//! The page shell every console page shares (navigation, who is signed in, sign-out),
//! small rendering helpers (times, hashes, bars) and the error page.

use super::session::Session;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

/// The sections of the navigation: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/console", "Overview"),
    ("/console/plugins", "Plugins"),
    ("/console/audit", "Audit"),
    ("/console/pipelines", "Pipelines"),
    ("/console/leads", "Leads"),
    ("/console/strategies", "Strategies"),
];

fn shell(title: &str, nav: Option<(&Session, &str)>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Strata console" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Strata" }
                    @if let Some((session, current)) = nav {
                        nav aria-label="Sections" {
                            ul {
                                @for (path, label) in NAV {
                                    li {
                                        @if *path == current {
                                            a href=(path) aria-current="page" { (label) }
                                        } @else {
                                            a href=(path) { (label) }
                                        }
                                    }
                                }
                                li { a href="/api/docs" { "API docs" } }
                            }
                        }
                        div.who {
                            span { (session.name) " · " span.role { (session.role.as_str()) } }
                            form method="post" action="/console/signout" {
                                (csrf_field(session))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A required confirmation checkbox (so an action needs a deliberate second step, without
/// script).
pub fn confirm_box(id: &str, label: &str) -> Markup {
    html! {
        span.confirm {
            input type="checkbox" name="confirm" value="yes" id=(id) required;
            label for=(id) { (label) }
        }
    }
}

/// An HTML answer with the console's headers.
pub fn html_response(status: StatusCode, page: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

/// A signed-in page; `current` is its navigation section.
pub fn page(session: &Session, current: &str, title: &str, content: Markup) -> Response {
    html_response(
        StatusCode::OK,
        shell(title, Some((session, current)), content),
    )
}

/// A page shown before sign-in.
pub fn public_page(status: StatusCode, title: &str, content: Markup) -> Response {
    html_response(status, shell(title, None, content))
}

/// The page of a request that failed: its status and what to do.
pub fn error_page(status: StatusCode, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    html_response(
        status,
        shell(
            title,
            None,
            html! {
                p.error role="alert" { (detail) }
                p { a href="/console" { "Back to the console" } }
            },
        ),
    )
}

/// A time (milliseconds since the epoch) as UTC text.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A time from a JSON value (milliseconds), or a dash.
pub fn time_of(v: &serde_json::Value) -> String {
    v.as_i64().map(time).unwrap_or_else(|| "—".into())
}

/// A sha256 shortened for a table, the whole in its title.
pub fn sha(s: &str) -> Markup {
    html! { code title=(s) { (s.get(..12).unwrap_or(s)) "…" } }
}

/// A JSON value as short text (strings without quotes, null as a dash).
pub fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "—".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON value pretty-printed in a `pre`.
pub fn json_block(v: &serde_json::Value) -> Markup {
    html! { pre.json { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
}

/// A small line chart (inline SVG, no script) of `values` in 0–1, oldest first.
pub fn sparkline(values: &[f64], label: &str) -> Markup {
    let (w, h) = (160.0, 32.0);
    let n = values.len();
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = if n <= 1 {
                w / 2.0
            } else {
                i as f64 * w / (n - 1) as f64
            };
            let y = h - v.clamp(0.0, 1.0) * (h - 4.0) - 2.0;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    html! {
        svg.spark width="160" height="32" viewBox="0 0 160 32" role="img" aria-label=(label) {
            title { (label) }
            line x1="0" y1="31" x2="160" y2="31" stroke="#8a94a6" stroke-width="1" {}
            @if n == 1 {
                circle cx=(points[0].split(',').next().unwrap_or("80")) cy=(points[0].split(',').nth(1).unwrap_or("16")) r="3" fill="#1f5fbf" {}
            } @else if n > 1 {
                polyline points=(points.join(" ")) fill="none" stroke="#1f5fbf" stroke-width="2" {}
            }
        }
    }
}

/// Horizontal bars (inline SVG) of labelled values in 0–`max`.
pub fn bars(items: &[(String, f64)], max: f64, label: &str) -> Markup {
    let row = 22.0;
    let height = (items.len() as f64 * row).max(row);
    html! {
        svg.bars width="420" height=(height) viewBox=(format!("0 0 420 {height}")) role="img" aria-label=(label) {
            title { (label) }
            @for (i, (name, v)) in items.iter().enumerate() {
                @let y = i as f64 * row;
                @let width = if max > 0.0 { (v / max).clamp(0.0, 1.0) * 250.0 } else { 0.0 };
                text x="0" y=(y + 15.0) font-size="12" fill="#1b2430" { (name) }
                rect x="150" y=(y + 4.0) width=(format!("{width:.1}")) height="14" fill="#1f5fbf" {}
                text x=(155.0 + width) y=(y + 15.0) font-size="12" fill="#1b2430" { (format!("{v:.3}")) }
            }
        }
    }
}

/// Percent-encodes a path segment or query value (everything but `A-Z a-z 0-9 - _ . ~`).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The notice of an action that was done (by its code in `?done=`; never free text from
/// the URL).
pub fn notice(done: Option<&str>) -> Markup {
    let text = match done {
        Some("rollback") => "Rolled back: the version below is live and pinned.",
        Some("pin") => "Pinned.",
        Some("unpin") => "Unpinned: the newest version delivered is live.",
        Some("disable") => "Disabled: calls are refused until it is enabled.",
        Some("enable") => "Enabled.",
        Some("approve") => "Approved.",
        Some("reject") => "Rejected.",
        Some("override") => "Override recorded (as feedback beside the machine score).",
        Some("started") => "Run started.",
        _ => return html! {},
    };
    html! { p.notice role="status" { (text) } }
}
