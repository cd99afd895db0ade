//! Test plugin: a valid scorer that burns about 2 ms of CPU first (hot-swap under load).
//! A lead attribute `burn` = N multiplies the work by N (slow jobs for shutdown tests).
//!
//! The burn is a fixed amount of work rather than a clock loop, so the component needs
//! no clock import and its result is deterministic.

use std::hint::black_box;
use strata_sdk::{export_scorer, Lead, LeadExt, PluginError, Score, Scorer};

/// Rounds of a dependent multiply chain: ≈ 2 ms under Cranelift (measured ≈ 2.6 ns a round).
const ROUNDS: u32 = 750_000;

struct SlowGood;

impl Scorer for SlowGood {
    fn score(lead: Lead) -> Result<Score, PluginError> {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in lead.id.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        let factor = lead
            .attr_f64("burn")
            .map_or(1, |f| f.clamp(1.0, 10_000.0) as u32);
        for _ in 0..ROUNDS.saturating_mul(factor) {
            h = black_box(h.rotate_left(5).wrapping_mul(0x100_0000_01b3));
        }
        let value = 40.0 + (h % 21) as f64;
        Ok(Score::builder(value)
            .factor("fit", value)
            .reasoning(format!(
                "burned {ROUNDS} rounds of CPU for lead {}",
                lead.id
            ))
            .confidence(0.5)
            .build())
    }
}

export_scorer!(SlowGood);
