//! Hostile test plugin: panics with a message starting `boom: `.

use strata_sdk::{export_scorer, Lead, PluginError, Score, Scorer};

struct Panic;

impl Scorer for Panic {
    fn score(lead: Lead) -> Result<Score, PluginError> {
        panic!("boom: plugin panicked while scoring lead {}", lead.id)
    }
}

export_scorer!(Panic);
