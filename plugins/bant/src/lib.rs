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

use factors::fixed;

use factors::Rated;
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
pub fn score_lead(lead: &Lead) -> Score {
    let rated: [Rated; 5] = [
        factors::budget(lead.budget, lead.annual_revenue),
        factors::authority(lead.title.as_deref()),
        factors::fit(lead.notes.as_deref(), lead.industry.as_deref()),
        timeline::timeline(lead.timeline.as_deref()),
        factors::complexity(lead.employees, lead.industry.as_deref()),
    ];
    let weighted: f64 = rated
        .iter()
        .zip(WEIGHTS)
        .map(|(r, (_, w))| r.score * w)
        .sum();
    let (value, status_note) = match lead.status {
        LeadStatus::Junk => (
            weighted * 0.2,
            " Lead is marked junk: score cut to a fifth.",
        ),
        LeadStatus::Unqualified => (weighted * 0.5, " Lead is marked unqualified: score halved."),
        _ => (weighted, ""),
    };
    let reasoning = rated
        .iter()
        .zip(WEIGHTS)
        .map(|(r, (name, w))| {
            format!(
                "{name} {}/100 (×{}): {}",
                fixed(r.score, 0),
                fixed(w, 2),
                r.why
            )
        })
        .collect::<Vec<_>>()
        .join(". ");

    let mut builder = Score::builder(value)
        .reasoning(format!(
            "{reasoning}. Weighted total {}.{status_note}",
            fixed(value, 1)
        ))
        .action(action(Priority::from_score(value), &rated))
        .confidence(confidence(lead));
    for (r, (name, _)) in rated.iter().zip(WEIGHTS) {
        builder = builder.factor(name, r.score);
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
fn action(priority: Priority, rated: &[Rated; 5]) -> String {
    let weakest = rated
        .iter()
        .zip(WEIGHTS)
        .min_by(|a, b| a.0.score.total_cmp(&b.0.score))
        .map_or("fit", |(_, (name, _))| name);
    match priority {
        Priority::Immediate => {
            "Call within 24 hours: route to a senior AE and book a demo".to_owned()
        }
        Priority::High => format!("Contact within 48 hours; confirm {weakest} on the first call"),
        Priority::Medium => format!("Nurture and qualify {weakest} before spending sales time"),
        Priority::Low => "Marketing automation only; no sales action".to_owned(),
    }
}

#[cfg(test)]
mod tests;
