//! Test scorer: a constant score with no formatting, so a benchmark of it measures the
//! host's per-call overhead (store, instance, lowering, lifting, teardown) alone.

use strata_sdk::{export_scorer, Lead, PluginError, Priority, Score, Scorer};

struct Minimal;

impl Scorer for Minimal {
    fn score(_lead: Lead) -> Result<Score, PluginError> {
        Ok(Score {
            value: 50.0,
            priority: Priority::Medium,
            recommended_action: String::new(),
            reasoning: String::new(),
            confidence: 0.5,
            factors: Vec::new(),
        })
    }
}

export_scorer!(Minimal);
