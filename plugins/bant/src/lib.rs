//! BANT scorer for B2B leads: Budget, Authority, Need and Timeline, plus account fit.
//!
//! Factors (0–100, higher is better): `budget` (budget, annual revenue), `timeline`
//! (free text), `complexity` (employees, industry), `authority` (title) and `fit`
//! (need: pain keywords in the notes, target industry). The value is their weighted sum
//! (see [`WEIGHTS`]), halved for unqualified leads and cut to a fifth for junk. Priority
//! uses the SDK bands: immediate ≥ 85, high ≥ 65, medium ≥ 40, low below.
//!
//! Pure and deterministic: it calls no host function, so the component imports no
//! Strata capability at all.

mod factors;
mod timeline;

use factors::push_fixed;
use strata_sdk::{export_scorer, Lead, LeadStatus, PluginError, Priority, Score, Scorer};

/// Factor weights; they sum to 1.
pub const WEIGHTS: [(&str, f64); 5] = [
    ("budget", 0.25),
    ("authority", 0.20),
    ("fit", 0.25),
    ("timeline", 0.20),
    ("complexity", 0.10),
];

struct Bant;

impl Scorer for Bant {
    fn score(lead: Lead) -> Result<Score, PluginError> {
        Ok(score_lead(&lead))
    }
}

export_scorer!(Bant);

/// Scores one lead; pure, so tests run it natively.
///
/// The reasoning reads "budget 100/100 (×0.25): stated budget 120000. authority ...
/// Weighted total 91.8." It is built in one pre-sized string: each rule appends its
/// explanation to a scratch buffer, which is copied in after the factor's score.
pub fn score_lead(lead: &Lead) -> Score {
    // The rules in the order of `WEIGHTS`.
    let rules: [&dyn Fn(&mut String) -> f64; 5] = [
        &|why| factors::budget(lead.budget, lead.annual_revenue, why),
        &|why| factors::authority(lead.title.as_deref(), why),
        &|why| factors::fit(lead.notes.as_deref(), lead.industry.as_deref(), why),
        &|why| timeline::timeline(lead.timeline.as_deref(), why),
        &|why| factors::complexity(lead.employees, lead.industry.as_deref(), why),
    ];
    let mut reasoning = String::with_capacity(512);
    let mut why = String::with_capacity(256);
    let mut scores = [0.0; 5];
    for (k, (rule, (name, weight))) in rules.iter().zip(WEIGHTS).enumerate() {
        why.clear();
        scores[k] = rule(&mut why);
        if k > 0 {
            reasoning.push_str(". ");
        }
        // "{name} {score:.0}/100 (×{weight:.2}): {why}"
        reasoning.push_str(name);
        reasoning.push(' ');
        push_fixed(&mut reasoning, scores[k], 0);
        reasoning.push_str("/100 (×");
        push_fixed(&mut reasoning, weight, 2);
        reasoning.push_str("): ");
        reasoning.push_str(&why);
    }
    let weighted: f64 = scores.iter().zip(WEIGHTS).map(|(s, (_, w))| s * w).sum();
    let (value, status_note) = match lead.status {
        LeadStatus::Junk => (
            weighted * 0.2,
            " Lead is marked junk: score cut to a fifth.",
        ),
        LeadStatus::Unqualified => (weighted * 0.5, " Lead is marked unqualified: score halved."),
        _ => (weighted, ""),
    };
    reasoning.push_str(". Weighted total ");
    push_fixed(&mut reasoning, value, 1);
    reasoning.push('.');
    reasoning.push_str(status_note);

    let mut builder = Score::builder(value)
        .reasoning(reasoning)
        .action(action(Priority::from_score(value), &scores))
        .confidence(confidence(lead));
    for (score, (name, _)) in scores.iter().zip(WEIGHTS) {
        builder = builder.factor(name, *score);
    }
    builder.build()
}

/// 0.2 with no BANT field, rising by 0.8/7 for each of budget, annual revenue, title,
/// industry, notes, timeline and employees present.
fn confidence(lead: &Lead) -> f64 {
    let text = |t: &Option<String>| t.as_deref().is_some_and(|t| !t.trim().is_empty());
    let present = [
        lead.budget.is_some(),
        lead.annual_revenue.is_some(),
        text(&lead.title),
        text(&lead.industry),
        text(&lead.notes),
        text(&lead.timeline),
        lead.employees.is_some(),
    ];
    0.2 + 0.8 * present.iter().filter(|p| **p).count() as f64 / present.len() as f64
}

/// The next step for the priority band, naming the weakest BANT factor to work on.
fn action(priority: Priority, scores: &[f64; 5]) -> String {
    let weakest = scores
        .iter()
        .zip(WEIGHTS)
        .min_by(|a, b| a.0.total_cmp(b.0))
        .map_or("fit", |(_, (name, _))| name);
    let (before, after) = match priority {
        Priority::Immediate => {
            return "Call within 24 hours: route to a senior AE and book a demo".to_owned()
        }
        Priority::High => ("Contact within 48 hours; confirm ", " on the first call"),
        Priority::Medium => ("Nurture and qualify ", " before spending sales time"),
        Priority::Low => return "Marketing automation only; no sales action".to_owned(),
    };
    [before, weakest, after].concat()
}

#[cfg(test)]
mod tests;
