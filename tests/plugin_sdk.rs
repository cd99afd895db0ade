//! Writing a plugin outside this repository: `strata plugin new` in a temporary
//! directory writes a project (SDK and WIT vendored from the binary) that builds from
//! crates.io alone, passes its smoke tests and loads; `strata plugin dev` rebuilds and
//! hot-loads it on every change; commands that need a plugins directory name the one they
//! looked for; usage errors exit 2.
//!
//! The plugin builds share one cargo target directory (`CARGO_TARGET_DIR`, else the
//! repository's `plugins/target`) so the SDK's dependencies compile once; the projects
//! themselves live in temporary directories outside the repository.

mod common;

use common::repo_root;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temporary working directory outside the repository, with `strata` run from it.
struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let repo = std::fs::canonicalize(repo_root()).unwrap();
        assert!(
            !std::fs::canonicalize(tmp.path())
                .unwrap()
                .starts_with(&repo),
            "the sandbox must be outside the repository"
        );
        Sandbox { tmp }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// `strata ARGS` from the sandbox, with no configuration file or plugins override.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.current_dir(self.tmp.path())
            .args(args)
            .env_remove("STRATA_CONFIG")
            .env_remove("STRATA_PLUGINS__DIR")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", self.path("strata.db").display()),
            )
            .env("CARGO_TARGET_DIR", shared_target_dir())
            // Everything comes from the local registry cache: no network in tests.
            .env("CARGO_NET_OFFLINE", "true");
        c
    }

    fn strata(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run strata")
    }

    /// `strata plugin new NAME` (a scorer) in the sandbox; returns its directory.
    fn new_scorer(&self, name: &str) -> PathBuf {
        let out = self.strata(&["plugin", "new", name, "--kind", "scorer"]);
        assert!(out.status.success(), "{:?}", text(&out));
        self.path(name)
    }

    /// A config whose plugins directory is `served/` in the sandbox (created).
    fn config_serving(&self) -> PathBuf {
        std::fs::create_dir_all(self.path("served")).unwrap();
        let config = format!(
            "[database]\nurl = \"sqlite://{}\"\n[plugins]\ndir = \"{}\"\n[runtime]\ncache_dir = \"{}\"\n",
            self.path("strata.db").display(),
            self.path("served").display(),
            self.path("cache").display(),
        );
        std::fs::write(self.path("strata.toml"), config).unwrap();
        self.path("strata.toml")
    }
}

