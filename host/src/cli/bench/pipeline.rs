//! The pipeline figures: runs of a configured pipeline (the golden path by default) end
//! to end in process — `create_run` + `execute` on a fresh SQLite database of its own
//! (so the bulk figure's leads do not weigh on the CRM lookups), the layers in their
//! sandboxes, the MCP servers of config as configured (stdio ones as real children,
//! `builtin` in process on the bench's database) — then where the time went
//! (inside the layers, in their capability calls, in the orchestrator and database).

use super::measure::percentile;
use super::report::{CapabilityCall, LayerFigures, PipelineFigures, SlowestTenth};
use crate::app::App;
use crate::config::Config;
use crate::mcp::McpTransport;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone)]
pub struct Plan {
    name: String,
    /// Distinct layers of the pipeline, in config order.
    layers: Vec<String>,
    /// Scorers the layers are granted through `scoring`.
    scorers: Vec<String>,
    /// MCP servers the layers are granted tools of, with the command they run.
    servers: Vec<(String, String)>,
    /// Where the databases go.
    dir: PathBuf,
}

/// The golden lead of tests/pipelines.rs (a hot B2B lead) with a fixed `now_ms`; each
/// run a new lead (e-mail) at a new company, so that the CRM does not pile up hundreds
/// of leads of one company that no real run would see.
fn lead(email: &str, company: &str) -> Value {
    json!({
        "name": "  ada   LOVELACE ",
        "email": email,
        "company": company,
        "title": "VP of Engineering",
        "industry": "Software",
        "employees": "250",
        "annual_revenue": "$12M",
        "budget": "$80,000",
        "timeline": "immediate",
        "source": "Referral",
        "country": "GB",
        "now_ms": 1_795_000_000_000i64
    })
}

fn find_program(command: &str, cwd: Option<&Path>) -> Result<PathBuf, String> {
    let p = Path::new(command);
    if p.is_absolute() || p.components().count() > 1 {
        let base = match cwd {
            Some(d) => d.to_path_buf(),
            None => std::env::current_dir().unwrap_or_default(),
        };
        let full = base.join(p);
        return if full.is_file() {
            Ok(full)
        } else {
            Err(format!("{} does not exist", full.display()))
        };
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(command))
                .find(|f| f.is_file())
        })
        .ok_or_else(|| format!("{command:?} is not in PATH"))
}

/// Checks the pipeline and its MCP servers before anything is measured; returns the
/// configuration of the pipeline host: the bench's, on databases of its own under
/// `dir`, its stdio servers pointed at them.
pub fn prepare(config: &Config, name: &str, dir: &Path) -> anyhow::Result<(Plan, Config)> {
    let mut config = config.clone();
    let skip = "skip the pipeline figures with --pipeline-runs 0";
    let def = config.pipelines.get(name).ok_or_else(|| {
        anyhow::anyhow!("no pipeline {name:?} is configured ([pipelines.{name}]); {skip}")
    })?;
    let mut layers: Vec<String> = Vec::new();
    for b in &def.layers {
        if !layers.contains(&b.layer) {
            layers.push(b.layer.clone());
        }
    }
    let mut scorers = BTreeSet::new();
    let mut servers = BTreeSet::new();
    for l in &layers {
        if let Some(g) = config.grants.get(l) {
            scorers.extend(g.scoring.strategies.iter().cloned());
            for tool in &g.mcp.tools {
                if let Some((server, _)) = tool.split_once('/') {
                    servers.insert(server.to_string());
                }
            }
        }
    }
    let mut plan_servers = Vec::new();
    for server in servers {
        let s = config.mcp.servers.get_mut(&server).ok_or_else(|| {
            anyhow::anyhow!(
                "the {name} pipeline's layers are granted tools of MCP server {server:?}, \
                 but [mcp.servers.{server}] is not configured; {skip}"
            )
        })?;
        match s.transport {
            McpTransport::Stdio => {}
            McpTransport::Http => {
                plan_servers.push((server, s.url.clone().unwrap_or_default()));
                continue;
            }
            McpTransport::Builtin => {
                plan_servers.push((server, "builtin, in process".to_string()));
                continue;
            }
        }
        let command = s.command.clone().unwrap_or_default();
        find_program(&command, s.cwd.as_deref()).map_err(|why| {
            anyhow::anyhow!(
                "MCP server {server:?} (mcp.servers.{server}.command = {command:?}), used by \
                 the {name} pipeline, cannot be started: {why}. Build it with `cargo build \
                 --release -p strata` (with CARGO_TARGET_DIR set, copy or link \
                 $CARGO_TARGET_DIR/release/strata to {command}) and run from the directory \
                 the command is relative to; or {skip}"
            )
        })?;
        // The child writes where the bench's host reads: the bench's own database,
        // never the operator's.
        s.env.remove("DATABASE_URL");
        s.env.insert("STRATA_DATABASE__URL".into(), String::new());
        s.env
            .entry("STRATA_LOG".into())
            .or_insert_with(|| "warn".into());
        plan_servers.push((server, command));
    }
    let plan = Plan {
        name: name.to_string(),
        layers,
        scorers: scorers.into_iter().collect(),
        servers: plan_servers,
        dir: dir.to_path_buf(),
    };
    Ok((plan, config))
}

