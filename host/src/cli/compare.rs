//! `strata compare NAME` (the champion/challenger comparison read from the database) and
//! `strata replay` (past live traffic of a strategy re-scored offline with another
//! version, nothing written). Both print the same report: readable by default, the
//! [`Comparison`] as JSON with `--json`.

use crate::challenger::comparison::{Arm, Comparison, Quality};
use crate::challenger::replay::{self, ReplayReport};
use crate::config::Config;
use crate::domain::now_ms;
use crate::evaluation::Interval;
use std::fmt::Write as _;

#[derive(clap::Args)]
pub struct CompareArgs {
    /// The strategy: the champion scorer's plugin name.
    pub strategy: String,
    /// Window: results newer than this (`30m`, `24h`, `7d`).
    #[arg(long, default_value = "7d", value_parser = parse_age)]
    pub since: i64,
    /// Print the comparison as JSON (the shape of GET /api/v1/strategies/{name}/comparison).
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The strategy whose stored scores are replayed: a scorer plugin name.
    #[arg(long)]
    pub strategy: String,
    /// The version to replay them with: `name@version` (or `name`) of a plugin in the
    /// plugins directory.
    #[arg(long)]
    pub plugin: String,
    /// Scores newer than this (`30m`, `24h`, `7d`).
    #[arg(long, default_value = "7d", value_parser = parse_age)]
    pub since: i64,
    /// At most this many stored scores, oldest first.
    #[arg(long, default_value_t = 100_000)]
    pub limit: i64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `30m`, `24h`, `7d`, `90s` → milliseconds ago, as the epoch time it names.
fn parse_age(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not an age such as 30m, 24h or 7d"))?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    Ok(now_ms() - n.saturating_mul(ms))
}

pub async fn compare(args: CompareArgs, config: Config) -> anyhow::Result<()> {
    let app = crate::app::App::start(config).await?;
    let c = crate::challenger::report::compare(
        &app.db,
        &app.config.challenger,
        &args.strategy,
        args.since,
    )
    .await;
    app.shutdown().await;
    let c = c?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        print!("{}", render(&c));
    }
    Ok(())
}

pub async fn replay(args: ReplayArgs, config: Config) -> anyhow::Result<()> {
    let app = crate::app::App::start(config).await?;
    let r = run_replay(&app, &args).await;
    app.shutdown().await;
    let r = r?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "replayed {} stored scores of {} with {} ({} from the lead as scored, {} from the lead as stored now, {} skipped: lead gone); nothing was written",
            r.comparison.results,
            args.strategy,
            r.plugin,
            r.sources.from_snapshot,
            r.sources.from_current_lead,
            r.sources.skipped
        );
        print!("{}", render(&r.comparison));
    }
    Ok(())
}

async fn run_replay(app: &crate::app::App, args: &ReplayArgs) -> anyhow::Result<ReplayReport> {
    let (name, version) = match args.plugin.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (args.plugin.as_str(), None),
    };
    let plugin = super::load_named(&app.manager, name).await?;
    if let Some(v) = version {
        anyhow::ensure!(
            plugin.version() == v,
            "the plugins directory holds {}, not {name}@{v}",
            plugin.id()
        );
    }
    let (inputs, sources) =
        replay::stored_inputs(&app.db, &args.strategy, args.since, args.limit).await?;
    anyhow::ensure!(
        !inputs.is_empty(),
        "no stored scores of {} in the window (scores are stored by qualification jobs and `strata score`)",
        args.strategy
    );
    let (p, strategy) = (plugin.clone(), args.strategy.clone());
    let results =
        tokio::task::spawn_blocking(move || replay::replay(&strategy, &p, &inputs)).await?;
    let mut ids: Vec<String> = results.iter().map(|r| r.lead_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let outcome =
        crate::challenger::report::outcomes(&app.db, &app.config.challenger, &ids).await?;
    let comparison = Comparison::compute(&args.strategy, &results, &outcome, args.since, now_ms());
    Ok(ReplayReport {
        plugin: plugin.id().to_string(),
        sources,
        comparison,
    })
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

fn interval(i: &Option<Interval>) -> String {
    match i {
        Some(i) => format!("{:.3} [{:.3}, {:.3}]", i.value, i.low, i.high),
        None => "-".into(),
    }
}

fn arm_line(name: &str, a: &Arm, q: &Quality) -> String {
    format!(
        "{name:<11} {:<24} calls {:>7}  served {:>7}  errors {:>5}  timeouts {:>5}  p50 {:>8} µs  p90 {:>8} µs  mean score {:>6}  AUC {}  lift@10% {}\n",
        a.versions.join(","),
        a.calls,
        a.served,
        a.errors,
        a.timeouts,
        num(a.latency_us.map(|l| l.p50), 0),
        num(a.latency_us.map(|l| l.p90), 0),
        num(a.scores.map(|s| s.mean), 1),
        interval(&q.auc),
        num(q.lift_at_10pct, 2),
    )
}

/// The comparison as a readable report.
pub fn render(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "strategy {}: {} results", c.strategy, c.results);
    if let Some(a) = &c.attachment {
        let _ = writeln!(
            s,
            "challenger {}@{} ({} at share {}, {}{})",
            a.challenger,
            a.challenger_version.as_deref().unwrap_or("live"),
            a.mode.as_str(),
            a.share,
            a.status,
            a.status_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    s.push_str(&arm_line("champion", &c.champion, &c.outcomes.champion));
    s.push_str(&arm_line(
        "challenger",
        &c.challenger,
        &c.outcomes.challenger,
    ));
    let ag = &c.agreement;
    let _ = writeln!(
        s,
        "pairs {}  priority agreement {}  rank correlation {}  mean |difference| {}  drift PSI {}",
        ag.pairs,
        num(ag.priorities.agreement, 3),
        num(ag.rank_correlation, 3),
        num(ag.mean_absolute_difference, 1),
        num(c.drift_psi, 3)
    );
    if ag.pairs > 0 {
        let _ = writeln!(s, "priorities (rows champion, columns challenger):");
        let _ = writeln!(
            s,
            "{:>11} {}",
            "",
            ag.priorities
                .labels
                .iter()
                .map(|l| format!("{l:>10}"))
                .collect::<String>()
        );
        for (label, row) in ag.priorities.labels.iter().zip(&ag.priorities.counts) {
            let _ = writeln!(
                s,
                "{label:>11} {}",
                row.iter().map(|n| format!("{n:>10}")).collect::<String>()
            );
        }
    }
    let o = &c.outcomes;
    let _ = writeln!(
        s,
        "outcomes: {} leads, {} positive; AUC difference (challenger − champion) {}",
        o.leads,
        o.positives,
        interval(&o.auc_difference)
    );
    for e in &c.events {
        let _ = writeln!(
            s,
            "event {} (generation {}) by {}: {}",
            e.kind,
            e.generation,
            e.actor.as_deref().unwrap_or("-"),
            e.detail
        );
    }
    s
}
