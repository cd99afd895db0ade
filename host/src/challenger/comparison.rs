//! The comparison of a champion and its challenger over a window of results: agreement,
//! drift, failures, latency, and — on leads whose outcome is known — AUC and lift of
//! both on the same leads with bootstrap intervals. Shared by
//! `GET /api/v1/strategies/{name}/comparison`, `strata compare` and `strata replay`.

use crate::db::challenger_results::ChallengerResult;
use crate::db::challengers::{ChallengerRecord, StrategyEvent};
use crate::domain::Priority;
use crate::evaluation::{self, Confusion, Interval, Summary};
use serde::Serialize;
use std::collections::HashMap;

/// Bootstrap resamples of the outcome intervals.
pub const RESAMPLES: usize = 1000;
/// Seed of the bootstrap: the same window gives the same report.
const SEED: u64 = 0x5747_4154;

/// One side's numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Arm {
    /// `plugin@version`s seen on this side (more than one if it changed in the window).
    pub versions: Vec<String>,
    /// Calls this side ran.
    pub calls: u64,
    /// Calls whose response this side gave.
    pub served: u64,
    /// Failed calls (challenger only): errors other than timeouts.
    pub errors: u64,
    /// Calls stopped by the deadline or the fuel budget (challenger only).
    pub timeouts: u64,
    pub error_rate: Option<f64>,
    pub timeout_rate: Option<f64>,
    /// Latency of its successful calls, microseconds.
    pub latency_us: Option<Summary>,
    /// Its scores (0–100).
    pub scores: Option<Summary>,
}

/// Champion and challenger on the same leads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Agreement {
    /// Calls where both sides scored.
    pub pairs: u64,
    /// Priority agreement: rows champion, columns challenger.
    pub priorities: Confusion,
    /// Challenger score − champion score.
    pub score_difference: Option<Summary>,
    /// Mean |challenger − champion|.
    pub mean_absolute_difference: Option<f64>,
    /// Spearman rank correlation of the two scores.
    pub rank_correlation: Option<f64>,
}

/// One side's quality on leads with a known outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Quality {
    /// ROC AUC with its bootstrap 95% interval.
    pub auc: Option<Interval>,
    /// Positive rate in the top 10% by score ÷ the overall positive rate.
    pub lift_at_10pct: Option<f64>,
}

/// Quality on leads whose outcome is known (both sides scored the same leads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Outcomes {
    /// Distinct leads with both scores and a known outcome (each lead's newest pair).
    pub leads: u64,
    pub positives: u64,
    pub champion: Quality,
    pub challenger: Quality,
    /// Challenger AUC − champion AUC, with a paired bootstrap 95% interval (the same
    /// resampled leads for both): an interval above 0 says the challenger ranks better.
    pub auc_difference: Option<Interval>,
}

/// The whole comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    pub strategy: String,
    /// The attachment now (none: detached or never attached).
    pub attachment: Option<ChallengerRecord>,
    /// Window start and end (ms since the epoch).
    pub since: i64,
    pub until: i64,
    /// Results in the window.
    pub results: u64,
    pub champion: Arm,
    pub challenger: Arm,
    pub agreement: Agreement,
    /// PSI of the challenger's scores against the champion's (0.1 moderate, 0.25 major).
    pub drift_psi: Option<f64>,
    pub outcomes: Outcomes,
    /// The strategy's newest events (attached, rolled-back, promoted, …).
    pub events: Vec<StrategyEvent>,
}

fn rate(n: u64, of: u64) -> Option<f64> {
    (of > 0).then(|| n as f64 / of as f64)
}

fn push_version(v: &mut Vec<String>, id: &str) {
    if !v.iter().any(|x| x == id) {
        v.push(id.to_string());
    }
}

impl Comparison {
    /// Computes the comparison of `results` (oldest first). `outcome` gives a lead's
    /// known outcome (positive or not), `None` when not known yet.
    pub fn compute(
        strategy: &str,
        results: &[ChallengerResult],
        outcome: &HashMap<String, bool>,
        since: i64,
        until: i64,
    ) -> Comparison {
        let mut c = Comparison {
            strategy: strategy.to_string(),
            since,
            until,
            results: results.len() as u64,
            ..Comparison::default()
        };
        let (mut champ_lat, mut chall_lat) = (Vec::new(), Vec::new());
        let (mut champ_scores, mut chall_scores) = (Vec::new(), Vec::new());
        let mut pairs = Vec::new();
        let mut newest_pair: HashMap<&str, usize> = HashMap::new();
        for r in results {
            if let Some(ch) = &r.champion {
                c.champion.calls += 1;
                push_version(&mut c.champion.versions, &ch.id);
                champ_lat.push(ch.duration_us as f64);
                champ_scores.push(ch.score);
            }
            if r.served_by == "champion" {
                c.champion.served += 1;
            } else {
                c.challenger.served += 1;
            }
            match r.challenger_outcome.as_str() {
                "not-run" => {}
                outcome => {
                    c.challenger.calls += 1;
                    push_version(&mut c.challenger.versions, &r.challenger);
                    match outcome {
                        "ok" => {
                            if let Some(us) = r.challenger_us {
                                chall_lat.push(us as f64);
                            }
                        }
                        "timeout" => c.challenger.timeouts += 1,
                        _ => c.challenger.errors += 1,
                    }
                }
            }
            if let Some(s) = r.challenger_score {
                chall_scores.push(s);
            }
            if let (Some(ch), Some(s), Some(p)) =
                (&r.champion, r.challenger_score, &r.challenger_priority)
            {
                let (Ok(a), Ok(b)) = (ch.priority.parse::<Priority>(), p.parse::<Priority>())
                else {
                    continue;
                };
                newest_pair.insert(r.lead_id.as_str(), pairs.len());
                pairs.push((r.lead_id.as_str(), ch.score, s, a, b));
            }
        }
        c.challenger.error_rate = rate(c.challenger.errors, c.challenger.calls);
        c.challenger.timeout_rate = rate(c.challenger.timeouts, c.challenger.calls);
        c.champion.latency_us = Summary::of(&champ_lat);
        c.challenger.latency_us = Summary::of(&chall_lat);
        c.champion.scores = Summary::of(&champ_scores);
        c.challenger.scores = Summary::of(&chall_scores);
        c.drift_psi = evaluation::psi(&champ_scores, &chall_scores);

        let a: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        let b: Vec<f64> = pairs.iter().map(|p| p.2).collect();
        let diff: Vec<f64> = pairs.iter().map(|p| p.2 - p.1).collect();
        c.agreement = Agreement {
            pairs: pairs.len() as u64,
            priorities: Confusion::of(pairs.iter().map(|p| (p.3, p.4))),
            score_difference: Summary::of(&diff),
            mean_absolute_difference: (!diff.is_empty())
                .then(|| diff.iter().map(|d| d.abs()).sum::<f64>() / diff.len() as f64),
            rank_correlation: evaluation::spearman(&a, &b),
        };

        // Outcomes: each lead's newest pair, if its outcome is known.
        let mut labelled: Vec<(f64, f64, bool)> = newest_pair
            .iter()
            .filter_map(|(lead, &i)| outcome.get(*lead).map(|y| (pairs[i].1, pairs[i].2, *y)))
            .collect();
        labelled.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)));
        c.outcomes = outcomes(&labelled);
        c
    }
}

