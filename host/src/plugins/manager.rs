//! Loads plugin versions: read (tolerating half-written files), hash-dedupe, compile and
//! validate off the async runtime, smoke-test, then swap atomically. Every attempt is a
//! `plugin_versions` row; a rejected version leaves the previous one live.

use super::registry::{LoadFailure, Registry, Slot};
use super::smoke;
use crate::config::Config;
use crate::db::{Db, NewPluginVersion, PluginVersionStatus as VersionStatus};
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::runtime::{LoadError, LoadedPlugin, Runtime};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Outcome of loading every plugin directory at start.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    pub failed: Vec<(PathBuf, String)>,
}

/// What happened to one load request.
#[derive(Debug, Clone)]
pub enum LoadOutcome {
    /// A new version went live.
    Swapped(Arc<LoadedPlugin>),
    /// The bytes and manifest equal the live version: nothing to do.
    Unchanged(Arc<LoadedPlugin>),
}

impl LoadOutcome {
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        match self {
            LoadOutcome::Swapped(p) | LoadOutcome::Unchanged(p) => p,
        }
    }
}

/// Attempts before a component that fails to compile is judged broken rather than
/// half-written, and the pause between them.
const PARTIAL_RETRIES: u32 = 5;
const PARTIAL_PAUSE: Duration = Duration::from_millis(200);

pub struct PluginManager {
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    config: Arc<Config>,
    db: Option<Db>,
    /// Plugin directory → plugin name, so a removed directory unloads the right plugin.
    dirs: Mutex<HashMap<PathBuf, String>>,
    /// Serialises loads: one version decision at a time per host.
    load_lock: tokio::sync::Mutex<()>,
}

