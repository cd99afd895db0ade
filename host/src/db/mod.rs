//! Database layer: one [`Db`] handle over SQLite (embedded default, a file in WAL mode)
//! or PostgreSQL (production, several host replicas).
//!
//! Both engines run the same logical schema (`migrations/sqlite`, `migrations/postgres`,
//! embedded at compile time with `sqlx::migrate!`) and the same SQL text: every query
//! in this module is written once and runs on either pool (placeholders are `$1…`, which
//! SQLite accepts too). Conventions shared by both engines:
//!
//! * timestamps are `BIGINT`/`INTEGER` milliseconds since the Unix epoch
//!   ([`crate::domain::now_ms`]);
//! * ids are `TEXT` (uuid v7 when the host generates them, so they sort by creation);
//! * JSON documents (lead attributes, score factors, agent input/output) are `TEXT`;
//! * booleans are `BOOLEAN` (SQLite stores 0/1), binary values `BLOB`/`BYTEA`.
//!
//! Bulk writes (`upsert_leads`, `insert_scores`, `insert_audit`) run in one transaction
//! with multi-row `INSERT`s chunked below each engine's bind-parameter limit
//! (SQLite 32 766, PostgreSQL 65 535).
//!
//! Topics: [`leads`], [`scores`], [`plugin_versions`], [`releases`], [`mcp_pins`], [`audit`], [`state`],
//! [`executions`]; for the HTTP service [`keys`], [`jobs`], [`stats`]; for business
//! pipelines [`events`] (durable events, per-subscriber deliveries, container tracking) and
//! [`pipelines`] (runs, layer runs, webhook idempotency); SQLite file backup and restore in
//! [`backup`]; errors in [`error`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Run `$body` with `$pool` bound to the concrete pool (`&SqlitePool` or `&PgPool`).
/// The body is compiled once per engine, so the same SQL text and binds serve both.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            $crate::db::Pool::Sqlite($pool, _) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}

/// Begins a write transaction on `pool`. On SQLite it is `BEGIN IMMEDIATE`: the write
/// lock is taken up front, waiting up to the busy timeout for another writer. A deferred
/// `BEGIN` whose transaction reads before it writes cannot wait: its upgrade to a writer
/// fails at once with `SQLITE_BUSY` ("database is locked", `SQLITE_BUSY_SNAPSHOT` in WAL
/// mode) when another connection wrote in between. PostgreSQL: a plain `BEGIN`.
pub(crate) async fn begin_write<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
) -> Result<sqlx::Transaction<'static, DB>, sqlx::Error> {
    if DB::NAME == <sqlx::Sqlite as sqlx::Database>::NAME {
        pool.begin_with("BEGIN IMMEDIATE").await
    } else {
        pool.begin().await
    }
}

/// `Display` and `FromStr` for an enum stored as text, from its `ALL` and `as_str`;
/// parsing is case-insensitive; the error reads `<what> "<input>"<hint>`.
macro_rules! text_enum {
    ($ty:ty, $what:literal, $hint:literal) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let t = s.trim().to_ascii_lowercase();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == t)
                    .ok_or_else(|| format!("{} {:?}{}", $what, s, $hint))
            }
        }
    };
}
pub(crate) use text_enum;

pub mod audit;
pub mod backup;
pub mod challenger_results;
pub mod challengers;
mod checkpoint;
pub mod console_sessions;
pub(crate) mod direct;
pub(crate) use direct::{blocking_scope, may_block};
pub mod error;
pub mod events;
pub mod execution_tapes;
pub mod executions;
pub mod jobs;
pub mod keys;
mod layer_commit;
pub mod leads;
pub mod llm_usage;
pub mod mcp_pins;
mod notify;
pub mod pipelines;
pub mod plugin_versions;
pub mod releases;
pub mod scores;
pub mod state;
pub mod stats;

