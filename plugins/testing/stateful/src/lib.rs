//! Test plugin with capabilities: counts calls per lead id in plugin state and logs it.
//! Score value = min(count × 10, 100).

use strata_sdk::{export_scorer, log, state, Lead, PluginError, Score, Scorer};

struct Stateful;

/// Reads a little-endian u64 counter; anything malformed counts as zero.
fn decode(bytes: Option<Vec<u8>>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

impl Scorer for Stateful {
    fn score(lead: Lead) -> Result<Score, PluginError> {
        let key = format!("count:{}", lead.id);
        let fail = |e| PluginError::Failed(format!("state: {e:?}"));
        let count = decode(state::get(&key).map_err(fail)?) + 1;
        state::set(&key, &count.to_le_bytes()).map_err(fail)?;
        log::info(&format!("lead {} scored {count} time(s)", lead.id));
        let value = (count as f64 * 10.0).min(100.0);
        Ok(Score::builder(value)
            .factor("calls", value)
            .reasoning(format!("call number {count} for this lead"))
            .build())
    }
}

export_scorer!(Stateful);
