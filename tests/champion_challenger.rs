//! Champion and challenger over real HTTP on a real `strata serve` (SQLite): shadow
//! results are stored beside the champion's and never returned or stored as lead
//! scores; failing challengers do not change the champion's responses; the canary's
//! guard rails roll back a challenger that errors and one whose scores drift; the
//! comparison's AUC matches an independent computation on leads with known outcomes.

mod common;
mod support;

use common::api_server::{wait_until, Server};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use strata::db::Db;

const CHALLENGERS: &[(&str, &str)] = &[
    ("xeducation", "xeducation"),
    ("testing/panic", "panic"),
    ("testing/loop-forever", "loop-forever"),
];

async fn server(dir: &tempfile::TempDir) -> Server {
    Server::start_with_plugins(&sqlite_url(dir.path()), "", CHALLENGERS, |c| {
        // Results reach the database quickly; the routes flush before reading anyway.
        c.challenger.flush_ms = 20;
        // Every sample runs: these tests count results (under load, a sample that finds
        // every shadow slot busy is skipped and only counted in the metrics).
        c.challenger.max_concurrent_shadows = 64;
    })
    .await
}

/// A lead whose BANT score varies with `i`.
fn lead(i: usize) -> Value {
    let titles = ["VP of Sales", "Intern", "CTO", "Analyst", "Head of Ops"];
    let timelines = ["immediate", "1-3 months", "6+ months", "unknown"];
    json!({
        "id": format!("lead-{i:03}"),
        "name": format!("Lead {i}"),
        "email": format!("lead{i}@example.com"),
        "company": format!("Company {i}"),
        "title": titles[i % titles.len()],
        "industry": if i.is_multiple_of(3) { "Software" } else { "Retail" },
        "employees": 10 + (i * 37) % 900,
        "budget": (i * 7919 % 200_000) as f64,
        "timeline": timelines[i % timelines.len()],
        "source": if i.is_multiple_of(2) { "referral" } else { "web" },
    })
}

