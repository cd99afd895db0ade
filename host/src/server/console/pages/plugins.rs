//! Plugins: every plugin with its live version; one plugin's versions (sha256, live /
//! pinned / available / rejected with the reason / awaiting approval), limits and lane;
//! for the reviewer, side by side, the capabilities declared, granted, imported and
//! actually used (audit counts over a window); actions by role: roll back, pin, unpin,
//! disable, enable (operator), approve or reject a published version (admin), each behind
//! a confirmation box.

use super::super::layout::{self, confirm_box, csrf_field, enc, sha, text, time_of};
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
use std::collections::BTreeMap;

/// `GET /console/plugins`.
pub async fn list(State(st): State<AppState>, Extension(s): Extension<Session>) -> PageResult {
    let Json(v) = routes::plugins::list(State(st.clone())).await;
    let empty = vec![];
    let items = v["items"].as_array().unwrap_or(&empty);
    let dirs = v["directories"].as_array().unwrap_or(&empty);
    let content = html! {
        table {
            caption.muted { "Plugins this host serves" }
            thead { tr { th { "Plugin" } th { "Kind" } th { "Live version" } th { "sha256" } th { "State" } th { "Last error" } } }
            tbody {
                @for p in items {
                    @let name = p["name"].as_str().unwrap_or_default();
                    tr {
                        td { a href=(format!("/console/plugins/{}", enc(name))) { (name) } }
                        td { (text(&p["kind"])) }
                        td { (text(&p["live_version"])) }
                        td { @if let Some(h) = p["sha256"].as_str() { (sha(h)) } }
                        td { (state_of(p)) }
                        td { @if let Some(e) = p["last_error"].as_str() { span.bad { (e) } } }
                    }
                }
            }
        }
        h2 { "Plugin directories" }
        table {
            thead { tr { th { "Directory" } th { "Plugin" } th { "Version" } th { "State" } th { "Reason" } th { "When" } } }
            tbody {
                @for d in dirs {
                    tr {
                        td { code { (text(&d["dir"])) } }
                        td { @if let Some(n) = d["name"].as_str() { a href=(format!("/console/plugins/{}", enc(n))) { (n) } } }
                        td { (text(&d["version"])) }
                        td { (text(&d["state"])) }
                        td { @if let Some(e) = d["error"].as_str() { span.bad { (e) } } }
                        td { (time_of(&d["at"])) }
                    }
                }
            }
        }
    };
    Ok(layout::page(&s, "/console/plugins", "Plugins", content))
}

fn state_of(p: &Value) -> Markup {
    html! {
        @if p["disabled"] == json!(true) { span.bad { "disabled" } " " }
        @if p["live_version"].is_string() { span.ok { "live" } } @else { span.bad { "not live" } }
        @if p["pinned"] == json!(true) { " · pinned" }
    }
}

#[derive(Deserialize)]
pub struct DetailQuery {
    /// Hours of audit to count (default 24).
    pub window_hours: Option<String>,
    pub done: Option<String>,
}

/// `GET /console/plugins/{name}`.
pub async fn detail(
    State(st): State<AppState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Query(q): Query<DetailQuery>,
) -> PageResult {
    let Json(versions) = routes::plugins::versions(State(st.clone()), Path(name.clone())).await?;
    let info = routes::plugins::get(State(st.clone()), Path(name.clone()))
        .await
        .map(|j| j.0)
        .unwrap_or(Value::Null);
    let hours = given(&q.window_hours)
        .and_then(|h| h.parse::<i64>().ok())
        .unwrap_or(24)
        .clamp(1, 24 * 365);
    st.audit.flush().await;
    let usage = st
        .db
        .audit_usage(&name, crate::domain::now_ms() - hours * 3_600_000, 500)
        .await?;
    let mut awaiting = Vec::new();
    for p in versions["published"].as_array().into_iter().flatten() {
        if p["status"] == "awaiting-approval" {
            let v = p["version"].as_str().unwrap_or_default().to_string();
            if let Ok(Json(one)) =
                routes::published::get_version(State(st.clone()), Path((name.clone(), v))).await
            {
                awaiting.push(one);
            }
        }
    }
    let content = html! {
        (layout::notice(given(&q.done)))
        (summary(&info, &versions))
        (version_table(&s, &name, &versions))
        @if !awaiting.is_empty() { (review(&s, &name, &awaiting)) }
        (capabilities(&info, &usage, hours))
        h2 { "Limits and lane" }
        div.side {
            div { h3 { "Limits" } (layout::json_block(&info["limits"])) }
            div { h3 { "Lane" } (layout::json_block(&info["lane"])) }
        }
        @if s.can(Role::Operator) { (controls(&s, &name, &info)) }
    };
    Ok(layout::page(
        &s,
        "/console/plugins",
        &format!("Plugin {name}"),
        content,
    ))
}

