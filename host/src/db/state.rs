//! Per-plugin key/value state (the `state` host capability). Each plugin sees only its
//! own keys: every function takes the plugin name, which the host supplies, never the
//! guest.

use crate::domain::now_ms;

use rusqlite::OptionalExtension;

use super::direct::sqlite;
use super::error::q;
use super::{Db, DbError};

const STATE_GET: &str = "SELECT value FROM plugin_state WHERE plugin = $1 AND key = $2";
const STATE_COUNT: &str = "SELECT COUNT(*) FROM plugin_state WHERE plugin = $1";

impl Db {
    /// The value of `key` in `plugin`'s state. On SQLite it runs on this thread (a read
    /// never waits for a writer in WAL mode): layers read state from blocking threads.
    pub async fn state_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, DbError> {
        const OP: &str = "state_get";
        if let Some(direct) = self.direct() {
            return direct.run(OP, |c| {
                c.prepare_cached(STATE_GET)
                    .and_then(|mut st| st.query_row((plugin, key), |r| r.get(0)).optional())
                    .map_err(sqlite(OP))
            });
        }
        let v: Option<Vec<u8>> = on_pool!(self, |pool| {
            sqlx::query_scalar(STATE_GET)
                .bind(plugin)
                .bind(key)
                .fetch_optional(pool)
                .await
                .map_err(q(OP))?
        });
        Ok(v)
    }

    /// Set `key` in `plugin`'s state (insert or replace).
    pub async fn state_set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), DbError> {
        const OP: &str = "state_set";
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO plugin_state (plugin, key, value, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(plugin)
            .bind(key)
            .bind(value)
            .bind(now_ms())
            .execute(pool)
            .await
            .map_err(q(OP))?;
        });
        Ok(())
    }

    /// Delete `key` from `plugin`'s state. True if it existed.
    pub async fn state_delete(&self, plugin: &str, key: &str) -> Result<bool, DbError> {
        const OP: &str = "state_delete";
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM plugin_state WHERE plugin = $1 AND key = $2")
                .bind(plugin)
                .bind(key)
                .execute(pool)
                .await
                .map_err(q(OP))?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Number of keys in `plugin`'s state (on SQLite on this thread, as [`Db::state_get`]).
    pub async fn state_count(&self, plugin: &str) -> Result<i64, DbError> {
        const OP: &str = "state_count";
        if let Some(direct) = self.direct() {
            return direct.run(OP, |c| {
                c.prepare_cached(STATE_COUNT)
                    .and_then(|mut st| st.query_row([plugin], |r| r.get(0)))
                    .map_err(sqlite(OP))
            });
        }
        let n: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(STATE_COUNT)
                .bind(plugin)
                .fetch_one(pool)
                .await
                .map_err(q(OP))?
        });
        Ok(n)
    }

    /// Total bytes of `plugin`'s keys and values (for quotas).
    pub async fn state_total_bytes(&self, plugin: &str) -> Result<i64, DbError> {
        const OP: &str = "state_total_bytes";
        let n: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(octet_length(value) + octet_length(key)), 0) AS BIGINT) \
                 FROM plugin_state WHERE plugin = $1",
            )
            .bind(plugin)
            .fetch_one(pool)
            .await
            .map_err(q(OP))?
        });
        Ok(n)
    }

    /// All keys of `plugin`'s state, sorted by bytes (sorted here, so both engines agree
    /// whatever their collation).
    pub async fn state_keys(&self, plugin: &str) -> Result<Vec<String>, DbError> {
        const OP: &str = "state_keys";
        let mut keys: Vec<String> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT key FROM plugin_state WHERE plugin = $1")
                .bind(plugin)
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        keys.sort();
        Ok(keys)
    }
}
