//! Loads plugin versions: read the directory's files safely (see [`super::files`]), skip
//! bytes already decided (see [`super::dirs`]), check the name, the version's identity and
//! the manifest–component pairing, compile and validate off the async runtime,
//! smoke-test, then swap atomically — or keep the version as available while the plugin is
//! pinned. Every decided attempt is one `plugin_versions` row with its final status; a
//! rejected version leaves the previous one live.

use super::dirs::{DirState, DirStatus, DirTable, Fingerprint, Outcome};
use super::files::{read_plugin_file, stamp};
use super::registry::{Kept, LoadFailure, Registry, Slot, SlotError};
use super::smoke;
use crate::config::Config;
use crate::db::{Db, NewPluginVersion, PluginVersionStatus as VersionStatus};
use crate::manifest::{Manifest, MANIFEST_FILE, MAX_MANIFEST_BYTES};
use crate::runtime::prepare::sha256_hex;
use crate::runtime::{LoadError, LoadedPlugin, Runtime};
use arc_swap::ArcSwap;
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
    /// The directory holds what was already decided: nothing to do.
    Unchanged(Arc<LoadedPlugin>),
    /// A new version passed every check; the plugin is pinned, so it waits as available.
    Available(Arc<LoadedPlugin>),
}

impl LoadOutcome {
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        match self {
            LoadOutcome::Swapped(p) | LoadOutcome::Unchanged(p) | LoadOutcome::Available(p) => p,
        }
    }
}

/// Attempts before a manifest that does not parse or a component that does not compile
/// is judged broken rather than half-written, and the pause between them.
const PARTIAL_RETRIES: u32 = 5;
const PARTIAL_PAUSE: Duration = Duration::from_millis(200);
/// Longest a directory's files may take to read before the attempt is given up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest error text kept for an attempt.
const MAX_ERROR_CHARS: usize = 1000;

/// A directory's manifest and component, read and hashed.
struct Unit {
    manifest: Manifest,
    manifest_sha256: String,
    bytes: Vec<u8>,
    sha256: String,
}

/// A failed attempt, not yet recorded.
struct Failure {
    error: LoadError,
    /// The plugin the directory claims, when its manifest was read.
    manifest: Option<Manifest>,
    sha256: Option<String>,
    state: DirState,
    /// Stored as a `plugin_versions` row.
    row: bool,
    /// Set as the plugin's `last_error`.
    slot_error: bool,
    /// May be a file caught half-written: read again if the directory is still changing.
    partial: bool,
}

impl Failure {
    fn new(error: LoadError) -> Self {
        Self {
            error,
            manifest: None,
            sha256: None,
            state: DirState::Rejected,
            row: true,
            slot_error: true,
            partial: false,
        }
    }

    fn of(mut self, unit: &Unit) -> Self {
        self.manifest = Some(unit.manifest.clone());
        self.sha256 = Some(unit.sha256.clone());
        self
    }
}

pub struct PluginManager {
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    /// Swapped as a whole by [`PluginManager::reload_config`].
    config: ArcSwap<Config>,
    db: Option<Db>,
    dirs: Mutex<DirTable>,
    /// Serialises loads: one version decision at a time per host.
    load_lock: tokio::sync::Mutex<()>,
    /// Times a directory's files were read (an idle host reads none).
    reads: std::sync::atomic::AtomicU64,
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
            config: ArcSwap::new(config),
            db,
            dirs: Mutex::new(DirTable::default()),
            load_lock: tokio::sync::Mutex::new(()),
            reads: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many times a plugin directory's files were read since start.
    pub fn directory_reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The configuration now in force (grants change on a reload).
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    pub(crate) fn set_config(&self, config: Arc<Config>) {
        self.config.store(config);
    }

    fn dirs(&self) -> std::sync::MutexGuard<'_, DirTable> {
        self.dirs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every plugin directory seen, with its claimed name and last outcome.
    pub fn directories(&self) -> Vec<DirStatus> {
        self.dirs().statuses()
    }

    /// The directory that serves `name`.
    pub fn dir_of(&self, name: &str) -> Option<PathBuf> {
        self.dirs().owner(name)
    }

