//! Shared helpers of the host's integration tests: building the guest plugins once,
//! installing them into a test host's plugins directory, and starting a test host.
#![allow(dead_code)]

pub mod api_server;
pub mod browser;
pub mod frappe;
pub mod llm;
pub mod pipeline_runs;
pub mod publish;
pub mod release_host;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use strata::audit::AuditSink;
use strata::config::Config;
use strata::db::Db;
use strata::plugins::{PluginManager, Registry};
use tempfile::TempDir;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Builds every guest plugin (once per test process; serialised across processes).
pub fn ensure_plugins_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let status = std::process::Command::new("flock")
            .arg(std::env::temp_dir().join("strata-plugins-build.lock"))
            .arg("bash")
            .arg(root.join("plugins/build.sh"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run plugins/build.sh");
        assert!(
            status.success(),
            "building the guest plugins failed (plugins/build.sh)"
        );
    });
}

/// Source directory of a built plugin: `bant`, `xeducation` or `testing/<name>`.
pub fn plugin_source(rel: &str) -> PathBuf {
    ensure_plugins_built();
    repo_root().join("plugins").join(rel)
}

/// Copies a built plugin (manifest, component, schemas) into `plugins_dir/<dest>`.
pub fn install(plugins_dir: &Path, rel: &str, dest: &str) -> PathBuf {
    let src = plugin_source(rel);
    let dir = plugins_dir.join(dest);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("plugin.toml"), dir.join("plugin.toml")).unwrap();
    std::fs::copy(src.join("plugin.wasm"), dir.join("plugin.wasm")).unwrap();
    // A layer's payload contract lives next to its manifest.
    let schemas = src.join("schemas");
    if schemas.is_dir() {
        std::fs::create_dir_all(dir.join("schemas")).unwrap();
        for f in std::fs::read_dir(&schemas).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.join("schemas").join(f.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// Deploys `version` of the plugin installed in `dir` (built from `rel`) with new bytes
/// (a custom section naming the version), each file by an atomic rename, as a deployment
/// into a watched directory does.
pub fn deploy_version(dir: &Path, rel: &str, version: &str) {
    let new =
        strata::runtime::prepare::with_custom_section(&wasm_of(rel), &format!("test-{version}"));
    std::fs::write(dir.join("plugin.wasm.tmp"), &new).unwrap();
    std::fs::rename(dir.join("plugin.wasm.tmp"), dir.join("plugin.wasm")).unwrap();
    let m = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    let old = m
        .lines()
        .find(|l| l.starts_with("version = "))
        .expect("a version line")
        .to_string();
    let m = m.replacen(&old, &format!("version = \"{version}\""), 1);
    std::fs::write(dir.join("plugin.toml.tmp"), m).unwrap();
    std::fs::rename(dir.join("plugin.toml.tmp"), dir.join("plugin.toml")).unwrap();
}

/// The bytes of a built plugin's component.
pub fn wasm_of(rel: &str) -> Vec<u8> {
    std::fs::read(plugin_source(rel).join("plugin.wasm")).unwrap()
}

pub struct TestHost {
    pub tmp: TempDir,
    pub plugins_dir: PathBuf,
    pub db: Db,
    pub audit: AuditSink,
    pub manager: Arc<PluginManager>,
}

/// A host on `db_url` with `grants` (TOML of `[grants.*]` tables) and an empty plugins dir.
pub async fn host(db_url: &str, grants_toml: &str) -> TestHost {
    host_with(db_url, grants_toml, |_| {}).await
}

/// Like [`host`], with a last word on the configuration.
pub async fn host_with(
    db_url: &str,
    grants_toml: &str,
    tweak: impl FnOnce(&mut Config),
) -> TestHost {
    let tmp = tempfile::tempdir().unwrap();
    let plugins_dir = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins_dir).unwrap();
    let mut config = Config::default();
    config.database.url = db_url.to_string();
    config.plugins.dir = plugins_dir.clone();
    config.runtime.cache_dir = Some(tmp.path().join("cache"));
    config.runtime.pool_instances = 64;
    let extra: Config = toml::from_str(grants_toml).expect("grants TOML");
    config.grants = extra.grants;
    tweak(&mut config);
    config.validate().expect("valid test configuration");
    let db = migrated_db(db_url).await;
    let audit = AuditSink::spawn(db.clone());
    let runtime = strata::app::App::runtime(&config, Some(db.clone()), audit.clone()).unwrap();
    let manager = Arc::new(PluginManager::new(
        Arc::new(runtime),
        Arc::new(Registry::new()),
        Arc::new(config),
        Some(db.clone()),
    ));
    TestHost {
        tmp,
        plugins_dir,
        db,
        audit,
        manager,
    }
}

/// The database at `url`, connected and migrated.
pub async fn migrated_db(url: &str) -> Db {
    let db = Db::connect(url, &Default::default()).await.unwrap();
    db.migrate().await.unwrap();
    db
}

/// The `[database]`, `[plugins]` (not watched) and `[runtime]` (`cache_dir`) sections of
/// a test host's configuration; more `[runtime]` keys may follow.
pub fn host_toml(url: &str, plugins: &Path, cache: &Path) -> String {
    format!(
        r#"
[database]
url = "{url}"
[plugins]
dir = "{plugins}"
watch = false
[runtime]
cache_dir = "{cache}"
"#,
        plugins = plugins.display(),
        cache = cache.display(),
    )
}

pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/strata.db", dir.display())
}

/// A realistic B2B lead.
pub fn hot_lead(id: &str) -> strata::domain::Lead {
    strata::domain::Lead {
        id: id.into(),
        name: Some("Dana Fox".into()),
        title: Some("VP of Sales".into()),
        company: Some("Acme Robotics".into()),
        industry: Some("Software".into()),
        employees: Some(450),
        annual_revenue: Some(40_000_000.0),
        budget: Some(120_000.0),
        timeline: Some("this quarter".into()),
        source: Some("referral".into()),
        notes: Some("Evaluating vendors; manual scoring is slow and error-prone".into()),
        ..Default::default()
    }
}

/// Runs a blocking call off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}
