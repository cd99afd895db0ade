//! Releases, first slice (issue 21) on a single SQLite host: publishing a plugin through
//! the API (the checks of a local load, the component stored by its sha256), the
//! capability surface diff against the released version, approval and rejection by an
//! admin (audited with the key), refusals (same version with other bytes, an invalid
//! component, a wrong role), and the CLI's publish/diff/approve.

mod common;

use common::release_host::ReleaseHost;
use common::*;
use reqwest::StatusCode;
use strata::db::ReleaseStatus;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_review_and_refusals_on_sqlite() {
    let f = ReleaseHost::start().await;
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
    let f = ReleaseHost::start().await;
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
    let f = ReleaseHost::start().await;
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
    let release = |version: &'static str| f.release("bant", version);
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
async fn a_reader_lists_published_versions_with_their_review_and_the_released_one() {
    use clap::Parser;
    let f = ReleaseHost::start().await;
    let wasm = wasm_of("bant");
    let (status, _, v1) = f
        .publish(&f.operator, "bant", &bant_manifest(), wasm.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    let (status, r) = f.release("bant", "1.0.0").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let more = manifest_as("1.1.0", "[capabilities.state]\nmax_keys = 100");
    let (status, _, v2) = f.publish(&f.operator, "bant", &more, wasm.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");

    // The list: newest publish first, each with its review status and publisher; the
    // released one marked, beside what this host keeps.
    let (status, _, list) = f.get("/api/v1/plugins/bant/versions").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let published = list["published"].as_array().expect("published");
    let row = |v: &str| {
        published
            .iter()
            .find(|p| p["version"] == v)
            .unwrap_or_else(|| panic!("{v} not listed: {list}"))
    };
    assert_eq!(published.len(), 2, "{list}");
    assert_eq!(published[0]["version"], "1.1.0", "newest first: {list}");
    assert_eq!(row("1.1.0")["status"], "awaiting-approval");
    assert_eq!(row("1.1.0")["released"], false);
    assert_eq!(row("1.0.0")["status"], "approved");
    assert_eq!(row("1.0.0")["released"], true);
    assert_eq!(row("1.0.0")["sha256"], v1["sha256"]);
    assert_eq!(row("1.0.0")["size"], wasm.len() as u64);
    assert!(row("1.0.0")["published_by"].is_string(), "{list}");
    assert!(row("1.0.0")["published_at"].is_i64(), "{list}");
    assert_eq!(list["released"]["version"], "1.0.0", "{list}");
    assert_eq!(list["live"]["version"], "1.0.0", "{list}");

    // One version, with the manifest it was published with.
    let (status, _, one) = f.get("/api/v1/plugins/bant/versions/1.1.0").await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["status"], "awaiting-approval");
    assert_eq!(one["released"], false);
    assert!(
        one["manifest"].as_str().unwrap().contains("max_keys = 100"),
        "{one}"
    );
    assert_eq!(
        one["diff"]["changes"]["capabilities"]["added"],
        serde_json::json!(["state"])
    );

    // Unknown version, unknown plugin: 404 problem+json.
    for path in [
        "/api/v1/plugins/bant/versions/9.9.9",
        "/api/v1/plugins/nothing/versions",
        "/api/v1/plugins/nothing/versions/1.0.0",
    ] {
        let (status, ct, v) = f.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {v}");
        assert!(ct.starts_with("application/problem+json"), "{path}: {ct}");
    }
    // A plugin published but never served here is listed too.
    let xe = plugin_source("xeducation");
    let (status, _, _) = f
        .publish(
            &f.operator,
            "xeducation",
            &std::fs::read_to_string(xe.join("plugin.toml")).unwrap(),
            wasm_of("xeducation"),
        )
        .await;
    assert!(status.is_success());
    let (status, _, list) = f.get("/api/v1/plugins/xeducation/versions").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(
        list["live"].is_null() && list["released"].is_null(),
        "{list}"
    );
    assert_eq!(list["published"][0]["version"], "1.0.0", "{list}");

    // The CLI lists them with a reader key.
    let cli = strata::cli::Cli::try_parse_from([
        "strata",
        "plugin",
        "versions",
        "bant",
        "--server",
        &f.server.url(""),
        "--key",
        &f.reader,
    ])
    .unwrap();
    strata::cli::run(cli).await.unwrap();
    f.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_this_host_cannot_serve_is_recorded_and_the_answer_says_why() {
    // The default scorer from the plugins directory, so that `/ready` answers 200.
    let f = ReleaseHost::start_with(|tmp| {
        install(&tmp.join("plugins"), "bant", "bant");
        String::new()
    })
    .await;
    // `stateful` needs `state`, which this host does not grant: stored as another replica
    // (one that grants it) would have published and approved it.
    let src = plugin_source("testing/stateful");
    let wasm = std::fs::read(src.join("plugin.wasm")).unwrap();
    let sha256 = f.db.store_artifact(&wasm).await.unwrap();
    f.db.insert_release_version(&strata::db::NewReleaseVersion {
        name: "stateful".into(),
        version: "1.0.0".into(),
        sha256: sha256.clone(),
        manifest: std::fs::read_to_string(src.join("plugin.toml")).unwrap(),
        status: ReleaseStatus::Approved,
        diff: None,
        published_by: None,
        files: Default::default(),
    })
    .await
    .unwrap();

    // Never published, or not approved: refused, nothing written.
    let (status, v) = f.release("stateful", "9.9.9").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    // Released: the state is the fleet's and is written; this host says it cannot serve it.
    let (status, r) = f.release("stateful", "1.0.0").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        (r["version"].as_str(), r["sha256"].as_str()),
        (Some("1.0.0"), Some(sha256.as_str()))
    );
    let problem = r["problem"]
        .as_str()
        .unwrap_or_else(|| panic!("no problem: {r}"));
    assert!(problem.contains("state"), "{problem}");
    let state = f.db.get_release_state("stateful").await.unwrap().unwrap();
    assert_eq!(state.version, "1.0.0");
    let (_, _, ready) = f.get("/ready").await;
    assert!(
        ready["release_problems"]["stateful"]
            .as_str()
            .is_some_and(|p| p.contains("state")),
        "{ready}"
    );
    let (_, _, p) = f.get("/api/v1/plugins/stateful").await;
    assert!(p["live_version"].is_null(), "not served here: {p}");
    f.server.stop().await;
}
