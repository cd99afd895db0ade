//! `strata replay execution ID [--plugin NAME@VERSION] [--json]`: a recorded agent
//! execution or pipeline layer run re-run from its tape, offline (see `challenger::execution_replay`).
//! `strata replay --strategy … --plugin …` (past scores re-scored) stays as it was.

use super::compare::{self, ReplayArgs};
use crate::challenger::execution_replay::{replay_execution, ExecutionReplay};
use crate::config::Config;

/// `strata replay`: past scores of a strategy (`--strategy … --plugin …`) or one recorded
/// agent execution (`replay execution ID`).
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ReplayCommand {
    #[command(subcommand)]
    pub what: Option<ReplayWhat>,
    #[command(flatten)]
    pub scores: Option<ReplayArgs>,
}

#[derive(clap::Subcommand)]
pub enum ReplayWhat {
    /// Re-run a recorded agent execution or pipeline layer run from its tape (its plugin's
    /// grant had `record_executions = true`): no network, no writes; reports where the
    /// calls and the output diverge.
    Execution(ExecutionArgs),
}

#[derive(clap::Args)]
pub struct ExecutionArgs {
    /// The agent execution's id, or the layer run's (`GET /api/v1/pipelines/runs/{id}`
    /// lists them).
    pub id: String,
    /// The version to replay with: `name@version` (or `name`) of an agent or layer in the
    /// plugins directory. Default: the plugin that ran it, at the recorded version.
    #[arg(long)]
    pub plugin: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: ReplayCommand, config: Config) -> anyhow::Result<()> {
    match (cmd.what, cmd.scores) {
        (Some(ReplayWhat::Execution(args)), _) => execution(args, config).await,
        (None, Some(args)) => compare::replay(args, config).await,
        (None, None) => anyhow::bail!(
            "say what to replay: `strata replay --strategy NAME --plugin NAME@VERSION` or \
             `strata replay execution ID`"
        ),
    }
}

async fn execution(args: ExecutionArgs, config: Config) -> anyhow::Result<()> {
    let app = crate::app::App::start(config).await?;
    let r = replay(&app, &args).await;
    app.shutdown().await;
    let r = r?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", render(&r));
    }
    Ok(())
}

async fn replay(app: &crate::app::App, args: &ExecutionArgs) -> anyhow::Result<ExecutionReplay> {
    let tape = app.db.get_execution_tape(&args.id).await?.ok_or_else(|| {
        crate::challenger::execution_replay::ExecutionReplayError::NoTape(args.id.clone())
    })?;
    let wanted = args
        .plugin
        .clone()
        .unwrap_or_else(|| format!("{}@{}", tape.agent, tape.agent_version));
    let (name, version) = match wanted.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (wanted.as_str(), None),
    };
    let plugin = super::load_named(&app.manager, name).await?;
    if let Some(v) = version {
        anyhow::ensure!(
            plugin.version() == v,
            "the plugins directory holds {}, not {name}@{v}",
            plugin.id()
        );
    }
    Ok(replay_execution(&app.db, &args.id, plugin).await?)
}

/// The readable report.
pub fn render(r: &ExecutionReplay) -> String {
    let mut s = format!(
        "replayed {} {} (recorded by {}) with {}: {}\n\
         calls: {} recorded, {} matched, {} not on the tape, {} recorded but not made; \
         {} state writes swallowed; nothing was written\n\
         output: {}\n",
        match r.kind {
            crate::db::TapeKind::Agent => "execution",
            crate::db::TapeKind::Layer => "layer run",
        },
        r.execution_id,
        r.recorded,
        r.replayed,
        if r.same { "same" } else { "diverged" },
        r.calls_recorded,
        r.calls_matched,
        r.calls_unmatched,
        r.calls_not_made,
        r.state_writes_swallowed,
        if r.output_equal {
            "equal to the recorded one".to_string()
        } else {
            format!("differs at {}", r.output_diff.join(", "))
        },
    );
    if let Some(d) = &r.first_divergence {
        let expected = d
            .expected
            .as_ref()
            .map_or("the end of the tape".to_string(), |e| {
                format!("{} {} {}", e.capability, e.operation, e.target)
            });
        s.push_str(&format!(
            "first divergence: call {}: {} {} {} where the tape has {expected}\n",
            d.index, d.actual.capability, d.actual.operation, d.actual.target
        ));
    }
    if let Some(e) = &r.error {
        s.push_str(&format!("the replay failed: {e}\n"));
    }
    s
}