    /// Plugin directories under `root`: its subdirectories holding a `plugin.toml` (of any
    /// file type: one that is not a regular file is reported when loaded, not skipped).
    pub fn plugin_dirs(root: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir() && std::fs::symlink_metadata(p.join(MANIFEST_FILE)).is_ok())
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// Loads every plugin directory under the configured plugin directories. A directory
    /// named after the plugin it holds goes first, so it owns that name.
    pub async fn load_all(&self) -> LoadReport {
        let mut report = LoadReport::default();
        let mut dirs = Vec::new();
        for root in self.config().plugins.roots() {
            match Self::plugin_dirs(&root) {
                Ok(d) => dirs.extend(d),
                Err(e) => report.failed.push((
                    root.clone(),
                    format!("cannot list plugins directory {}: {e}", root.display()),
                )),
            }
        }
        let (named, others): (Vec<_>, Vec<_>) = dirs
            .into_iter()
            .partition(|d| claimed_name(d).is_some_and(|n| d.file_name() == Some(n.as_ref())));
        for dir in named.into_iter().chain(others) {
            match self.load_dir(&dir).await {
                Ok(o) => report.loaded.push(o.plugin().id().to_string()),
                Err(e) => report.failed.push((dir, e.to_string())),
            }
        }
        report
    }

