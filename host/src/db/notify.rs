//! PostgreSQL LISTEN/NOTIFY, for waking other replicas up (e.g. on a release change).
//! SQLite has no such channel: [`Db::listen`] is `None` there and callers poll.

use super::error::q;
use super::{Db, DbError, Pool};
use sqlx::postgres::PgListener;

impl Db {
    /// A listener on `channel` (PostgreSQL), or `None` (SQLite, or the listening
    /// connection could not be opened: the caller's polling carries on alone).
    pub async fn listen(&self, channel: &str) -> Option<PgListener> {
        let Pool::Postgres(pool) = &self.pool else {
            return None;
        };
        let mut l = match PgListener::connect_with(pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(channel, error = %e, "cannot open a LISTEN connection; polling only");
                return None;
            }
        };
        match l.listen(channel).await {
            Ok(()) => Some(l),
            Err(e) => {
                tracing::warn!(channel, error = %e, "cannot LISTEN; polling only");
                None
            }
        }
    }

    /// Announces `payload` on `channel` to every listener (PostgreSQL; nothing on SQLite).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), DbError> {
        const OP: &str = "notify";
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(pool)
                .await
                .map_err(q(OP))?;
        }
        Ok(())
    }
}
