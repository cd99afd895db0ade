//! A PostgreSQL server for tests: every call to [`fresh_database_url`] creates a new,
//! empty database and returns its URL.
//!
//! * If `STRATA_TEST_DATABASE_URL` is set (a URL of an existing server, e.g.
//!   `postgres://postgres:pw@127.0.0.1:5432/postgres`), databases are created there, and
//!   [`drop_database`] removes them again.
//! * Otherwise the first call in a test process starts a throwaway cluster: `initdb`
//!   (trust auth, no fsync) in a temporary directory, `pg_ctl start` on a free port of
//!   127.0.0.1 with its socket inside that directory. A detached watchdog stops the
//!   cluster and deletes the directory once the test process has exited (statics never
//!   drop). When running as root, the server runs as the `postgres` user via `runuser`.
//! * Without PostgreSQL server binaries this panics with how to install them: tests
//!   never skip silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sqlx::{Connection, Executor, PgConnection};

struct Server {
    /// URL of the maintenance database (`postgres`), used to create databases.
    admin_url: String,
    external: bool,
}

static SERVER: OnceLock<Server> = OnceLock::new();

/// Create a new empty database and return its URL.
pub async fn fresh_database_url() -> String {
    let server = tokio::task::spawn_blocking(|| SERVER.get_or_init(start_server))
        .await
        .expect("starting the test PostgreSQL server panicked");
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&server.admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot connect to test PostgreSQL at {}: {e}",
                redact(&server.admin_url)
            )
        });
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
    conn.close().await.ok();
    with_database(&server.admin_url, &name)
}

/// Drop a database made by [`fresh_database_url`] on an external server (a throwaway
/// cluster is deleted whole when the process exits, so there this does nothing).
pub async fn drop_database(url: &str) {
    let Some(server) = SERVER.get() else { return };
    if !server.external {
        return;
    }
    let Some(name) = database_name(url) else {
        return;
    };
    if let Ok(mut conn) = PgConnection::connect(&server.admin_url).await {
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await;
        conn.close().await.ok();
    }
}

fn start_server() -> Server {
    if let Ok(url) = std::env::var("STRATA_TEST_DATABASE_URL") {
        if !url.trim().is_empty() {
            return Server {
                admin_url: url.trim().to_string(),
                external: true,
            };
        }
    }
    let bin = find_bin_dir().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin, \
             $STRATA_PG_BIN or PATH. The database tests run on SQLite AND PostgreSQL and never skip: \
             install PostgreSQL with `apt-get install -y postgresql` (CI's setup script does), or set \
             STRATA_TEST_DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/postgres to use a running server."
        )
    });
    let root = running_as_root();
    let base = if root {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "strata-test-pg-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let data = dir.join("data");
    let sock = dir.join("sock");
    std::fs::create_dir_all(&sock).expect("create test PostgreSQL directory");
    if root {
        run(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir),
            "chown",
        );
    }
    run(
        as_pg(root, &bin.join("initdb")).arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]),
        "initdb",
    );
    // Stop the cluster and delete it once this process is gone, however it ends.
    spawn_watchdog(root, &bin, &dir, &data);

    let log = dir.join("server.log");
    let mut last_err = String::new();
    for _ in 0..5 {
        let port = free_port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            sock.display()
        );
        let mut cmd = as_pg(root, &bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &opts, "start"]);
        // Own process group: a Ctrl-C to `cargo test` must not kill the server before the
        // watchdog has stopped it cleanly.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = cmd.output().expect("run pg_ctl");
        if out.status.success() {
            return Server {
                admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                external: false,
            };
        }
        last_err = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    panic!(
        "cannot start test PostgreSQL in {}: {last_err}",
        dir.display()
    );
}

fn spawn_watchdog(root: bool, bin: &Path, dir: &Path, data: &Path) {
    let pg_ctl = bin.join("pg_ctl");
    let stop = if root {
        format!(
            "runuser -u postgres -- '{}' -D '{}' -m immediate stop",
            pg_ctl.display(),
            data.display()
        )
    } else {
        format!(
            "'{}' -D '{}' -m immediate stop",
            pg_ctl.display(),
            data.display()
        )
    };
    let script = format!(
        "while [ -e /proc/{pid} ]; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    use std::os::unix::process::CommandExt;
    // Deliberately never waited for: the watchdog must outlive this process.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn test PostgreSQL watchdog");
}

fn as_pg(root: bool, program: &Path) -> Command {
    let mut c = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    // The test's working directory may not be readable by `postgres`.
    c.current_dir("/");
    c
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    let has_server = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(d) = std::env::var("STRATA_PG_BIN") {
        let d = PathBuf::from(d);
        if has_server(&d) {
            return Some(d);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| has_server(d))
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free TCP port")
}

/// `url` with its database (path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> String {
    let (head, query) = match url.find('?') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let after_scheme = head.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match head[after_scheme..].find('/') {
        Some(i) => &head[..after_scheme + i],
        None => head,
    };
    format!("{base}/{name}{query}")
}

fn database_name(url: &str) -> Option<String> {
    let head = url.split('?').next()?;
    let rest = &head[head.find("://")? + 3..];
    let name = &rest[rest.find('/')? + 1..];
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| name.to_string())
}

fn redact(url: &str) -> String {
    strata::db::redact_url(url)
}
