//! Plugin versions, capability audit, plugin state and agent executions, on SQLite and
//! PostgreSQL.

mod support;

use strata::db::{
    AuditFilter, AuditRecord, ExecutionFilter, ExecutionFinish, NewExecution, NewPluginVersion,
    PluginVersionStatus,
};
use support::both_backends;

#[tokio::test]
async fn plugin_versions_lifecycle() {
    both_backends(|db| async move {
        let v1 = NewPluginVersion {
            name: "rules-scorer".into(),
            version: "1.0.0".into(),
            sha256: "ab".repeat(32),
            kind: "scorer".into(),
            status: PluginVersionStatus::Loading,
            error: None,
            source_path: Some("plugins/rules.wasm".into()),
        };
        let id1 = db.insert_plugin_version(&v1).await.unwrap();
        db.update_plugin_version_status(&id1, PluginVersionStatus::Live, None)
            .await
            .unwrap();

        let v2 = NewPluginVersion {
            version: "1.1.0".into(),
            sha256: "cd".repeat(32),
            ..v1.clone()
        };
        let id2 = db.insert_plugin_version(&v2).await.unwrap();
        db.update_plugin_version_status(
            &id2,
            PluginVersionStatus::Rejected,
            Some("smoke test: score 140 > 100"),
        )
        .await
        .unwrap();
        let other = NewPluginVersion {
            name: "other".into(),
            ..v1.clone()
        };
        db.insert_plugin_version(&other).await.unwrap();

        let list = db
            .list_plugin_versions(Some("rules-scorer"), 10)
            .await
            .unwrap();
        assert_eq!(
            list.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            [id2.as_str(), id1.as_str()]
        );
        assert_eq!(list[0].status, PluginVersionStatus::Rejected);
        assert_eq!(
            list[0].error.as_deref(),
            Some("smoke test: score 140 > 100")
        );
        assert_eq!(list[1].status, PluginVersionStatus::Live);
        assert_eq!(list[1].source_path.as_deref(), Some("plugins/rules.wasm"));
        assert!(list[1].updated_at >= list[1].created_at);
        assert_eq!(db.list_plugin_versions(None, 0).await.unwrap().len(), 3);
        assert_eq!(db.list_plugin_versions(None, 1).await.unwrap().len(), 1);

        db.update_plugin_version_status(&id1, PluginVersionStatus::RolledBack, None)
            .await
            .unwrap();
        let r = db.get_plugin_version(&id1).await.unwrap().unwrap();
        assert_eq!((r.status, r.error), (PluginVersionStatus::RolledBack, None));
        let e = db
            .update_plugin_version_status("nope", PluginVersionStatus::Live, None)
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        for s in PluginVersionStatus::ALL {
            assert_eq!(s.as_str().parse::<PluginVersionStatus>().unwrap(), *s);
        }
    })
    .await;
}

fn audit(at: i64, plugin: &str, capability: &str, allowed: bool) -> AuditRecord {
    AuditRecord {
        at,
        plugin: plugin.into(),
        plugin_version: "1.0.0".into(),
        capability: capability.into(),
        operation: "call".into(),
        target: Some("crm.search, \"quoted\"".into()),
        allowed,
        detail: (!allowed).then(|| "not granted".into()),
        duration_us: 42,
        tokens_in: Some(10),
        tokens_out: None,
        cost_usd: Some(0.0125),
        request_id: Some(format!("req-{at}")),
        count: 1,
    }
}

