//! `strata fit`: a scorecard plugin fitted on a labelled history — read, guard, fit,
//! report on the holdout, write the plugin directory (manifest with smoke tests, the
//! component carrying the model, model.json for people).

use super::backtest::report::{InputInfo, Outcome, Report, ScorerInfo};
use super::columns::MapArgs;
use crate::domain::{Lead, Score};
use crate::fit::component::{self, sha256_hex, write_atomic};
use crate::fit::guards::ColumnNote;
use crate::fit::{self as fitting, FitOptions, Fitted, Split};
use crate::input::{self, parse_label, InputFormat, ReadOptions};
use anyhow::Context;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct FitArgs {
    /// CSV or JSON Lines file of leads with outcomes (your CRM export).
    #[arg(long)]
    pub input: PathBuf,
    /// Outcome column: "1"/"true"/"yes"/"won" positive, "0"/"false"/"no"/"lost"
    /// negative; leads with another value are left out (and counted).
    #[arg(long)]
    pub label: String,
    /// Share of the leads held out for the report (chosen by a hash of the lead id, so
    /// the same leads every run; `backtest --holdout-of DIR` picks them again).
    #[arg(long, default_value_t = 0.3)]
    pub holdout: f64,
    /// Seed of the holdout split.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Columns never to use, e.g. filled in after sales contact (comma-separated or
    /// repeated); listed in the report as excluded.
    #[arg(long, value_delimiter = ',', value_name = "COLUMN")]
    pub exclude: Vec<String>,
    /// Columns to keep although the leakage guard flags them (comma-separated or
    /// repeated).
    #[arg(long, value_delimiter = ',', value_name = "COLUMN")]
    pub force: Vec<String>,
    /// Plugin name of the fitted scorer.
    #[arg(long, default_value = "fitted-scorer")]
    pub name: String,
    /// Plugin version of the fitted scorer (a new fit of a served plugin needs a new one).
    #[arg(long, default_value = "1.0.0")]
    pub version: String,
    /// Plugin directory to write (default: plugins/NAME). An existing directory is
    /// replaced only if it holds a plugin of the same name.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Input format (default: from the extension).
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// Print the fit and its holdout report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write the holdout report as a self-contained HTML page.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub map: MapArgs,
}

