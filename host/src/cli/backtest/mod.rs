//! `strata backtest`: score a labelled file (nothing stored) and report how well the
//! scores rank and are calibrated — a table by default, `--json`, `--html FILE`.

pub mod html;
pub mod report;

use super::score::{score_off_runtime, threads};
use crate::config::Config;
use crate::fit::Split;
use crate::input::{self, parse_label, InputError, InputFormat, ReadOptions};
use anyhow::Context;
use report::{InputInfo, Outcome, Report, ScorerInfo};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct BacktestArgs {
    /// Scorer plugin to backtest (its directory under plugins.dir).
    #[arg(long)]
    pub plugin: String,
    /// CSV or JSON Lines file of leads with outcomes.
    #[arg(long)]
    pub input: PathBuf,
    /// Label column; "1"/"true"/"yes"/"won" are positives, "0"/"false"/"no"/"lost"
    /// negatives. Never shown to the plugin.
    #[arg(long, default_value = "Converted")]
    pub label: String,
    /// Input format (default: from the extension).
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// Only the leads a fit held out: the fitted plugin directory (its model.json names
    /// the split), to compare a scorer with the fitted one on the same leads.
    #[arg(long, value_name = "DIR")]
    pub holdout_of: Option<PathBuf>,
    /// Print the report as JSON (schema strata.backtest.v1, docs/backtest.md).
    #[arg(long)]
    pub json: bool,
    /// Also write the report as a self-contained HTML page with ROC, lift and
    /// calibration charts.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub map: super::columns::MapArgs,
}

/// The split a fitted plugin directory's model.json records.
pub fn split_of(dir: &Path) -> anyhow::Result<Split> {
    let path = dir.join("model.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (written by `strata fit`)", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    serde_json::from_value(v["split"].clone())
        .with_context(|| format!("{}: no split recorded", path.display()))
}

pub async fn run(args: BacktestArgs, config: Config) -> anyhow::Result<()> {
    let format = args
        .format
        .unwrap_or_else(|| InputFormat::detect(&args.input));
    let opts = ReadOptions {
        label: Some(args.label.clone()),
        map: args.map.column_map()?,
    };
    // A label column missing from the header is reported as a warning, not an error.
    let mut read = match input::read(&args.input, format, &opts) {
        Err(InputError::MissingLabel { .. }) => input::read(
            &args.input,
            format,
            &ReadOptions {
                label: None,
                ..opts.clone()
            },
        )?,
        r => r?,
    };
    if let Some(dir) = &args.holdout_of {
        let split = split_of(dir)?;
        let keep: Vec<bool> = read.leads.iter().map(|l| split.holds_out(&l.id)).collect();
        let mut k = keep.iter();
        read.leads.retain(|_| *k.next().expect("same length"));
        let mut k = keep.iter();
        read.labels.retain(|_| *k.next().expect("same length"));
    }
    let app = crate::app::App::start(config).await?;
    let plugin = super::load_named(&app.manager, &args.plugin).await?;
    let leads = Arc::new(read.leads);
    let results = score_off_runtime(&plugin, &leads, threads(args.threads)).await?;
    app.shutdown().await;
    let outcomes: Vec<Outcome> = leads
        .iter()
        .zip(&results)
        .enumerate()
        .map(|(i, (lead, r))| Outcome {
            lead_id: &lead.id,
            positive: read
                .labels
                .get(i)
                .and_then(|l| l.as_deref())
                .and_then(parse_label),
            score: r.as_ref().map_err(|e| e.to_string()),
        })
        .collect();
    let report = Report::build(
        ScorerInfo {
            id: plugin.id().to_string(),
            sha256: Some(plugin.sha256.clone()),
        },
        InputInfo {
            path: args.input.display().to_string(),
            label: args.label.clone(),
            holdout_of: args.holdout_of.as_ref().map(|d| d.display().to_string()),
        },
        &outcomes,
    );
    emit(&report, args.json, args.html.as_deref())
}

/// Prints the report (table or JSON) and writes the HTML page if asked.
pub fn emit(report: &Report, json: bool, html_file: Option<&Path>) -> anyhow::Result<()> {
    let table = report::render_table(report);
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{table}");
    }
    if let Some(f) = html_file {
        write_html(report, f)?;
    }
    Ok(())
}

/// Writes the report as a self-contained HTML page.
pub fn write_html(report: &Report, file: &Path) -> anyhow::Result<()> {
    let table = report::render_table(report);
    std::fs::write(file, html::render(report, &table))
        .with_context(|| format!("writing {}", file.display()))?;
    eprintln!("report written to {}", file.display());
    Ok(())
}
