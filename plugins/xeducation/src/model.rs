//! Evaluating the fitted scorecard in [`crate::table`] on a lead.

use strata_sdk::{Lead, LeadExt};

/// The factor a feature reports under (the score's `factors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// How the lead reached X Education: origin, source, country, city.
    Source,
    /// Behaviour on the website and in campaigns: visits, time, pages, last activity.
    Engagement,
    /// Who the lead is: occupation, specialization, motive, lead profile.
    Profile,
    /// The sales team's read of the lead: tags, lead quality, contact opt-outs.
    Intent,
}

impl Group {
    /// All groups, in the order their factors are reported.
    pub const ALL: [Group; 4] = [
        Group::Engagement,
        Group::Source,
        Group::Profile,
        Group::Intent,
    ];

    /// The factor name.
    pub fn name(self) -> &'static str {
        match self {
            Group::Source => "source",
            Group::Engagement => "engagement",
            Group::Profile => "profile",
            Group::Intent => "intent",
        }
    }
}

/// How a feature turns its column into points (log-odds).
#[derive(Debug)]
pub enum Kind {
    /// Points per category value; unknown values score 0 (the base rate).
    Categorical {
        levels: &'static [(&'static str, f64)],
        missing: f64,
    },
    /// Points per bin; bin `i` holds `edges[i] <= v < edges[i + 1]`, values below
    /// `edges[0]` fall in bin 0.
    Numeric {
        edges: &'static [f64],
        points: &'static [f64],
        missing: f64,
    },
}

/// One column of the scorecard.
#[derive(Debug)]
pub struct Feature {
    /// The CSV column header, as the host passes it in the lead's attributes.
    pub column: &'static str,
    pub group: Group,
    pub kind: Kind,
}

/// One feature's contribution to a lead's log-odds.
#[derive(Debug)]
pub struct Contribution {
    pub feature: &'static Feature,
    /// The lead's value of the column, `None` when missing.
    pub value: Option<String>,
    pub points: f64,
}

impl Feature {
    /// This feature's contribution for `lead`.
    pub fn evaluate(&'static self, lead: &Lead) -> Contribution {
        let raw = lead.attr(self.column);
        let points = match &self.kind {
            Kind::Categorical { levels, missing } => match raw {
                None => *missing,
                Some(v) => levels
                    .iter()
                    .find(|(k, _)| *k == v)
                    .map_or(0.0, |(_, p)| *p),
            },
            Kind::Numeric {
                edges,
                points,
                missing,
            } => {
                match raw
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| v.is_finite())
                {
                    None => *missing,
                    Some(v) => points[edges.iter().rposition(|e| v >= *e).unwrap_or(0)],
                }
            }
        };
        Contribution {
            feature: self,
            value: raw.map(str::to_owned),
            points,
        }
    }
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
