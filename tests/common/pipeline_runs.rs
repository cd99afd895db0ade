//! Pipeline runs and layer-run commits built by hand for the database tests
//! (`tests/db_pipelines.rs`): a run to create, its subscribers, the commit of a layer run
//! on a delivery and its result, the state a layer read or wrote, and a whole run with a
//! known outcome per container ([`degraded_run`]).

use serde_json::json;
use strata::db::{
    CommitOutcome, ContainerCounts, CreatedRun, Db, EventRecord, LayerRunCommit, LayerRunRecord,
    LayerRunResult, NewEvent, NewRun, StateEntry, Subscriber,
};

pub fn sub(layer: &str, container: &str) -> Subscriber {
    Subscriber::new(layer, container)
}

pub fn new_run(pipeline: &str, container: &str, topic: &str, subs: Vec<Subscriber>) -> NewRun {
    NewRun {
        pipeline: pipeline.into(),
        dry_run: false,
        trigger: NewEvent::new(container, topic, json!({"lead": "L-1"}), "api"),
        subscribers: subs,
        request_id: Some("req-1".into()),
        job: None,
    }
}

/// A commit of `layer` (in `container`) on `event_id` of `run_id`.
pub fn commit(
    run_id: &str,
    layer: &str,
    container: &str,
    event_id: &str,
    topic: &str,
    result: LayerRunResult,
) -> LayerRunCommit {
    LayerRunCommit {
        run_id: run_id.into(),
        layer: layer.into(),
        plugin: Some(format!("{layer}@1.0.0")),
        container: container.into(),
        event_id: event_id.into(),
        topic: topic.into(),
        attempt: 1,
        duration_ms: 1.5,
        started_at: 1_000,
        finished_at: 1_002,
        held_back: None,
        result,
        state_writes: Vec::new(),
        state_reads: Vec::new(),
    }
}

pub fn ok(output: serde_json::Value, emitted: Vec<(NewEvent, Vec<Subscriber>)>) -> LayerRunResult {
    LayerRunResult::Succeeded {
        output,
        output_json: None,
        emitted,
    }
}

pub fn failed(error: &str, final_attempt: bool) -> LayerRunResult {
    LayerRunResult::Failed {
        error: error.into(),
        final_attempt,
    }
}

/// A run of `pipeline` whose trigger (in `sales`, on `topic`) is delivered to `intake`
/// (in `sales`).
pub async fn intake_run(db: &Db, pipeline: &str, topic: &str) -> CreatedRun {
    db.create_run(&new_run(
        pipeline,
        "sales",
        topic,
        vec![sub("intake", "sales")],
    ))
    .await
    .unwrap()
}

/// A commit of `intake` (in `sales`) on the trigger of `created`.
pub fn intake_commit(created: &CreatedRun, result: LayerRunResult) -> LayerRunCommit {
    commit(
        &created.run.id,
        "intake",
        "sales",
        &created.trigger.id,
        &created.trigger.topic,
        result,
    )
}

/// A key of `plugin`'s state with a value (`None`: absent, or deleted).
pub fn state_entry(plugin: &str, key: &str, value: Option<&str>) -> StateEntry {
    StateEntry {
        plugin: plugin.into(),
        key: key.into(),
        value: value.map(|v| v.as_bytes().to_vec()),
    }
}

pub fn committed(outcome: CommitOutcome) -> (LayerRunRecord, Vec<EventRecord>) {
    match outcome {
        CommitOutcome::Committed {
            layer_run, emitted, ..
        } => (layer_run, emitted),
        CommitOutcome::Duplicate => panic!("expected a committed layer run, got Duplicate"),
    }
}

pub fn counts(container: &str, lr: i64, lr_ok: i64, ev: i64, ev_acked: i64) -> ContainerCounts {
    ContainerCounts {
        container: container.into(),
        layer_runs: lr,
        layer_runs_succeeded: lr_ok,
        events_emitted: ev,
        events_fully_acked: ev_acked,
    }
}

/// The run the counting tests use, built by hand:
///
/// * trigger `E0` (sales, `lead.received`) → `intake` (sales): succeeds, emits
///   `E1` (sales, `lead.normalized`) → `enrichment` (sales) and `booking` (operations),
///   and `E2` (sales, `lead.audit`) with no subscriber;
/// * `enrichment` fails on its final attempt (one failed layer run; `E1` not fully acked);
/// * `booking` (operations) succeeds, emits `E3` (operations, `meeting.booked`) →
///   `proposal` (operations), left pending, and `E4` (finance, `deal.opened`) with no
///   subscriber.
///
/// Expected per container: sales 2 layer runs (1 succeeded), 3 events (E0, E2 fully
/// acked); operations 1 layer run (1 succeeded), 1 event (0 fully acked); finance 0 layer
/// runs, 1 event (1 fully acked).
pub async fn degraded_run(db: &Db) -> CreatedRun {
    let created = intake_run(db, "golden", "lead.received").await;
    let run_id = created.run.id.clone();
    assert!(db.start_run(&run_id).await.unwrap());
    let (_, emitted) = committed(
        db.commit_layer_run(&intake_commit(
            &created,
            ok(
                json!({"normalized": true}),
                vec![
                    (
                        NewEvent::new("sales", "lead.normalized", json!({"n": 1}), "intake@1.0.0"),
                        vec![sub("enrichment", "sales"), sub("booking", "operations")],
                    ),
                    (
                        NewEvent::new("sales", "lead.audit", json!({}), "intake@1.0.0"),
                        vec![],
                    ),
                ],
            ),
        ))
        .await
        .unwrap(),
    );
    let e1 = emitted[0].id.clone();
    let mut enrich = commit(
        &run_id,
        "enrichment",
        "sales",
        &e1,
        "lead.normalized",
        failed("mcp server unreachable", true),
    );
    enrich.attempt = 1;
    committed(db.commit_layer_run(&enrich).await.unwrap());
    committed(
        db.commit_layer_run(&commit(
            &run_id,
            "booking",
            "operations",
            &e1,
            "lead.normalized",
            ok(
                json!({"meeting": "M-1"}),
                vec![
                    (
                        NewEvent::new(
                            "operations",
                            "meeting.booked",
                            json!({"m": 1}),
                            "booking@1.0.0",
                        ),
                        vec![sub("proposal", "operations")],
                    ),
                    (
                        NewEvent::new("finance", "deal.opened", json!({}), "booking@1.0.0"),
                        vec![],
                    ),
                ],
            ),
        ))
        .await
        .unwrap(),
    );
    created
}
