//! `strata bench`: per-call and load figures, and pipeline runs end to end, measured in
//! one run, printed as a table or JSON (`report`); `strata bench serve`: the HTTP server
//! `bench/load.sh` loads, with the native reference route (`native`). Figures, never
//! assertions: the machine is shared and noisy.

mod measure;
mod native;
mod pipeline;
mod report;

use crate::app::App;
use crate::config::Config;
use crate::domain::Lead;
use crate::input::{self, InputFormat, ReadOptions};
use crate::manifest::Manifest;
use crate::plugins::PluginManager;
use crate::runtime::LoadedPlugin;
use measure::{demo_lead, find_dir, latencies_us, scored, throughput};
use report::{Bulk, Latency, Report, Throughput};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    #[command(flatten)]
    pub figures: FigureArgs,
}

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// `strata serve` plus the native reference route, for `bench/load.sh` (not for
    /// production).
    ///
    /// POST /bench/native-bant takes the body of /api/v1/score and answers it with the BANT
    /// logic compiled into the host (operator key, same middleware), the reference the Wasm
    /// scorer is compared to. `strata serve` has no such route.
    Serve {
        /// Address to bind (default: server.bind).
        #[arg(long)]
        bind: Option<String>,
    },
}

/// The figures `strata bench` measures (no subcommand).
#[derive(clap::Args)]
pub struct FigureArgs {
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
    /// Print the report as one JSON object (the same figures as the table).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(
    args: BenchArgs,
    config: Config,
    config_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    match args.command {
        Some(BenchCommand::Serve { bind }) => serve(bind, config, config_path).await,
        None => {
            let json = args.figures.json;
            let report = figures(args.figures, config).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                report.print();
            }
            Ok(())
        }
    }
}

/// `strata bench serve`: the production service plus the native reference route.
async fn serve(
    bind: Option<String>,
    mut config: Config,
    config_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    if let Some(b) = bind {
        config.server.bind = b;
        config.validate()?;
    }
    tracing::warn!(
        route = native::PATH,
        "bench server: this route scores with BANT compiled into the host; not for production"
    );
    crate::server::serve_with_routes(
        config,
        crate::server::ConfigSource::Cli(config_path),
        None,
        crate::server::shutdown_signal(),
        native::routes(),
    )
    .await
}

/// Measures everything `args` asks for, on a database and compile cache of its own.
async fn figures(args: FigureArgs, mut config: Config) -> anyhow::Result<Report> {
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
    let report = measure_all(&args, &app, &plugins_root, tmp.path(), pipeline_plan).await;
    app.shutdown().await;
    report
}

async fn measure_all(
    args: &FigureArgs,
    app: &App,
    plugins_root: &Path,
    tmp: &Path,
    pipeline_plan: Option<(pipeline::Plan, Config)>,
) -> anyhow::Result<Report> {
    let plugin = super::load_named(&app.manager, &args.plugin).await?;
    let lead = demo_lead();
    let threads = super::score::threads(None);
    let calls = args.calls;
    let (native_call, fresh_instance_call, throughput) =
        call_figures(plugin.clone(), &lead, calls, args.seconds, threads).await?;
    let overhead_call_minimal_plugin = if args.overhead_plugin.join("plugin.toml").is_file() {
        let minimal = app
            .manager
            .load_dir(&args.overhead_plugin)
            .await?
            .plugin()
            .clone();
        let l = lead.clone();
        Some(
            tokio::task::spawn_blocking(move || {
                latencies_us(calls, || scored(minimal.score(&l, None), "overhead scorer"))
            })
            .await??,
        )
    } else {
        None
    };

    let dir = find_dir(plugins_root, &args.plugin)?;
    let manifest = Manifest::load(&dir)?;
    let wasm = std::fs::read(dir.join(&manifest.plugin.component))?;
    let warm_instance_call = warm_call(app, &args.plugin, &manifest, &wasm, &lead, calls).await?;
    let (compile_ms, cached_artifact_load_ms) = compile_figures(app, &wasm).await?;
    let swap_dir = tmp.join("swap").join(&args.plugin);
    let (hot_swap_compile_ms, hot_swap_cached_artifact_ms) =
        swap_figures(app, &dir, &swap_dir, &manifest, &wasm).await?;
    let bulk = if args.bulk_input.exists() {
        Some(bulk_figures(app, &args.bulk_input, &args.bulk_plugin, threads).await?)
    } else {
        None
    };

    // Last, so that the layers and the MCP child cannot disturb the figures above.
    let (mut pipeline, mut pipeline_dry_run) = (None, None);
    if let Some((plan, config)) = pipeline_plan {
        let runs = args.pipeline_runs;
        pipeline = Some(pipeline::measure(config.clone(), &plan, runs, false).await?);
        if !args.no_pipeline_dry_run {
            pipeline_dry_run = Some(pipeline::measure(config, &plan, runs, true).await?);
        }
    }

    Ok(Report {
        plugin: plugin.id().to_string(),
        threads,
        overhead_call_minimal_plugin,
        native_call,
        fresh_instance_call,
        warm_instance_call,
        throughput,
        compile_ms,
        cached_artifact_load_ms,
        hot_swap_compile_ms,
        hot_swap_cached_artifact_ms,
        bulk,
        pipeline,
        pipeline_dry_run,
    })
}

