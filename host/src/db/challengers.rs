//! Champion and challenger: a strategy's attached challenger (`strategy_challengers`),
//! the results observed under it (`challenger_results`) and what happened to it
//! (`strategy_events`). See [`crate::challenger`] for the behaviour.
//!
//! Invariants:
//! * One attachment per strategy; every change (attach, re-attach, guard-rail rollback)
//!   increments `generation`, and a rollback applies only to the generation it judged
//!   ([`Db::roll_back_challenger`]): a replica that judged an older attachment cannot
//!   roll back the newer one an operator just attached.
//! * Results are append-only and never read by the score routes: a shadow score is never
//!   returned or written back.

use super::error::q;
use super::{new_id, Db, DbError};
use crate::domain::now_ms;
use serde::{Deserialize, Serialize};

/// Inserts one `strategy_events` row inside transaction `$tx`.
macro_rules! strategy_event {
    ($tx:ident, $strategy:expr, $kind:expr, $generation:expr, $detail:expr, $actor:expr, $at:expr) => {
        sqlx::query(
            "INSERT INTO strategy_events (id, strategy, kind, generation, detail, actor, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id())
        .bind($strategy)
        .bind($kind)
        .bind($generation)
        .bind($detail)
        .bind($actor)
        .bind($at)
        .execute(&mut *$tx)
        .await
    };
}

/// How a challenger takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChallengerMode {
    /// Scores a sample of the champion's calls off the response path; never serves.
    Shadow,
    /// Serves a sticky share of leads (by lead id hash); guard rails roll it back.
    Canary,
}

impl ChallengerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengerMode::Shadow => "shadow",
            ChallengerMode::Canary => "canary",
        }
    }

    fn parse(s: &str) -> Option<ChallengerMode> {
        match s {
            "shadow" => Some(ChallengerMode::Shadow),
            "canary" => Some(ChallengerMode::Canary),
            _ => None,
        }
    }
}