#[tokio::test]
async fn audit_batch_insert_and_filters() {
    both_backends(|db| async move {
        let mut batch = Vec::new();
        for i in 0..5_000i64 {
            let plugin = if i % 2 == 0 { "a" } else { "b" };
            let cap = if i % 3 == 0 { "llm" } else { "mcp" };
            batch.push(audit(1_000 + i, plugin, cap, i % 5 != 0));
        }
        assert_eq!(db.insert_audit(&batch).await.unwrap(), 5_000);

        let all = db
            .list_audit(&AuditFilter {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 5_000);
        assert_eq!(all[0].record, batch[4_999], "newest first, round-trips");
        assert!(all.windows(2).all(|w| w[0].record.at >= w[1].record.at));

        let f = AuditFilter {
            plugin: Some("a".into()),
            capability: Some("llm".into()),
            limit: 10_000,
            ..Default::default()
        };
        let rows = db.list_audit(&f).await.unwrap();
        assert_eq!(
            rows.len(),
            (0..5_000).filter(|i| i % 2 == 0 && i % 3 == 0).count()
        );
        assert!(rows
            .iter()
            .all(|r| r.record.plugin == "a" && r.record.capability == "llm"));

        let denied = db
            .list_audit(&AuditFilter {
                allowed: Some(false),
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(denied.len(), 1_000);
        assert!(denied
            .iter()
            .all(|r| !r.record.allowed && r.record.detail.as_deref() == Some("not granted")));

        let window = AuditFilter {
            since_ms: Some(1_010),
            until_ms: Some(1_020),
            ..Default::default()
        };
        let rows = db.list_audit(&window).await.unwrap();
        assert_eq!(
            rows.iter().map(|r| r.record.at).collect::<Vec<_>>(),
            (1_010..1_020).rev().collect::<Vec<_>>()
        );

        let one = db
            .list_audit(&AuditFilter {
                request_id: Some("req-1007".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(
            db.list_audit(&AuditFilter {
                limit: 3,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
            3
        );
        assert_eq!(db.prune_audit(1_100).await.unwrap(), 100);

        // A cost that is not a number is stored as unknown (NULL), not refused.
        let mut odd = audit(9_000, "c", "llm", true);
        odd.cost_usd = Some(f64::NAN);
        odd.count = 99_900;
        db.insert_audit(&[odd]).await.unwrap();
        let stored = db
            .list_audit(&AuditFilter {
                plugin: Some("c".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].record.cost_usd, None);
        assert_eq!(stored[0].record.tokens_in, Some(10));
        assert_eq!(
            stored[0].record.count, 99_900,
            "a summary's count is stored"
        );
    })
    .await;
}

#[tokio::test]
async fn state_is_isolated_between_plugins() {
    both_backends(|db| async move {
        db.state_set("alpha", "k", b"from alpha").await.unwrap();
        db.state_set("beta", "k", &[0u8, 255, 1, 2]).await.unwrap();
        assert_eq!(
            db.state_get("alpha", "k").await.unwrap().as_deref(),
            Some(&b"from alpha"[..])
        );
        assert_eq!(
            db.state_get("beta", "k").await.unwrap().as_deref(),
            Some(&[0u8, 255, 1, 2][..])
        );
        assert_eq!(db.state_get("gamma", "k").await.unwrap(), None);

        db.state_set("alpha", "k", b"v2").await.unwrap();
        db.state_set("alpha", "ключ", b"").await.unwrap();
        assert_eq!(
            db.state_get("alpha", "k").await.unwrap().as_deref(),
            Some(&b"v2"[..])
        );
        assert_eq!(
            db.state_get("alpha", "ключ").await.unwrap().as_deref(),
            Some(&b""[..])
        );
        assert_eq!(db.state_count("alpha").await.unwrap(), 2);
        assert_eq!(db.state_count("beta").await.unwrap(), 1);
        // bytes of keys + values: "k"(1) + "v2"(2) + "ключ"(8) + ""(0)
        assert_eq!(db.state_total_bytes("alpha").await.unwrap(), 11);
        assert_eq!(db.state_total_bytes("nobody").await.unwrap(), 0);
        assert_eq!(db.state_keys("alpha").await.unwrap(), ["k", "ключ"]);

        assert!(db.state_delete("alpha", "k").await.unwrap());
        assert!(!db.state_delete("alpha", "k").await.unwrap());
        assert_eq!(
            db.state_get("beta", "k").await.unwrap().as_deref(),
            Some(&[0u8, 255, 1, 2][..]),
            "beta untouched"
        );
    })
    .await;
}

#[tokio::test]
async fn agent_executions_round_trip() {
    both_backends(|db| async move {
        let mut e = NewExecution::new(
            "researcher",
            "0.3.1",
            serde_json::json!({"lead": "L-1", "q": "naïve \"x\""}),
        );
        e.lead_id = Some("L-1".into());
        e.request_id = Some("r1".into());
        let id = db.insert_execution(&e).await.unwrap();
        let got = db.get_execution(&id).await.unwrap().unwrap();
        assert_eq!(
            (got.status.as_str(), &got.input, got.output.clone()),
            ("running", &e.input, None)
        );
        assert_eq!(got.finished_at, None);

        let fin = ExecutionFinish {
            status: "succeeded".into(),
            output: Some(serde_json::json!({"summary": "ok", "n": 3})),
            tokens_in: 1200,
            tokens_out: 300,
            cost: 0.0042,
            duration_ms: Some(1530),
            mcp_tools_used: vec!["crm.search".into(), "time.now".into()],
            error: None,
            finished_at: e.created_at + 1530,
        };
        db.finish_execution(&id, &fin).await.unwrap();
        let got = db.get_execution(&id).await.unwrap().unwrap();
        assert_eq!(got.output, fin.output);
        assert_eq!(
            (got.tokens_in, got.tokens_out, got.cost),
            (1200, 300, 0.0042)
        );
        assert_eq!(got.mcp_tools_used, fin.mcp_tools_used);
        assert_eq!(got.finished_at, Some(fin.finished_at));
        assert!(db
            .finish_execution("nope", &fin)
            .await
            .unwrap_err()
            .is_not_found());

        db.insert_execution(&NewExecution::new("other", "1", serde_json::Value::Null))
            .await
            .unwrap();
        let list = db
            .list_executions(&ExecutionFilter {
                lead_id: Some("L-1".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(
            db.list_executions(&ExecutionFilter::default())
                .await
                .unwrap()
                .len(),
            2
        );
    })
    .await;
}

#[tokio::test]
async fn audit_sink_stores_records_without_a_flush_and_flush_waits_for_them() {
    both_backends(|db| async move {
        let sink = strata::audit::AuditSink::spawn(db.clone());
        let stored = |plugin: &'static str| {
            let db = db.clone();
            async move {
                db.list_audit(&AuditFilter {
                    plugin: Some(plugin.into()),
                    limit: 10_000,
                    ..Default::default()
                })
                .await
                .unwrap()
                .len()
            }
        };
        // No flush: the writer stores them on its own (within FLUSH_EVERY).
        for at in 0..5 {
            sink.record(audit(at, "unflushed", "crm", true));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while stored("unflushed").await < 5 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(stored("unflushed").await, 5);
        // More than one batch queued, then a flush: all stored when it returns.
        for at in 0..2_500 {
            sink.record(audit(at, "flushed", "crm", at % 2 == 0));
        }
        sink.flush().await;
        assert_eq!(stored("flushed").await, 2_500);
    })
    .await;
}
