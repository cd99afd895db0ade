//! Containment: every hostile plugin fails its own call with a typed error naming the
//! plugin and the cause, while a good plugin keeps scoring; grants are enforced at load;
//! WASI reaches nothing.

mod common;

use common::*;
use strata::runtime::{CallError, LoadError};

const HOSTILE: &[&str] = &[
    "loop-forever",
    "memory-bomb",
    "deep-recursion",
    "panic",
    "huge-output",
    "bad-score",
];

async fn host_with_hostiles() -> TestHost {
    let tmp = tempfile::tempdir().unwrap();
    let url = sqlite_url(tmp.path());
    std::mem::forget(tmp);
    let h = host(
        &url,
        r#"
        [grants.loop-forever]
        limits = { deadline_ms = 50 }
        [grants.memory-bomb]
        limits = { memory_mb = 16 }
        "#,
    )
    .await;
    install(&h.plugins_dir, "bant", "bant");
    for name in HOSTILE {
        install(&h.plugins_dir, &format!("testing/{name}"), name);
    }
    let report = h.manager.load_all().await;
    assert!(
        report.failed.is_empty(),
        "load failures: {:?}",
        report.failed
    );
    h
}

fn call(h: &TestHost, name: &str, id: &str) -> Result<strata::domain::Score, CallError> {
    let p = h.manager.registry().get(name).unwrap();
    p.score(&hot_lead(id), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hostile_plugin_fails_its_call_with_a_typed_error_naming_it() {
    let h = host_with_hostiles().await;
    let h = std::sync::Arc::new(h);
    let h2 = h.clone();
    blocking(move || {
        let h = h2;
        let e = call(&h, "loop-forever", "x").unwrap_err();
        assert!(matches!(e, CallError::Deadline { ms: 50, .. }), "{e}");
        assert!(e.to_string().contains("loop-forever@"), "{e}");

        let e = call(&h, "memory-bomb", "x").unwrap_err();
        assert!(
            matches!(e, CallError::MemoryLimit { limit_mb: 16, .. }),
            "{e}"
        );

        let e = call(&h, "deep-recursion", "x").unwrap_err();
        assert!(
            matches!(e, CallError::Trap { .. } | CallError::StackOverflow { .. }),
            "{e}"
        );

        let e = call(&h, "panic", "x").unwrap_err();
        match &e {
            CallError::Panic { message, .. } => assert!(message.contains("boom"), "{e}"),
            other => panic!("expected a panic error, got {other}"),
        }

        let e = call(&h, "huge-output", "x").unwrap_err();
        assert!(matches!(e, CallError::OutputTooLarge { .. }), "{e}");

        let e = call(&h, "bad-score", "x").unwrap_err();
        assert!(matches!(e, CallError::InvalidOutput { .. }), "{e}");
        assert!(e.to_string().contains("150"), "{e}");
        let e = call(&h, "bad-score", "nan").unwrap_err();
        assert!(
            matches!(e, CallError::InvalidOutput { .. })
                && e.to_string().contains("confidence NaN"),
            "{e}"
        );
        let e = call(&h, "bad-score", "factor").unwrap_err();
        assert!(e.to_string().contains("factor fit = 150"), "{e}");

        // The good plugin is untouched, and a hostile one can be called again (fresh instance).
        let s = call(&h, "bant", "good").unwrap();
        assert!(s.value > 50.0);
        assert!(matches!(
            call(&h, "loop-forever", "again"),
            Err(CallError::Deadline { .. })
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_plugin_keeps_scoring_while_hostile_plugins_fail_concurrently() {
    let h = std::sync::Arc::new(host_with_hostiles().await);
    let mut handles = Vec::new();
    for name in HOSTILE {
        let h = h.clone();
        let name = name.to_string();
        handles.push(tokio::task::spawn_blocking(move || {
            for i in 0..3 {
                assert!(call(&h, &name, &format!("h{i}")).is_err());
            }
        }));
    }
    let good = {
        let h = h.clone();
        tokio::task::spawn_blocking(move || {
            (0..500)
                .filter(|i| call(&h, "bant", &format!("g{i}")).is_ok())
                .count()
        })
    };
    for j in handles {
        j.await.unwrap();
    }
    assert_eq!(good.await.unwrap(), 500, "every good call must succeed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasi_denies_files_environment_sockets_and_name_lookup() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(&sqlite_url(tmp.path()), "").await;
    std::env::set_var("STRATA_TEST_SECRET", "do-not-leak");
    install(&h.plugins_dir, "testing/escape", "escape");
    h.manager.load_all().await;
    let p = h.manager.registry().get("escape").unwrap();
    let s = blocking(move || p.score(&hot_lead("e"), None))
        .await
        .unwrap();
    assert!(
        !s.reasoning.contains("ESCAPED"),
        "sandbox escape: {}",
        s.reasoning
    );
    for part in ["fs=denied", "env=denied", "tcp=denied", "dns=denied"] {
        assert!(
            s.reasoning.contains(part),
            "missing {part} in {}",
            s.reasoning
        );
    }
    assert!(!s.reasoning.contains("do-not-leak"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_not_granted_is_rejected_at_load_with_the_config_to_add() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(&sqlite_url(tmp.path()), "").await;
    let dir = install(&h.plugins_dir, "testing/ungranted-crm", "ungranted-crm");
    let err = h.manager.load_dir(&dir).await.unwrap_err();
    assert!(matches!(err, LoadError::Grant(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("ungranted-crm@"), "{msg}");
    assert!(msg.contains("strata:plugin/crm"), "{msg}");
    assert!(msg.contains("[grants.ungranted-crm]"), "{msg}");
    assert!(h.manager.registry().get("ungranted-crm").is_err());
    // The attempt is recorded as rejected, with the reason.
    let rows =
        h.db.list_plugin_versions(Some("ungranted-crm"), 10)
            .await
            .unwrap();
    assert_eq!(rows[0].status.as_str(), "rejected");
    assert!(rows[0]
        .error
        .as_deref()
        .unwrap_or("")
        .contains("not granted"));

    // Granted: it loads.
    let h2 = host(
        &sqlite_url(&tmp.path().join("b")),
        "[grants.ungranted-crm]\ncapabilities = [\"crm\"]\n",
    )
    .await;
    let dir = install(&h2.plugins_dir, "testing/ungranted-crm", "ungranted-crm");
    h2.manager.load_dir(&dir).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_not_declared_in_the_manifest_is_rejected_even_if_granted() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(
        &sqlite_url(tmp.path()),
        "[grants.ungranted-crm]\ncapabilities = [\"crm\"]\n",
    )
    .await;
    let dir = install(&h.plugins_dir, "testing/ungranted-crm", "ungranted-crm");
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    let stripped: String = manifest
        .lines()
        .filter(|l| !l.trim_start().starts_with("crm"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("plugin.toml"), stripped).unwrap();
    let err = h.manager.load_dir(&dir).await.unwrap_err().to_string();
    assert!(err.contains("does not declare"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_budget_and_input_size_limits_are_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host_with(
        &sqlite_url(tmp.path()),
        "[grants.loop-forever]\nlimits = { fuel = 1000000, deadline_ms = 5000 }\n[grants.bant]\nlimits = { max_input_bytes = 4096 }\n",
        |c| c.runtime.fuel_metering = true,
    )
    .await;
    install(&h.plugins_dir, "testing/loop-forever", "loop-forever");
    install(&h.plugins_dir, "bant", "bant");
    assert!(h.manager.load_all().await.failed.is_empty());
    let h = std::sync::Arc::new(h);
    blocking(move || {
        let e = call(&h, "loop-forever", "x").unwrap_err();
        assert!(
            matches!(
                e,
                CallError::Fuel {
                    fuel: 1_000_000,
                    ..
                }
            ),
            "{e}"
        );
        let mut big = hot_lead("big");
        big.notes = Some("x".repeat(10_000));
        let e = h
            .manager
            .registry()
            .get("bant")
            .unwrap()
            .score(&big, None)
            .unwrap_err();
        assert!(
            matches!(e, CallError::InputTooLarge { limit: 4096, .. }),
            "{e}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_artifact_is_reused_from_disk_and_a_corrupt_one_is_recompiled() {
    use strata::runtime::cache::CacheOutcome;
    let tmp = tempfile::tempdir().unwrap();
    let h = host(&sqlite_url(tmp.path()), "").await;
    let dir = install(&h.plugins_dir, "bant", "bant");
    let first = h.manager.load_dir(&dir).await.unwrap().plugin().clone();
    assert_eq!(first.cache_outcome, CacheOutcome::Compiled);

    // A second host sharing the cache directory deserializes instead of compiling.
    let cache = h.tmp.path().join("cache");
    let runtime = |cache: std::path::PathBuf| {
        let mut cfg = strata::config::Config::default();
        cfg.runtime.cache_dir = Some(cache);
        cfg.runtime.pool_instances = 8;
        strata::app::App::runtime(&cfg, None, strata::audit::AuditSink::disabled()).unwrap()
    };
    let manifest = strata::manifest::Manifest::load(&dir).unwrap();
    let wasm = std::fs::read(dir.join("plugin.wasm")).unwrap();
    let rt = runtime(cache.clone());
    let p = rt.prepare(manifest.clone(), &wasm, None, None).unwrap();
    assert_eq!(p.cache_outcome, CacheOutcome::Disk);
    assert!(p.score(&hot_lead("c"), None).is_ok());

    // Corrupt every cached artifact: the next host recompiles and still serves.
    for e in std::fs::read_dir(&cache).unwrap() {
        std::fs::write(e.unwrap().path(), b"garbage").unwrap();
    }
    let rt = runtime(cache);
    let p = rt.prepare(manifest, &wasm, None, None).unwrap();
    assert_eq!(p.cache_outcome, CacheOutcome::Compiled);
    assert!(p.score(&hot_lead("d"), None).is_ok());
}

/// Scores `ids` one after another on the inline path of `name`'s current version.
fn inline_reasons(h: &TestHost, name: &str, ids: &[&str]) -> Vec<String> {
    let p = h.manager.registry().get(name).unwrap();
    ids.iter()
        .map(|id| match p.score_inline(&hot_lead(id), None) {
            Ok(s) => s.reasoning,
            Err(e) => format!("error: {e}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pure_scorer_granted_reuse_serves_at_most_reuse_calls_per_instance_and_a_trap_retires_it()
{
    let tmp = tempfile::tempdir().unwrap();
    let h = host(
        &sqlite_url(tmp.path()),
        r#"
        [grants.counter]
        reuse_calls = 3
        [grants.stateful]
        capabilities = ["state"]
        reuse_calls = 3
        "#,
    )
    .await;
    install(&h.plugins_dir, "testing/counter", "counter");
    install(&h.plugins_dir, "testing/stateful", "stateful");
    let report = h.manager.load_all().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(h.manager.registry().get("counter").unwrap().reuse_calls, 3);
    assert_eq!(
        h.manager.registry().get("stateful").unwrap().reuse_calls,
        0,
        "a scorer with a capability beyond log never reuses an instance"
    );
    let h = std::sync::Arc::new(h);
    let rt = tokio::runtime::Handle::current();
    let h2 = h.clone();
    // One thread throughout: warm instances belong to the thread that made them.
    std::thread::spawn(move || {
        let h = h2;
        let calls = inline_reasons(&h, "counter", &["a", "b", "c", "d", "e", "f", "g"]);
        assert_eq!(
            calls,
            ["call 1", "call 2", "call 3", "call 1", "call 2", "call 3", "call 1"],
            "three calls per instance, then a fresh one"
        );
        let p = h.manager.registry().get("counter").unwrap();
        let fresh: Vec<String> = (0..2)
            .map(|i| {
                p.score(&hot_lead(&format!("x{i}")), None)
                    .unwrap()
                    .reasoning
            })
            .collect();
        assert_eq!(fresh, ["call 1", "call 1"], "the fresh path never reuses");
        drop(p);

        let calls = inline_reasons(&h, "counter", &["h", "panic-1", "i", "j"]);
        assert_eq!(calls[0], "call 2", "the warm instance from before");
        assert!(
            calls[1].starts_with("error:") && calls[1].contains("panicked"),
            "{calls:?}"
        );
        assert_eq!(
            calls[2..],
            ["call 1", "call 2"],
            "a trapped instance is never called again"
        );

        // A reload retires the old version's warm instance even on this thread.
        let dir = h.plugins_dir.join("counter");
        rt.block_on(async {
            h.manager.unload("counter").await;
            h.manager.load_dir(&dir).await.unwrap();
        });
        let calls = inline_reasons(&h, "counter", &["k", "l"]);
        assert_eq!(calls, ["call 1", "call 2"], "the new version starts fresh");
        assert!(
            strata::runtime::warm::warm_on_this_thread() <= strata::runtime::warm::WARM_PER_THREAD
        );
    })
    .join()
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_reuse_grant_every_inline_call_gets_a_fresh_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(&sqlite_url(tmp.path()), "").await;
    install(&h.plugins_dir, "testing/counter", "counter");
    assert!(h.manager.load_all().await.failed.is_empty());
    let h = std::sync::Arc::new(h);
    let h2 = h.clone();
    let calls = blocking(move || inline_reasons(&h2, "counter", &["a", "b", "c"])).await;
    assert_eq!(calls, ["call 1", "call 1", "call 1"]);
}

/// Deny by default holds for limits: a manifest asking for more than the runtime defaults
/// loads with the defaults (and a warning) unless a grant allows more; it gets what it
/// asked for up to the grant, and never more than the grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_cannot_raise_its_own_limits_without_a_grant() {
    let greedy = |h: &TestHost| {
        let dir = install(&h.plugins_dir, "testing/minimal", "minimal");
        let manifest = dir.join("plugin.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(!text.contains("[limits]"));
        std::fs::write(
            &manifest,
            format!("{text}\n[limits]\ndeadline_ms = 20000\nmemory_mb = 256\n"),
        )
        .unwrap();
        dir
    };
    let defaults = strata::config::RuntimeSettings::default();
    let cases = [
        // No grant: the runtime defaults are the ceiling.
        ("", defaults.default_deadline_ms, defaults.default_memory_mb),
        // A grant that allows all of it.
        (
            "[grants.minimal.limits]\ndeadline_ms = 20000\nmemory_mb = 256\n",
            20_000,
            256,
        ),
        // A grant that allows some of it; the other limit stays at the default.
        (
            "[grants.minimal.limits]\ndeadline_ms = 5000\n",
            5_000,
            defaults.default_memory_mb,
        ),
    ];
    for (grants, deadline_ms, memory_mb) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let h = host(&sqlite_url(tmp.path()), grants).await;
        let dir = greedy(&h);
        h.manager.load_dir(&dir).await.unwrap();
        let p = h.manager.registry().get("minimal").unwrap();
        assert_eq!(p.limits.deadline_ms, deadline_ms, "grants: {grants:?}");
        assert_eq!(
            p.limits.memory_bytes,
            (memory_mb as usize) << 20,
            "grants: {grants:?}"
        );
        let score = blocking(move || p.score(&hot_lead("l"), None)).await;
        assert!(score.is_ok(), "{score:?}");
    }
}
