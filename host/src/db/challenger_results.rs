//! Results observed under a strategy's challenger (`challenger_results`), the stored
//! scores `strata replay` re-scores, and the known outcomes of leads.

use super::challengers::ChallengerMode;
use super::error::q;
use super::{new_id, Db, DbError};
use serde::Serialize;

/// Largest number of results [`Db::challenger_results`] reads at once.
pub const MAX_RESULTS: i64 = 200_000;

/// One observed scoring call under an attachment.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChallengerResult {
    pub strategy: String,
    pub generation: i64,
    pub mode: ChallengerMode,
    /// `api` (POST /api/v1/score) or `job` (a qualification job).
    pub source: String,
    /// `champion` or `challenger`: whose score the caller got.
    pub served_by: String,
    pub lead_id: String,
    pub input_sha256: String,
    /// The lead as the plugins saw it (JSON).
    pub lead_snapshot: String,
    /// The champion's side, where it ran.
    pub champion: Option<SideResult>,
    /// `plugin@version` of the challenger (or its name when it could not be resolved).
    pub challenger: String,
    pub challenger_sha256: Option<String>,
    /// `ok`, `error`, `timeout`, or `not-run` (a canary lead the champion served).
    pub challenger_outcome: String,
    pub challenger_score: Option<f64>,
    pub challenger_priority: Option<String>,
    pub challenger_us: Option<i64>,
    pub challenger_error: Option<String>,
    pub request_id: Option<String>,
    pub created_at: i64,
}

/// One side's successful score.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SideResult {
    /// `plugin@version`.
    pub id: String,
    pub sha256: String,
    pub score: f64,
    pub priority: String,
    pub duration_us: i64,
}

#[derive(sqlx::FromRow)]
struct ResultRow {
    strategy: String,
    generation: i64,
    mode: String,
    source: String,
    served_by: String,
    lead_id: String,
    input_sha256: String,
    lead_snapshot: String,
    champion: Option<String>,
    champion_sha256: Option<String>,
    champion_score: Option<f64>,
    champion_priority: Option<String>,
    champion_us: Option<i64>,
    challenger: String,
    challenger_sha256: Option<String>,
    challenger_outcome: String,
    challenger_score: Option<f64>,
    challenger_priority: Option<String>,
    challenger_us: Option<i64>,
    challenger_error: Option<String>,
    request_id: Option<String>,
    created_at: i64,
}

const RESULT_COLUMNS: &str = "strategy, generation, mode, source, served_by, lead_id, \
    input_sha256, lead_snapshot, champion, champion_sha256, champion_score, champion_priority, \
    champion_us, challenger, challenger_sha256, challenger_outcome, challenger_score, \
    challenger_priority, challenger_us, challenger_error, request_id, created_at";
const N_RESULT_COLUMNS: usize = 23;

impl ResultRow {
    fn into_result(self, op: &'static str) -> Result<ChallengerResult, DbError> {
        let mode = ChallengerMode::parse(&self.mode).ok_or_else(|| DbError::Corrupt {
            op,
            reason: format!(
                "challenger result of {}: mode {:?}",
                self.strategy, self.mode
            ),
        })?;
        let champion = match (self.champion, self.champion_score, self.champion_priority) {
            (Some(id), Some(score), Some(priority)) => Some(SideResult {
                id,
                sha256: self.champion_sha256.unwrap_or_default(),
                score,
                priority,
                duration_us: self.champion_us.unwrap_or(0),
            }),
            _ => None,
        };
        Ok(ChallengerResult {
            strategy: self.strategy,
            generation: self.generation,
            mode,
            source: self.source,
            served_by: self.served_by,
            lead_id: self.lead_id,
            input_sha256: self.input_sha256,
            lead_snapshot: self.lead_snapshot,
            champion,
            challenger: self.challenger,
            challenger_sha256: self.challenger_sha256,
            challenger_outcome: self.challenger_outcome,
            challenger_score: self.challenger_score,
            challenger_priority: self.challenger_priority,
            challenger_us: self.challenger_us,
            challenger_error: self.challenger_error,
            request_id: self.request_id,
            created_at: self.created_at,
        })
    }
}

