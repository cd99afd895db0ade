//! Business pipelines end to end with real parts: the nine layer plugins (Wasm) in three
//! containers, Strata's own MCP server as the CRM (in process; the golden path also with
//! the `strata` binary over stdio), the BANT scorer through `scoring`, durable events on SQLite and PostgreSQL, Φ_sync, dry-run,
//! hot swap during runs, and the signed booking webhook over HTTP.

mod common;
#[path = "common/pipeline_host.rs"]
mod pipeline_host;
mod support;

use common::server::TestServer;
use common::*;
use pipeline_host::{golden_lead, prepare, setup, setup_with, Crm, Prepared, LAYERS};
use serde_json::{json, Value};
use std::time::Duration;
use strata::db::{Backend, DeliveryStatus, LayerRunStatus, RunStatus};

fn topics(detail: &strata::db::RunDetail) -> Vec<String> {
    detail
        .events
        .iter()
        .map(|e| e.event.topic.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_path_runs_nine_layers_with_phi_sync_at_least_0_88_on_sqlite_and_postgres() {
    for (backend, crm) in [
        (Backend::Sqlite, Crm::Stdio),
        (Backend::Postgres, Crm::Stdio),
        (Backend::Sqlite, Crm::Builtin),
        (Backend::Postgres, Crm::Builtin),
    ] {
        let s = setup_with(backend, "pricing", crm, |_| {}).await;
        let backend = format!("{backend} {crm:?}");
        let summary = s
            .run("golden", golden_lead("Ada@Example.COM "), false)
            .await;
        let detail = s.app.db.get_run(&summary.run_id).await.unwrap().unwrap();
        let failed: Vec<_> = detail
            .layer_runs
            .iter()
            .filter(|l| l.status != LayerRunStatus::Succeeded)
            .map(|l| format!("{}: {:?}", l.layer, l.error))
            .collect();
        assert!(failed.is_empty(), "[{backend}] {failed:?}");
        assert_eq!(
            summary.status,
            RunStatus::Succeeded,
            "[{backend}] {summary:?}"
        );
        let phi = summary.phi_sync.unwrap();
        assert!(phi >= 0.88, "[{backend}] Φ_sync {phi}");
        assert_eq!(detail.run.phi_sync, Some(phi));
        let mut layers: Vec<&str> = detail.layer_runs.iter().map(|l| l.layer.as_str()).collect();
        layers.sort();
        layers.dedup();
        let mut all = LAYERS.to_vec();
        all.sort();
        assert_eq!(layers, all, "[{backend}] every layer ran");
        let t = topics(&detail);
        for topic in [
            "lead.received",
            "lead.accepted",
            "lead.enriched",
            "lead.qualified",
            "meeting.booked",
            "proposal.drafted",
            "deal.approved",
            "invoice.issued",
            "project.created",
            "forecast.updated",
        ] {
            assert!(
                t.contains(&topic.to_string()),
                "[{backend}] no {topic} in {t:?}"
            );
        }
        // Every layer run names its plugin@version; every delivery was acknowledged.
        assert!(detail
            .layer_runs
            .iter()
            .all(|l| l.plugin.as_deref().is_some_and(|p| p.contains('@'))));
        assert!(detail
            .events
            .iter()
            .flat_map(|e| &e.deliveries)
            .all(|d| d.status == DeliveryStatus::Acked));
        // Real work on real data: the CRM (through MCP) holds the normalised, qualified lead.
        let accepted = detail
            .events
            .iter()
            .find(|e| e.event.topic == "lead.accepted")
            .unwrap();
        let lead_id = accepted.event.payload["lead_id"]
            .as_str()
            .unwrap()
            .to_string();
        let lead = s
            .app
            .db
            .get_lead(&lead_id)
            .await
            .unwrap()
            .expect("lead upserted via MCP");
        assert_eq!(lead.email.as_deref(), Some("ada@example.com"));
        assert_eq!(lead.status, strata::domain::LeadStatus::Qualified);
        let invoice = detail
            .events
            .iter()
            .find(|e| e.event.topic == "invoice.issued")
            .unwrap();
        assert!(invoice.event.payload["total"].as_f64().unwrap() > 0.0);
        assert_eq!(invoice.event.payload["lead_id"], json!(lead_id));
        let proposal = detail
            .events
            .iter()
            .find(|e| e.event.topic == "proposal.drafted")
            .unwrap();
        assert_eq!(
            proposal.event.payload["fallback_used"],
            json!(true),
            "no LLM: template"
        );
        // Events carry their producer and causation.
        assert!(accepted.event.producer.starts_with("intake@"));
        assert!(accepted.event.causation_id.is_some());
        s.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_layer_lowers_phi_sync_by_what_the_formula_says() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        failing_layer_case(backend).await;
    }
}

async fn failing_layer_case(backend: Backend) {
    // pricing replaced by a layer that always fails: 3 failed attempts, then the delivery
    // of proposal.drafted to it is marked failed, so finance never approves the deal.
    let s = setup(backend, "fail-layer").await;
    let summary = s
        .run("golden", golden_lead("grace@example.com"), false)
        .await;
    assert_eq!(summary.status, RunStatus::Failed, "{summary:?}");
    let counts = s
        .app
        .db
        .run_container_counts(&summary.run_id)
        .await
        .unwrap();
    let get = |c: &str| counts.iter().find(|x| x.container == c).unwrap().clone();
    // sales: intake, enrichment, qualification succeed; its 4 events are acknowledged.
    let sales = get("sales");
    assert_eq!((sales.layer_runs, sales.layer_runs_succeeded), (3, 3));
    assert_eq!(sales.events_emitted, sales.events_fully_acked);
    // operations: booking and proposal succeed; proposal.drafted is not acknowledged by
    // all subscribers (fail-layer failed it): 1 of 2 events.
    let ops = get("operations");
    assert_eq!((ops.layer_runs, ops.layer_runs_succeeded), (2, 2));
    assert_eq!((ops.events_emitted, ops.events_fully_acked), (2, 1));
    // finance: fail-layer ×3 failed + forecast ×1 succeeded; forecast.updated has no
    // subscriber, so it counts as acknowledged.
    let fin = get("finance");
    assert_eq!((fin.layer_runs, fin.layer_runs_succeeded), (4, 1));
    assert_eq!((fin.events_emitted, fin.events_fully_acked), (1, 1));
    let expected = (1.0 + 0.5 * 1.0 + 0.25 * 1.0) / 3.0;
    let phi = summary.phi_sync.unwrap();
    assert!(
        (phi - expected).abs() < 1e-9,
        "Φ_sync {phi}, formula {expected}"
    );
    let detail = s.app.db.get_run(&summary.run_id).await.unwrap().unwrap();
    let err = detail
        .layer_runs
        .iter()
        .find(|l| l.layer == "fail-layer")
        .and_then(|l| l.error.clone())
        .unwrap();
    assert!(err.contains("fail-layer always fails"), "{err}");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layers_state_is_stored_with_its_run_and_a_failed_run_stores_none() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        layer_state_case(backend).await;
    }
}

async fn layer_state_case(backend: Backend) {
    let json_of = |v: Option<Vec<u8>>| -> Value { serde_json::from_slice(&v.unwrap()).unwrap() };
    // Succeeded: forecast's writes (the deal and the aggregate) are stored with its runs;
    // its second run (invoice.issued) read the first one's.
    let s = setup(backend, "pricing").await;
    let summary = s
        .run("golden", golden_lead("kate@example.com"), false)
        .await;
    assert_eq!(
        summary.status,
        RunStatus::Succeeded,
        "[{backend}] {summary:?}"
    );
    let keys = s.app.db.state_keys("forecast").await.unwrap();
    assert_eq!(keys.len(), 2, "[{backend}] {keys:?}");
    assert!(
        keys.contains(&"forecast".to_string()),
        "[{backend}] {keys:?}"
    );
    let deal = json_of(s.app.db.state_get("forecast", &keys[0]).await.unwrap());
    assert_eq!(deal["stage"], json!("invoiced"), "[{backend}] {deal}");
    assert_eq!(
        json_of(
            s.app
                .db
                .state_get("invoicing", "invoice_seq")
                .await
                .unwrap()
        ),
        json!(1)
    );
    s.close().await;

    // Failed: forecast writes its state, then its output is refused by its schema: the
    // failed layer runs store no state (other layers' state is stored).
    let s = setup_with(backend, "pricing", Crm::Builtin, |plugins| {
        std::fs::write(
            plugins.join("forecast/schemas/output.json"),
            r#"{"not": {}}"#,
        )
        .unwrap();
    })
    .await;
    let summary = s
        .run("golden", golden_lead("kate@example.com"), false)
        .await;
    assert_eq!(summary.status, RunStatus::Failed, "[{backend}] {summary:?}");
    let detail = s.app.db.get_run(&summary.run_id).await.unwrap().unwrap();
    let forecast: Vec<_> = detail
        .layer_runs
        .iter()
        .filter(|l| l.layer == "forecast")
        .collect();
    assert!(!forecast.is_empty());
    assert!(
        forecast.iter().all(|l| l.status == LayerRunStatus::Failed),
        "[{backend}] {forecast:?}"
    );
    assert!(
        s.app.db.state_keys("forecast").await.unwrap().is_empty(),
        "[{backend}] a failed layer run stored state"
    );
    assert_eq!(
        json_of(
            s.app
                .db
                .state_get("invoicing", "invoice_seq")
                .await
                .unwrap()
        ),
        json!(1)
    );
    s.close().await;
}

/// Concurrent runs read and write the same `state` keys (booking's day index, invoicing's
/// number sequence, forecast's aggregate). A layer run whose reads are stale when it
/// commits (another run stored one of those keys meanwhile) is not kept but run again on
/// fresh reads: no slot is booked twice, no invoice number issued twice, no deal lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_never_book_one_slot_twice_or_lose_a_state_update() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        concurrent_state_case(backend).await;
    }
}

