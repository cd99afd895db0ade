//! Releases across a fleet (issue 21): three `strata serve` processes on one PostgreSQL
//! database. A version published and released through one replica is served by all;
//! a rollback through another applies to all; a version that waits for approval serves
//! nowhere; a replica killed during a rollout converges when it starts again.

mod common;
#[path = "support/pg.rs"]
#[allow(dead_code)]
mod pg;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strata::db::Role;

/// One `strata serve` process with its own plugins directory and cache.
struct Replica {
    config: PathBuf,
    port: u16,
    child: Child,
}

impl Replica {
    fn start(dir: &Path, url: &str) -> Replica {
        Self::start_with(dir, url, "")
    }

    /// [`Replica::start`] with `extra` TOML appended to its configuration (e.g. grants).
    fn start_with(dir: &Path, url: &str, extra: &str) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let plugins = dir.join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let config = dir.join("strata.toml");
        let text = format!(
            "{}\n[release]\npoll_ms = 500\n[server]\nworkers = 1\n{extra}\n",
            host_toml(url, &plugins, &dir.join("cache"))
        );
        std::fs::write(&config, text).unwrap();
        let child = spawn(&config, port);
        Replica {
            config,
            port,
            child,
        }
    }

    fn restart(&mut self) {
        self.child = spawn(&self.config, self.port);
    }

    fn kill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The sha256 this replica serves for `name` (none: not live here).
    async fn serving(&self, name: &str, key: &str) -> Option<String> {
        let res = reqwest::Client::new()
            .get(self.url(&format!("/api/v1/plugins/{name}")))
            .bearer_auth(key)
            .send()
            .await
            .ok()?;
        if !res.status().is_success() {
            return None;
        }
        let v: Value = res.json().await.ok()?;
        v["sha256"].as_str().map(str::to_string)
    }

    async fn publish(&self, key: &str, manifest: &str, wasm: Vec<u8>) -> Value {
        self.publish_as("bant", key, manifest, wasm).await
    }

    async fn publish_as(&self, name: &str, key: &str, manifest: &str, wasm: Vec<u8>) -> Value {
        let form = publish::form(manifest, wasm, &[]);
        let (status, _, v) = publish::publish(&self.url(""), key, name, form).await;
        assert!(status.is_success(), "publish: {status} {v}");
        v
    }

    /// Waits (60 s at most) until the replica answers `/health`.
    async fn wait_up(&self) {
        let health = self.url("/health");
        wait_for("replica up", || {
            let health = health.clone();
            async move { reqwest::get(health).await.ok().map(|_| ()) }
        })
        .await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let res = reqwest::Client::new()
            .request(method, self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn release(&self, key: &str, version: &str) -> (StatusCode, Value) {
        self.call(
            reqwest::Method::PUT,
            "/api/v1/plugins/bant/release",
            key,
            json!({ "version": version }),
        )
        .await
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["--config", config.to_str().unwrap(), "serve", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .env("STRATA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Polls `probe` every 50 ms until it gives a value, for at most 60 s (`what` names the
/// wait in the failure).
async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until every replica serves `sha256` for bant, for at most 60 s.
async fn all_serve(replicas: &[&Replica], key: &str, sha256: &str, what: &str) {
    wait_for(
        &format!("{what}: every replica serving {sha256}"),
        || async move {
            for r in replicas {
                if r.serving("bant", key).await.as_deref() != Some(sha256) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
}

fn manifest(version: &str, extra: &str) -> String {
    let m = std::fs::read_to_string(plugin_source("bant").join("plugin.toml")).unwrap();
    let m = m.replacen(
        "version = \"1.0.0\"",
        &format!("version = \"{version}\""),
        1,
    );
    format!("{m}\n{extra}\n")
}

/// A scorer named `bant` with other bytes: xeducation's component under bant's name
/// (its own smoke tests, which that component passes).
fn other_bant(version: &str) -> (String, Vec<u8>) {
    let src = plugin_source("xeducation");
    let m = std::fs::read_to_string(src.join("plugin.toml"))
        .unwrap()
        .replacen("name = \"xeducation\"", "name = \"bant\"", 1)
        .replacen(
            "version = \"1.0.0\"",
            &format!("version = \"{version}\""),
            1,
        );
    (m, std::fs::read(src.join("plugin.wasm")).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_follow_publish_release_rollback_and_a_restart() {
    let url = pg::fresh_database_url().await;
    let db = migrated_db(&url).await;
    let (_, admin) = strata::server::auth::create_key(&db, "admin", Role::Admin)
        .await
        .unwrap();
    let (_, op) = strata::server::auth::create_key(&db, "op", Role::Operator)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = ["a", "b", "c"].iter().map(|d| tmp.path().join(d)).collect();
    let a = Replica::start(&dirs[0], &url);
    let mut b = Replica::start(&dirs[1], &url);
    let c = Replica::start(&dirs[2], &url);
    // Up: every replica answers (bant is nowhere yet).
    for r in [&a, &b, &c] {
        r.wait_up().await;
        assert_eq!(r.serving("bant", &admin).await, None);
    }

    // Publish 1.0.0 on A (no capabilities: approved at once) and release it on A.
    let bant_wasm = std::fs::read(plugin_source("bant").join("plugin.wasm")).unwrap();
    let v1 = a
        .publish(&op, &manifest("1.0.0", ""), bant_wasm.clone())
        .await;
    assert_eq!(v1["status"], "approved", "{v1}");
    let sha1 = v1["sha256"].as_str().unwrap().to_string();
    let (st, rel) = a.release(&op, "1.0.0").await;
    assert_eq!(st, StatusCode::OK, "{rel}");
    assert_eq!(rel["sha256"], sha1.as_str());
    all_serve(&[&a, &b, &c], &admin, &sha1, "after release of 1.0.0 on A").await;

    // 2.0.0 (other bytes, other limits) published and approved on B, released on B.
    let (m2, w2) = other_bant("2.0.0");
    let v2 = b.publish(&op, &m2, w2).await;
    let sha2 = v2["sha256"].as_str().unwrap().to_string();
    if v2["status"] == "awaiting-approval" {
        let (st, v) = b
            .call(
                reqwest::Method::POST,
                "/api/v1/plugins/bant/versions/2.0.0/approve",
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (st, rel) = b.release(&op, "2.0.0").await;
    assert_eq!(st, StatusCode::OK, "{rel}");
    all_serve(&[&a, &b, &c], &admin, &sha2, "after release of 2.0.0 on B").await;

    // Roll back through C: all three.
    let (st, _) = c.release(&op, "1.0.0").await;
    assert_eq!(st, StatusCode::OK);
    all_serve(&[&a, &b, &c], &admin, &sha1, "after rollback on C").await;

    // A version with a new capability waits for approval and is served nowhere.
    let v3 = a
        .publish(
            &op,
            &manifest("3.0.0", "[capabilities.state]\nmax_keys = 100"),
            bant_wasm,
        )
        .await;
    assert_eq!(v3["status"], "awaiting-approval", "{v3}");
    let (st, refused) = a.release(&op, "3.0.0").await;
    assert_eq!(st, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["status"], 409);

    // B killed; 2.0.0 released meanwhile; B converges when it starts again.
    b.kill();
    let (st, _) = a.release(&op, "2.0.0").await;
    assert_eq!(st, StatusCode::OK);
    all_serve(&[&a, &c], &admin, &sha2, "A and C after 2.0.0 with B down").await;
    b.restart();
    all_serve(&[&a, &b, &c], &admin, &sha2, "B after its restart").await;

    // Every replica reports itself; the status names the released version.
    let (_, status) = a
        .call(
            reqwest::Method::GET,
            "/api/v1/plugins/bant/release",
            &admin,
            Value::Null,
        )
        .await;
    assert_eq!(status["version"], "2.0.0", "{status}");
    let converged = status["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["converged"] == true)
        .count();
    assert!(converged >= 3, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_grants_do_not_cover_a_release_keeps_serving_without_it_and_says_why() {
    let url = pg::fresh_database_url().await;
    let db = migrated_db(&url).await;
    let (_, admin) = strata::server::auth::create_key(&db, "admin", Role::Admin)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // A grants `state` to the plugin; B does not.
    let grant = "[grants.stateful]\ncapabilities = [\"state\"]\n";
    // The default scorer from each plugins directory, so `/ready` answers 200.
    for d in ["a", "b"] {
        install(&tmp.path().join(d).join("plugins"), "bant", "bant");
    }
    let a = Replica::start_with(&tmp.path().join("a"), &url, grant);
    let b = Replica::start(&tmp.path().join("b"), &url);
    for r in [&a, &b] {
        r.wait_up().await;
    }
    let src = plugin_source("testing/stateful");
    let v = a
        .publish_as(
            "stateful",
            &admin,
            &std::fs::read_to_string(src.join("plugin.toml")).unwrap(),
            std::fs::read(src.join("plugin.wasm")).unwrap(),
        )
        .await;
    assert_eq!(v["status"], "awaiting-approval", "{v}");
    let (st, v) = a
        .call(
            reqwest::Method::POST,
            "/api/v1/plugins/stateful/versions/1.0.0/approve",
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, rel) = a
        .call(
            reqwest::Method::PUT,
            "/api/v1/plugins/stateful/release",
            &admin,
            json!({ "version": "1.0.0" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{rel}");
    assert!(rel["problem"].is_null(), "{rel}");
    assert!(a.serving("stateful", &admin).await.is_some());
    // B refuses it: not served, and /ready and the release status say why.
    let ready_url = b.url("/ready");
    let ready = wait_for("B reports the release it cannot serve", || {
        let url = ready_url.clone();
        async move {
            let r: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
            r["release_problems"]["stateful"].is_string().then_some(r)
        }
    })
    .await;
    let why = ready["release_problems"]["stateful"].as_str().unwrap();
    assert!(why.contains("state"), "{why}");
    assert_eq!(b.serving("stateful", &admin).await, None);
    let (_, status) = b
        .call(
            reqwest::Method::GET,
            "/api/v1/plugins/stateful/release",
            &admin,
            Value::Null,
        )
        .await;
    assert!(
        status["problem"].as_str().unwrap().contains("state"),
        "{status}"
    );
}

/// Benchmark, not a test of timing (run with `--ignored --nocapture`): time from the
/// promote request to every one of three replicas serving the new version, over 50
/// promotions alternating two versions whose components every replica has compiled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --test release_fleet -- --ignored --nocapture"]
async fn bench_promotion_to_all_replicas() {
    let url = pg::fresh_database_url().await;
    let db = migrated_db(&url).await;
    let (_, admin) = strata::server::auth::create_key(&db, "admin", Role::Admin)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let replicas: Vec<Replica> = ["a", "b", "c"]
        .iter()
        .map(|d| Replica::start(&tmp.path().join(d), &url))
        .collect();
    for r in &replicas {
        r.wait_up().await;
    }
    let wasm = std::fs::read(plugin_source("bant").join("plugin.wasm")).unwrap();
    let sha1 = replicas[0]
        .publish(&admin, &manifest("1.0.0", ""), wasm)
        .await["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let (m2, w2) = other_bant("2.0.0");
    let v2 = replicas[1].publish(&admin, &m2, w2).await;
    if v2["status"] == "awaiting-approval" {
        replicas[1]
            .call(
                reqwest::Method::POST,
                "/api/v1/plugins/bant/versions/2.0.0/approve",
                &admin,
                json!({}),
            )
            .await;
    }
    let sha2 = v2["sha256"].as_str().unwrap().to_string();
    let all: Vec<&Replica> = replicas.iter().collect();
    // Warm: both versions compiled on every replica.
    for (v, sha) in [("1.0.0", &sha1), ("2.0.0", &sha2)] {
        replicas[0].release(&admin, v).await;
        all_serve(&all, &admin, sha, "warm-up").await;
    }
    let mut ms = Vec::new();
    for i in 0..50 {
        let (v, sha) = if i % 2 == 0 {
            ("1.0.0", &sha1)
        } else {
            ("2.0.0", &sha2)
        };
        let started = Instant::now();
        let (st, _) = replicas[i % 3].release(&admin, v).await;
        assert_eq!(st, StatusCode::OK);
        all_serve(&all, &admin, sha, "promotion").await;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    eprintln!(
        "BENCH promotion to 3 replicas (PostgreSQL NOTIFY, compiled artifacts): n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        ms.len(),
        pct(0.5),
        pct(0.99),
        ms[ms.len() - 1]
    );

    // Load during promotions: 8 clients scoring with bant round-robin over the three
    // replicas while 20 promotions run; every answer must be a 200.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let urls: Vec<String> = replicas.iter().map(|r| r.url("/api/v1/score")).collect();
    let mut clients = Vec::new();
    for c in 0..8 {
        let (stop, urls, key) = (stop.clone(), urls.clone(), admin.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut ok, mut failed) = (0u64, Vec::new());
            let mut i = c;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = json!({"lead": {"id": format!("load-{i}"), "title": "CEO", "employees": 300}, "strategy": "bant"});
                match http.post(&urls[i % 3]).bearer_auth(&key).json(&body).send().await {
                    Ok(r) if r.status() == StatusCode::OK => ok += 1,
                    Ok(r) => failed.push(r.status().to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
                i += 1;
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..20 {
        let (v, sha) = if i % 2 == 0 {
            ("1.0.0", &sha1)
        } else {
            ("2.0.0", &sha2)
        };
        replicas[i % 3].release(&admin, v).await;
        all_serve(&all, &admin, sha, "promotion under load").await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for c in clients {
        let (o, f) = c.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    eprintln!(
        "BENCH load during 20 promotions over 3 replicas: {ok} scored, {} failed {:?}",
        failed.len(),
        failed.iter().take(5).collect::<Vec<_>>()
    );
}
