//! SQLite WAL checkpoints off the commit path.
//!
//! By default the connection whose commit takes the WAL past 1,000 pages copies the WAL
//! back into the database file and syncs it, inside that commit: with pipeline runs
//! writing ~16 WAL pages per layer commit, every fifth or sixth run paid for it (its
//! latency roughly doubled, which set the p90). Here a thread of its own runs a
//! `PASSIVE` checkpoint (it never waits for, nor blocks, readers or writers) every
//! [`EVERY`]; committing connections checkpoint by themselves only past
//! [`AUTOCHECKPOINT_PAGES`], a safety net should this thread fall behind or be gone.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// WAL pages after which a committing connection checkpoints by itself (`PRAGMA
/// wal_autocheckpoint`, set on every connection; 64 MiB of 4 KiB pages).
pub(crate) const AUTOCHECKPOINT_PAGES: i64 = 16_384;
/// How often the checkpointer runs.
const EVERY: Duration = Duration::from_millis(100);

/// The checkpointer thread of one SQLite database; it stops when this is dropped.
pub(crate) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer").finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// Starts checkpointing the SQLite database at `path` (in WAL mode). Without a
    /// thread (the system refused one) the connections' own checkpoints still bound the
    /// WAL: that is logged, not an error.
    pub(crate) fn start(path: PathBuf) -> Checkpointer {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("strata-checkpoint".into())
            .spawn(move || run(path, &flag));
        if let Err(e) = spawned {
            tracing::warn!("no WAL checkpointer thread ({e}): commits checkpoint by themselves");
        }
        Checkpointer { stop }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
    }
}

fn run(path: PathBuf, stop: &(Mutex<bool>, Condvar)) {
    let conn = match Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(path = %path.display(), "WAL checkpointer cannot open the database: {e}");
            return;
        }
    };
    let (stopped, wake) = stop;
    loop {
        {
            let guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
            let (guard, _) = wake
                .wait_timeout_while(guard, EVERY, |stopped| !*stopped)
                .unwrap_or_else(|e| e.into_inner());
            if *guard {
                return;
            }
        }
        // (busy, WAL frames, frames checkpointed); PASSIVE copies what no reader still
        // needs and returns at once otherwise.
        let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        if let Err(e) = r {
            tracing::debug!(path = %path.display(), "WAL checkpoint failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wal_is_checkpointed_in_the_background_and_the_thread_stops_on_drop() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let c = Connection::open(&path).expect("create");
        // This connection never checkpoints: only the checkpointer copies the WAL back
        // into the database file, which is all the file grows by.
        c.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
             CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);",
        )
        .expect("schema");
        let before = std::fs::metadata(&path).expect("stat").len();
        let cp = Checkpointer::start(path.clone());
        let value = "x".repeat(1000);
        for i in 0..200 {
            c.execute("INSERT INTO t VALUES (?1, ?2)", (i, &value))
                .expect("insert");
        }
        // ~50 pages of rows: within a few periods they are in the database file.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let size = std::fs::metadata(&path).expect("stat").len();
            if size >= before + 40 * 4096 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "WAL not checkpointed: the database file is {size} bytes (was {before})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let stop = cp.stop.clone();
        drop(cp);
        assert!(*stop.0.lock().unwrap(), "the stop flag is set on drop");
    }
}