impl Db {
    /// Stores observed results in one transaction.
    pub async fn insert_challenger_results(
        &self,
        results: &[ChallengerResult],
    ) -> Result<(), DbError> {
        const OP: &str = "insert_challenger_results";
        if results.is_empty() {
            return Ok(());
        }
        let chunk = self.rows_per_statement(N_RESULT_COLUMNS);
        on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            for part in results.chunks(chunk) {
                let mut qb = crate::db::builder(
                    pool,
                    format!("INSERT INTO challenger_results (id, {RESULT_COLUMNS}) "),
                );
                qb.push_values(part, |mut b, r| {
                    let c = r.champion.as_ref();
                    b.push_bind(new_id())
                        .push_bind(r.strategy.as_str())
                        .push_bind(r.generation)
                        .push_bind(r.mode.as_str())
                        .push_bind(r.source.as_str())
                        .push_bind(r.served_by.as_str())
                        .push_bind(r.lead_id.as_str())
                        .push_bind(r.input_sha256.as_str())
                        .push_bind(r.lead_snapshot.as_str())
                        .push_bind(c.map(|c| c.id.as_str()))
                        .push_bind(c.map(|c| c.sha256.as_str()))
                        .push_bind(c.map(|c| c.score))
                        .push_bind(c.map(|c| c.priority.as_str()))
                        .push_bind(c.map(|c| c.duration_us))
                        .push_bind(r.challenger.as_str())
                        .push_bind(r.challenger_sha256.as_deref())
                        .push_bind(r.challenger_outcome.as_str())
                        .push_bind(r.challenger_score)
                        .push_bind(r.challenger_priority.as_deref())
                        .push_bind(r.challenger_us)
                        .push_bind(r.challenger_error.as_deref())
                        .push_bind(r.request_id.as_deref())
                        .push_bind(r.created_at);
                });
                qb.build()
                    .persistent(false)
                    .execute(&mut *tx)
                    .await
                    .map_err(q(OP))?;
            }
            tx.commit().await.map_err(q(OP))?;
        });
        Ok(())
    }

    /// Results of `strategy` since `since_ms`, oldest first, at most [`MAX_RESULTS`].
    pub async fn challenger_results(
        &self,
        strategy: &str,
        since_ms: i64,
    ) -> Result<Vec<ChallengerResult>, DbError> {
        const OP: &str = "challenger_results";
        let rows: Vec<ResultRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {RESULT_COLUMNS} FROM challenger_results \
                 WHERE strategy = $1 AND created_at >= $2 ORDER BY created_at, id LIMIT $3"
            ))
            .bind(strategy)
            .bind(since_ms)
            .bind(MAX_RESULTS)
            .fetch_all(pool)
            .await
            .map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_result(OP)).collect()
    }

    /// For the stored leads among `ids`: (id, status, the priority of its newest human
    /// override if any). Ids not stored are absent.
    pub async fn lead_outcomes(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, String, Option<String>)>, DbError> {
        const OP: &str = "lead_outcomes";
        let mut out = Vec::new();
        for part in ids.chunks(500) {
            let rows: Vec<(String, String, Option<String>)> = on_pool!(self, |pool| {
                let mut qb = crate::db::builder(
                    pool,
                    "SELECT l.id, l.status, (SELECT s.override_priority FROM lead_scores s \
                     WHERE s.lead_id = l.id AND s.override_at IS NOT NULL \
                     ORDER BY s.override_at DESC LIMIT 1) FROM leads l WHERE l.id IN (",
                );
                let mut sep = qb.separated(", ");
                for id in part {
                    sep.push_bind(id.as_str());
                }
                qb.push(")");
                qb.build_query_as()
                    .persistent(false)
                    .fetch_all(pool)
                    .await
                    .map_err(q(OP))?
            });
            out.extend(rows);
        }
        Ok(out)
    }
}

/// A stored score as `strata replay` reads it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredForReplay {
    pub lead_id: String,
    /// `plugin@version` that produced it.
    pub strategy: String,
    pub strategy_sha256: Option<String>,
    pub score: f64,
    pub priority: String,
    /// The lead as the plugin saw it (JSON); `None` for scores stored before replay
    /// existed.
    pub lead_snapshot: Option<String>,
    pub created_at: i64,
}

impl Db {
    /// Stored scores of plugin `name` (any version) since `since_ms`, oldest first, at
    /// most `limit`.
    pub async fn scores_for_replay(
        &self,
        name: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<StoredForReplay>, DbError> {
        const OP: &str = "scores_for_replay";
        let prefix = format!("{name}@");
        let rows: Vec<StoredForReplay> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT lead_id, strategy, strategy_sha256, score, priority, lead_snapshot, \
                 created_at FROM lead_scores WHERE strategy LIKE $1 AND created_at >= $2 \
                 ORDER BY created_at, id LIMIT $3",
            )
            .bind(format!("{}%", prefix.replace(['%', '_'], "")))
            .bind(since_ms)
            .bind(limit.clamp(1, MAX_RESULTS))
            .fetch_all(pool)
            .await
            .map_err(q(OP))?
        });
        Ok(rows
            .into_iter()
            .filter(|r| r.strategy.starts_with(&prefix))
            .collect())
    }
}
