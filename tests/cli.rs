//! The `strata` binary end to end: score a file into SQLite, backtest, inspect, smoke-test,
//! scaffold and build a new plugin, back up and restore the database, the benchmark's
//! report and server, and clear errors on bad input.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Work {
    tmp: tempfile::TempDir,
}

impl Work {
    /// A working directory with a config, a plugins dir holding bant, xeducation and the
    /// ungranted-crm test plugin, and a SQLite database path.
    fn new() -> Work {
        let tmp = tempfile::tempdir().unwrap();
        let plugins = tmp.path().join("plugins");
        install(&plugins, "bant", "bant");
        install(&plugins, "xeducation", "xeducation");
        install(&plugins, "testing/ungranted-crm", "ungranted-crm");
        let config = format!(
            "[database]\nurl = \"sqlite://{db}\"\n[plugins]\ndir = \"{plugins}\"\n[runtime]\ncache_dir = \"{cache}\"\n\
             [grants.bant]\ncapabilities = []\n",
            db = tmp.path().join("strata.db").display(),
            plugins = plugins.display(),
            cache = tmp.path().join("cache").display(),
        );
        std::fs::write(tmp.path().join("strata.toml"), config).unwrap();
        Work { tmp }
    }

    /// A working directory whose config names only its SQLite database (no plugins).
    fn bare() -> Work {
        let tmp = tempfile::tempdir().unwrap();
        let config = format!(
            "[database]\nurl = \"sqlite://{}\"\n",
            tmp.path().join("strata.db").display()
        );
        std::fs::write(tmp.path().join("strata.toml"), config).unwrap();
        Work { tmp }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn strata(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .current_dir(repo_root())
            .arg("--config")
            .arg(self.path("strata.toml"))
            .args(args)
            .env(
                "CARGO_TARGET_DIR",
                std::env::var("CARGO_TARGET_DIR")
                    .unwrap_or_else(|_| repo_root().join("plugins/target").display().to_string()),
            )
            .output()
            .expect("run strata")
    }

    async fn db(&self) -> strata::db::Db {
        strata::db::Db::connect(
            &format!("sqlite://{}", self.path("strata.db").display()),
            &Default::default(),
        )
        .await
        .unwrap()
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn demo() -> String {
    repo_root().join("demo/leads.jsonl").display().to_string()
}

fn xeducation() -> String {
    repo_root()
        .join("tests/data/leads-xeducation.csv")
        .display()
        .to_string()
}

#[tokio::test]
async fn score_stores_and_prints_every_demo_lead() {
    let w = Work::new();
    // Another plugin's broken directory does not stop a command about BANT.
    std::fs::create_dir_all(w.path("plugins/aa-broken")).unwrap();
    std::fs::write(w.path("plugins/aa-broken/plugin.toml"), "[plugin]\nname = ").unwrap();
    let out = w.strata(&["score", "--plugin", "bant", "--input", &demo()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("plugins/aa-broken"),
        "the broken directory is warned about: {stderr}"
    );
    assert!(
        stdout.contains("demo-001") && stdout.contains("demo-012"),
        "{stdout}"
    );
    assert!(stderr.contains("12 scored, 0 failed"), "{stderr}");
    let db = w.db().await;
    let scores = db.latest_scores("demo-002", 5).await.unwrap();
    assert_eq!(scores.len(), 1);
    assert_eq!(scores[0].strategy, "bant@1.0.0");
    let sha = strata::runtime::prepare::sha256_hex(&wasm_of("bant"));
    assert_eq!(scores[0].strategy_sha256.as_deref(), Some(sha.as_str()));
    assert!(scores[0].score.value > scores.iter().map(|_| 0.0).sum::<f64>());
    assert!(
        db.get_lead("demo-002").await.unwrap().is_some(),
        "leads are stored too"
    );
    // Hot lead beats junk.
    let hot = db.latest_scores("demo-001", 1).await.unwrap()[0]
        .score
        .value;
    let junk = db.latest_scores("demo-009", 1).await.unwrap()[0]
        .score
        .value;
    assert!(hot > junk + 30.0, "hot {hot} vs junk {junk}");
}

#[tokio::test]
async fn score_stores_the_whole_x_education_set() {
    let w = Work::new();
    let out = w.strata(&[
        "score",
        "--plugin",
        "xeducation",
        "--input",
        &xeducation(),
        "--quiet",
    ]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("9240 scored, 0 failed"), "{stderr}");
    let db = w.db().await;
    assert_eq!(db.count_scores().await.unwrap(), 9240);
}

#[tokio::test]
async fn backtest_reports_auc_without_showing_the_label_to_the_plugin() {
    let w = Work::new();
    let out = w.strata(&[
        "backtest",
        "--plugin",
        "xeducation",
        "--input",
        &xeducation(),
        "--json",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(r["leads"], 9240);
    assert_eq!(r["positives"], 3561);
    assert_eq!(r["schema"], "strata.backtest.v1");
    assert!(r["auc"]["value"].as_f64().unwrap() > 0.9, "{r}");
    assert!(r["auc"]["low"].as_f64() < r["auc"]["value"].as_f64(), "{r}");
    assert!(r["lift"]["top_10pct"].as_f64().unwrap() > 2.0, "{r}");
}

#[tokio::test]
async fn inspect_shows_imports_and_declared_versus_granted() {
    let w = Work::new();
    let out = w.strata(&[
        "plugin",
        "inspect",
        w.path("plugins/ungranted-crm").to_str().unwrap(),
        "--json",
    ]);
    let (stdout, stderr) = text(&out);
    // Not loadable: the report is printed, and the exit code says so.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("would not load"), "{stderr}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["world"], "strata:plugin/scorer");
    assert!(r["imports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i == "strata:plugin/crm@0.1.0"));
    let crm = r["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["capability"] == "crm")
        .unwrap()
        .clone();
    assert_eq!(
        (
            crm["imported"].as_bool(),
            crm["declared"].as_bool(),
            crm["granted"].as_bool()
        ),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(r["loadable"], false);
    assert!(r["load_error"]
        .as_str()
        .unwrap()
        .contains("[grants.ungranted-crm]"));
    assert_eq!(r["sha256"].as_str().unwrap().len(), 64);

    let out = w.strata(&[
        "plugin",
        "inspect",
        w.path("plugins/bant").to_str().unwrap(),
    ]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(
        stdout.contains("bant@1.0.0") && stdout.contains("loadable: yes"),
        "{stdout}"
    );
}

#[tokio::test]
async fn plugin_test_runs_smoke_cases_and_fails_on_a_violated_bound() {
    let w = Work::new();
    let out = w.strata(&["plugin", "test", w.path("plugins/bant").to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.lines().filter(|l| l.starts_with("ok")).count() >= 2,
        "{stdout}"
    );

    let m = std::fs::read_to_string(w.path("plugins/bant/plugin.toml")).unwrap();
    std::fs::write(
        w.path("plugins/bant/plugin.toml"),
        m.replacen("min_score = ", "min_score = 99.9 #", 1),
    )
    .unwrap();
    let out = w.strata(&["plugin", "test", w.path("plugins/bant").to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stdout.contains("FAIL") && stderr.contains("smoke case"),
        "{stdout}{stderr}"
    );
}

#[tokio::test]
async fn scaffolded_plugin_builds_and_loads() {
    let w = Work::new();
    let parent = w.path("plugins");
    let sdk = repo_root().join("plugins/sdk");
    let out = w.strata(&[
        "plugin",
        "new",
        "my-scorer",
        "--kind",
        "scorer",
        "--dir",
        parent.to_str().unwrap(),
        "--sdk",
        sdk.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let dir = parent.join("my-scorer");
    let out = w.strata(&["plugin", "build", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(dir.join("plugin.wasm").is_file());
    let out = w.strata(&["plugin", "test", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.lines().count() <= 30, "a scorer is about 30 lines");
}

#[tokio::test]
async fn malformed_input_is_rejected_with_line_and_cause_and_nothing_is_stored() {
    let w = Work::new();
    let bad = w.path("bad.csv");
    std::fs::write(&bad, "id,name,budget\nok-1,Ann,1000\nbad-2,Bob,lots\n").unwrap();
    let out = w.strata(&[
        "score",
        "--plugin",
        "bant",
        "--input",
        bad.to_str().unwrap(),
    ]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("line 3") && stderr.contains("budget"),
        "{stderr}"
    );
    let db = w.db().await;
    assert_eq!(db.count_scores().await.unwrap(), 0);

    let out = w.strata(&["score", "--plugin", "nope", "--input", &demo()]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("no plugin named \"nope\""));
}

#[test]
fn unknown_config_key_is_named_in_the_error() {
    let w = Work::new();
    let cfg = w.path("strata.toml");
    let text0 = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text0}\n[runtime.extra]\nx = 1\n")).unwrap();
    std::fs::write(
        &cfg,
        text0.replace("[runtime]", "[runtime]\nfuel_meterign = true"),
    )
    .unwrap();
    let out = w.strata(&["migrate"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("fuel_meterign"), "{:?}", text(&out));
    // A fuel budget without metering is refused, not silently unenforced.
    std::fs::write(
        &cfg,
        format!("{text0}[grants.loop]\nlimits = {{ fuel = 10 }}\n"),
    )
    .unwrap();
    let out = w.strata(&["migrate"]);
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("grants.loop.limits.fuel needs runtime.fuel_metering = true"),
        "{:?}",
        text(&out)
    );
    let _ = Path::new("");
}

/// `server.native_reference` is gone with the native route (now `strata bench serve`'s):
/// a configuration that still sets it is refused with the key named.
#[test]
fn the_removed_native_reference_key_is_refused() {
    let w = Work::bare();
    let cfg = w.path("strata.toml");
    let text0 = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text0}[server]\nnative_reference = true\n")).unwrap();
    let out = w.strata(&["migrate"]);
    assert!(!out.status.success());
    let err = text(&out).1;
    assert!(err.contains("native_reference"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// `strata bench --json`: the typed report's keys (a short run; the figures themselves
/// are not checked, the machine is shared).
#[test]
fn bench_json_report_has_the_documented_figures() {
    let w = Work::new();
    let out = w.strata(&[
        "bench",
        "--json",
        "--calls",
        "20",
        "--seconds",
        "0.05",
        "--pipeline-runs",
        "0",
        "--bulk-input",
        "no-such-file.csv",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let v: serde_json::Value = serde_json::from_str(text(&out).0.trim()).unwrap();
    let threads = v["threads"].as_u64().unwrap();
    assert!(v["plugin"].as_str().unwrap().starts_with("bant@"), "{v}");
    for call in [
        "native_call",
        "fresh_instance_call",
        "warm_instance_call",
        "overhead_call_minimal_plugin",
    ] {
        assert!(v[call]["p50_us"].as_f64().unwrap() > 0.0, "{call}: {v}");
        assert!(v[call]["calls"].as_u64().unwrap() > 0, "{call}: {v}");
    }
    for figure in [
        "throughput_1_thread_per_s".to_string(),
        format!("throughput_{threads}_threads_per_s"),
        "compile_ms".into(),
        "cached_artifact_load_ms".into(),
        "hot_swap_compile_ms".into(),
        "hot_swap_cached_artifact_ms".into(),
    ] {
        assert!(v[&figure].as_f64().unwrap() > 0.0, "{figure}: {v}");
    }
    for absent in ["bulk", "pipeline", "pipeline_dry_run"] {
        assert!(v.get(absent).is_none(), "{absent}: {v}");
    }
}

/// `strata bench serve`: the production API plus the native reference route, behind the
/// same auth; `strata serve` has no such route (tests/api.rs).
#[tokio::test]
async fn bench_serve_answers_the_native_route_with_an_operator_key() {
    let w = Work::new();
    let key = w.strata(&["keys", "create", "--role", "operator", "--name", "bench"]);
    assert!(key.status.success(), "{:?}", text(&key));
    let key = text(&key).0.trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    /// Stops the server however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Stop(
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .current_dir(repo_root())
            .arg("--config")
            .arg(w.path("strata.toml"))
            .args(["bench", "serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("STRATA_PLUGINS__WATCH", "false")
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        let r = http.get(format!("{base}/ready")).send().await;
        if r.is_ok_and(|r| r.status().is_success()) {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "strata bench serve did not become ready");
    let lead = serde_json::to_value(hot_lead("native-1")).unwrap();
    let post = |path: &str| {
        http.post(format!("{base}{path}"))
            .json(&serde_json::json!({"lead": lead}))
    };
    let r = post("/bench/native-bant").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let score = |path: &'static str| {
        let r = post(path).bearer_auth(&key);
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let native = score("/bench/native-bant").await;
    assert_eq!(native["strategy"], "native-bant", "{native}");
    assert_eq!(native["lead_id"], "native-1");
    let wasm = score("/api/v1/score").await;
    assert!(
        wasm["strategy"].as_str().unwrap().starts_with("bant@"),
        "{wasm}"
    );
    // The same logic: the same score, byte for byte.
    assert_eq!(native["score"], wasm["score"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_refuses_to_overwrite_and_restore_refuses_while_the_database_is_open() {
    let w = Work::bare();
    let db = w.db().await;
    db.migrate().await.unwrap();
    let lead = |id: &str| strata::domain::Lead {
        id: id.into(),
        ..Default::default()
    };
    db.upsert_lead(&lead("kept-1")).await.unwrap();

    // Online: the database is open (and its checkpointer running) in this process.
    let copy = w.path("copy.db");
    let copy_arg = copy.display().to_string();
    let out = w.strata(&["backup", &copy_arg]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains(" pages, "), "{:?}", text(&out));
    let out = w.strata(&["backup", &copy_arg]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("already exists; pass --force"),
        "{:?}",
        text(&out)
    );
    db.upsert_lead(&lead("after-backup")).await.unwrap();
    let out = w.strata(&["backup", &copy_arg, "--force"]);
    assert!(out.status.success(), "{:?}", text(&out));

    // A writer holds the database open: restore refuses and changes nothing.
    db.upsert_lead(&lead("not-in-backup")).await.unwrap();
    let out = w.strata(&["restore", &copy_arg, "--lock-wait-ms", "300"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("is in use"), "{:?}", text(&out));
    assert!(db.get_lead("not-in-backup").await.unwrap().is_some());

    // Stopped: the backup goes in, the replaced database is kept beside it.
    db.close().await;
    drop(db);
    let out = w.strata(&["restore", &copy_arg]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("strata.db.before-restore-"),
        "{:?}",
        text(&out)
    );
    let db = w.db().await;
    assert!(db.get_lead("after-backup").await.unwrap().is_some());
    assert!(db.get_lead("not-in-backup").await.unwrap().is_none());

    // Not a Strata database: refused before anything is touched.
    let junk = w.path("junk.db");
    foreign_sqlite_file(&junk).await;
    let out = w.strata(&["restore", &junk.display().to_string()]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("not a usable Strata database"),
        "{:?}",
        text(&out)
    );
    db.close().await;
}

/// A SQLite database without Strata's tables.
async fn foreign_sqlite_file(path: &Path) {
    use sqlx::ConnectOptions;
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (x)")
        .execute(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn replay_rescores_stored_scores_with_another_version_and_writes_nothing() {
    let w = Work::new();
    let out = w.strata(&["score", "--plugin", "bant", "--input", &demo(), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let db = w.db().await;
    let stored = db.count_scores().await.unwrap();
    assert_eq!(stored, 12);

    // The same version reproduces every stored score.
    let out = w.strata(&[
        "replay",
        "--strategy",
        "bant",
        "--plugin",
        "bant@1.0.0",
        "--json",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["plugin"], "bant@1.0.0");
    assert_eq!(r["sources"]["from_snapshot"], 12, "{r}");
    let c = &r["comparison"];
    assert_eq!(c["agreement"]["pairs"], 12);
    assert_eq!(c["agreement"]["mean_absolute_difference"], 0.0);
    assert_eq!(c["agreement"]["priorities"]["agreement"], 1.0);

    // Another scorer: the report says how far it diverges.
    let out = w.strata(&["replay", "--strategy", "bant", "--plugin", "xeducation"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("replayed 12 stored scores of bant with xeducation@1.0.0"),
        "{stdout}"
    );
    assert!(stdout.contains("drift PSI"), "{stdout}");
    assert_eq!(
        db.count_scores().await.unwrap(),
        stored,
        "replay writes nothing"
    );

    // A version the plugins directory does not hold is named.
    let out = w.strata(&["replay", "--strategy", "bant", "--plugin", "bant@9.0.0"]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("holds bant@1.0.0, not bant@9.0.0"),
        "{}",
        text(&out).1
    );
}
