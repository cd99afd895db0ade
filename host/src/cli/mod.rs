//! The `strata` command line.

mod backtest;
mod backup;
mod bench;
mod columns;
mod compare;
mod fit;
mod keys;
mod mcp;
mod pipeline;
mod plugin;
mod qualify;
mod remote;
mod replay_execution;
mod score;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Plugin host for AI-assisted CRM work"
)]
pub struct Cli {
    /// Configuration file (default: config/strata.toml if present).
    #[arg(long, short, global = true, env = "STRATA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: json, human, or auto (human on a terminal, JSON lines otherwise).
    #[arg(
        long,
        global = true,
        default_value = "auto",
        value_parser = ["auto", "human", "json"],
        env = "STRATA_LOG_FORMAT"
    )]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Work with plugin crates and components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Score leads from a CSV or JSON Lines file, store and print the scores.
    Score(score::ScoreArgs),
    /// Score a labelled file without storing and report how well the scores rank and
    /// are calibrated (AUC with interval, lift, KS, Brier, calibration, by priority).
    Backtest(backtest::BacktestArgs),
    /// Compare a strategy's champion and challenger (shadow or canary results, known
    /// outcomes) over a window.
    Compare(compare::CompareArgs),
    /// Re-score a strategy's stored scores with another version offline and compare
    /// (nothing is written); `replay execution ID`: re-run a recorded agent execution.
    Replay(replay_execution::ReplayCommand),
    /// Fit a scorecard plugin from a labelled history (CSV or JSON Lines): guards,
    /// regularised logistic regression, calibration, a holdout report, a ready plugin
    /// directory.
    Fit(fit::FitArgs),
    /// Run database migrations.
    Migrate,
    /// Measure call latency, throughput, compile/load and hot-swap times; `bench serve`:
    /// the server the load benchmark drives.
    Bench(bench::BenchArgs),
    /// Run the HTTP service (API, job workers, hot reload) until SIGTERM/SIGINT.
    Serve {
        /// Address to bind (default: server.bind, 127.0.0.1:8003).
        #[arg(long)]
        bind: Option<String>,
        /// First-try mode: load the demo leads (demo/leads.jsonl), create an admin key and
        /// print it with the URL.
        #[arg(long)]
        demo: bool,
    },
    /// Manage API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Run the qualification agent on stored leads now (MCP read, LLM or rule-based
    /// fallback, MCP write-back; score and execution stored).
    Qualify(qualify::QualifyArgs),
    /// Serve Strata's MCP server; inspect the configured MCP servers.
    #[command(subcommand)]
    Mcp(mcp::McpCommand),
    /// Run a business pipeline now (layers, events, Φ_sync).
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCommand),
    /// Copy the SQLite database to FILE while the server runs (SQLite's online backup
    /// API). PostgreSQL: pg_dump (docs/operations.md).
    Backup(backup::BackupArgs),
    /// Put a backup in place of the SQLite database; refused while a server has it open.
    /// The replaced database is kept as <db>.before-restore-<timestamp>.
    Restore(backup::RestoreArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = || crate::config::Config::load(cli.config.as_deref());
    match cli.command {
        Command::Plugin(cmd) => plugin::run(cmd, config).await,
        Command::Score(args) => score::run(args, config()?).await,
        Command::Backtest(args) => backtest::run(args, config()?).await,
        Command::Compare(args) => compare::compare(args, config()?).await,
        Command::Replay(cmd) => replay_execution::run(cmd, config()?).await,
        Command::Fit(args) => fit::run(args),
        Command::Migrate => {
            let cfg = config()?;
            let db = crate::db::Db::connect(&cfg.database.url, &Default::default()).await?;
            db.migrate().await?;
            println!(
                "migrations applied to {}",
                crate::db::redact_url(&cfg.database.url)
            );
            Ok(())
        }
        Command::Bench(args) => bench::run(args, config()?, cli.config.clone()).await,
        Command::Serve { bind, demo } => {
            let mut cfg = config()?;
            if let Some(b) = bind {
                cfg.server.bind = b;
                cfg.validate()?;
            }
            let source = crate::server::ConfigSource::Cli(cli.config.clone());
            if demo {
                return serve_demo(cfg, source).await;
            }
            crate::server::serve(cfg, source, None).await
        }
        Command::Keys(cmd) => keys::run(cmd, config()?).await,
        Command::Qualify(args) => qualify::run(args, config()?).await,
        Command::Mcp(cmd) => mcp::run(cmd, config).await,
        Command::Pipeline(cmd) => pipeline::run(cmd, config()?).await,
        Command::Backup(args) => backup::backup(args, config()?).await,
        Command::Restore(args) => backup::restore(args, config()?).await,
    }
}

/// Loads the named plugin (its directory under the plugins dir) and returns it live.
pub(crate) async fn load_named(
    manager: &crate::plugins::PluginManager,
    name: &str,
) -> anyhow::Result<std::sync::Arc<crate::runtime::LoadedPlugin>> {
    let roots = manager.config().plugins.roots();
    for root in &roots {
        let dirs = crate::plugins::PluginManager::plugin_dirs(root).map_err(|e| {
            anyhow::anyhow!(
                "cannot list plugins directory {} (from plugins.dir / plugins.extra_dirs; \
                 pass --config or run from the project directory): {e}",
                root.display()
            )
        })?;
        for dir in dirs {
            // Another plugin's broken directory is not this command's failure.
            match crate::manifest::Manifest::load(&dir) {
                Ok(m) if m.plugin.name == name => {
                    return Ok(manager.load_dir(&dir).await?.plugin().clone());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "skipping a plugin directory that does not load")
                }
            }
        }
    }
    anyhow::bail!(
        "no plugin named {name:?} under {} (build it with `strata plugin build`)",
        roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `strata serve --demo`: demo leads and an admin key, then serve.
async fn serve_demo(
    cfg: crate::config::Config,
    source: crate::server::ConfigSource,
) -> anyhow::Result<()> {
    let db = crate::db::Db::connect(&cfg.database.url, &Default::default()).await?;
    db.migrate().await?;
    let demo = std::path::Path::new("demo/leads.jsonl");
    if demo.exists() {
        let leads = crate::input::read(demo, crate::input::InputFormat::Json, &Default::default())?;
        db.upsert_leads(&leads.leads).await?;
        eprintln!(
            "loaded {} demo leads from {}",
            leads.leads.len(),
            demo.display()
        );
    }
    let (_, key) =
        crate::server::auth::create_key(&db, "demo-admin", crate::db::Role::Admin).await?;
    db.close().await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Ok(addr) = rx.await {
            println!("Strata is serving at http://{addr}  (docs: http://{addr}/api/docs)");
            println!("admin key (shown once): {key}");
            println!("try: curl -s -X POST -H \"Authorization: Bearer {key}\" http://{addr}/api/v1/leads/qualify/demo-001");
        }
    });
    crate::server::serve(cfg, source, Some(tx)).await
}