fn summary(info: &Value, versions: &Value) -> Markup {
    html! {
        div.cards {
            div.card { div.muted { "Live" } div.n { (text(&versions["live"]["version"])) } }
            div.card { div.muted { "Kind" } div.n { (text(&info["kind"])) } }
            div.card { div.muted { "Pinned" } div.n { @if versions["pinned"] == json!(true) { "yes" } @else { "no" } } }
            div.card { div.muted { "Serving" } div.n { @if info["disabled"] == json!(true) { span.bad { "disabled" } } @else { "enabled" } } }
        }
        @if let Some(e) = info["last_error"].as_str() { p.error { "Last load error: " (e) } }
    }
}

fn version_table(s: &Session, name: &str, v: &Value) -> Markup {
    let live = v["live"]["version"].as_str().unwrap_or_default();
    let pinned = v["pinned"] == json!(true);
    html! {
        h2 id="versions" { "Versions" }
        table {
            caption.muted { "Kept in memory on this host (any of them can go live at once)" }
            thead { tr { th { "Version" } th { "sha256" } th { "Status" } th { "Loaded" } @if s.can(Role::Operator) { th { "Action" } } } }
            tbody {
                @for k in v["kept"].as_array().into_iter().flatten() {
                    @let ver = k["version"].as_str().unwrap_or_default();
                    tr data-version=(ver) {
                        td { (ver) }
                        td { (sha(k["sha256"].as_str().unwrap_or_default())) }
                        td {
                            @if ver == live { span.ok { "live" } @if pinned { " · pinned" } }
                            @else { "available" }
                        }
                        td { (time_of(&k["loaded_at"])) }
                        @if s.can(Role::Operator) {
                            td {
                                @if ver != live {
                                    (action_form(s, name, "rollback", Some(ver), &format!("Roll back to {ver}"), &format!("Confirm: roll back to {ver} and pin it")))
                                }
                            }
                        }
                    }
                }
            }
        }
        table {
            caption.muted { "Load attempts (newest first)" }
            thead { tr { th { "Version" } th { "sha256" } th { "Status" } th { "Reason" } th { "When" } } }
            tbody {
                @for a in v["attempts"].as_array().into_iter().flatten() {
                    tr {
                        td { (text(&a["version"])) }
                        td { @if let Some(h) = a["sha256"].as_str() { (sha(h)) } }
                        td { @if a["status"] == "rejected" { span.bad { "rejected" } } @else { (text(&a["status"])) } }
                        td { @if let Some(e) = a["error"].as_str() { (e) } }
                        td { (time_of(&a["created_at"])) }
                    }
                }
            }
        }
        @if v["published"].as_array().is_some_and(|p| !p.is_empty()) {
            table {
                caption.muted { "Published through the API (the fleet's releases)" }
                thead { tr { th { "Version" } th { "sha256" } th { "Review" } th { "Released" } th { "Published" } } }
                tbody {
                    @for p in v["published"].as_array().into_iter().flatten() {
                        tr {
                            td { (text(&p["version"])) }
                            td { @if let Some(h) = p["sha256"].as_str() { (sha(h)) } }
                            td { @if p["status"] == "awaiting-approval" { span.warn { "awaiting approval" } } @else { (text(&p["status"])) } }
                            td { @if p["released"] == json!(true) { span.ok { "released" } } }
                            td { (time_of(&p["published_at"])) }
                        }
                    }
                }
            }
        }
    }
}

fn review(s: &Session, name: &str, awaiting: &[Value]) -> Markup {
    html! {
        h2 { "Awaiting approval" }
        @for one in awaiting {
            @let ver = one["version"].as_str().unwrap_or_default();
            section {
                h3 { (name) "@" (ver) " — capability diff" }
                (layout::json_block(&one["diff"]))
                @if s.can(Role::Admin) {
                    (action_form(s, name, "approve", Some(ver), &format!("Approve {ver}"), "I reviewed this diff"))
                    (action_form(s, name, "reject", Some(ver), &format!("Reject {ver}"), "I reviewed this diff"))
                } @else {
                    p.muted { "An admin key approves or rejects." }
                }
            }
        }
    }
}

/// (allowed calls, denied calls) by (capability, target).
fn used(usage: &[crate::db::AuditUsage]) -> BTreeMap<(String, String), (i64, i64)> {
    let mut m: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for u in usage {
        let e = m
            .entry((u.capability.clone(), u.target.clone().unwrap_or_default()))
            .or_default();
        if u.allowed {
            e.0 += u.calls;
        } else {
            e.1 += u.calls;
        }
    }
    m
}

