//! `strata backtest`: score a labelled file (nothing stored) and report how well the scores
//! rank the positive label: ROC AUC, lift in the top decile, conversion by priority.

use super::score::{progress_bar, score_all, threads};
use crate::config::Config;
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

/// ROC AUC by the rank-sum method, ties counted half.
pub fn auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&k| positive[idx[k]]).count() as f64 * avg_rank;
        i = j + 1;
    }
    let pos = positive.iter().filter(|p| **p).count() as f64;
    let neg = positive.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Positive rate in the top `fraction` by score ÷ overall positive rate.
pub fn lift(scores: &[f64], positive: &[bool], fraction: f64) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let n = ((scores.len() as f64 * fraction).ceil() as usize).max(1);
    let top = idx[..n.min(idx.len())]
        .iter()
        .filter(|&&i| positive[i])
        .count() as f64
        / n as f64;
    let base = positive.iter().filter(|p| **p).count() as f64 / positive.len().max(1) as f64;
    (base > 0.0).then(|| top / base)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_is_one_for_perfect_ranking_and_half_for_ties() {
        assert_eq!(
            auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auc(&[0.5, 0.5, 0.5, 0.5], &[false, true, false, true]),
            Some(0.5)
        );
        assert_eq!(auc(&[0.9, 0.1], &[false, true]), Some(0.0));
        assert_eq!(auc(&[1.0], &[true]), None);
    }

    #[test]
    fn lift_compares_top_fraction_to_base_rate() {
        let s = [0.9, 0.8, 0.1, 0.2];
        let p = [true, false, false, false];
        assert_eq!(lift(&s, &p, 0.25), Some(4.0));
    }
}