/// Quality of both sides on `(champion score, challenger score, positive)` rows.
pub fn outcomes(rows: &[(f64, f64, bool)]) -> Outcomes {
    let champ: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let chall: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let y: Vec<bool> = rows.iter().map(|r| r.2).collect();
    let sub = |idx: &[usize], s: &[f64]| -> (Vec<f64>, Vec<bool>) {
        idx.iter().map(|&i| (s[i], y[i])).unzip()
    };
    Outcomes {
        leads: rows.len() as u64,
        positives: y.iter().filter(|p| **p).count() as u64,
        champion: Quality {
            auc: evaluation::auc_interval(&champ, &y, RESAMPLES, SEED),
            lift_at_10pct: evaluation::lift(&champ, &y, 0.1),
        },
        challenger: Quality {
            auc: evaluation::auc_interval(&chall, &y, RESAMPLES, SEED),
            lift_at_10pct: evaluation::lift(&chall, &y, 0.1),
        },
        auc_difference: evaluation::bootstrap(rows.len(), RESAMPLES, SEED, |idx| {
            let (a, ya) = sub(idx, &champ);
            let (b, _) = sub(idx, &chall);
            Some(evaluation::auc(&b, &ya)? - evaluation::auc(&a, &ya)?)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::challenger_results::SideResult;
    use crate::db::challengers::ChallengerMode;

    fn row(lead: &str, champ: f64, chall: Option<f64>, outcome: &str) -> ChallengerResult {
        let prio = |s: f64| if s >= 70.0 { "high" } else { "low" }.to_string();
        ChallengerResult {
            strategy: "bant".into(),
            generation: 1,
            mode: ChallengerMode::Shadow,
            source: "api".into(),
            served_by: "champion".into(),
            lead_id: lead.into(),
            input_sha256: String::new(),
            lead_snapshot: "{}".into(),
            champion: Some(SideResult {
                id: "bant@1.0.0".into(),
                sha256: "a".into(),
                score: champ,
                priority: prio(champ),
                duration_us: 100,
            }),
            challenger: "bant@2.0.0".into(),
            challenger_sha256: Some("b".into()),
            challenger_outcome: outcome.into(),
            challenger_score: chall,
            challenger_priority: chall.map(prio),
            challenger_us: chall.map(|_| 200),
            challenger_error: None,
            request_id: None,
            created_at: 0,
        }
    }

    #[test]
    fn counts_pairs_failures_and_agreement() {
        let rows = vec![
            row("a", 80.0, Some(90.0), "ok"),
            row("b", 20.0, Some(75.0), "ok"),
            row("c", 50.0, None, "timeout"),
            row("d", 50.0, None, "error"),
        ];
        let c = Comparison::compute("bant", &rows, &HashMap::new(), 0, 1);
        assert_eq!(c.agreement.pairs, 2);
        assert_eq!(c.challenger.calls, 4);
        assert_eq!((c.challenger.errors, c.challenger.timeouts), (1, 1));
        assert_eq!(c.challenger.error_rate, Some(0.25));
        assert_eq!(c.agreement.priorities.agreement, Some(0.5));
        assert_eq!(c.agreement.mean_absolute_difference, Some(32.5));
        assert_eq!(c.outcomes.leads, 0);
    }

    #[test]
    fn outcome_quality_uses_each_leads_newest_pair() {
        let rows = vec![
            row("a", 10.0, Some(90.0), "ok"),
            row("a", 90.0, Some(95.0), "ok"),
            row("b", 20.0, Some(10.0), "ok"),
            row("c", 30.0, Some(80.0), "ok"),
        ];
        let outcome: HashMap<String, bool> = [("a", true), ("b", false), ("c", false)]
            .map(|(k, v)| (k.to_string(), v))
            .into();
        let c = Comparison::compute("bant", &rows, &outcome, 0, 1);
        assert_eq!((c.outcomes.leads, c.outcomes.positives), (3, 1));
        assert_eq!(c.outcomes.champion.auc.unwrap().value, 1.0);
        assert_eq!(c.outcomes.challenger.auc.unwrap().value, 1.0);
    }
}
