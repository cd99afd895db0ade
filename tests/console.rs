//! The operator and reviewer console (issue 24) in a real headless Chromium against a real
//! `strata serve` (`common::browser`): sign-in, a plugin's versions and a rollback, a
//! denied capability call found in the audit, a pipeline run, a score override, sign-out;
//! a reader offered no operator action and refused one server-side; a form without its
//! CSRF token refused; `/api/docs` rendering its operations with networking disabled.
//! Screenshots of every page go to `target/console-screenshots/`. Plus the console's
//! database functions on SQLite and PostgreSQL.

mod common;
mod support;

use common::api_server::{wait_until, Server};
use common::browser::{screenshot_dir, Browser};
use common::pipeline_runs::{intake_commit, intake_run, ok};
use common::*;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;
use strata::db::{AuditFilter, AuditRecord, Role};

/// A console host: the API test server (admin, operator and reader keys; BANT and
/// `stateful`, granted `state`, installed) on a SQLite file.
async fn console_server(tmp: &std::path::Path) -> Server {
    Server::start(
        &sqlite_url(tmp),
        "[grants.stateful]\ncapabilities = [\"state\"]\n",
        |_| {},
    )
    .await
}

/// Signs `key` in through the form, as a person would (on the sign-in page the browser
/// is on, if it is on one: it carries where to go back to).
async fn sign_in(b: &Browser, s: &Server, key: &str) {
    if !b.url().await.contains("/console/signin") {
        b.goto(&format!("{}/console/signin", s.base)).await;
    }
    b.type_into("#key", key).await;
    b.click("main form button[type=submit]").await;
    b.wait_for("header.top .who").await;
}

/// A console session opened over plain HTTP: its cookie and its form token.
struct HttpSession {
    http: reqwest::Client,
    /// `strata_console=<token>`, as a request sends it back.
    cookie: String,
    /// The whole `Set-Cookie` of the sign-in (with its attributes).
    set_cookie: String,
    csrf: String,
}

