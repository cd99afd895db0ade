//! `strata plugin dev PATH`: the watch loop. On every change under the crate it builds,
//! runs the manifest's smoke tests and hot-loads the result: into a local server's plugins
//! directory (which the server watches and reloads), or through a running server's publish
//! API. A failed step is printed and the loop keeps watching; nothing is ever restarted.
//!
//! Each good build is delivered as `VERSION-dev-<sha8 of the component>`, so edits made
//! without bumping `plugin.toml`'s version are new versions to the host (a host refuses
//! one version with two different components), and an unchanged build is the same one.

use super::build::build;
use crate::cli::remote::ServerArgs;
use crate::config::Config;
use crate::manifest::{Manifest, MANIFEST_FILE};
use anyhow::{bail, Context};
use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args)]
pub struct DevArgs {
    /// The plugin crate to watch: its directory, holding Cargo.toml and plugin.toml.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The plugins directory of the local `strata serve` to hot-load into (default:
    /// plugins.dir of the config; set it with --config, STRATA_PLUGINS__DIR or this flag).
    #[arg(long, conflicts_with = "server")]
    pub plugins_dir: Option<PathBuf>,
    /// Publish each good build to this running server instead (needs --key); an admin may
    /// have to approve it when its capability surface changed.
    #[arg(long)]
    pub server: Option<String>,
    /// API key (operator role) for --server; read from STRATA_API_KEY when not given.
    #[arg(long, env = "STRATA_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Quiet time after the last file change before a rebuild starts, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub debounce_ms: u64,
}

/// Where good builds go.
enum Sink {
    /// `<plugins dir>/<name>/`, written file by file with renames.
    Dir(PathBuf),
    /// The publish API of a running server.
    Server(ServerArgs),
}

impl std::fmt::Display for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Dir(d) => write!(f, "plugins directory {}", d.display()),
            Sink::Server(s) => write!(f, "server {}", s.server),
        }
    }
}

pub async fn run(args: DevArgs, config: Config) -> anyhow::Result<()> {
    let path = crate::cli::absolute(&args.path);
    let crate_dir = std::fs::canonicalize(&path).with_context(|| {
        format!(
            "{} not found (pass the plugin crate's directory: `strata plugin dev DIR`)",
            path.display()
        )
    })?;
    if !crate_dir.join(MANIFEST_FILE).is_file() || !crate_dir.join("Cargo.toml").is_file() {
        bail!(
            "{} is not a plugin crate (no Cargo.toml and plugin.toml there; create one with `strata plugin new`)",
            crate_dir.display()
        );
    }
    let sink = match (args.server, args.key) {
        (Some(server), Some(key)) => Sink::Server(ServerArgs { server, key }),
        (Some(_), None) => bail!("--server needs --key (or STRATA_API_KEY): an operator key"),
        (None, _) => {
            let (dir, from) = match args.plugins_dir {
                Some(d) => (d, "--plugins-dir"),
                None => (config.plugins.dir.clone(), "plugins.dir of the config"),
            };
            let dir = crate::cli::absolute(&dir);
            if !dir.is_dir() {
                bail!(
                    "plugins directory {} (from {from}) does not exist: pass --plugins-dir DIR \
                     (the directory `strata serve` watches), or set plugins.dir in the config \
                     (--config FILE) or STRATA_PLUGINS__DIR; or --server URL --key KEY to publish",
                    dir.display()
                );
            }
            Sink::Dir(dir)
        }
    };
    let ignored: Vec<PathBuf> = match &sink {
        Sink::Dir(d) => vec![crate_dir.join("target"), d.clone()],
        Sink::Server(_) => vec![crate_dir.join("target")],
    };
    let ignored_dirs = ignored.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let debounce = Duration::from_millis(args.debounce_ms.max(10));
    let mut debouncer = new_debouncer(debounce, None, move |res: DebounceEventResult| {
        let Ok(events) = res else { return };
        // Content changes only: the build and the smoke tests read the sources, and a
        // read (inotify's open/close-nowrite) must not start another round.
        let changed = events
            .iter()
            .filter(|e| crate::plugins::watcher::is_content_change(&e.kind));
        for p in changed.flat_map(|e| e.paths.iter()) {
            if is_source_change(p, &ignored) {
                let _ = tx.send(p.clone());
                return;
            }
        }
    })?;
    // The crate's own files, and each subdirectory but build outputs (a recursive watch
    // of target/ would cost an inotify watch per directory cargo creates).
    let mut watched = vec![(crate_dir.clone(), RecursiveMode::NonRecursive)];
    for entry in std::fs::read_dir(&crate_dir)? {
        let p = entry?.path();
        let skip = p.file_name().is_some_and(|n| n == "target" || n == ".git")
            || !is_source_change(&p, &ignored_dirs);
        if p.is_dir() && !skip {
            watched.push((p, RecursiveMode::Recursive));
        }
    }
    for (p, mode) in &watched {
        debouncer
            .watch(p, *mode)
            .with_context(|| format!("cannot watch {}", p.display()))?;
    }
    eprintln!(
        "strata plugin dev: watching {} → {sink}; Ctrl-C to stop",
        crate_dir.display()
    );
    round(&crate_dir, &sink, &config).await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            changed = rx.recv() => {
                let Some(changed) = changed else { break };
                // One rebuild for a burst of saves.
                while rx.try_recv().is_ok() {}
                eprintln!("\n== {} changed", changed.display());
                round(&crate_dir, &sink, &config).await;
            }
        }
    }
    eprintln!("strata plugin dev: stopped");
    Ok(())
}

