//! Backup and restore of the SQLite database file (`strata backup`, `strata restore`).
//!
//! **Backup** is SQLite's online backup API (`sqlite3_backup_init/step/finish`, through
//! rusqlite's wrapper over the same `libsqlite3-sys` the host links) on a connection of
//! its own, while `strata serve` keeps running. The source connection holds one read
//! transaction for the whole copy: in WAL mode that is a snapshot, so the copy is the
//! database as of the moment the backup started (every transaction committed before it,
//! none after), writers are never blocked, and the copy is not restarted by their
//! commits (without the snapshot, any commit between two steps would restart it). The
//! pages go over in chunks with a short pause between them; a step that finds the
//! database busy or locked is retried. The copy is written to a temporary file next to
//! the destination, synced, and renamed into place only when complete.
//!
//! **Restore** puts a backup back while no process has the database open: the backup is
//! copied (same API) next to the database and checked (`PRAGMA integrity_check`,
//! Strata's migrations table, no migration newer than this build knows); then the
//! database is opened with `locking_mode = EXCLUSIVE`, which in WAL mode takes an
//! exclusive lock on the database file — refused with [`BackupError::InUse`] while any
//! other connection (a running `strata serve`: its checkpointer alone keeps one open)
//! holds its shared lock; its WAL is checkpointed into the file, the file (with any
//! `-wal`/`-shm` left) is kept as `<db>.before-restore-<timestamp>`, and the checked copy
//! is renamed into place.
//!
//! PostgreSQL databases are backed up with `pg_dump`/`pg_restore` (docs/operations.md).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::Backend;

/// Why a backup or restore did not happen. Every message names the file and the cause.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The database is PostgreSQL: `pg_dump`/`pg_restore` are the tools.
    #[error(
        "{command} works on SQLite databases; {url} is PostgreSQL: use pg_dump -Fc / \
         pg_restore as described in docs/operations.md (\"Backup and restore\")"
    )]
    Postgres { command: &'static str, url: String },
    /// The database URL names no file (unparsable, in-memory, not SQLite).
    #[error("database URL {url}: {reason}")]
    Url { url: String, reason: String },
    /// The source database or backup file does not exist.
    #[error("{0} does not exist")]
    Missing(PathBuf),
    /// The destination exists and `--force` was not given.
    #[error("{0} already exists; pass --force to overwrite it")]
    Exists(PathBuf),
    /// A SQLite call failed.
    #[error("{op} {path}: {source}")]
    Sqlite {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The source stayed busy or locked past the retry budget.
    #[error("{path} stayed busy or locked for {waited:?} during the copy; try again")]
    Busy { path: PathBuf, waited: Duration },
    /// A file operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a database Strata made (no migrations table, or newer migrations).
    #[error("{path} is not a usable Strata database: {reason}")]
    NotStrata { path: PathBuf, reason: String },
    /// `PRAGMA integrity_check` found problems.
    #[error("{path} fails PRAGMA integrity_check: {report}")]
    Corrupt { path: PathBuf, report: String },
    /// Another connection holds the database open (a running `strata serve`).
    #[error(
        "{0} is in use by another process (a running `strata serve`?); stop it before restoring"
    )]
    InUse(PathBuf),
}

/// How a copy proceeds.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Pages per `sqlite3_backup_step`.
    pub pages_per_step: i32,
    /// Pause between steps.
    pub pause: Duration,
    /// Longest total wait on a busy or locked source before giving up.
    pub busy_budget: Duration,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            pages_per_step: 256,
            pause: Duration::from_millis(2),
            busy_budget: Duration::from_secs(30),
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Pages copied (the database's page count).
    pub pages: u64,
    /// Size of the written file.
    pub bytes: u64,
    /// `sqlite3_backup_step` calls.
    pub steps: u64,
    pub elapsed: Duration,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub copy: CopyReport,
    /// Where the replaced database was kept (none if there was none).
    pub kept: Option<PathBuf>,
    /// Migrations recorded in the restored database.
    pub migrations: i64,
}

/// The SQLite file a database URL names. `command` names the caller in the PostgreSQL
/// error.
pub fn sqlite_file(url: &str, command: &'static str) -> Result<PathBuf, BackupError> {
    let redacted = super::redact_url(url);
    match Backend::from_url(url) {
        Some(Backend::Sqlite) => {}
        Some(Backend::Postgres) => {
            return Err(BackupError::Postgres {
                command,
                url: redacted,
            })
        }
        None => {
            return Err(BackupError::Url {
                url: redacted,
                reason: "expected sqlite:PATH".into(),
            })
        }
    }
    let lower = url.to_ascii_lowercase();
    if lower.contains(":memory:") || lower.contains("mode=memory") {
        return Err(BackupError::Url {
            url: redacted,
            reason: "an in-memory database has no file to back up or restore".into(),
        });
    }
    let opts =
        sqlx::sqlite::SqliteConnectOptions::from_str(url.trim()).map_err(|e| BackupError::Url {
            url: redacted,
            reason: e.to_string(),
        })?;
    Ok(opts.get_filename().to_path_buf())
}

