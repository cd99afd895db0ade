//! Synchronous SQLite connections for the hot paths of pipeline runs.
//!
//! sqlx runs every SQLite statement on a worker thread of its connection: each statement
//! (and `BEGIN`, `COMMIT`) is a round trip between threads, and consecutive statements
//! land on different pooled connections, each of which drops its page cache when another
//! one wrote. A layer commit of half a dozen statements cost ~0.6 ms that way. Here the
//! statements run on the caller's thread, on a connection of a small pool of their own,
//! with cached prepared statements: a layer run's `state` reads and its commit cost a few
//! microseconds per statement.
//!
//! Invariants:
//! * only SQLite file databases (an in-memory database is a private temporary file, see
//!   `connect_sqlite`); the same WAL file as the sqlx pool, so every committed write of one
//!   is seen by the next transaction of the other;
//! * writes take the write lock up front (`BEGIN IMMEDIATE`) and may wait up to the busy
//!   timeout for it: call them from a blocking thread, never from an async task; a read
//!   never waits for a writer in WAL mode and may run anywhere;
//! * a connection goes back to the pool only outside a transaction.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::DbError;

/// Idle connections kept; more are opened under concurrency and closed after use.
const MAX_IDLE: usize = 4;
/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 64;
/// Bytes of the database file each connection (here and in the sqlx pool) reads through
/// a memory map instead of `read` calls. Every write by another connection empties a
/// connection's page cache, so pipeline runs re-read the same pages all the time; mapped,
/// they are not copied from the kernel again (a profile showed `pread` copies at ~5 %).
pub(crate) const MMAP_SIZE: i64 = 256 << 20;

pub(crate) struct Direct {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The longest `busy_timeout` of the databases opened in this process, in milliseconds
/// ([`wait_for_lock`] has no per-connection data; a process has one database outside
/// tests).
static BUSY_TIMEOUT_MS: AtomicU64 = AtomicU64::new(0);
/// [`wait_for_lock`]'s first waits, and how many of them.
const SHORT_WAIT: Duration = Duration::from_micros(50);
const SHORT_WAITS: i32 = 40;

/// Busy handler: whether to try again for the write lock after `attempt` tries. SQLite's
/// own handler sleeps 1, 2, 5, 10… ms; a layer commit holds the lock for ~0.1 ms, so a
/// commit that collided with another writer (the audit sink's batch, another run) slept
/// ten times longer than the lock was held. Here: 50 µs steps for the first 2 ms, then
/// 1 ms steps up to the busy timeout.
fn wait_for_lock(attempt: i32) -> bool {
    let limit = Duration::from_millis(BUSY_TIMEOUT_MS.load(Ordering::Relaxed));
    let short = SHORT_WAIT * attempt.clamp(0, SHORT_WAITS) as u32;
    let waited = short + Duration::from_millis((attempt - SHORT_WAITS).max(0) as u64);
    if waited >= limit {
        return false;
    }
    std::thread::sleep(if attempt < SHORT_WAITS {
        SHORT_WAIT
    } else {
        Duration::from_millis(1)
    });
    true
}

impl Direct {
    /// Connections to the SQLite file at `path` (opened on first use; the sqlx pool has
    /// created it and set WAL mode, which is stored in the file).
    pub(crate) fn new(path: PathBuf, busy_timeout: Duration) -> Self {
        let ms = u64::try_from(busy_timeout.as_millis()).unwrap_or(u64::MAX);
        BUSY_TIMEOUT_MS.fetch_max(ms, Ordering::Relaxed);
        Direct {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_handler(Some(wait_for_lock))?;
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
        )?;
        conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            super::checkpoint::AUTOCHECKPOINT_PAGES,
        )?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    /// Runs `f` on an idle connection (a new one if none is idle). `f` must leave no
    /// transaction open (a `rusqlite::Transaction` rolls back when dropped); a connection
    /// that is still in one is closed, not reused.
    pub(crate) fn run<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match idle {
            Some(c) => c,
            None => self.open().map_err(sqlite(op))?,
        };
        let out = f(&mut conn);
        if conn.is_autocommit() {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        out
    }
}

thread_local! {
    /// Set inside [`blocking_scope`]: this thread may wait for SQLite's write lock.
    static MAY_BLOCK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread marked as one that may block (a blocking thread of the
/// runtime, never an async worker): SQLite writes made through [`Direct::write`] inside
/// `f` then run right here instead of hopping to another blocking thread. A layer's
/// thread runs its layer in this scope, so the writes of the in-process CRM tools it
/// calls stay on it.
pub(crate) fn blocking_scope<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            MAY_BLOCK.set(self.0);
        }
    }
    let _restore = Restore(MAY_BLOCK.replace(true));
    f()
}

/// True inside [`blocking_scope`].
pub(crate) fn may_block() -> bool {
    MAY_BLOCK.get()
}

impl Direct {
    /// Runs the write `f` (see [`Direct::run`]): right here inside [`blocking_scope`],
    /// else on a blocking thread of the runtime (it may wait for the write lock up to the
    /// busy timeout, which an async worker must not).
    pub(crate) async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        if may_block() {
            return self.run(op, f);
        }
        let direct = self.clone();
        tokio::task::spawn_blocking(move || direct.run(op, f))
            .await
            .map_err(|e| DbError::Sqlite {
                op,
                cause: format!("the write's blocking task failed: {e}"),
            })?
    }
}

/// A write transaction on a direct connection: `BEGIN IMMEDIATE` (the write lock up
/// front), rolled back when dropped uncommitted. Unlike `rusqlite::Transaction`, whose
/// `BEGIN` and `COMMIT` are parsed again on every use (`execute_batch`), its three
/// statements come from the connection's statement cache (a layer commit spent ~5 % of
/// its time parsing them).
pub(crate) struct WriteTx<'c> {
    conn: &'c Connection,
    done: bool,
}

