//! Replay: re-score past live traffic of a strategy with another version, offline.
//!
//! The inputs are the strategy's stored scores since a time: each keeps the lead exactly
//! as its plugin saw it (`lead_scores.lead_snapshot`); a score stored before snapshots
//! existed is replayed on the stored lead as it is now, and counted as such. Nothing is
//! written: the stored score is the champion's side, the replayed one the challenger's,
//! and the result is the same [`Comparison`] the live shadow gives.

use super::comparison::Comparison;
use super::{run_on, side_of_stored, ChallengerRun};
use crate::db::challenger_results::{ChallengerResult, SideResult};
use crate::db::challengers::ChallengerMode;
use crate::db::{Db, DbError, ScoreInput};
use crate::domain::Lead;
use crate::runtime::LoadedPlugin;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// One input to replay.
#[derive(Debug, Clone)]
pub struct ReplayInput {
    pub lead: Lead,
    /// The stored score (the champion's side).
    pub stored: SideResult,
    pub created_at: i64,
}

/// Where the inputs came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReplaySources {
    /// Scores replayed on the lead exactly as their plugin saw it.
    pub from_snapshot: u64,
    /// Scores stored without a snapshot, replayed on the stored lead as it is now.
    pub from_current_lead: u64,
    /// Scores without a snapshot whose lead is no longer stored (not replayed).
    pub skipped: u64,
}

/// A replay's report: the comparison plus where its inputs came from.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReplayReport {
    /// `plugin@version` replayed.
    pub plugin: String,
    pub sources: ReplaySources,
    pub comparison: Comparison,
}

/// The stored scores of strategy `name` since `since_ms` (at most `limit`) as inputs.
pub async fn stored_inputs(
    db: &Db,
    name: &str,
    since_ms: i64,
    limit: i64,
) -> Result<(Vec<ReplayInput>, ReplaySources), DbError> {
    let rows = db.scores_for_replay(name, since_ms, limit).await?;
    let mut sources = ReplaySources::default();
    let mut current: HashMap<String, Option<Lead>> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let lead = match r.lead_snapshot.as_deref().map(serde_json::from_str::<Lead>) {
            Some(Ok(l)) => {
                sources.from_snapshot += 1;
                l
            }
            Some(Err(e)) => {
                return Err(DbError::Corrupt {
                    op: "stored_inputs",
                    reason: format!("score of lead {}: snapshot is not a lead: {e}", r.lead_id),
                })
            }
            None => {
                if !current.contains_key(&r.lead_id) {
                    let l = db.get_lead(&r.lead_id).await?;
                    current.insert(r.lead_id.clone(), l);
                }
                match current.get(&r.lead_id).cloned().flatten() {
                    Some(mut l) => {
                        l.attributes.retain(|k, _| !k.starts_with("strata_"));
                        sources.from_current_lead += 1;
                        l
                    }
                    None => {
                        sources.skipped += 1;
                        continue;
                    }
                }
            }
        };
        out.push(ReplayInput {
            stored: side_of_stored(&r),
            lead,
            created_at: r.created_at,
        });
    }
    Ok((out, sources))
}

/// Re-scores `inputs` with `plugin` on this (blocking) thread; returns one result per
/// input, the stored score as the champion's side.
pub fn replay(
    strategy: &str,
    plugin: &Arc<LoadedPlugin>,
    inputs: &[ReplayInput],
) -> Vec<ChallengerResult> {
    inputs
        .iter()
        .map(|i| {
            let run: ChallengerRun = run_on(Ok(plugin.clone()), plugin.name(), &i.lead, None);
            let input = ScoreInput::of(&i.lead);
            ChallengerResult {
                strategy: strategy.to_string(),
                generation: 0,
                mode: ChallengerMode::Shadow,
                source: "api".into(),
                served_by: "champion".into(),
                lead_id: i.lead.id.clone(),
                input_sha256: input.sha256,
                lead_snapshot: String::new(),
                champion: Some(i.stored.clone()),
                challenger: run.id.clone(),
                challenger_sha256: run.sha256.clone(),
                challenger_outcome: run.outcome().into(),
                challenger_score: run.result.as_ref().ok().map(|s| s.value),
                challenger_priority: run
                    .result
                    .as_ref()
                    .ok()
                    .map(|s| s.priority.as_str().to_string()),
                challenger_us: Some(run.duration_us),
                challenger_error: run.result.as_ref().err().cloned(),
                request_id: None,
                created_at: i.created_at,
            }
        })
        .collect()
}
