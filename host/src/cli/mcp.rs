//! `strata mcp …`: serve Strata's own MCP server; inspect the configured MCP servers.

use clap::{Args, Subcommand};
use std::net::SocketAddr;

#[derive(Subcommand)]
pub enum McpCommand {
    /// Serve Strata's MCP server (lead tools over the database) on stdio or HTTP.
    Serve(ServeArgs),
    /// Connect to a configured MCP server ([mcp.servers.<name>]) and list its tools.
    Tools {
        /// The server's name in [mcp.servers].
        server: String,
    },
    /// Connect to and probe every configured MCP server; print their status as JSON.
    Status,
}

#[derive(Args)]
pub struct ServeArgs {
    /// `stdio` (stdout carries the protocol; logs go to stderr) or `http`
    /// (streamable HTTP at http://<bind>/mcp; every request needs an operator API key).
    #[arg(long, default_value = "stdio", value_parser = ["stdio", "http"])]
    pub transport: String,
    /// Address for `--transport http`.
    #[arg(long, default_value = "127.0.0.1:8004")]
    pub bind: SocketAddr,
}

pub async fn run(
    cmd: McpCommand,
    config: impl Fn() -> Result<crate::config::Config, crate::config::ConfigError>,
) -> anyhow::Result<()> {
    match cmd {
        McpCommand::Serve(args) => serve(args, config()?).await,
        McpCommand::Tools { server } => {
            let cfg = config()?;
            cfg.mcp.validate().map_err(anyhow::Error::msg)?;
            let (manager, db) = manager(&cfg).await?;
            let tools = manager.list_tools(&server).await;
            manager.shutdown().await;
            if let Some(db) = db {
                db.close().await;
            }
            let tools = tools?;
            for t in &tools {
                println!(
                    "{}\t{}",
                    t.name,
                    t.description.as_deref().unwrap_or("").replace('\n', " ")
                );
            }
            eprintln!("{} tools on MCP server {server:?}", tools.len());
            Ok(())
        }
        McpCommand::Status => {
            let cfg = config()?;
            cfg.mcp.validate().map_err(anyhow::Error::msg)?;
            let (manager, db) = manager(&cfg).await?;
            manager.check_all().await; // connects, then probes (tools/list) for latency
            let status = manager.status();
            manager.shutdown().await;
            if let Some(db) = db {
                db.close().await;
            }
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(())
        }
    }
}

/// The MCP client manager of config; with a `builtin` server, on the configured database.
async fn manager(
    cfg: &crate::config::Config,
) -> anyhow::Result<(
    std::sync::Arc<crate::mcp::McpManager>,
    Option<crate::db::Db>,
)> {
    let builtin = cfg
        .mcp
        .servers
        .values()
        .any(|s| s.transport == crate::mcp::McpTransport::Builtin);
    if !builtin {
        return Ok((crate::mcp::McpManager::new(&cfg.mcp), None));
    }
    let db = crate::db::Db::connect(&cfg.database.url, &Default::default()).await?;
    db.migrate().await?;
    let crm =
        crate::mcp::BuiltinCrm::new(db.clone(), crate::crm::mcp::ServeOptions::from_config(cfg));
    Ok((
        crate::mcp::McpManager::with_builtin(&cfg.mcp, Some(crm)),
        Some(db),
    ))
}

async fn serve(args: ServeArgs, cfg: crate::config::Config) -> anyhow::Result<()> {
    let db = crate::db::Db::connect(&cfg.database.url, &Default::default()).await?;
    db.migrate().await?;
    let opts = crate::crm::mcp::ServeOptions::from_config(&cfg);
    let result = match args.transport.as_str() {
        "http" => {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let (addr, task) =
                crate::server::mcp_http::serve_http_with(db.clone(), opts, args.bind, async {
                    let _ = rx.await;
                })
                .await?;
            eprintln!(
                "Strata MCP server at http://{addr}/mcp (streamable HTTP); clients send \
                 `Authorization: Bearer <key>` with an operator key \
                 (`strata keys create --role operator`); Ctrl-C stops it"
            );
            crate::server::shutdown_signal().await;
            let _ = tx.send(());
            let _ = task.await;
            Ok(())
        }
        _ => crate::crm::mcp::serve_stdio_with(db.clone(), opts).await,
    };
    db.close().await;
    result
}
