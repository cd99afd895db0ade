//! MCP against real peers: the host's client manager with
//! `@modelcontextprotocol/server-everything` over stdio and streamable HTTP, a server that
//! crashes mid-call, one that hangs (`tests/mcp-peers/hang.mjs`), one whose HTTP endpoint
//! disappears; and Strata's own MCP server, as the `strata` binary over stdio and
//! in-process over HTTP, on a seeded SQLite database.
//!
//! The npm peers come from `scripts/test.sh` (`npm ci --prefix tests/mcp-peers`); without
//! them these tests fail and say so. No test asserts a duration: the machine is shared
//! and noisy; short timeouts appear only where a timeout has to happen.

mod common;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata::db::Db;
use strata::mcp::{McpError, McpManager, McpServerSettings, McpSettings, ServerStatus};

// ---------------------------------------------------------------------------------------
// Peers

fn peers_dir() -> PathBuf {
    common::repo_root().join("tests/mcp-peers")
}

/// `node` and the installed server-everything entry point, or a failure saying how to
/// install them.
fn everything_js() -> String {
    let hint = "run scripts/test.sh (it installs Node.js and the MCP test peers with \
                `npm ci --prefix tests/mcp-peers`)";
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(node_ok, "`node` is not installed: {hint}");
    let js = peers_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(js.exists(), "{} is missing: {hint}", js.display());
    js.display().to_string()
}

fn everything_stdio() -> McpServerSettings {
    McpServerSettings::stdio("node", &[&everything_js(), "stdio"])
}

