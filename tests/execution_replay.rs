//! Replay of a recorded agent execution (issue 22): the qualification agent runs with
//! `record_executions = true` against an LLM double; its tape (the `llm` calls with what
//! they answered, redacted of configured secrets) is stored with the execution. Replayed
//! with the same version after the double is gone, it reproduces the output with no
//! divergence; replayed with another agent, the divergence is reported. Recording is off
//! unless granted. Pipeline layer runs record and replay the same way, under their layer
//! run's id.

mod common;
#[path = "support/llm_mock.rs"]
mod llm_mock;
#[path = "common/pipeline_host.rs"]
mod pipeline_host;
mod support;

use common::llm::{set_keys, OPENAI_KEY, OPENAI_KEY_VAR};
use common::*;
use llm_mock::{Behaviour, MockLlm};
use pipeline_host::{golden_lead, prepare, start, Crm};
use serde_json::{json, Value};
use strata::app::App;
use strata::challenger::execution_replay::replay_execution;
use strata::config::Config;
use strata::db::{Backend, ExecutionFilter, LeadFilter, RunStatus, TapeKind};

const AGENT: &str = "qualify-agent";

fn answer() -> Value {
    json!({
        "score": 82.5, "priority": "high",
        "recommended_action": "Call the CFO this week",
        "reasoning": "Budget approved, VP title, evaluating now",
        "confidence": 0.8,
        "factors": {"budget": 90, "authority": 85, "fit": 80, "timeline": 75, "complexity": 60}
    })
}

struct Setup {
    app: App,
    /// The configuration file the host was started with (for the CLI).
    config_path: std::path::PathBuf,
    llm: Option<MockLlm>,
    _tmp: tempfile::TempDir,
}

