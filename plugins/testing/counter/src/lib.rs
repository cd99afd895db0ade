//! Test scorer: counts the calls its instance has served and says so in the reasoning
//! ("call 1" on a fresh instance). A lead whose id starts with `panic` makes it panic, to
//! prove a trapped instance is never used again.

use std::sync::atomic::{AtomicU32, Ordering};
use strata_sdk::{export_scorer, Lead, PluginError, Score, Scorer};

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Counter;

impl Scorer for Counter {
    fn score(lead: Lead) -> Result<Score, PluginError> {
        let n = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        if lead.id.starts_with("panic") {
            panic!("asked to panic on call {n}");
        }
        Ok(Score::builder(50.0).reasoning(format!("call {n}")).build())
    }
}

export_scorer!(Counter);
