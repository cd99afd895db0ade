//! `strata bench`: per-call and load figures, and pipeline runs end to end, measured in
//! one run, printed as a table or JSON. Figures, never assertions: the machine is shared
//! and noisy.

use crate::app::App;
use crate::config::Config;
use crate::domain::Lead;
use crate::input::{self, InputFormat, ReadOptions};
use crate::manifest::Manifest;
use crate::plugins::PluginManager;
use crate::runtime::LoadedPlugin;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Scorer to measure.
    #[arg(long, default_value = "bant")]
    pub plugin: String,
    /// Calls for the latency figures.
    #[arg(long, default_value_t = 20_000)]
    pub calls: usize,
    /// Seconds of the throughput run.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Labelled data set for the bulk score-and-store figure.
    #[arg(long, default_value = "tests/data/leads-xeducation.csv")]
    pub bulk_input: PathBuf,
    /// Scorer for the bulk figure.
    #[arg(long, default_value = "xeducation")]
    pub bulk_plugin: String,
    /// A constant scorer: its fresh-instance call is the host's pure per-call overhead.
    #[arg(long, default_value = "plugins/testing/minimal")]
    pub overhead_plugin: PathBuf,
    /// Pipeline measured end to end in process (create_run + execute), with the layers
    /// and MCP servers of config; the trigger is a realistic lead (a new e-mail per run).
    #[arg(long, default_value = "golden")]
    pub pipeline: String,
    /// Measured runs of the pipeline (after a few warm-up runs); 0 skips the pipeline figures.
    #[arg(long, default_value_t = 200)]
    pub pipeline_runs: usize,
    /// Skip the second pipeline figure, the same runs with `dry_run: true`.
    #[arg(long)]
    pub no_pipeline_dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Latency figures of `n` calls of `f` (after a warm-up); the first failing call ends the
/// measurement with its error.
fn latencies_us(
    n: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<serde_json::Value> {
    for _ in 0..(n / 10).max(10) {
        f()?;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    v.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "p50_us": percentile(&v, 0.5), "p90_us": percentile(&v, 0.9), "p99_us": percentile(&v, 0.99),
        "mean_us": v.iter().sum::<f64>() / v.len().max(1) as f64, "calls": n,
    }))
}

/// A measured call's outcome: a failed call ends the benchmark, naming the scorer.
fn scored<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> anyhow::Result<()> {
    r.map(|_| ())
        .map_err(|e| anyhow::anyhow!("{what} failed during the benchmark: {e}"))
}

fn demo_lead() -> Lead {
    Lead {
        id: "bench-1".into(),
        name: Some("Dana Fox".into()),
        title: Some("VP of Sales".into()),
        company: Some("Acme Robotics".into()),
        industry: Some("Software".into()),
        employees: Some(450),
        annual_revenue: Some(40_000_000.0),
        budget: Some(80_000.0),
        timeline: Some("this quarter".into()),
        source: Some("referral".into()),
        notes: Some("Evaluating vendors; manual scoring is slow and error-prone".into()),
        ..Default::default()
    }
}

fn throughput(plugin: &Arc<LoadedPlugin>, lead: &Lead, threads: usize, secs: f64) -> f64 {
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _ = plugin.score(lead, None);
                    n += 1;
                }
                count.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
    });
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn find_dir(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    for d in PluginManager::plugin_dirs(root)? {
        if Manifest::load(&d).is_ok_and(|m| m.plugin.name == name) {
            return Ok(d);
        }
    }
    anyhow::bail!("plugin {name} not found under {}", root.display())
}

