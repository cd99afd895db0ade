//! The comparison of a strategy as stored: its results in a window, the known outcomes
//! of their leads, its attachment and events.

use super::{ChallengerSettings, Comparison};
use crate::db::{Db, DbError};
use crate::domain::now_ms;
use std::collections::HashMap;

/// The comparison of strategy `name` since `since` (ms), read from `db`.
pub async fn compare(
    db: &Db,
    settings: &ChallengerSettings,
    name: &str,
    since: i64,
) -> Result<Comparison, DbError> {
    let results = db.challenger_results(name, since).await?;
    let mut ids: Vec<String> = results.iter().map(|r| r.lead_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let outcome = outcomes(db, settings, &ids).await?;
    let mut c = Comparison::compute(name, &results, &outcome, since, now_ms());
    c.attachment = db.get_challenger(name).await?;
    c.events = db.strategy_events(name, 20).await?;
    Ok(c)
}

/// Known outcomes of leads `ids`: their status when it is an outcome, else their newest
/// human override's priority.
pub async fn outcomes(
    db: &Db,
    settings: &ChallengerSettings,
    ids: &[String],
) -> Result<HashMap<String, bool>, DbError> {
    let rows = db.lead_outcomes(ids).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, status, overridden)| {
            let y = settings.outcome_of_status(&status).or_else(|| {
                overridden
                    .and_then(|p| p.parse().ok())
                    .map(|p| settings.positive_override_priorities.contains(&p))
            })?;
            Some((id, y))
        })
        .collect())
}