pub use audit::{AuditFilter, AuditRecord, AuditUsage, StoredAudit};
pub use console_sessions::ConsoleSession;
pub use error::DbError;
pub use events::{
    ContainerSummary, DeliveryRecord, DeliveryStatus, EventRecord, EventWithDeliveries, NewEvent,
    Subscriber,
};
pub use execution_tapes::{ExecutionTape, TapeKind};
pub use executions::{ExecutionFilter, ExecutionFinish, ExecutionRecord, NewExecution};
pub use jobs::{JobFilter, JobRecord, JobStatus, NewJob, QueueDepth};
pub use keys::{hash_api_key_secret, ApiKeyRecord, NewApiKey, Role};
pub use leads::{LeadFilter, LeadRecord};
pub use llm_usage::{LlmBudgetState, LlmReservation, LlmUsage};
pub use mcp_pins::McpToolPin;
pub use pipelines::{
    CommitOutcome, ContainerCounts, CreatedRun, LayerRunCommit, LayerRunRecord, LayerRunResult,
    LayerRunStatus, NewRun, PendingDelivery, RunDetail, RunProgress, RunRecord, RunStatus,
    StateEntry, WebhookOutcome,
};
pub use plugin_versions::{NewPluginVersion, PluginVersionRecord, PluginVersionStatus};
pub use releases::{
    InsertedVersion, NewReleaseVersion, ReleaseState, ReleaseStatus, ReleaseVersionRecord,
    ReplicaHeartbeat,
};
pub use scores::{JobScore, NewScore, OverrideTarget, ScoreFilter, ScoreInput, ScoreSort};
pub use stats::ExecutionStats;

use error::q;

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// Bind-parameter limit per statement: SQLite's `SQLITE_MAX_VARIABLE_NUMBER` (32 766 in
/// the bundled library) and PostgreSQL's protocol limit (65 535).
const SQLITE_MAX_BINDS: usize = 32_766;
const POSTGRES_MAX_BINDS: usize = 65_535;
/// Upper bound on rows per multi-row statement; beyond this, larger statements stop
/// paying off and only cost memory.
const MAX_ROWS_PER_STATEMENT: usize = 2_000;

/// Which engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The engine a URL names, if any (`sqlite:…`, `postgres://…`, `postgresql://…`).
    pub fn from_url(url: &str) -> Option<Backend> {
        let lower = url.trim().to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Pool and connection settings for [`Db::connect`].
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long to wait for a free connection (and for the first connection at start-up).
    pub acquire_timeout: Duration,
    /// SQLite only: how long a statement waits for another writer's lock.
    pub busy_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 8,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    /// The sqlx pool, and the synchronous connections of the hot paths ([`direct`]).
    Sqlite(SqlitePool, Arc<direct::Direct>),
    Postgres(PgPool),
}

/// Handle to the database: cheap to clone (the pools are reference-counted), safe to
/// share between tasks.
#[derive(Debug, Clone)]
pub struct Db {
    pub(crate) pool: Pool,
    /// `sqlite::memory:` only: the private temporary directory holding the database,
    /// removed when the last handle drops.
    _memory_dir: Option<Arc<tempfile::TempDir>>,
    /// SQLite only: the WAL checkpointer thread, stopped when the last handle drops.
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
    url: String,
}

impl Db {
    /// Open a pool for `url`:
    ///
    /// * `sqlite:PATH`, `sqlite://PATH` (relative), `sqlite:///abs/path`, `sqlite::memory:`.
    ///   The file and its parent directories are created if missing; the connection runs
    ///   in WAL mode with `synchronous=NORMAL`, `foreign_keys=ON`, `temp_store=MEMORY` and
    ///   `busy_timeout = opts.busy_timeout`. `sqlite::memory:` is a private database in a
    ///   temporary file, removed when the last clone of the handle drops (a file, so the
    ///   synchronous connections of [`direct`] share it).
    /// * `postgres://user:password@host:port/db?…` (or `postgresql://`).
    ///
    /// Opens one connection before returning, so a wrong host, password or path fails
    /// here with [`DbError::Connect`] (password redacted).
    pub async fn connect(url: &str, opts: &DbOptions) -> Result<Db, DbError> {
        let redacted = redact_url(url);
        let url = url.trim();
        match Backend::from_url(url) {
            Some(Backend::Sqlite) => connect_sqlite(url, redacted, opts).await,
            Some(Backend::Postgres) => connect_postgres(url, redacted, opts).await,
            None => Err(DbError::InvalidUrl {
                url: redacted,
                reason: "unsupported scheme: expected sqlite:PATH or postgres://USER@HOST/DB"
                    .into(),
            }),
        }
    }

