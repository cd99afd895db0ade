//! Hostile test plugin: returns value 150 (out of range); for lead id `nan` it also
//! returns a NaN confidence. The host must reject both.

use strata_sdk::{export_scorer, Factor, Lead, PluginError, Priority, Score, Scorer};

struct BadScore;

impl Scorer for BadScore {
    fn score(lead: Lead) -> Result<Score, PluginError> {
        // Built by hand: the SDK's builder would clamp these.
        Ok(Score {
            value: 150.0,
            priority: Priority::Immediate,
            recommended_action: "none".into(),
            reasoning: "deliberately out of range".into(),
            confidence: if lead.id == "nan" { f64::NAN } else { 0.5 },
            factors: vec![Factor {
                name: "fit".into(),
                score: 150.0,
            }],
        })
    }
}

export_scorer!(BadScore);