fn shared_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("plugins/target"))
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Every file under `dir` but build outputs, as (path, text).
fn project_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "target" || name.ends_with(".wasm") {
            continue;
        }
        if path.is_dir() {
            out.extend(project_files(&path));
        } else {
            out.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

/// Polls `f` every 200 ms until it returns `Some` or `timeout` passes.
fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_scorer_scaffolded_outside_the_repository_builds_tests_and_loads() {
    let sb = Sandbox::new();
    let dir = sb.new_scorer("sdk-scorer");

    let repo = std::fs::canonicalize(repo_root()).unwrap();
    let files = project_files(&dir);
    assert!(files
        .iter()
        .any(|(p, _)| p.ends_with("vendor/strata-sdk/src/lib.rs")));
    assert!(files
        .iter()
        .any(|(p, _)| p.ends_with("wit/since_v0.1.0/worlds.wit")));
    for (path, content) in &files {
        assert!(
            !content.contains(&*repo.to_string_lossy()),
            "{} names the repository",
            path.display()
        );
    }
    let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(cargo.contains("contract = \"0.1.0\""), "{cargo}");

    let out = sb.strata(&["plugin", "build", "sdk-scorer"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(dir.join("plugin.wasm").is_file());

    let out = sb.strata(&["plugin", "test", "sdk-scorer"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("ok    any lead scores in range"),
        "{stdout}"
    );

    let out = sb.strata(&["plugin", "inspect", "sdk-scorer", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["schema"], "strata.plugin-inspect.v1");
    assert_eq!(report["plugin"], "sdk-scorer@0.1.0");
    assert_eq!(report["world"], "strata:plugin/scorer");
    assert_eq!(report["loadable"], true);

    // Served from a plugins directory, it scores leads.
    let config = sb.config_serving();
    let served = sb.path("served/sdk-scorer");
    std::fs::create_dir_all(&served).unwrap();
    for f in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(dir.join(f), served.join(f)).unwrap();
    }
    std::fs::write(
        sb.path("leads.jsonl"),
        "{\"id\": \"l-1\", \"budget\": 50000.0}\n{\"id\": \"l-2\"}\n",
    )
    .unwrap();
    let out = sb.strata(&[
        "--config",
        config.to_str().unwrap(),
        "score",
        "--plugin",
        "sdk-scorer",
        "--input",
        "leads.jsonl",
        "--json",
        "--no-store",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["lead_id"], "l-1");
    assert_eq!(first["score"]["value"], 50.0);
}

#[test]
fn a_contract_the_host_does_not_load_is_refused_before_building() {
    let sb = Sandbox::new();
    let dir = sb.new_scorer("future-scorer");
    let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let bumped = cargo.replace("contract = \"0.1.0\"", "contract = \"9.0.0\"");
    std::fs::write(dir.join("Cargo.toml"), bumped).unwrap();
    let out = sb.strata(&["plugin", "build", "future-scorer"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("strata:plugin@9.0.0"), "{stderr}");
    assert!(!dir.join("plugin.wasm").exists());
}

#[test]
fn commands_needing_the_plugins_directory_name_it_and_how_to_point_elsewhere() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("leads.jsonl"), "{\"id\": \"l-1\"}\n").unwrap();
    let out = sb.strata(&[
        "score",
        "--plugin",
        "bant",
        "--input",
        "leads.jsonl",
        "--no-store",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let plugins = std::fs::canonicalize(sb.tmp.path())
        .unwrap()
        .join("plugins");
    assert!(
        stderr.contains(&*plugins.to_string_lossy()),
        "names the absolute directory: {stderr}"
    );
    assert!(stderr.contains("STRATA_PLUGINS__DIR"), "{stderr}");
    assert!(stderr.contains("--config"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_and_list_the_accepted_values() {
    let sb = Sandbox::new();
    let out = sb.strata(&["plugin", "new"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    let out = sb.strata(&["keys", "create", "--role", "boss"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("reader, operator, admin"), "{stderr}");
    let out = sb.strata(&["plugin", "test", "no-such-plugin"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failure is 1: {:?}",
        text(&out)
    );
    let out = sb.strata(&["plugin", "--help"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("2 usage error"), "{stdout}");
}

/// `strata plugin dev` running in the background; killed when dropped.
struct DevLoop {
    child: Child,
    log: PathBuf,
}

impl DevLoop {
    fn start(sb: &Sandbox, crate_dir: &str, config: &Path) -> DevLoop {
        let log = sb.path("dev.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = sb
            .command(&[
                "--config",
                config.to_str().unwrap(),
                "plugin",
                "dev",
                crate_dir,
                "--debounce-ms",
                "100",
            ])
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .expect("start strata plugin dev");
        DevLoop { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for DevLoop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The version line of the served copy of `name`, once there.
fn served_version(served: &Path) -> Option<String> {
    let m = std::fs::read_to_string(served.join("plugin.toml")).ok()?;
    let m: toml::Table = m.parse().ok()?;
    Some(m["plugin"]["version"].as_str()?.to_string())
}

#[test]
fn plugin_dev_rebuilds_tests_and_hot_loads_each_change_and_survives_a_broken_build() {
    let sb = Sandbox::new();
    let dir = sb.new_scorer("dev-scorer");
    let config = sb.config_serving();
    let served = sb.path("served/dev-scorer");
    let dev = DevLoop::start(&sb, "dev-scorer", &config);
    let long = Duration::from_secs(900);

    // The first round: built, tested, delivered under a dev version.
    let first = wait_for(long, "the first hot-load", || {
        served_version(&served).filter(|v| v.starts_with("0.1.0-dev-"))
    });
    assert!(served.join("plugin.wasm").is_file());
    let first_wasm = std::fs::read(served.join("plugin.wasm")).unwrap();

    // A broken edit: reported, nothing delivered, still watching.
    let lib = dir.join("src/lib.rs");
    let good = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, good.replace("Ok(Score {", "Ok(Scor {")).unwrap();
    wait_for(long, "the build failure to be reported", || {
        dev.log().contains("build failed").then_some(())
    });
    assert_eq!(served_version(&served).as_deref(), Some(first.as_str()));

    // Fixed, with another recommendation and a new version: the new one appears.
    std::fs::write(&lib, good.replace("\"review\"", "\"call now\"")).unwrap();
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        manifest.replace("version = \"0.1.0\"", "version = \"0.2.0\""),
    )
    .unwrap();
    let second = wait_for(long, "the second hot-load", || {
        served_version(&served).filter(|v| v.starts_with("0.2.0-dev-"))
    });
    assert_ne!(first, second);
    let second_wasm = std::fs::read(served.join("plugin.wasm")).unwrap();
    assert_ne!(first_wasm, second_wasm, "the new component was delivered");
    let log = dev.log();
    assert!(
        log.contains("ok    any lead scores in range"),
        "smoke tests ran: {log}"
    );
    assert!(
        log.contains(&format!("hot-loaded dev-scorer@{second}")),
        "{log}"
    );
}
