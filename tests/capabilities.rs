//! Host capabilities on both engines: `state` persists per plugin and honours its scope,
//! `crm` reads leads, and every capability call lands in `capability_audit` with the
//! plugin, operation, target, allowed/denied and request id.

mod common;
mod support;

use common::*;
use std::sync::Arc;
use strata::db::{AuditFilter, Backend};
use strata::runtime::CallError;

const STATE_GRANT: &str = "[grants.stateful]\ncapabilities = [\"state\"]\n";

async fn stateful_host(url: &str, grants: &str) -> TestHost {
    let h = host(url, grants).await;
    install(&h.plugins_dir, "testing/stateful", "stateful");
    let r = h.manager.load_all().await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    h
}

fn score(
    h: &TestHost,
    name: &str,
    id: &str,
    rid: Option<&str>,
) -> Result<strata::domain::Score, CallError> {
    h.manager
        .registry()
        .get(name)
        .unwrap()
        .score(&hot_lead(id), rid.map(Arc::from))
}

async fn state_persists_and_is_audited(backend: Backend) {
    let (url, _guard) = support::fresh_url(backend).await;
    let h = stateful_host(&url, STATE_GRANT).await;
    let h = Arc::new(h);
    let h2 = h.clone();
    let values = blocking(move || {
        (0..3)
            .map(|_| {
                score(&h2, "stateful", "lead-a", Some("req-42"))
                    .unwrap()
                    .value
            })
            .collect::<Vec<_>>()
    })
    .await;
    // The smoke test ran once on another lead id; lead-a counts from 1.
    assert_eq!(values, vec![10.0, 20.0, 30.0], "{backend}");
    h.audit.flush().await;
    let rows =
        h.db.list_audit(&AuditFilter {
            plugin: Some("stateful".into()),
            request_id: Some("req-42".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 6, "{backend}: a get and a set per call");
    assert!(rows
        .iter()
        .all(|r| r.record.allowed && r.record.capability == "state"));
    assert!(
        rows.iter()
            .any(|r| r.record.operation == "set"
                && r.record.target.as_deref() == Some("count:lead-a"))
    );
    assert!(rows.iter().all(|r| r.record.plugin_version == "1.0.0"));

    // A new host on the same database sees the stored state.
    let h2 = Arc::new(stateful_host(&url, STATE_GRANT).await);
    let v = blocking(move || score(&h2, "stateful", "lead-a", None).unwrap().value).await;
    assert_eq!(v, 40.0, "{backend}: state survives a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_persists_across_restarts_and_every_call_is_audited_sqlite() {
    state_persists_and_is_audited(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_persists_across_restarts_and_every_call_is_audited_postgres() {
    state_persists_and_is_audited(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_value_over_the_granted_size_is_denied_and_audited_as_denied() {
    let tmp = tempfile::tempdir().unwrap();
    let grants = "[grants.stateful]\ncapabilities = [\"state\"]\nstate = { max_value_bytes = 4 }\n";
    // The smoke test itself writes 8 bytes: with this grant the version is rejected.
    let h = host(&sqlite_url(tmp.path()), grants).await;
    let dir = install(&h.plugins_dir, "testing/stateful", "stateful");
    let err = h.manager.load_dir(&dir).await.unwrap_err().to_string();
    assert!(err.contains("max_value_bytes"), "{err}");
    h.audit.flush().await;
    let denied =
        h.db.list_audit(&AuditFilter {
            plugin: Some("stateful".into()),
            allowed: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!denied.is_empty());
    assert!(denied[0]
        .record
        .detail
        .as_deref()
        .unwrap_or("")
        .contains("max_value_bytes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_cannot_see_each_others_state() {
    let tmp = tempfile::tempdir().unwrap();
    let url = sqlite_url(tmp.path());
    let h = Arc::new(stateful_host(&url, STATE_GRANT).await);
    let h2 = h.clone();
    blocking(move || score(&h2, "stateful", "shared", None).unwrap()).await;
    // The same component under another name is another plugin: its own key space.
    let dir = h.plugins_dir.join("other");
    std::fs::create_dir_all(&dir).unwrap();
    let m = std::fs::read_to_string(h.plugins_dir.join("stateful/plugin.toml")).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        m.replace("name = \"stateful\"", "name = \"other\""),
    )
    .unwrap();
    std::fs::copy(
        h.plugins_dir.join("stateful/plugin.wasm"),
        dir.join("plugin.wasm"),
    )
    .unwrap();
    let h3 = Arc::new(
        host(
            &url,
            &format!("{STATE_GRANT}[grants.other]\ncapabilities = [\"state\"]\n"),
        )
        .await,
    );
    std::fs::create_dir_all(h3.plugins_dir.join("other")).unwrap();
    for f in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(dir.join(f), h3.plugins_dir.join("other").join(f)).unwrap();
    }
    h3.manager.load_all().await;
    let v = blocking(move || score(&h3, "other", "shared", None).unwrap().value).await;
    assert_eq!(v, 10.0, "other plugin starts its own count");
    assert_eq!(
        h.db.state_get("stateful", "count:shared").await.unwrap(),
        Some(1u64.to_le_bytes().to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_reads_stored_leads_when_granted() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (url, _guard) = support::fresh_url(backend).await;
        let h = host(&url, "[grants.ungranted-crm]\ncapabilities = [\"crm\"]\n").await;
        let dir = install(&h.plugins_dir, "testing/ungranted-crm", "ungranted-crm");
        h.manager.load_dir(&dir).await.unwrap();
        h.db.upsert_lead(&hot_lead("known")).await.unwrap();
        let h = Arc::new(h);
        let h2 = h.clone();
        let (known, unknown) = blocking(move || {
            (
                score(&h2, "ungranted-crm", "known", None).unwrap(),
                score(&h2, "ungranted-crm", "missing", None).unwrap(),
            )
        })
        .await;
        assert!(
            known.reasoning.contains("lead found = true"),
            "{backend}: {}",
            known.reasoning
        );
        assert!(
            unknown.reasoning.contains("lead found = false"),
            "{backend}"
        );
        h.audit.flush().await;
        let rows =
            h.db.list_audit(&AuditFilter {
                capability: Some("crm".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(
            rows.iter()
                .any(|r| r.record.target.as_deref() == Some("lead:known") && r.record.allowed),
            "{backend}"
        );
    }
}
