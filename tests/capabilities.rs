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

const FLOOD_GRANT: &str = "[grants.state-flood]\ncapabilities = [\"state\"]\n";

/// The audit rows of one request: (rows, sum of their counts).
async fn audit_of(h: &TestHost, rid: &str) -> Vec<strata::db::StoredAudit> {
    h.audit.flush().await;
    h.db.list_audit(&AuditFilter {
        plugin: Some("state-flood".into()),
        request_id: Some(rid.into()),
        limit: 10_000,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// One plugin call cannot flood the audit log: past `runtime.audit_max_records_per_call`
/// identical calls are written as one row with a count at the end of the call — also
/// when the deadline kills it — and the counts add up to every call, denials included.
async fn audit_volume_is_bounded_per_call(backend: Backend) {
    const CAP: usize = 100;
    let (url, _guard) = support::fresh_url(backend).await;
    let h = host_with(&url, FLOOD_GRANT, |c| {
        // The flood takes seconds on PostgreSQL; the deadline is not what this proves.
        c.runtime.default_deadline_ms = 60_000;
        c.runtime.audit_max_records_per_call = CAP as u32;
    })
    .await;
    install(&h.plugins_dir, "testing/state-flood", "state-flood");
    assert!(h.manager.load_all().await.failed.is_empty());
    let h = Arc::new(h);
    let h2 = h.clone();
    let (flood, many_keys) = blocking(move || {
        (
            score(&h2, "state-flood", "get=10000,bad=500", Some("flood-1")).unwrap(),
            score(&h2, "state-flood", "keys=1000", Some("flood-2")).unwrap(),
        )
    })
    .await;
    assert_eq!(flood.reasoning, "10500 state calls");
    assert_eq!(many_keys.reasoning, "1000 state calls");

    let rows = audit_of(&h, "flood-1").await;
    let total: i64 = rows.iter().map(|r| r.record.count).sum();
    assert_eq!(total, 10_500, "{backend}: the counts add up to every call");
    assert_eq!(
        rows.len(),
        CAP + 2,
        "{backend}: the cap, then one row per key"
    );
    let summary = |allowed: bool| {
        rows.iter()
            .find(|r| r.record.count > 1 && r.record.allowed == allowed)
            .map(|r| r.record.clone())
            .unwrap_or_else(|| panic!("{backend}: no summary with allowed = {allowed}"))
    };
    let gets = summary(true);
    assert_eq!(
        (gets.operation.as_str(), gets.target.as_deref(), gets.count),
        ("get", Some("flood"), 10_000 - CAP as i64)
    );
    assert_eq!(
        gets.detail.as_deref(),
        Some("summarised: 9,900 more identical calls")
    );
    let denied = summary(false);
    assert_eq!((denied.target.as_deref(), denied.count), (Some(""), 500));
    let detail = denied.detail.unwrap_or_default();
    assert!(
        detail.starts_with("summarised: 500 more identical calls; first: state key must be"),
        "{backend}: {detail}"
    );

    // Distinct keys are bounded too: past the cap of distinct targets, one row per
    // (capability, operation, allowed).
    let rows = audit_of(&h, "flood-2").await;
    assert_eq!(rows.iter().map(|r| r.record.count).sum::<i64>(), 1000);
    assert_eq!(rows.len(), CAP + CAP + 1, "{backend}");
    assert!(rows
        .iter()
        .any(|r| r.record.target.is_none() && r.record.count == 1000 - 2 * CAP as i64));

    // A call the deadline kills still writes its summary.
    let h3 = Arc::new(host(&url, FLOOD_GRANT).await);
    install(&h3.plugins_dir, "testing/state-flood", "state-flood");
    assert!(h3.manager.load_all().await.failed.is_empty());
    let h4 = h3.clone();
    let e =
        blocking(move || score(&h4, "state-flood", "forever", Some("flood-3")).unwrap_err()).await;
    assert!(matches!(e, CallError::Deadline { .. }), "{backend}: {e}");
    let rows = audit_of(&h3, "flood-3").await;
    let total: i64 = rows.iter().map(|r| r.record.count).sum();
    assert!(rows.len() <= CAP + 1, "{backend}: {} rows", rows.len());
    assert!(
        total > CAP as i64 && rows.iter().any(|r| r.record.count == total - CAP as i64),
        "{backend}: {total} calls, no summary of the killed call's calls past the cap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_cannot_flood_the_audit_log_sqlite() {
    audit_volume_is_bounded_per_call(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_cannot_flood_the_audit_log_postgres() {
    audit_volume_is_bounded_per_call(Backend::Postgres).await;
}