fn capabilities(info: &Value, usage: &[crate::db::AuditUsage], hours: i64) -> Markup {
    let yes = |b: &Value| if *b == json!(true) { "yes" } else { "—" };
    html! {
        h2 id="grants" { "Capabilities: declared, granted, used" }
        div.side {
            div {
                table {
                    caption.muted { "Manifest and grant" }
                    thead { tr { th { "Capability" } th { "Declared" } th { "Granted" } th { "Effective" } th { "Imported" } } }
                    tbody {
                        @for c in info["capabilities"].as_array().into_iter().flatten() {
                            tr {
                                td { (text(&c["capability"])) }
                                td { (yes(&c["declared"])) }
                                td { (yes(&c["granted"])) }
                                td { (yes(&c["effective"])) }
                                td { (yes(&c["imported"])) }
                            }
                        }
                    }
                }
                h3 { "Grant scopes" }
                (layout::json_block(&info["scopes"]))
            }
            div {
                form.filters method="get" {
                    div {
                        label for="window_hours" { "Window (hours)" }
                        input id="window_hours" name="window_hours" type="number" min="1" value=(hours);
                    }
                    button type="submit" { "Count" }
                }
                table {
                    caption.muted { "Used in the last " (hours) " h (from the audit log)" }
                    thead { tr { th { "Capability" } th { "Target" } th { "Allowed" } th { "Denied" } } }
                    tbody {
                        @for ((cap, target), (ok, denied)) in used(usage) {
                            tr {
                                td { (cap) }
                                td { code { (target) } }
                                td.allowed { (ok) }
                                td { @if denied > 0 { span.denied { (denied) } } @else { "0" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn controls(s: &Session, name: &str, info: &Value) -> Markup {
    html! {
        h2 { "Controls" }
        @if info["pinned"] == json!(true) {
            (action_form(s, name, "unpin", None, "Unpin", "Let the newest delivered version go live"))
        } @else {
            (action_form(s, name, "pin", None, "Pin the live version", "Keep new versions waiting as available"))
        }
        @if info["disabled"] == json!(true) {
            (action_form(s, name, "enable", None, "Enable", "Serve this plugin again"))
        } @else {
            (action_form(s, name, "disable", None, "Disable", "Refuse calls to this plugin"))
        }
    }
}

fn action_form(
    s: &Session,
    name: &str,
    action: &str,
    version: Option<&str>,
    button: &str,
    confirm: &str,
) -> Markup {
    let id = format!("confirm-{action}-{}", version.unwrap_or("live"));
    html! {
        form.inline method="post" action=(format!("/console/plugins/{}/action", enc(name))) {
            (csrf_field(s))
            input type="hidden" name="action" value=(action);
            @if let Some(v) = version { input type="hidden" name="version" value=(v); }
            @if action == "approve" || action == "reject" {
                label for=(format!("note-{id}")) { "Note" }
                input id=(format!("note-{id}")) name="note" type="text";
            }
            (confirm_box(&id, confirm))
            @if matches!(action, "disable" | "reject" | "rollback") {
                button.danger type="submit" { (button) }
            } @else {
                button type="submit" { (button) }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct ActionForm {
    pub action: String,
    pub version: Option<String>,
    pub confirm: Option<String>,
    pub note: Option<String>,
}

/// `POST /console/plugins/{name}/action`: one control, through the JSON route's handler.
pub async fn action(
    State(st): State<AppState>,
    Extension(s): Extension<Session>,
    Extension(rid): Extension<RequestId>,
    Path(name): Path<String>,
    Form(f): Form<ActionForm>,
) -> PageResult {
    if f.confirm.as_deref() != Some("yes") {
        return Err(PageError::bad_request(
            "Nothing was done: tick the confirmation box next to the button.",
        ));
    }
    let version = given(&f.version).map(str::to_string);
    let path = || Path(name.clone());
    match f.action.as_str() {
        "rollback" | "pin" => {
            s.require(Role::Operator)?;
            let body = if f.action == "rollback" {
                json!({ "to": version })
            } else {
                json!({ "version": version })
            };
            let body = Bytes::from(body.to_string());
            if f.action == "rollback" {
                let _ = routes::plugins::rollback(State(st.clone()), path(), body).await?;
            } else {
                let _ = routes::plugins::pin(State(st.clone()), path(), body).await?;
            }
        }
        "unpin" => {
            s.require(Role::Operator)?;
            let _ = routes::plugins::unpin(State(st.clone()), path()).await?;
        }
        "disable" => {
            s.require(Role::Operator)?;
            let _ = routes::plugins::disable(State(st.clone()), path()).await?;
        }
        "enable" => {
            s.require(Role::Operator)?;
            let _ = routes::plugins::enable(State(st.clone()), path()).await?;
        }
        "approve" | "reject" => {
            s.require(Role::Admin)?;
            let Some(v) = version else {
                return Err(PageError::bad_request("which version? (none was sent)"));
            };
            let review = routes::releases::Review::new(
                st.clone(),
                s.caller(),
                Some(rid),
                name.clone(),
                v,
                given(&f.note).map(str::to_string),
            );
            if f.action == "approve" {
                let _ = routes::releases::approve(review).await?;
            } else {
                let _ = routes::releases::reject(review).await?;
            }
        }
        other => {
            return Err(PageError::bad_request(format!("unknown action {other:?}")));
        }
    }
    tracing::info!(plugin = %name, action = %f.action, key = %s.name, "console action");
    Ok(Redirect::to(&format!(
        "/console/plugins/{}?done={}",
        enc(&name),
        f.action
    ))
    .into_response())
}
