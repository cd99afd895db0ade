//! Releases, first slice (issue 21) on a single SQLite host: publishing a plugin through
//! the API (the checks of a local load, the component stored by its sha256), the
//! capability surface diff against the released version, approval and rejection by an
//! admin (audited with the key), refusals (same version with other bytes, an invalid
//! component, a wrong role), and the CLI's publish/diff/approve.

mod common;

use common::server::TestServer;
use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use strata::db::{ReleaseStatus, Role};

struct Fleet {
    server: TestServer,
    db: strata::db::Db,
    operator: String,
    admin: String,
    admin_id: String,
    reader: String,
    _tmp: tempfile::TempDir,
}

async fn start() -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let url = sqlite_url(tmp.path());
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let mut config = strata::config::Config::default();
    config.database.url = url.clone();
    config.plugins.dir = plugins;
    config.plugins.watch = false;
    config.runtime.cache_dir = Some(tmp.path().join("cache"));
    config.runtime.pool_instances = 16;
    config.server.bind = "127.0.0.1:0".into();
    let server = TestServer::start(config).await;
    let db = migrated_db(&url).await;
    let key = |role| {
        let db = db.clone();
        async move {
            strata::server::auth::create_key(&db, &format!("{role:?}"), role)
                .await
                .unwrap()
        }
    };
    let (admin_rec, admin) = key(Role::Admin).await;
    Fleet {
        server,
        operator: key(Role::Operator).await.1,
        admin,
        admin_id: admin_rec.id,
        reader: key(Role::Reader).await.1,
        db,
        _tmp: tmp,
    }
}

fn bant_manifest() -> String {
    std::fs::read_to_string(plugin_source("bant").join("plugin.toml")).unwrap()
}

/// bant's manifest as `version`, with `extra` TOML appended.
fn manifest_as(version: &str, extra: &str) -> String {
    let m = bant_manifest().replacen(
        "version = \"1.0.0\"",
        &format!("version = \"{version}\""),
        1,
    );
    assert!(m.contains(version));
    format!("{m}\n{extra}\n")
}

