//! Hot reload through the directory watcher: atomic swap under concurrent calls with zero
//! failed calls, rejection of broken or half-written versions while the old one serves,
//! unload on removal, rollback, and a `plugin_versions` row for every attempt.

mod common;
mod support;

use common::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn set_version(dir: &Path, version: &str) {
    let m = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    let m = m
        .lines()
        .map(|l| {
            if l.starts_with("version = ") {
                format!("version = \"{version}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    // By rename, so the watcher never reads a half-written manifest.
    replace_by_rename(&dir.join("plugin.toml"), m.as_bytes());
}

fn live_version(h: &TestHost, name: &str) -> Option<String> {
    h.manager
        .registry()
        .get(name)
        .ok()
        .map(|p| p.version().to_string())
}

/// Sets the flag when dropped, also while a failed assertion unwinds.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Writes `bytes` to `path` via a temporary file and rename (what deploy tools do).
fn replace_by_rename(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_under_concurrent_calls_fails_no_call_and_rejects_a_broken_version() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Arc::new(host(&sqlite_url(tmp.path()), "").await);
    let dir = install(&h.plugins_dir, "testing/slow-good", "slow-good");
    let _watch = strata::plugins::watcher::watch(
        h.manager.clone(),
        &h.plugins_dir,
        Duration::from_millis(100),
    )
    .unwrap();
    h.manager.load_all().await;
    assert_eq!(live_version(&h, "slow-good").as_deref(), Some("1.0.0"));

    let stop = Arc::new(AtomicBool::new(false));
    // Stops the workers however this test ends: a failed assertion must report, not hang
    // in the runtime's shutdown waiting for blocking tasks that never return.
    let _stop_workers = StopOnDrop(stop.clone());
    let failures = Arc::new(AtomicUsize::new(0));
    let versions = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        String,
        usize,
    >::new()));
    let mut workers = Vec::new();
    for w in 0..2 {
        let (h, stop, failures, versions) =
            (h.clone(), stop.clone(), failures.clone(), versions.clone());
        workers.push(tokio::task::spawn_blocking(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let p = h
                    .manager
                    .registry()
                    .get("slow-good")
                    .expect("always a live version");
                match p.score(&hot_lead(&format!("w{w}-{i}")), None) {
                    Ok(_) => {
                        *versions
                            .lock()
                            .unwrap()
                            .entry(p.version().to_string())
                            .or_default() += 1
                    }
                    Err(e) => {
                        eprintln!("failed call: {e}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
        }));
    }

    // A new version, deployed by rename.
    tokio::time::sleep(Duration::from_millis(200)).await;
    set_version(&dir, "1.1.0");
    let wasm = std::fs::read(dir.join("plugin.wasm")).unwrap();
    replace_by_rename(&dir.join("plugin.wasm"), &wasm);
    wait_for("version 1.1.0 live", Duration::from_secs(20), || {
        live_version(&h, "slow-good").as_deref() == Some("1.1.0")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A broken version, the component written in place: rejected, 1.1.0 keeps serving.
    // The component goes first: a manifest saying 2.0.0 next to 1.1.0's intact
    // component would be a valid new version (the watcher may see the two writes apart).
    let slot = h.manager.registry().slot("slow-good").unwrap();
    std::fs::write(dir.join("plugin.wasm"), b"\0asm this is not a component").unwrap();
    set_version(&dir, "2.0.0");
    wait_for(
        "broken version 2.0.0 rejected",
        Duration::from_secs(20),
        || {
            slot.last_error()
                .is_some_and(|e| e.error.contains("slow-good@2.0.0"))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(live_version(&h, "slow-good").as_deref(), Some("1.1.0"));
    let err = slot.last_error().unwrap();
    assert!(err.error.contains("slow-good@2.0.0"), "{}", err.error);
    assert!(err.error.contains("not a valid component"), "{}", err.error);

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let versions = versions.lock().unwrap().clone();
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "calls failed during swaps: {versions:?}"
    );
    assert!(
        versions.get("1.0.0").copied().unwrap_or(0) > 0,
        "{versions:?}"
    );
    assert!(
        versions.get("1.1.0").copied().unwrap_or(0) > 0,
        "{versions:?}"
    );
    assert!(!versions.contains_key("2.0.0"));

    let rows =
        h.db.list_plugin_versions(Some("slow-good"), 20)
            .await
            .unwrap();
    let status: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.version.clone(), r.status.as_str().to_string()))
        .collect();
    assert!(
        status.contains(&("1.0.0".into(), "retired".into())),
        "{status:?}"
    );
    assert!(
        status.contains(&("1.1.0".into(), "live".into())),
        "{status:?}"
    );
    assert!(
        status.contains(&("2.0.0".into(), "rejected".into())),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_written_component_is_never_served_and_the_complete_one_goes_live() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Arc::new(host(&sqlite_url(tmp.path()), "").await);
    let dir = install(&h.plugins_dir, "bant", "bant");
    let _watch = strata::plugins::watcher::watch(
        h.manager.clone(),
        &h.plugins_dir,
        Duration::from_millis(100),
    )
    .unwrap();
    h.manager.load_all().await;
    let full = wasm_of("bant");
    let full_sha = strata::runtime::prepare::sha256_hex(&full);

    set_version(&dir, "9.0.0");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(dir.join("plugin.wasm")).unwrap();
        f.write_all(&full[..full.len() / 2]).unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.write_all(&full[full.len() / 2..]).unwrap();
    }
    wait_for("9.0.0 live", Duration::from_secs(20), || {
        live_version(&h, "bant").as_deref() == Some("9.0.0")
    })
    .await;
    assert_eq!(h.manager.registry().get("bant").unwrap().sha256, full_sha);
    let rows = h.db.list_plugin_versions(Some("bant"), 20).await.unwrap();
    for r in &rows {
        if r.status.as_str() == "live" {
            assert_eq!(r.sha256, full_sha, "a partial component went live");
        }
    }
}

async fn rollback_and_dedupe(url: &str) -> Arc<TestHost> {
    let h = Arc::new(host(url, "").await);
    let dir = install(&h.plugins_dir, "bant", "bant");
    h.manager.load_dir(&dir).await.unwrap();
    set_version(&dir, "1.0.1");
    h.manager.load_dir(&dir).await.unwrap();
    assert_eq!(live_version(&h, "bant").as_deref(), Some("1.0.1"));

    let back = h.manager.rollback("bant", None).await.unwrap();
    assert_eq!(back.version(), "1.0.0");
    assert_eq!(live_version(&h, "bant").as_deref(), Some("1.0.0"));
    assert!(
        h.manager.rollback("bant", None).await.is_err(),
        "nothing older than 1.0.0 is kept"
    );
    let rows = h.db.list_plugin_versions(Some("bant"), 10).await.unwrap();
    let status: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.version.clone(), r.status.as_str().to_string()))
        .collect();
    assert!(
        status.contains(&("1.0.1".into(), "rolled_back".into())),
        "{status:?}"
    );
    assert!(
        status.contains(&("1.0.0".into(), "live".into())),
        "{status:?}"
    );

    // Loading the same bytes and manifest again is a no-op (hash dedupe).
    let before = rows.len();
    set_version(&dir, "1.0.0");
    h.manager.load_dir(&dir).await.unwrap();
    h.manager.load_dir(&dir).await.unwrap();
    assert_eq!(
        h.db.list_plugin_versions(Some("bant"), 50)
            .await
            .unwrap()
            .len(),
        before
    );
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_unloads_and_rollback_restores_the_previous_version() {
    let tmp = tempfile::tempdir().unwrap();
    let h = rollback_and_dedupe(&sqlite_url(tmp.path())).await;
    let _watch = strata::plugins::watcher::watch(
        h.manager.clone(),
        &h.plugins_dir,
        Duration::from_millis(100),
    )
    .unwrap();
    std::fs::remove_dir_all(h.plugins_dir.join("bant")).unwrap();
    wait_for("bant unloaded", Duration::from_secs(20), || {
        h.manager.registry().get("bant").is_err()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_and_version_rows_behave_the_same_on_postgres() {
    let (url, _guard) = support::fresh_url(strata::db::Backend::Postgres).await;
    rollback_and_dedupe(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_failing_its_smoke_test_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(&sqlite_url(tmp.path()), "").await;
    let dir = install(&h.plugins_dir, "bant", "bant");
    h.manager.load_dir(&dir).await.unwrap();
    let m = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    let m = m
        .replace("version = \"1.0.0\"", "version = \"1.2.0\"")
        .replacen("min_score = ", "min_score = 99.9 #", 1);
    std::fs::write(dir.join("plugin.toml"), m).unwrap();
    let err = h.manager.load_dir(&dir).await.unwrap_err().to_string();
    assert!(err.contains("smoke test"), "{err}");
    assert_eq!(live_version(&h, "bant").as_deref(), Some("1.0.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_read_half_written_is_read_again_and_its_version_goes_live() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(&sqlite_url(tmp.path()), "").await;
    let dir = install(&h.plugins_dir, "bant", "bant");
    h.manager.load_dir(&dir).await.unwrap();
    // An editor writing plugin.toml in place: the loader reads it cut inside the version
    // line (it does not parse), and the rest arrives a moment later.
    let full = std::fs::read_to_string(dir.join("plugin.toml"))
        .unwrap()
        .replace("version = \"1.0.0\"", "version = \"1.3.0\"");
    let cut = full.find("version =").unwrap() + "version =".len();
    std::fs::write(dir.join("plugin.toml"), &full[..cut]).unwrap();
    let path = dir.join("plugin.toml");
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        std::fs::write(path, full).unwrap();
    });
    let outcome = h.manager.load_dir(&dir).await.unwrap();
    writer.join().unwrap();
    assert_eq!(outcome.plugin().version(), "1.3.0");
    assert_eq!(live_version(&h, "bant").as_deref(), Some("1.3.0"));
    let rows = h.db.list_plugin_versions(Some("bant"), 10).await.unwrap();
    assert!(
        rows.iter().all(|r| r.status.as_str() != "rejected"),
        "a half-written manifest was recorded as rejected: {:?}",
        rows.iter()
            .map(|r| (&r.version, r.status.as_str(), &r.error))
            .collect::<Vec<_>>()
    );
    assert!(h
        .manager
        .registry()
        .slot("bant")
        .unwrap()
        .last_error()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_manifest_is_recorded_and_the_live_version_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(&sqlite_url(tmp.path()), "").await;
    let dir = install(&h.plugins_dir, "bant", "bant");
    h.manager.load_dir(&dir).await.unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        "[plugin]\nname = \"bant\"\nversion = \n",
    )
    .unwrap();
    let err = h.manager.load_dir(&dir).await.unwrap_err().to_string();
    assert!(
        err.contains("invalid manifest") && err.contains("plugin.toml"),
        "{err}"
    );
    assert_eq!(live_version(&h, "bant").as_deref(), Some("1.0.0"));
    let rows = h.db.list_plugin_versions(Some("bant"), 10).await.unwrap();
    assert!(rows.iter().any(|r| r.status.as_str() == "rejected"
        && r.error
            .as_deref()
            .unwrap_or("")
            .contains("invalid manifest")));
    assert!(h
        .manager
        .registry()
        .slot("bant")
        .unwrap()
        .last_error()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_directory_added_while_watching_is_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Arc::new(host(&sqlite_url(tmp.path()), "").await);
    let _watch = strata::plugins::watcher::watch(
        h.manager.clone(),
        &h.plugins_dir,
        Duration::from_millis(100),
    )
    .unwrap();
    // Files arrive one after the other in a new directory.
    let dir = h.plugins_dir.join("bant");
    std::fs::create_dir_all(&dir).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let src = plugin_source("bant");
    std::fs::copy(src.join("plugin.wasm"), dir.join("plugin.wasm")).unwrap();
    std::fs::copy(src.join("plugin.toml"), dir.join("plugin.toml")).unwrap();
    wait_for("bant loaded", Duration::from_secs(20), || {
        live_version(&h, "bant").is_some()
    })
    .await;
}
