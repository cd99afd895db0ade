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

/// SQLite's migration 0006 rebuilds `event_deliveries` (WITHOUT ROWID) and `events` (no
/// AUTOINCREMENT) to write fewer pages per commit: a database migrated to 0005 with
/// events and deliveries in it keeps every row, `seq` and reference, and goes on
/// numbering events after the last one.
#[tokio::test]
async fn sqlite_migration_0006_keeps_events_deliveries_and_their_order() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let url = support::sqlite_url(dir.path());
    let up_to_0005 = dir.path().join("migrations");
    std::fs::create_dir(&up_to_0005).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    for entry in std::fs::read_dir(&source).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.as_str() < "0006" {
            std::fs::copy(source.join(&name), up_to_0005.join(&name)).unwrap();
        }
    }
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
    let mut c =
        sqlx::SqliteConnection::connect_with(&options.create_if_missing(true).foreign_keys(true))
            .await
            .unwrap();
    sqlx::migrate::Migrator::new(up_to_0005.as_path())
        .await
        .unwrap()
        .run(&mut c)
        .await
        .unwrap();
    c.execute(
        "INSERT INTO pipeline_runs (id, pipeline, status, dry_run, trigger_event_id, created_at) \
           VALUES ('r1', 'golden', 'running', 0, 'e1', 1); \
         INSERT INTO events (id, container, topic, payload, emitted_at, producer, run_id, dry_run) \
           VALUES ('e1', 'sales', 'lead.received', '{}', 1, 'api', 'r1', 0), \
                  ('e2', 'sales', 'lead.accepted', '{\"n\":2}', 2, 'intake@1.0.0', 'r1', 0), \
                  ('e3', 'finance', 'deal.approved', '{}', 3, 'pricing@1.0.0', 'r1', 0); \
         DELETE FROM events WHERE id = 'e3'; \
         INSERT INTO events (id, container, topic, payload, emitted_at, producer, run_id, dry_run) \
           VALUES ('e4', 'finance', 'invoice.issued', '{}', 4, 'invoicing@1.0.0', 'r1', 0); \
         INSERT INTO event_deliveries (event_id, subscriber, container, run_id, status, attempts, \
           created_at, acked_at) VALUES ('e1', 'intake', 'sales', 'r1', 'acked', 1, 1, 2), \
           ('e2', 'enrichment', 'sales', 'r1', 'pending', 0, 2, NULL), \
           ('e2', 'booking', 'operations', 'r1', 'failed', 3, 2, NULL), \
           ('e4', 'forecast', 'finance', 'r1', 'pending', 0, 4, NULL);",
    )
    .await
    .unwrap();
    c.close().await.unwrap();
    let rows = |sql: &'static str| {
        let url = url.clone();
        async move { support::strings(&url, sql).await }
    };
    let events =
        "SELECT seq || ' ' || id || ' ' || topic || ' ' || payload FROM events ORDER BY seq";
    let deliveries = "SELECT event_id || ' ' || subscriber || ' ' || status || ' ' || attempts \
                      FROM event_deliveries ORDER BY event_id, subscriber";
    let (events_before, deliveries_before) = (rows(events).await, rows(deliveries).await);
    assert_eq!(events_before.len(), 3);

    let db = Db::connect(&url, &DbOptions::default()).await.unwrap();
    db.migrate().await.expect("migrate to the latest version");
    assert_eq!(rows(events).await, events_before);
    assert_eq!(rows(deliveries).await, deliveries_before);
    assert!(rows("PRAGMA foreign_key_check").await.is_empty());
    let ddl = rows(
        "SELECT sql FROM sqlite_master WHERE name IN ('events', 'event_deliveries') ORDER BY name",
    )
    .await;
    assert!(ddl[0].contains("WITHOUT ROWID"), "{}", ddl[0]);
    assert!(!ddl[1].contains("AUTOINCREMENT"), "{}", ddl[1]);
    let indexes = rows(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN \
                        ('events', 'event_deliveries') AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .await;
    assert_eq!(
        indexes,
        [
            "events_container_seq_idx",
            "events_run_idx",
            "events_topic_seq_idx"
        ]
    );
    // The run reads as before, and a new event is numbered after the last one.
    let detail = db.get_run("r1").await.unwrap().unwrap();
    assert_eq!(detail.events.len(), 3);
    assert_eq!(detail.events[1].deliveries.len(), 2);
    let created = db
        .create_run(&strata::db::NewRun {
            pipeline: "golden".into(),
            dry_run: false,
            trigger: strata::db::NewEvent::new(
                "sales",
                "lead.received",
                serde_json::json!({}),
                "api",
            ),
            subscribers: vec![strata::db::Subscriber::new("intake", "sales")],
            request_id: None,
            job: None,
        })
        .await
        .unwrap();
    assert!(created.trigger.seq > 4, "seq {}", created.trigger.seq);
    db.close().await;
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
