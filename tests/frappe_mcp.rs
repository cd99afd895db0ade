//! The real Frappe CRM MCP server (`frappe-crm-mcp` 0.0.6 from PyPI, pinned with its
//! dependencies by `scripts/frappe-crm-mcp-venv.sh`) as a stdio child of Strata's MCP
//! manager, against the Frappe v15 REST double of `tests/common/frappe.rs`: what the
//! server's tools send to Frappe and what Strata gets back (`tests/frappe/README.md`).
//!
//! The server's path comes from `STRATA_FRAPPE_MCP` (`scripts/test.sh` exports it). Unset,
//! the tests that need it are skipped with a message — except under `CI=true`, where they
//! fail.

mod common;
#[path = "support/llm_mock.rs"]
mod llm_mock;

use common::frappe::{FrappeDouble, Logged, API_KEY, API_SECRET, LEAD_STATUSES};
use serde_json::{json, Value};
use std::sync::Arc;
use strata::mcp::{McpManager, McpServerSettings, McpSettings, ToolOutput};

const SERVER: &str = "frappe";
const LEAD: &str = "CRM-LEAD-2026-00001";
const LEAD_PATH: &str = "/api/resource/CRM Lead/CRM-LEAD-2026-00001";

/// The `frappe-crm-mcp` executable, or None (after saying so) to skip the test.
fn frappe_mcp() -> Option<String> {
    let hint = "run scripts/frappe-crm-mcp-venv.sh and export STRATA_FRAPPE_MCP=<the path it \
                prints> (scripts/test.sh does both)";
    match std::env::var("STRATA_FRAPPE_MCP") {
        Ok(p) if !p.trim().is_empty() => {
            assert!(
                std::path::Path::new(&p).is_file(),
                "STRATA_FRAPPE_MCP={p} does not exist: {hint}"
            );
            Some(p)
        }
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "STRATA_FRAPPE_MCP is not set (required under CI): {hint}"
            );
            eprintln!("skipped: STRATA_FRAPPE_MCP is not set; {hint}");
            None
        }
    }
}

/// Strata's MCP manager with one stdio server, `frappe`: the real package, pointed at the
/// double through its environment.
fn manager(command: &str, double: &FrappeDouble) -> Arc<McpManager> {
    let mut server = McpServerSettings::stdio(command, &[]);
    server.env = double.mcp_env();
    server.side_effect_tools = vec![
        "*_update".into(),
        "*_create".into(),
        "*_add".into(),
        "*_add_contact".into(),
        "*_remove_contact".into(),
        "*_set_primary_contact".into(),
        "leads_convert".into(),
    ];
    // Python and FastMCP take a while to start on a busy machine; nothing here asserts a
    // duration.
    let mut settings = McpSettings {
        connect_timeout_ms: 120_000,
        call_timeout_ms: 60_000,
        health_timeout_ms: 60_000,
        ..McpSettings::default()
    };
    settings.servers.insert(SERVER.into(), server);
    settings.validate().expect("valid MCP settings");
    McpManager::new(&settings)
}

async fn call(m: &McpManager, tool: &str, args: Value) -> ToolOutput {
    m.call_tool(SERVER, tool, args)
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e:?}"))
}

