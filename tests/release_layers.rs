//! Publishing a layer with its `[schemas]` files (issue 21) on a single SQLite host: the
//! files travel with the publish (one multipart part per file, named by its relative
//! path), are stored by their sha256 with the version, and are laid out beside the
//! manifest where the host serves the release, so the released layer checks its payload
//! contract in a real pipeline run. The shipped layer `pricing` (pure rules) is the
//! subject.

mod common;

use common::publish;
use common::release_host::ReleaseHost;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PIPELINE: &str = r#"
[pipelines.fin]
start_topic = "proposal.drafted"
layers = [ { layer = "pricing", container = "finance", topics = ["proposal.drafted"] } ]
"#;

fn proposal(id: &str) -> Value {
    json!({
        "proposal_id": id, "lead_id": "L-1", "currency": "USD", "text": "Two seats",
        "fallback_used": false, "subtotal": 2000.0, "lead": { "id": "L-1" },
        "items": [{ "sku": "SEAT", "description": "Seat", "quantity": 2,
                    "unit_price": 1000.0, "amount": 2000.0 }],
    })
}

/// Starts a run of `fin` with `payload`; polls it until `done(run)` holds (60 s at most).
async fn run_until(f: &ReleaseHost, payload: Value, done: impl Fn(&Value) -> bool) -> Value {
    let res = reqwest::Client::new()
        .post(f.server.url("/api/v1/pipelines/fin/runs"))
        .bearer_auth(&f.operator)
        .json(&json!({ "payload": payload }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let href = res.json::<Value>().await.unwrap()["href"]
        .as_str()
        .unwrap()
        .to_string();
    let start = Instant::now();
    loop {
        let (_, run) = f.call(Method::GET, &href, &f.reader).await;
        if done(&run) {
            return run;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "run: {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_published_with_its_schemas_is_released_and_checks_its_payloads() {
    let f = ReleaseHost::start_with(|_| PIPELINE.to_string()).await;
    let src = plugin_source("layers/pricing");
    let manifest = std::fs::read_to_string(src.join("plugin.toml")).unwrap();
    let wasm = std::fs::read(src.join("plugin.wasm")).unwrap();
    let files = publish::schema_files(&src);
    assert_eq!(files.len(), 4, "pricing names four schema files");

    // Without its schema files the manifest does not load: 422 naming the file.
    let (status, ct, v) = f
        .publish(&f.operator, "pricing", &manifest, wasm.clone())
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    assert!(v["detail"].as_str().unwrap().contains("schemas/"), "{v}");
    // A file the manifest does not name, or a path leaving the directory: 422.
    for (path, want) in [
        ("schemas/extra.json", "not one the manifest"),
        ("../x.json", "unknown part"),
    ] {
        let mut more = files.clone();
        more.push((path.to_string(), b"{}".to_vec()));
        let (status, _, v) = f
            .publish_form(
                &f.operator,
                "pricing",
                publish::form(&manifest, wasm.clone(), &more),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(want), "{path}: {v}");
    }

    // With them: stored by sha256 with the version (pure rules: approved at once).
    let (status, _, v) = f
        .publish_form(&f.operator, "pricing", publish::dir_form(&src))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "approved", "{v}");
    for (path, bytes) in &files {
        let sha = v["files"][path]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: {v}"));
        assert_eq!(sha, strata::runtime::prepare::sha256_hex(bytes));
        assert_eq!(f.db.get_artifact(sha).await.unwrap().as_ref(), Some(bytes));
    }
    // The same version with another schema is another set of bytes: 409.
    let mut changed = files.clone();
    changed[0].1 = br#"{"type": "object"}"#.to_vec();
    let (status, _, v) = f
        .publish_form(
            &f.operator,
            "pricing",
            publish::form(&manifest, wasm.clone(), &changed),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let (_, one) = f
        .call(
            Method::GET,
            "/api/v1/plugins/pricing/versions/1.0.0",
            &f.reader,
        )
        .await;
    assert_eq!(one["files"].as_object().map(|o| o.len()), Some(4), "{one}");

    // Released: served here from the published files.
    let (status, r) = f.release("pricing", "1.0.0").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert!(r["problem"].is_null(), "{r}");

    // A real run: the trigger passes the input schema, the output and the decision event
    // pass theirs.
    let run = run_until(&f, proposal("P-1"), |r| {
        r["status"] == "succeeded" || r["status"] == "failed"
    })
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let events = f
        .call(Method::GET, "/api/v1/containers/finance/events", &f.reader)
        .await
        .1;
    assert!(
        events.to_string().contains("deal.approved") || events.to_string().contains("deal.review"),
        "{events}"
    );
    // A trigger that breaks the published input schema is refused by it.
    let mut bad = proposal("P-2");
    bad.as_object_mut().unwrap().remove("items");
    let run = run_until(&f, bad, |r| r.to_string().contains("violates")).await;
    assert!(run.to_string().contains("proposal-drafted.json"), "{run}");
    f.server.stop().await;
}