fn cookie_of(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn csrf_in(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .expect("a form token in the page");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

async fn http_sign_in(s: &Server, key: &str) -> HttpSession {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http
        .get(format!("{}/console/signin", s.base))
        .send()
        .await
        .unwrap();
    let pre = cookie_of(&res, "strata_console_signin").expect("a sign-in cookie");
    let pre = pre.split(';').next().unwrap().to_string();
    let form_token = csrf_in(&res.text().await.unwrap());
    let res = http
        .post(format!("{}/console/signin", s.base))
        .header(COOKIE, &pre)
        .form(&[
            ("key", key),
            ("csrf", form_token.as_str()),
            ("next", "/console"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set = cookie_of(&res, "strata_console").expect("a session cookie");
    let cookie = set.split(';').next().unwrap().to_string();
    let page = http
        .get(format!("{}/console", s.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_in(&page.text().await.unwrap());
    HttpSession {
        http,
        cookie,
        set_cookie: set,
        csrf,
    }
}

impl HttpSession {
    async fn post(&self, s: &Server, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", s.base))
            .header(COOKIE, &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

async fn bant_disabled(s: &Server) -> bool {
    s.json(Method::GET, "/api/v1/plugins/bant", &s.reader, None)
        .await
        .1["disabled"]
        == json!(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_docs_render_the_operations_list_from_embedded_assets_with_networking_disabled() {
    let tmp = tempfile::tempdir().unwrap();
    let s = console_server(tmp.path()).await;
    let html = s
        .req(Method::GET, "/api/docs", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"),
        "the docs page loads everything from this server: {html}"
    );
    for asset in [
        "/api/docs/swagger-ui-bundle.js",
        "/api/docs/swagger-ui.css",
        "/api/openapi.json",
    ] {
        let res = s.req(Method::GET, asset, None).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{asset}");
    }
    let Some(b) = Browser::start().await else {
        s.stop().await;
        return;
    };
    b.goto(&format!("{}/api/docs", s.base)).await;
    b.wait_for(".opblock-summary-path").await;
    let text = b.text().await;
    for op in [
        "/api/v1/leads",
        "/api/v1/plugins/{name}/rollback",
        "/api/v1/audit",
    ] {
        assert!(text.contains(op), "the operations list shows {op}");
    }
    b.screenshot("api-docs").await;
    b.quit().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_rolls_back_finds_a_denied_call_opens_a_run_overrides_a_score_and_signs_out(
) {
    let tmp = tempfile::tempdir().unwrap();
    let s = console_server(tmp.path()).await;
    let op = s.operator.clone();
    // A second version of BANT live, a denied call in the audit, a pipeline run with a
    // layer, a scored lead.
    deploy_version(&s.host.plugins_dir.join("bant"), "bant", "1.1.0");
    wait_until("1.1.0 live", async || {
        s.json(Method::GET, "/api/v1/plugins/bant", &s.reader, None)
            .await
            .1["live_version"]
            == "1.1.0"
    })
    .await;
    s.host
        .db
        .insert_audit(&[AuditRecord {
            at: strata::domain::now_ms(),
            plugin: "stateful".into(),
            plugin_version: "0.1.0".into(),
            capability: "state".into(),
            operation: "set".into(),
            target: Some("forbidden-key".into()),
            allowed: false,
            detail: Some("not granted".into()),
            request_id: Some("req-denied-console".into()),
            ..Default::default()
        }])
        .await
        .unwrap();
    let run = intake_run(&s.host.db, "golden", "lead.received").await;
    s.host
        .db
        .commit_layer_run(&intake_commit(&run, ok(json!({"accepted": true}), vec![])))
        .await
        .unwrap();
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/leads",
            &op,
            Some(serde_json::to_value(hot_lead("console-1")).unwrap()),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = s
        .json(Method::POST, "/api/v1/leads/qualify/console-1", &op, None)
        .await;
    assert!(st.is_success(), "{v}");
    wait_until("console-1 scored", async || {
        s.json(
            Method::GET,
            "/api/v1/leads/scores/console-1",
            &s.reader,
            None,
        )
        .await
        .1["latest"]
            .is_object()
    })
    .await;

    let Some(b) = Browser::start().await else {
        s.stop().await;
        return;
    };
    // Not signed in: the console sends to the sign-in page, and back afterwards.
    b.goto(&format!("{}/console/audit", s.base)).await;
    assert!(
        b.url().await.contains("/console/signin?next="),
        "{}",
        b.url().await
    );
    b.screenshot("signin").await;
    sign_in(&b, &s, &op).await;
    assert!(
        b.url().await.ends_with("/console/audit"),
        "{}",
        b.url().await
    );
    let session = b
        .cookies()
        .await
        .into_iter()
        .find(|c| c["name"] == "strata_console")
        .expect("a session cookie");
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    assert!(
        session["expiry"].is_number(),
        "the session expires: {session}"
    );
    assert!(!b.source().await.contains(&op) && !b.url().await.contains(&op));

    b.goto(&format!("{}/console", s.base)).await;
    let text = b.text().await;
    assert!(
        text.contains("Plugins live") && text.contains("Dead jobs"),
        "{text}"
    );
    b.screenshot("overview").await;

    // A plugin's versions, and a rollback that changes the live one.
    b.goto(&format!("{}/console/plugins", s.base)).await;
    b.screenshot("plugins").await;
    b.click(r#"a[href="/console/plugins/bant"]"#).await;
    b.wait_for(r#"tr[data-version="1.0.0"]"#).await;
    assert!(b
        .text_of(r#"tr[data-version="1.1.0"]"#)
        .await
        .contains("live"));
    assert!(!b
        .text_of(r#"tr[data-version="1.0.0"]"#)
        .await
        .contains("live"));
    b.screenshot("plugin").await;
    b.click(r#"tr[data-version="1.0.0"] input[name="confirm"]"#)
        .await;
    b.click(r#"tr[data-version="1.0.0"] button"#).await;
    b.wait_for("p.notice").await;
    assert!(b
        .text_of(r#"tr[data-version="1.0.0"]"#)
        .await
        .contains("live"));
    assert!(b.text().await.contains("Rolled back"));
    let (_, bant) = s
        .json(Method::GET, "/api/v1/plugins/bant", &s.reader, None)
        .await;
    assert_eq!(
        (&bant["live_version"], &bant["pinned"]),
        (&json!("1.0.0"), &json!(true))
    );

    // The denied call in the audit, one click from the plugin's grant.
    b.goto(&format!("{}/console/audit", s.base)).await;
    b.type_into("#plugin", "stateful").await;
    b.click(r#"#outcome option[value="denied"]"#).await;
    b.click("form.filters button").await;
    b.wait_for(r#"a[href="/console/plugins/stateful#grants"]"#)
        .await;
    let text = b.text().await;
    assert!(
        text.contains("forbidden-key") && text.contains("req-denied-console"),
        "{text}"
    );
    b.screenshot("audit").await;
    b.click(r#"a[href="/console/plugins/stateful#grants"]"#)
        .await;
    b.wait_for("#grants").await;
    assert!(b.url().await.ends_with("/console/plugins/stateful#grants"));

    // A pipeline run with its layer.
    b.goto(&format!("{}/console/pipelines", s.base)).await;
    b.screenshot("pipelines").await;
    b.click(&format!(
        r#"a[href="/console/pipelines/runs/{}"]"#,
        run.run.id
    ))
    .await;
    b.wait_for("ol.timeline li").await;
    let text = b.text().await;
    assert!(
        text.contains("intake") && text.contains("lead.received"),
        "{text}"
    );
    b.screenshot("pipeline-run").await;

    // A score override, recorded as feedback with its reason and who.
    b.goto(&format!("{}/console/leads", s.base)).await;
    b.screenshot("leads").await;
    b.click(r#"a[href="/console/leads/console-1"]"#).await;
    b.wait_for("#reason").await;
    b.type_into("#score", "12").await;
    b.click(r#"#priority option[value="low"]"#).await;
    b.type_into("#reason", "budget frozen (console)").await;
    b.click(r#"form[action="/console/leads/console-1/override"] button"#)
        .await;
    b.wait_for("p.notice").await;
    b.screenshot("lead").await;
    let (_, sc) = s
        .json(
            Method::GET,
            "/api/v1/leads/scores/console-1",
            &s.reader,
            None,
        )
        .await;
    let ov = &sc["latest"]["human_override"];
    assert_eq!(
        (&ov["value"], &ov["priority"], &ov["reason"], &ov["by"]),
        (
            &json!(12.0),
            &json!("low"),
            &json!("budget frozen (console)"),
            &json!("Operator")
        ),
        "{sc}"
    );

    b.goto(&format!("{}/console/strategies", s.base)).await;
    b.screenshot("strategies").await;

    // Sign-out ends the session: the console asks for a key again.
    b.click("header .who button").await;
    b.wait_for("#key").await;
    b.goto(&format!("{}/console", s.base)).await;
    assert!(
        b.url().await.contains("/console/signin"),
        "{}",
        b.url().await
    );
    eprintln!("screenshots in {}", screenshot_dir().display());
    b.quit().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_is_offered_no_operator_action_and_is_refused_one_server_side() {
    let tmp = tempfile::tempdir().unwrap();
    let s = console_server(tmp.path()).await;
    let h = http_sign_in(&s, &s.reader).await;
    let res = h
        .post(
            &s,
            "/console/plugins/bant/action",
            &[
                ("csrf", h.csrf.as_str()),
                ("action", "disable"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!bant_disabled(&s).await, "a reader's form changed nothing");
    let Some(b) = Browser::start().await else {
        s.stop().await;
        return;
    };
    sign_in(&b, &s, &s.reader).await;
    b.goto(&format!("{}/console/plugins/bant", s.base)).await;
    b.wait_for("#versions").await;
    assert!(b
        .all(r#"form[action="/console/plugins/bant/action"]"#)
        .await
        .is_empty());
    let text = b.text().await;
    assert!(
        !text.contains("Roll back") && !text.contains("Disable"),
        "{text}"
    );
    b.screenshot("plugin-as-reader").await;
    b.goto(&format!("{}/console/pipelines", s.base)).await;
    assert!(b
        .all(r#"form[action="/console/pipelines"][method="post"]"#)
        .await
        .is_empty());
    b.quit().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_post_without_its_csrf_token_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = console_server(tmp.path()).await;
    let h = http_sign_in(&s, &s.operator).await;
    for form in [
        vec![("action", "disable"), ("confirm", "yes")],
        vec![
            ("csrf", "0".repeat(64).leak() as &str),
            ("action", "disable"),
            ("confirm", "yes"),
        ],
    ] {
        let res = h.post(&s, "/console/plugins/bant/action", &form).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(!bant_disabled(&s).await);
    }
    // Sign-in is a form too: without the token bound to its cookie, no session.
    let res = h
        .http
        .post(format!("{}/console/signin", s.base))
        .form(&[("key", s.operator.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(cookie_of(&res, "strata_console").is_none());
    // With its token the same form is done (the check refuses only what it should).
    let res = h
        .post(
            &s,
            "/console/plugins/bant/action",
            &[
                ("csrf", h.csrf.as_str()),
                ("action", "disable"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(bant_disabled(&s).await);
    // Signed out, the cookie opens nothing.
    let res = h
        .post(&s, "/console/signout", &[("csrf", h.csrf.as_str())])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = h
        .http
        .get(format!("{}/console", s.base))
        .header(COOKIE, &h.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_http_only_strict_expiring_and_secure_behind_https() {
    let tmp = tempfile::tempdir().unwrap();
    let s = console_server(tmp.path()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http
        .get(format!("{}/console/signin", s.base))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let pre = cookie_of(&res, "strata_console_signin").unwrap();
    let token = csrf_in(&res.text().await.unwrap());
    let res = http
        .post(format!("{}/console/signin", s.base))
        .header("x-forwarded-proto", "https")
        .header(COOKIE, pre.split(';').next().unwrap())
        .form(&[("key", s.operator.as_str()), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    let set = cookie_of(&res, "strata_console").expect("a session cookie");
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Max-Age=28800",
        "Path=/console",
    ] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains(&s.operator));
    // Plain HTTP (no proxy saying https): not Secure, or the browser would drop it.
    let h = http_sign_in(&s, &s.operator).await;
    assert!(!h.set_cookie.contains("Secure"), "{}", h.set_cookie);
    // A wrong key: no session, and the key is not echoed.
    let res = http
        .get(format!("{}/console/signin", s.base))
        .send()
        .await
        .unwrap();
    let pre = cookie_of(&res, "strata_console_signin").unwrap();
    let token = csrf_in(&res.text().await.unwrap());
    let wrong = "strata_0000000000000000000000000000000000000000";
    let res = http
        .post(format!("{}/console/signin", s.base))
        .header(COOKIE, pre.split(';').next().unwrap())
        .form(&[("key", wrong), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(cookie_of(&res, "strata_console").is_none());
    assert!(!res.text().await.unwrap().contains(wrong));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_at_expiry_sign_out_revocation_or_a_later_sweep_and_audit_pages_never_repeat_a_row(
) {
    support::both_backends(|db| async move {
        let (key, _) = strata::server::auth::create_key(&db, "console", Role::Operator)
            .await
            .unwrap();
        let now = strata::domain::now_ms();
        db.insert_console_session("a", &key.id, now, now + 60_000)
            .await
            .unwrap();
        db.insert_console_session("b", &key.id, now, now + 60_000)
            .await
            .unwrap();
        db.insert_console_session("old", &key.id, now - 120_000, now - 60_000)
            .await
            .unwrap();
        let found = db.find_console_session("a", now).await.unwrap().unwrap();
        assert_eq!(
            (found.key_id.as_str(), found.role),
            (key.id.as_str(), Role::Operator)
        );
        assert!(
            db.find_console_session("old", now).await.unwrap().is_none(),
            "expired"
        );
        assert!(
            db.find_console_session("a", now + 60_000)
                .await
                .unwrap()
                .is_none(),
            "expired later"
        );
        db.delete_console_session("a", now).await.unwrap();
        assert!(
            db.find_console_session("a", now).await.unwrap().is_none(),
            "signed out"
        );
        assert!(
            db.find_console_session("b", now).await.unwrap().is_some(),
            "others stay"
        );
        // A later sign-in sweeps the sessions expired by then (b, found above, is gone).
        db.insert_console_session("c", &key.id, now + 60_000, now + 120_000)
            .await
            .unwrap();
        assert!(
            db.find_console_session("b", now).await.unwrap().is_none(),
            "swept by a later sign-in"
        );
        assert!(db
            .find_console_session("c", now + 60_000)
            .await
            .unwrap()
            .is_some());
        db.revoke_api_key(&key.id).await.unwrap();
        assert!(
            db.find_console_session("c", now + 60_000)
                .await
                .unwrap()
                .is_none(),
            "key revoked"
        );

        // 7 rows, three at the same millisecond: pages of 2 by (at, id) cover each once.
        let rec = |at: i64, allowed: bool, target: &str| AuditRecord {
            at,
            plugin: "p".into(),
            plugin_version: "1.0.0".into(),
            capability: "state".into(),
            operation: "get".into(),
            target: Some(target.into()),
            allowed,
            count: 1,
            ..Default::default()
        };
        let mut rows = vec![
            rec(1_000, true, "a"),
            rec(1_000, true, "a"),
            rec(1_000, false, "b"),
        ];
        rows.extend((1..=4).map(|i| rec(1_000 + i, true, "a")));
        db.insert_audit(&rows).await.unwrap();
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = db
                .list_audit(&AuditFilter {
                    plugin: Some("p".into()),
                    limit: 2,
                    before,
                    ..Default::default()
                })
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            seen.extend(page.iter().map(|r| r.id));
            let last = page.last().unwrap();
            before = Some((last.record.at, last.id));
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((seen.len(), unique.len()), (7, 7), "{seen:?}");
        let usage = db.audit_usage("p", 0, 100).await.unwrap();
        let calls = |target: &str, allowed: bool| {
            usage
                .iter()
                .find(|u| u.target.as_deref() == Some(target) && u.allowed == allowed)
                .map(|u| u.calls)
        };
        assert_eq!(
            (calls("a", true), calls("b", false), calls("b", true)),
            (Some(6), Some(1), None)
        );
    })
    .await;
}

/// bant's manifest as `version`, declaring `state`: a version that waits for an admin.
fn bant_with_state(version: &str) -> String {
    let m = std::fs::read_to_string(plugin_source("bant").join("plugin.toml")).unwrap();
    let m = m.replacen(
        "version = \"1.0.0\"",
        &format!("version = \"{version}\""),
        1,
    );
    assert!(m.contains(version));
    format!("{m}\n[capabilities.state]\nmax_keys = 100\n")
}

/// The audit row of bant 1.1.0's approval, once the audit sink has written it.
async fn approval_audit(s: &Server) -> Option<strata::db::StoredAudit> {
    s.host
        .db
        .list_audit(&AuditFilter {
            plugin: Some("bant".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.record.operation == "approve" && a.record.plugin_version == "1.1.0")
}

/// A published version's review status, as the API reports it.
async fn review_status(s: &Server, version: &str) -> serde_json::Value {
    let path = format!("/api/v1/plugins/bant/versions/{version}");
    s.json(Method::GET, &path, &s.reader, None).await.1["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_approves_one_awaiting_version_and_rejects_another_from_the_plugin_page() {
    let tmp = tempfile::tempdir().unwrap();
    let s = console_server(tmp.path()).await;
    // 1.0.0 published and released; 1.1.0 and 1.2.0 declare `state` and wait.
    let wasm = wasm_of("bant");
    let manifest = std::fs::read_to_string(plugin_source("bant").join("plugin.toml")).unwrap();
    let (st, _, v) = common::publish::publish(
        &s.base,
        &s.operator,
        "bant",
        common::publish::form(&manifest, wasm.clone(), &[]),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    s.host
        .db
        .set_release_state("bant", "1.0.0", false, None)
        .await
        .unwrap();
    for version in ["1.1.0", "1.2.0"] {
        let (st, _, v) = common::publish::publish(
            &s.base,
            &s.operator,
            "bant",
            common::publish::form(&bant_with_state(version), wasm.clone(), &[]),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        assert_eq!(v["status"], "awaiting-approval", "{v}");
    }

    // An operator sees the diff but is offered no review.
    let h = http_sign_in(&s, &s.operator).await;
    let page = h
        .http
        .get(format!("{}/console/plugins/bant", s.base))
        .header(COOKIE, &h.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Awaiting approval") && page.contains("An admin key approves or rejects."),
        "{page}"
    );
    assert!(!page.contains(r#"value="approve""#), "{page}");

    let Some(b) = Browser::start().await else {
        s.stop().await;
        return;
    };
    sign_in(&b, &s, &s.admin).await;
    b.goto(&format!("{}/console/plugins/bant", s.base)).await;
    b.wait_for(r#"input[id="confirm-approve-1.1.0"]"#).await;
    let text = b.text().await;
    assert!(
        text.contains("bant@1.1.0 — capability diff") && text.contains("state"),
        "{text}"
    );
    b.screenshot("review").await;

    // Approve 1.1.0 with a note, after ticking the confirmation.
    b.type_into(
        r#"input[id="note-confirm-approve-1.1.0"]"#,
        "state reviewed (console)",
    )
    .await;
    b.click(r#"input[id="confirm-approve-1.1.0"]"#).await;
    b.click(r#"form:has(input[id="confirm-approve-1.1.0"]) button"#)
        .await;
    wait_until("the approval's page", async || {
        b.url().await.contains("done=approve")
    })
    .await;
    b.wait_for("p.notice").await;
    assert!(b.text().await.contains("Approved."));
    assert_eq!(review_status(&s, "1.1.0").await, "approved");
    assert_eq!(review_status(&s, "1.2.0").await, "awaiting-approval");

    // Reject 1.2.0: the page offers it alone now.
    assert!(b
        .all(r#"input[id="confirm-approve-1.1.0"]"#)
        .await
        .is_empty());
    b.click(r#"input[id="confirm-reject-1.2.0"]"#).await;
    b.click(r#"form:has(input[id="confirm-reject-1.2.0"]) button"#)
        .await;
    wait_until("the rejection's page", async || {
        b.url().await.contains("done=reject")
    })
    .await;
    b.wait_for("p.notice").await;
    assert!(b.text().await.contains("Rejected."));
    assert_eq!(review_status(&s, "1.2.0").await, "rejected");
    assert!(!b.text().await.contains("Awaiting approval"));

    // Both decisions are audited under the admin's key, the note with the approval.
    wait_until("the approval audited", async || {
        approval_audit(&s).await.is_some()
    })
    .await;
    let approval = approval_audit(&s).await.unwrap();
    assert!(approval.record.allowed);
    assert!(
        approval
            .record
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("state reviewed (console)")),
        "{:?}",
        approval.record
    );
    b.quit().await;
    s.stop().await;
}