async fn score(s: &Server, i: usize) -> Value {
    let (status, body) = s
        .json(
            Method::POST,
            "/api/v1/score",
            &s.operator,
            Some(json!({ "lead": lead(i) })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn attach(s: &Server, body: Value) -> Value {
    let (status, v) = s
        .json(
            Method::PUT,
            "/api/v1/strategies/bant/challenger",
            &s.operator,
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

async fn comparison(s: &Server) -> Value {
    let (status, v) = s
        .json(
            Method::GET,
            "/api/v1/strategies/bant/comparison",
            &s.reader,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

async fn lead_scores(db: &Db) -> i64 {
    db.count_scores().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_results_are_stored_beside_the_champions_and_never_returned_or_stored_as_scores() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir).await;
    let v = attach(
        &s,
        json!({ "challenger": "xeducation@1.0.0", "mode": "shadow" }),
    )
    .await;
    assert_eq!(v["mode"], "shadow");
    assert_eq!(v["share"], 1.0);
    assert_eq!(v["problem"], Value::Null);

    for i in 0..30 {
        let r = score(&s, i).await;
        assert!(
            r["strategy"].as_str().unwrap().starts_with("bant@"),
            "the champion answers: {r}"
        );
        assert!(r.get("shadow").is_none() && !r.to_string().contains("xeducation"));
    }
    let mut c = comparison(&s).await;
    // The last shadows may still be running on their threads.
    wait_until("30 shadow pairs", async || {
        c = comparison(&s).await;
        c["agreement"]["pairs"] == 30
    })
    .await;
    assert_eq!(c["challenger"]["versions"], json!(["xeducation@1.0.0"]));
    assert_eq!(c["champion"]["served"], 30);
    assert_eq!(c["challenger"]["served"], 0);
    assert_eq!(c["challenger"]["errors"], 0);
    assert!(c["drift_psi"].as_f64().is_some(), "{c}");
    let confusion: u64 = c["agreement"]["priorities"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(confusion, 30);
    assert_eq!(
        lead_scores(&s.host.db).await,
        0,
        "no shadow became a lead score"
    );

    // A scoring job: the champion's score is stored; the shadow only in the results.
    let (st, _) = s
        .json(Method::POST, "/api/v1/leads", &s.operator, Some(lead(500)))
        .await;
    assert!(st.is_success());
    let (st, job) = s
        .json(
            Method::POST,
            "/api/v1/leads/qualify/lead-500",
            &s.operator,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{job}");
    let href = job["href"].as_str().unwrap().to_string();
    wait_until("the job succeeds", async || {
        s.json(Method::GET, &href, &s.reader, None).await.1["status"] == "succeeded"
    })
    .await;
    let stored = s.host.db.latest_scores("lead-500", 5).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].strategy.starts_with("bant@"),
        "{:?}",
        stored[0].strategy
    );
    wait_until("the job's shadow result", async || {
        comparison(&s).await["agreement"]["pairs"] == 31
    })
    .await;
    let results = s.host.db.challenger_results("bant", 0).await.unwrap();
    let job_row = results.iter().find(|r| r.lead_id == "lead-500").unwrap();
    assert_eq!(job_row.source, "job");
    assert_eq!(job_row.served_by, "champion");
    assert_eq!(
        job_row.champion.as_ref().unwrap().score,
        stored[0].score.value
    );
    // The input is kept for replay: the lead exactly as scored.
    let snap: Value = serde_json::from_str(&job_row.lead_snapshot).unwrap();
    assert_eq!(snap["id"], "lead-500");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenger_that_panics_or_loops_does_not_change_the_champions_responses() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir).await;
    let baseline: Vec<Value> = futures_scores(&s, 0..8).await;
    for bad in ["panic@1.0.0", "loop-forever@1.0.0"] {
        attach(&s, json!({ "challenger": bad })).await;
        let with = futures_scores(&s, 0..8).await;
        for (a, b) in baseline.iter().zip(&with) {
            assert_eq!(a["score"], b["score"], "{bad} changed a response");
            assert_eq!(a["strategy"], b["strategy"]);
        }
    }
    let mut c = comparison(&s).await;
    wait_until("16 challenger calls", async || {
        c = comparison(&s).await;
        c["challenger"]["calls"] == 16
    })
    .await;
    assert_eq!(c["agreement"]["pairs"], 0);
    assert_eq!(c["challenger"]["errors"], 8, "{c}");
    assert_eq!(c["challenger"]["timeouts"], 8, "{c}");
    assert_eq!(c["challenger"]["timeout_rate"], 0.5);
    s.stop().await;
}

async fn futures_scores(s: &Server, ids: std::ops::Range<usize>) -> Vec<Value> {
    let mut out = Vec::new();
    for i in ids {
        out.push(score(s, i).await);
    }
    out
}

async fn wait_rolled_back(s: &Server) -> Value {
    let mut v = Value::Null;
    wait_until("the guard rail rolls the canary back", async || {
        v = s
            .json(
                Method::GET,
                "/api/v1/strategies/bant/challenger",
                &s.reader,
                None,
            )
            .await
            .1;
        v["status"] == "rolled-back"
    })
    .await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_guard_rail_rolls_back_a_challenger_that_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir).await;
    attach(
        &s,
        json!({ "challenger": "panic@1.0.0", "mode": "canary", "share": 0.5,
                "guard_min_samples": 5, "guard_window": 50 }),
    )
    .await;
    // Every call answers (the champion covers the canary's failures) until the rollback.
    for i in 0..60 {
        let r = score(&s, i).await;
        assert!(r["strategy"].as_str().unwrap().starts_with("bant@"), "{r}");
    }
    let v = wait_rolled_back(&s).await;
    let reason = v["status_reason"].as_str().unwrap();
    assert!(reason.contains("error+timeout rate 100.0%"), "{reason}");
    let c = comparison(&s).await;
    assert_eq!(c["events"][0]["kind"], "rolled-back", "{c}");
    assert_eq!(c["events"][0]["actor"], "guard-rail");
    let (_, audit) = s
        .json(
            Method::GET,
            "/api/v1/audit?capability=challenger",
            &s.reader,
            None,
        )
        .await;
    assert!(
        audit.to_string().contains("canary-rollback"),
        "the rollback is audited: {audit}"
    );
    // After the rollback, the champion serves every lead and nothing more is recorded.
    let before = comparison(&s).await["results"].clone();
    for i in 0..10 {
        score(&s, i).await;
    }
    assert_eq!(comparison(&s).await["results"], before);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_guard_rail_rolls_back_a_challenger_whose_scores_drift() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir).await;
    attach(
        &s,
        json!({ "challenger": "xeducation", "mode": "canary", "share": 0.5,
                "guard_min_samples": 15, "max_psi": 0.25, "max_error_rate": 0.5 }),
    )
    .await;
    let mut served_by_challenger = 0;
    for i in 0..120 {
        let r = score(&s, i).await;
        // Sticky: the same lead lands on the same side while the canary is active.
        if r["strategy"].as_str().unwrap().starts_with("xeducation@") {
            served_by_challenger += 1;
        }
    }
    assert!(served_by_challenger > 0, "the canary served some leads");
    let v = wait_rolled_back(&s).await;
    let reason = v["status_reason"].as_str().unwrap();
    assert!(reason.starts_with("score drift: PSI"), "{reason}");
    let c = comparison(&s).await;
    assert!(c["challenger"]["served"].as_u64().unwrap() > 0);
    assert!(c["drift_psi"].as_f64().unwrap() > 0.25, "{c}");
    for i in 0..20 {
        let r = score(&s, i).await;
        assert!(r["strategy"].as_str().unwrap().starts_with("bant@"), "{r}");
    }
    s.stop().await;
}

/// AUC as the share of (positive, negative) pairs ranked correctly, ties half.
fn pairwise_auc(scores: &[(f64, bool)]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (a, ya) in scores {
        for (b, yb) in scores {
            if *ya && !*yb {
                den += 1.0;
                num += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    num / den
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_comparisons_auc_matches_an_independent_computation_on_known_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir).await;
    attach(&s, json!({ "challenger": "xeducation@1.0.0" })).await;
    // 40 stored leads: statuses qualified (positive), unqualified / junk (negative), and
    // `new` (no outcome yet, left out).
    let statuses = ["qualified", "unqualified", "junk", "new", "qualified"];
    for i in 0..40 {
        let mut l = lead(i);
        l["status"] = json!(statuses[(i * 7) % statuses.len()]);
        let (st, body) = s
            .json(Method::POST, "/api/v1/leads", &s.operator, Some(l))
            .await;
        assert!(st.is_success(), "{body}");
        score(&s, i).await;
    }
    let mut c = comparison(&s).await;
    wait_until("40 pairs", async || {
        c = comparison(&s).await;
        c["agreement"]["pairs"] == 40
    })
    .await;
    let results = s.host.db.challenger_results("bant", 0).await.unwrap();
    let mut champ = Vec::new();
    let mut chall = Vec::new();
    for r in &results {
        let i: usize = r.lead_id.trim_start_matches("lead-").parse().unwrap();
        let y = match statuses[(i * 7) % statuses.len()] {
            "qualified" => true,
            "unqualified" | "junk" => false,
            _ => continue,
        };
        champ.push((r.champion.as_ref().unwrap().score, y));
        chall.push((r.challenger_score.unwrap(), y));
    }
    assert_eq!(c["outcomes"]["leads"], champ.len() as u64);
    assert_eq!(
        c["outcomes"]["positives"],
        champ.iter().filter(|x| x.1).count() as u64
    );
    let got = c["outcomes"]["champion"]["auc"]["value"].as_f64().unwrap();
    assert!(
        (got - pairwise_auc(&champ)).abs() < 1e-9,
        "{got} vs {}",
        pairwise_auc(&champ)
    );
    let got = c["outcomes"]["challenger"]["auc"]["value"]
        .as_f64()
        .unwrap();
    assert!((got - pairwise_auc(&chall)).abs() < 1e-9);
    let low = c["outcomes"]["champion"]["auc"]["low"].as_f64().unwrap();
    let high = c["outcomes"]["champion"]["auc"]["high"].as_f64().unwrap();
    assert!(low <= got.max(low) && low < high, "an interval: {c}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_refuses_what_cannot_be_a_challenger_with_a_clear_problem() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir).await;
    for (body, says) in [
        (json!({ "challenger": "nope@1.0.0" }), "not loaded"),
        (json!({ "challenger": "xeducation@9.9.9" }), "not kept"),
    ] {
        let (st, v) = s
            .json(
                Method::PUT,
                "/api/v1/strategies/bant/challenger",
                &s.operator,
                Some(body.clone()),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(says), "{body}: {v}");
    }
    for (body, says) in [
        (json!({ "challenger": "bant" }), "champion's live version"),
        (json!({ "challenger": "xeducation", "share": 0.0 }), "share"),
        (
            json!({ "challenger": "xeducation", "mode": "canary", "max_psi": -1.0 }),
            "max_psi",
        ),
    ] {
        let (st, v) = s
            .json(
                Method::PUT,
                "/api/v1/strategies/bant/challenger",
                &s.operator,
                Some(body.clone()),
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(says), "{body}: {v}");
    }
    let (st, _) = s
        .json(
            Method::PUT,
            "/api/v1/strategies/bant/challenger",
            &s.reader,
            Some(json!({ "challenger": "xeducation" })),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = s
        .json(
            Method::GET,
            "/api/v1/strategies/bant/challenger",
            &s.reader,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    // Promotion of another plugin is refused; detaching works.
    attach(&s, json!({ "challenger": "xeducation" })).await;
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/strategies/bant/challenger/promote",
            &s.operator,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let (st, _) = s
        .json(
            Method::DELETE,
            "/api/v1/strategies/bant/challenger",
            &s.operator,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let c = comparison(&s).await;
    assert_eq!(c["attachment"], Value::Null);
    assert_eq!(c["events"][0]["kind"], "detached");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoting_a_kept_version_makes_it_live_and_detaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir).await;
    deploy_version(&s.host.plugins_dir.join("bant"), "bant", "1.1.0");
    wait_until("1.1.0 live", async || {
        s.json(Method::GET, "/api/v1/plugins/bant", &s.reader, None)
            .await
            .1["live_version"]
            == "1.1.0"
    })
    .await;
    // The earlier version as the challenger: same rules, so the two agree on every lead.
    attach(&s, json!({ "challenger": "bant@1.0.0" })).await;
    for i in 0..10 {
        assert_eq!(score(&s, i).await["strategy"], "bant@1.1.0");
    }
    let mut c = comparison(&s).await;
    wait_until("10 pairs", async || {
        c = comparison(&s).await;
        c["agreement"]["pairs"] == 10
    })
    .await;
    assert_eq!(c["agreement"]["priorities"]["agreement"], 1.0);
    assert_eq!(c["agreement"]["mean_absolute_difference"], 0.0);
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/strategies/bant/challenger/promote",
            &s.operator,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({ "live": "bant@1.0.0", "through": "pin" }));
    assert_eq!(score(&s, 1).await["strategy"], "bant@1.0.0");
    let c = comparison(&s).await;
    assert_eq!(c["attachment"], Value::Null);
    assert_eq!(c["events"][0]["kind"], "promoted");
    s.stop().await;
}