async fn concurrent_state_case(backend: Backend) {
    const RUNS: usize = 8;
    let json_of = |v: Option<Vec<u8>>| -> Value { serde_json::from_slice(&v.unwrap()).unwrap() };
    // What this proves is the state check, not wall-clock limits: eight runs on two CPUs
    // (beside the other tests) can keep a layer off the CPU past the default 200 ms
    // deadline, which fails it three times and then the run. (The manifests ask for
    // 10 s; the grants in `GRANTS` allow it — without them the default is the ceiling.)
    let s = setup_with(backend, "pricing", Crm::Builtin, |plugins| {
        for layer in ["booking", "kickoff", "pricing", "invoicing", "forecast"] {
            let manifest = plugins.join(layer).join("plugin.toml");
            let text = std::fs::read_to_string(&manifest).unwrap();
            assert!(!text.contains("[limits]"), "{layer} already sets limits");
            std::fs::write(
                &manifest,
                format!("{text}\n[limits]\ndeadline_ms = 10000\n"),
            )
            .unwrap();
        }
    })
    .await;
    let tasks: Vec<_> = (0..RUNS)
        .map(|i| {
            let p = s.app.pipelines.clone();
            tokio::spawn(async move {
                let lead = golden_lead(&format!("race{i}@example.com"));
                let created = p.create_run("golden", lead, false, None, false).await?;
                p.execute(&created.run.id, None).await
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        let summary = t.await.unwrap().unwrap();
        let detail = s.app.db.get_run(&summary.run_id).await.unwrap().unwrap();
        assert_eq!(
            summary.status,
            RunStatus::Succeeded,
            "[{backend}] {summary:?}; failed layer runs: {:?}",
            detail
                .layer_runs
                .iter()
                .filter(|l| l.status == LayerRunStatus::Failed)
                .map(|l| (&l.layer, l.error.as_deref()))
                .collect::<Vec<_>>()
        );
        for l in detail
            .layer_runs
            .iter()
            .filter(|l| l.status == LayerRunStatus::Failed)
        {
            let error = l.error.as_deref().unwrap_or("");
            assert!(error.contains("state conflict"), "[{backend}] {error}");
            conflicts += 1;
        }
    }
    let db = &s.app.db;
    let mut starts = std::collections::BTreeSet::new();
    for key in db.state_keys("booking").await.unwrap() {
        if key.starts_with("booking:") {
            let b = json_of(db.state_get("booking", &key).await.unwrap());
            assert!(
                starts.insert(b["start_ms"].as_i64().unwrap()),
                "[{backend}] slot {} booked twice",
                b["start"]
            );
        }
    }
    assert_eq!(starts.len(), RUNS, "[{backend}] {starts:?}");
    assert_eq!(
        json_of(db.state_get("invoicing", "invoice_seq").await.unwrap()),
        json!(RUNS),
        "[{backend}] invoice numbers"
    );
    let forecast = json_of(db.state_get("forecast", "forecast").await.unwrap());
    assert_eq!(
        forecast["stages"]["invoiced"]["count"],
        json!(RUNS),
        "[{backend}] {forecast}"
    );
    eprintln!(
        "[{backend}] {RUNS} concurrent runs: {conflicts} layer runs retried on a state conflict"
    );
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_event_lowers_phi_sync_and_is_delivered_when_the_layer_returns() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        unacknowledged_event_case(backend).await;
    }
}

async fn unacknowledged_event_case(backend: Backend) {
    let s = setup(backend, "pricing").await;
    let forecast = s.app.manager.registry().slot("forecast").unwrap();
    forecast.set_disabled(true);
    let summary = s
        .run("golden", golden_lead("alan@example.com"), false)
        .await;
    assert_eq!(summary.status, RunStatus::Incomplete, "{summary:?}");
    assert_eq!(summary.failed_layer_runs, 0);
    // operations: meeting.booked ✓, proposal.drafted ✗ (forecast pending), project.created ✓;
    // finance: deal.approved ✓, invoice.issued ✗ (forecast pending).
    let expected = (1.0 + 2.0 / 3.0 + 1.0 / 2.0) / 3.0;
    let phi = summary.phi_sync.unwrap();
    assert!(
        (phi - expected).abs() < 1e-9,
        "Φ_sync {phi}, formula {expected}"
    );
    let detail = s.app.db.get_run(&summary.run_id).await.unwrap().unwrap();
    let pending: Vec<_> = detail
        .events
        .iter()
        .flat_map(|e| &e.deliveries)
        .filter(|d| d.status == DeliveryStatus::Pending)
        .map(|d| d.subscriber.as_str())
        .collect();
    assert_eq!(pending, vec!["forecast", "forecast"]);
    // At least once: the layer comes back, the run resumes, the events are delivered.
    forecast.set_disabled(false);
    let resumed = s
        .app
        .pipelines
        .execute(&summary.run_id, None)
        .await
        .unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{resumed:?}");
    assert_eq!(resumed.phi_sync, Some(1.0));
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_holds_back_side_effects_and_leaves_the_crm_untouched() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let s = setup(backend, "pricing").await;
        let leads_before = s.app.db.count_leads(&Default::default()).await.unwrap();
        let summary = s.run("golden", golden_lead("dry@example.com"), true).await;
        assert!(summary.dry_run);
        assert_eq!(
            summary.status,
            RunStatus::Succeeded,
            "[{backend}] {summary:?}"
        );
        let detail = s.app.db.get_run(&summary.run_id).await.unwrap().unwrap();
        assert!(detail.run.dry_run);
        assert!(detail.events.iter().all(|e| e.event.dry_run));
        // Nothing reached the CRM behind the MCP server, nor plugin state.
        assert_eq!(
            s.app.db.count_leads(&Default::default()).await.unwrap(),
            leads_before
        );
        for plugin in ["booking", "invoicing", "forecast", "kickoff"] {
            assert_eq!(
                s.app.db.state_count(plugin).await.unwrap(),
                0,
                "[{backend}] {plugin} state written"
            );
        }
        // ... and each layer run says what it would have done.
        let held: Vec<(String, String)> = detail
            .layer_runs
            .iter()
            .filter_map(|l| {
                l.held_back
                    .as_ref()
                    .map(|h| (l.layer.clone(), h.to_string()))
            })
            .collect();
        let intake = held
            .iter()
            .find(|(l, _)| l == "intake")
            .expect("intake held back its upsert");
        assert!(intake.1.contains("crm/upsert_lead"), "{intake:?}");
        assert!(
            held.iter()
                .any(|(l, h)| l == "invoicing" && h.contains("invoice")),
            "{held:?}"
        );
        s.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_trigger_payload_fails_the_layer_run_with_the_schema_violation_named() {
    let s = setup(Backend::Sqlite, "pricing").await;
    let summary = s
        .run(
            "golden",
            json!({"email": 42, "name": ["not", "a", "string"]}),
            false,
        )
        .await;
    assert_eq!(summary.status, RunStatus::Failed);
    let detail = s.app.db.get_run(&summary.run_id).await.unwrap().unwrap();
    let l = &detail.layer_runs[0];
    assert_eq!(l.layer, "intake");
    let err = l.error.as_deref().unwrap();
    assert!(
        err.contains("lead-received.json") && err.contains("/email"),
        "{err}"
    );
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_capability_publishes_within_the_run_and_denies_ungranted_topics() {
    let s = setup(Backend::Sqlite, "pricing").await;
    let first = s.run("probe", json!({"n": 1}), false).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    let second = s.run("probe", json!({"n": 2}), false).await;
    let detail = s.app.db.get_run(&second.run_id).await.unwrap().unwrap();
    let out = detail.layer_runs[0].output.clone().unwrap();
    let published = out["published_id"].as_str().unwrap();
    // The event published during the call is stored with the run, as its producer's.
    let ev = detail
        .events
        .iter()
        .find(|e| e.event.id == published)
        .unwrap();
    assert_eq!(ev.event.topic, "probe.published");
    assert!(ev.event.producer.starts_with("events-probe@"));
    // The second run reads the first run's event; the ungranted topic is denied.
    assert!(!out["read"].as_array().unwrap().is_empty(), "{out}");
    assert!(
        out["forbidden_error"]
            .as_str()
            .unwrap()
            .contains("not granted"),
        "{out}"
    );
    // The denied publish is audited (the audit writer is batched: poll briefly).
    let filter = strata::db::AuditFilter {
        plugin: Some("events-probe".into()),
        capability: Some("events".into()),
        allowed: Some(false),
        ..Default::default()
    };
    let mut denied = Vec::new();
    for _ in 0..50 {
        denied = s.app.db.list_audit(&filter).await.unwrap();
        if !denied.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        denied
            .iter()
            .any(|a| a.record.target.as_deref() == Some("topic:forbidden.topic")),
        "{denied:?}"
    );
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_swapped_while_runs_flow_fails_no_run() {
    let s = setup(Backend::Sqlite, "pricing").await;
    let dir = s.plugins.join("pricing");
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    let mgr = s.app.manager.clone();
    let swapper = tokio::spawn(async move {
        for i in 1..=6 {
            let m = manifest.replace("version = \"1.0.0\"", &format!("version = \"1.0.{i}\""));
            std::fs::write(dir.join("plugin.toml"), m).unwrap();
            mgr.load_dir(&dir).await.expect("reload pricing");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut versions = std::collections::BTreeSet::new();
    for i in 0..6 {
        let summary = s
            .run(
                "golden",
                golden_lead(&format!("swap{i}@example.com")),
                false,
            )
            .await;
        assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
        let detail = s.app.db.get_run(&summary.run_id).await.unwrap().unwrap();
        for l in detail.layer_runs.iter().filter(|l| l.layer == "pricing") {
            versions.insert(l.plugin.clone().unwrap());
        }
    }
    swapper.await.unwrap();
    assert!(!versions.is_empty());
    s.close().await;
}

const SECRET: &str = "whsec-test-0123456789";

fn signed(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    delivery: Option<&str>,
    secret: &str,
    at: i64,
) -> reqwest::RequestBuilder {
    let mut r = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-strata-timestamp", at.to_string())
        .header(
            "x-strata-signature",
            strata::pipelines::webhook::sign(
                secret.as_bytes(),
                at,
                delivery.unwrap_or(""),
                body.as_bytes(),
            ),
        )
        .body(body.to_string());
    if let Some(d) = delivery {
        r = r.header("x-strata-delivery", d);
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_booking_webhook_runs_once_per_delivery_and_rejects_bad_signatures() {
    // The only test that reads this variable; set before the server starts.
    std::env::set_var("STRATA_TEST_WEBHOOK_SECRET", SECRET);
    let Prepared {
        mut config,
        url,
        tmp: _tmp,
        guard: _guard,
        ..
    } = prepare(Backend::Sqlite, "pricing", Crm::Builtin, |_| {}).await;
    config.server.bind = "127.0.0.1:0".into();
    config.server.rate_limit_per_second = 10_000;
    config.server.rate_limit_burst = 10_000;
    let db = migrated_db(&url).await;
    db.upsert_lead(&hot_lead("L-77")).await.unwrap();
    let server = TestServer::start(config).await;
    let addr = server.addr;
    let hook = format!("http://{addr}/api/v1/webhooks/booking");
    let http = reqwest::Client::new();
    let now = strata::domain::now_ms() / 1000;
    let body = json!({
        "delivery_id": "d-1", "lead_id": "L-77", "start": "2026-11-24T10:00:00Z",
        "duration_minutes": 30, "attendee_email": "cfo@example.com", "title": "Discovery call"
    })
    .to_string();

    // Wrong secret, missing signature, stale timestamp, missing delivery id: refused.
    let r = signed(&http, &hook, &body, Some("d-1"), "wrong", now)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("signature does not match"));
    let r = http.post(&hook).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = signed(&http, &hook, &body, Some("d-1"), SECRET, now - 3600)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("replay"));
    let r = signed(&http, &hook, &body, None, SECRET, now)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let big = json!({"lead_id": "L-77", "pad": "x".repeat(5000)}).to_string();
    let r = signed(&http, &hook, &big, Some("d-big"), SECRET, now)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        db.list_runs(None, 10).await.unwrap().len(),
        0,
        "nothing stored for refused deliveries"
    );

    // A good delivery: 202 once stored; the same delivery again: 200, nothing done twice.
    let r = signed(&http, &hook, &body, Some("d-1"), SECRET, now)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["duplicate"], json!(false));
    let r = signed(&http, &hook, &body, Some("d-1"), SECRET, now + 1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(
        (again["duplicate"].clone(), again["run_id"].clone()),
        (json!(true), first["run_id"].clone())
    );
    assert_eq!(db.list_runs(None, 10).await.unwrap().len(), 1);
    // A captured delivery replayed within the tolerance under a new delivery id: the id
    // is signed, so it is refused and starts no second run.
    let captured = signed(&http, &hook, &body, Some("d-1"), SECRET, now)
        .build()
        .unwrap();
    let mut replay = http
        .post(captured.url().clone())
        .body(body.clone())
        .header("content-type", "application/json");
    for (k, v) in captured.headers() {
        if k.as_str() != "x-strata-delivery" && k.as_str() != "content-type" {
            replay = replay.header(k, v);
        }
    }
    let r = replay
        .header("x-strata-delivery", "d-replayed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("signature does not match"));
    assert_eq!(
        db.list_runs(None, 10).await.unwrap().len(),
        1,
        "no second run"
    );

    // The job runs it: booking → proposal → pricing → kickoff, invoicing, forecast.
    let run_id = first["run_id"].as_str().unwrap().to_string();
    let mut detail = None;
    for _ in 0..300 {
        let d = db.get_run(&run_id).await.unwrap().unwrap();
        if d.run.finished_at.is_some() {
            detail = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let detail = detail.expect("run finished");
    assert_eq!(
        detail.run.status,
        RunStatus::Succeeded,
        "{:?}",
        detail.layer_runs
    );
    let t = topics(&detail);
    assert_eq!(t[0], "booking.received");
    assert!(
        t.contains(&"meeting.booked".to_string()) && t.contains(&"invoice.issued".to_string()),
        "{t:?}"
    );
    assert_eq!(detail.events[0].event.producer, "webhook:booking");
    // Φ_sync of the run is exported for Prometheus.
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("phi_sync_last{pipeline=\"golden\"}")
            && metrics.contains("phi_sync_rolling_mean{pipeline=\"golden\"}"),
        "{metrics}"
    );

    // The run and the containers' event tracking through the API.
    let (_, reader) = strata::server::auth::create_key(&db, "r", strata::db::Role::Reader)
        .await
        .unwrap();
    let (_, operator) = strata::server::auth::create_key(&db, "o", strata::db::Role::Operator)
        .await
        .unwrap();
    let get = |path: String| {
        let http = http.clone();
        let reader = reader.clone();
        async move {
            let r = http
                .get(format!("http://{addr}{path}"))
                .bearer_auth(&reader)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Value>().await.unwrap()
        }
    };
    let run = get(format!("/api/v1/pipelines/runs/{run_id}")).await;
    assert_eq!(
        (run["dry_run"].clone(), run["status"].clone()),
        (json!(false), json!("succeeded"))
    );
    assert!(run["phi_sync"].as_f64().unwrap() >= 0.88, "{run}");
    assert!(run["layer_runs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["plugin"].is_string()));
    let containers = get("/api/v1/containers".into()).await;
    let names: Vec<&str> = containers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["container"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["finance", "operations", "sales"], "{containers}");
    let events = get("/api/v1/containers/operations/events?topic=meeting.booked".into()).await;
    assert_eq!(events["items"][0]["topic"], "meeting.booked", "{events}");
    assert_eq!(
        events["items"][0]["deliveries"][0]["status"], "acked",
        "{events}"
    );
    // A dry run started over the API says so.
    let r = http
        .post(format!("http://{addr}/api/v1/pipelines/golden/runs"))
        .bearer_auth(&operator)
        .json(&json!({"payload": golden_lead("api@example.com"), "dry_run": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.unwrap();
    assert_eq!(accepted["dry_run"], true);
    let r = http
        .post(format!("http://{addr}/api/v1/pipelines/golden/runs"))
        .bearer_auth(&reader)
        .json(&json!({"payload": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "starting a run needs the operator role");

    server.stop().await;
}
