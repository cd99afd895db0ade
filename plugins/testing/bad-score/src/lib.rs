//! Hostile test plugin: returns value 150 (out of range); for lead id `nan` an in-range
//! value with a NaN confidence; for lead id `factor` a valid score with a factor of 150.
//! The host must reject all three.

use strata_sdk::{export_scorer, Factor, Lead, PluginError, Priority, Score, Scorer};

struct BadScore;

impl Scorer for BadScore {
    fn score(lead: Lead) -> Result<Score, PluginError> {
        // Built by hand: the SDK's builder would clamp these.
        let (value, factor) = match lead.id.as_str() {
            "nan" => (50.0, 50.0),
            "factor" => (50.0, 150.0),
            _ => (150.0, 50.0),
        };
        Ok(Score {
            value,
            priority: Priority::Immediate,
            recommended_action: "none".into(),
            reasoning: "deliberately out of range".into(),
            confidence: if lead.id == "nan" { f64::NAN } else { 0.5 },
            factors: vec![Factor {
                name: "fit".into(),
                score: factor,
            }],
        })
    }
}

export_scorer!(BadScore);