/// A fresh database per measurement, shared with the stdio MCP servers.
fn with_fresh_db(mut config: Config, plan: &Plan, tag: &str) -> Config {
    let url = format!("sqlite://{}/pipeline-{tag}.db", plan.dir.display());
    for (server, _) in &plan.servers {
        if let Some(s) = config.mcp.servers.get_mut(server) {
            if let Some(v) = s.env.get_mut("STRATA_DATABASE__URL") {
                *v = url.clone();
            }
        }
    }
    config.database.url = url;
    config
}

async fn load_layers(app: &App, plan: &Plan) -> anyhow::Result<()> {
    for name in plan.layers.iter().chain(&plan.scorers) {
        crate::cli::load_named(&app.manager, name)
            .await
            .map_err(|e| anyhow::anyhow!("{} pipeline: {e}", plan.name))?;
    }
    Ok(())
}

/// Connects each MCP server once (outside the measured runs).
async fn connect(app: &App, plan: &Plan) -> anyhow::Result<()> {
    for (server, command) in &plan.servers {
        app.mcp.check(server).await.map_err(|e| {
            anyhow::anyhow!(
                "MCP server {server:?} ({command}) does not answer: {e}; skip the \
                 pipeline figures with --pipeline-runs 0"
            )
        })?;
    }
    Ok(())
}

fn ms_stats(v: &mut [f64]) -> (f64, f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (
        percentile(v, 0.5),
        percentile(v, 0.9),
        percentile(v, 0.99),
        mean,
    )
}

/// `runs` runs (after a few warm-up runs), each a distinct lead, by a host of their own
/// on a fresh database; never asserts.
pub async fn measure(
    config: Config,
    plan: &Plan,
    runs: usize,
    dry_run: bool,
) -> anyhow::Result<PipelineFigures> {
    let tag = if dry_run { "dry" } else { "live" };
    let app = Arc::new(App::start(with_fresh_db(config, plan, tag)).await?);
    load_layers(&app, plan).await?;
    connect(&app, plan).await?;
    // Polled by a runtime worker, as a job worker's run is, not by the CLI's main
    // thread (`block_on`); the two measured the same.
    let (a, p, tag) = (app.clone(), plan.clone(), tag.to_string());
    let figures =
        tokio::spawn(async move { measure_on(&a, &p, runs, dry_run, &tag).await }).await?;
    if let Ok(app) = Arc::try_unwrap(app) {
        app.shutdown().await;
    }
    figures
}

