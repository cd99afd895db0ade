//! The fitted model and how it scores one lead. Shared by the component and by the host
//! (`strata fit` encodes its training data with [`Feature::slot`] and computes the smoke
//! tests' expectations with [`score`]), so both read a lead the same way.

use serde::{Deserialize, Serialize};
use strata_sdk::{Lead, LeadExt, Priority, Score};

/// Format of [`Model`]; a component refuses another.
pub const FORMAT: u32 = 1;

/// A scorecard: log-odds = `intercept` + one weight per feature (the weight of the slot
/// the lead's value falls in); probability = sigmoid(`platt.a` × log-odds + `platt.b`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub format: u32,
    pub intercept: f64,
    pub platt: Platt,
    pub features: Vec<Feature>,
}

/// Platt scaling of the log-odds, fitted on data the weights were not fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

/// One input column with its slots and their weights (log-odds points). Weights are
/// centred: the training leads' mean contribution of each feature is 0, so a weight says
/// how much a value moves a lead away from the average lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// A typed lead field (`budget`, `employees`, `annual_revenue`, `timeline`, `title`,
    /// `industry`, `source`, `status`, `company`) or an attribute's name.
    pub column: String,
    /// Strata factor this feature reports under, when one applies (`budget`,
    /// `timeline`, `complexity`, `authority`, `fit`); else its own column name.
    pub factor: Option<String>,
    pub kind: Kind,
    /// One weight per slot (see [`Feature::slots`]).
    pub weights: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kind {
    /// Bins `(-inf, e0], (e0, e1], …, (e_last, inf)`, then a slot for missing.
    Numeric { edges: Vec<f64> },
    /// One slot per level, then "other" (rare or unseen levels), then missing.
    Categorical { levels: Vec<String> },
}

/// The slot a lead's value falls in, and the value as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub index: usize,
    pub value: Option<String>,
}

/// A column's value for a lead: the typed field of that name, else the attribute
/// (absent, empty and `Select` are missing, as [`LeadExt::attr`] reads them).
pub fn read(lead: &Lead, column: &str) -> Option<String> {
    let num = |v: Option<f64>| v.filter(|v| v.is_finite()).map(|v| v.to_string());
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    match column {
        "budget" => num(lead.budget),
        "annual_revenue" => num(lead.annual_revenue),
        "employees" => lead.employees.map(|e| e.to_string()),
        "timeline" => text(&lead.timeline),
        "title" => text(&lead.title),
        "industry" => text(&lead.industry),
        "source" => text(&lead.source),
        "company" => text(&lead.company),
        "status" => Some(strata_sdk::layer::status_name(lead.status).to_string()),
        _ => lead.attr(column).map(str::to_string),
    }
}

/// The Strata factor a typed field reports under.
pub fn strata_factor(column: &str) -> Option<&'static str> {
    Some(match column {
        "budget" | "annual_revenue" => "budget",
        "timeline" => "timeline",
        "employees" => "complexity",
        "title" => "authority",
        "industry" => "fit",
        _ => return None,
    })
}

impl Feature {
    /// Number of slots: bins or levels, plus "other" for categories, plus missing.
    pub fn slots(&self) -> usize {
        match &self.kind {
            Kind::Numeric { edges } => edges.len() + 2,
            Kind::Categorical { levels } => levels.len() + 2,
        }
    }

    /// Where a value falls; `None` is missing.
    pub fn slot_of(&self, value: Option<&str>) -> usize {
        let missing = self.slots() - 1;
        let Some(v) = value else { return missing };
        match &self.kind {
            Kind::Numeric { edges } => match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => edges.partition_point(|e| x > *e),
                _ => missing,
            },
            Kind::Categorical { levels } => {
                levels.iter().position(|l| l == v).unwrap_or(levels.len())
            }
        }
    }

    pub fn slot(&self, lead: &Lead) -> Slot {
        let value = read(lead, &self.column);
        Slot {
            index: self.slot_of(value.as_deref()),
            value,
        }
    }

    /// A slot described for people: `≤ 3`, `3 – 7`, `> 7`, a level, `(other)`, `(missing)`.
    pub fn slot_label(&self, index: usize) -> String {
        if index + 1 == self.slots() {
            return "(missing)".into();
        }
        match &self.kind {
            Kind::Numeric { edges } => match index {
                0 => format!("≤ {}", edges[0]),
                i if i == edges.len() => format!("> {}", edges[i - 1]),
                i => format!("{} – {}", edges[i - 1], edges[i]),
            },
            Kind::Categorical { levels } => levels
                .get(index)
                .cloned()
                .unwrap_or_else(|| "(other)".into()),
        }
    }

    /// This feature's reporting name: its Strata factor or its column.
    pub fn factor_name(&self) -> &str {
        self.factor.as_deref().unwrap_or(&self.column)
    }
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// One feature's part in a lead's score.
#[derive(Debug, Clone)]
pub struct Contribution<'m> {
    pub feature: &'m Feature,
    pub slot: Slot,
    pub points: f64,
}

