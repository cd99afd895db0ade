//! The HTTP service end to end over real HTTP, on SQLite and PostgreSQL: auth (401/403 on
//! every protected route), leads, the scoring fast path, qualification jobs, scores and
//! overrides, plugin controls, audit, bad input (nothing stored), rate limits, generated
//! OpenAPI; and, with the `strata` binary, two processes sharing one PostgreSQL queue and
//! graceful shutdown returning an in-flight job.

mod common;
mod support;

use common::api_server::{wait_until, Server};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use strata::db::{Backend, Role};

fn lead_json(id: &str) -> Value {
    serde_json::to_value(hot_lead(id)).unwrap()
}

/// (method, path, least role) of every protected route.
const PROTECTED: &[(&str, &str, Role)] = &[
    ("GET", "/api/v1/leads", Role::Reader),
    ("GET", "/api/v1/leads/x", Role::Reader),
    ("GET", "/api/v1/leads/scores", Role::Reader),
    ("GET", "/api/v1/leads/scores/x", Role::Reader),
    ("GET", "/api/v1/jobs/x", Role::Reader),
    ("GET", "/api/v1/agents/executions", Role::Reader),
    ("GET", "/api/v1/agents/stats", Role::Reader),
    ("GET", "/api/v1/plugins", Role::Reader),
    ("GET", "/api/v1/plugins/bant", Role::Reader),
    ("GET", "/api/v1/plugins/bant/versions", Role::Reader),
    ("GET", "/api/v1/audit", Role::Reader),
    ("GET", "/api/v1/mcp/status", Role::Reader),
    ("GET", "/api/v1/plugins/bant/mcp-pins", Role::Reader),
    ("POST", "/api/v1/plugins/bant/mcp-pins", Role::Admin),
    ("GET", "/api/v1/mcp/servers/x/tools", Role::Reader),
    ("POST", "/api/v1/leads", Role::Operator),
    ("POST", "/api/v1/leads/bulk", Role::Operator),
    ("POST", "/api/v1/score", Role::Operator),
    ("POST", "/api/v1/leads/qualify/x", Role::Operator),
    ("PUT", "/api/v1/leads/scores/x/override", Role::Operator),
    ("POST", "/api/v1/plugins/bant/rollback", Role::Operator),
    ("POST", "/api/v1/plugins/bant/pin", Role::Operator),
    ("POST", "/api/v1/plugins/bant/unpin", Role::Operator),
    ("POST", "/api/v1/plugins/bant/disable", Role::Operator),
    ("POST", "/api/v1/plugins/bant/enable", Role::Operator),
    ("POST", "/api/v1/config/reload", Role::Admin),
    ("GET", "/api/v1/keys", Role::Admin),
    ("POST", "/api/v1/keys", Role::Admin),
    ("DELETE", "/api/v1/keys/x", Role::Admin),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_route_answers_401_without_a_valid_key_and_403_for_a_lesser_role() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(tmp.path()), "", |_| {}).await;
    for (m, path, role) in PROTECTED {
        let method: Method = m.parse().unwrap();
        let r = s.req(method.clone(), path, None).send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{m} {path} without key"
        );
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let r = s
            .req(method.clone(), path, Some("strata_not-a-key"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{m} {path} with a bad key"
        );
        let lesser = match role {
            Role::Reader => None,
            Role::Operator => Some(&s.reader),
            Role::Admin => Some(&s.operator),
        };
        if let Some(k) = lesser {
            let r = s.req(method.clone(), path, Some(k)).send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::FORBIDDEN,
                "{m} {path} with a lesser role"
            );
            let body: Value = r.json().await.unwrap();
            assert!(body["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("needs the {} role", role.as_str())));
        }
    }
    // Public: health, metrics, docs.
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/api/openapi.json",
        "/api/docs",
    ] {
        let r = s.req(Method::GET, path, None).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers().contains_key("x-request-id"));
    }
    // A key revoked on this server stops working at once (no waiting for the cache).
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/keys",
            &s.admin,
            Some(json!({"name": "temp", "role": "reader"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let temp = v["key"].as_str().unwrap().to_string();
    assert_eq!(
        s.req(Method::GET, "/api/v1/leads", Some(&temp))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let (st, _) = s
        .json(
            Method::DELETE,
            &format!("/api/v1/keys/{}", v["id"].as_str().unwrap()),
            &s.admin,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        s.req(Method::GET, "/api/v1/leads", Some(&temp))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_revoked_by_full_id_only_and_a_key_revoked_elsewhere_loses_admin_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(tmp.path()), "", |_| {}).await;
    let create = |name: &str, role: &str| {
        s.json(
            Method::POST,
            "/api/v1/keys",
            &s.admin,
            Some(json!({"name": name, "role": role})),
        )
    };
    let (_, victim) = create("victim", "reader").await;
    let victim_id = victim["id"].as_str().unwrap().to_string();
    // Prefixes of ids or secrets name no key: 404 problem+json, nothing revoked.
    for needle in ["strata_0", "s", &victim_id[..victim_id.len() - 1]] {
        let r = s
            .req(
                Method::DELETE,
                &format!("/api/v1/keys/{needle}"),
                Some(&s.admin),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{needle}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{needle}"
        );
    }
    let victim_key = victim["key"].as_str().unwrap();
    let st = s
        .req(Method::GET, "/api/v1/leads", Some(victim_key))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::OK, "still active");

    // An admin key used here (so cached), then revoked by another replica (straight in
    // the shared database): admin routes ask the database every time, so it cannot mint
    // a key in the cache window.
    let (_, second) = create("second-admin", "admin").await;
    let second_key = second["key"].as_str().unwrap().to_string();
    let (st, _) = s.json(Method::GET, "/api/v1/keys", &second_key, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(s
        .host
        .db
        .revoke_api_key(second["id"].as_str().unwrap())
        .await
        .unwrap());
    let (st, body) = s
        .json(
            Method::POST,
            "/api/v1/keys",
            &second_key,
            Some(json!({"name": "minted", "role": "admin"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    let (_, keys) = s.json(Method::GET, "/api/v1/keys", &s.admin, None).await;
    assert!(
        !keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "minted"),
        "{keys}"
    );
    // `Authorization: bearer` (any case of the scheme) authenticates.
    let r = s
        .http
        .get(format!("{}/api/v1/leads", s.base))
        .header("authorization", format!("bearer {}", s.reader))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_route() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(tmp.path()), "", |_| {}).await;
    let doc: Value = s
        .req(Method::GET, "/api/openapi.json", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (m, path, _) in PROTECTED {
        let templ = path
            .replace("/leads/x", "/leads/{id}")
            .replace("/scores/x/override", "/scores/{lead_id}/override")
            .replace("/scores/x", "/scores/{lead_id}")
            .replace("/qualify/x", "/qualify/{lead_id}")
            .replace("/jobs/x", "/jobs/{id}")
            .replace("/keys/x", "/keys/{id}")
            .replace("/servers/x/", "/servers/{name}/")
            .replace("/plugins/bant", "/plugins/{name}");
        let op = paths
            .get(&templ)
            .unwrap_or_else(|| panic!("{templ} missing from OpenAPI"));
        assert!(
            op.get(m.to_ascii_lowercase()).is_some(),
            "{m} {templ} missing"
        );
    }
    for p in ["/health", "/ready", "/metrics"] {
        assert!(paths.contains_key(p), "{p}");
    }
    s.stop().await;
}

async fn lead_and_score_flow(url: &str) {
    let s = Server::start(
        url,
        "[grants.stateful]\ncapabilities = [\"state\"]\n",
        |_| {},
    )
    .await;
    let op = s.operator.clone();

    // Leads.
    let (st, _) = s
        .json(Method::POST, "/api/v1/leads", &op, Some(lead_json("api-1")))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let csv = "id,name,company,budget,title,timeline\napi-2,Ann,Initech,90000,CTO,this month\napi-3,Bob,Hooli,500,Intern,next year\n";
    let r = s
        .req(Method::POST, "/api/v1/leads/bulk", Some(&op))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let nd = format!(
        "{}\n{}\n",
        json!({"id": "api-4", "company": "X"}),
        json!({"id": "api-5"})
    );
    let r = s
        .req(Method::POST, "/api/v1/leads/bulk", Some(&op))
        .header("content-type", "application/x-ndjson")
        .body(nd)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (st, page) = s
        .json(Method::GET, "/api/v1/leads?limit=2", &s.reader, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(page["total"], 5);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let (st, l) = s
        .json(Method::GET, "/api/v1/leads/api-2", &s.reader, None)
        .await;
    assert_eq!(
        (st, l["company"].as_str()),
        (StatusCode::OK, Some("Initech"))
    );
    assert_eq!(
        s.json(Method::GET, "/api/v1/leads/nope", &s.reader, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Fast path: scored, nothing stored.
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/score",
            &op,
            Some(json!({"lead": lead_json("inline-1")})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["strategy"], "bant@1.0.0");
    assert!(v["score"]["value"].as_f64().unwrap() > 50.0);
    assert_eq!(
        s.json(Method::GET, "/api/v1/leads/inline-1", &s.reader, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/score",
            &op,
            Some(json!({"lead": lead_json("i2"), "strategy": "nope"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    // The native reference is bench-only (`strata bench serve`): not a strategy here,
    // and no route.
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/score",
            &op,
            Some(json!({"lead": lead_json("i2"), "strategy": "native-bant"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, v) = s
        .json(
            Method::POST,
            "/bench/native-bant",
            &op,
            Some(json!({"lead": lead_json("i2")})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");

    // Capability calls through the API carry the request id into the audit.
    let r = s
        .req(Method::POST, "/api/v1/score", Some(&op))
        .header("x-request-id", "req-audit-1")
        .json(&json!({"lead": lead_json("i3"), "strategy": "stateful"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-request-id"], "req-audit-1");
    let (_, audit) = s
        .json(
            Method::GET,
            "/api/v1/audit?request_id=req-audit-1",
            &s.reader,
            None,
        )
        .await;
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{audit}");
    assert!(items
        .iter()
        .all(|a| a["plugin"] == "stateful" && a["capability"] == "state" && a["allowed"] == true));
    assert!(items.iter().all(|a| a["count"] == 1), "{audit}");

    // A stored lead never scored has no latest score (200, null); an unknown one is 404.
    let (st, none) = s
        .json(Method::GET, "/api/v1/leads/scores/api-2", &s.reader, None)
        .await;
    assert_eq!(st, StatusCode::OK, "{none}");
    assert!(
        none["latest"].is_null() && none["history"] == json!([]),
        "{none}"
    );
    let (st, _) = s
        .json(Method::GET, "/api/v1/leads/scores/ghost", &s.reader, None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Qualify as a job, then read the stored score.
    let (st, acc) = s
        .json(Method::POST, "/api/v1/leads/qualify/api-2", &op, None)
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{acc}");
    let job_path = acc["href"].as_str().unwrap().to_string();
    let start = Instant::now();
    let job = loop {
        let (_, j) = s.json(Method::GET, &job_path, &s.reader, None).await;
        if j["status"] == "succeeded" || j["status"] == "dead" {
            break j;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "job stuck: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 1);
    assert_eq!(
        s.json(Method::POST, "/api/v1/leads/qualify/ghost", &op, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (st, sc) = s
        .json(Method::GET, "/api/v1/leads/scores/api-2", &s.reader, None)
        .await;
    assert_eq!(st, StatusCode::OK, "{sc}");
    let machine = sc["latest"]["score"]["value"].as_f64().unwrap();
    assert_eq!(sc["latest"]["strategy"], "bant@1.0.0");
    assert!(
        sc["latest"]["request_id"].is_string(),
        "the job carries the request id"
    );

    // Override: kept beside the machine score.
    let (st, ov) = s
        .json(
            Method::PUT,
            "/api/v1/leads/scores/api-2/override",
            &op,
            Some(json!({"score": 12.0, "priority": "low", "reason": "budget frozen"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{ov}");
    assert_eq!(
        ov["score"]["value"].as_f64().unwrap(),
        machine,
        "machine score unchanged"
    );
    assert_eq!(ov["human_override"]["value"], 12.0);
    assert_eq!(ov["human_override"]["by"], "Operator");
    let (st, _) = s
        .json(
            Method::PUT,
            "/api/v1/leads/scores/api-2/override",
            &op,
            Some(json!({"score": 12.0, "reason": ""})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, list) = s
        .json(
            Method::GET,
            "/api/v1/leads/scores?min_score=1&sort=highest&strategy=bant@1.0.0",
            &s.reader,
            None,
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        s.json(
            Method::GET,
            "/api/v1/leads/scores?sort=sideways",
            &s.reader,
            None
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );

    // Plugin controls, live.
    let (_, p) = s
        .json(Method::GET, "/api/v1/plugins/bant", &s.reader, None)
        .await;
    assert_eq!(p["live_version"], "1.0.0");
    assert_eq!(p["load_attempts"][0]["status"], "live");
    assert_eq!(
        s.json(Method::POST, "/api/v1/plugins/bant/disable", &op, None)
            .await
            .0,
        StatusCode::OK
    );
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/score",
            &op,
            Some(json!({"lead": lead_json("i4")})),
        )
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(
        s.json(Method::POST, "/api/v1/plugins/bant/enable", &op, None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        s.json(
            Method::POST,
            "/api/v1/score",
            &op,
            Some(json!({"lead": lead_json("i5")}))
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        s.json(Method::POST, "/api/v1/plugins/bant/rollback", &op, None)
            .await
            .0,
        StatusCode::CONFLICT
    );

    let (st, _) = s
        .json(Method::GET, "/api/v1/agents/stats", &s.reader, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let metrics = s
        .req(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_requests_total") && metrics.contains("plugin_calls_total"),
        "{metrics}"
    );
    assert!(metrics.contains("jobs_queue_depth"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_scores_jobs_plugins_and_audit_over_http_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    lead_and_score_flow(&sqlite_url(tmp.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_scores_jobs_plugins_and_audit_over_http_on_postgres() {
    let (url, _guard) = support::fresh_url(Backend::Postgres).await;
    lead_and_score_flow(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // A small limit, so the oversized request still fits one write: the client has sent
    // everything before the server answers 413 and closes (no reset race).
    let s = Server::start(&sqlite_url(tmp.path()), "", |c| {
        c.server.body_limit_bytes = 1024
    })
    .await;
    let op = &s.operator;
    let post = |body: String, ct: &'static str| {
        s.req(Method::POST, "/api/v1/leads", Some(op))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let cases: Vec<(String, &str, StatusCode, &str)> = vec![
        (
            "{\"id\": \"x\",".into(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            "{\"id\": \"x\", \"employees\": \"many\"}".into(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "employees",
        ),
        (
            "{\"id\": \"x\", \"colour\": 1}".into(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            "{\"id\": \"x\", \"budget\": -5}".into(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "budget",
        ),
        (
            format!("{{\"id\": \"x\", \"notes\": \"{}\"}}", "a".repeat(1500)),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
        (
            format!(
                "{{\"id\": \"x\", \"attributes\": {}1{}}}",
                "[".repeat(100),
                "]".repeat(100)
            ),
            "application/json",
            StatusCode::BAD_REQUEST,
            "nested deeper",
        ),
        (
            "id=x".into(),
            "application/x-www-form-urlencoded",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
    ];
    for (body, ct, want, detail) in cases {
        let r = post(body, ct).await.unwrap();
        assert_eq!(r.status(), want, "{detail}");
        assert_problem(&r);
        let text = r.text().await.unwrap();
        assert!(text.contains(detail), "{want}: {text}");
    }
    // Errors made below the handlers are problem+json too: a query axum cannot parse,
    // an unknown method, the body limit on a route reading raw bytes.
    for (method, path, ct, body, want) in [
        (
            Method::GET,
            "/api/v1/leads?limit=abc",
            "",
            String::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/api/v1/leads",
            "",
            String::new(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::POST,
            "/api/v1/leads/bulk",
            "text/csv",
            format!("id\n{}", "x".repeat(1500)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let mut r = s.req(method.clone(), path, Some(op));
        if !ct.is_empty() {
            r = r.header("content-type", ct).body(body);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), want, "{method} {path}");
        assert_problem(&r);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], want.as_u16(), "{v}");
        assert!(!v["detail"].as_str().unwrap().is_empty(), "{v}");
    }
    // CSV: an unclosed quote would fold the following rows into one name; refused, with
    // the line. A bulk validation error names the line and the field.
    for (csv, line, what) in [
        (
            "id,name\nqq-1,\"Ann\nqq-2,Bob\nqq-3,Cy\n",
            "line 2",
            "never closed",
        ),
        ("id,name\nqq-1,Ann\nqq-2,Bob,x\n", "line 3", "fields"),
        ("id,budget\nok,1\nbad,-3\n", "line 3", "budget"),
    ] {
        let r = s
            .req(Method::POST, "/api/v1/leads/bulk", Some(op))
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{csv:?}: {}", r.status());
        assert_problem(&r);
        let text = r.text().await.unwrap();
        assert!(
            text.contains(line) && text.contains(what),
            "{csv:?}: {text}"
        );
    }
    // /api/v1/score checks a lead by the same rule as /api/v1/leads.
    for lead in [
        json!({"id": ""}),
        json!({"id": "  "}),
        json!({"id": "x", "budget": -1}),
    ] {
        let (st, v) = s
            .json(
                Method::POST,
                "/api/v1/score",
                op,
                Some(json!({ "lead": lead })),
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{lead}: {v}");
        let (st, v) = s
            .json(Method::POST, "/api/v1/leads", op, Some(lead.clone()))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{lead}: {v}");
    }
    // employees is an unsigned 32-bit count, as the OpenAPI document says.
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/score",
            op,
            Some(json!({"lead": {"id": "x", "employees": 4294967296u64}})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let r = s
        .req(Method::POST, "/api/v1/leads/bulk", Some(op))
        .header("content-type", "text/csv")
        .body("id,budget\nok,1\nbad,lots\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("line 3"));
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/score",
            op,
            Some(json!({"lead": {"id": "x", "budget": "big"}})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        s.host.db.count_leads(&Default::default()).await.unwrap(),
        0,
        "nothing stored"
    );
    s.stop().await;
}

fn assert_problem(r: &reqwest::Response) {
    assert_eq!(
        r.headers().get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/problem+json"),
        "{} {}",
        r.url(),
        r.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_refused_naming_the_field_on_both_engines() {
    // PostgreSQL cannot store or compare a NUL in text: once a 503 "invalid byte
    // sequence". Both engines now answer 400 (or 404 for a lead that cannot exist).
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (url, _guard) = support::fresh_url(backend).await;
        let s = Server::start(&url, "", |_| {}).await;
        let op = &s.operator;
        let r = s
            .req(Method::GET, "/api/v1/leads/a%00b", Some(op))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{backend:?}");
        assert_problem(&r);
        assert!(r.text().await.unwrap().contains("path"));
        for path in [
            "/api/v1/leads?q=a%00b",
            "/api/v1/leads?source=%00",
            "/api/v1/audit?plugin=x%00",
            "/api/v1/pipelines/runs/r%00",
        ] {
            let r = s.req(Method::GET, path, Some(op)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{backend:?} {path}");
            assert_problem(&r);
            let text = r.text().await.unwrap();
            assert!(text.contains("NUL"), "{path}: {text}");
            if let Some(q) = path.split('?').nth(1) {
                let name = q.split('=').next().unwrap();
                assert!(text.contains(&format!("\\\"{name}\\\"")), "{path}: {text}");
            }
        }
        let (st, v) = s
            .json(
                Method::POST,
                "/api/v1/leads",
                op,
                Some(json!({"id": "a", "name": "A\u{0}n"})),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{backend:?} {v}");
        assert!(v["detail"].as_str().unwrap().contains("`name`"), "{v}");
        let (st, v) = s
            .json(
                Method::POST,
                "/api/v1/score",
                op,
                Some(json!({"lead": {"id": "a\u{0}"}})),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{backend:?} {v}");
        assert!(v["detail"].as_str().unwrap().contains("`lead.id`"), "{v}");
        for (ct, body, field) in [
            (
                "application/x-ndjson",
                "{\"id\":\"ok\"}\n{\"id\":\"b\",\"notes\":\"x\\u0000\"}\n",
                "notes",
            ),
            ("text/csv", "id,company\nok,A\nb,C\0D\n", "company"),
        ] {
            let r = s
                .req(Method::POST, "/api/v1/leads/bulk", Some(op))
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_client_error(),
                "{backend:?} {ct}: {}",
                r.status()
            );
            assert_problem(&r);
            let text = r.text().await.unwrap();
            assert!(
                text.contains("line 2") || text.contains("line 3"),
                "{ct}: {text}"
            );
            assert!(text.contains(field) && text.contains("NUL"), "{ct}: {text}");
        }
        // The MCP door and the CLI share the rule (crm::validate_lead); get_lead too.
        let crm = strata::crm::Crm::new(s.host.db.clone());
        assert!(matches!(
            crm.lead("a\0b").await,
            Err(strata::crm::CrmError::NotFound(_))
        ));
        assert_eq!(
            s.host.db.count_leads(&Default::default()).await.unwrap(),
            0,
            "{backend:?}"
        );
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after_per_key() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(tmp.path()), "", |c| {
        c.server.rate_limit_per_second = 1;
        c.server.rate_limit_burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = s
            .req(Method::GET, "/api/v1/leads", Some(&s.reader))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let after: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(after >= 1, "Retry-After: {after}");
            assert_problem(&r);
            let v: Value = r.json().await.unwrap();
            assert!(
                v["detail"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("retry after {after} s")),
                "{v}"
            );
            statuses.push(StatusCode::TOO_MANY_REQUESTS);
            continue;
        }
        statuses.push(r.status());
    }
    assert_eq!(statuses[..3], [StatusCode::OK; 3]);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS);
    // Another key has its own budget.
    assert_eq!(
        s.req(Method::GET, "/api/v1/leads", Some(&s.admin))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_only_allowlisted_origins() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(tmp.path()), "", |c| {
        c.server.cors_origins = vec!["https://crm.example".into()]
    })
    .await;
    let preflight = |origin: &'static str| {
        s.req(Method::OPTIONS, "/api/v1/leads", None)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let ok = preflight("https://crm.example").await.unwrap();
    assert_eq!(
        ok.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://crm.example")
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_at_start_is_retried_not_a_panic() {
    let mut config = strata::config::Config::default();
    config.database.url = "postgres://strata:secret-pw@127.0.0.1:1/strata".into();
    config.server.bind = "127.0.0.1:0".into();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(strata::server::serve_until(config, None, async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!task.is_finished(), "still retrying");
    let _ = stop_tx.send(());
    let err = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("before the database became reachable"),
        "{err}"
    );
    assert!(!err.contains("secret-pw"), "password leaked: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_timeout_gets_408_and_the_server_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &sqlite_url(tmp.path()),
        "[grants.slow-good]\nlimits = { deadline_ms = 10000 }\n",
        |c| {
            install(&c.plugins.dir, "testing/slow-good", "slow-good");
            c.server.request_timeout_ms = 20;
        },
    )
    .await;
    // ~2 ms of guest CPU per unit of `burn`: far beyond the 20 ms request timeout.
    let mut lead = lead_json("slow-1");
    lead["attributes"] = json!({ "burn": "200" });
    let (status, body) = s
        .json(
            Method::POST,
            "/api/v1/score",
            &s.operator,
            Some(json!({ "lead": lead, "strategy": "slow-good" })),
        )
        .await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    let (status, _) = s.json(Method::GET, "/api/v1/leads", &s.reader, None).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pure_scorer_that_overruns_the_inline_budget_moves_to_the_blocking_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &sqlite_url(tmp.path()),
        "[grants.slow-good]\nlimits = { deadline_ms = 80 }\n",
        |c| {
            install(&c.plugins.dir, "testing/slow-good", "slow-good");
            c.server.inline_budget_us = 500;
        },
    )
    .await;
    let lane = |v: &Value| (v["lane"]["inline"].clone(), v["lane"]["detail"].clone());
    let (_, slow) = s
        .json(Method::GET, "/api/v1/plugins/slow-good", &s.reader, None)
        .await;
    assert_eq!(
        lane(&slow).0,
        json!(true),
        "pure, 80 ms deadline: inline at first: {slow}"
    );
    let (_, bant) = s
        .json(Method::GET, "/api/v1/plugins/bant", &s.reader, None)
        .await;
    assert_eq!(lane(&bant).0, json!(true), "{bant}");

    // ~2 ms of guest CPU per call: every inline call overruns 500 µs, the third moves it
    // to the blocking pool; every call still answers, the same way, on either lane.
    let mut scores = Vec::new();
    for i in 0..5 {
        let (status, body) = s
            .json(
                Method::POST,
                "/api/v1/score",
                &s.operator,
                Some(json!({ "lead": lead_json("same"), "strategy": "slow-good" })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "call {i}: {body}");
        scores.push(body["score"]["value"].clone());
    }
    assert!(scores.windows(2).all(|w| w[0] == w[1]), "{scores:?}");
    let (_, slow) = s
        .json(Method::GET, "/api/v1/plugins/slow-good", &s.reader, None)
        .await;
    let (inline, detail) = lane(&slow);
    assert_eq!(inline, json!(false), "{slow}");
    assert_eq!(detail["demoted"], json!(true), "{detail}");
    assert_eq!(
        detail["overruns"],
        json!(3),
        "demoted at the third: {detail}"
    );
    assert_eq!(detail["pure"], json!(true), "{detail}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_pins_rejected_directories_and_a_config_reload_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("strata.toml");
    let grants = "[grants.stateful]\ncapabilities = [\"state\"]\n";
    let s = Server::start_from(&sqlite_url(tmp.path()), grants, |_| {}, Some(file.clone())).await;
    let (op, admin) = (s.operator.clone(), s.admin.clone());

    // A score names the version's component.
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/score",
            &op,
            Some(json!({"lead": lead_json("v1")})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, bant) = s
        .json(Method::GET, "/api/v1/plugins/bant", &s.reader, None)
        .await;
    assert_eq!(v["sha256"], bant["sha256"]);
    assert_eq!(v["strategy"], "bant@1.0.0");

    // 1.1.0 with new bytes, deployed into the watched directory.
    let dir = s.host.plugins_dir.join("bant");
    deploy_version(&dir, "bant", "1.1.0");
    wait_until("1.1.0 live", async || {
        s.json(Method::GET, "/api/v1/plugins/bant", &s.reader, None)
            .await
            .1["live_version"]
            == "1.1.0"
    })
    .await;
    let (st, v) = s
        .json(
            Method::GET,
            "/api/v1/plugins/bant/versions",
            &s.reader,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["live"]["version"], "1.1.0");
    assert_eq!(v["kept"].as_array().unwrap().len(), 2, "{v}");

    // Roll back (pinned), pin another kept version by number, unpin.
    let (st, v) = s
        .json(Method::POST, "/api/v1/plugins/bant/rollback", &op, None)
        .await;
    assert_eq!(
        (st, &v["live"]["version"], &v["pinned"]),
        (StatusCode::OK, &json!("1.0.0"), &json!(true)),
        "{v}"
    );
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/plugins/bant/pin",
            &op,
            Some(json!({"version": "1.1.0"})),
        )
        .await;
    assert_eq!(
        (st, &v["live"]["version"]),
        (StatusCode::OK, &json!("1.1.0")),
        "{v}"
    );
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/plugins/bant/rollback",
            &op,
            Some(json!({"to": "0.0.1"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("keeps no version 0.0.1"),
        true,
        "{v}"
    );
    let (st, v) = s
        .json(Method::POST, "/api/v1/plugins/bant/unpin", &op, None)
        .await;
    assert_eq!((st, &v["pinned"]), (StatusCode::OK, &json!(false)), "{v}");
    let (st, _) = s
        .json(Method::POST, "/api/v1/plugins/nope/pin", &op, None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The same through the CLI against the running server.
    let cli = |args: &[&str], key: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(args)
            .args(["--server", &s.base, "--key", key])
            .output()
            .unwrap()
    };
    let out = cli(&["plugin", "versions", "bant", "--json"], &s.reader);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["live"]["version"], "1.1.0");
    let out = cli(&["plugin", "rollback", "bant", "--to", "1.0.0"], &op);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("live bant@1.0.0") && stdout.contains("pinned"),
        "{stdout}"
    );
    let out = cli(&["plugin", "pin", "bant", "--version", "0.0.9"], &op);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("409") && stderr.contains("keeps no version 0.0.9"),
        "{stderr}"
    );
    let out = cli(&["plugin", "unpin", "bant"], &op);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("live bant@1.1.0"),
        "{stdout}"
    );
    let out = cli(&["plugin", "pin", "bant"], &s.reader);
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));

    // An invalid directory is listed with its reason.
    let bad = s.host.plugins_dir.join("escape");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("plugin.toml"),
        "[plugin]\nname = \"../../etc\"\nversion = \"1.0.0\"\nkind = \"scorer\"\n",
    )
    .unwrap();
    wait_until("the invalid directory listed", async || {
        let (_, v) = s
            .json(Method::GET, "/api/v1/plugins", &s.reader, None)
            .await;
        v["directories"].as_array().unwrap().iter().any(|d| {
            d["dir"].as_str().unwrap().ends_with("escape")
                && d["state"] == "rejected"
                && d["error"].as_str().unwrap().contains("plugin.name")
        })
    })
    .await;

    // Config reload: the grant taken away stops the plugin, with the reason; given back,
    // it serves again. Other changed settings are named as needing a restart.
    let mut config: strata::config::Config =
        toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    config.grants.remove("stateful");
    config.server.body_limit_bytes += 1;
    std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();
    let (st, v) = s
        .json(Method::POST, "/api/v1/config/reload", &admin, None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["grants"][0]["plugin"], "stateful", "{v}");
    assert_eq!(v["grants"][0]["outcome"], "stopped", "{v}");
    assert!(
        v["grants"][0]["error"]
            .as_str()
            .unwrap()
            .contains("grants.stateful"),
        "{v}"
    );
    assert_eq!(
        v["restart_required"],
        json!(["server.body_limit_bytes"]),
        "{v}"
    );
    let score_stateful = async |id: &str| {
        s.json(
            Method::POST,
            "/api/v1/score",
            &op,
            Some(json!({"lead": lead_json(id), "strategy": "stateful"})),
        )
        .await
    };
    let (st, v) = score_stateful("v2").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (_, v) = s
        .json(Method::GET, "/api/v1/plugins", &s.reader, None)
        .await;
    let stateful = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "stateful")
        .unwrap()
        .clone();
    assert!(
        stateful["last_error"]["error"]
            .as_str()
            .unwrap()
            .contains("grants.stateful"),
        "{stateful}"
    );

    let mut config = config;
    config.grants.insert(
        "stateful".into(),
        toml::from_str("capabilities = [\"state\"]").unwrap(),
    );
    std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();
    let (st, v) = s
        .json(Method::POST, "/api/v1/config/reload", &admin, None)
        .await;
    assert_eq!(
        (st, &v["grants"][0]["outcome"]),
        (StatusCode::OK, &json!("live")),
        "{v}"
    );
    let (st, v) = score_stateful("v3").await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // A broken file is refused; the running configuration stays.
    std::fs::write(&file, "[server\nbind = ").unwrap();
    let (st, v) = s
        .json(Method::POST, "/api/v1/config/reload", &admin, None)
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    s.stop().await;
}

/// A TCP relay to PostgreSQL that can be cut, as if the database went away, and mended:
/// while `cut` holds true, relayed connections are closed and new ones are dropped.
struct Relay {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn to(upstream: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *cut_rx.borrow() {
                    continue; // dropped: the database is "down"
                }
                let mut stop = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                        _ = stop.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Relay { port, cut }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_fails_fast_reports_not_ready_and_keeps_pure_scoring_for_known_keys() {
    let real = support::pg::fresh_database_url().await;
    let parsed = reqwest::Url::parse(&real).unwrap();
    let upstream =
        tokio::net::lookup_host((parsed.host_str().unwrap(), parsed.port().unwrap_or(5432)))
            .await
            .unwrap()
            .next()
            .unwrap();
    let relay = Relay::to(upstream).await;
    let mut via = parsed.clone();
    via.set_host(Some("127.0.0.1")).unwrap();
    via.set_port(Some(relay.port)).unwrap();
    let s = Server::start(via.as_str(), "", |c| {
        c.database.acquire_timeout_ms = 500;
        c.server.key_cache_ms = 50;
    })
    .await;
    let score = || {
        s.req(Method::POST, "/api/v1/score", Some(&s.operator))
            .json(&json!({"lead": hot_lead("L-out"), "strategy": "bant"}))
            .send()
    };
    assert_eq!(score().await.unwrap().status(), StatusCode::OK);
    let ready = s.req(Method::GET, "/ready", None).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    relay.cut.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await; // past the key cache
    let started = Instant::now();
    let r = s
        .req(Method::GET, "/api/v1/leads", Some(&s.operator))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    eprintln!("a database read during the outage failed after {waited:?}");
    let ready = s.req(Method::GET, "/ready", None).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "not ready");
    // Pure scoring goes on for a key verified before the outage; an unknown key is
    // refused (the database cannot vouch for it).
    let r = score().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = s
        .req(
            Method::GET,
            "/api/v1/leads",
            Some("strata_0000000000000000000000000000000000000000"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);

    // The database is back: ready again without a restart.
    relay.cut.send(false).unwrap();
    let mut ready = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..100 {
        ready = s
            .req(Method::GET, "/ready", None)
            .send()
            .await
            .unwrap()
            .status();
        if ready == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, StatusCode::OK, "ready after the outage");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_of_a_stored_lead_never_scored_is_a_conflict_and_of_an_unknown_lead_a_404() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(tmp.path()), "", |_| {}).await;
    let (st, v) = s
        .json(
            Method::POST,
            "/api/v1/leads",
            &s.operator,
            Some(lead_json("unscored")),
        )
        .await;
    assert!(st.is_success(), "{v}");
    let body = json!({ "score": 90.0, "reason": "met them" });
    let (st, v) = s
        .json(
            Method::PUT,
            "/api/v1/leads/scores/unscored/override",
            &s.operator,
            Some(body.clone()),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("no score yet"),
        "{v}"
    );
    let (st, v) = s
        .json(
            Method::PUT,
            "/api/v1/leads/scores/nobody/override",
            &s.operator,
            Some(body),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    s.stop().await;
}
