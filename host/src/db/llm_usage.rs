//! The LLM usage ledger: tokens and cost per plugin per UTC day, against which the `llm`
//! capability checks a plugin's daily budgets. Increments are single atomic upserts, so
//! several processes on one PostgreSQL share one ledger.
//!
//! Budgets hold under concurrency through **reservations** (`llm_reservations`): before a
//! call, [`Db::reserve_llm`] inserts the call's estimate only if spent + live
//! reservations + estimate fit every daily budget; afterwards [`Db::settle_llm`] adds the
//! actual usage and deletes the reservation in one transaction (a failed call settles
//! with what its attempts consumed, usually nothing: the release). Every transaction that
//! reads or changes the reservations of a (plugin, day) first writes that day's
//! `llm_usage` row, which serialises them on both engines (PostgreSQL: the row lock, after
//! which each statement of a READ COMMITTED transaction sees the others' commits; SQLite:
//! the database's write lock) — so the check and the insert cannot interleave, across
//! workers, CLI processes and replicas alike. A reservation left behind by a crash stops
//! counting at its `expires_at` and is deleted by the next reservation of that day.

use super::error::q;
use super::{Db, DbError};

/// One plugin's usage on one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LlmUsage {
    pub calls: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_usd: f64,
}

impl LlmUsage {
    pub fn tokens(&self) -> i64 {
        self.tokens_in + self.tokens_out
    }
}

/// The UTC day of a Unix-epoch millisecond timestamp, `YYYY-MM-DD`.
pub fn utc_day(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// What a plugin has spent on a day and what calls in flight have reserved.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LlmBudgetState {
    pub used: LlmUsage,
    /// Tokens and cost of the unexpired reservations.
    pub reserved_tokens: i64,
    pub reserved_cost_usd: f64,
}

impl LlmBudgetState {
    pub fn committed_tokens(&self) -> i64 {
        self.used.tokens() + self.reserved_tokens
    }

    pub fn committed_cost_usd(&self) -> f64 {
        self.used.cost_usd + self.reserved_cost_usd
    }
}

/// A call's reservation: its estimate, what it is checked against and when it lapses.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmReservation {
    pub id: String,
    pub plugin: String,
    /// The UTC day the reservation is made on: the call is settled on that day too.
    pub day: String,
    pub tokens: i64,
    pub cost_usd: f64,
    /// Ms since the epoch after which the reservation no longer counts.
    pub expires_at: i64,
}

/// Slack on the cost comparison for floating-point sums (a billionth of a dollar).
pub const COST_EPSILON_USD: f64 = 1e-9;

/// Takes the (plugin, day) row lock (PostgreSQL) / write lock (SQLite) that serialises
/// every change to that day's reservations; the row exists (see `ENSURE_USAGE_ROW`).
const LOCK_USAGE_ROW: &str = "UPDATE llm_usage SET calls = calls WHERE plugin = $1 AND day = $2";
const ENSURE_USAGE_ROW: &str = "INSERT INTO llm_usage (plugin, day) VALUES ($1, $2) \
     ON CONFLICT (plugin, day) DO NOTHING";
/// Inserts the reservation iff spent + unexpired reservations + this one fit both
/// budgets (a NULL budget is no limit). Binds: id, plugin, day, tokens, cost_usd,
/// expires_at, now, token budget, cost budget (+ epsilon).
const RESERVE: &str = "INSERT INTO llm_reservations \
     (id, plugin, day, tokens, cost_usd, created_at, expires_at) \
     SELECT $1, $2, $3, $4, $5, $7, $6 FROM llm_usage u \
     WHERE u.plugin = $2 AND u.day = $3 \
     AND ($8 IS NULL OR u.tokens_in + u.tokens_out + $4 + (SELECT COALESCE(SUM(r.tokens), 0) \
          FROM llm_reservations r WHERE r.plugin = $2 AND r.day = $3 AND r.expires_at > $7) <= $8) \
     AND ($9 IS NULL OR u.cost_usd + $5 + (SELECT COALESCE(SUM(r.cost_usd), 0) \
          FROM llm_reservations r WHERE r.plugin = $2 AND r.day = $3 AND r.expires_at > $7) <= $9)";
const ADD_USAGE: &str =
    "INSERT INTO llm_usage (plugin, day, calls, tokens_in, tokens_out, cost_usd) \
     VALUES ($1, $2, 1, $3, $4, $5) \
     ON CONFLICT (plugin, day) DO UPDATE SET calls = llm_usage.calls + 1, \
     tokens_in = llm_usage.tokens_in + excluded.tokens_in, \
     tokens_out = llm_usage.tokens_out + excluded.tokens_out, \
     cost_usd = llm_usage.cost_usd + excluded.cost_usd";