fn describe(log: &[Logged]) -> String {
    log.iter()
        .map(|l| {
            format!(
                "{} {} {:?} {:?} -> {}",
                l.method, l.path, l.query, l.body, l.status
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Required arguments and property names of a tool's input schema.
fn schema_of(tools: &[strata::mcp::ToolInfo], name: &str) -> (Vec<String>, Vec<String>) {
    let t = tools
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tool {name}"));
    let strings = |v: &Value| -> Vec<String> {
        let mut out: Vec<String> = match v {
            Value::Array(a) => a
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => Vec::new(),
        };
        out.sort();
        out
    };
    assert_eq!(
        t.input_schema["additionalProperties"],
        json!(false),
        "{name}"
    );
    (
        strings(&t.input_schema["required"]),
        strings(&t.input_schema["properties"]),
    )
}

#[tokio::test]
async fn frappe_crm_mcp_reads_a_lead_sets_its_status_and_adds_a_note() {
    let Some(cmd) = frappe_mcp() else { return };
    let double = FrappeDouble::start().await;
    double.seed_sample_leads();
    let m = manager(&cmd, &double);

    // The tools and the schemas Strata sees (what a CRM mapping is checked against).
    let tools = m.list_tools(SERVER).await.unwrap();
    assert_eq!(
        tools.len(),
        36,
        "{:?}",
        tools.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    assert_eq!(
        schema_of(&tools, "leads_get"),
        (vec!["name".into()], vec!["name".into()])
    );
    let (req, props) = schema_of(&tools, "leads_update");
    assert_eq!(req, ["name"]);
    assert_eq!(
        props,
        [
            "email",
            "first_name",
            "last_name",
            "mobile_no",
            "name",
            "organization",
            "status"
        ]
    );
    let (req, props) = schema_of(&tools, "notes_add");
    assert_eq!(
        req,
        ["content", "reference_doctype", "reference_name", "title"]
    );
    assert_eq!(props, req);
    let (req, props) = schema_of(&tools, "leads_list");
    assert!(req.is_empty(), "{req:?}");
    assert_eq!(props, ["limit", "source", "status"]);
    assert!(
        double.requests().is_empty(),
        "listing tools calls no REST endpoint:\n{}",
        describe(&double.requests())
    );

    // Read.
    let out = call(&m, "leads_get", json!({ "name": LEAD })).await;
    assert!(!out.is_error, "{out:?}");
    let lead = out.structured.clone().expect("structured content");
    assert_eq!(lead["name"], LEAD);
    assert_eq!(lead["doctype"], "CRM Lead");
    assert_eq!(lead["job_title"], "Chief Executive Officer");
    assert_eq!(lead["no_of_employees"], "1000+");
    assert_eq!(lead["organization"], "Nordstahl Werke AG");
    assert_eq!(lead["status"], "New");
    assert_eq!(serde_json::from_str::<Value>(&out.text).unwrap(), lead);

    // Write back: the status, then a note.
    let out = call(
        &m,
        "leads_update",
        json!({ "name": LEAD, "status": "Qualified" }),
    )
    .await;
    assert!(!out.is_error, "{out:?}");
    let updated = out.structured.clone().expect("structured content");
    assert_eq!(updated["status"], "Qualified");
    assert_eq!(
        updated["job_title"], "Chief Executive Officer",
        "the whole document comes back"
    );

    let content = "<p>Strata score 91 (hot): book a demo.</p>";
    let out = call(
        &m,
        "notes_add",
        json!({
            "reference_doctype": "CRM Lead",
            "reference_name": LEAD,
            "title": "Strata qualification",
            "content": content,
        }),
    )
    .await;
    assert!(!out.is_error, "{out:?}");
    let note = out.structured.clone().expect("structured content");
    assert_eq!(note["doctype"], "FCRM Note");
    assert_eq!(note["reference_docname"], LEAD);

    // Exactly what reached Frappe.
    let log = double.requests();
    assert_eq!(log.len(), 3, "{}", describe(&log));
    let (get, put, post) = (&log[0], &log[1], &log[2]);
    assert_eq!((get.method.as_str(), get.path.as_str()), ("GET", LEAD_PATH));
    assert!(get.query.is_empty() && get.body.is_none(), "{get:?}");
    assert_eq!((put.method.as_str(), put.path.as_str()), ("PUT", LEAD_PATH));
    assert_eq!(
        put.body,
        Some(json!({ "status": "Qualified" })),
        "only the given fields"
    );
    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", "/api/resource/FCRM Note")
    );
    assert_eq!(
        post.body,
        Some(json!({
            "reference_doctype": "CRM Lead",
            "reference_docname": LEAD,
            "title": "Strata qualification",
            "content": content,
        })),
        "the tool's reference_name is Frappe's reference_docname"
    );
    assert!(log.iter().all(|l| l.status == 200), "{}", describe(&log));
    assert_eq!(double.lead(LEAD).unwrap()["status"], "Qualified");
    let notes = double.notes();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["reference_doctype"], "CRM Lead");
    assert_eq!(notes[0]["content"], content);

    // A list: the query the server sends, and the `result` wrapper of its structured output.
    double.clear_requests();
    let out = call(&m, "leads_list", json!({ "status": "New", "limit": 5 })).await;
    assert!(!out.is_error, "{out:?}");
    let rows = out.structured.as_ref().unwrap()["result"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["CRM-LEAD-2026-00005"], "{rows:?}");
    let log = double.requests();
    assert_eq!(log.len(), 1, "{}", describe(&log));
    assert_eq!(log[0].path, "/api/resource/CRM Lead");
    assert_eq!(log[0].param("limit_page_length"), Some("5"));
    assert_eq!(log[0].param("limit_start"), Some("0"));
    assert_eq!(log[0].param("order_by"), Some("modified desc"));
    assert_eq!(
        log[0].param_json("filters"),
        Some(json!({ "status": "New" }))
    );
    assert_eq!(
        log[0].param_json("fields"),
        Some(json!([
            "name",
            "first_name",
            "last_name",
            "email",
            "mobile_no",
            "organization",
            "status",
            "source",
            "modified"
        ]))
    );

    m.shutdown().await;
}

#[tokio::test]
async fn frappe_errors_reach_strata_as_tool_errors_without_frappes_message() {
    let Some(cmd) = frappe_mcp() else { return };
    let double = FrappeDouble::start().await;
    double.seed_sample_leads();
    let m = manager(&cmd, &double);

    // An unknown status: Frappe answers 417 LinkValidationError with its message …
    let out = call(&m, "leads_update", json!({ "name": LEAD, "status": "Hot" })).await;
    assert!(out.is_error, "{out:?}");
    let log = double.requests();
    assert_eq!(log.len(), 1, "{}", describe(&log));
    assert_eq!(log[0].status, 417);
    assert_eq!(log[0].response["exc_type"], "LinkValidationError");
    let messages: Vec<String> =
        serde_json::from_str(log[0].response["_server_messages"].as_str().unwrap()).unwrap();
    let first: Value = serde_json::from_str(&messages[0]).unwrap();
    assert_eq!(first["message"], "Could not find Status: Hot");
    // … but frappe-crm-mcp 0.0.6 calls httpx's raise_for_status() and drops the body: the
    // tool error carries the status line and URL only, never Frappe's message.
    assert!(out.text.contains("leads_update"), "{}", out.text);
    assert!(out.text.contains("417"), "{}", out.text);
    assert!(
        out.text
            .contains("/api/resource/CRM%20Lead/CRM-LEAD-2026-00001"),
        "{}",
        out.text
    );
    assert!(!out.text.contains("Could not find"), "{}", out.text);
    assert_eq!(double.lead(LEAD).unwrap()["status"], "New", "nothing saved");

    // An unknown lead: 404 DoesNotExistError, a tool error too.
    double.clear_requests();
    let out = call(&m, "leads_get", json!({ "name": "CRM-LEAD-2026-09999" })).await;
    assert!(out.is_error, "{out:?}");
    assert!(out.text.contains("404"), "{}", out.text);
    let log = double.requests();
    assert_eq!(log[0].status, 404);
    assert_eq!(log[0].response["exc_type"], "DoesNotExistError");

    // A missing required argument never reaches Frappe (the issue's `{"id": …}` call).
    double.clear_requests();
    match m
        .call_tool(SERVER, "leads_get", json!({ "id": LEAD }))
        .await
    {
        Ok(out) => assert!(out.is_error, "{out:?}"),
        Err(e) => assert!(
            matches!(e, strata::mcp::McpError::ToolError { .. }),
            "{e:?}"
        ),
    }
    assert!(
        double.requests().is_empty(),
        "{}",
        describe(&double.requests())
    );

    // A CRM that refuses every write: both write-back calls fail, nothing is stored.
    double.refuse_writes(Some("Leads are locked for the quarter-end audit"));
    let out = call(
        &m,
        "leads_update",
        json!({ "name": LEAD, "status": "Qualified" }),
    )
    .await;
    assert!(out.is_error && out.text.contains("417"), "{out:?}");
    let out = call(
        &m,
        "notes_add",
        json!({
            "reference_doctype": "CRM Lead",
            "reference_name": LEAD,
            "title": "t",
            "content": "c",
        }),
    )
    .await;
    assert!(out.is_error && out.text.contains("417"), "{out:?}");
    let writes = double.writes();
    assert_eq!(writes.len(), 2, "{}", describe(&writes));
    assert!(writes
        .iter()
        .all(|w| w.status == 417 && w.response["exc_type"] == "ValidationError"));
    assert_eq!(double.lead(LEAD).unwrap()["status"], "New");
    assert!(double.notes().is_empty());

    // The server survived all of it.
    double.refuse_writes(None);
    let out = call(&m, "leads_get", json!({ "name": LEAD })).await;
    assert!(!out.is_error, "{out:?}");
    let st = m.status().into_iter().find(|s| s.name == SERVER).unwrap();
    assert_eq!(st.restarts, 0, "{st:?}");
    assert_eq!(
        st.consecutive_failures, 0,
        "tool errors do not count against the server"
    );

    m.shutdown().await;
}

/// The double on its own, as Frappe answers (no Python needed).
#[tokio::test]
async fn the_frappe_double_answers_like_frappe_v15() {
    let double = FrappeDouble::start().await;
    let names = double.seed_sample_leads();
    assert_eq!(names.len(), 5);
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", double.url());
    let token = format!("token {API_KEY}:{API_SECRET}");

    // Auth: a wrong secret is 401, no credentials (Guest) 403.
    let r = http
        .get(url("/api/resource/CRM%20Lead"))
        .header("Authorization", format!("token {API_KEY}:wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["exc_type"], "AuthenticationError");
    let r = http
        .get(url("/api/resource/CRM%20Lead"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["exc_type"],
        "PermissionError"
    );

    // A list with no fields: names only, newest modified first, 20 at most.
    let r = http
        .get(url("/api/resource/CRM%20Lead"))
        .header("Authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"][0], json!({ "name": "CRM-LEAD-2026-00005" }));
    assert_eq!(body["data"].as_array().unwrap().len(), 5);

    // Filters (dict and list forms), fields, order, paging.
    let r = http
        .get(url("/api/resource/CRM%20Lead"))
        .header("Authorization", &token)
        .query(&[
            ("fields", r#"["name","no_of_employees"]"#),
            ("filters", r#"[["CRM Lead","no_of_employees","=","1000+"]]"#),
            ("order_by", "name asc"),
            ("limit_start", "1"),
            ("limit_page_length", "1"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["data"],
        json!([{ "name": "CRM-LEAD-2026-00003", "no_of_employees": "1000+" }])
    );
    let r = http
        .get(url("/api/resource/CRM%20Lead"))
        .header("Authorization", &token)
        .query(&[("filters", r#"{"organization":["like","%werke%"]}"#)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["data"],
        json!([{ "name": LEAD }])
    );

    // Create: a generated name, lead_name from the name parts, status defaults to New.
    let r = http
        .post(url("/api/resource/CRM%20Lead"))
        .header("Authorization", &token)
        .json(&json!({ "first_name": "Ada", "last_name": "Lovelace", "no_of_employees": "11-50" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc = r.json::<Value>().await.unwrap()["data"].clone();
    assert!(
        doc["name"].as_str().unwrap().starts_with("CRM-LEAD-"),
        "{doc}"
    );
    assert_eq!(doc["lead_name"], "Ada Lovelace");
    assert_eq!(doc["status"], "New");

    // Validation: 417 with Frappe's error shape.
    for (body, exc) in [
        (
            json!({ "first_name": "X", "no_of_employees": "5000" }),
            "ValidationError",
        ),
        (json!({ "last_name": "Nobody" }), "MandatoryError"),
        (
            json!({ "first_name": "X", "status": "Open" }),
            "LinkValidationError",
        ),
    ] {
        let r = http
            .post(url("/api/resource/CRM%20Lead"))
            .header("Authorization", &token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 417, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["exc_type"], exc, "{e}");
        assert!(e["exception"]
            .as_str()
            .unwrap()
            .starts_with(&format!("frappe.exceptions.{exc}")));
        assert!(e["_server_messages"].is_string(), "{e}");
    }
    // Every Frappe CRM default status is accepted.
    for s in LEAD_STATUSES {
        let r = http
            .put(url(&format!("/api/resource/CRM%20Lead/{LEAD}")))
            .header("Authorization", &token)
            .json(&json!({ "status": s }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{s}");
    }
    // Unknown names and doctypes: 404.
    let r = http
        .put(url("/api/resource/CRM%20Lead/CRM-LEAD-2026-09999"))
        .header("Authorization", &token)
        .json(&json!({ "status": "New" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["exc_type"], "DoesNotExistError");
    assert!(e["_server_messages"]
        .as_str()
        .unwrap()
        .contains("CRM Lead CRM-LEAD-2026-09999 not found"));
    let r = http
        .get(url("/api/resource/CRM%20Widget"))
        .header("Authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // A note on a lead that does not exist is refused.
    let r = http
        .post(url("/api/resource/FCRM%20Note"))
        .header("Authorization", &token)
        .json(&json!({ "reference_doctype": "CRM Lead", "reference_docname": "CRM-LEAD-2026-09999", "title": "t", "content": "c" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 417);

    // The log saw everything, decoded.
    let log = double.requests();
    assert_eq!(log[0].path, "/api/resource/CRM Lead");
    assert_eq!(log[0].status, 401);
    assert!(log
        .iter()
        .any(|l| l.method == "PUT" && l.body == Some(json!({ "status": "Junk" }))));
}

// --- Qualification end to end: Strata → frappe-crm-mcp → the Frappe double -------------

/// The host variable the test passes the API secret in (`env_from`), never the config.
const SECRET_VAR: &str = "STRATA_TEST_FRAPPE_API_SECRET";

/// A Strata host qualifying with the shipped agent against Frappe: the Frappe preset of
/// `[qualify.crm]`, the real `frappe-crm-mcp` as `[mcp.servers.frappe]` (its secret from
/// the host's environment), a scripted OpenAI-compatible LLM, BANT as the fallback.
struct Qualifying {
    app: strata::app::App,
    llm: llm_mock::MockLlm,
    double: FrappeDouble,
    _tmp: tempfile::TempDir,
}

async fn qualifying(cmd: &str, read_override: Option<&str>) -> Qualifying {
    let double = FrappeDouble::start().await;
    double.seed_sample_leads();
    let llm = llm_mock::MockLlm::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    common::install(&plugins, "bant", "bant");
    common::install(&plugins, "qualify-agent", "qualify-agent");
    let url = common::sqlite_url(tmp.path());
    std::env::set_var(SECRET_VAR, API_SECRET);
    let env: Vec<String> = double
        .mcp_env()
        .into_iter()
        .filter(|(k, _)| k != "FRAPPE_API_SECRET")
        .map(|(k, v)| format!("{k} = {}", toml::Value::String(v)))
        .collect();
    let mut preset = strata::qualify::presets::FRAPPE.to_string();
    if let Some(read) = read_override {
        preset = preset.replace(
            r#"read = { tool = "leads_get", arguments = { name = "{lead_id}" } }"#,
            read,
        );
    }
    let text = format!(
        r#"
[database]
url = "{url}"
[plugins]
dir = "{plugins}"
watch = false
[runtime]
cache_dir = "{cache}"
[llm.providers.mock]
kind = "openai"
base_url = "{llm_url}"
timeout_ms = 3000
structured_output = "json_schema"
[llm.models.qualifier]
provider = "mock"
model = "mock-model"
[llm.retry]
max_attempts = 1
[mcp]
connect_timeout_ms = 120000
call_timeout_ms = 60000
[mcp.servers.frappe]
transport = "stdio"
command = "{cmd}"
env = {{ {env} }}
env_from = {{ FRAPPE_API_SECRET = "{SECRET_VAR}" }}
side_effect_tools = ["*_update", "*_create", "*_add"]
[qualify]
agent = "qualify-agent"
{preset}
[grants.bant]
capabilities = []
[grants.qualify-agent]
capabilities = ["llm", "scoring"]
llm = {{ models = ["qualifier"] }}
scoring = {{ strategies = ["bant"] }}
limits = {{ deadline_ms = 60000 }}
"#,
        plugins = plugins.display(),
        cache = tmp.path().join("cache").display(),
        llm_url = llm.url(),
        env = env.join(", "),
    );
    let config: strata::config::Config = toml::from_str(&text).expect("test config");
    config.validate().expect("valid config");
    assert!(
        !text.contains(API_SECRET),
        "the secret is not in the config"
    );
    let app = strata::app::App::start(config).await.unwrap();
    let report = app.manager.load_all().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    Qualifying {
        app,
        llm,
        double,
        _tmp: tmp,
    }
}

impl Qualifying {
    async fn qualify(&self, lead: &str) -> Result<Value, String> {
        let agent = self.app.manager.registry().get("qualify-agent").unwrap();
        self.app
            .qualify
            .run(agent, lead, None)
            .await
            .map_err(|e| e.to_string())
    }
}

fn llm_answer(score: f64, priority: &str) -> Value {
    json!({
        "score": score, "priority": priority,
        "recommended_action": "Book a discovery call with the CEO this week",
        "reasoning": "Chief executive of a 1000+ employee manufacturer",
        "confidence": 0.8,
        "factors": {"budget": 80, "authority": 100, "fit": 85, "timeline": 70, "complexity": 75}
    })
}

#[tokio::test]
async fn a_lead_known_only_to_frappe_is_read_stored_scored_and_written_back() {
    let Some(cmd) = frappe_mcp() else { return };
    let q = qualifying(&cmd, None).await;
    q.app
        .check_crm()
        .await
        .expect("the Frappe preset matches frappe-crm-mcp's schemas");
    q.llm
        .push(llm_mock::Behaviour::json(llm_answer(88.0, "immediate")));
    assert!(q.app.db.get_lead(LEAD).await.unwrap().is_none());
    q.double.clear_requests();

    let v = q.qualify(LEAD).await.expect("qualified");
    assert_eq!(v["fallback_used"], false, "{v}");
    assert_eq!(v["written_back"], true, "{v}");

    // The lead read from Frappe is stored in Strata, mapped field by field.
    let lead = q.app.db.get_lead(LEAD).await.unwrap().expect("stored");
    assert_eq!(lead.name.as_deref(), Some("Henrik Vogel"));
    assert_eq!(lead.title.as_deref(), Some("Chief Executive Officer"));
    assert_eq!(lead.company.as_deref(), Some("Nordstahl Werke AG"));
    assert_eq!(lead.employees, Some(1000));
    assert_eq!(lead.industry.as_deref(), Some("Manufacturing"));
    // The model saw the mapped lead.
    let prompt = q.llm.requests()[0].body.to_string();
    assert!(
        prompt.contains("Chief Executive Officer") && prompt.contains("Nordstahl"),
        "{prompt}"
    );

    // Exactly one read, one status update, one note.
    let log = q.double.requests();
    let d = describe(&log);
    let gets: Vec<_> = log.iter().filter(|l| l.method == "GET").collect();
    assert_eq!(gets.len(), 1, "{d}");
    assert_eq!(gets[0].path, LEAD_PATH, "{d}");
    let writes = q.double.writes();
    assert_eq!(writes.len(), 2, "{d}");
    assert_eq!(
        (writes[0].method.as_str(), writes[0].path.as_str()),
        ("PUT", LEAD_PATH),
        "{d}"
    );
    assert_eq!(
        writes[0].body.as_ref().unwrap()["status"],
        "Qualified",
        "{d}"
    );
    assert_eq!(writes[1].method, "POST", "{d}");
    let note = writes[1].body.as_ref().unwrap();
    assert_eq!(note["reference_doctype"], "CRM Lead");
    assert_eq!(note["reference_docname"], LEAD);
    let content = note["content"].as_str().unwrap();
    assert!(
        content.contains("88.0") && content.contains("immediate"),
        "{content}"
    );
    assert!(
        content.contains("qualify-agent@") && content.contains("sha256"),
        "{content}"
    );
    assert_eq!(q.double.lead(LEAD).unwrap()["status"], "Qualified");

    // The score and a succeeded execution with the tools used.
    let scores = q.app.db.latest_scores(LEAD, 5).await.unwrap();
    assert_eq!(scores.len(), 1);
    assert_eq!(scores[0].score.value, 88.0);
    let execs = q
        .app
        .db
        .list_executions(&strata::db::ExecutionFilter::default())
        .await
        .unwrap();
    assert_eq!(execs[0].status, "succeeded");
    assert_eq!(
        execs[0].mcp_tools_used,
        [
            "frappe/leads_get",
            "frappe/leads_update",
            "frappe/notes_add"
        ]
    );
    q.app.shutdown().await;
}

#[tokio::test]
async fn the_rule_based_fallback_ranks_frappe_leads_by_their_fields_and_a_refused_write_is_reported(
) {
    let Some(cmd) = frappe_mcp() else { return };
    let q = qualifying(&cmd, None).await;
    q.llm.set_default(llm_mock::Behaviour::status(500));
    let mut scored = Vec::new();
    for lead in ["CRM-LEAD-2026-00001", "CRM-LEAD-2026-00005"] {
        let v = q.qualify(lead).await.expect("qualified by the fallback");
        assert_eq!(v["fallback_used"], true, "{v}");
        scored.push((
            lead,
            v["score"]["value"].as_f64().unwrap(),
            v["score"]["reasoning"].as_str().unwrap().to_string(),
        ));
    }
    // The CEO of a 1000+-employee manufacturer above the student, for reasons that name
    // the fields read from Frappe.
    assert!(scored[0].1 > scored[1].1 + 20.0, "{scored:?}");
    assert!(
        scored[0].2.contains("Chief Executive Officer"),
        "{}",
        scored[0].2
    );
    assert!(scored[1].2.contains("Student"), "{}", scored[1].2);

    // A CRM that refuses the write (417): the score stays, the failure is reported.
    q.double.refuse_writes(Some("Not permitted"));
    let e = q.qualify("CRM-LEAD-2026-00002").await.unwrap_err();
    assert!(
        e.contains("write-back to the CRM failed") || e.contains("write-back"),
        "{e}"
    );
    assert!(e.contains("417"), "{e}");
    assert_eq!(
        q.app
            .db
            .latest_scores("CRM-LEAD-2026-00002", 5)
            .await
            .unwrap()
            .len(),
        1
    );
    let execs = q
        .app
        .db
        .list_executions(&strata::db::ExecutionFilter::default())
        .await
        .unwrap();
    let failed: Vec<_> = execs.iter().filter(|e| e.status == "failed").collect();
    assert_eq!(failed.len(), 1, "{execs:?}");
    assert_eq!(failed[0].output.as_ref().unwrap()["written_back"], false);
    assert!(execs.iter().all(|e| e.status != "running"));
    q.app.shutdown().await;
}

#[tokio::test]
async fn a_mapping_that_does_not_match_the_crms_schemas_is_refused_naming_tool_and_argument() {
    let Some(cmd) = frappe_mcp() else { return };
    // The call the issue saw fail: `leads_get` with `{"id": …}`.
    let q = qualifying(
        &cmd,
        Some(r#"read = { tool = "leads_get", arguments = { id = "{lead_id}" } }"#),
    )
    .await;
    let e = q.app.check_crm().await.unwrap_err().to_string();
    assert!(e.contains("leads_get") && e.contains("\"id\""), "{e}");
    let e = q.qualify(LEAD).await.unwrap_err();
    assert!(e.contains("leads_get has no argument"), "{e}");
    assert!(q
        .double
        .requests()
        .iter()
        .all(|l| l.method != "GET" || !l.path.contains("CRM Lead/")));
    q.app.shutdown().await;
}
