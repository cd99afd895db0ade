//! `strata backtest`: score a labelled file (nothing stored) and report how well the scores
//! rank the positive label: ROC AUC, lift in the top decile, conversion by priority.

use super::score::{progress_bar, score_all, threads};
use crate::config::Config;
use crate::evaluation::{auc, lift};
use crate::input::{self, InputFormat, ReadOptions};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct BacktestArgs {
    #[arg(long)]
    pub plugin: String,
    #[arg(long)]
    pub input: PathBuf,
    /// Label column; its values "1"/"true"/"yes" are positives. Never shown to the plugin.
    #[arg(long, default_value = "Converted")]
    pub label: String,
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: BacktestArgs, config: Config) -> anyhow::Result<()> {
    let format = args
        .format
        .unwrap_or_else(|| InputFormat::detect(&args.input));
    let app = crate::app::App::start(config).await?;
    let plugin = super::load_named(&app.manager, &args.plugin).await?;
    let read = input::read(
        &args.input,
        format,
        &ReadOptions {
            label: Some(args.label.clone()),
            ..Default::default()
        },
    )?;
    let positive: Vec<bool> = read
        .labels
        .iter()
        .map(|l| {
            matches!(
                l.as_deref().map(str::to_ascii_lowercase).as_deref(),
                Some("1" | "true" | "yes")
            )
        })
        .collect();
    let leads = Arc::new(read.leads);
    let (p, l) = (plugin.clone(), leads.clone());
    let results = tokio::task::spawn_blocking(move || {
        let pb = progress_bar(l.len());
        let r = score_all(&p, &l, threads(None), pb.as_ref());
        if let Some(pb) = pb {
            pb.finish_and_clear();
        }
        r
    })
    .await?;
    let mut scores = Vec::new();
    let mut labels = Vec::new();
    let mut by_priority = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    let mut failed = 0;
    for (r, pos) in results.iter().zip(&positive) {
        match r {
            Ok(s) => {
                scores.push(s.value);
                labels.push(*pos);
                let e = by_priority.entry(s.priority.as_str()).or_default();
                e.0 += 1;
                e.1 += *pos as usize;
            }
            Err(_) => failed += 1,
        }
    }
    let report = serde_json::json!({
        "plugin": plugin.id(),
        "leads": leads.len(),
        "failed": failed,
        "positives": labels.iter().filter(|p| **p).count(),
        "auc": auc(&scores, &labels),
        "lift_top_10pct": lift(&scores, &labels, 0.1),
        "lift_top_20pct": lift(&scores, &labels, 0.2),
        "by_priority": by_priority.iter().map(|(k, (n, p))| (k.to_string(), serde_json::json!({
            "leads": n, "positives": p, "rate": *p as f64 / (*n).max(1) as f64
        }))).collect::<serde_json::Map<_, _>>(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    app.shutdown().await;
    Ok(())
}