    /// Apply the embedded migrations of this engine (`migrations/sqlite` or
    /// `migrations/postgres`). Idempotent; concurrent callers on PostgreSQL serialise on
    /// an advisory lock.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let backend = self.backend();
        let res = match &self.pool {
            Pool::Sqlite(p, _) => SQLITE_MIGRATOR.run(p).await,
            Pool::Postgres(p) => POSTGRES_MIGRATOR.run(p).await,
        };
        res.map_err(|source| DbError::Migrate { backend, source })
    }

    /// The engine behind this handle.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(..) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Connections in the pool and how many of them are idle.
    pub fn pool_stats(&self) -> (u32, usize) {
        match &self.pool {
            Pool::Sqlite(p, _) => (p.size(), p.num_idle()),
            Pool::Postgres(p) => (p.size(), p.num_idle()),
        }
    }

    /// SQLite: the synchronous connections of the hot paths ([`direct`]).
    pub(crate) fn direct(&self) -> Option<&Arc<direct::Direct>> {
        match &self.pool {
            Pool::Sqlite(_, direct) => Some(direct),
            Pool::Postgres(_) => None,
        }
    }

    /// The URL this handle was opened with, credentials redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Round-trip one trivial statement.
    pub async fn ping(&self) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map_err(q("ping"))?;
        });
        Ok(())
    }

    /// Close every connection; later calls fail.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    /// Rows per multi-row statement with `cols` binds per row.
    pub(crate) fn rows_per_statement(&self, cols: usize) -> usize {
        let limit = match self.backend() {
            Backend::Sqlite => SQLITE_MAX_BINDS,
            Backend::Postgres => POSTGRES_MAX_BINDS,
        };
        (limit / cols.max(1)).clamp(1, MAX_ROWS_PER_STATEMENT)
    }
}

async fn connect_sqlite(url: &str, redacted: String, opts: &DbOptions) -> Result<Db, DbError> {
    let backend = Backend::Sqlite;
    let connect_error = |cause: String| DbError::Connect {
        backend,
        url: redacted.clone(),
        cause,
    };
    let lower = url.to_ascii_lowercase();
    let in_memory = lower.contains(":memory:") || lower.contains("mode=memory");
    // A private in-memory database is a file in a temporary directory of its own: the
    // synchronous connections of `direct` must open the same database as the pool.
    let memory_dir = if in_memory {
        let dir = tempfile::Builder::new()
            .prefix("strata-memory-db-")
            .tempdir()
            .map_err(|e| connect_error(format!("cannot create a temporary directory: {e}")))?;
        Some(Arc::new(dir))
    } else {
        None
    };
    let base = match &memory_dir {
        Some(dir) => SqliteConnectOptions::new().filename(dir.path().join("memory.db")),
        None => SqliteConnectOptions::from_str(url).map_err(|e| DbError::InvalidUrl {
            url: redacted.clone(),
            reason: e.to_string(),
        })?,
    };
    let options = base
        .create_if_missing(true)
        .foreign_keys(true)
        .synchronous(SqliteSynchronous::Normal)
        // Sorts and temporary indexes in memory, not in `etilqs_*` temp files (a profile
        // of pipeline runs showed their creation on every transaction).
        .pragma("temp_store", "MEMORY")
        .pragma("mmap_size", direct::MMAP_SIZE.to_string())
        .pragma(
            "wal_autocheckpoint",
            checkpoint::AUTOCHECKPOINT_PAGES.to_string(),
        )
        .busy_timeout(opts.busy_timeout)
        .journal_mode(SqliteJournalMode::Wal);
    let file = options.get_filename().to_path_buf();
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            connect_error(format!("cannot create directory {}: {e}", dir.display()))
        })?;
    }
    // No ping before handing out a connection: a SQLite connection is a handle on a local
    // file that does not go stale, and the ping is one more round trip to the connection's
    // worker thread on every query (sqlx still pings once when a connection is released).
    let pool = SqlitePoolOptions::new()
        .acquire_timeout(opts.acquire_timeout)
        .test_before_acquire(false)
        .max_connections(opts.max_connections.max(1))
        .min_connections(opts.min_connections)
        .connect_with(options)
        .await
        .map_err(|e| connect_error(e.to_string()))?;
    tracing::debug!(url = %redacted, "opened sqlite database");
    Ok(Db {
        _checkpointer: Some(Arc::new(checkpoint::Checkpointer::start(file.clone()))),
        pool: Pool::Sqlite(pool, Arc::new(direct::Direct::new(file, opts.busy_timeout))),
        _memory_dir: memory_dir,
        url: redacted,
    })
}

