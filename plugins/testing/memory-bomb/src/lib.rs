//! Hostile test plugin: allocates 1 MiB chunks and touches every page, without end.

use std::hint::black_box;
use strata_sdk::{export_scorer, Lead, PluginError, Score, Scorer};

const CHUNK: usize = 1 << 20;
const PAGE: usize = 64 * 1024;

struct MemoryBomb;

impl Scorer for MemoryBomb {
    fn score(_lead: Lead) -> Result<Score, PluginError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; CHUNK];
            // Write to every wasm page so the memory is really committed, and hide the
            // buffer from the optimiser so the allocation cannot be elided.
            for i in (0..CHUNK).step_by(PAGE) {
                chunk[i] = 1;
            }
            hoard.push(black_box(chunk));
            black_box(&hoard);
        }
    }
}

export_scorer!(MemoryBomb);
