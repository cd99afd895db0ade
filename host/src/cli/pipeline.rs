//! `strata pipeline run <name> --payload <JSON or @file>`: start a run of a configured
//! pipeline and execute it now, in this process (every plugin loaded from the plugin
//! directories, the MCP servers of the config connected). Prints each layer run, the
//! events, and the run's Φ_sync; exits non-zero when the run did not succeed.

use crate::app::App;
use crate::config::Config;
use crate::db::RunStatus;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum PipelineCommand {
    /// Run a pipeline once, now, and print its layer runs and Φ_sync.
    Run(RunArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// Pipeline name under [pipelines].
    pub name: String,
    /// The trigger event's payload: JSON text, or @path to a JSON file.
    #[arg(long)]
    pub payload: String,
    /// Record side effects instead of executing them.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the run as JSON (the API's run document) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: PipelineCommand, config: Config) -> anyhow::Result<()> {
    let PipelineCommand::Run(args) = cmd;
    let text = match args.payload.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read payload file {path}: {e}"))?,
        None => args.payload.clone(),
    };
    let payload: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("--payload is not JSON: {e}"))?;
    let app = App::start(config).await?;
    // Connect now (failures are logged), so the first layer's MCP call does not spend its
    // deadline waiting for a server process to start.
    app.mcp.connect_all().await;
    let report = app.manager.load_all().await;
    for (dir, e) in &report.failed {
        eprintln!("warning: plugin in {} not loaded: {e}", dir.display());
    }
    let created = app
        .pipelines
        .create_run(&args.name, payload, args.dry_run, None, false)
        .await?;
    let summary = app.pipelines.execute(&created.run.id, None).await?;
    let detail = app
        .db
        .get_run(&summary.run_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("run {} vanished", summary.run_id))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        println!(
            "run {} of {:?}{}",
            detail.run.id,
            detail.run.pipeline,
            if detail.run.dry_run { " (dry run)" } else { "" }
        );
        println!(
            "{:<4} {:<11} {:<14} {:<22} {:<18} {:>9}  detail",
            "#", "container", "layer", "plugin", "topic", "ms"
        );
        for l in &detail.layer_runs {
            let what = match (&l.error, &l.held_back) {
                (Some(e), _) => format!("FAILED: {e}"),
                (None, Some(h)) => format!("held back: {h}"),
                _ => "ok".to_string(),
            };
            println!(
                "{:<4} {:<11} {:<14} {:<22} {:<18} {:>9.2}  {}",
                l.seq,
                l.container,
                l.layer,
                l.plugin.as_deref().unwrap_or("-"),
                l.topic,
                l.duration_ms,
                what.chars().take(160).collect::<String>()
            );
        }
        let topics: Vec<&str> = detail
            .events
            .iter()
            .map(|e| e.event.topic.as_str())
            .collect();
        println!("events: {}", topics.join(" → "));
        println!(
            "status: {}   Φ_sync: {}   layer runs: {} ({} failed){}",
            summary.status.as_str(),
            summary
                .phi_sync
                .map_or_else(|| "-".to_string(), |p| format!("{p:.3}")),
            summary.layer_runs,
            summary.failed_layer_runs,
            summary
                .error
                .as_deref()
                .map(|e| format!("   ({e})"))
                .unwrap_or_default()
        );
    }
    app.mcp.shutdown().await;
    app.audit.flush().await;
    if summary.status != RunStatus::Succeeded {
        anyhow::bail!("run {} ended {}", summary.run_id, summary.status.as_str());
    }
    Ok(())
}
