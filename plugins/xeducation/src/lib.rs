//! Scorer for the X Education lead data set: a log-odds scorecard fitted on
//! `tests/data/leads-xeducation.csv` (see `fit/README.md`).
//!
//! The host passes each CSV column as an attribute named by its header. `Converted` (the
//! label) is never read. Score = 100 × P(convert). Factors, each 100 × sigmoid of the
//! group's summed points (50 = no evidence either way): `engagement`, `source`,
//! `profile`, `intent`. Pure: imports no Strata capability.

mod model;
mod table;

use model::{sigmoid, Contribution, Group};
use strata_sdk::{export_scorer, Lead, LeadExt, PluginError, Priority, Score, Scorer};

/// Contributions smaller than this (in log-odds) are not worth a line of reasoning.
const NOTABLE: f64 = 0.15;

struct XEducation;

impl Scorer for XEducation {
    fn score(lead: Lead) -> Result<Score, PluginError> {
        Ok(score_lead(&lead))
    }
}

export_scorer!(XEducation);

/// Scores one lead; pure, so tests run it natively.
pub fn score_lead(lead: &Lead) -> Score {
    let parts: Vec<Contribution> = table::FEATURES.iter().map(|f| f.evaluate(lead)).collect();
    let logit = table::INTERCEPT + parts.iter().map(|c| c.points).sum::<f64>();
    let p = sigmoid(logit);
    let value = 100.0 * p;

    let mut builder = Score::builder(value);
    for group in Group::ALL {
        let sum: f64 = parts
            .iter()
            .filter(|c| c.feature.group == group)
            .map(|c| c.points)
            .sum();
        builder = builder.factor(group.name(), 100.0 * sigmoid(sum));
    }
    // Confidence: share of columns present, times how far the probability is from a coin toss.
    let coverage = parts.iter().filter(|c| c.value.is_some()).count() as f64 / parts.len() as f64;
    let certainty = 0.5 + 0.5 * (2.0 * p - 1.0).abs();
    builder
        .action(action(Priority::from_score(value), lead))
        .reasoning(reasoning(p, &parts))
        .confidence(coverage * certainty)
        .build()
}

/// The next step for a lead in `priority`, respecting its contact opt-outs.
fn action(priority: Priority, lead: &Lead) -> String {
    let mut text = match priority {
        Priority::Immediate => "Call within the hour: counsellor call, push for enrolment",
        Priority::High => "Call today and send the course brochure",
        Priority::Medium => "Nurture: email and SMS sequence, call if they engage again",
        Priority::Low => "No calls: keep in automated email campaigns",
    }
    .to_owned();
    if lead.attr("Do Not Email") == Some("Yes") {
        text.push_str(" (lead opted out of email)");
    }
    text
}

/// The probability and the biggest contributions either way, with the lead's values.
fn reasoning(p: f64, parts: &[Contribution]) -> String {
    let mut notable: Vec<&Contribution> =
        parts.iter().filter(|c| c.points.abs() >= NOTABLE).collect();
    notable.sort_by(|a, b| b.points.abs().total_cmp(&a.points.abs()));
    let lines: Vec<String> = notable
        .iter()
        .take(6)
        .map(|c| {
            let value = c.value.as_deref().unwrap_or("(missing)");
            format!("{:+.2} {} = {value}", c.points, c.feature.column)
        })
        .collect();
    let why = if lines.is_empty() {
        "no strong signal".to_owned()
    } else {
        lines.join("; ")
    };
    format!(
        "conversion probability {:.0}% (log-odds points: {why})",
        100.0 * p
    )
}

#[cfg(test)]
mod tests;
