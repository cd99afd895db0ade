//! Hostile test plugin: returns a score whose reasoning is 10 MB.

use strata_sdk::{export_scorer, Lead, PluginError, Score, Scorer};

const REASONING_BYTES: usize = 10 * 1024 * 1024;

struct HugeOutput;

impl Scorer for HugeOutput {
    fn score(_lead: Lead) -> Result<Score, PluginError> {
        Ok(Score::builder(50.0)
            .reasoning("x".repeat(REASONING_BYTES))
            .build())
    }
}

export_scorer!(HugeOutput);
