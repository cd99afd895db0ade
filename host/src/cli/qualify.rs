//! `strata qualify <lead id>...`: qualify leads now, in this process, as a qualify job
//! would: each lead is read from the CRM (`[qualify.crm]`) and stored or updated in Strata,
//! judged by the agent (LLM, or its rule-based fallback) or a scorer, its score stored, the
//! verdict written back to the CRM. Prints one line per lead; exits non-zero if any lead
//! failed, including a write-back the CRM refused.

use crate::app::App;
use crate::config::Config;
use clap::Args;

#[derive(Args)]
pub struct QualifyArgs {
    /// Lead ids: as stored in Strata, or as the CRM names them (e.g. CRM-LEAD-2026-00003).
    #[arg(required = true)]
    pub lead_ids: Vec<String>,
    /// Agent or scorer plugin (default: `[qualify] agent`, else `plugins.default_scorer`).
    #[arg(long)]
    pub agent: Option<String>,
}

pub async fn run(args: QualifyArgs, config: Config) -> anyhow::Result<()> {
    let name = config.qualify_strategy(args.agent.as_deref());
    let app = App::start(config).await?;
    app.connect_mcp();
    app.check_crm().await?;
    app.close_orphaned_executions().await;
    let plugin = super::load_named(&app.manager, &name).await?;
    if plugin.kind() == crate::manifest::PluginKind::Agent {
        // The agent's fallback scorer must be live for `scoring` to reach it.
        let fallback = app.config.qualify.fallback_strategy.clone();
        if let Err(e) = super::load_named(&app.manager, &fallback).await {
            eprintln!("warning: fallback scorer {fallback:?} not loaded: {e}");
        }
    }
    let mut failed = 0;
    for id in &args.lead_ids {
        match app.qualify.run(plugin.clone(), id, None).await {
            Ok(v) => println!("{id}: {}", summary(&v)),
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

/// One line: score, priority, who decided, tokens, CRM tools, write-back.
fn summary(v: &serde_json::Value) -> String {
    let mut line = format!(
        "{:.1} {} by {}",
        v["score"]["value"].as_f64().unwrap_or_default(),
        v["score"]["priority"].as_str().unwrap_or("?"),
        v["strategy"].as_str().unwrap_or("?"),
    );
    if v["fallback_used"].as_bool() == Some(true) {
        let why = v["agent_output"]["fallback_reason"].as_str().unwrap_or("?");
        line.push_str(&format!(" — rule-based fallback: {why}"));
    }
    if !v["usage"].is_null() {
        line.push_str(&format!(
            " (tokens {} in / {} out, MCP tools {})",
            v["usage"]["tokens_in"], v["usage"]["tokens_out"], v["usage"]["mcp_tools"]
        ));
    }
    match v["written_back"].as_bool() {
        Some(true) => line.push_str("; written back to the CRM"),
        Some(false) => line.push_str("; NOT written back"),
        None => {}
    }
    line
}
