//! The LLM usage ledger: tokens and cost per plugin per UTC day, against which the `llm`
//! capability checks a plugin's daily budgets. Increments are single atomic upserts, so
//! several processes on one PostgreSQL share one ledger.

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

impl Db {
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
            sqlx::query(
                "INSERT INTO llm_usage (plugin, day, calls, tokens_in, tokens_out, cost_usd) \
                 VALUES ($1, $2, 1, $3, $4, $5) \
                 ON CONFLICT (plugin, day) DO UPDATE SET calls = llm_usage.calls + 1, \
                 tokens_in = llm_usage.tokens_in + excluded.tokens_in, \
                 tokens_out = llm_usage.tokens_out + excluded.tokens_out, \
                 cost_usd = llm_usage.cost_usd + excluded.cost_usd",
            )
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