pub fn run(args: FitArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let format = args
        .format
        .unwrap_or_else(|| InputFormat::detect(&args.input));
    let read = input::read(
        &args.input,
        format,
        &ReadOptions {
            label: Some(args.label.clone()),
            map: args.map.column_map()?,
        },
    )?;
    let read_ms = started.elapsed().as_secs_f64() * 1e3;
    let labelled: Vec<(usize, bool)> = read
        .labels
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.as_deref().and_then(parse_label).map(|y| (i, y)))
        .collect();
    let unlabelled = read.leads.len() - labelled.len();
    let leads: Vec<&Lead> = labelled.iter().map(|&(i, _)| &read.leads[i]).collect();
    let sdk_leads: Vec<strata_sdk::Lead> =
        leads.iter().map(|l| strata_sdk::Lead::from(*l)).collect();
    let y: Vec<bool> = labelled.iter().map(|&(_, y)| y).collect();

    let spinner = spinner(&format!("fitting on {} leads", leads.len()));
    let fit_started = Instant::now();
    let opts = FitOptions {
        split: Split {
            seed: args.seed,
            holdout: args.holdout,
        },
        exclude: args.exclude.clone(),
        force: args.force.clone(),
    };
    let fitted = fitting::fit(&sdk_leads, &y, &opts);
    if let Some(s) = &spinner {
        s.finish_and_clear();
    }
    let fitted = fitted?;
    let fit_ms = fit_started.elapsed().as_secs_f64() * 1e3;

    let wasm = component::patch(component::GENERIC, &fitted.model)?;
    let sha256 = sha256_hex(&wasm);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("plugins").join(&args.name));
    let scores: Vec<(usize, Score)> = fitted
        .holdout
        .iter()
        .map(|&i| {
            (
                i,
                scorecard::model::score(&fitted.model, &sdk_leads[i]).into(),
            )
        })
        .collect();
    let outcomes: Vec<Outcome> = scores
        .iter()
        .map(|(i, s)| Outcome {
            lead_id: &leads[*i].id,
            positive: Some(y[*i]),
            score: Ok(s),
        })
        .collect();
    let report = Report::build(
        ScorerInfo {
            id: format!("{}@{}", args.name, args.version),
            sha256: Some(sha256.clone()),
        },
        InputInfo {
            path: args.input.display().to_string(),
            label: args.label.clone(),
            holdout_of: Some(out.display().to_string()),
        },
        &outcomes,
    );

    let smoke = smoke_cases(&scores, &leads);
    write_plugin(&out, &args, &wasm, &fitted, &smoke, &report)?;
    let total_ms = started.elapsed().as_secs_f64() * 1e3;

    if args.json {
        let v = json!({
            "plugin_dir": out.display().to_string(),
            "plugin": format!("{}@{}", args.name, args.version),
            "component_sha256": sha256,
            "leads": read.leads.len(),
            "unlabelled": unlabelled,
            "train": fitted.train.len(),
            "holdout": fitted.holdout.len(),
            "lambda": fitted.lambda,
            "features": fitted.model.features.len(),
            "columns": fitted.notes,
            "timings_ms": {"read": read_ms, "fit": fit_ms, "total": total_ms},
            "report": report,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        if let Some(f) = &args.html {
            super::backtest::write_html(&report, f)?;
        }
    } else {
        print_notes(&fitted.notes, unlabelled, &args.label);
        println!(
            "Fitted {} features on {} leads (penalty {}), held out {}; {:.0} ms to fit, {:.0} ms in all.\n",
            fitted.model.features.len(),
            fitted.train.len(),
            fitted.lambda,
            fitted.holdout.len(),
            fit_ms,
            total_ms
        );
        super::backtest::emit(&report, false, args.html.as_deref())?;
    }
    eprintln!(
        "\nwrote {} ({}@{}, component sha256 {sha256})\nnext: strata plugin test {}; compare with your current scorer on the same leads: \
         strata backtest --plugin CURRENT --input {} --label {:?} --holdout-of {}",
        out.display(),
        args.name,
        args.version,
        out.display(),
        args.input.display(),
        args.label,
        out.display()
    );
    Ok(())
}

fn spinner(msg: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let s = indicatif::ProgressBar::new_spinner();
    s.set_message(msg.to_string());
    s.enable_steady_tick(std::time::Duration::from_millis(100));
    Some(s)
}

fn print_notes(notes: &[ColumnNote], unlabelled: usize, label: &str) {
    if unlabelled > 0 {
        println!("{unlabelled} leads have no outcome in {label:?} and were left out.");
    }
    if notes.is_empty() {
        return;
    }
    println!("Columns not used as they came:");
    for n in notes {
        let action = serde_json::to_value(n.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        println!("  {:<9} {}: {}", action, n.column, n.reason);
    }
    println!();
}

/// Three holdout leads — the highest, the middle and the lowest score — with the score
/// the model gives them (±0.5) and its priority: the component must agree on load.
fn smoke_cases(scores: &[(usize, Score)], leads: &[&Lead]) -> Vec<crate::manifest::SmokeCase> {
    let mut order: Vec<&(usize, Score)> = scores.iter().collect();
    order.sort_by(|a, b| b.1.value.total_cmp(&a.1.value).then(a.0.cmp(&b.0)));
    let picks = [
        ("highest holdout score", order.first()),
        ("middle holdout score", order.get(order.len() / 2)),
        ("lowest holdout score", order.last()),
    ];
    picks
        .into_iter()
        .filter_map(|(name, p)| p.map(|p| (name, p)))
        .map(|(name, (i, s))| crate::manifest::SmokeCase {
            name: name.to_string(),
            input: leads[*i].clone(),
            expect: crate::manifest::SmokeExpect {
                min_score: Some((s.value - 0.5).max(0.0)),
                max_score: Some((s.value + 0.5).min(100.0)),
                priority: vec![s.priority],
            },
        })
        .collect()
}

/// The versioned shape of the `model.json` a fit writes beside its plugin (docs/backtest.md):
/// a new field is added within a version; a field removed or changed in meaning is a new one.
pub const MODEL_SCHEMA: &str = "strata.fit-model.v1";

fn manifest_toml(
    args: &FitArgs,
    sha256: &str,
    smoke: &[crate::manifest::SmokeCase],
) -> anyhow::Result<String> {
    let mut t = toml::Table::new();
    let mut plugin = toml::Table::new();
    plugin.insert("name".into(), args.name.clone().into());
    plugin.insert("version".into(), args.version.clone().into());
    plugin.insert("kind".into(), "scorer".into());
    plugin.insert(
        "description".into(),
        format!(
            "Scorecard fitted by `strata fit` on {} (label {})",
            args.input
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default(),
            args.label
        )
        .into(),
    );
    plugin.insert("component".into(), "plugin.wasm".into());
    plugin.insert("component_sha256".into(), sha256.into());
    t.insert("plugin".into(), plugin.into());
    let mut limits = toml::Table::new();
    limits.insert("memory_mb".into(), 32.into());
    limits.insert("deadline_ms".into(), 100.into());
    t.insert("limits".into(), limits.into());
    t.insert("smoke".into(), toml::Value::try_from(smoke)?);
    Ok(format!(
        "# Written by `strata fit`; the model is inside plugin.wasm (model.json shows it).\n{}",
        toml::to_string(&t)?
    ))
}

fn write_plugin(
    out: &Path,
    args: &FitArgs,
    wasm: &[u8],
    fitted: &Fitted,
    smoke: &[crate::manifest::SmokeCase],
    report: &Report,
) -> anyhow::Result<()> {
    let manifest_path = out.join("plugin.toml");
    if manifest_path.exists() {
        let m = crate::manifest::Manifest::load(out)
            .with_context(|| format!("{} exists and is not a plugin", out.display()))?;
        anyhow::ensure!(
            m.plugin.name == args.name,
            "{} holds the plugin {:?}; choose another --out or --name",
            out.display(),
            m.plugin.name
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let sha256 = sha256_hex(wasm);
    let explained: Vec<serde_json::Value> = fitted
        .model
        .features
        .iter()
        .map(|f| {
            json!({
                "column": f.column,
                "factor": f.factor_name(),
                "solo_auc": fitted.solo_auc.iter().find(|(c, _)| *c == f.column).map(|(_, a)| a),
                "slots": (0..f.slots()).map(|i| json!({"slot": f.slot_label(i), "points": f.weights[i]})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let model_json = json!({
        "schema": MODEL_SCHEMA,
        "fitted_by": "strata fit",
        "plugin": format!("{}@{}", args.name, args.version),
        "component_sha256": sha256,
        "input": args.input.display().to_string(),
        "label": args.label,
        "split": Split { seed: args.seed, holdout: args.holdout },
        "penalty": fitted.lambda,
        "train_leads": fitted.train.len(),
        "holdout_leads": fitted.holdout.len(),
        "holdout_auc": report.auc,
        "columns": fitted.notes,
        "features": explained,
        "model": fitted.model,
    });
    write_atomic(&out.join("plugin.wasm"), wasm)?;
    write_atomic(
        &out.join("model.json"),
        serde_json::to_string_pretty(&model_json)?.as_bytes(),
    )?;
    write_atomic(
        &manifest_path,
        manifest_toml(args, &sha256, smoke)?.as_bytes(),
    )?;
    Ok(())
}
