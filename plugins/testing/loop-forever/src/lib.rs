//! Hostile test plugin: spins forever without calling the host.

use std::hint::black_box;
use strata_sdk::{export_scorer, Lead, PluginError, Score, Scorer};

struct LoopForever;

impl Scorer for LoopForever {
    fn score(lead: Lead) -> Result<Score, PluginError> {
        let mut n: u64 = lead.id.len() as u64;
        loop {
            // black_box keeps LLVM from proving the loop side-effect free.
            n = black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export_scorer!(LoopForever);
