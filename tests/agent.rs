//! The lead-qualification agent end to end with real peers: the agent plugin (Wasm) reads
//! the lead through Strata's own MCP server (the `strata` binary over stdio), asks an LLM
//! (a local HTTP server speaking the OpenAI protocol, scripted per test), falls back to the
//! BANT scorer plugin through `scoring` when the LLM fails, writes back through MCP; the
//! score and the execution row are stored, every capability call audited.

mod common;
#[path = "support/llm_mock.rs"]
mod llm_mock;

use common::*;
use llm_mock::{Behaviour, MockLlm};
use serde_json::{json, Value};
use strata::app::App;
use strata::config::Config;
use strata::db::{AuditFilter, ExecutionFilter};

const AGENT: &str = "qualify-agent";

/// A consistent answer: the priority is the score's band (the agent rejects any other).
fn answer(score: f64) -> Value {
    let priority = match score {
        s if s >= 85.0 => "immediate",
        s if s >= 65.0 => "high",
        s if s >= 40.0 => "medium",
        _ => "low",
    };
    json!({
        "score": score, "priority": priority,
        "recommended_action": "Call the CFO this week",
        "reasoning": "Budget approved, VP title, evaluating now",
        "confidence": 0.8,
        "factors": {"budget": 90, "authority": 85, "fit": 80, "timeline": 75, "complexity": 60}
    })
}

struct Setup {
    app: App,
    llm: MockLlm,
    _tmp: tempfile::TempDir,
}

/// A host with the agent and BANT loaded, the mock LLM as provider `mock` behind alias
/// `qualifier`, Strata's MCP server as `crm`, and `grant_extra` appended to the agent's grant.
async fn setup(llm_grant: &str, mcp_tools: &str) -> Setup {
    setup_with(llm_grant, mcp_tools, "").await
}

/// `[qualify.crm]` writing a lead status Strata's server refuses.
const REFUSED_WRITE_BACK: &str = r#"
[qualify.crm]
status_by_priority = { immediate = "promising", high = "promising", medium = "promising", low = "promising" }
[[qualify.crm.write_back]]
tool = "update_lead"
arguments = { id = "{lead_id}", status = "{crm_status}" }
"#;