impl Db {
    /// `plugin`'s usage on `day` and its reservations live at `now_ms`.
    pub async fn llm_budget_state(
        &self,
        plugin: &str,
        day: &str,
        now_ms: i64,
    ) -> Result<LlmBudgetState, DbError> {
        const OP: &str = "llm_budget_state";
        let used = self.llm_usage(plugin, day).await?;
        let (reserved_tokens, reserved_cost_usd): (i64, f64) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) FROM llm_reservations \
                 WHERE plugin = $1 AND day = $2 AND expires_at > $3",
            )
            .bind(plugin)
            .bind(day)
            .bind(now_ms)
            .fetch_one(pool)
            .await
            .map_err(q(OP))?
        });
        Ok(LlmBudgetState {
            used,
            reserved_tokens,
            reserved_cost_usd,
        })
    }

    /// Reserves `r` against the budgets (`None`: no limit) at `now_ms`: `true` when it
    /// fitted and was stored, `false` (nothing stored) when it would pass a budget.
    /// Deletes the day's expired reservations on the way.
    pub async fn reserve_llm(
        &self,
        r: &LlmReservation,
        daily_tokens: Option<i64>,
        daily_cost_usd: Option<f64>,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        const OP: &str = "reserve_llm";
        let cost_limit = daily_cost_usd.map(|c| c + COST_EPSILON_USD);
        let inserted = on_pool!(self, |pool| {
            sqlx::query(ENSURE_USAGE_ROW)
                .bind(&r.plugin)
                .bind(&r.day)
                .execute(pool)
                .await
                .map_err(q(OP))?;
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            sqlx::query(LOCK_USAGE_ROW)
                .bind(&r.plugin)
                .bind(&r.day)
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?;
            sqlx::query(
                "DELETE FROM llm_reservations WHERE plugin = $1 AND day = $2 AND expires_at <= $3",
            )
            .bind(&r.plugin)
            .bind(&r.day)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(q(OP))?;
            let done = sqlx::query(RESERVE)
                .bind(&r.id)
                .bind(&r.plugin)
                .bind(&r.day)
                .bind(r.tokens)
                .bind(r.cost_usd)
                .bind(r.expires_at)
                .bind(now_ms)
                .bind(daily_tokens)
                .bind(cost_limit)
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?;
            tx.commit().await.map_err(q(OP))?;
            done.rows_affected()
        });
        Ok(inserted == 1)
    }

    /// Settles reservation `id` of `plugin` on `day`: adds the call's actual usage (when it
    /// consumed any) and deletes the reservation, in one transaction. With nothing
    /// consumed this is the release. A reservation that already lapsed is simply gone.
    pub async fn settle_llm(
        &self,
        id: &str,
        plugin: &str,
        day: &str,
        tokens_in: i64,
        tokens_out: i64,
        cost_usd: f64,
    ) -> Result<(), DbError> {
        const OP: &str = "settle_llm";
        let consumed = tokens_in + tokens_out > 0 || cost_usd > 0.0;
        on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            // First the usage row (the lock every reservation change takes first).
            if consumed {
                sqlx::query(ADD_USAGE)
                    .bind(plugin)
                    .bind(day)
                    .bind(tokens_in)
                    .bind(tokens_out)
                    .bind(cost_usd)
                    .execute(&mut *tx)
                    .await
                    .map_err(q(OP))?;
            } else {
                sqlx::query(LOCK_USAGE_ROW)
                    .bind(plugin)
                    .bind(day)
                    .execute(&mut *tx)
                    .await
                    .map_err(q(OP))?;
            }
            sqlx::query("DELETE FROM llm_reservations WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?;
            tx.commit().await.map_err(q(OP))?;
        });
        Ok(())
    }

    /// `plugin`'s usage on `day` (zero when it made no call).
    pub async fn llm_usage(&self, plugin: &str, day: &str) -> Result<LlmUsage, DbError> {
        const OP: &str = "llm_usage";
        let row: Option<(i64, i64, i64, f64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT calls, tokens_in, tokens_out, cost_usd FROM llm_usage WHERE plugin = $1 AND day = $2",
            )
            .bind(plugin)
            .bind(day)
            .fetch_optional(pool)
            .await
            .map_err(q(OP))?
        });
        Ok(row.map_or_else(
            LlmUsage::default,
            |(calls, tokens_in, tokens_out, cost_usd)| LlmUsage {
                calls,
                tokens_in,
                tokens_out,
                cost_usd,
            },
        ))
    }

    /// Adds one call's tokens and cost to `plugin`'s usage on `day`.
    pub async fn add_llm_usage(
        &self,
        plugin: &str,
        day: &str,
        tokens_in: i64,
        tokens_out: i64,
        cost_usd: f64,
    ) -> Result<(), DbError> {
        const OP: &str = "add_llm_usage";
        on_pool!(self, |pool| {
            sqlx::query(ADD_USAGE)
                .bind(plugin)
                .bind(day)
                .bind(tokens_in)
                .bind(tokens_out)
                .bind(cost_usd)
                .execute(pool)
                .await
                .map_err(q(OP))?;
        });
        Ok(())
    }
}
