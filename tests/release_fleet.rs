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
/// promotions alternating two versions whose components every replica has compiled; then
/// `wrk` (bench/score.lua) scoring on all three replicas during 20 promotions; then
/// promotions of versions no replica but the publishing one has compiled, beside the
/// time one compile takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --test release_fleet -- --ignored --nocapture"]
async fn bench_promotion_to_all_replicas() {
    let url = pg::fresh_database_url().await;
    let db = migrated_db(&url).await;
    let (_, admin) = strata::server::auth::create_key(&db, "admin", Role::Admin)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Under [server] (`start_with` appends after `workers`): wrk must not meet the rate
    // limit of one key.
    let unlimited = "rate_limit_per_second = 10000000\nrate_limit_burst = 10000000\n";
    let replicas: Vec<Replica> = ["a", "b", "c"]
        .iter()
        .map(|d| Replica::start_with(&tmp.path().join(d), &url, unlimited))
        .collect();
    for r in &replicas {
        r.wait_up().await;
    }
    let wasm = std::fs::read(plugin_source("bant").join("plugin.wasm")).unwrap();
    let sha1 = replicas[0]
        .publish(&admin, &manifest("1.0.0", ""), wasm.clone())
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
    let alternate = |i: usize| {
        if i.is_multiple_of(2) {
            ("1.0.0", &sha1)
        } else {
            ("2.0.0", &sha2)
        }
    };
    let mut ms = Vec::new();
    for i in 0..50 {
        let (v, sha) = alternate(i);
        let started = Instant::now();
        let (st, _) = replicas[i % 3].release(&admin, v).await;
        assert_eq!(st, StatusCode::OK);
        all_serve(&all, &admin, sha, "promotion").await;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let (p50, p99, max) = percentiles(&mut ms);
    eprintln!(
        "BENCH promotion to 3 replicas (PostgreSQL NOTIFY, compiled artifacts): n={} p50={p50:.1} ms p99={p99:.1} ms max={max:.1} ms",
        ms.len()
    );

    // wrk on every replica (bench/score.lua: POST /api/v1/score with bant) while 20
    // promotions run back to back; stopped with SIGINT (wrk then prints its summary) once
    // the last one is served everywhere, so the load covers every promotion.
    let lua = repo_root().join("bench/score.lua");
    let wrks: Vec<std::process::Child> = replicas
        .iter()
        .map(|r| {
            Command::new("wrk")
                .args(["-t1", "-c8", "-d300s", "-s"])
                .arg(&lua)
                .arg(r.url("/api/v1/score"))
                .env("STRATA_KEY", &admin)
                .env("STRATEGY", "bant")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("wrk (apt-get install wrk)")
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let promoting = Instant::now();
    // A promotion request refused under load is reported and sent again.
    let mut refused = Vec::new();
    for i in 0..20 {
        let (v, sha) = alternate(i);
        loop {
            let (st, body) = replicas[i % 3].release(&admin, v).await;
            if st == StatusCode::OK {
                break;
            }
            refused.push(format!("{st}: {}", body["detail"]));
            assert!(refused.len() < 50, "promotions refused: {refused:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        all_serve(&all, &admin, sha, "promotion under load").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoting = promoting.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for w in &wrks {
        let sent = Command::new("kill")
            .args(["-INT", &w.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }
    let (mut requests, mut non_2xx, mut errors) = (0u64, 0u64, 0u64);
    for w in wrks {
        let out = w.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let (r, n, e) = wrk_counts(&text);
        eprintln!("BENCH wrk on one replica:\n{text}");
        requests += r;
        non_2xx += n;
        errors += e;
    }
    eprintln!(
        "BENCH wrk over 3 replicas during 20 promotions ({:.1} s of promotions, load from 1 s before to 0.5 s after): {requests} requests, {non_2xx} non-2xx, {errors} socket errors; promotion requests refused and sent again: {} {refused:?}",
        promoting.as_secs_f64(),
        refused.len()
    );

    // A version no replica has compiled: new bytes (a custom section) published on one
    // replica (whose checks compile it) and released through another; the two others
    // compile it when they follow. Beside it, one compile of such bytes on a fresh cache.
    let mut cold = Vec::new();
    let mut compile = Vec::new();
    for i in 0..5usize {
        let bytes = strata::runtime::prepare::append_custom_section(
            &wasm,
            "bench",
            format!("cold-{i}").as_bytes(),
        );
        compile.push(compile_ms(&bytes).await);
        let version = format!("3.0.{i}");
        let v = replicas[i % 3]
            .publish(&admin, &manifest(&version, ""), bytes)
            .await;
        let sha = v["sha256"].as_str().unwrap().to_string();
        let started = Instant::now();
        let (st, r) = replicas[(i + 1) % 3].release(&admin, &version).await;
        assert_eq!(st, StatusCode::OK, "{r}");
        all_serve(&all, &admin, &sha, "promotion of an uncompiled version").await;
        cold.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let (cp50, _, cmax) = percentiles(&mut compile);
    let (p50, _, max) = percentiles(&mut cold);
    eprintln!(
        "BENCH promotion of a version not compiled yet: n={} p50={p50:.1} ms max={max:.1} ms; one compile (fresh cache): p50={cp50:.1} ms max={cmax:.1} ms",
        cold.len()
    );
}

/// p50, p99 and max of `ms` (sorted here).
fn percentiles(ms: &mut [f64]) -> (f64, f64, f64) {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    (pct(0.5), pct(0.99), ms[ms.len() - 1])
}

/// Requests, non-2xx/3xx responses and socket errors from wrk's summary.
fn wrk_counts(out: &str) -> (u64, u64, u64) {
    let num = |s: &str| s.trim().trim_end_matches(',').parse::<u64>().unwrap_or(0);
    let mut counts = (0, 0, 0);
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.split_once(" requests in ") {
            counts.0 = num(rest.0);
        } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            counts.1 = num(n);
        } else if let Some(e) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            counts.2 = e
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1))
                .map(num)
                .sum();
        }
    }
    counts
}

/// Milliseconds one compile, validation and link of bant's manifest with `wasm` takes on
/// a runtime with an empty cache (what a replica does when it first follows the bytes).
async fn compile_ms(wasm: &[u8]) -> f64 {
    let cache = tempfile::tempdir().unwrap();
    let mut config = strata::config::Config::default();
    config.runtime.cache_dir = Some(cache.path().to_path_buf());
    let runtime =
        strata::app::App::runtime(&config, None, strata::audit::AuditSink::disabled()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = manifest("9.9.9", "");
    let m =
        strata::manifest::Manifest::from_bytes(text.as_bytes(), &dir.path().join("plugin.toml"))
            .unwrap();
    let wasm = wasm.to_vec();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        runtime.prepare(m, &wasm, None, None).unwrap();
        started.elapsed().as_secs_f64() * 1000.0
    })
    .await
    .unwrap()
}