/// Copies the live database `db` to `dest` (see the module docs). Refuses to replace an
/// existing `dest` unless `force`.
pub fn backup(
    db: &Path,
    dest: &Path,
    force: bool,
    opts: &CopyOptions,
) -> Result<CopyReport, BackupError> {
    if !db.is_file() {
        return Err(BackupError::Missing(db.to_path_buf()));
    }
    if dest.exists() && !force {
        return Err(BackupError::Exists(dest.to_path_buf()));
    }
    let tmp = sibling(dest, &format!("tmp-{}", std::process::id()));
    cleaning_up(&tmp, || {
        let report = copy_into(db, &tmp, opts)?;
        rename(&tmp, dest)?;
        Ok(report)
    })
}

/// Puts the backup `from` in place of the database `db`, which no process may have open
/// (see the module docs). `lock_wait` is how long to wait for other connections to go.
pub fn restore(
    db: &Path,
    from: &Path,
    lock_wait: Duration,
    opts: &CopyOptions,
) -> Result<RestoreReport, BackupError> {
    if !from.is_file() {
        return Err(BackupError::Missing(from.to_path_buf()));
    }
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    }
    let tmp = sibling(db, &format!("restore-{}", std::process::id()));
    cleaning_up(&tmp, || {
        let copy = copy_into(from, &tmp, opts)?;
        let migrations = check_strata_database(&tmp)?;
        let kept = retire(db, lock_wait)?;
        rename(&tmp, db)?;
        Ok(RestoreReport {
            copy,
            kept,
            migrations,
        })
    })
}

/// Runs `work`, which writes the temporary database `tmp` and renames it into place; if
/// it fails, whatever it left of `tmp` is removed.
fn cleaning_up<T>(
    tmp: &Path,
    work: impl FnOnce() -> Result<T, BackupError>,
) -> Result<T, BackupError> {
    let done = work();
    if done.is_err() {
        let _ = remove_database_files(tmp);
    }
    done
}

/// `PRAGMA integrity_check` of `path`: `Ok` when it says `ok`, else the first problems.
pub fn integrity_check(path: &Path) -> Result<(), BackupError> {
    let conn = open(path)?;
    integrity_check_on(&conn, path)
}

fn integrity_check_on(conn: &Connection, path: &Path) -> Result<(), BackupError> {
    let lines = (|| {
        let mut stmt = conn.prepare("PRAGMA integrity_check(20)")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<rusqlite::Result<Vec<String>>>()
    })()
    .map_err(sqlite("integrity check of", path))?;
    if lines.len() == 1 && lines[0] == "ok" {
        Ok(())
    } else {
        Err(BackupError::Corrupt {
            path: path.to_path_buf(),
            report: lines.join("; "),
        })
    }
}

/// Checks that `path` is sound and holds Strata's schema, not newer than this build's;
/// returns the number of migrations it records.
fn check_strata_database(path: &Path) -> Result<i64, BackupError> {
    let conn = open(path)?;
    integrity_check_on(&conn, path)?;
    let not_strata = |reason: String| BackupError::NotStrata {
        path: path.to_path_buf(),
        reason,
    };
    let (count, newest): (i64, Option<i64>) = conn
        .query_row(
            "SELECT count(*), max(version) FROM _sqlx_migrations WHERE success",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| not_strata(format!("no migrations table ({e})")))?;
    let known = super::SQLITE_MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0);
    match newest {
        None => Err(not_strata("its migrations table is empty".into())),
        Some(v) if v > known => Err(not_strata(format!(
            "it has migration {v}, newer than this build's latest ({known}): restore it with the \
             Strata version that wrote it"
        ))),
        Some(_) => Ok(count),
    }
}

