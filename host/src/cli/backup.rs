//! `strata backup FILE` and `strata restore FILE`: the SQLite database file, copied with
//! SQLite's online backup API ([`crate::db::backup`]). PostgreSQL: `pg_dump`/`pg_restore`.

use crate::config::Config;
use crate::db::backup::{self, CopyOptions, CopyReport};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct BackupArgs {
    /// Where to write the copy (written next to it under a temporary name, then renamed).
    pub file: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// Pages copied per step (the read snapshot is held throughout; writers go on).
    #[arg(long, default_value_t = 256)]
    pub pages_per_step: i32,
    /// Pause between steps, in milliseconds.
    #[arg(long, default_value_t = 2)]
    pub pause_ms: u64,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// A backup written by `strata backup`.
    pub file: PathBuf,
    /// How long to wait for other connections to the database to close before refusing.
    #[arg(long, default_value_t = 2000)]
    pub lock_wait_ms: u64,
}

pub async fn backup(args: BackupArgs, config: Config) -> anyhow::Result<()> {
    let db = backup::sqlite_file(&config.database.url, "strata backup")?;
    let opts = CopyOptions {
        pages_per_step: args.pages_per_step,
        pause: Duration::from_millis(args.pause_ms),
        ..CopyOptions::default()
    };
    let dest = args.file.clone();
    let report = tokio::task::spawn_blocking(move || {
        backup::backup(&db, &args.file, args.force, &opts).map(|r| (db, r))
    })
    .await??;
    let (db, r) = report;
    println!(
        "backed up {} to {}: {}",
        db.display(),
        dest.display(),
        summary(&r)
    );
    Ok(())
}

pub async fn restore(args: RestoreArgs, config: Config) -> anyhow::Result<()> {
    let db = backup::sqlite_file(&config.database.url, "strata restore")?;
    let lock_wait = Duration::from_millis(args.lock_wait_ms);
    let (db, from, r) = tokio::task::spawn_blocking(move || {
        backup::restore(&db, &args.file, lock_wait, &CopyOptions::default())
            .map(|r| (db, args.file, r))
    })
    .await??;
    println!(
        "restored {} from {}: {}, {} migrations, integrity_check ok",
        db.display(),
        from.display(),
        summary(&r.copy),
        r.migrations
    );
    match r.kept {
        Some(kept) => println!("the replaced database is kept as {}", kept.display()),
        None => println!("there was no database to replace"),
    }
    Ok(())
}

fn summary(r: &CopyReport) -> String {
    format!(
        "{} pages, {} bytes in {} steps, {:.2} s",
        r.pages,
        r.bytes,
        r.steps,
        r.elapsed.as_secs_f64()
    )
}