/// Contributions smaller than this (log-odds) are not worth a line of reasoning.
pub const NOTABLE: f64 = 0.05;
/// At most this many contributions each way in the reasoning.
pub const REASONS_EACH_WAY: usize = 3;
/// At most this many factors in a score (the runtime accepts 32).
pub const MAX_FACTORS: usize = 16;

impl Model {
    pub fn contributions(&self, lead: &Lead) -> Vec<Contribution<'_>> {
        self.features
            .iter()
            .map(|f| {
                let slot = f.slot(lead);
                let points = f.weights.get(slot.index).copied().unwrap_or(0.0);
                Contribution {
                    feature: f,
                    slot,
                    points,
                }
            })
            .collect()
    }

    /// Calibrated probability of the positive outcome.
    pub fn probability(&self, parts: &[Contribution]) -> f64 {
        let logit = self.intercept + parts.iter().map(|c| c.points).sum::<f64>();
        sigmoid(self.platt.a * logit + self.platt.b)
    }
}

/// Scores one lead: value = 100 × calibrated probability; reasoning names the largest
/// contributions either way; factors are 100 × sigmoid(points) per reporting name.
pub fn score(model: &Model, lead: &Lead) -> Score {
    let parts = model.contributions(lead);
    let p = model.probability(&parts);
    let value = 100.0 * p;
    let priority = Priority::from_score(value);

    // Factors: Strata's names first (summed over their features), then the columns
    // with the largest weights' spread, up to MAX_FACTORS.
    let mut factors: Vec<(String, f64)> = Vec::new();
    for c in &parts {
        let name = c.feature.factor_name();
        match factors.iter_mut().find(|(n, _)| n == name) {
            Some((_, sum)) => *sum += c.points,
            None => factors.push((name.to_string(), c.points)),
        }
    }
    factors.sort_by(|a, b| {
        let named = |n: &str| strata_factor(n).is_some() || is_strata_factor(n);
        named(&b.0)
            .cmp(&named(&a.0))
            .then(b.1.abs().total_cmp(&a.1.abs()))
    });
    factors.truncate(MAX_FACTORS);

    let coverage =
        parts.iter().filter(|c| c.slot.value.is_some()).count() as f64 / parts.len().max(1) as f64;
    let certainty = 0.5 + 0.5 * (2.0 * p - 1.0).abs();
    let mut builder = Score::builder(value)
        .action(priority.default_action())
        .reasoning(reasoning(p, &parts))
        .confidence(coverage * certainty);
    for (name, points) in factors {
        let name: String = name.chars().take(64).collect();
        builder = builder.factor(name, 100.0 * sigmoid(points));
    }
    builder.build()
}

fn is_strata_factor(n: &str) -> bool {
    matches!(
        n,
        "budget" | "timeline" | "complexity" | "authority" | "fit"
    )
}

/// "conversion probability 73%; for: +1.20 Lead Origin = Lead Add Form, …; against:
/// -0.80 Last Activity = Olark Chat Conversation, …"
pub fn reasoning(p: f64, parts: &[Contribution]) -> String {
    let mut sorted: Vec<&Contribution> =
        parts.iter().filter(|c| c.points.abs() >= NOTABLE).collect();
    sorted.sort_by(|a, b| b.points.total_cmp(&a.points));
    let line = |c: &&Contribution| {
        let value = c
            .slot
            .value
            .clone()
            .unwrap_or_else(|| "(missing)".to_string());
        format!("{:+.2} {} = {value}", c.points, c.feature.column)
    };
    let pros: Vec<String> = sorted
        .iter()
        .filter(|c| c.points > 0.0)
        .take(REASONS_EACH_WAY)
        .map(line)
        .collect();
    let cons: Vec<String> = sorted
        .iter()
        .rev()
        .filter(|c| c.points < 0.0)
        .take(REASONS_EACH_WAY)
        .map(line)
        .collect();
    let side = |v: &[String]| {
        if v.is_empty() {
            "nothing notable".to_string()
        } else {
            v.join(", ")
        }
    };
    format!(
        "conversion probability {:.0}%; for: {}; against: {} (log-odds points vs. the average lead)",
        100.0 * p,
        side(&pros),
        side(&cons)
    )
}
