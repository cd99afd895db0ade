//! Shared helpers of the database tests (`tests/db_*.rs`): fresh SQLite and PostgreSQL
//! databases, and [`both_backends`], which runs one test body on each engine.
#![allow(dead_code)]

pub mod pg;

use std::future::Future;
use std::path::Path;

use sqlx::Connection;
use strata::db::{Backend, Db, DbOptions};

/// URL of a SQLite file `strata.db` inside `dir` (not created yet).
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("strata.db").display())
}

/// A fresh, empty database of `backend`: its URL and what keeps it alive (the SQLite
/// temp dir; drop it after the test).
pub async fn fresh_url(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            (sqlite_url(dir.path()), Some(dir))
        }
        Backend::Postgres => (pg::fresh_database_url().await, None),
    }
}

/// A connected, migrated database of `backend`, with what keeps it alive.
pub async fn fresh_db(backend: Backend) -> (Db, String, Option<tempfile::TempDir>) {
    let (url, guard) = fresh_url(backend).await;
    let db = Db::connect(&url, &DbOptions::default())
        .await
        .unwrap_or_else(|e| panic!("connect {backend}: {e}"));
    db.migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate {backend}: {e}"));
    (db, url, guard)
}

/// Run `test` on a fresh migrated SQLite database, then on a fresh migrated PostgreSQL
/// database. A failure names the engine it happened on.
pub async fn both_backends<F, Fut>(test: F)
where
    F: Fn(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    both_backends_with_url(move |db, _url| test(db)).await
}

/// Like [`both_backends`], also passing the (credential-free) URL of the database so a
/// test can inspect it with its own connection ([`scalar_i64`], [`scalar_string`]).
pub async fn both_backends_with_url<F, Fut>(test: F)
where
    F: Fn(Db, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (db, url, guard) = fresh_db(backend).await;
        let result = tokio::spawn(test(db.clone(), url.clone())).await;
        db.close().await;
        drop(guard);
        if backend == Backend::Postgres {
            pg::drop_database(&url).await;
        }
        if let Err(e) = result {
            let panic = e.into_panic();
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(non-string panic)".into());
            panic!("[on {backend}] {msg}");
        }
    }
}

/// Run one scalar integer query on `url` over a separate connection.
pub async fn scalar_i64(url: &str, sql: &str) -> i64 {
    match Backend::from_url(url).expect("known URL") {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url)
                .await
                .expect("sqlite connect");
            sqlx::query_scalar(sql)
                .fetch_one(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url)
                .await
                .expect("postgres connect");
            sqlx::query_scalar(sql)
                .fetch_one(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    }
}

/// Run one query returning text rows on `url` over a separate connection.
pub async fn strings(url: &str, sql: &str) -> Vec<String> {
    match Backend::from_url(url).expect("known URL") {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url)
                .await
                .expect("sqlite connect");
            sqlx::query_scalar(sql)
                .fetch_all(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url)
                .await
                .expect("postgres connect");
            sqlx::query_scalar(sql)
                .fetch_all(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    }
}
