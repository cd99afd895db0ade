//! Hostile test plugin: floods the `state` capability within one call. The lead id says
//! how, as comma-separated parts:
//! - `get=N`: N reads of the same key (allowed);
//! - `bad=N`: N reads of an empty key (denied as invalid);
//! - `keys=N`: N reads of N distinct keys;
//! - `forever`: reads the same key until the deadline kills the call.
//!
//! The score is 50; the reasoning says how many calls were made.

use strata_sdk::{export_scorer, state, Lead, PluginError, Score, Scorer};

struct StateFlood;

impl Scorer for StateFlood {
    fn score(lead: Lead) -> Result<Score, PluginError> {
        let mut calls: u64 = 0;
        for part in lead.id.split(',') {
            let (what, n) = part.split_once('=').unwrap_or((part, "0"));
            let n: u64 = n.parse().unwrap_or(0);
            match what {
                "get" => {
                    for _ in 0..n {
                        let _ = state::get("flood");
                        calls += 1;
                    }
                }
                "bad" => {
                    for _ in 0..n {
                        let _ = state::get("");
                        calls += 1;
                    }
                }
                "keys" => {
                    for i in 0..n {
                        let _ = state::get(&format!("key-{i}"));
                        calls += 1;
                    }
                }
                "forever" => loop {
                    let _ = state::get("flood");
                },
                _ => {}
            }
        }
        Ok(Score::builder(50.0)
            .reasoning(format!("{calls} state calls"))
            .build())
    }
}

export_scorer!(StateFlood);
