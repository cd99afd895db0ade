//! Connecting, migrating and the schema, on SQLite and PostgreSQL.

mod support;

use strata::db::{redact_url, Backend, Db, DbError, DbOptions};
use support::{both_backends, both_backends_with_url, strings};

#[tokio::test]
async fn migrations_are_idempotent_when_run_twice() {
    both_backends(|db| async move {
        db.migrate().await.expect("second migrate");
        db.migrate().await.expect("third migrate");
        db.ping().await.expect("ping");
    })
    .await;
}

#[tokio::test]
async fn both_migration_dirs_hold_the_same_versions() {
    let list = |dir: &str| {
        let mut v: Vec<String> = std::fs::read_dir(format!(
            "{}/../migrations/{dir}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("migrations dir")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
        v.sort();
        v
    };
    let sqlite = list("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, list("postgres"));
}

#[tokio::test]
async fn migrated_schema_has_the_same_tables_and_columns_on_both_engines() {
    let mut seen: Vec<Vec<String>> = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (_db, url, _guard) = support::fresh_db(backend).await;
        let sql = match backend {
            Backend::Sqlite => "SELECT m.name || '.' || p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                                WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
            Backend::Postgres => "SELECT table_name || '.' || column_name FROM information_schema.columns \
                                  WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%'",
        };
        let mut cols = strings(&url, sql).await;
        cols.sort();
        seen.push(cols);
    }
    assert!(
        seen[0].contains(&"lead_scores.fit_score".to_string()),
        "{:?}",
        seen[0]
    );
    assert!(seen[0].contains(&"agent_executions.mcp_tools_used".to_string()));
    assert_eq!(seen[0], seen[1], "SQLite and PostgreSQL schemas differ");
}

#[tokio::test]
async fn backend_is_reported() {
    both_backends_with_url(|db, url| async move {
        assert_eq!(Some(db.backend()), Backend::from_url(&url));
    })
    .await;
}

#[tokio::test]
async fn sqlite_creates_missing_parent_dirs_and_runs_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a/b/c/strata.db").display());
    let db = Db::connect(&url, &DbOptions::default())
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    assert!(dir.path().join("a/b/c/strata.db").is_file());
    assert_eq!(
        support::strings(&url, "PRAGMA journal_mode").await,
        vec!["wal".to_string()]
    );
    db.close().await;
}

#[tokio::test]
async fn sqlite_in_memory_database_works() {
    let db = Db::connect("sqlite::memory:", &DbOptions::default())
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    db.state_set("p", "k", b"v").await.unwrap();
    assert_eq!(db.state_get("p", "k").await.unwrap(), Some(b"v".to_vec()));
}

#[tokio::test]
async fn bad_url_gives_clear_error_naming_cause_without_password() {
    let opts = DbOptions {
        acquire_timeout: std::time::Duration::from_secs(3),
        ..DbOptions::default()
    };

    // Unsupported scheme.
    let e = Db::connect("mysql://root:hunter2@localhost/crm", &opts)
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DbError::InvalidUrl { .. }), "{msg}");
    assert!(
        msg.contains("unsupported scheme") && !msg.contains("hunter2"),
        "{msg}"
    );

    // Nobody listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = Db::connect(
        &format!("postgres://strata:hunter2@127.0.0.1:{port}/crm"),
        &opts,
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DbError::Connect { .. }), "{msg}");
    assert!(!msg.contains("hunter2"), "password leaked: {msg}");
    assert!(msg.contains("strata:***@127.0.0.1"), "{msg}");
    assert!(
        msg.to_lowercase().contains("refused"),
        "cause missing: {msg}"
    );

    // Malformed port.
    let e = Db::connect("postgres://strata:hunter2@127.0.0.1:notaport/crm", &opts)
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DbError::InvalidUrl { .. }), "{msg}");
    assert!(!msg.contains("hunter2"), "password leaked: {msg}");

    // Control: a good URL of the same server connects.
    let url = support::pg::fresh_database_url().await;
    let ok = Db::connect(&url, &opts).await.expect("trust auth connects");
    ok.close().await;

    // SQLite path that cannot be created.
    let e = Db::connect("sqlite:///proc/strata-no/such.db", &opts)
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DbError::Connect { .. }), "{msg}");
    assert!(msg.contains("/proc/strata-no"), "{msg}");
}

#[test]
fn redact_url_hides_passwords_only() {
    assert_eq!(
        redact_url("postgres://strata:s3cret@db:5432/crm?sslmode=require&password=x"),
        "postgres://strata:***@db:5432/crm?sslmode=require&password=***"
    );
    assert_eq!(
        redact_url("sqlite://data/strata.db"),
        "sqlite://data/strata.db"
    );
}