/// A change that should trigger a rebuild: not under `target/`, `.git/` or the delivery directory,
/// not a component the build itself writes, not an editor's swap or backup file.
fn is_source_change(path: &Path, ignored: &[PathBuf]) -> bool {
    if ignored.iter().any(|i| path.starts_with(i))
        || path.components().any(|c| c.as_os_str() == ".git")
    {
        return false;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    !(name.ends_with(".wasm")
        || name.ends_with(".wasm.tmp")
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.starts_with(".#"))
}

/// Build → smoke tests → deliver; prints what failed and returns.
async fn round(crate_dir: &Path, sink: &Sink, config: &Config) {
    let dir = crate_dir.to_path_buf();
    let built = tokio::task::spawn_blocking(move || build(&dir)).await;
    match built {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            eprintln!(
                "✗ build failed: {}\n  fix it and save; still watching",
                crate::cli::error_line(&e)
            );
            return;
        }
        Err(e) => {
            eprintln!("✗ build failed: {e}");
            return;
        }
    }
    if let Err(e) = super::test(crate_dir, config.clone()).await {
        eprintln!(
            "✗ smoke tests failed: {}\n  not hot-loaded; still watching",
            crate::cli::error_line(&e)
        );
        return;
    }
    match deliver(crate_dir, sink, config).await {
        Ok(what) => eprintln!("✓ {what}"),
        Err(e) => eprintln!(
            "✗ not hot-loaded: {}\n  still watching",
            crate::cli::error_line(&e)
        ),
    }
}