async fn measure_on(
    app: &App,
    plan: &Plan,
    runs: usize,
    dry_run: bool,
    tag: &str,
) -> anyhow::Result<PipelineFigures> {
    // One request id per batch of runs: each batch's audit rows fit one listing.
    const BATCH: usize = 50;
    let rid = |i: usize| format!("bench-pipeline-{tag}-{}", i / BATCH);
    let warmup = (runs / 20).clamp(3, 10);
    for i in 0..warmup {
        let email = format!("Warmup-{tag}-{i}@Bench.Example.COM ");
        let company = format!("Warm-up Engines {i} Ltd");
        let created = app
            .pipelines
            .create_run(&plan.name, lead(&email, &company), dry_run, None, false)
            .await?;
        app.pipelines.execute(&created.run.id, None).await?;
    }
    let mut total = Vec::with_capacity(runs);
    let mut create = Vec::with_capacity(runs);
    let mut summaries = Vec::with_capacity(runs);
    let started = Instant::now();
    for i in 0..runs {
        let (email, company) = (
            format!("Lead-{tag}-{i}@Bench.Example.COM "),
            format!("Analytical Engines {i} Ltd"),
        );
        let payload = lead(&email, &company);
        let (rid, rid_arc) = (rid(i), Arc::<str>::from(rid(i)));
        let t = Instant::now();
        let created = app
            .pipelines
            .create_run(&plan.name, payload, dry_run, Some(rid), false)
            .await?;
        let c = t.elapsed();
        let s = app
            .pipelines
            .execute(&created.run.id, Some(rid_arc))
            .await?;
        total.push(t.elapsed().as_secs_f64() * 1e3);
        create.push(c.as_secs_f64() * 1e3);
        summaries.push(s);
    }
    let wall = started.elapsed().as_secs_f64();

    // Not timed: what the stored runs say.
    let n = runs.max(1) as f64;
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut phis = Vec::new();
    let mut layer_runs = 0i64;
    let mut failed_layer_runs = 0i64;
    let mut first_error: Option<String> = None;
    let mut in_layers = Vec::with_capacity(runs);
    let mut per_layer: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for s in &summaries {
        *statuses.entry(s.status.as_str().to_string()).or_default() += 1;
        phis.extend(s.phi_sync);
        layer_runs += s.layer_runs;
        failed_layer_runs += s.failed_layer_runs;
        if first_error.is_none() {
            first_error = s.error.clone();
        }
        let Some(detail) = app.db.get_run(&s.run_id).await? else {
            continue;
        };
        let mut sum = 0.0;
        for l in &detail.layer_runs {
            sum += l.duration_ms;
            let e = per_layer.entry(l.layer.clone()).or_default();
            e.0 += 1;
            e.1 += l.duration_ms;
            if first_error.is_none() {
                first_error = l.error.as_ref().map(|e| format!("{}: {e}", l.layer));
            }
        }
        in_layers.push(sum);
    }
    app.audit.flush().await;
    let limit = 10_000;
    let mut audit = Vec::new();
    let mut truncated = false;
    for batch in (0..runs).step_by(BATCH) {
        let rows = app
            .db
            .list_audit(&crate::db::AuditFilter {
                request_id: Some(rid(batch)),
                limit,
                ..Default::default()
            })
            .await?;
        truncated |= rows.len() as i64 >= limit;
        audit.extend(rows);
    }
    let mut calls: BTreeMap<String, (usize, i64)> = BTreeMap::new();
    for a in &audit {
        let r = &a.record;
        // State keys name records (`deal:lead-…`): grouped by their prefix.
        let target = r.target.as_deref().unwrap_or("");
        let target = if r.capability == "state" {
            target.split(':').next().unwrap_or(target)
        } else {
            target
        };
        let key = format!(
            "{} {} {}{}",
            r.capability,
            r.operation,
            target,
            if r.allowed { "" } else { " (denied)" }
        );
        let e = calls.entry(key).or_default();
        e.0 += r.count as usize;
        e.1 += r.duration_us;
    }
    let capability_ms_per_run = calls.values().map(|(_, us)| *us as f64).sum::<f64>() / 1e3 / n;
    let mut calls: Vec<CapabilityCall> = calls
        .into_iter()
        .map(|(call, (count, us))| CapabilityCall {
            call,
            per_run: count as f64 / n,
            mean_us: us as f64 / count.max(1) as f64,
            ms_per_run: us as f64 / 1e3 / n,
        })
        .collect();
    calls.sort_by(|a, b| b.ms_per_run.total_cmp(&a.ms_per_run));
    let layers: BTreeMap<String, LayerFigures> = plan
        .layers
        .iter()
        .filter_map(|l| {
            per_layer.get(l).map(|(count, ms)| {
                let figures = LayerFigures {
                    runs_per_run: *count as f64 / n,
                    mean_ms: ms / *count as f64,
                    ms_per_run: ms / n,
                };
                (l.clone(), figures)
            })
        })
        .collect();

    // The slowest tenth of the runs split like the means: where the tail comes from.
    let slowest_tenth = (in_layers.len() == total.len() && !total.is_empty()).then(|| {
        let mut order: Vec<usize> = (0..total.len()).collect();
        order.sort_by(|&a, &b| total[b].total_cmp(&total[a]));
        order.truncate((total.len() / 10).max(1));
        let m = |v: &[f64]| order.iter().map(|&i| v[i]).sum::<f64>() / order.len() as f64;
        SlowestTenth {
            runs: order.len(),
            mean_ms: m(&total),
            create_run_mean_ms: m(&create),
            in_layers_mean_ms: m(&in_layers),
            orchestration_mean_ms: m(&total) - m(&create) - m(&in_layers),
        }
    });
    let (p50, p90, p99, mean) = ms_stats(&mut total);
    let (_, _, _, create_mean) = ms_stats(&mut create);
    let (_, _, _, in_layers_mean) = ms_stats(&mut in_layers);
    let phi_min = phis.iter().copied().fold(f64::NAN, f64::min);
    let phi_mean = phis.iter().sum::<f64>() / phis.len().max(1) as f64;
    let phi = |x: f64| (!phis.is_empty()).then_some(x);
    Ok(PipelineFigures {
        pipeline: plan.name.clone(),
        dry_run,
        database: format!("{} (fresh file)", app.db.backend()),
        mcp_servers: plan
            .servers
            .iter()
            .map(|(s, c)| format!("{s} ({c})"))
            .collect(),
        runs,
        warmup_runs: warmup,
        statuses,
        p50_ms: p50,
        p90_ms: p90,
        p99_ms: p99,
        mean_ms: mean,
        runs_per_s: runs as f64 / wall,
        create_run_mean_ms: create_mean,
        execute_mean_ms: mean - create_mean,
        layer_runs_per_run: layer_runs as f64 / n,
        failed_layer_runs,
        phi_sync_min: phi(phi_min),
        phi_sync_mean: phi(phi_mean),
        phi_sync_missing: summaries.len() - phis.len(),
        in_layers_mean_ms: in_layers_mean,
        capability_calls_mean_ms: capability_ms_per_run,
        orchestration_mean_ms: mean - create_mean - in_layers_mean,
        slowest_tenth,
        layers,
        capability_calls: calls,
        capability_calls_truncated: truncated,
        first_error,
    })
}
