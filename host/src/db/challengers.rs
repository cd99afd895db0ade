//! Champion and challenger: a strategy's attached challenger (`strategy_challengers`),
//! the results observed under it (`challenger_results`) and what happened to it
//! (`strategy_events`). See [`crate::challenger`] for the behaviour; the results
//! themselves are in [`super::challenger_results`].
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

    pub(crate) fn parse(s: &str) -> Option<ChallengerMode> {
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
}
