//! `strata serve` killed with SIGKILL in the middle of a qualify job, then started again
//! (issue 19 item 5, as a real crash rather than a simulated one).

mod common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strata::db::{Db, JobStatus, NewJob};

/// `strata serve` on `config`, one job worker, output discarded.
fn serve(config: &Path) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The configuration of both runs: the qualify agent (builtin CRM as its MCP server),
/// short job leases, and `llm` as the `[llm…]` sections plus the agent's model grant.
fn write_config(
    dir: &Path,
    url: &str,
    plugins: &Path,
    name: &str,
    llm: &str,
) -> std::path::PathBuf {
    let (sections, models) = llm.split_once("|").unwrap_or(("", ""));
    let text = format!(
        r#"{}
[server]
workers = 1
job_lease_ms = 2000
{sections}
[mcp.servers.crm]
transport = "builtin"
side_effect_tools = ["update_*", "qualify_*"]
[qualify]
agent = "qualify-agent"
[grants.qualify-agent]
capabilities = ["llm", "mcp", "scoring"]
llm = {{ models = [{models}] }}
mcp = {{ tools = ["crm/get_lead", "crm/update_lead"] }}
scoring = {{ strategies = ["bant"] }}
limits = {{ deadline_ms = 60000 }}
"#,
        host_toml(url, plugins, &dir.join("cache"))
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Polls `check` every 50 ms until it gives a value, for at most 60 s.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn running_executions(db: &Db, job: &str) -> usize {
    let execs = db.executions_of_job(job).await.unwrap();
    execs.iter().filter(|e| e.status == "running").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_qualify_job_completes_it_once_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let url = sqlite_url(tmp.path());
    let plugins = tmp.path().join("plugins");
    install(&plugins, "bant", "bant");
    install(&plugins, "qualify-agent", "qualify-agent");
    let db = migrated_db(&url).await;
    db.upsert_lead(&hot_lead("L-1")).await.unwrap();
    let job = db
        .enqueue_job(&NewJob::new(
            "qualify",
            serde_json::json!({"lead_id": "L-1"}),
        ))
        .await
        .unwrap()
        .id;

    // First run: the agent's LLM provider accepts the connection and never answers, so
    // the job hangs inside the agent (execution open, job claimed) until it is killed.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang = format!(
        r#"[llm.providers.hole]
kind = "openai"
base_url = "http://{}"
timeout_ms = 120000
[llm.models.qualifier]
provider = "hole"
model = "never-answers"
[llm.retry]
max_attempts = 1
|"qualifier""#,
        black_hole.local_addr().unwrap()
    );
    let cfg = write_config(tmp.path(), &url, &plugins, "hang.toml", &hang);
    let mut server = serve(&cfg);
    wait_for("the job's execution to start", || async {
        (running_executions(&db, &job).await == 1).then_some(())
    })
    .await;
    // Mid-work: give the agent time to reach the LLM call, then SIGKILL.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    let killed = db.get_job(&job).await.unwrap().unwrap();
    assert_eq!(
        (killed.status, killed.attempts),
        (JobStatus::Running, 1),
        "killed mid-work: {killed:?}"
    );
    assert!(db.score_of_job(&job).await.unwrap().is_none());
    assert_eq!(running_executions(&db, &job).await, 1);

    // Second run: no LLM (rule-based fallback); the job is reclaimed once its lease
    // expires and finishes.
    let cfg = write_config(tmp.path(), &url, &plugins, "restart.toml", "");
    let mut server = serve(&cfg);
    let done = wait_for("the job to finish after the restart", || async {
        let j = db.get_job(&job).await.unwrap().unwrap();
        j.status.is_final().then_some(j)
    })
    .await;
    // Let a (wrong) second completion show itself before looking.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    drop(black_hole);

    assert_eq!(
        (done.status, done.attempts),
        (JobStatus::Succeeded, 2),
        "{done:?}"
    );
    let scores = db.latest_scores("L-1", 100).await.unwrap();
    assert_eq!(scores.len(), 1, "exactly one score: {scores:?}");
    let of_job = db
        .score_of_job(&job)
        .await
        .unwrap()
        .expect("the job's score");
    assert_eq!(scores[0].id, of_job.id);
    let execs = db.executions_of_job(&job).await.unwrap();
    let n = |s: &str| execs.iter().filter(|e| e.status == s).count();
    assert_eq!(
        (n("succeeded"), n("abandoned"), n("running")),
        (1, 1, 0),
        "one finished run, the killed one closed as abandoned: {execs:#?}"
    );
    db.close().await;
}
