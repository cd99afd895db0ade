//! The backtest report: every measure of `crate::evaluation` over one scorer's scores
//! of a labelled file, the warnings a reader must not miss, the readable table, and the
//! `--json` shape (`strata.backtest.v1`, documented in docs/backtest.md — add fields,
//! never rename or remove them).

use crate::domain::{Priority, Score};
use crate::evaluation::{
    auc_interval, brier, calibration_error, calibration_table, ks, lift, CalibrationBin, Interval,
    PRIORITIES,
};
use serde::Serialize;
use std::fmt::Write;

pub const SCHEMA: &str = "strata.backtest.v1";
/// Bootstrap resamples of the AUC interval, and their seed (reports are reproducible).
pub const RESAMPLES: usize = 1000;
pub const SEED: u64 = 7;
/// One score given to more than this share of the leads is a warning.
pub const DOMINANT_SHARE: f64 = 0.5;

#[derive(Debug, Clone, Serialize)]
pub struct ScorerInfo {
    /// name@version
    pub id: String,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputInfo {
    pub path: String,
    pub label: String,
    /// The fitted plugin directory whose holdout was selected (`--holdout-of`), if any.
    pub holdout_of: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lift {
    pub top_10pct: Option<f64>,
    pub top_20pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PriorityRow {
    pub priority: String,
    pub leads: usize,
    pub positives: usize,
    /// positives ÷ leads; `null` with no leads.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub lead_id: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub scorer: ScorerInfo,
    pub input: InputInfo,
    /// Leads read.
    pub leads: usize,
    /// Leads whose label reads as an outcome.
    pub labelled: usize,
    /// Labelled leads scored (the measures are over these).
    pub scored: usize,
    pub failed: usize,
    pub positives: usize,
    pub base_rate: Option<f64>,
    pub auc: Option<Interval>,
    pub lift: Lift,
    pub ks: Option<f64>,
    /// Brier score of score ÷ 100 read as a probability.
    pub brier: Option<f64>,
    pub calibration: Vec<CalibrationBin>,
    pub calibration_error: Option<f64>,
    pub by_priority: Vec<PriorityRow>,
    /// The first ten failed calls.
    pub failures: Vec<Failure>,
    pub warnings: Vec<String>,
    /// The measured scores and outcomes (for the charts), not in the JSON.
    #[serde(skip)]
    pub points: Vec<(f64, bool)>,
}

/// One lead's part in a backtest: its id, its outcome (if the label reads as one) and
/// its score or why the call failed.
pub struct Outcome<'a> {
    pub lead_id: &'a str,
    pub positive: Option<bool>,
    pub score: Result<&'a Score, String>,
}

impl Report {
    pub fn build(scorer: ScorerInfo, input: InputInfo, outcomes: &[Outcome]) -> Report {
        let leads = outcomes.len();
        let labelled = outcomes.iter().filter(|o| o.positive.is_some()).count();
        let mut failures = Vec::new();
        let mut failed = 0;
        let mut points = Vec::new();
        let mut priorities = Vec::new();
        for o in outcomes {
            match (&o.score, o.positive) {
                (Err(e), _) => {
                    failed += 1;
                    if failures.len() < 10 {
                        failures.push(Failure {
                            lead_id: o.lead_id.to_string(),
                            error: e.clone(),
                        });
                    }
                }
                (Ok(s), Some(p)) => {
                    points.push((s.value, p));
                    priorities.push((s.priority, p));
                }
                (Ok(_), None) => {}
            }
        }
        let (scores, positive): (Vec<f64>, Vec<bool>) = points.iter().copied().unzip();
        let positives = positive.iter().filter(|p| **p).count();
        let probabilities: Vec<f64> = scores.iter().map(|s| s / 100.0).collect();
        let calibration = calibration_table(&scores, &positive, 10);
        let mut r = Report {
            schema: SCHEMA,
            scorer,
            input,
            leads,
            labelled,
            scored: scores.len(),
            failed,
            positives,
            base_rate: (!scores.is_empty()).then(|| positives as f64 / scores.len() as f64),
            auc: auc_interval(&scores, &positive, RESAMPLES, SEED),
            lift: Lift {
                top_10pct: lift(&scores, &positive, 0.1),
                top_20pct: lift(&scores, &positive, 0.2),
            },
            ks: ks(&scores, &positive),
            brier: brier(&probabilities, &positive),
            calibration_error: calibration_error(&calibration),
            calibration,
            by_priority: by_priority(&priorities),
            failures,
            warnings: Vec::new(),
            points,
        };
        r.warnings = warnings(&r, &scores);
        r
    }
}

fn by_priority(pairs: &[(Priority, bool)]) -> Vec<PriorityRow> {
    PRIORITIES
        .iter()
        .map(|p| {
            let leads = pairs.iter().filter(|(q, _)| q == p).count();
            let positives = pairs.iter().filter(|(q, y)| q == p && *y).count();
            PriorityRow {
                priority: p.as_str().to_string(),
                leads,
                positives,
                rate: (leads > 0).then(|| positives as f64 / leads as f64),
            }
        })
        .collect()
}

fn warnings(r: &Report, scores: &[f64]) -> Vec<String> {
    let mut w = Vec::new();
    let label = &r.input.label;
    if r.labelled == 0 {
        w.push(format!(
            "no lead has an outcome in label column {label:?} (missing, or values not read \
             as outcomes: 1/0, true/false, yes/no, won/lost): nothing can be measured"
        ));
    } else if r.labelled < r.leads {
        w.push(format!(
            "{} of {} leads have no outcome in {label:?} and are left out",
            r.leads - r.labelled,
            r.leads
        ));
    }
    if r.scored > 0 && (r.positives == 0 || r.positives == r.scored) {
        w.push(format!(
            "the label {label:?} is constant (every scored lead is {}): AUC, KS and lift are undefined",
            if r.positives == 0 { "negative" } else { "positive" }
        ));
    }
    if let Some((value, count)) = most_common(scores) {
        if count == scores.len() && scores.len() > 1 {
            w.push(format!(
                "every lead got the same score ({value}): the scorer does not rank leads at all"
            ));
        } else if count as f64 > DOMINANT_SHARE * scores.len() as f64 {
            w.push(format!(
                "one score ({value}) was given to {count} of {} leads ({:.0}%): the scorer hardly ranks",
                scores.len(),
                100.0 * count as f64 / scores.len() as f64
            ));
        }
    }
    if r.failed > 0 {
        w.push(format!(
            "{} of {} calls failed; the measures leave those leads out (first: {})",
            r.failed,
            r.leads,
            r.failures
                .first()
                .map(|f| format!("{}: {}", f.lead_id, f.error))
                .unwrap_or_default()
        ));
    }
    w
}

/// The most frequent score and how often it occurs.
fn most_common(scores: &[f64]) -> Option<(f64, usize)> {
    let mut v = scores.to_vec();
    v.sort_by(f64::total_cmp);
    let mut best: Option<(f64, usize)> = None;
    let mut i = 0;
    while i < v.len() {
        let j = v[i..].iter().take_while(|x| **x == v[i]).count();
        if best.is_none_or(|(_, n)| j > n) {
            best = Some((v[i], j));
        }
        i += j;
    }
    best
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.digits$}"))
}

/// The report as a table for people.
pub fn render_table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Backtest of {} on {}", r.scorer.id, r.input.path);
    if let Some(h) = &r.input.holdout_of {
        let _ = writeln!(s, "  leads: the holdout of the fit in {h}");
    }
    let _ = writeln!(
        s,
        "  {} leads, {} with an outcome in {:?}, {} scored, {} failed; {} positive (base rate {})",
        r.leads,
        r.labelled,
        r.input.label,
        r.scored,
        r.failed,
        r.positives,
        r.base_rate
            .map_or("n/a".into(), |b| format!("{:.1}%", 100.0 * b))
    );
    for w in &r.warnings {
        let _ = writeln!(s, "  WARNING: {w}");
    }
    let _ = writeln!(s);
    let auc = r.auc.map_or("n/a".to_string(), |a| {
        format!("{:.3}  (95% CI {:.3} – {:.3})", a.value, a.low, a.high)
    });
    let rows = [
        ("AUC", auc),
        ("lift at 10%", opt(r.lift.top_10pct, 2)),
        ("lift at 20%", opt(r.lift.top_20pct, 2)),
        ("KS", opt(r.ks, 3)),
        ("Brier score", opt(r.brier, 4)),
        ("calibration error", opt(r.calibration_error, 3)),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "  {k:<18} {v}");
    }
    let _ = writeln!(
        s,
        "\n  Calibration by decile (score ÷ 100 vs. observed rate)"
    );
    let _ = writeln!(
        s,
        "  {:>4} {:>6} {:>15} {:>10} {:>9}",
        "bin", "leads", "scores", "predicted", "observed"
    );
    for b in &r.calibration {
        let _ = writeln!(
            s,
            "  {:>4} {:>6} {:>7.1} – {:<5.1} {:>9.1}% {:>8.1}%",
            b.bin,
            b.leads,
            b.min_score,
            b.max_score,
            100.0 * b.predicted,
            100.0 * b.observed
        );
    }
    let _ = writeln!(s, "\n  By priority");
    let _ = writeln!(
        s,
        "  {:<10} {:>6} {:>9} {:>7}",
        "priority", "leads", "positive", "rate"
    );
    for p in &r.by_priority {
        let _ = writeln!(
            s,
            "  {:<10} {:>6} {:>9} {:>7}",
            p.priority,
            p.leads,
            p.positives,
            p.rate.map_or("–".into(), |x| format!("{:.1}%", 100.0 * x))
        );
    }
    if !r.failures.is_empty() {
        let _ = writeln!(s, "\n  Failed calls (first {})", r.failures.len());
        for f in &r.failures {
            let _ = writeln!(s, "  {}: {}", f.lead_id, f.error);
        }
    }
    s
}

#[cfg(test)]
mod tests;