/// Online-backup copy of the database at `src` into a new file `dest` (replaced if
/// present), synced to disk.
fn copy_into(src: &Path, dest: &Path, opts: &CopyOptions) -> Result<CopyReport, BackupError> {
    let started = Instant::now();
    remove_database_files(dest)?;
    let source = open(src)?;
    // One read transaction for the whole copy: a snapshot in WAL mode (see module docs).
    source
        .execute_batch("BEGIN")
        .and_then(|()| first_read(&source))
        .map_err(sqlite("start a read transaction on", src))?;
    let mut target = Connection::open(dest).map_err(sqlite("create", dest))?;
    let (pages, steps) = {
        let backup =
            Backup::new(&source, &mut target).map_err(sqlite("start the backup of", src))?;
        let mut steps = 0u64;
        let mut waited = Duration::ZERO;
        loop {
            steps += 1;
            match backup
                .step(opts.pages_per_step.max(1))
                .map_err(sqlite("copy pages of", src))?
            {
                StepResult::Done => break,
                StepResult::More => std::thread::sleep(opts.pause),
                // Another connection writes (rollback journal) or holds a lock: wait, retry.
                StepResult::Busy | StepResult::Locked => {
                    if waited >= opts.busy_budget {
                        return Err(BackupError::Busy {
                            path: src.to_path_buf(),
                            waited,
                        });
                    }
                    let nap = opts.pause.max(Duration::from_millis(10));
                    std::thread::sleep(nap);
                    waited += nap;
                }
                // `StepResult` is non-exhaustive; any other answer means "not done yet".
                _ => std::thread::sleep(opts.pause),
            }
        }
        (backup.progress().pagecount.max(0) as u64, steps)
    };
    source
        .execute_batch("COMMIT")
        .map_err(sqlite("end the read transaction on", src))?;
    drop(source);
    target.close().map_err(|(_, e)| sqlite("close", dest)(e))?;
    let file = std::fs::File::open(dest).map_err(io("open", dest))?;
    file.sync_all().map_err(io("sync", dest))?;
    let bytes = file.metadata().map_err(io("stat", dest))?.len();
    Ok(CopyReport {
        pages,
        bytes,
        steps,
        elapsed: started.elapsed(),
    })
}

/// Moves the database at `db` (if any) aside as `<db>.before-restore-<timestamp>`, after
/// proving no other connection has it open and checkpointing its WAL into it. Returns
/// where it went.
fn retire(db: &Path, lock_wait: Duration) -> Result<Option<PathBuf>, BackupError> {
    if !db.exists() {
        return Ok(None);
    }
    {
        let conn = open(db)?;
        conn.busy_timeout(lock_wait)
            .map_err(sqlite("set busy_timeout on", db))?;
        // In WAL mode the first read in exclusive locking mode takes an EXCLUSIVE lock on
        // the database file, which fails while another connection holds its SHARED lock
        // (every WAL connection does from its first read until it closes).
        let locked = conn
            .query_row("PRAGMA locking_mode = EXCLUSIVE", [], |_| Ok(()))
            .and_then(|()| first_read(&conn));
        match locked {
            Ok(()) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                return Err(BackupError::InUse(db.to_path_buf()));
            }
            Err(e) => return Err(sqlite("lock", db)(e)),
        }
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(sqlite("checkpoint", db))?;
        conn.close().map_err(|(_, e)| sqlite("close", db)(e))?;
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let kept = sibling(db, &format!("before-restore-{stamp}"));
    for suffix in ["-wal", "-shm"] {
        let side = with_suffix(db, suffix);
        if side.exists() {
            rename(&side, &with_suffix(&kept, suffix))?;
        }
    }
    rename(db, &kept)?;
    Ok(Some(kept))
}

/// A first read on `conn`: starts its read transaction (and takes its locks).
fn first_read(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
}

/// A read-write connection to an existing database file (never creates one).
fn open(path: &Path) -> Result<Connection, BackupError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite("open", path))
}

/// `<path>.<tag>` in the same directory.
fn sibling(path: &Path, tag: &str) -> PathBuf {
    with_suffix(path, &format!(".{tag}"))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Renames `from` to `to` and syncs the directory, so the rename survives a crash.
fn rename(from: &Path, to: &Path) -> Result<(), BackupError> {
    std::fs::rename(from, to).map_err(io("rename", from))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Removes `path` and its `-journal`, `-wal`, `-shm` files, where present.
fn remove_database_files(path: &Path) -> Result<(), BackupError> {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let p = with_suffix(path, suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &p)(e)),
        }
    }
    Ok(())
}

fn sqlite(op: &'static str, path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Sqlite { op, path, source }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Io { op, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_file_and_postgres_is_pointed_to_pg_dump() {
        assert_eq!(
            sqlite_file("sqlite://var/strata.db", "backup").unwrap(),
            PathBuf::from("var/strata.db")
        );
        let e = sqlite_file("postgres://u:secret@h/db", "backup")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pg_dump") && e.contains("docs/operations.md"),
            "{e}"
        );
        assert!(!e.contains("secret"), "{e}");
        assert!(sqlite_file("sqlite::memory:", "backup").is_err());
    }
}