    /// Loads (or reloads) the plugin in `dir`. Bytes already decided are not loaded again:
    /// their outcome is returned (a repeated rejection is neither recorded nor logged).
    pub async fn load_dir(&self, dir: &Path) -> Result<LoadOutcome, LoadError> {
        let max = self.config().plugins.max_component_bytes;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let before = dir_stamps(dir);
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!("plugin_directory_reads_total").increment(1);
            let unit = read_unit(dir, max).await;
            let guard = self.load_lock.lock().await;
            let failure = match self.decide(dir, unit).await {
                Ok(outcome) => return Ok(outcome),
                Err(f) => f,
            };
            drop(guard);
            if failure.partial && attempt < PARTIAL_RETRIES {
                tokio::time::sleep(PARTIAL_PAUSE).await;
                if dir_stamps(dir) != before {
                    self.dirs().forget(dir);
                    tracing::debug!(dir = %dir.display(), attempt, "plugin files changed while read; reading them again");
                    continue;
                }
            }
            let _guard = self.load_lock.lock().await;
            let error = self.record_failure(dir, failure).await;
            return Err(error);
        }
    }

    /// One decision on a read directory. A successful outcome is recorded here; a failure
    /// is returned for the caller to record (or to read again).
    async fn decide(
        &self,
        dir: &Path,
        unit: Result<Unit, LoadError>,
    ) -> Result<LoadOutcome, Failure> {
        let unit = unit.map_err(|e| {
            let partial = matches!(e, LoadError::Manifest(_));
            Failure {
                partial,
                ..Failure::new(e)
            }
        })?;
        let config = self.config();
        let name = unit.manifest.plugin.name.clone();
        let grant = config.grant(&name).cloned();
        let fp = Fingerprint {
            manifest_sha256: unit.manifest_sha256.clone(),
            component_sha256: unit.sha256.clone(),
            grant_sha256: sha256_hex(serde_json::to_string(&grant).unwrap_or_default().as_bytes()),
        };
        match self.dirs().replay(dir, &fp) {
            Some(Outcome::Loaded(p)) => return Ok(LoadOutcome::Unchanged(p)),
            Some(Outcome::Failed(message)) => {
                return Err(Failure {
                    row: false,
                    slot_error: false,
                    ..Failure::new(LoadError::Repeated { message })
                })
            }
            None => {}
        }
        let result = self.check_and_load(dir, &unit, grant, &config).await;
        let outcome = match &result {
            Ok(o) => Outcome::Loaded(o.plugin().clone()),
            Err(f) => Outcome::Failed(one_line(&f.error.to_string())),
        };
        let state = match &result {
            Ok(LoadOutcome::Available(_)) => DirState::Available,
            Ok(_) => DirState::Live,
            Err(f) => f.state,
        };
        let error = result
            .as_ref()
            .err()
            .map(|f| one_line(&f.error.to_string()));
        self.dirs().record(
            DirStatus {
                dir: dir.to_path_buf(),
                name: Some(name),
                version: Some(unit.manifest.plugin.version.clone()),
                sha256: Some(unit.sha256.clone()),
                state,
                error,
                at: crate::domain::now_ms(),
            },
            Some((fp, outcome)),
        );
        result
    }

    /// The checks of a new (manifest, component) pair, then compile, validate, smoke-test
    /// and swap (or keep as available).
    async fn check_and_load(
        &self,
        dir: &Path,
        unit: &Unit,
        grant: Option<crate::capabilities::Grant>,
        config: &Config,
    ) -> Result<LoadOutcome, Failure> {
        let m = &unit.manifest;
        let name = m.plugin.name.clone();
        let fail = |e: LoadError| Failure::new(e).of(unit);
        if let Some(want) = &m.plugin.component_sha256 {
            if !want.eq_ignore_ascii_case(&unit.sha256) {
                return Err(Failure {
                    state: DirState::Waiting,
                    row: false,
                    slot_error: false,
                    ..fail(LoadError::Other {
                        plugin: m.id(),
                        message: format!(
                            "{} has sha256 {}, not the {} plugin.component_sha256 names; waiting for the component that belongs to this manifest",
                            m.plugin.component, short(&unit.sha256), short(want)
                        ),
                    })
                });
            }
        }
        let renamed_from = match self.dirs().claim(&name, dir) {
            Ok(before) => before,
            Err(taken) => {
                return Err(Failure {
                    slot_error: false,
                    ..fail(LoadError::NameTaken(taken))
                })
            }
        };
        if let Some(old) = renamed_from {
            tracing::info!(dir = %dir.display(), from = %old, to = %name, "plugin directory now holds another plugin; unloading the old name");
            self.unload_locked(&old).await;
        }
        let slot = self.registry.slot(&name);
        if let Some(live) = slot.as_ref().and_then(|s| s.live()) {
            if live.sha256 == unit.sha256
                && live.version() == m.plugin.version
                && same_manifest(&live.manifest, m)
                && *live.grants == crate::capabilities::grants::effective(m, grant.as_ref())
            {
                return Ok(LoadOutcome::Unchanged(live));
            }
        }
        if let Some(other) = self
            .known_bytes(&name, &m.plugin.version, &unit.sha256)
            .await
        {
            // Not a version attempt (no row, the plugin's last error untouched): often a
            // component renamed in just before its manifest with the new number.
            return Err(Failure {
                row: false,
                slot_error: false,
                ..fail(LoadError::VersionReused {
                    plugin: m.id(),
                    recorded: short(&other).to_string(),
                    found: short(&unit.sha256).to_string(),
                })
            });
        }

        let runtime = self.runtime.clone();
        let (manifest, bytes) = (m.clone(), unit.bytes.clone());
        let source = Some(dir.to_path_buf());
        let prepared = tokio::task::spawn_blocking(move || {
            let plugin = runtime.prepare(manifest, &bytes, grant.as_ref(), source)?;
            let cases = plugin.manifest.smoke.clone();
            smoke::run(&plugin, &cases).map_err(|(case, message)| LoadError::Smoke {
                plugin: plugin.id().to_string(),
                case,
                message,
            })?;
            Ok::<_, LoadError>(plugin)
        })
        .await
        .map_err(|e| LoadError::Other {
            plugin: m.id(),
            message: format!("load task failed: {e}"),
        })
        .and_then(|r| r)
        .map_err(|e| {
            let partial = matches!(e, LoadError::Compile { .. });
            Failure { partial, ..fail(e) }
        })?;

        let plugin = Arc::new(prepared);
        let slot = self.registry.slot_or_insert(&name);
        slot.set_last_error(None);
        let keep = config.plugins.keep_versions;
        if slot.is_pinned() {
            let row = self
                .insert_row(m, &unit.sha256, dir, VersionStatus::Available, None)
                .await;
            slot.keep_available(plugin.clone(), row, keep);
            metrics::counter!("plugin_loads_total", "plugin" => name, "outcome" => "available")
                .increment(1);
            tracing::info!(plugin = %plugin.id(), sha256 = %plugin.sha256, live = ?slot.live().map(|p| p.id().to_string()),
                "plugin version available; the plugin is pinned, so the live version stays");
            return Ok(LoadOutcome::Available(plugin));
        }
        let previous_row = slot.history().first().and_then(|(_, r)| r.clone());
        let row = self
            .insert_row(m, &unit.sha256, dir, VersionStatus::Live, None)
            .await;
        let replaced = slot.swap_in(plugin.clone(), row, keep);
        if let Some(old) = &replaced {
            if !Arc::ptr_eq(old, &plugin) {
                self.record_status(previous_row, VersionStatus::Retired, None)
                    .await;
            }
        }
        metrics::counter!("plugin_loads_total", "plugin" => name, "outcome" => "live").increment(1);
        // A first load is one name in the start-up summary; a swap is news for the operator.
        match replaced.as_ref().filter(|old| !Arc::ptr_eq(old, &plugin)) {
            Some(old) => {
                tracing::info!(plugin = %plugin.id(), from = %old.id(), sha256 = %plugin.sha256,
                cache = ?plugin.cache_outcome, compile_ms = plugin.compile_ms, "plugin version live")
            }
            None => {
                tracing::debug!(plugin = %plugin.id(), sha256 = %plugin.sha256, cache = ?plugin.cache_outcome,
                compile_ms = plugin.compile_ms, "plugin version live")
            }
        }
        Ok(LoadOutcome::Swapped(plugin))
    }

    /// The component bytes `name@version` was already loaded with, when they differ from
    /// `sha256`: in the kept versions or in any recorded version that passed its checks.
    async fn known_bytes(&self, name: &str, version: &str, sha256: &str) -> Option<String> {
        if let Some(slot) = self.registry.slot(name) {
            if let Some((p, _)) = slot
                .history()
                .into_iter()
                .find(|(p, _)| p.version() == version && p.sha256 != sha256)
            {
                return Some(p.sha256.clone());
            }
        }
        let db = self.db.as_ref()?;
        match db.loaded_plugin_version_shas(name, version).await {
            Ok(shas) => shas.into_iter().find(|s| s != sha256),
            Err(e) => {
                tracing::error!(plugin = %name, error = %e, "cannot read recorded plugin versions");
                None
            }
        }
    }

    /// Records a failed attempt: its row (unless replayed), the plugin's last error, the
    /// directory's status, one WARN line. Returns the error.
    async fn record_failure(&self, dir: &Path, f: Failure) -> LoadError {
        let error = one_line(&f.error.to_string());
        if matches!(f.error, LoadError::Repeated { .. }) {
            tracing::debug!(dir = %dir.display(), %error, "plugin directory unchanged since it was rejected");
            return f.error;
        }
        let (name, version, kind) = match &f.manifest {
            Some(m) => (
                Some(m.plugin.name.clone()),
                m.plugin.version.clone(),
                m.plugin.kind.to_string(),
            ),
            None => (None, "unknown".to_string(), "unknown".to_string()),
        };
        if f.row {
            if let Some(db) = self.db.as_ref() {
                // A manifest that cannot be read still leaves a row: named after the
                // directory (or the plugin it held before).
                let row_name = name
                    .clone()
                    .or_else(|| self.dirs().owned_by(dir))
                    .unwrap_or_else(|| {
                        dir.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                let row = NewPluginVersion {
                    name: row_name,
                    version: version.clone(),
                    sha256: f.sha256.clone().unwrap_or_default(),
                    kind,
                    status: VersionStatus::Rejected,
                    error: Some(error.clone()),
                    source_path: Some(dir.display().to_string()),
                };
                if let Err(e) = db.insert_plugin_version(&row).await {
                    tracing::error!(dir = %dir.display(), error = %e, "cannot record plugin load attempt");
                }
            }
        }
        let slot_name = name.clone().or_else(|| self.dirs().owned_by(dir));
        if f.slot_error {
            if let Some(n) = &slot_name {
                self.registry
                    .slot_or_insert(n)
                    .set_last_error(Some(LoadFailure {
                        version: f.manifest.as_ref().map(|m| m.plugin.version.clone()),
                        sha256: f.sha256.clone(),
                        error: error.clone(),
                        at: crate::domain::now_ms(),
                    }));
            }
        }
        // A failure before the files were read has nothing to replay: it is retried on
        // the next change, and recorded only once per change.
        if f.manifest.is_none() {
            self.dirs().record(
                DirStatus {
                    dir: dir.to_path_buf(),
                    name: slot_name,
                    version: None,
                    sha256: None,
                    state: DirState::Rejected,
                    error: Some(error.clone()),
                    at: crate::domain::now_ms(),
                },
                None,
            );
        }
        if f.state == DirState::Waiting {
            tracing::info!(dir = %dir.display(), %error, "plugin manifest waits for its component");
        } else {
            metrics::counter!("plugin_loads_total", "plugin" => name.unwrap_or_default(), "outcome" => "rejected").increment(1);
            tracing::warn!(dir = %dir.display(), %error, "plugin version rejected; previous version stays live");
        }
        f.error
    }

    async fn insert_row(
        &self,
        m: &Manifest,
        sha: &str,
        dir: &Path,
        status: VersionStatus,
        error: Option<String>,
    ) -> Option<String> {
        let db = self.db.as_ref()?;
        let row = NewPluginVersion {
            name: m.plugin.name.clone(),
            version: m.plugin.version.clone(),
            sha256: sha.to_string(),
            kind: m.plugin.kind.to_string(),
            status,
            error,
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

    async fn record_status(&self, row: Option<String>, status: VersionStatus, error: Option<&str>) {
        let (Some(db), Some(id)) = (self.db.as_ref(), row) else {
            return;
        };
        if let Err(e) = db.update_plugin_version_status(&id, status, error).await {
            tracing::error!(row = %id, error = %e, "cannot update plugin version status");
        }
    }

    /// Unloads the plugin that lived in `dir` (its directory or manifest was removed).
    /// A directory that never owned its name (an impostor) unloads nothing.
    pub async fn unload_dir(&self, dir: &Path) -> Option<String> {
        let _guard = self.load_lock.lock().await;
        let name = self.dirs().remove(dir)?;
        self.unload_locked(&name).await;
        Some(name)
    }

    pub async fn unload(&self, name: &str) {
        let _guard = self.load_lock.lock().await;
        self.unload_locked(name).await;
    }

    async fn unload_locked(&self, name: &str) {
        // Its directory's bytes are no longer decided: a later load takes them again.
        let owner = self.dirs().owner(name);
        if let Some(dir) = owner {
            self.dirs().forget(&dir);
        }
        if let Some(slot) = self.registry.slot(name) {
            let row = slot.history().first().and_then(|(_, r)| r.clone());
            if let Some(old) = slot.clear() {
                self.record_status(row, VersionStatus::Retired, None).await;
                tracing::info!(plugin = %old.id(), "plugin unloaded");
            }
        }
    }

    fn slot(&self, name: &str) -> Result<Arc<Slot>, SlotError> {
        self.registry
            .slot(name)
            .filter(|s| s.live().is_some())
            .ok_or_else(|| SlotError::NotLoaded(name.to_string()))
    }

    /// Records a move of the live version (rollback, pin, unpin) in the rows and the
    /// directory table.
    async fn moved(&self, (live, row): &Kept, (old, old_row): &Kept, old_status: VersionStatus) {
        if Arc::ptr_eq(live, old) {
            return;
        }
        self.record_status(old_row.clone(), old_status, None).await;
        self.record_status(row.clone(), VersionStatus::Live, None)
            .await;
        let mut dirs = self.dirs();
        dirs.set_state_of(old, DirState::Available);
        dirs.set_state_of(live, DirState::Live);
    }

    /// Makes a kept version live and pins it there until [`Self::unpin`]: `to`, or else
    /// the newest kept version older than the live one.
    pub async fn rollback(
        &self,
        name: &str,
        to: Option<&str>,
    ) -> Result<Arc<LoadedPlugin>, SlotError> {
        let _guard = self.load_lock.lock().await;
        let (new, old) = self.slot(name)?.roll_back(to)?;
        self.moved(&new, &old, VersionStatus::RolledBack).await;
        tracing::info!(from = %old.0.id(), to = %new.0.id(), sha256 = %new.0.sha256, "plugin rolled back and pinned");
        Ok(new.0)
    }

    /// Pins the live version (or makes the kept `version` live and pins it): new versions
    /// from the directory are kept as available until [`Self::unpin`].
    pub async fn pin(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<LoadedPlugin>, SlotError> {
        let _guard = self.load_lock.lock().await;
        let (new, old) = self.slot(name)?.pin(version)?;
        self.moved(&new, &old, VersionStatus::Retired).await;
        tracing::info!(plugin = %new.0.id(), sha256 = %new.0.sha256, "plugin pinned");
        Ok(new.0)
    }

    /// Unpins: the newest version the directory delivered goes live.
    pub async fn unpin(&self, name: &str) -> Result<Arc<LoadedPlugin>, SlotError> {
        let _guard = self.load_lock.lock().await;
        let slot = self.slot(name)?;
        if let Some((new, old)) = slot.unpin() {
            self.moved(&new, &old, VersionStatus::Retired).await;
            tracing::info!(from = %old.0.id(), to = %new.0.id(), "plugin unpinned; newest version live");
        }
        slot.live()
            .ok_or_else(|| SlotError::NotLoaded(name.to_string()))
    }

    /// Forgets every directory's recorded outcome, so the next load of each decides
    /// afresh (after the configuration changed).
    pub(crate) fn forget_outcomes(&self) {
        self.dirs().forget_outcomes();
    }
}

/// Reads `dir`'s manifest and the component it names, off the async runtime, bounded in
/// time and size.
async fn read_unit(dir: &Path, max: u64) -> Result<Unit, LoadError> {
    let d = dir.to_path_buf();
    let task = tokio::task::spawn_blocking(move || {
        let text = read_plugin_file(&d, MANIFEST_FILE, MAX_MANIFEST_BYTES)
            .map_err(crate::manifest::ManifestError::from)?;
        let manifest = Manifest::from_bytes(&text, &d.join(MANIFEST_FILE))?;
        let bytes =
            read_plugin_file(&d, &manifest.plugin.component, max).map_err(|e| LoadError::Read {
                plugin: manifest.id(),
                message: e.to_string(),
            })?;
        Ok(Unit {
            manifest_sha256: sha256_hex(&text),
            sha256: sha256_hex(&bytes),
            manifest,
            bytes,
        })
    });
    match tokio::time::timeout(READ_TIMEOUT, task).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(LoadError::Other {
            plugin: dir.display().to_string(),
            message: format!("read task failed: {e}"),
        }),
        Err(_) => Err(LoadError::Other {
            plugin: dir.display().to_string(),
            message: format!(
                "reading the plugin's files took longer than {} s; given up",
                READ_TIMEOUT.as_secs()
            ),
        }),
    }
}

/// The plugin name `dir`'s manifest claims, read cheaply (no schemas, no component).
fn claimed_name(dir: &Path) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        plugin: HeadPlugin,
    }
    #[derive(serde::Deserialize)]
    struct HeadPlugin {
        name: String,
    }
    let bytes = read_plugin_file(dir, MANIFEST_FILE, MAX_MANIFEST_BYTES).ok()?;
    let head: Head = toml::from_str(std::str::from_utf8(&bytes).ok()?).ok()?;
    Some(head.plugin.name)
}

/// What a directory looks like to `stat` (names, sizes, times, inodes; no content read):
/// equal twice means nobody wrote to it in between.
pub(crate) fn dir_stamps(dir: &Path) -> Vec<(std::ffi::OsString, Option<super::files::Stamp>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name() != "target")
                .map(|e| (e.file_name(), stamp(&e.path())))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// An error as one line of at most [`MAX_ERROR_CHARS`] characters.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_ERROR_CHARS));
    for (i, part) in s
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(part);
    }
    let out: String = out
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match out.char_indices().nth(MAX_ERROR_CHARS) {
        Some((i, _)) => format!("{}…", &out[..i]),
        None => out,
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn same_manifest(a: &Manifest, b: &Manifest) -> bool {
    // Manifests have no PartialEq (floats in smoke inputs); compare their TOML rendering.
    toml::to_string(a).ok() == toml::to_string(b).ok()
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn errors_are_one_line_and_bounded() {
        assert_eq!(one_line("a\n  b\r\n\nc"), "a; b; c");
        assert_eq!(one_line("tab\there"), "tab here");
        let long = "x".repeat(5000);
        assert_eq!(one_line(&long).chars().count(), 1001);
    }
}