fn hang_stdio() -> McpServerSettings {
    let _ = everything_js(); // node present
    let script = peers_dir().join("hang.mjs").display().to_string();
    McpServerSettings::stdio("node", &[&script])
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// server-everything over streamable HTTP on a loopback port (the preload keeps it off
/// other interfaces); killed on drop.
struct EverythingHttp {
    child: tokio::process::Child,
    port: u16,
}

impl EverythingHttp {
    async fn start_on(port: u16) -> EverythingHttp {
        let js = everything_js();
        let loopback = peers_dir().join("loopback.mjs");
        let child = tokio::process::Command::new("node")
            .arg("--import")
            .arg(&loopback)
            .arg(&js)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start server-everything over HTTP");
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "server-everything did not listen on 127.0.0.1:{port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        EverythingHttp { child, port }
    }

    async fn start() -> EverythingHttp {
        Self::start_on(free_port()).await
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn settings(servers: Vec<(&str, McpServerSettings)>) -> McpSettings {
    let mut s = McpSettings::default();
    for (name, cfg) in servers {
        s.servers.insert(name.to_string(), cfg);
    }
    s.validate().expect("valid MCP settings");
    s
}

fn status_of(m: &McpManager, name: &str) -> ServerStatus {
    m.status()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no status for {name}"))
}

fn pid_alive(pid: u32) -> bool {
    // A zombie still has /proc/<pid>; its state is Z.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

async fn wait_dead(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while pid_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The standard checks against server-everything: tools listed, echo and get-sum.
async fn echo_and_sum(m: &McpManager, server: &str) {
    let tools = m.list_tools(server).await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    for want in ["echo", "get-sum", "trigger-long-running-operation"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let echo = tools.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!(echo.input_schema["type"], "object");
    assert!(echo.input_schema["properties"]["message"].is_object());
    assert!(echo.description.is_some());

    let out = m
        .call_tool(server, "echo", json!({"message": "héllo, MCP"}))
        .await
        .unwrap();
    assert!(!out.is_error, "{out:?}");
    assert_eq!(out.text, "Echo: héllo, MCP");

    let out = m
        .call_tool(server, "get-sum", json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    assert!(!out.is_error, "{out:?}");
    assert!(out.text.contains("42"), "{}", out.text);

    // A bad argument type: a tool error result or a JSON-RPC refusal, never a transport
    // failure, and the server keeps serving.
    match m
        .call_tool(server, "get-sum", json!({"a": "two", "b": 40}))
        .await
    {
        Ok(out) => assert!(out.is_error, "{out:?}"),
        Err(e) => assert!(matches!(e, McpError::ToolError { .. }), "{e:?}"),
    }
    let e = m
        .call_tool(server, "echo", json!(["not", "an", "object"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, McpError::ToolError { message, .. } if message.contains("JSON object")),
        "{e:?}"
    );
    let st = status_of(m, server);
    assert!(st.connected, "{st:?}");
    assert_eq!(st.tool_count, Some(tools.len()));
    assert_eq!(st.restarts, 0);
    assert!(st.last_latency_ms.is_some());
    assert_eq!(st.consecutive_failures, 0, "{st:?}");
}

// ---------------------------------------------------------------------------------------
// The client manager against server-everything and misbehaving peers

#[tokio::test]
async fn everything_over_stdio_lists_tools_and_calls_echo_and_get_sum() {
    let m = McpManager::new(&settings(vec![("everything", everything_stdio())]));
    assert_eq!(m.servers(), ["everything"]);
    assert!(!status_of(&m, "everything").connected, "no I/O before use");
    m.connect_all().await;
    let st = status_of(&m, "everything");
    assert!(st.connected, "{st:?}");
    assert_eq!(st.transport, "stdio");
    let pid = st.pid.expect("a child pid");
    assert!(pid_alive(pid));
    echo_and_sum(&m, "everything").await;
    m.check("everything").await.unwrap();

    // Shutdown kills the child; later calls fail cleanly.
    m.shutdown().await;
    wait_dead(pid).await;
    let st = status_of(&m, "everything");
    assert!(!st.connected && st.pid.is_none(), "{st:?}");
    let e = m
        .call_tool("everything", "echo", json!({"message": "x"}))
        .await
        .unwrap_err();
    assert!(matches!(e, McpError::Unavailable { .. }), "{e:?}");
}

#[tokio::test]
async fn everything_over_http_lists_tools_and_calls_echo_and_get_sum() {
    let peer = EverythingHttp::start().await;
    let m = McpManager::new(&settings(vec![(
        "everything",
        McpServerSettings::http(peer.url()),
    )]));
    echo_and_sum(&m, "everything").await;
    let st = status_of(&m, "everything");
    assert_eq!(st.transport, "http");
    assert_eq!(st.pid, None);
    m.check("everything").await.unwrap();
    m.shutdown().await;
    peer.stop().await;
}

#[tokio::test]
async fn http_auth_header_comes_from_the_named_variable_and_is_never_shown() {
    const VAR: &str = "STRATA_TEST_MCP_TOKEN";
    const SECRET: &str = "Bearer mcp-test-SECRET-7f3a9";
    const UNSET: &str = "STRATA_TEST_MCP_TOKEN_NEVER_SET";
    std::env::set_var(VAR, SECRET);
    let peer = EverythingHttp::start().await;
    let mut with = McpServerSettings::http(peer.url());
    with.auth_header_env = Some(VAR.into());
    let mut without = McpServerSettings::http(peer.url());
    without.auth_header_env = Some(UNSET.into());
    let m = McpManager::new(&settings(vec![("with", with), ("without", without)]));
    let out = m
        .call_tool("with", "echo", json!({"message": "authorised"}))
        .await
        .unwrap();
    assert_eq!(out.text, "Echo: authorised");
    let e = m.list_tools("without").await.unwrap_err();
    assert!(
        matches!(&e, McpError::Unavailable { reason, .. } if reason.contains(UNSET)),
        "{e:?}"
    );
    let shown = format!("{:?} {}", m.status(), e);
    assert!(!shown.contains("SECRET"), "{shown}");
    m.shutdown().await;
    peer.stop().await;
}

#[tokio::test]
async fn a_stdio_server_that_crashes_mid_call_fails_clearly_and_the_next_call_respawns() {
    let m = McpManager::new(&settings(vec![("everything", everything_stdio())]));
    m.list_tools("everything").await.unwrap();
    let first = status_of(&m, "everything");
    let pid = first.pid.expect("pid");

    let call = {
        let m = m.clone();
        tokio::spawn(async move {
            m.call_tool(
                "everything",
                "trigger-long-running-operation",
                json!({"duration": 60, "steps": 60}),
            )
            .await
        })
    };
    // Let the call reach the server, then kill the server under it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let e = call.await.unwrap().unwrap_err();
    match &e {
        McpError::Unavailable { server, reason } => {
            assert_eq!(server, "everything");
            assert!(reason.contains("connection lost"), "{reason}");
            assert!(reason.contains("signal 9"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let st = status_of(&m, "everything");
    assert!(!st.connected, "{st:?}");
    assert!(
        st.last_error.as_deref().unwrap_or("").contains("signal 9"),
        "{st:?}"
    );

    // The next call respawns the server and succeeds.
    let out = m
        .call_tool("everything", "echo", json!({"message": "again"}))
        .await
        .unwrap();
    assert_eq!(out.text, "Echo: again");
    let st = status_of(&m, "everything");
    assert!(st.connected, "{st:?}");
    assert_eq!(st.restarts, 1, "{st:?}");
    assert_ne!(st.pid, Some(pid), "a new process");
    assert!(st.tool_count.unwrap_or(0) > 0);
    assert!(
        st.last_error.as_deref().unwrap_or("").contains("signal 9"),
        "the last error is kept for diagnosis: {st:?}"
    );
    assert_eq!(st.consecutive_failures, 0);
    let new_pid = st.pid.unwrap();
    drop(m); // dropping the manager kills the child too
    wait_dead(new_pid).await;
}

#[tokio::test]
async fn a_hung_server_times_out_then_opens_its_breaker_and_other_servers_still_serve() {
    let mut hang = hang_stdio();
    hang.timeout_ms = Some(1000);
    let mut s = settings(vec![("hang", hang), ("everything", everything_stdio())]);
    s.breaker_failures = 2;
    s.breaker_cooldown_ms = 600_000;
    let m = McpManager::new(&s);
    m.connect_all().await;
    assert!(status_of(&m, "hang").connected);
    assert_eq!(m.list_tools("hang").await.unwrap()[0].name, "never_answers");

    for _ in 0..2 {
        let e = m
            .call_tool("hang", "never_answers", json!({}))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            McpError::Timeout {
                server: "hang".into(),
                tool: "never_answers".into(),
                ms: 1000
            }
        );
        // Meanwhile the other server answers.
        let out = m
            .call_tool("everything", "echo", json!({"message": "still here"}))
            .await
            .unwrap();
        assert_eq!(out.text, "Echo: still here");
    }
    let st = status_of(&m, "hang");
    assert!(
        st.last_error.as_deref().unwrap_or("").contains("timed out"),
        "{st:?}"
    );
    assert_eq!(st.consecutive_failures, 2);
    assert_eq!(st.breaker, strata::mcp::BreakerState::Open);
    assert!(st.connected, "a timeout does not drop the session");

    let e = m
        .call_tool("hang", "never_answers", json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        McpError::CircuitOpen {
            server: "hang".into()
        }
    );
    assert!(e.is_transient());
    assert_eq!(
        status_of(&m, "everything").breaker,
        strata::mcp::BreakerState::Closed
    );
    m.shutdown().await;
}

#[tokio::test]
async fn unknown_servers_bad_commands_and_side_effect_globs() {
    let mut crm = everything_stdio();
    crm.side_effect_tools = vec!["update_*".into(), "qualify_?ead".into()];
    let mut s = settings(vec![
        ("crm", crm),
        (
            "missing",
            McpServerSettings::stdio("/nonexistent/strata-mcp-peer", &[]),
        ),
    ]);
    s.backoff_initial_ms = 600_000;
    s.backoff_max_ms = 600_000;
    let m = McpManager::new(&s);

    let e = m.list_tools("nope").await.unwrap_err();
    assert_eq!(e, McpError::UnknownServer("nope".into()));
    assert_eq!(e.kind(), "unknown_server");
    let e = m.call_tool("nope", "x", json!({})).await.unwrap_err();
    assert_eq!(e, McpError::UnknownServer("nope".into()));
    assert!(m.check("nope").await.is_err());

    assert!(m.is_side_effecting("crm", "update_lead"));
    assert!(m.is_side_effecting("crm", "qualify_lead"));
    assert!(!m.is_side_effecting("crm", "get_lead"));
    assert!(!m.is_side_effecting("nope", "update_lead"));

    // connect_all never fails; the bad command is recorded.
    m.connect_all().await;
    let st = status_of(&m, "missing");
    assert!(!st.connected);
    assert!(
        st.last_error
            .as_deref()
            .unwrap_or("")
            .contains("cannot start"),
        "{st:?}"
    );
    assert!(status_of(&m, "crm").connected);
    // The first retry after a failure is immediate, then one attempt per window.
    let e = m.list_tools("missing").await.unwrap_err();
    assert!(
        matches!(&e, McpError::Unavailable { reason, .. } if reason.contains("cannot start")),
        "{e:?}"
    );
    let e = m.list_tools("missing").await.unwrap_err();
    assert!(
        matches!(&e, McpError::Unavailable { reason, .. } if reason.contains("backing off")),
        "{e:?}"
    );
    assert_eq!(status_of(&m, "missing").restarts, 0);
    m.shutdown().await;
}

#[tokio::test]
async fn an_http_server_that_goes_away_fails_the_call_and_the_next_call_reconnects() {
    let peer = EverythingHttp::start().await;
    let port = peer.port;
    let m = McpManager::new(&settings(vec![(
        "web",
        McpServerSettings::http(peer.url()),
    )]));
    let out = m
        .call_tool("web", "echo", json!({"message": "one"}))
        .await
        .unwrap();
    assert_eq!(out.text, "Echo: one");

    peer.stop().await;
    let e = m
        .call_tool("web", "echo", json!({"message": "two"}))
        .await
        .unwrap_err();
    match &e {
        McpError::Unavailable { server, reason } => {
            assert_eq!(server, "web");
            assert!(!reason.contains("rmcp::"), "no type names: {reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let st = status_of(&m, "web");
    assert!(st.last_error.is_some(), "{st:?}");

    // The server comes back (its sessions are gone): the manager opens a new one.
    let peer = EverythingHttp::start_on(port).await;
    let mut last = None;
    for _ in 0..20 {
        match m
            .call_tool("web", "echo", json!({"message": "three"}))
            .await
        {
            Ok(out) => {
                last = Some(out);
                break;
            }
            Err(e) => {
                // Only a reconnect window may stand in the way.
                assert!(e.is_transient(), "{e:?}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    assert_eq!(last.expect("reconnected").text, "Echo: three");
    let st = status_of(&m, "web");
    assert!(st.connected, "{st:?}");
    m.shutdown().await;
    peer.stop().await;
}

// ---------------------------------------------------------------------------------------
// Strata's own MCP server

async fn seeded_db(dir: &std::path::Path) -> (Db, String) {
    let url = common::sqlite_url(dir);
    let db = Db::connect(&url, &Default::default()).await.unwrap();
    db.migrate().await.unwrap();
    let mut lead = common::hot_lead("L-1");
    lead.attributes.insert("region".into(), "EMEA".into());
    lead.attributes.insert("tier".into(), "gold".into());
    db.upsert_leads(&[lead, common::hot_lead("L-2")])
        .await
        .unwrap();
    let score = strata::domain::Score {
        value: 87.5,
        priority: strata::domain::Priority::High,
        recommended_action: "call this week".into(),
        reasoning: "budget and timeline fit".into(),
        confidence: 0.8,
        factors: vec![strata::domain::Factor {
            name: "budget".into(),
            score: 90.0,
        }],
    };
    db.insert_score(&strata::db::NewScore::new("L-1", "bant@0.1.0", score))
        .await
        .unwrap();
    db.set_override(
        &strata::db::OverrideTarget::LatestOfLead("L-1".into()),
        &strata::domain::ScoreOverride {
            value: Some(95.0),
            priority: None,
            by: "dana".into(),
            reason: "met them".into(),
            at: strata::domain::now_ms(),
        },
    )
    .await
    .unwrap();
    (db, url)
}

fn structured(out: &strata::mcp::ToolOutput) -> Value {
    assert!(!out.is_error, "tool failed: {}", out.text);
    out.structured.clone().expect("structured content")
}

/// Every tool of Strata's server through `m`'s server `crm`; `db` is the same database.
async fn exercise_strata_server(m: &McpManager, db: &Db) {
    let tools = m.list_tools("crm").await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "get_company",
            "get_lead",
            "get_lead_score",
            "list_leads",
            "qualify_lead",
            "update_lead",
            "upsert_lead"
        ]
    );
    let update = tools.iter().find(|t| t.name == "update_lead").unwrap();
    assert!(update.input_schema["properties"]["attributes"].is_object());
    assert!(m.is_side_effecting("crm", "update_lead"));
    assert!(!m.is_side_effecting("crm", "get_lead"));

    let lead = structured(
        &m.call_tool("crm", "get_lead", json!({"id": "L-1"}))
            .await
            .unwrap(),
    );
    assert_eq!(lead["id"], "L-1");
    assert_eq!(lead["company"], "Acme Robotics");
    assert_eq!(lead["attributes"]["region"], "EMEA");

    let page = structured(
        &m.call_tool("crm", "list_leads", json!({"status": "new", "limit": 1}))
            .await
            .unwrap(),
    );
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    let updated = structured(
        &m.call_tool(
            "crm",
            "update_lead",
            json!({"id": "L-1", "status": "Contacted", "notes": "called, wants a demo",
                   "attributes": {"tier": "platinum", "region": null, "owner": "dana"}}),
        )
        .await
        .unwrap(),
    );
    assert_eq!(updated["status"], "contacted");
    assert_eq!(updated["notes"], "called, wants a demo");
    // The database changed, and only those fields.
    let stored = db.get_lead("L-1").await.unwrap().unwrap();
    assert_eq!(stored.status, strata::domain::LeadStatus::Contacted);
    assert_eq!(stored.notes.as_deref(), Some("called, wants a demo"));
    let attrs: BTreeMap<&str, &str> = stored
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        attrs,
        BTreeMap::from([("owner", "dana"), ("tier", "platinum")])
    );
    assert_eq!(stored.company.as_deref(), Some("Acme Robotics"));

    // upsert_lead creates, then merges only the given fields; get_company aggregates.
    let up = structured(
        &m.call_tool(
            "crm",
            "upsert_lead",
            json!({"id": "L-9", "name": "Bo", "company": "Acme Robotics", "employees": 900}),
        )
        .await
        .unwrap(),
    );
    assert_eq!(up["created"], true);
    let up = structured(
        &m.call_tool("crm", "upsert_lead", json!({"id": "L-9", "title": "CTO"}))
            .await
            .unwrap(),
    );
    assert_eq!(
        (up["created"].clone(), up["lead"]["name"].clone()),
        (json!(false), json!("Bo"))
    );
    assert_eq!(up["lead"]["title"], "CTO");
    assert!(m.is_side_effecting("crm", "qualify_lead"));
    let company = structured(
        &m.call_tool("crm", "get_company", json!({"company": "acme robotics"}))
            .await
            .unwrap(),
    );
    assert_eq!(company["lead_count"], 3, "L-1, L-2 and L-9: {company}");
    assert_eq!(company["employees"], 900);
    assert!(company["lead_ids"]
        .as_array()
        .unwrap()
        .contains(&json!("L-9")));

    let score = structured(
        &m.call_tool("crm", "get_lead_score", json!({"lead_id": "L-1"}))
            .await
            .unwrap(),
    );
    assert_eq!(score["score"]["score"]["value"], 87.5);
    assert_eq!(score["score"]["strategy"], "bant@0.1.0");
    assert_eq!(score["human_override"]["value"], 95.0);
    assert_eq!(score["human_override"]["by"], "dana");
    let none = structured(
        &m.call_tool("crm", "get_lead_score", json!({"lead_id": "L-2"}))
            .await
            .unwrap(),
    );
    assert!(none["score"].is_null(), "{none}");

    let job = structured(
        &m.call_tool(
            "crm",
            "qualify_lead",
            json!({"lead_id": "L-2", "strategy": "xeducation"}),
        )
        .await
        .unwrap(),
    );
    let job_id = job["job_id"].as_str().unwrap();
    assert_eq!(job["status"], "queued");
    let row = db.get_job(job_id).await.unwrap().expect("a job row");
    assert_eq!(row.kind, "qualify");
    assert_eq!(row.payload["lead_id"], "L-2");
    assert_eq!(row.payload["strategy"], "xeducation");
    let default = structured(
        &m.call_tool("crm", "qualify_lead", json!({"lead_id": "L-1"}))
            .await
            .unwrap(),
    );
    let row = db
        .get_job(default["job_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.payload["strategy"], "bant", "the default scorer");

    // Failures are tool errors with clear text; the session keeps serving.
    for (tool, args, want) in [
        ("get_lead", json!({"id": "nope"}), "no lead \"nope\""),
        (
            "update_lead",
            json!({"id": "nope", "notes": "x"}),
            "no lead \"nope\"",
        ),
        (
            "get_lead_score",
            json!({"lead_id": "nope"}),
            "no lead \"nope\"",
        ),
        (
            "qualify_lead",
            json!({"lead_id": "nope"}),
            "no lead \"nope\"",
        ),
        (
            "update_lead",
            json!({"id": "L-1", "status": "hot"}),
            "unknown status \"hot\"",
        ),
        ("update_lead", json!({"id": "L-1"}), "nothing to update"),
        ("list_leads", json!({"limit": 100000}), "limit"),
    ] {
        let out = m.call_tool("crm", tool, args.clone()).await.unwrap();
        assert!(out.is_error, "{tool} {args}: {out:?}");
        assert!(out.text.contains(want), "{tool} {args}: {}", out.text);
    }
    // A field update_lead does not take is refused by the schema.
    match m
        .call_tool(
            "crm",
            "update_lead",
            json!({"id": "L-1", "company": "Evil"}),
        )
        .await
    {
        Ok(out) => assert!(out.is_error, "{out:?}"),
        Err(e) => assert!(matches!(e, McpError::ToolError { .. }), "{e:?}"),
    }
    assert_eq!(
        db.get_lead("L-1")
            .await
            .unwrap()
            .unwrap()
            .company
            .as_deref(),
        Some("Acme Robotics")
    );
    assert_eq!(
        db.get_lead("L-1").await.unwrap().unwrap().status,
        strata::domain::LeadStatus::Contacted
    );
}

#[tokio::test]
async fn strata_mcp_server_over_stdio_as_the_strata_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, url) = seeded_db(tmp.path()).await;
    let mut crm = McpServerSettings::stdio(
        env!("CARGO_BIN_EXE_strata"),
        &["mcp", "serve", "--transport", "stdio"],
    );
    crm.env.insert("STRATA_DATABASE__URL".into(), url);
    crm.env
        .insert("STRATA_LOG".into(), "warn,strata=info".into());
    crm.cwd = Some(tmp.path().to_path_buf());
    crm.side_effect_tools = vec!["update_*".into(), "qualify_*".into()];
    let m = McpManager::new(&settings(vec![("crm", crm)]));
    exercise_strata_server(&m, &db).await;
    let pid = status_of(&m, "crm").pid.unwrap();
    m.shutdown().await;
    wait_dead(pid).await;
    db.close().await;
}

#[tokio::test]
async fn strata_mcp_server_builtin_runs_in_process_on_the_hosts_database() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, _url) = seeded_db(tmp.path()).await;
    let mut crm = McpServerSettings::builtin();
    crm.side_effect_tools = vec!["update_*".into(), "qualify_*".into()];
    let crm_db = strata::mcp::BuiltinCrm::new(db.clone(), Default::default());
    let m = McpManager::with_builtin(&settings(vec![("crm", crm)]), Some(crm_db));
    exercise_strata_server(&m, &db).await;
    let status = status_of(&m, "crm");
    assert_eq!(status.transport, "builtin");
    assert!(status.connected);
    assert_eq!(status.pid, None, "no child process");
    assert!(m.is_side_effecting("crm", "update_lead"));
    // Tool calls run in process, without JSON-RPC: every tool the server lists is
    // dispatched (with no arguments: a tool error naming what is missing, or a listing) ...
    for tool in m.list_tools("crm").await.unwrap() {
        if let Err(e) = m.call_tool("crm", &tool.name, json!({})).await {
            panic!("{} is not dispatched in process: {e}", tool.name);
        }
    }
    // ... and a tool it does not have is refused by name.
    let e = m
        .call_tool("crm", "drop_tables", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(e, McpError::ToolError { .. }) && e.to_string().contains("drop_tables"),
        "{e}"
    );
    m.shutdown().await;
    db.close().await;
}

#[tokio::test]
async fn a_builtin_server_without_the_hosts_database_fails_to_connect_with_the_reason() {
    let m = McpManager::new(&settings(vec![("crm", McpServerSettings::builtin())]));
    let e = m.list_tools("crm").await.unwrap_err().to_string();
    assert!(e.contains("builtin") && e.contains("database"), "{e}");
    m.shutdown().await;
}

#[tokio::test]
async fn strata_mcp_server_over_http_in_process_needs_an_operator_key() {
    const KEY_VAR: &str = "STRATA_TEST_MCP_OPERATOR_KEY";
    const READER_VAR: &str = "STRATA_TEST_MCP_READER_KEY";
    let tmp = tempfile::tempdir().unwrap();
    let (db, _url) = seeded_db(tmp.path()).await;
    let (_, operator) =
        strata::server::auth::create_key(&db, "mcp-operator", strata::db::Role::Operator)
            .await
            .unwrap();
    let (_, reader) = strata::server::auth::create_key(&db, "mcp-reader", strata::db::Role::Reader)
        .await
        .unwrap();
    std::env::set_var(KEY_VAR, format!("Bearer {operator}"));
    std::env::set_var(READER_VAR, format!("Bearer {reader}"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let addr =
        strata::server::mcp_http::serve_http(db.clone(), "127.0.0.1:0".parse().unwrap(), async {
            let _ = stop_rx.await;
        })
        .await
        .unwrap();
    assert_ne!(addr.port(), 0);
    let url = format!("http://{addr}/mcp");
    let mut crm = McpServerSettings::http(&url);
    crm.auth_header_env = Some(KEY_VAR.into());
    crm.side_effect_tools = vec!["update_*".into(), "qualify_*".into()];
    let mut as_reader = McpServerSettings::http(&url);
    as_reader.auth_header_env = Some(READER_VAR.into());
    let m = McpManager::new(&settings(vec![
        ("crm", crm),
        ("anonymous", McpServerSettings::http(&url)),
        ("as_reader", as_reader),
    ]));
    exercise_strata_server(&m, &db).await;

    // Without a key, or with a reader key, no session opens; no key shows in errors.
    for name in ["anonymous", "as_reader"] {
        let e = m.list_tools(name).await.unwrap_err();
        assert!(matches!(e, McpError::Unavailable { .. }), "{name}: {e:?}");
        let text = format!("{e} {:?}", m.status());
        assert!(
            !text.contains(&operator) && !text.contains(&reader),
            "{text}"
        );
    }
    let plain = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    let post = |key: Option<&str>| {
        let mut r = plain
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("strata_wrong")).await.unwrap().status(), 401);
    assert_eq!(post(Some(&reader)).await.unwrap().status(), 403);
    assert_eq!(post(Some(&operator)).await.unwrap().status(), 200);

    m.shutdown().await;
    let _ = stop_tx.send(());
    db.close().await;
}

#[tokio::test]
async fn managers_are_shareable_across_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<McpManager>();
    assert_send_sync::<Arc<McpManager>>();
    let m = McpManager::new(&settings(vec![("everything", everything_stdio())]));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            m.call_tool("everything", "get-sum", json!({"a": i, "b": 1}))
                .await
                .map(|o| o.text)
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let text = t.await.unwrap().unwrap();
        assert!(text.contains(&format!("is {}", i + 1)), "{text}");
    }
    // One connection served them all (concurrent first calls share one connect).
    assert_eq!(status_of(&m, "everything").restarts, 0);
    m.shutdown().await;
}
