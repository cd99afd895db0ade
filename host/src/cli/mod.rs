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

/// Shown under every command's `--help`.
pub const EXIT_CODES: &str = "Exit codes: 0 success; 1 failure (the command ran and failed: an \
error, a plugin that would not load, a failed smoke test, a refused request); 2 usage error \
(unknown command or flag, missing or invalid argument).\n\
--json output shapes: docs/cli-json.md.";

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

impl Cli {
    /// The command tree with [`EXIT_CODES`] under every command's help.
    pub fn command_with_exit_codes() -> clap::Command {
        fn add(c: clap::Command) -> clap::Command {
            c.after_help(EXIT_CODES).mut_subcommands(add)
        }
        add(<Cli as clap::CommandFactory>::command())
    }

    /// Parses the process's arguments; `--help`/`--version` exit 0, a usage error prints
    /// clap's message and exits 2.
    pub fn parse_args() -> Cli {
        let matches = Self::command_with_exit_codes().get_matches();
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// An error and its causes on one line, `outer: cause: root`, leaving out a cause whose
/// text the line already holds (our typed errors put their source in their message, so
/// `{:#}` would print it twice).
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let _ = CONFIG_FILE.set(cli.config.clone());
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
                "cannot list plugins directory {} (plugins.dir / plugins.extra_dirs{}): {e}; \
                 point at another with --config FILE (or STRATA_CONFIG), \
                 STRATA_PLUGINS__DIR=DIR, or run from the project directory",
                absolute(root).display(),
                config_origin(),
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
        "no plugin named {name:?} under {} (plugins.dir / plugins.extra_dirs{}; build it with \
         `strata plugin build`, or point at another directory with STRATA_PLUGINS__DIR=DIR)",
        roots
            .iter()
            .map(|r| absolute(r).display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        config_origin(),
    )
}

/// The path made absolute against the current directory, for messages.
pub(crate) fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The `--config` file of this run (set once by [`run`]), for messages.
static CONFIG_FILE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

/// `" from <config file>"`, or which defaults were used, for messages about paths taken
/// from the configuration.
fn config_origin() -> String {
    let given = CONFIG_FILE.get().cloned().flatten();
    let default = std::path::Path::new(crate::config::DEFAULT_FILE);
    match given {
        Some(c) => format!(" from {}", absolute(&c).display()),
        None if default.exists() => format!(" from {}", absolute(default).display()),
        None => format!(
            " by default: no --config given and no {} here",
            crate::config::DEFAULT_FILE
        ),
    }
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

#[cfg(test)]
mod tests {
    use super::Cli;

    #[test]
    fn an_error_line_names_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read {path}: {source}")]
        struct Read {
            path: String,
            source: std::io::Error,
        }
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(Read {
            path: "a.csv".into(),
            source: io,
        })
        .context("fitting");
        assert_eq!(
            super::error_line(&e),
            "fitting: cannot read a.csv: No such file"
        );
        let plain = anyhow::anyhow!("root").context("middle").context("outer");
        assert_eq!(super::error_line(&plain), "outer: middle: root");
    }

    /// Every visible argument of `cmd` and its subcommands without help, as `path: arg`.
    fn missing_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        let path = format!("{path} {}", cmd.get_name()).trim().to_string();
        if cmd.get_about().is_none() && path != "strata" {
            out.push(format!("{path}: (command)"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{path}: {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                missing_help(sub, &path, out);
            }
        }
    }

    #[test]
    fn every_command_flag_and_argument_has_help() {
        let cmd = Cli::command_with_exit_codes();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        missing_help(&cmd, "", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }

    fn find<'a>(cmd: &'a clap::Command, path: &[&str]) -> &'a clap::Command {
        path.iter().fold(cmd, |c, name| {
            c.find_subcommand(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"))
        })
    }

    #[test]
    fn role_and_kind_list_their_values() {
        let cmd = Cli::command_with_exit_codes();
        let values = |path: &[&str], arg: &str| -> Vec<String> {
            find(&cmd, path)
                .get_arguments()
                .find(|a| a.get_id() == arg)
                .unwrap()
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect()
        };
        assert_eq!(
            values(&["keys", "create"], "role"),
            ["reader", "operator", "admin"]
        );
        assert_eq!(
            values(&["plugin", "new"], "kind"),
            ["scorer", "layer", "agent"]
        );
        assert_eq!(values(&["plugin", "new"], "lang"), ["rust", "python"]);
    }

    #[test]
    fn every_help_page_documents_the_exit_codes() {
        let mut cmd = Cli::command_with_exit_codes();
        let plugin_new = find(&cmd, &["plugin", "new"])
            .clone()
            .render_help()
            .to_string();
        assert!(plugin_new.contains("2 usage error"), "{plugin_new}");
        assert!(cmd.render_help().to_string().contains("0 success"));
    }
}