/// Stages the plugin (manifest with the dev version, component, schema files) and hands it
/// to the sink. Returns what was done.
async fn deliver(crate_dir: &Path, sink: &Sink, config: &Config) -> anyhow::Result<String> {
    let manifest = Manifest::load(crate_dir)?;
    let wasm = crate::plugins::files::read_plugin_file(
        crate_dir,
        &manifest.plugin.component,
        config.plugins.max_component_bytes,
    )?;
    let sha = crate::runtime::prepare::sha256_hex(&wasm);
    let version = dev_version(&manifest.plugin.version, &sha);
    let manifest_text = std::fs::read_to_string(crate_dir.join(MANIFEST_FILE))?;
    let staged_manifest = with_version(&manifest_text, &version)?;
    let mut files: Vec<(String, Vec<u8>)> = vec![(manifest.plugin.component.clone(), wasm)];
    for f in crate::plugins::release::schema_files(&manifest.schemas) {
        files.push((f.to_string(), std::fs::read(crate_dir.join(f))?));
    }
    // The manifest last: a watching host sees the new component before the manifest
    // that names the new version.
    files.push((MANIFEST_FILE.to_string(), staged_manifest.into_bytes()));
    let id = format!("{}@{version}", manifest.plugin.name);
    match sink {
        Sink::Dir(root) => {
            let dest = root.join(&manifest.plugin.name);
            write_files(&dest, &files)?;
            Ok(format!(
                "hot-loaded {id} into {} (the server reloads it; `strata plugin versions {}` shows it)",
                dest.display(),
                manifest.plugin.name
            ))
        }
        Sink::Server(server) => {
            let stage = tempfile::tempdir()?;
            write_files(stage.path(), &files)?;
            let (name, form) = super::remote::publish_form(stage.path())?;
            let v = server
                .post_multipart(&format!("/api/v1/plugins/{name}/versions"), form)
                .await
                .context("the server refused it")?;
            Ok(format!(
                "published {id} to {}: {}",
                server.server,
                v["status"].as_str().unwrap_or("?")
            ))
        }
    }
}

/// `1.2.0` → `1.2.0-dev-<first 8 hex of sha>`; `1.2.0-rc.1` → `1.2.0-rc.1.dev-<sha8>`.
fn dev_version(version: &str, sha256: &str) -> String {
    let sep = if version.contains('-') { '.' } else { '-' };
    format!("{version}{sep}dev-{}", &sha256[..8.min(sha256.len())])
}

/// The manifest text with `plugin.version` replaced.
fn with_version(manifest: &str, version: &str) -> anyhow::Result<String> {
    let mut t: toml::Table = manifest.parse().context("plugin.toml")?;
    let plugin = t
        .get_mut("plugin")
        .and_then(|p| p.as_table_mut())
        .context("plugin.toml has no [plugin]")?;
    plugin.insert("version".into(), toml::Value::String(version.into()));
    Ok(toml::to_string(&t)?)
}

/// Writes each file into `dir` (created) as `<name>.tmp` and renames it into place.
fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    for (rel, bytes) in files {
        let dest = dir.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let tmp = dest.with_extension("dev.tmp");
        std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &dest)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_versions_name_the_component_bytes() {
        assert_eq!(
            dev_version("0.1.0", "abcdef0123456789"),
            "0.1.0-dev-abcdef01"
        );
        assert_eq!(
            dev_version("1.0.0-rc.1", "abcdef0123"),
            "1.0.0-rc.1.dev-abcdef01"
        );
    }

    #[test]
    fn the_staged_manifest_keeps_everything_but_the_version() {
        let text = "[plugin]\nname = \"x\"\nversion = \"0.1.0\"\nkind = \"scorer\"\n\n[limits]\nmemory_mb = 16\n";
        let out = with_version(text, "0.1.0-dev-abcdef01").unwrap();
        let m = Manifest::parse(&out, Path::new("plugin.toml")).unwrap();
        assert_eq!(m.plugin.version, "0.1.0-dev-abcdef01");
        assert_eq!(m.plugin.name, "x");
    }

    #[test]
    fn build_outputs_and_the_delivery_directory_do_not_trigger_a_rebuild() {
        let ignored = [PathBuf::from("/p/target"), PathBuf::from("/srv/plugins")];
        assert!(is_source_change(Path::new("/p/src/lib.rs"), &ignored));
        assert!(is_source_change(Path::new("/p/plugin.toml"), &ignored));
        assert!(!is_source_change(Path::new("/p/target/x.rlib"), &ignored));
        assert!(!is_source_change(Path::new("/p/plugin.wasm"), &ignored));
        assert!(!is_source_change(Path::new("/p/plugin.wasm.tmp"), &ignored));
        assert!(!is_source_change(
            Path::new("/srv/plugins/x/plugin.toml"),
            &ignored
        ));
    }
}
