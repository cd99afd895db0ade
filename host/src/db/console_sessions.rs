//! Sessions of the browser console (`server::console`): an API key signed in is exchanged
//! for a random token carried in a cookie; only the token's hex SHA-256 is stored. A
//! session answers only while it has not expired and its key is not revoked.

use super::error::q;
use super::keys::Role;
use super::{Db, DbError};

/// A live session: the key it was opened with.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleSession {
    pub key_id: String,
    pub key_name: String,
    pub role: Role,
    /// Milliseconds since the Unix epoch.
    pub expires_at: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    key_id: String,
    name: String,
    role: String,
    expires_at: i64,
}

impl Db {
    /// Records a session of key `key_id` under the hash of its token; sessions expired by
    /// `created_at` are deleted in passing (each sign-in sweeps, as each sign-out does, so
    /// the table holds about one TTL's sessions).
    pub async fn insert_console_session(
        &self,
        token_hash: &str,
        key_id: &str,
        created_at: i64,
        expires_at: i64,
    ) -> Result<(), DbError> {
        const OP: &str = "insert_console_session";
        on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
                .bind(created_at)
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?;
            sqlx::query(
                "INSERT INTO console_sessions (token_hash, key_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash)
            .bind(key_id)
            .bind(created_at)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(q(OP))?;
            tx.commit().await.map_err(q(OP))?;
        });
        Ok(())
    }

    /// The session whose token hashes to `token_hash`, if it has not expired at `now_ms`
    /// and its key is not revoked.
    pub async fn find_console_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<ConsoleSession>, DbError> {
        const OP: &str = "find_console_session";
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT s.key_id, k.name, k.role, s.expires_at FROM console_sessions s \
                 JOIN api_keys k ON k.id = s.key_id \
                 WHERE s.token_hash = $1 AND s.expires_at > $2 AND k.revoked_at IS NULL",
            )
            .bind(token_hash)
            .bind(now_ms)
            .fetch_optional(pool)
            .await
            .map_err(q(OP))?
        });
        row.map(|r| {
            let role = r.role.parse().map_err(|reason| DbError::Corrupt {
                op: OP,
                reason: format!("api key {}: {reason}", r.key_id),
            })?;
            Ok(ConsoleSession {
                key_id: r.key_id,
                key_name: r.name,
                role,
                expires_at: r.expires_at,
            })
        })
        .transpose()
    }

    /// Ends a session (sign-out); and, on the way, every session expired at `now_ms`.
    pub async fn delete_console_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<(), DbError> {
        const OP: &str = "delete_console_session";
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1 OR expires_at <= $2")
                .bind(token_hash)
                .bind(now_ms)
                .execute(pool)
                .await
                .map_err(q(OP))?;
        });
        Ok(())
    }
}
