//! Plugin loading an operator can trust, on real watched directories: reads never trigger
//! loads, rejections are recorded once, rollbacks and pins stick, names cannot be taken
//! over, only regular files inside the directory are read (bounded), a manifest goes live
//! only with its own component, and a version number names one set of bytes — while BANT
//! keeps scoring.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata::plugins::watcher::WatchHandle;
use strata::runtime::prepare::{append_custom_section, sha256_hex, with_custom_section};

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `bytes` to `path` via a temporary file and rename (what deploy tools do).
fn replace_by_rename(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The manifest in `dir` with `version` and optionally `component_sha256` set.
fn manifest_with(dir: &Path, version: &str, component_sha256: Option<&str>) -> String {
    let m = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    m.lines()
        .filter(|l| !l.starts_with("component_sha256 = "))
        .map(|l| {
            if l.starts_with("version = ") {
                match component_sha256 {
                    Some(sha) => format!("version = \"{version}\"\ncomponent_sha256 = \"{sha}\""),
                    None => format!("version = \"{version}\""),
                }
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn set_version(dir: &Path, version: &str) {
    replace_by_rename(
        &dir.join("plugin.toml"),
        manifest_with(dir, version, None).as_bytes(),
    );
}

fn live(h: &TestHost, name: &str) -> Option<(String, String)> {
    h.manager
        .registry()
        .get(name)
        .ok()
        .map(|p| (p.version().to_string(), p.sha256.clone()))
}

fn watch(h: &Arc<TestHost>) -> WatchHandle {
    strata::plugins::watcher::watch(
        h.manager.clone(),
        &h.plugins_dir,
        Duration::from_millis(100),
    )
    .unwrap()
}

/// Reads every file of `dir` `times` times (what `inspect`, a backup or the host does).
fn read_all(dir: &Path, times: usize) {
    for _ in 0..times {
        for f in std::fs::read_dir(dir).unwrap() {
            let p = f.unwrap().path();
            if p.is_file() {
                std::hint::black_box(std::fs::read(&p).unwrap());
            }
        }
    }
}

async fn rows(h: &TestHost, name: &str) -> Vec<(String, String)> {
    h.db.list_plugin_versions(Some(name), 100)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.version.clone(), r.status.as_str().to_string()))
        .collect()
}

/// BANT scores a lead (on the version it names).
fn bant_scores(h: &TestHost) {
    let p = h.manager.registry().get("bant").expect("bant live");
    let s = p.score(&hot_lead("check"), None).expect("bant scores");
    assert!(s.value > 0.0);
}

async fn served_bant() -> Arc<TestHost> {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(&sqlite_url(tmp.path()), "").await;
    // Keep the database directory alive with the host.
    std::mem::forget(tmp);
    install(&h.plugins_dir, "bant", "bant");
    h.manager.load_all().await;
    Arc::new(h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_served_directory_is_not_read_again_after_it_is_read() {
    let h = served_bant().await;
    let _w = watch(&h);
    let before_live = h.manager.registry().get("bant").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reads = h.manager.directory_reads();
    // An `inspect`, a backup tool: open, read, close every file, repeatedly.
    read_all(&h.plugins_dir.join("bant"), 20);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["plugin", "inspect"])
        .arg(h.plugins_dir.join("bant"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        h.manager.directory_reads(),
        reads,
        "the host read plugin files again after mere reads"
    );
    assert!(Arc::ptr_eq(
        &before_live,
        &h.manager.registry().get("bant").unwrap()
    ));
    assert_eq!(
        rows(&h, "bant").await,
        vec![("1.0.0".into(), "live".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_sticks_and_new_bytes_wait_as_available_until_unpin() {
    let h = served_bant().await;
    let dir = h.plugins_dir.join("bant");
    let _w = watch(&h);
    let wasm = wasm_of("bant");
    let v11 = with_custom_section(&wasm, "1.1.0");
    replace_by_rename(&dir.join("plugin.wasm"), &v11);
    set_version(&dir, "1.1.0");
    wait_for("1.1.0 live", Duration::from_secs(20), || {
        live(&h, "bant").is_some_and(|(v, _)| v == "1.1.0")
    })
    .await;

    let back = h.manager.rollback("bant", None).await.unwrap();
    assert_eq!(back.version(), "1.0.0");
    // Read the directory for 5 s: the rollback stays.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        read_all(&dir, 1);
        assert_eq!(live(&h, "bant").unwrap().0, "1.0.0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // New bytes meanwhile: kept as available, not made live.
    let v12 = with_custom_section(&wasm, "1.2.0");
    replace_by_rename(&dir.join("plugin.wasm"), &v12);
    set_version(&dir, "1.2.0");
    wait_for("1.2.0 available", Duration::from_secs(20), || {
        h.manager
            .registry()
            .slot("bant")
            .unwrap()
            .history()
            .iter()
            .any(|(p, _)| p.version() == "1.2.0")
    })
    .await;
    assert_eq!(live(&h, "bant").unwrap().0, "1.0.0");
    assert!(rows(&h, "bant")
        .await
        .contains(&("1.2.0".into(), "available".into())));
    bant_scores(&h);

    // Pin to a kept version by number, then unpin: the newest goes live.
    let p = h.manager.pin("bant", Some("1.1.0")).await.unwrap();
    assert_eq!(
        (p.version(), p.sha256.as_str()),
        ("1.1.0", sha256_hex(&v11).as_str())
    );
    let p = h.manager.unpin("bant").await.unwrap();
    assert_eq!(
        (p.version(), p.sha256.as_str()),
        ("1.2.0", sha256_hex(&v12).as_str())
    );
    let e = h.manager.rollback("bant", Some("9.9.9")).await.unwrap_err();
    assert!(e.to_string().contains("keeps no version 9.9.9"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_version_is_recorded_once_while_its_directory_is_read() {
    let h = served_bant().await;
    let dir = h.plugins_dir.join("bant");
    let _w = watch(&h);
    replace_by_rename(
        &dir.join("plugin.wasm"),
        b"\0asm\x0d\0\x01\0 not a component",
    );
    set_version(&dir, "2.0.0");
    wait_for("2.0.0 rejected", Duration::from_secs(20), || {
        h.manager
            .registry()
            .slot("bant")
            .unwrap()
            .last_error()
            .is_some_and(|e| e.error.contains("bant@2.0.0"))
    })
    .await;
    // Events of the writes above that the watcher had not settled yet may still cause one
    // read (replayed, unrecorded): let them drain before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reads = h.manager.directory_reads();
    read_all(&dir, 30);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A write of the same bytes: read again, but neither recorded nor logged again.
    replace_by_rename(
        &dir.join("plugin.wasm"),
        b"\0asm\x0d\0\x01\0 not a component",
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.manager.directory_reads() <= reads + 1);
    let rejected: Vec<_> = rows(&h, "bant")
        .await
        .into_iter()
        .filter(|(_, s)| s == "rejected")
        .collect();
    assert_eq!(rejected, vec![("2.0.0".into(), "rejected".into())]);
    let err = h
        .manager
        .registry()
        .slot("bant")
        .unwrap()
        .last_error()
        .unwrap();
    assert!(!err.error.contains('\n'), "{}", err.error);
    assert_eq!(live(&h, "bant").unwrap().0, "1.0.0");
    bant_scores(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_directory_cannot_take_a_served_name_and_its_removal_leaves_bant() {
    let h = served_bant().await;
    let bant_sha = live(&h, "bant").unwrap().1;
    let _w = watch(&h);
    // zz-impostor: another plugin's component under BANT's name.
    let impostor = install(&h.plugins_dir, "testing/minimal", "zz-impostor");
    let text = std::fs::read_to_string(impostor.join("plugin.toml"))
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("name = ") {
                "name = \"bant\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    replace_by_rename(&impostor.join("plugin.toml"), text.as_bytes());
    wait_for("the impostor rejected", Duration::from_secs(20), || {
        h.manager
            .directories()
            .iter()
            .any(|d| d.dir.ends_with("zz-impostor") && d.error.is_some())
    })
    .await;
    let status = h
        .manager
        .directories()
        .into_iter()
        .find(|d| d.dir.ends_with("zz-impostor"))
        .unwrap();
    let e = status.error.unwrap();
    assert!(
        e.contains("zz-impostor") && e.contains("plugins/bant"),
        "{e}"
    );
    assert_eq!(live(&h, "bant").unwrap().1, bant_sha);
    bant_scores(&h);

    std::fs::remove_dir_all(&impostor).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(live(&h, "bant").unwrap().1, bant_sha);
    bant_scores(&h);
}

/// A directory named after the plugin it holds owns the name at start, whatever sorts first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_the_directory_named_after_the_plugin_owns_the_name() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(&sqlite_url(tmp.path()), "").await;
    install(&h.plugins_dir, "bant", "bant");
    let aa = install(&h.plugins_dir, "bant", "aa-copy");
    let m = manifest_with(&aa, "7.0.0", None);
    std::fs::write(aa.join("plugin.toml"), m).unwrap();
    let report = h.manager.load_all().await;
    assert_eq!(report.loaded, vec!["bant@1.0.0"]);
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert!(report.failed[0].1.contains("already holds it"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifos_device_symlinks_and_oversized_components_are_refused_while_bant_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host_with(&sqlite_url(tmp.path()), "", |c| {
        c.plugins.max_component_bytes = 4 << 20;
    })
    .await;
    install(&h.plugins_dir, "bant", "bant");
    let wasm = wasm_of("bant");
    let mk = |name: &str| -> PathBuf {
        let d = install(&h.plugins_dir, "bant", name);
        let m = manifest_with(&d, "1.0.0", None)
            .replace("name = \"bant\"", &format!("name = \"{name}\""));
        std::fs::write(d.join("plugin.toml"), m).unwrap();
        std::fs::remove_file(d.join("plugin.wasm")).unwrap();
        d
    };
    let fifo = mk("fifo");
    let c =
        std::ffi::CString::new(fifo.join("plugin.wasm").as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let zero = mk("zero");
    std::os::unix::fs::symlink("/dev/zero", zero.join("plugin.wasm")).unwrap();
    let passwd = mk("passwd");
    std::os::unix::fs::symlink("/etc/passwd", passwd.join("plugin.wasm")).unwrap();
    let big = mk("big");
    let padded = append_custom_section(&wasm, "padding", &vec![0u8; 5 << 20]);
    std::fs::write(big.join("plugin.wasm"), &padded).unwrap();
    let fifo_manifest = install(&h.plugins_dir, "bant", "fifo-manifest");
    std::fs::remove_file(fifo_manifest.join("plugin.toml")).unwrap();
    let c = std::ffi::CString::new(
        fifo_manifest
            .join("plugin.toml")
            .as_os_str()
            .as_encoded_bytes(),
    )
    .unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);

    let report = tokio::time::timeout(Duration::from_secs(30), h.manager.load_all())
        .await
        .expect("a FIFO or device blocked the loader");
    assert_eq!(report.loaded, vec!["bant@1.0.0"]);
    let why = |dir: &str| -> String {
        report
            .failed
            .iter()
            .find(|(d, _)| d.ends_with(dir))
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| panic!("{dir} not reported: {:?}", report.failed))
    };
    assert!(why("fifo").contains("is a FIFO"), "{}", why("fifo"));
    assert!(
        why("fifo-manifest").contains("is a FIFO"),
        "{}",
        why("fifo-manifest")
    );
    assert!(
        why("zero").contains("outside the plugin directory"),
        "{}",
        why("zero")
    );
    let p = why("passwd");
    assert!(
        p.contains("outside the plugin directory") && !p.contains("root:"),
        "{p}"
    );
    assert!(why("big").contains("max_component_bytes"), "{}", why("big"));
    for (_, e) in &report.failed {
        assert!(!e.contains('\n'), "{e}");
    }
    // Every failure is visible to operators.
    let dirs = h.manager.directories();
    for d in ["fifo", "zero", "passwd", "big", "fifo-manifest"] {
        assert!(
            dirs.iter().any(|s| s.dir.ends_with(d) && s.error.is_some()),
            "{d}: {dirs:?}"
        );
    }
    bant_scores(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_naming_its_component_waits_for_it_and_never_goes_live_with_old_bytes() {
    let h = served_bant().await;
    let dir = h.plugins_dir.join("bant");
    let old_sha = live(&h, "bant").unwrap().1;
    let new = with_custom_section(&wasm_of("bant"), "1.1.0");
    let new_sha = sha256_hex(&new);
    // The manifest first, naming its component: the version waits, nothing recorded.
    replace_by_rename(
        &dir.join("plugin.toml"),
        manifest_with(&dir, "1.1.0", Some(&new_sha)).as_bytes(),
    );
    let e = h.manager.load_dir(&dir).await.unwrap_err().to_string();
    assert!(e.contains("waiting for the component"), "{e}");
    assert_eq!(live(&h, "bant").unwrap(), ("1.0.0".into(), old_sha.clone()));
    assert!(!rows(&h, "bant").await.iter().any(|(_, s)| s == "rejected"));
    // Then the component: the version goes live with exactly those bytes.
    replace_by_rename(&dir.join("plugin.wasm"), &new);
    h.manager.load_dir(&dir).await.unwrap();
    assert_eq!(live(&h, "bant").unwrap(), ("1.1.0".into(), new_sha));
}

/// Without `component_sha256`, the watcher reads a directory once it has settled: a
/// manifest renamed in just before its component never goes live with the old bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_before_component_goes_live_with_the_new_component() {
    let h = served_bant().await;
    let dir = h.plugins_dir.join("bant");
    let _w = watch(&h);
    let old_sha = live(&h, "bant").unwrap().1;
    let wasm = wasm_of("bant");
    for (i, version) in ["1.1.0", "1.2.0", "1.3.0"].iter().enumerate() {
        let new = with_custom_section(&wasm, version);
        set_version(&dir, version);
        tokio::time::sleep(Duration::from_millis(60 + 40 * i as u64)).await;
        replace_by_rename(&dir.join("plugin.wasm"), &new);
        let new_sha = sha256_hex(&new);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (v, sha) = live(&h, "bant").unwrap();
            assert!(
                !(v == *version && sha != new_sha),
                "{version} went live with other bytes"
            );
            if v == *version {
                break;
            }
            assert!(Instant::now() < deadline, "{version} never went live");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_ne!(live(&h, "bant").unwrap().1, old_sha);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_bytes_under_a_recorded_version_are_refused() {
    let h = served_bant().await;
    let dir = h.plugins_dir.join("bant");
    let old = live(&h, "bant").unwrap();
    replace_by_rename(
        &dir.join("plugin.wasm"),
        &with_custom_section(&wasm_of("bant"), "same-version"),
    );
    let e = h.manager.load_dir(&dir).await.unwrap_err().to_string();
    assert!(
        e.contains("bant@1.0.0") && e.contains("bump plugin.version"),
        "{e}"
    );
    assert_eq!(live(&h, "bant").unwrap(), old);
    // Refused, not recorded as a version: the live one's row is the only row.
    assert_eq!(
        rows(&h, "bant").await,
        vec![("1.0.0".into(), "live".into())]
    );
    let status = h
        .manager
        .directories()
        .into_iter()
        .find(|d| d.dir == dir)
        .unwrap();
    assert!(status.error.unwrap().contains("bump plugin.version"));

    // Also across restarts: the database remembers which bytes 1.0.0 had.
    let again = PluginManagerFor::fresh(&h).await;
    let e = again.load_dir(&dir).await.unwrap_err().to_string();
    assert!(e.contains("bump plugin.version"), "{e}");
}

/// A second manager on the same database and plugins directory (a restarted host).
struct PluginManagerFor;

impl PluginManagerFor {
    async fn fresh(h: &TestHost) -> strata::plugins::PluginManager {
        let config = h.manager.config();
        let runtime =
            strata::app::App::runtime(&config, Some(h.db.clone()), h.audit.clone()).unwrap();
        strata::plugins::PluginManager::new(
            Arc::new(runtime),
            Arc::new(strata::plugins::Registry::new()),
            config,
            Some(h.db.clone()),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_manifests_are_listed_with_a_one_line_reason_and_no_row_stays_loading() {
    let h = served_bant().await;
    let bad = h.plugins_dir.join("escape");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("plugin.toml"),
        "[plugin]\nname = \"../../etc\"\nversion = \"1.0.0\"\nkind = \"scorer\"\n",
    )
    .unwrap();
    let broken = install(&h.plugins_dir, "bant", "broken");
    std::fs::write(
        broken.join("plugin.toml"),
        manifest_with(&broken, "1.0.0", None).replace("name = \"bant\"", "name = \"broken\""),
    )
    .unwrap();
    std::fs::write(
        broken.join("plugin.wasm"),
        b"root:x:0:0:root:/root:/bin/bash\n",
    )
    .unwrap();
    h.manager.load_all().await;
    let dirs = h.manager.directories();
    let of = |d: &str| dirs.iter().find(|s| s.dir.ends_with(d)).unwrap().clone();
    let e = of("escape").error.unwrap();
    assert!(e.contains("plugin.name") && !e.contains('\n'), "{e}");
    let e = of("broken").error.unwrap();
    assert!(
        e.contains("not a WebAssembly file") && !e.contains("root"),
        "{e}"
    );
    let all = h.db.list_plugin_versions(None, 100).await.unwrap();
    assert!(
        all.iter().all(|r| r.status.as_str() != "loading"),
        "{all:?}"
    );
}
