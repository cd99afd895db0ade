//! `strata qualify <lead id>...`: run the qualification agent (`[qualify] agent`) on stored
//! leads now, in this process: the agent reads each lead through MCP, asks the LLM (or
//! falls back to its rule-based scorer), writes back through MCP; the score and the
//! execution row are stored. Prints one line per lead.

use crate::app::App;
use crate::config::Config;
use clap::Args;

#[derive(Args)]
pub struct QualifyArgs {
    /// Lead ids (as stored).
    #[arg(required = true)]
    pub lead_ids: Vec<String>,
    /// Agent plugin (default: `[qualify] agent`).
    #[arg(long)]
    pub agent: Option<String>,
}

pub async fn run(args: QualifyArgs, config: Config) -> anyhow::Result<()> {
    let agent_name = args
        .agent
        .clone()
        .or_else(|| config.qualify.agent.clone())
        .ok_or_else(|| {
            anyhow::anyhow!("no agent: pass --agent or set `agent` under [qualify] in the config")
        })?;
    let app = App::start(config).await?;
    app.connect_mcp();
    let agent = super::load_named(&app.manager, &agent_name).await?;
    // The agent's fallback scorer must be live for `scoring` to reach it.
    let fallback = app.config.qualify.fallback_strategy.clone();
    if let Err(e) = super::load_named(&app.manager, &fallback).await {
        eprintln!("warning: fallback scorer {fallback:?} not loaded: {e}");
    }
    let mut failed = 0;
    for id in &args.lead_ids {
        match crate::agents::qualify_with_agent(
            &app.db,
            agent.clone(),
            &app.config.qualify,
            id,
            None,
        )
        .await
        {
            Ok(v) => println!(
                "{id}: {:.1} {} by {}{} (tokens {} in / {} out, MCP tools {})",
                v["score"]["value"].as_f64().unwrap_or_default(),
                v["score"]["priority"].as_str().unwrap_or("?"),
                v["strategy"].as_str().unwrap_or("?"),
                if v["fallback_used"].as_bool() == Some(true) {
                    format!(
                        " — rule-based fallback: {}",
                        v["agent_output"]["fallback_reason"].as_str().unwrap_or("?")
                    )
                } else {
                    String::new()
                },
                v["usage"]["tokens_in"],
                v["usage"]["tokens_out"],
                v["usage"]["mcp_tools"],
            ),
            Err(e) => {
                failed += 1;
                eprintln!("{id}: failed: {e}");
            }
        }
    }
    app.shutdown().await;
    if failed > 0 {
        anyhow::bail!("{failed} of {} leads failed", args.lead_ids.len());
    }
    Ok(())
}