/// [`setup`] with `qualify_extra` appended under `[qualify]` (e.g. a `[qualify.crm]`).
async fn setup_with(llm_grant: &str, mcp_tools: &str, qualify_extra: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    install(&plugins, "bant", "bant");
    install(&plugins, "qualify-agent", AGENT);
    let url = sqlite_url(tmp.path());
    let llm = MockLlm::start().await;
    let strata = env!("CARGO_BIN_EXE_strata");
    let text = format!(
        r#"
[database]
url = "{url}"
[plugins]
dir = "{plugins}"
watch = false
[runtime]
cache_dir = "{cache}"
pool_instances = 16
[llm.providers.mock]
kind = "openai"
base_url = "{llm_url}"
timeout_ms = 3000
structured_output = "json_schema"
[llm.models.qualifier]
provider = "mock"
model = "mock-model"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0
[llm.retry]
max_attempts = 2
base_delay_ms = 1
max_delay_ms = 5
[mcp.servers.crm]
transport = "stdio"
command = "{strata}"
args = ["mcp", "serve", "--transport", "stdio"]
env = {{ STRATA_DATABASE__URL = "{url}", STRATA_LOG = "warn" }}
side_effect_tools = ["update_*", "qualify_*"]
[qualify]
agent = "{AGENT}"
{qualify_extra}
[grants.bant]
capabilities = []
[grants.{AGENT}]
capabilities = ["llm", "mcp", "scoring"]
llm = {{ models = ["qualifier"]{llm_grant} }}
mcp = {{ tools = [{mcp_tools}] }}
scoring = {{ strategies = ["bant"] }}
limits = {{ deadline_ms = 60000 }}
"#,
        plugins = plugins.display(),
        cache = tmp.path().join("cache").display(),
        llm_url = llm.url(),
    );
    let config: Config = toml::from_str(&text).expect("test config");
    config.validate().expect("valid config");
    let db = strata::db::Db::connect(&url, &Default::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db.upsert_lead(&hot_lead("L-1")).await.unwrap();
    let app = App::with_db(config, db).unwrap();
    let report = app.manager.load_all().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    Setup {
        app,
        llm,
        _tmp: tmp,
    }
}

const TOOLS: &str = r#""crm/get_lead", "crm/update_lead""#;

async fn qualify(s: &Setup, lead: &str) -> Result<Value, String> {
    let agent = s.app.manager.registry().get(AGENT).unwrap();
    s.app
        .qualify
        .run(agent, lead, Some("rid-agent".into()))
        .await
        .map_err(|e| e.to_string())
}

async fn audit(s: &Setup, capability: &str) -> Vec<strata::db::AuditRecord> {
    audit_of(s, AGENT, capability).await
}

/// The audit rows of `plugin` (`host` for the host's own CRM calls) for `capability`.
async fn audit_of(s: &Setup, plugin: &str, capability: &str) -> Vec<strata::db::AuditRecord> {
    s.app.audit.flush().await;
    s.app
        .db
        .list_audit(&AuditFilter {
            plugin: Some(plugin.into()),
            capability: Some(capability.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.record)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_qualifies_through_mcp_and_the_llm_and_stores_score_and_execution() {
    let s = setup("", TOOLS).await;
    s.llm
        .push(Behaviour::json(answer(82.5)).with_tokens(321, 45));
    let v = qualify(&s, "L-1").await.expect("qualified");
    assert_eq!(v["fallback_used"], false, "{v}");
    assert_eq!(v["score"]["value"], 82.5);
    assert_eq!(v["strategy"], "qualify-agent@1.0.0");

    // The LLM got the lead that MCP returned, with the schema in the OpenAI dialect.
    let req = &s.llm.requests()[0];
    let body: Value = req.body.clone();
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert!(body.to_string().contains("Dana Fox"), "{body}");

    // Stored: the score (strategy agent@version), the execution with tokens, cost, tools.
    let scores = s.app.db.latest_scores("L-1", 5).await.unwrap();
    assert_eq!(scores[0].strategy, "qualify-agent@1.0.0");
    assert_eq!(scores[0].score.value, 82.5);
    assert!(!scores[0].fallback_used);
    let execs = s
        .app
        .db
        .list_executions(&ExecutionFilter::default())
        .await
        .unwrap();
    let e = &execs[0];
    assert_eq!(e.status, "succeeded");
    assert_eq!(e.lead_id.as_deref(), Some("L-1"));
    assert_eq!((e.tokens_in, e.tokens_out), (321, 45));
    assert!(
        (e.cost - (321.0 * 1.0 + 45.0 * 2.0) / 1e6).abs() < 1e-12,
        "{}",
        e.cost
    );
    assert_eq!(e.mcp_tools_used, vec!["crm/get_lead", "crm/update_lead"]);

    // Written back to the CRM through MCP (Strata's own server → the same database).
    let lead = s.app.db.get_lead("L-1").await.unwrap().unwrap();
    assert_eq!(
        lead.attributes.get("strata_score").map(String::as_str),
        Some("82.5")
    );
    assert_eq!(
        lead.attributes.get("strata_priority").map(String::as_str),
        Some("high")
    );

    // Audited with tokens and cost.
    let llm_rows = audit(&s, "llm").await;
    assert_eq!(llm_rows.len(), 1);
    assert!(llm_rows[0].allowed);
    assert_eq!(llm_rows[0].tokens_in, Some(321));
    assert_eq!(llm_rows[0].request_id.as_deref(), Some("rid-agent"));
    // The CRM calls are the host's (the agent holds no CRM power), audited as `host`.
    assert!(audit(&s, "mcp").await.is_empty());
    let crm_rows = audit_of(&s, "host", "mcp").await;
    let mut targets: Vec<_> = crm_rows
        .iter()
        .filter_map(|r| r.target.as_deref())
        .collect();
    targets.sort_unstable();
    assert_eq!(targets, ["mcp:crm/get_lead", "mcp:crm/update_lead"]);
    assert!(crm_rows
        .iter()
        .all(|r| r.request_id.as_deref() == Some("rid-agent")));
    assert_eq!(v["written_back"], true, "{v}");
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_failure_falls_back_to_the_bant_scorer_and_says_so() {
    let s = setup("", TOOLS).await;
    s.llm.set_default(Behaviour::status(500));
    let v = qualify(&s, "L-1").await.expect("qualified by fallback");
    assert_eq!(v["fallback_used"], true, "{v}");
    let reason = v["agent_output"]["fallback_reason"].as_str().unwrap();
    assert!(reason.contains("LLM"), "{reason}");
    // Same value the BANT plugin gives directly.
    let bant = s.app.manager.registry().get("bant").unwrap();
    let direct = bant.score(&hot_lead("L-1"), None).unwrap();
    assert_eq!(v["score"]["value"].as_f64().unwrap(), direct.value);
    let scores = s.app.db.latest_scores("L-1", 1).await.unwrap();
    assert!(scores[0].fallback_used);
    assert!(scores[0].score.reasoning.contains("fallback"));
    let scoring = audit(&s, "scoring").await;
    assert_eq!(scoring.len(), 1);
    assert!(scoring[0].detail.as_deref().unwrap().contains("bant@"));
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_violating_answers_fall_back_to_rules() {
    let s = setup("", TOOLS).await;
    s.llm.set_default(Behaviour::SchemaViolating);
    let v = qualify(&s, "L-1").await.expect("qualified by fallback");
    assert_eq!(v["fallback_used"], true, "{v}");
    assert!(v["agent_output"]["fallback_reason"]
        .as_str()
        .unwrap()
        .contains("invalid"));
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_token_budget_is_denied_audited_and_falls_back() {
    // The first call's reservation (the prompt's byte bound + max_tokens) fits 3,000.
    let s = setup(", daily_tokens = 3000", TOOLS).await;
    s.llm
        .set_default(Behaviour::json(answer(70.0)).with_tokens(2500, 300));
    let first = qualify(&s, "L-1").await.unwrap();
    assert_eq!(first["fallback_used"], false, "{first}");
    let before = s.llm.request_count();
    // 2,800 tokens used of 3,000: what is left cannot hold the next prompt, so the call
    // is refused before reaching the provider.
    let second = qualify(&s, "L-1").await.unwrap();
    assert_eq!(second["fallback_used"], true, "{second}");
    assert!(second["agent_output"]["fallback_reason"]
        .as_str()
        .unwrap()
        .contains("budget"));
    assert_eq!(s.llm.request_count(), before);
    let rows = audit(&s, "llm").await;
    assert!(rows
        .iter()
        .any(|r| !r.allowed && r.detail.as_deref().unwrap_or("").contains("budget")));
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_the_crm_refuses_fails_the_qualification_and_is_recorded() {
    // A mapping whose write-back the server rejects (no lead status "promising"): the
    // score is stored, the execution says `failed` with the tool's error, the caller gets
    // an error naming the write-back.
    let s = setup_with("", TOOLS, REFUSED_WRITE_BACK).await;
    s.llm.push(Behaviour::json(answer(70.0)));
    let e = qualify(&s, "L-1").await.unwrap_err();
    assert!(
        e.contains("write-back to the CRM failed") && e.contains("update_lead"),
        "{e}"
    );
    let scores = s.app.db.latest_scores("L-1", 5).await.unwrap();
    assert_eq!(scores.len(), 1);
    let execs = s
        .app
        .db
        .list_executions(&ExecutionFilter::default())
        .await
        .unwrap();
    assert_eq!(execs[0].status, "failed");
    assert!(
        execs[0].error.as_deref().unwrap().contains("write-back"),
        "{:?}",
        execs[0].error
    );
    let out = execs[0].output.as_ref().unwrap();
    assert_eq!(out["written_back"], false, "{out}");
    assert_eq!(out["write_back"][0]["status"], "failed", "{out}");
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_agent_run_closes_its_execution_and_an_unknown_lead_opens_none() {
    // The LLM fails and the fallback scorer is not granted: the agent run fails, and its
    // execution is `failed`, not left `running`. A lead neither Strata nor the CRM has
    // fails before any execution opens.
    let s = setup_with("", TOOLS, r#"fallback_strategy = "ungranted""#).await;
    s.llm.set_default(Behaviour::status(500));
    let e = qualify(&s, "L-1").await.unwrap_err();
    assert!(e.contains("ungranted"), "{e}");
    let e = qualify(&s, "nope").await.unwrap_err();
    assert!(e.contains("get_lead") && e.contains("nope"), "{e}");
    let execs = s
        .app
        .db
        .list_executions(&ExecutionFilter::default())
        .await
        .unwrap();
    assert_eq!(execs.len(), 1, "{execs:?}");
    assert_eq!(execs[0].status, "failed");
    assert!(execs[0].error.as_deref().unwrap().contains("ungranted"));
    s.app.shutdown().await;
}

/// Opt-in: a real local model (`scripts/e2e-llm.sh` starts llama-cpp-python's server with
/// SmolLM2-135M-Instruct and sets `STRATA_E2E_LLM=1` and `STRATA_E2E_LLM_URL`). The agent
/// qualifies a demo lead through it: schema-valid structured output, real token counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_real_local_model_qualifies_a_lead() {
    if std::env::var("STRATA_E2E_LLM").as_deref() != Ok("1") {
        eprintln!("skipped: set STRATA_E2E_LLM=1 (see scripts/e2e-llm.sh)");
        return;
    }
    let url = std::env::var("STRATA_E2E_LLM_URL").expect("STRATA_E2E_LLM_URL");
    let s = setup("", TOOLS).await;
    // Point the alias at the real server instead of the mock.
    let mut config = (*s.app.config).clone();
    let p = config.llm.providers.get_mut("mock").unwrap();
    p.base_url = url;
    p.timeout_ms = 120_000;
    p.structured_output = Some(strata::llm::StructuredOutput::JsonObjectSchema);
    let db = s.app.db.clone();
    let app = App::with_db(config, db).unwrap();
    assert!(app.manager.load_all().await.failed.is_empty());
    let agent = app.manager.registry().get(AGENT).unwrap();
    let v = app
        .qualify
        .run(agent, "L-1", None)
        .await
        .expect("qualified");
    eprintln!("{}", serde_json::to_string_pretty(&v).unwrap());
    // SmolLM2-135M proves the plumbing, not judgement: its answer may well be refused by
    // the consistency checks (then the fallback says why); an accepted one holds.
    if v["fallback_used"] == false {
        let score = v["score"]["value"].as_f64().unwrap();
        assert_eq!(v["score"]["priority"], band(score), "{v}");
    } else {
        assert!(
            v["agent_output"]["fallback_reason"]
                .as_str()
                .unwrap()
                .contains("LLM"),
            "{v}"
        );
    }
    let execs = app
        .db
        .list_executions(&ExecutionFilter::default())
        .await
        .unwrap();
    assert!(execs[0].tokens_in > 0 && execs[0].tokens_out > 0);
    app.shutdown().await;
}

/// The issue's "done": the server on SQLite with the shipped kind of config and no LLM —
/// `POST /api/v1/leads/qualify/{id}` runs the agent as a job (lead through the bundled MCP
/// server, rule-based fallback), and the MCP calls, the execution and the MCP status are
/// visible through the API.
/// The score band the scorer contract uses for a priority.
fn band(score: f64) -> &'static str {
    match score {
        s if s >= 85.0 => "immediate",
        s if s >= 65.0 => "high",
        s if s >= 40.0 => "medium",
        _ => "low",
    }
}

/// Opt-in (as above): every demo lead (`demo/leads.jsonl`) through the real local model,
/// once with the server's JSON-schema mode and once with a GBNF grammar. Prints the share
/// the model qualified without the fallback in each mode; no accepted answer may contradict
/// its score band.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_real_local_model_share_of_demo_leads_by_dialect() {
    if std::env::var("STRATA_E2E_LLM").as_deref() != Ok("1") {
        eprintln!("skipped: set STRATA_E2E_LLM=1 (see scripts/e2e-llm.sh)");
        return;
    }
    let url = std::env::var("STRATA_E2E_LLM_URL").expect("STRATA_E2E_LLM_URL");
    let s = setup("", TOOLS).await;
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/leads.jsonl"))
        .unwrap();
    let leads: Vec<strata::domain::Lead> = demo
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for l in &leads {
        s.app.db.upsert_lead(l).await.unwrap();
    }
    use strata::llm::StructuredOutput;
    for dialect in [StructuredOutput::JsonObjectSchema, StructuredOutput::Gbnf] {
        let mut config = (*s.app.config).clone();
        let p = config.llm.providers.get_mut("mock").unwrap();
        p.base_url = url.clone();
        p.timeout_ms = 120_000;
        p.structured_output = Some(dialect);
        let app = App::with_db(config, s.app.db.clone()).unwrap();
        assert!(app.manager.load_all().await.failed.is_empty());
        let agent = app.manager.registry().get(AGENT).unwrap();
        let (mut by_model, mut reasons) = (0, Vec::new());
        for l in &leads {
            let v = app
                .qualify
                .run(agent.clone(), &l.id, None)
                .await
                .expect("qualified");
            if v["fallback_used"] == false {
                by_model += 1;
                let score = v["score"]["value"].as_f64().unwrap();
                assert_eq!(
                    v["score"]["priority"],
                    band(score),
                    "accepted answer contradicts its score: {v}"
                );
            } else {
                reasons.push(
                    v["agent_output"]["fallback_reason"]
                        .as_str()
                        .unwrap_or("?")
                        .to_string(),
                );
            }
        }
        eprintln!(
            "E2E {dialect:?}: the model qualified {by_model} of {} demo leads without fallback; fallback reasons: {reasons:#?}",
            leads.len()
        );
        app.mcp.shutdown().await; // the database stays open for the next dialect
    }
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qualify_endpoint_runs_the_agent_offline_and_the_api_shows_its_trail() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    install(&plugins, "bant", "bant");
    install(&plugins, "qualify-agent", AGENT);
    let url = sqlite_url(tmp.path());
    let text = format!(
        r#"
[database]
url = "{url}"
[plugins]
dir = "{plugins}"
watch = false
[runtime]
cache_dir = "{cache}"
[server]
bind = "127.0.0.1:0"
[mcp.servers.crm]
transport = "stdio"
command = "{strata}"
args = ["mcp", "serve", "--transport", "stdio"]
env = {{ STRATA_DATABASE__URL = "{url}", STRATA_LOG = "warn" }}
side_effect_tools = ["update_*", "qualify_*"]
[qualify]
agent = "{AGENT}"
[grants.{AGENT}]
capabilities = ["llm", "mcp", "scoring"]
llm = {{ models = [] }}
mcp = {{ tools = ["crm/get_lead", "crm/update_lead"] }}
scoring = {{ strategies = ["bant"] }}
limits = {{ deadline_ms = 60000 }}
"#,
        plugins = plugins.display(),
        cache = tmp.path().join("cache").display(),
        strata = env!("CARGO_BIN_EXE_strata"),
    );
    let config: Config = toml::from_str(&text).unwrap();
    let db = strata::db::Db::connect(&url, &Default::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db.upsert_lead(&hot_lead("L-9")).await.unwrap();
    let (_, key) = strata::server::auth::create_key(&db, "op", strata::db::Role::Admin)
        .await
        .unwrap();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(strata::server::serve_until(
        config,
        Some(ready_tx),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let base = format!("http://{}", ready_rx.await.unwrap());
    let http = reqwest::Client::new();
    let get = |path: String| {
        let r = http.get(format!("{base}{path}")).bearer_auth(&key).send();
        async move { r.await.unwrap().json::<Value>().await.unwrap() }
    };
    let accepted: Value = http
        .post(format!("{base}/api/v1/leads/qualify/L-9"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_id = accepted["job_id"].as_str().unwrap().to_string();
    let mut job = Value::Null;
    for _ in 0..600 {
        job = get(format!("/api/v1/jobs/{job_id}")).await;
        if matches!(job["status"].as_str(), Some("succeeded" | "dead")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(job["status"], "succeeded", "{job}");
    let result = &job["result"];
    assert_eq!(result["strategy"], "qualify-agent@1.0.0", "{job}");
    assert_eq!(result["fallback_used"], true);

    let scores = get("/api/v1/leads/scores/L-9".into()).await;
    assert!(
        scores.to_string().contains("qualify-agent@1.0.0"),
        "{scores}"
    );
    let execs = get(format!("/api/v1/agents/executions?agent={AGENT}")).await;
    let e = &execs["items"][0];
    assert_eq!(e["lead_id"], "L-9", "{execs}");
    assert_eq!(
        e["mcp_tools_used"],
        json!(["crm/get_lead", "crm/update_lead"])
    );
    // The audit is written in batches: poll until the host's CRM rows are there.
    let mut audit = Value::Null;
    for _ in 0..100 {
        audit = get("/api/v1/audit?plugin=host&capability=mcp".to_string()).await;
        if audit["items"].as_array().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(audit["items"].as_array().unwrap().len(), 2, "{audit}");
    let denied_llm = get(format!("/api/v1/audit?plugin={AGENT}&capability=llm")).await;
    assert_eq!(denied_llm["items"][0]["allowed"], false, "{denied_llm}");
    let status = get("/api/v1/mcp/status".into()).await;
    assert!(status.to_string().contains("crm"), "{status}");
    let tools = get("/api/v1/mcp/servers/crm/tools".into()).await;
    assert!(tools.to_string().contains("update_lead"), "{tools}");
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