/// A host with the agent, BANT (its fallback) and `mcp-agent` (another agent, to replay
/// with) loaded; the LLM double behind alias `qualifier`, its key a configured secret;
/// `record` appended to the agent's grant. Lead L-1's notes quote the key.
async fn setup(record: &str) -> Setup {
    set_keys();
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    install(&plugins, "bant", "bant");
    install(&plugins, "qualify-agent", AGENT);
    install(&plugins, "testing/mcp-agent", "mcp-agent");
    let url = sqlite_url(tmp.path());
    let llm = MockLlm::start().await;
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
api_key_env = "{OPENAI_KEY_VAR}"
timeout_ms = 3000
structured_output = "json_schema"
[llm.models.qualifier]
provider = "mock"
model = "mock-model"
[llm.retry]
max_attempts = 1
[qualify]
agent = "{AGENT}"
[grants.bant]
capabilities = []
[grants.{AGENT}]
capabilities = ["llm", "scoring"]
llm = {{ models = ["qualifier"] }}
scoring = {{ strategies = ["bant"] }}
limits = {{ deadline_ms = 60000 }}
{record}
[grants.mcp-agent]
capabilities = ["mcp"]
mcp = {{ tools = ["mut/lookup"] }}
"#,
        plugins = plugins.display(),
        cache = tmp.path().join("cache").display(),
        llm_url = llm.url(),
    );
    let config_path = tmp.path().join("strata.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config: Config = toml::from_str(&text).expect("test config");
    config.validate().expect("valid config");
    let db = strata::db::Db::connect(&url, &Default::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let mut lead = hot_lead("L-1");
    lead.notes = Some(format!("they pasted our key {OPENAI_KEY} in the form"));
    db.upsert_lead(&lead).await.unwrap();
    let app = App::with_db(config, db).unwrap();
    let report = app.manager.load_all().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    Setup {
        app,
        config_path,
        llm: Some(llm),
        _tmp: tmp,
    }
}

/// Qualifies L-1 with the LLM answering once; returns the agent's output and execution id.
async fn qualify(s: &Setup) -> (Value, String) {
    s.llm.as_ref().unwrap().push(Behaviour::json(answer()));
    let agent = s.app.manager.registry().get(AGENT).unwrap();
    let v = s
        .app
        .qualify
        .run(agent, "L-1", Some("rid-replay".into()))
        .await
        .expect("qualified");
    assert_eq!(v["fallback_used"], false, "{v}");
    let execs = s
        .app
        .db
        .list_executions(&ExecutionFilter::default())
        .await
        .unwrap();
    (v, execs[0].id.clone())
}

/// `strata replay execution ID ARGS` with the host's configuration: its stdout.
fn replay_cli(s: &Setup, id: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["replay", "execution", id, "--config"])
        .arg(&s.config_path)
        .args(args)
        .env("STRATA_LOG", "error")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_execution_replays_offline_and_a_changed_version_diverges() {
    let mut s = setup("record_executions = true").await;
    let (_, id) = qualify(&s).await;
    // The key reached the LLM (the lead's notes are in the prompt)…
    let sent = s.llm.as_ref().unwrap().requests()[0].body.to_string();
    assert!(sent.contains(OPENAI_KEY), "{sent}");

    // …and the tape holds the call, redacted.
    let tape = s
        .app
        .db
        .get_execution_tape(&id)
        .await
        .unwrap()
        .expect("a tape");
    assert_eq!(tape.agent, AGENT);
    assert_eq!(tape.tape.len(), 1, "{:?}", tape.tape);
    assert_eq!(tape.tape[0].call.capability, "llm");
    assert_eq!(tape.tape[0].call.operation, "complete");
    let stored = serde_json::to_string(&tape.tape).unwrap();
    assert!(!stored.contains(OPENAI_KEY), "{stored}");
    assert!(stored.contains("[redacted]"), "{stored}");
    assert!(!tape.input.contains(OPENAI_KEY), "{}", tape.input);
    assert!(tape.output.is_some());

    // The LLM is gone: a replay that reached it would fail (and fall back to BANT).
    drop(s.llm.take());
    let agent = s.app.manager.registry().get(AGENT).unwrap();
    let r = replay_execution(&s.app.db, &id, agent).await.unwrap();
    assert!(r.same, "{r:#?}");
    assert_eq!((r.calls_recorded, r.calls_matched), (1, 1));
    assert_eq!((r.calls_unmatched, r.calls_not_made), (0, 0));
    assert!(r.output_equal && r.output_diff.is_empty(), "{r:#?}");
    assert!(r.error.is_none(), "{r:#?}");
    assert_eq!(r.replayed, "qualify-agent@1.0.0");

    // The CLI gives the same report.
    let cli: Value = serde_json::from_str(&replay_cli(&s, &id, &["--json"])).unwrap();
    assert_eq!(cli["same"], true, "{cli}");
    assert_eq!(cli["calls_matched"], 1, "{cli}");
    let text = replay_cli(&s, &id, &["--plugin", "mcp-agent@1.0.0"]);
    assert!(text.contains("diverged"), "{text}");
    assert!(
        text.contains("first divergence: call 0: mcp call-tool mcp:mut/lookup"),
        "{text}"
    );

    // Another agent calls differently: the first call is the divergence, the recorded
    // LLM call is never made, the output differs.
    let other = s.app.manager.registry().get("mcp-agent").unwrap();
    let r = replay_execution(&s.app.db, &id, other).await.unwrap();
    assert!(!r.same, "{r:#?}");
    assert_eq!(r.calls_matched, 0);
    assert_eq!(r.calls_not_made, 1);
    let d = r.first_divergence.as_ref().expect("a divergence");
    assert_eq!(d.index, 0);
    assert_eq!(d.actual.capability, "mcp");
    assert_eq!(d.actual.target, "mcp:mut/lookup");
    assert_eq!(d.expected.as_ref().unwrap().capability, "llm");
    assert!(!r.output_equal, "{r:#?}");
    assert!(!r.output_diff.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_is_off_unless_granted() {
    let s = setup("").await;
    let (_, id) = qualify(&s).await;
    assert!(s.app.db.get_execution_tape(&id).await.unwrap().is_none());
    let agent = s.app.manager.registry().get(AGENT).unwrap();
    let e = replay_execution(&s.app.db, &id, agent).await.unwrap_err();
    assert!(e.to_string().contains("record_executions"), "{e}");
}

/// Intake (MCP calls to the CRM, one of them a side-effect tool) and forecast (`state`
/// reads and writes) record their layer runs in the golden pipeline; each replays from its
/// tape with no divergence, and nothing reaches the CRM or `state`; the forecast run
/// replayed with another layer diverges; an unrecorded layer run has no tape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_layer_run_replays_offline_and_another_layer_diverges() {
    let mut p = prepare(Backend::Sqlite, "pricing", Crm::Builtin, |_| {}).await;
    for layer in ["intake", "forecast", "events-probe"] {
        p.config.grants.get_mut(layer).unwrap().record_executions = true;
    }
    let s = start(p).await;
    let summary = s
        .run("golden", golden_lead("replay@example.com"), false)
        .await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    let detail = s.app.db.get_run(&summary.run_id).await.unwrap().unwrap();
    let run_of = |layer: &str| {
        detail
            .layer_runs
            .iter()
            .find(|l| l.layer == layer)
            .unwrap_or_else(|| panic!("no {layer} run"))
            .id
            .clone()
    };
    let leads = s.app.db.count_leads(&LeadFilter::default()).await.unwrap();
    let state = |db: strata::db::Db| async move {
        let mut all = Vec::new();
        for k in db.state_keys("forecast").await.unwrap() {
            all.push((k.clone(), db.state_get("forecast", &k).await.unwrap()));
        }
        all
    };
    let forecast_state = state(s.app.db.clone()).await;
    let registry = s.app.manager.registry();

    for layer in ["intake", "forecast"] {
        let id = run_of(layer);
        let tape = s.app.db.get_execution_tape(&id).await.unwrap();
        let tape = tape.unwrap_or_else(|| panic!("{layer}: no tape"));
        assert_eq!((tape.kind, tape.agent.as_str()), (TapeKind::Layer, layer));
        assert!(!tape.tape.is_empty(), "{layer}: no calls taped");
        let capability = if layer == "intake" { "mcp" } else { "state" };
        assert!(
            tape.tape.iter().all(|e| e.call.capability == capability),
            "{layer}: {:?}",
            tape.tape
        );
        let r = replay_execution(&s.app.db, &id, registry.get(layer).unwrap())
            .await
            .unwrap();
        assert!(r.same, "{layer}: {r:#?}");
        assert_eq!(r.kind, TapeKind::Layer);
        assert_eq!(r.calls_matched, r.calls_recorded, "{layer}: {r:#?}");
    }
    // The probe reads the first probe run's event and publishes one (its id in its
    // output): replayed, the read and the publish are answered from the tape.
    s.run("probe", json!({"n": 1}), false).await;
    let probe = s.run("probe", json!({"n": 2}), false).await;
    let probe = s.app.db.get_run(&probe.run_id).await.unwrap().unwrap();
    let id = probe.layer_runs[0].id.clone();
    let audited = |db: strata::db::Db| async move {
        let filter = strata::db::AuditFilter {
            plugin: Some("events-probe".into()),
            ..Default::default()
        };
        db.list_audit(&filter).await.unwrap().len()
    };
    s.app.audit.flush().await;
    let audit_rows = audited(s.app.db.clone()).await;
    let r = replay_execution(&s.app.db, &id, registry.get("events-probe").unwrap())
        .await
        .unwrap();
    assert!(r.same, "{r:#?}");
    let ops: Vec<_> = s
        .app
        .db
        .get_execution_tape(&id)
        .await
        .unwrap()
        .unwrap()
        .tape;
    let ops: Vec<_> = ops.iter().map(|e| e.call.operation.as_str()).collect();
    assert!(ops.contains(&"read") && ops.contains(&"publish"), "{ops:?}");
    s.app.audit.flush().await;
    assert_eq!(
        audited(s.app.db.clone()).await,
        audit_rows,
        "a replay is not audited"
    );

    // Nothing reached the CRM or the layer's `state`.
    assert_eq!(
        s.app.db.count_leads(&LeadFilter::default()).await.unwrap(),
        leads
    );
    assert_eq!(state(s.app.db.clone()).await, forecast_state);

    // Invoicing keeps `state` too, and calls it differently.
    let id = run_of("forecast");
    let r = replay_execution(&s.app.db, &id, registry.get("invoicing").unwrap())
        .await
        .unwrap();
    assert!(!r.same, "{r:#?}");
    assert!(r.error.is_some() || !r.output_equal, "{r:#?}");

    // An agent cannot replay a layer run; a layer run not recorded has no tape.
    let e = replay_execution(&s.app.db, &id, registry.get("bant").unwrap())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("recorded by a layer"), "{e}");
    let e = replay_execution(
        &s.app.db,
        &run_of("booking"),
        registry.get("booking").unwrap(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("record_executions"), "{e}");
    s.close().await;
}