/// The native reference, a fresh instance per call, and throughput on 1 and `threads`
/// threads.
async fn call_figures(
    plugin: Arc<LoadedPlugin>,
    lead: &Lead,
    calls: usize,
    secs: f64,
    threads: usize,
) -> anyhow::Result<(Latency, Latency, Throughput)> {
    let l = lead.clone();
    tokio::task::spawn_blocking(move || {
        let native = latencies_us(calls * 5, || {
            std::hint::black_box(native::bant_score(std::hint::black_box(&l)));
            Ok(())
        })?;
        let fresh = latencies_us(calls, || scored(plugin.score(&l, None), "bench scorer"))?;
        let throughput = Throughput {
            threads,
            one_thread_per_s: throughput(&plugin, &l, 1, secs),
            all_threads_per_s: throughput(&plugin, &l, threads, secs),
        };
        Ok((native, fresh, throughput))
    })
    .await?
}

/// The same scorer with opt-in instance reuse (`reuse_calls`): a warm instance per
/// thread, as the inline lane would use it.
async fn warm_call(
    app: &App,
    name: &str,
    manifest: &Manifest,
    wasm: &[u8],
    lead: &Lead,
    calls: usize,
) -> anyhow::Result<Latency> {
    let mut grant = app
        .manager
        .config()
        .grants
        .get(name)
        .cloned()
        .unwrap_or_default();
    grant.reuse_calls = 1000;
    let rt = app.manager.runtime().clone();
    let (m, w, l) = (manifest.clone(), wasm.to_vec(), lead.clone());
    tokio::task::spawn_blocking(move || {
        let p = rt.prepare(m, &w, Some(&grant), None)?;
        latencies_us(calls, || scored(p.score_inline(&l, None), "bench scorer"))
    })
    .await?
}

/// Compiling a component vs loading its cached compiled artifact, in ms.
async fn compile_figures(app: &App, wasm: &[u8]) -> anyhow::Result<(f64, f64)> {
    let variant = crate::runtime::prepare::with_custom_section(wasm, "compile");
    let sha = crate::runtime::prepare::sha256_hex(&variant);
    let rt = app.manager.runtime().clone();
    tokio::task::spawn_blocking(move || {
        let load = || {
            rt.cache()
                .load(&variant, &sha)
                .map_err(|e| anyhow::anyhow!("compiling the bench scorer failed: {e}"))
        };
        let t = Instant::now();
        load()?;
        let compile = t.elapsed().as_secs_f64() * 1e3;
        rt.cache().forget(&sha);
        let t = Instant::now();
        load()?;
        Ok((compile, t.elapsed().as_secs_f64() * 1e3))
    })
    .await?
}

/// Hot swap, in ms: a new version (new bytes → compile) and a re-deploy of bytes whose
/// compiled artifact is cached.
async fn swap_figures(
    app: &App,
    dir: &Path,
    swap_dir: &Path,
    manifest: &Manifest,
    wasm: &[u8],
) -> anyhow::Result<(f64, f64)> {
    use crate::runtime::prepare::{sha256_hex, with_custom_section};
    std::fs::create_dir_all(swap_dir)?;
    let rt = app.manager.runtime().clone();
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
    std::fs::write(&comp, with_custom_section(wasm, "v1"))?;
    swap_manager.load_dir(swap_dir).await?;
    set_version("v2")?;
    std::fs::write(&comp, with_custom_section(wasm, "v2-new"))?;
    let t = Instant::now();
    swap_manager.load_dir(swap_dir).await?;
    let cold = t.elapsed().as_secs_f64() * 1e3;
    rt.cache()
        .forget(&sha256_hex(&with_custom_section(wasm, "v1")));
    set_version("v1")?;
    std::fs::write(&comp, with_custom_section(wasm, "v1"))?;
    let t = Instant::now();
    swap_manager.load_dir(swap_dir).await?;
    Ok((cold, t.elapsed().as_secs_f64() * 1e3))
}

/// The labelled data set scored through the Wasm plugin and stored in SQLite.
async fn bulk_figures(
    app: &App,
    input: &Path,
    plugin: &str,
    threads: usize,
) -> anyhow::Result<Bulk> {
    let bulk = super::load_named(&app.manager, plugin).await?;
    let read = input::read(
        input,
        InputFormat::detect(input),
        &ReadOptions {
            label: Some("Converted".into()),
            ..Default::default()
        },
    )?;
    let leads = Arc::new(read.leads);
    let t = Instant::now();
    let (b, l) = (bulk.clone(), leads.clone());
    let results =
        tokio::task::spawn_blocking(move || super::score::score_all(&b, &l, threads, None)).await?;
    let score_ms = t.elapsed().as_secs_f64() * 1e3;
    let rows: Vec<_> = leads
        .iter()
        .zip(results)
        .filter_map(|(l, r)| {
            r.ok().map(|s| {
                crate::db::NewScore::new(l.id.clone(), bulk.id(), s).with_sha256(&bulk.sha256)
            })
        })
        .collect();
    let t = Instant::now();
    app.db.record_scores(&leads, &rows).await?;
    let store_ms = t.elapsed().as_secs_f64() * 1e3;
    Ok(Bulk {
        plugin: bulk.id().to_string(),
        leads: leads.len(),
        scored: rows.len(),
        score_ms,
        store_ms,
        total_ms: score_ms + store_ms,
    })
}