pub async fn run(args: BenchArgs, mut config: Config) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    config.database.url = format!("sqlite://{}/bench.db", tmp.path().display());
    config.runtime.cache_dir = Some(tmp.path().join("cache"));
    // Checked before anything is measured: a missing MCP binary fails at once.
    let pipeline_plan = if args.pipeline_runs > 0 {
        Some(pipeline::prepare(&config, &args.pipeline, tmp.path())?)
    } else {
        None
    };
    let plugins_root = config.plugins.dir.clone();
    let app = App::start(config).await?;
    let plugin = super::load_named(&app.manager, &args.plugin).await?;
    let lead = demo_lead();
    let threads = super::score::threads(None);
    let mut report = serde_json::Map::new();
    report.insert("plugin".into(), plugin.id().into());
    report.insert("threads".into(), threads.into());

    let (p, l, calls, secs) = (plugin.clone(), lead.clone(), args.calls, args.seconds);
    let native_lead = lead.clone();
    let figures = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let native = latencies_us(calls * 5, || {
            std::hint::black_box(crate::native::bant_score(std::hint::black_box(
                &native_lead,
            )));
            Ok(())
        })?;
        let fresh = latencies_us(calls, || scored(p.score(&l, None), "bench scorer"))?;
        let one = throughput(&p, &l, 1, secs);
        let all = throughput(&p, &l, threads, secs);
        Ok((native, fresh, one, all))
    })
    .await??;
    if args.overhead_plugin.join("plugin.toml").is_file() {
        let minimal = app
            .manager
            .load_dir(&args.overhead_plugin)
            .await?
            .plugin()
            .clone();
        let l = lead.clone();
        let overhead = tokio::task::spawn_blocking(move || {
            latencies_us(calls, || scored(minimal.score(&l, None), "overhead scorer"))
        })
        .await??;
        report.insert("overhead_call_minimal_plugin".into(), overhead);
    }
    report.insert("native_call".into(), figures.0);
    report.insert("fresh_instance_call".into(), figures.1);
    report.insert("throughput_1_thread_per_s".into(), figures.2.into());
    report.insert(
        format!("throughput_{threads}_threads_per_s"),
        figures.3.into(),
    );

    // Compile vs cached-artifact load vs hot swap.
    let dir = find_dir(&plugins_root, &args.plugin)?;
    let manifest = Manifest::load(&dir)?;
    let wasm = std::fs::read(dir.join(&manifest.plugin.component))?;
    let rt = app.manager.runtime().clone();
    // The same scorer with opt-in instance reuse (`reuse_calls`): a warm instance per
    // thread, as the inline lane would use it.
    let mut grant = app
        .manager
        .config()
        .grants
        .get(&args.plugin)
        .cloned()
        .unwrap_or_default();
    grant.reuse_calls = 1000;
    let (rt2, m2, w2, l) = (rt.clone(), manifest.clone(), wasm.clone(), lead.clone());
    let warm = tokio::task::spawn_blocking(move || -> anyhow::Result<serde_json::Value> {
        let p = rt2.prepare(m2, &w2, Some(&grant), None)?;
        latencies_us(calls, || scored(p.score_inline(&l, None), "bench scorer"))
    })
    .await??;
    report.insert("warm_instance_call".into(), warm);
    let swap_root = tmp.path().join("swap");
    let swap_dir = swap_root.join(&args.plugin);
    std::fs::create_dir_all(&swap_dir)?;
    std::fs::copy(dir.join("plugin.toml"), swap_dir.join("plugin.toml"))?;
    let (compile_ms, cached_ms) = {
        let variant = crate::runtime::prepare::with_custom_section(&wasm, "compile");
        let sha = crate::runtime::prepare::sha256_hex(&variant);
        let rt2 = rt.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<(f64, f64)> {
            let t = Instant::now();
            rt2.cache()
                .load(&variant, &sha)
                .map_err(|e| anyhow::anyhow!("compiling the bench scorer failed: {e}"))?;
            let compile = t.elapsed().as_secs_f64() * 1e3;
            rt2.cache().forget(&sha);
            let t = Instant::now();
            rt2.cache()
                .load(&variant, &sha)
                .map_err(|e| anyhow::anyhow!("compiling the bench scorer failed: {e}"))?;
            Ok((compile, t.elapsed().as_secs_f64() * 1e3))
        })
        .await??
    };
    report.insert("compile_ms".into(), compile_ms.into());
    report.insert("cached_artifact_load_ms".into(), cached_ms.into());

    // Hot swap: a new version (new bytes → compile) and a re-deploy of cached bytes.
    let swap_manager = PluginManager::new(
        rt.clone(),
        Arc::new(crate::plugins::Registry::new()),
        app.config.clone(),
        None,
    );
    let comp = swap_dir.join(&manifest.plugin.component);
    // A version number names one set of bytes: each variant gets its own.
    let manifest_text = std::fs::read_to_string(dir.join("plugin.toml"))?;
    let set_version = |v: &str| {
        let text: String = manifest_text
            .lines()
            .map(|l| {
                if l.starts_with("version = ") {
                    format!("version = \"{}-{v}\"\n", manifest.plugin.version)
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(swap_dir.join("plugin.toml"), text)
    };
    set_version("v1")?;
    std::fs::write(
        &comp,
        crate::runtime::prepare::with_custom_section(&wasm, "v1"),
    )?;
    swap_manager.load_dir(&swap_dir).await?;
    set_version("v2")?;
    std::fs::write(
        &comp,
        crate::runtime::prepare::with_custom_section(&wasm, "v2-new"),
    )?;
    let t = Instant::now();
    swap_manager.load_dir(&swap_dir).await?;
    let swap_cold = t.elapsed().as_secs_f64() * 1e3;
    rt.cache().forget(&crate::runtime::prepare::sha256_hex(
        &crate::runtime::prepare::with_custom_section(&wasm, "v1"),
    ));
    set_version("v1")?;
    std::fs::write(
        &comp,
        crate::runtime::prepare::with_custom_section(&wasm, "v1"),
    )?;
    let t = Instant::now();
    swap_manager.load_dir(&swap_dir).await?;
    let swap_cached = t.elapsed().as_secs_f64() * 1e3;
    report.insert("hot_swap_compile_ms".into(), swap_cold.into());
    report.insert("hot_swap_cached_artifact_ms".into(), swap_cached.into());

    // Bulk: the labelled data set scored through the Wasm plugin and stored in SQLite.
    if args.bulk_input.exists() {
        let bulk = super::load_named(&app.manager, &args.bulk_plugin).await?;
        let read = input::read(
            &args.bulk_input,
            InputFormat::detect(&args.bulk_input),
            &ReadOptions {
                label: Some("Converted".into()),
            },
        )?;
        let leads = Arc::new(read.leads);
        let t = Instant::now();
        let (b, l) = (bulk.clone(), leads.clone());
        let results =
            tokio::task::spawn_blocking(move || super::score::score_all(&b, &l, threads, None))
                .await?;
        let scored = t.elapsed().as_secs_f64() * 1e3;
        let rows: Vec<_> = leads
            .iter()
            .zip(results)
            .filter_map(|(l, r)| {
                r.ok().map(|s| {
                    crate::db::NewScore::new(l.id.clone(), bulk.id(), s).with_sha256(&bulk.sha256)
                })
            })
            .collect();
        let t2 = Instant::now();
        app.db.record_scores(&leads, &rows).await?;
        let stored = t2.elapsed().as_secs_f64() * 1e3;
        report.insert(
            "bulk".into(),
            serde_json::json!({
                "plugin": bulk.id(), "leads": leads.len(), "scored": rows.len(),
                "score_ms": scored, "store_ms": stored, "total_ms": scored + stored,
            }),
        );
    }

    // Last, so that the layers and the MCP child cannot disturb the figures above.
    if let Some((plan, config)) = pipeline_plan {
        let live = pipeline::measure(config.clone(), &plan, args.pipeline_runs, false).await?;
        report.insert("pipeline".into(), live);
        if !args.no_pipeline_dry_run {
            let dry = pipeline::measure(config, &plan, args.pipeline_runs, true).await?;
            report.insert("pipeline_dry_run".into(), dry);
        }
    }

    let report = serde_json::Value::Object(report);
    if args.json {
        println!("{report}");
    } else {
        print_table(&report);
    }
    app.shutdown().await;
    Ok(())
}

fn print_table(r: &serde_json::Value) {
    let f = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.3}"));
    println!(
        "strata bench — {} on {} threads",
        r["plugin"].as_str().unwrap_or(""),
        r["threads"]
    );
    for key in [
        "native_call",
        "fresh_instance_call",
        "warm_instance_call",
        "overhead_call_minimal_plugin",
    ] {
        let c = &r[key];
        if c.is_null() {
            continue;
        }
        println!(
            "  {:<28} p50 {:>9} µs   p90 {:>9} µs   p99 {:>9} µs",
            key,
            f(&c["p50_us"]),
            f(&c["p90_us"]),
            f(&c["p99_us"])
        );
    }
    if let Some(obj) = r.as_object() {
        for (k, v) in obj {
            if k.starts_with("throughput") || k.ends_with("_ms") {
                println!("  {:<28} {:>12}", k, f(v));
            }
        }
    }
    if let Some(b) = r.get("bulk") {
        println!(
            "  bulk {} leads with {}: score {} ms + store {} ms = {} ms",
            b["leads"],
            b["plugin"].as_str().unwrap_or(""),
            f(&b["score_ms"]),
            f(&b["store_ms"]),
            f(&b["total_ms"])
        );
    }
    for key in ["pipeline", "pipeline_dry_run"] {
        if let Some(p) = r.get(key) {
            pipeline::print(p);
        }
    }
}

/// The pipeline figures: runs of a configured pipeline (the golden path by default) end
/// to end in process — `create_run` + `execute` on a fresh SQLite database of its own
/// (so the bulk figure's leads do not weigh on the CRM lookups), the layers in their
/// sandboxes, the MCP servers of config as configured (stdio ones as real children,
/// `builtin` in process on the bench's database) — then where the time went
/// (inside the layers, in their capability calls, in the orchestrator and database).
mod pipeline {
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
            super::super::load_named(&app.manager, name)
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
            super::percentile(v, 0.5),
            super::percentile(v, 0.9),
            super::percentile(v, 0.99),
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
    ) -> anyhow::Result<Value> {
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
    ) -> anyhow::Result<Value> {
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
        let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
        let mut phis = Vec::new();
        let mut layer_runs = 0i64;
        let mut failed_layer_runs = 0i64;
        let mut first_error: Option<String> = None;
        let mut in_layers = Vec::with_capacity(runs);
        let mut per_layer: BTreeMap<String, (usize, f64)> = BTreeMap::new();
        for s in &summaries {
            *statuses.entry(s.status.as_str()).or_default() += 1;
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
        let mut calls: Vec<Value> = calls
            .into_iter()
            .map(|(call, (count, us))| {
                json!({
                    "call": call, "per_run": count as f64 / n,
                    "mean_us": us as f64 / count.max(1) as f64,
                    "ms_per_run": us as f64 / 1e3 / n,
                })
            })
            .collect();
        calls.sort_by(|a, b| {
            b["ms_per_run"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&a["ms_per_run"].as_f64().unwrap_or(0.0))
        });
        let layers: serde_json::Map<String, Value> = plan
            .layers
            .iter()
            .filter_map(|l| {
                per_layer.get(l).map(|(count, ms)| {
                    (
                        l.clone(),
                        json!({ "runs_per_run": *count as f64 / n, "mean_ms": ms / *count as f64, "ms_per_run": ms / n }),
                    )
                })
            })
            .collect();

        // The slowest tenth of the runs split like the means: where the tail comes from.
        let slowest = if in_layers.len() == total.len() && !total.is_empty() {
            let mut order: Vec<usize> = (0..total.len()).collect();
            order.sort_by(|&a, &b| total[b].total_cmp(&total[a]));
            order.truncate((total.len() / 10).max(1));
            let m = |v: &[f64]| order.iter().map(|&i| v[i]).sum::<f64>() / order.len() as f64;
            json!({
                "runs": order.len(), "mean_ms": m(&total), "create_run_mean_ms": m(&create),
                "in_layers_mean_ms": m(&in_layers),
                "orchestration_mean_ms": m(&total) - m(&create) - m(&in_layers),
            })
        } else {
            Value::Null
        };
        let (p50, p90, p99, mean) = ms_stats(&mut total);
        let (_, _, _, create_mean) = ms_stats(&mut create);
        let (_, _, _, in_layers_mean) = ms_stats(&mut in_layers);
        let phi_min = phis.iter().copied().fold(f64::NAN, f64::min);
        let phi_mean = phis.iter().sum::<f64>() / phis.len().max(1) as f64;
        Ok(json!({
            "pipeline": plan.name,
            "dry_run": dry_run,
            "database": format!("{} (fresh file)", app.db.backend()),
            "mcp_servers": plan.servers.iter().map(|(s, c)| format!("{s} ({c})")).collect::<Vec<_>>(),
            "runs": runs,
            "warmup_runs": warmup,
            "statuses": statuses,
            "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "mean_ms": mean,
            "runs_per_s": runs as f64 / wall,
            "create_run_mean_ms": create_mean,
            "execute_mean_ms": mean - create_mean,
            "layer_runs_per_run": layer_runs as f64 / n,
            "failed_layer_runs": failed_layer_runs,
            "phi_sync_min": if phis.is_empty() { Value::Null } else { phi_min.into() },
            "phi_sync_mean": if phis.is_empty() { Value::Null } else { phi_mean.into() },
            "phi_sync_missing": summaries.len() - phis.len(),
            "in_layers_mean_ms": in_layers_mean,
            "capability_calls_mean_ms": capability_ms_per_run,
            "orchestration_mean_ms": mean - create_mean - in_layers_mean,
            "slowest_tenth": slowest,
            "layers": layers,
            "capability_calls": calls,
            "capability_calls_truncated": truncated,
            "first_error": first_error,
        }))
    }

    pub fn print(p: &Value) {
        let f = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.3}"));
        let f2 = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
        println!(
            "  pipeline {}{} on {}, MCP {}: {} runs (+{} warm-up), {}",
            p["pipeline"].as_str().unwrap_or(""),
            if p["dry_run"] == json!(true) {
                " dry_run"
            } else {
                ""
            },
            p["database"].as_str().unwrap_or(""),
            p["mcp_servers"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            p["runs"],
            p["warmup_runs"],
            p["statuses"]
        );
        println!(
            "    end to end per run         p50 {:>9} ms   p90 {:>9} ms   p99 {:>9} ms   mean {} ms",
            f(&p["p50_ms"]),
            f(&p["p90_ms"]),
            f(&p["p99_ms"]),
            f(&p["mean_ms"])
        );
        println!(
            "    layer runs/run {}   failed layer runs {}   Φ_sync min {} mean {}   {} runs/s",
            f2(&p["layer_runs_per_run"]),
            p["failed_layer_runs"],
            f(&p["phi_sync_min"]),
            f(&p["phi_sync_mean"]),
            f2(&p["runs_per_s"])
        );
        println!(
            "    mean ms/run: create_run {}  execute {}  = in layers {} (capability calls {}) + orchestrator/db {}",
            f(&p["create_run_mean_ms"]),
            f(&p["execute_mean_ms"]),
            f(&p["in_layers_mean_ms"]),
            f(&p["capability_calls_mean_ms"]),
            f(&p["orchestration_mean_ms"])
        );
        let t = &p["slowest_tenth"];
        if t.is_object() {
            println!(
                "    slowest tenth ({} runs): mean {} ms = create_run {} + in layers {} + orchestrator/db {}",
                t["runs"],
                f(&t["mean_ms"]),
                f(&t["create_run_mean_ms"]),
                f(&t["in_layers_mean_ms"]),
                f(&t["orchestration_mean_ms"])
            );
        }
        if let Some(layers) = p["layers"].as_object() {
            let parts: Vec<String> = layers
                .iter()
                .map(|(k, v)| format!("{k} {}×{}", f2(&v["runs_per_run"]), f(&v["mean_ms"])))
                .collect();
            println!("    per layer (runs/run × mean ms): {}", parts.join(", "));
        }
        if let Some(calls) = p["capability_calls"].as_array() {
            for c in calls.iter().take(12) {
                println!(
                    "    {:<42} {:>5}/run × {:>9} µs = {:>7} ms/run",
                    c["call"].as_str().unwrap_or(""),
                    f2(&c["per_run"]),
                    f2(&c["mean_us"]),
                    f(&c["ms_per_run"])
                );
            }
        }
        if let Some(e) = p["first_error"].as_str() {
            println!("    first error: {e}");
        }
    }
}