impl Fleet {
    async fn publish(
        &self,
        key: &str,
        name: &str,
        manifest: &str,
        wasm: Vec<u8>,
    ) -> (StatusCode, String, Value) {
        let form = reqwest::multipart::Form::new()
            .part(
                "manifest",
                reqwest::multipart::Part::text(manifest.to_string()).file_name("plugin.toml"),
            )
            .part(
                "component",
                reqwest::multipart::Part::bytes(wasm).file_name("plugin.wasm"),
            );
        let res = reqwest::Client::new()
            .post(self.server.url(&format!("/api/v1/plugins/{name}/versions")))
            .bearer_auth(key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body: Value = res.json().await.unwrap();
        (status, ct, body)
    }

    async fn call(&self, method: reqwest::Method, path: &str, key: &str) -> (StatusCode, Value) {
        let mut req = reqwest::Client::new()
            .request(method.clone(), self.server.url(path))
            .bearer_auth(key);
        if method == reqwest::Method::POST {
            req = req.json(&serde_json::json!({ "note": "reviewed the state scope" }));
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, res.json().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_review_and_refusals_on_sqlite() {
    let f = start().await;
    let wasm = wasm_of("bant");

    // A first publish of a plugin that reaches nothing (no capability): approved.
    let (status, _, v) = f
        .publish(&f.operator, "bant", &bant_manifest(), wasm.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "approved", "{v}");
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["size"], wasm.len() as u64);
    assert_eq!(v["diff"]["against"]["source"], "none", "{v}");
    assert_eq!(v["diff"]["changed"], false, "{v}");
    let sha = v["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha, strata::runtime::prepare::sha256_hex(&wasm));
    assert_eq!(f.db.get_artifact(&sha).await.unwrap().unwrap(), wasm);

    // The same bytes again: the stored version, nothing new.
    let (status, _, v) = f
        .publish(&f.operator, "bant", &bant_manifest(), wasm.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["sha256"], sha.as_str());

    // A reader may not publish.
    let (status, ct, v) = f
        .publish(&f.reader, "bant", &bant_manifest(), wasm.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert!(ct.starts_with("application/problem+json"), "{ct}");

    // Same version, other bytes: 409 problem+json naming both hashes.
    let other = strata::runtime::prepare::append_custom_section(&wasm, "rebuild", b"x");
    let (status, ct, v) = f
        .publish(&f.operator, "bant", &bant_manifest(), other)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains(&sha) && detail.contains("new version"),
        "{detail}"
    );

    // A component that fails validation: 422 naming the cause; nothing stored.
    let (status, ct, v) = f
        .publish(
            &f.operator,
            "bant",
            &manifest_as("1.0.9", ""),
            b"not wasm at all".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly file"),
        "{v}"
    );
    assert!(f
        .db
        .get_release_version("bant", "1.0.9")
        .await
        .unwrap()
        .is_none());
    // A manifest naming another plugin than the URL.
    let (status, _, v) = f
        .publish(&f.operator, "other", &bant_manifest(), wasm.clone())
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("\"bant\""), "{v}");
    // A smoke test that fails.
    let broken = manifest_as("1.0.8", "").replace("min_score = 80.0", "min_score = 99.9");
    let (status, _, v) = f.publish(&f.operator, "bant", &broken, wasm.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("smoke test"), "{v}");

    // 1.0.0 is released everywhere; later versions are compared with it.
    let state =
        f.db.set_release_state("bant", "1.0.0", false, Some(&f.admin_id))
            .await
            .unwrap();
    assert_eq!((state.generation, state.sha256.as_str()), (1, sha.as_str()));

    // A new version with the same surface (another description): approved.
    let same = manifest_as("1.0.1", "").replace(
        "Rule-based BANT qualification for B2B leads",
        "BANT, reworded",
    );
    let (status, _, v) = f.publish(&f.operator, "bant", &same, wasm.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "approved", "{v}");
    assert_eq!(v["diff"]["against"]["source"], "released", "{v}");
    assert_eq!(v["diff"]["against"]["version"], "1.0.0", "{v}");

    // A version declaring a new capability waits for approval, with the diff naming it.
    let more = manifest_as("1.1.0", "[capabilities.state]\nmax_keys = 100");
    let (status, _, v) = f.publish(&f.operator, "bant", &more, wasm.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "awaiting-approval", "{v}");
    assert_eq!(
        v["diff"]["changes"]["capabilities"]["added"],
        serde_json::json!(["state"]),
        "{v}"
    );
    assert!(
        v["diff"]["text"].as_str().unwrap().contains("+ state"),
        "{v}"
    );
    // It may not be released before approval.
    let e =
        f.db.set_release_state("bant", "1.1.0", false, None)
            .await
            .unwrap_err();
    assert!(e.is_conflict(), "{e}");

    // The diff, for a reader: as published, and against another published version.
    let (status, d) = f
        .call(
            reqwest::Method::GET,
            "/api/v1/plugins/bant/versions/1.1.0/diff",
            &f.reader,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "awaiting-approval");
    assert_eq!(
        d["changes"]["scopes"]["added"],
        serde_json::json!(["state.max_keys = 100"]),
        "{d}"
    );
    let (status, d) = f
        .call(
            reqwest::Method::GET,
            "/api/v1/plugins/bant/versions/1.1.0/diff?against=1.0.1",
            &f.reader,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["against"]["version"], "1.0.1", "{d}");
    assert_eq!(d["changed"], true, "{d}");
    let (status, _) = f
        .call(
            reqwest::Method::GET,
            "/api/v1/plugins/bant/versions/9.9.9/diff",
            &f.reader,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Approval is an admin's: an operator gets 403; the admin's approval is recorded and
    // audited with the key.
    let approve = "/api/v1/plugins/bant/versions/1.1.0/approve";
    let (status, _) = f.call(reqwest::Method::POST, approve, &f.operator).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, v) = f.call(reqwest::Method::POST, approve, &f.admin).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "approved", "{v}");
    assert_eq!(v["reviewed_by"], f.admin_id.as_str(), "{v}");
    assert_eq!(v["review_note"], "reviewed the state scope", "{v}");
    let state =
        f.db.set_release_state("bant", "1.1.0", false, Some(&f.admin_id))
            .await
            .unwrap();
    assert_eq!(state.generation, 2);

    // Rejection: a rejected version is never approved afterwards.
    let (status, v) = f
        .call(
            reqwest::Method::POST,
            "/api/v1/plugins/bant/versions/1.0.1/reject",
            &f.admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "rejected");
    let (status, _) = f
        .call(
            reqwest::Method::POST,
            "/api/v1/plugins/bant/versions/1.0.1/approve",
            &f.admin,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let rec =
        f.db.get_release_version("bant", "1.0.1")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(rec.status().unwrap(), ReleaseStatus::Rejected);

    // The audit: every publish, approval and rejection with the key that did it.
    let (status, a) = f
        .call(
            reqwest::Method::GET,
            "/api/v1/audit?plugin=bant&capability=release&limit=100",
            &f.reader,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let items = a["items"].as_array().expect("audit items");
    let find = |op: &str, version: &str, allowed: bool| {
        items.iter().find(|r| {
            r["operation"] == op && r["plugin_version"] == version && r["allowed"] == allowed
        })
    };
    let approved = find("approve", "1.1.0", true).expect("approval audited");
    assert_eq!(
        approved["target"],
        format!("key:{}", f.admin_id),
        "{approved}"
    );
    assert!(find("publish", "1.1.0", true).is_some(), "{a}");
    assert!(find("reject", "1.0.1", true).is_some(), "{a}");
    assert!(
        find("publish", "1.0.0", false).is_some(),
        "refused publish audited: {a}"
    );

    f.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_publishes_diffs_and_approves() {
    use clap::Parser;
    let f = start().await;
    let run = |args: Vec<String>| async move {
        let cli = strata::cli::Cli::try_parse_from(args).unwrap();
        strata::cli::run(cli).await
    };
    let server = f.server.url("");
    let args = |rest: &[&str], key: &str| {
        let mut v: Vec<String> = ["strata", "plugin"].iter().map(|s| s.to_string()).collect();
        v.extend(rest.iter().map(|s| s.to_string()));
        v.extend([
            "--server".to_string(),
            server.clone(),
            "--key".to_string(),
            key.to_string(),
        ]);
        v
    };
    let dir = tempfile::tempdir().unwrap();
    let bant = install(dir.path(), "bant", "bant");
    run(args(&["publish", bant.to_str().unwrap()], &f.operator))
        .await
        .unwrap();
    f.db.set_release_state("bant", "1.0.0", false, None)
        .await
        .unwrap();
    std::fs::write(
        bant.join("plugin.toml"),
        manifest_as("2.0.0", "[capabilities.state]\nmax_keys = 10"),
    )
    .unwrap();
    run(args(&["publish", bant.to_str().unwrap()], &f.operator))
        .await
        .unwrap();
    let rec =
        f.db.get_release_version("bant", "2.0.0")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(rec.status().unwrap(), ReleaseStatus::AwaitingApproval);
    run(args(&["diff", "bant", "1.0.0", "2.0.0"], &f.reader))
        .await
        .unwrap();
    // Refused: a reader cannot approve; the same version with other bytes is refused with
    // the server's detail.
    let e = run(args(&["approve", "bant", "2.0.0"], &f.reader))
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("403"), "{e:#}");
    run(args(
        &["approve", "bant", "2.0.0", "--note", "ok"],
        &f.admin,
    ))
    .await
    .unwrap();
    let rec =
        f.db.get_release_version("bant", "2.0.0")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(rec.status().unwrap(), ReleaseStatus::Approved);
    let wasm = std::fs::read(bant.join("plugin.wasm")).unwrap();
    std::fs::write(
        bant.join("plugin.wasm"),
        strata::runtime::prepare::append_custom_section(&wasm, "rebuild", b"y"),
    )
    .unwrap();
    let e = run(args(&["publish", bant.to_str().unwrap()], &f.operator))
        .await
        .unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains("409") && text.contains("new version"),
        "{text}"
    );
    f.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_sqlite_host_serves_what_it_releases_and_rolls_back() {
    let f = start().await;
    let wasm = std::fs::read(plugin_source("bant").join("plugin.wasm")).unwrap();
    let (status, _, v1) = f
        .publish(&f.operator, "bant", &bant_manifest(), wasm.clone())
        .await;
    assert!(status.is_success(), "{v1}");
    let (status, _, v2) = f
        .publish(
            &f.operator,
            "bant",
            &manifest_as("1.1.0", "[capabilities.state]\nmax_keys = 100"),
            wasm,
        )
        .await;
    assert!(status.is_success(), "{v2}");
    let release = |version: &'static str| {
        let f = &f;
        async move {
            let res = reqwest::Client::new()
                .put(f.server.url("/api/v1/plugins/bant/release"))
                .bearer_auth(&f.operator)
                .json(&serde_json::json!({ "version": version }))
                .send()
                .await
                .unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let live = || async {
        let (_, p) = f
            .call(reqwest::Method::GET, "/api/v1/plugins/bant", &f.reader)
            .await;
        (p["live_version"].clone(), p["sha256"].clone())
    };
    // Released: live here at once (the replica that takes the request applies it).
    let (status, r) = release("1.0.0").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        live().await,
        (serde_json::json!("1.0.0"), v1["sha256"].clone())
    );
    assert_eq!(r["replicas"][0]["converged"], true, "{r}");
    // 1.1.0 waits for approval: not releasable (409), still 1.0.0 here.
    let (status, r) = release("1.1.0").await;
    assert_eq!(status, StatusCode::CONFLICT, "{r}");
    assert_eq!(live().await.0, "1.0.0");
    // Approved, released, then rolled back.
    let (status, _) = f
        .call(
            reqwest::Method::POST,
            "/api/v1/plugins/bant/versions/1.1.0/approve",
            &f.admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, r) = release("1.1.0").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert!(r["problem"].is_null(), "{r}");
    assert_eq!(live().await.0, "1.1.0");
    let (status, r) = release("1.0.0").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(live().await.0, "1.0.0");
    assert_eq!(r["generation"], 3, "{r}");
    // Each change audited with the operator's key (the audit is written in batches).
    let mut promotions = 0;
    for _ in 0..100 {
        let rows =
            f.db.list_audit(&strata::db::AuditFilter {
                plugin: Some("bant".into()),
                capability: Some("release".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        promotions = rows
            .iter()
            .filter(|a| a.record.operation == "promote")
            .count();
        if promotions >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(promotions, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_version_pins_the_mcp_tools_its_grant_covers() {
    let tmp = tempfile::tempdir().unwrap();
    let desc = tmp.path().join("lookup.txt");
    std::fs::write(&desc, "Looks a company up.").unwrap();
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/mcp-peers/mutable.mjs");
    let url = sqlite_url(tmp.path());
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let text = format!(
        "{}\n[server]\nbind = \"127.0.0.1:0\"\n[mcp.servers.mut]\ntransport = \"stdio\"\ncommand = \"node\"\nargs = [{:?}, {:?}]\n[grants.bant]\ncapabilities = [\"mcp\"]\nmcp = {{ tools = [\"mut/*\"] }}\n",
        host_toml(&url, &plugins, &tmp.path().join("cache")),
        script.display().to_string(),
        desc.display().to_string(),
    );
    let config: strata::config::Config = toml::from_str(&text).unwrap();
    let server = TestServer::start(config).await;
    let db = migrated_db(&url).await;
    let (_, op) = strata::server::auth::create_key(&db, "op", Role::Operator)
        .await
        .unwrap();
    let (_, admin) = strata::server::auth::create_key(&db, "admin", Role::Admin)
        .await
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .part(
            "manifest",
            reqwest::multipart::Part::text(manifest_as("1.2.0", "[capabilities.mcp]")),
        )
        .part(
            "component",
            reqwest::multipart::Part::bytes(
                std::fs::read(plugin_source("bant").join("plugin.wasm")).unwrap(),
            )
            .file_name("plugin.wasm"),
        );
    let http = reqwest::Client::new();
    let v: Value = http
        .post(server.url("/api/v1/plugins/bant/versions"))
        .bearer_auth(&op)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "awaiting-approval", "{v}");
    let approved: Value = http
        .post(server.url("/api/v1/plugins/bant/versions/1.2.0/approve"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(approved["status"], "approved", "{approved}");
    assert_eq!(
        approved["mcp_pins"],
        serde_json::json!(["mut/lookup"]),
        "{approved}"
    );
    let pins = db.list_mcp_tool_pins(Some("bant")).await.unwrap();
    assert_eq!(pins.len(), 1);
    assert_eq!(pins[0].definition["description"], "Looks a company up.");
    server.stop().await;
}