async fn connect_postgres(url: &str, redacted: String, opts: &DbOptions) -> Result<Db, DbError> {
    let backend = Backend::Postgres;
    let secret = url_password(url);
    let scrub = |msg: String| match &secret {
        Some(pw) if !pw.is_empty() => msg.replace(pw.as_str(), "***"),
        _ => msg,
    };
    let options = PgConnectOptions::from_str(url).map_err(|e| DbError::InvalidUrl {
        url: redacted.clone(),
        reason: scrub(e.to_string()),
    })?;
    // Probe with one plain connection first: the pool retries refused connections until
    // its acquire timeout and then reports only "pool timed out", losing the cause.
    match tokio::time::timeout(
        opts.acquire_timeout,
        sqlx::ConnectOptions::connect(&options),
    )
    .await
    {
        Err(_) => {
            return Err(DbError::Connect {
                backend,
                url: redacted,
                cause: format!("no answer within {:?}", opts.acquire_timeout),
            })
        }
        Ok(Err(e)) => {
            return Err(DbError::Connect {
                backend,
                url: redacted,
                cause: scrub(e.to_string()),
            })
        }
        Ok(Ok(conn)) => {
            let _ = sqlx::Connection::close(conn).await;
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(opts.max_connections.max(1))
        .min_connections(opts.min_connections)
        .acquire_timeout(opts.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|e| DbError::Connect {
            backend,
            url: redacted.clone(),
            cause: scrub(e.to_string()),
        })?;
    tracing::debug!(url = %redacted, "opened postgres database");
    Ok(Db {
        _memory_dir: None,
        _checkpointer: None,
        pool: Pool::Postgres(pool),
        url: redacted,
    })
}

/// A database URL fit for logs and error messages: the password in the authority
/// (`user:secret@host`) and any `password`/`sslpassword` query parameter become `***`.
/// URLs without credentials come back unchanged.
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.find('?') {
        Some(i) => (&url[..i], Some(&url[i + 1..])),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match head.find("://") {
        Some(i) => {
            let (scheme, rest) = (&head[..i + 3], &head[i + 3..]);
            let auth_end = rest.find(['/', '#']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(auth_end);
            out.push_str(scheme);
            match authority.rfind('@') {
                Some(at) => {
                    let (userinfo, host) = (&authority[..at], &authority[at..]);
                    match userinfo.find(':') {
                        Some(c) => {
                            out.push_str(&userinfo[..c]);
                            out.push_str(":***");
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(head),
    }
    if let Some(query) = query {
        out.push('?');
        let parts: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _))
                    if k.eq_ignore_ascii_case("password")
                        || k.eq_ignore_ascii_case("sslpassword") =>
                {
                    format!("{k}=***")
                }
                _ => kv.to_string(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    out
}

/// The password of a URL (authority or `password=` parameter), percent-decoded.
fn url_password(url: &str) -> Option<String> {
    let (head, query) = match url.find('?') {
        Some(i) => (&url[..i], Some(&url[i + 1..])),
        None => (url, None),
    };
    if let Some(query) = query {
        for kv in query.split('&') {
            if let Some((k, v)) = kv.split_once('=') {
                if k.eq_ignore_ascii_case("password") {
                    return Some(percent_decode(v));
                }
            }
        }
    }
    let rest = &head[head.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let (_, pw) = userinfo.split_once(':')?;
    Some(percent_decode(pw))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() && s.is_char_boundary(i + 3) {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A fresh uuid v7 as text (time-ordered).
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Clamp a caller's `limit` to 1..=10 000 (0 means the default, 100).
pub(crate) fn clamp_limit(limit: i64) -> i64 {
    if limit <= 0 {
        100
    } else {
        limit.min(10_000)
    }
}

/// Start a query builder for `pool`'s engine (fixes the builder's database type).
pub(crate) fn builder<'a, DB: sqlx::Database>(
    _pool: &sqlx::Pool<DB>,
    init: impl Into<String>,
) -> sqlx::QueryBuilder<'a, DB> {
    sqlx::QueryBuilder::new(init)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password_but_keeps_the_rest() {
        assert_eq!(
            redact_url("postgres://strata:s3cr%40t@db.internal:5432/crm?sslmode=require"),
            "postgres://strata:***@db.internal:5432/crm?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/crm?user=a&password=hunter2"),
            "postgres://db/crm?user=a&password=***"
        );
        assert_eq!(
            redact_url("postgres://strata@db/crm"),
            "postgres://strata@db/crm"
        );
        assert_eq!(
            redact_url("sqlite://data/strata.db"),
            "sqlite://data/strata.db"
        );
        assert_eq!(
            url_password("postgres://u:s3cr%40t@h/d").as_deref(),
            Some("s3cr@t")
        );
    }
}