impl<'c> WriteTx<'c> {
    pub(crate) fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(WriteTx { conn, done: false })
    }

    pub(crate) fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.done = true;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        if !self.done && !self.conn.is_autocommit() {
            // A failed rollback leaves the transaction open: `Direct::run` then closes
            // the connection instead of reusing it.
            let _ = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut st| st.execute([]));
        }
    }
}

/// `"?1, ?2, …, ?n"`: the placeholders of a single-row `INSERT` of `n` columns.
pub(crate) fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `.map_err(sqlite("op"))`: a rusqlite error raised while running `op`; a violated
/// constraint is [`DbError::Constraint`], as from sqlx.
pub(crate) fn sqlite(op: &'static str) -> impl FnOnce(rusqlite::Error) -> DbError {
    move |e| match &e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            DbError::Constraint {
                op,
                cause: msg.clone().unwrap_or_else(|| e.to_string()),
            }
        }
        _ => DbError::Sqlite {
            op,
            cause: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> (tempfile::TempDir, Direct) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let c = Connection::open(&path).expect("create");
        c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY);")
            .expect("schema");
        (dir, Direct::new(path, Duration::from_millis(50)))
    }

    #[test]
    fn a_connection_left_in_a_transaction_is_not_reused() {
        let (_dir, d) = scratch();
        d.run("t", |c| {
            c.execute_batch("BEGIN; INSERT INTO t VALUES ('a');")
                .map_err(sqlite("t"))
        })
        .expect("runs");
        assert!(d.idle.lock().unwrap().is_empty());
        // The abandoned transaction was rolled back when its connection closed.
        let n: i64 = d
            .run("t", |c| {
                c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                    .map_err(sqlite("t"))
            })
            .expect("reads");
        assert_eq!(n, 0);
        assert_eq!(d.idle.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_write_transaction_commits_or_rolls_back_when_dropped() {
        let (_dir, d) = scratch();
        let count = |c: &mut Connection| {
            c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))
                .map_err(sqlite("t"))
        };
        // Inserts `key` in a WriteTx, committed or dropped uncommitted.
        let insert = |key: &'static str, commit: bool| {
            move |c: &mut Connection| {
                let tx = WriteTx::begin(c).map_err(sqlite("t"))?;
                tx.execute("INSERT INTO t VALUES (?1)", [key])
                    .map_err(sqlite("t"))?;
                if commit {
                    tx.commit().map_err(sqlite("t"))?;
                }
                Ok(())
            }
        };
        d.run("t", insert("kept", true)).expect("commits");
        d.run("t", insert("dropped", false)).expect("runs");
        // The rolled-back connection went back to the pool and is usable.
        assert_eq!(d.idle.lock().unwrap().len(), 1);
        assert_eq!(d.run("t", count).expect("reads"), 1);
        // Its cached BEGIN works again.
        d.run("t", insert("again", true)).expect("commits again");
        assert_eq!(d.run("t", count).expect("reads"), 2);
    }

    #[test]
    fn a_violated_constraint_is_a_constraint_error_naming_the_operation() {
        let (_dir, d) = scratch();
        let insert = |c: &mut Connection| {
            c.execute("INSERT INTO t VALUES ('a')", [])
                .map_err(sqlite("insert_t"))
        };
        d.run("insert_t", insert).expect("first insert");
        let e = d.run("insert_t", insert).expect_err("duplicate key");
        assert!(e.is_constraint(), "{e}");
        assert!(e.to_string().starts_with("insert_t failed"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_write_runs_on_this_thread_only_inside_a_blocking_scope() {
        let (_dir, d) = scratch();
        let d = Arc::new(d);
        let thread_of_write = |d: Arc<Direct>| async move {
            d.write("t", |_| Ok(std::thread::current().id()))
                .await
                .expect("writes")
        };
        // From an async task: on another (blocking) thread.
        let here = std::thread::current().id();
        assert_ne!(thread_of_write(d.clone()).await, here);
        assert!(!may_block());
        // Inside the scope (on a blocking thread): right here, and the mark is undone
        // when the scope ends.
        let handle = tokio::runtime::Handle::current();
        let (inside, outside_after) = tokio::task::spawn_blocking(move || {
            let me = std::thread::current().id();
            let inside = blocking_scope(|| handle.block_on(thread_of_write(d.clone())) == me);
            (inside, may_block())
        })
        .await
        .expect("joins");
        assert!(
            inside,
            "the write hopped to another thread inside the scope"
        );
        assert!(!outside_after, "the scope's mark outlived it");
    }

    #[test]
    fn a_write_waits_for_a_lock_held_by_another_connection() {
        let (dir, d) = scratch();
        let other = Connection::open(dir.path().join("t.db")).expect("open");
        other
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES ('held');")
            .expect("takes the write lock");
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            other.execute_batch("COMMIT").expect("commits");
        });
        d.run("insert_t", |c| {
            c.execute("INSERT INTO t VALUES ('after')", [])
                .map_err(sqlite("insert_t"))
        })
        .expect("the write went through once the lock was released");
        releaser.join().expect("joins");
        assert!(!wait_for_lock(i32::MAX), "gives up past the busy timeout");
    }

    #[test]
    fn a_missing_file_fails_with_the_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = Direct::new(dir.path().join("absent.db"), Duration::from_millis(50));
        let e = d.run("probe", |_| Ok(())).expect_err("no such file");
        assert!(e.to_string().contains("probe failed"), "{e}");
    }
}