impl PluginManager {
    pub fn new(
        runtime: Arc<Runtime>,
        registry: Arc<Registry>,
        config: Arc<Config>,
        db: Option<Db>,
    ) -> Self {
        Self {
            runtime,
            registry,
            config,
            db,
            dirs: Mutex::new(HashMap::new()),
            load_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Plugin directories under `root`: its subdirectories holding a `plugin.toml`.
    pub fn plugin_dirs(root: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join(MANIFEST_FILE).is_file())
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// Loads every plugin directory under the configured plugin directories.
    pub async fn load_all(&self) -> LoadReport {
        let mut report = LoadReport::default();
        for root in self.config.plugins.roots() {
            let dirs = match Self::plugin_dirs(&root) {
                Ok(d) => d,
                Err(e) => {
                    report.failed.push((
                        root.clone(),
                        format!("cannot list plugins directory {}: {e}", root.display()),
                    ));
                    continue;
                }
            };
            for dir in dirs {
                match self.load_dir(&dir).await {
                    Ok(o) => report.loaded.push(o.plugin().id().to_string()),
                    Err(e) => report.failed.push((dir, e.to_string())),
                }
            }
        }
        report
    }

    /// Loads (or reloads) the plugin in `dir`.
    pub async fn load_dir(&self, dir: &Path) -> Result<LoadOutcome, LoadError> {
        let _guard = self.load_lock.lock().await;
        let manifest = match settled_manifest(dir).await {
            Ok(m) => m,
            Err(e) => {
                self.note_failure(None, dir, None, None, &e.to_string());
                self.record_unreadable_manifest(dir, &e.to_string()).await;
                return Err(e.into());
            }
        };
        let name = manifest.plugin.name.clone();
        self.dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dir.to_path_buf(), name.clone());
        let wasm_path = dir.join(&manifest.plugin.component);

        let mut attempt = 0;
        let mut last_bytes: Option<Vec<u8>> = None;
        loop {
            attempt += 1;
            let bytes = match tokio::fs::read(&wasm_path).await {
                Ok(b) => b,
                Err(e) => {
                    let err = LoadError::Read {
                        plugin: manifest.id(),
                        path: wasm_path.display().to_string(),
                        message: e.to_string(),
                    };
                    self.note_failure(
                        Some(&name),
                        dir,
                        Some(&manifest.plugin.version),
                        None,
                        &err.to_string(),
                    );
                    return Err(err);
                }
            };
            let sha = crate::runtime::prepare::sha256_hex(&bytes);
            if let Some(live) = self.registry.slot(&name).and_then(|s| s.live()) {
                if live.sha256 == sha
                    && same_manifest(&live.manifest, &manifest)
                    && self.config_grant_unchanged(&live)
                {
                    return Ok(LoadOutcome::Unchanged(live));
                }
            }
            match self.try_load(&manifest, bytes.clone(), &sha, dir).await {
                Ok(p) => return Ok(LoadOutcome::Swapped(p)),
                // A file still being written fails to compile; wait for it to settle.
                Err((LoadError::Compile { .. }, _))
                    if attempt < PARTIAL_RETRIES && last_bytes.as_ref() != Some(&bytes) =>
                {
                    tracing::debug!(plugin = %manifest.id(), attempt, "component does not compile yet; waiting for the writer");
                    last_bytes = Some(bytes);
                    tokio::time::sleep(PARTIAL_PAUSE).await;
                }
                Err((e, row)) => {
                    metrics::counter!("plugin_loads_total", "plugin" => name.clone(), "outcome" => "rejected").increment(1);
                    self.record_status(row, VersionStatus::Rejected, Some(&e.to_string()))
                        .await;
                    self.note_failure(
                        Some(&name),
                        dir,
                        Some(&manifest.plugin.version),
                        Some(&sha),
                        &e.to_string(),
                    );
                    tracing::warn!(plugin = %manifest.id(), sha256 = %sha, error = %e, "plugin version rejected; previous version stays live");
                    return Err(e);
                }
            }
        }
    }

    fn config_grant_unchanged(&self, live: &LoadedPlugin) -> bool {
        let g =
            crate::capabilities::grants::effective(&live.manifest, self.config.grant(live.name()));
        *live.grants == g
    }

    /// One attempt: row → prepare → smoke → swap. Returns the row id with any error.
    async fn try_load(
        &self,
        manifest: &Manifest,
        bytes: Vec<u8>,
        sha: &str,
        dir: &Path,
    ) -> Result<Arc<LoadedPlugin>, (LoadError, Option<String>)> {
        let row = self.insert_row(manifest, sha, dir).await;
        let runtime = self.runtime.clone();
        let grant = self.config.grant(&manifest.plugin.name).cloned();
        let m = manifest.clone();
        let source = Some(dir.to_path_buf());
        let prepared = tokio::task::spawn_blocking(move || {
            let plugin = runtime.prepare(m, &bytes, grant.as_ref(), source)?;
            let cases = plugin.manifest.smoke.clone();
            smoke::run(&plugin, &cases).map_err(|(case, message)| LoadError::Smoke {
                plugin: plugin.id().to_string(),
                case,
                message,
            })?;
            Ok::<_, LoadError>(plugin)
        })
        .await
        .map_err(|e| {
            (
                LoadError::Other {
                    plugin: manifest.id(),
                    message: format!("load task failed: {e}"),
                },
                row.clone(),
            )
        })?
        .map_err(|e| (e, row.clone()))?;

        let plugin = Arc::new(prepared);
        metrics::counter!("plugin_loads_total", "plugin" => manifest.plugin.name.clone(), "outcome" => "live").increment(1);
        let slot = self.registry.slot_or_insert(&manifest.plugin.name);
        let previous_row = slot.history().first().and_then(|(_, r)| r.clone());
        let replaced = slot.swap_in(
            plugin.clone(),
            row.clone(),
            self.config.plugins.keep_versions,
        );
        slot.set_last_error(None);
        self.record_status(row.clone(), VersionStatus::Live, None)
            .await;
        if let Some(old) = replaced {
            if !Arc::ptr_eq(&old, &plugin) {
                self.record_status(previous_row, VersionStatus::Retired, None)
                    .await;
            }
        }
        tracing::info!(plugin = %plugin.id(), sha256 = %plugin.sha256, cache = ?plugin.cache_outcome,
            compile_ms = plugin.compile_ms, "plugin version live");
        Ok(plugin)
    }

    async fn insert_row(&self, m: &Manifest, sha: &str, dir: &Path) -> Option<String> {
        let db = self.db.as_ref()?;
        let row = NewPluginVersion {
            name: m.plugin.name.clone(),
            version: m.plugin.version.clone(),
            sha256: sha.to_string(),
            kind: m.plugin.kind.to_string(),
            status: VersionStatus::Loading,
            error: None,
            source_path: Some(dir.display().to_string()),
        };
        match db.insert_plugin_version(&row).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::error!(plugin = %m.id(), error = %e, "cannot record plugin load attempt");
                None
            }
        }
    }

    /// A manifest that cannot be read still leaves a row: named after the directory
    /// (or the plugin it held before), version unknown, rejected with the reason.
    async fn record_unreadable_manifest(&self, dir: &Path, error: &str) {
        let Some(db) = self.db.as_ref() else { return };
        let known = self
            .dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(dir)
            .cloned();
        let name = known.unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let row = NewPluginVersion {
            name,
            version: "unknown".into(),
            sha256: String::new(),
            kind: "unknown".into(),
            status: VersionStatus::Rejected,
            error: Some(error.to_string()),
            source_path: Some(dir.display().to_string()),
        };
        if let Err(e) = db.insert_plugin_version(&row).await {
            tracing::error!(dir = %dir.display(), error = %e, "cannot record plugin load attempt");
        }
    }

    async fn record_status(&self, row: Option<String>, status: VersionStatus, error: Option<&str>) {
        let (Some(db), Some(id)) = (self.db.as_ref(), row) else {
            return;
        };
        if let Err(e) = db.update_plugin_version_status(&id, status, error).await {
            tracing::error!(row = %id, error = %e, "cannot update plugin version status");
        }
    }

    fn note_failure(
        &self,
        name: Option<&str>,
        dir: &Path,
        version: Option<&str>,
        sha: Option<&str>,
        error: &str,
    ) {
        let name = name.map(str::to_string).or_else(|| {
            self.dirs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(dir)
                .cloned()
        });
        if let Some(name) = name {
            self.registry
                .slot_or_insert(&name)
                .set_last_error(Some(LoadFailure {
                    version: version.map(str::to_string),
                    sha256: sha.map(str::to_string),
                    error: error.to_string(),
                    at: crate::domain::now_ms(),
                }));
        }
        tracing::warn!(dir = %dir.display(), error, "plugin load failed");
    }

    /// Unloads the plugin that lived in `dir` (its directory or manifest was removed).
    pub async fn unload_dir(&self, dir: &Path) -> Option<String> {
        let name = self
            .dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(dir)?;
        self.unload(&name).await;
        Some(name)
    }

    pub async fn unload(&self, name: &str) {
        let _guard = self.load_lock.lock().await;
        if let Some(slot) = self.registry.slot(name) {
            let row = slot.history().first().and_then(|(_, r)| r.clone());
            if let Some(old) = slot.clear() {
                self.record_status(row, VersionStatus::Retired, None).await;
                tracing::info!(plugin = %old.id(), "plugin unloaded");
            }
        }
    }

    /// Makes the previous kept version live again.
    pub async fn rollback(&self, name: &str) -> Result<Arc<LoadedPlugin>, String> {
        let _guard = self.load_lock.lock().await;
        let slot: Arc<Slot> = self
            .registry
            .slot(name)
            .ok_or_else(|| format!("plugin {name} is not loaded"))?;
        let ((live, row), (old, old_row)) = slot
            .roll_back()
            .ok_or_else(|| format!("plugin {name} has no earlier version to roll back to"))?;
        self.record_status(old_row, VersionStatus::RolledBack, None)
            .await;
        self.record_status(row, VersionStatus::Live, None).await;
        tracing::info!(from = %old.id(), to = %live.id(), "plugin rolled back");
        Ok(live)
    }
}

/// The manifest in `dir`. One that does not load is read again after [`PARTIAL_PAUSE`]
/// while its file is still changing — an editor or copy writing it in place, seen half
/// written — as a half-written component is; unchanged, the error stands.
async fn settled_manifest(dir: &Path) -> Result<Manifest, crate::manifest::ManifestError> {
    let file = dir.join(MANIFEST_FILE);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match Manifest::load(dir) {
            Ok(m) => return Ok(m),
            Err(e) if attempt < PARTIAL_RETRIES => {
                let seen = std::fs::read(&file).ok();
                tokio::time::sleep(PARTIAL_PAUSE).await;
                if std::fs::read(&file).ok() == seen {
                    return Err(e);
                }
                tracing::debug!(dir = %dir.display(), attempt, error = %e, "manifest changed while read; reading it again");
            }
            Err(e) => return Err(e),
        }
    }
}

fn same_manifest(a: &Manifest, b: &Manifest) -> bool {
    // Manifests have no PartialEq (floats in smoke inputs); compare their TOML rendering.
    toml::to_string(a).ok() == toml::to_string(b).ok()
}