/// A strategy's challenger as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChallengerRecord {
    /// The champion plugin's name.
    pub strategy: String,
    /// The challenger plugin's name (the champion's own name for another version of it).
    pub challenger: String,
    /// The challenger's version; `null`: whatever version of it is live.
    pub challenger_version: Option<String>,
    pub mode: ChallengerMode,
    /// Shadow: the share of calls sampled. Canary: the share of leads served.
    pub share: f64,
    /// Canary guard rail: challenger error + timeout rate above this rolls it back.
    pub max_error_rate: f64,
    /// Canary guard rail: PSI of the challenger's scores against the champion's above
    /// this rolls it back.
    pub max_psi: f64,
    /// Guard rails judge the last `guard_window` results …
    pub guard_window: i64,
    /// … once each side has at least `guard_min_samples` of them.
    pub guard_min_samples: i64,
    /// `active`, or `rolled-back` (a guard rail tripped; the champion serves everything).
    pub status: String,
    pub status_reason: Option<String>,
    pub generation: i64,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ChallengerRecord {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    strategy: String,
    challenger: String,
    challenger_version: Option<String>,
    mode: String,
    share: f64,
    max_error_rate: f64,
    max_psi: f64,
    guard_window: i64,
    guard_min_samples: i64,
    status: String,
    status_reason: Option<String>,
    generation: i64,
    created_by: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl Row {
    fn into_record(self, op: &'static str) -> Result<ChallengerRecord, DbError> {
        let mode = ChallengerMode::parse(&self.mode).ok_or_else(|| DbError::Corrupt {
            op,
            reason: format!("challenger of {}: mode {:?}", self.strategy, self.mode),
        })?;
        Ok(ChallengerRecord {
            strategy: self.strategy,
            challenger: self.challenger,
            challenger_version: self.challenger_version,
            mode,
            share: self.share,
            max_error_rate: self.max_error_rate,
            max_psi: self.max_psi,
            guard_window: self.guard_window,
            guard_min_samples: self.guard_min_samples,
            status: self.status,
            status_reason: self.status_reason,
            generation: self.generation,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str = "strategy, challenger, challenger_version, mode, share, max_error_rate, \
    max_psi, guard_window, guard_min_samples, status, status_reason, generation, created_by, \
    created_at, updated_at";

/// What an operator attaches (validated by [`crate::challenger`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewChallenger {
    pub strategy: String,
    pub challenger: String,
    pub challenger_version: Option<String>,
    pub mode: ChallengerMode,
    pub share: f64,
    pub max_error_rate: f64,
    pub max_psi: f64,
    pub guard_window: i64,
    pub guard_min_samples: i64,
    pub created_by: Option<String>,
}

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

/// One entry of a strategy's history.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StrategyEvent {
    pub strategy: String,
    /// `attached`, `detached`, `rolled-back`, `promoted`.
    pub kind: String,
    pub generation: i64,
    pub detail: String,
    /// The key id that acted, or `guard-rail`.
    pub actor: Option<String>,
    pub at: i64,
}

/// Largest number of results [`Db::challenger_results`] reads at once.
pub const MAX_RESULTS: i64 = 200_000;

impl Db {
    /// Attaches (or replaces) the challenger of `c.strategy`: status `active`, the next
    /// generation; records an `attached` event. Returns the stored attachment.
    pub async fn attach_challenger(&self, c: &NewChallenger) -> Result<ChallengerRecord, DbError> {
        const OP: &str = "attach_challenger";
        let now = now_ms();
        on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            let generation: i64 = sqlx::query_scalar::<_, i64>(
                "SELECT generation FROM strategy_challengers WHERE strategy = $1",
            )
            .bind(&c.strategy)
            .fetch_optional(&mut *tx)
            .await
            .map_err(q(OP))?
            .unwrap_or(0)
                + 1;
            sqlx::query("DELETE FROM strategy_challengers WHERE strategy = $1")
                .bind(&c.strategy)
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?;
            sqlx::query(&format!(
                "INSERT INTO strategy_challengers ({COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', NULL, $10, $11, $12, $12)"
            ))
            .bind(&c.strategy)
            .bind(&c.challenger)
            .bind(c.challenger_version.as_deref())
            .bind(c.mode.as_str())
            .bind(c.share)
            .bind(c.max_error_rate)
            .bind(c.max_psi)
            .bind(c.guard_window)
            .bind(c.guard_min_samples)
            .bind(generation)
            .bind(c.created_by.as_deref())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(q(OP))?;
            let detail = format!(
                "{} {}{} at share {}",
                c.mode.as_str(),
                c.challenger,
                c.challenger_version
                    .as_deref()
                    .map(|v| format!("@{v}"))
                    .unwrap_or_default(),
                c.share
            );
            strategy_event!(
                tx,
                &c.strategy,
                "attached",
                generation,
                &detail,
                c.created_by.as_deref(),
                now
            )
            .map_err(q(OP))?;
            tx.commit().await.map_err(q(OP))?;
        });
        self.get_challenger(&c.strategy)
            .await?
            .ok_or_else(|| DbError::NotFound {
                op: OP,
                what: format!("challenger of {}", c.strategy),
            })
    }

    pub async fn get_challenger(
        &self,
        strategy: &str,
    ) -> Result<Option<ChallengerRecord>, DbError> {
        const OP: &str = "get_challenger";
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM strategy_challengers WHERE strategy = $1"
            ))
            .bind(strategy)
            .fetch_optional(pool)
            .await
            .map_err(q(OP))?
        });
        row.map(|r| r.into_record(OP)).transpose()
    }

    pub async fn list_challengers(&self) -> Result<Vec<ChallengerRecord>, DbError> {
        const OP: &str = "list_challengers";
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM strategy_challengers ORDER BY strategy"
            ))
            .fetch_all(pool)
            .await
            .map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_record(OP)).collect()
    }

    /// Removes the challenger of `strategy` with an event of `kind` (`detached` or
    /// `promoted`); `false` when it had none.
    pub async fn detach_challenger(
        &self,
        strategy: &str,
        kind: &str,
        detail: &str,
        actor: Option<&str>,
    ) -> Result<bool, DbError> {
        const OP: &str = "detach_challenger";
        let now = now_ms();
        on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            let generation: Option<i64> = sqlx::query_scalar(
                "SELECT generation FROM strategy_challengers WHERE strategy = $1",
            )
            .bind(strategy)
            .fetch_optional(&mut *tx)
            .await
            .map_err(q(OP))?;
            let Some(generation) = generation else {
                return Ok(false);
            };
            sqlx::query("DELETE FROM strategy_challengers WHERE strategy = $1")
                .bind(strategy)
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?;
            strategy_event!(tx, strategy, kind, generation, detail, actor, now).map_err(q(OP))?;
            tx.commit().await.map_err(q(OP))?;
        });
        Ok(true)
    }

    /// A guard rail tripped: generation `generation` of `strategy`'s challenger goes to
    /// `rolled-back` with `reason`, and an event records it. `false` (nothing changed)
    /// when the attachment is gone, newer, or already rolled back.
    pub async fn roll_back_challenger(
        &self,
        strategy: &str,
        generation: i64,
        reason: &str,
    ) -> Result<bool, DbError> {
        const OP: &str = "roll_back_challenger";
        let now = now_ms();
        on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            let n = sqlx::query(
                "UPDATE strategy_challengers SET status = 'rolled-back', status_reason = $1, \
                 updated_at = $2 WHERE strategy = $3 AND generation = $4 AND status = 'active'",
            )
            .bind(reason)
            .bind(now)
            .bind(strategy)
            .bind(generation)
            .execute(&mut *tx)
            .await
            .map_err(q(OP))?
            .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            strategy_event!(
                tx,
                strategy,
                "rolled-back",
                generation,
                reason,
                Some("guard-rail"),
                now
            )
            .map_err(q(OP))?;
            tx.commit().await.map_err(q(OP))?;
        });
        Ok(true)
    }

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

    /// The newest `limit` events of `strategy`, newest first.
    pub async fn strategy_events(
        &self,
        strategy: &str,
        limit: i64,
    ) -> Result<Vec<StrategyEvent>, DbError> {
        const OP: &str = "strategy_events";
        Ok(on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT strategy, kind, generation, detail, actor, at FROM strategy_events \
                 WHERE strategy = $1 ORDER BY at DESC, id DESC LIMIT $2",
            )
            .bind(strategy)
            .bind(limit.clamp(1, 1000))
            .fetch_all(pool)
            .await
            .map_err(q(OP))?
        }))
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
            .bind(format!("{}%", prefix.replace('%', "").replace('_', "")))
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
