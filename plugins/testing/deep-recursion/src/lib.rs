//! Hostile test plugin: recurses without bound until the 64 KiB shadow stack runs out.

use std::hint::black_box;
use strata_sdk::{export_scorer, Lead, PluginError, Score, Scorer};

/// Recurses forever; the local buffer gives each frame shadow-stack weight and
/// black_box stops tail-call and loop rewriting.
#[inline(never)]
#[allow(unconditional_recursion)] // the point of this plugin
fn descend(depth: u64) -> u64 {
    let frame = black_box([depth; 16]);
    black_box(descend(black_box(depth + 1))) + frame[(depth % 16) as usize]
}

struct DeepRecursion;

impl Scorer for DeepRecursion {
    fn score(_lead: Lead) -> Result<Score, PluginError> {
        let depth = descend(0);
        Ok(Score::builder(0.0)
            .reasoning(format!("returned from depth {depth}"))
            .build())
    }
}

export_scorer!(DeepRecursion);
