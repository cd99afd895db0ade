//! Following the release state: every replica serves the version of each released plugin
//! that `plugin_release_state` names.
//!
//! A [`ReleaseFollower`] compares the state with what the registry serves; for a plugin
//! that differs it fetches the published manifest, the component and any schema files
//! (each by sha256) from the database, writes them into this replica's own directory for released plugins
//! (`<dir>/<name>/`), loads that directory through the manager (every check of a local
//! load runs again here, against *this* replica's grants; the compiled artifact comes
//! from the cache when any version with these bytes was compiled before) and pins the
//! released version live.
//!
//! Invariants:
//! * The release state is the authority for a released name: the follower pins the
//!   released version, so a plugins-directory version of the same name never replaces it
//!   (one name comes from one source; a local directory claiming a released name is
//!   refused by the directory table as any second claimant is).
//! * A version this replica cannot serve (its grants do not cover it, the bytes fail a
//!   check) is not served and is reported ([`ReleaseFollower::problems`], `/ready`); the
//!   previous version stays live.
//! * Waking up is PostgreSQL `LISTEN strata_release` (set by the writer with
//!   `pg_notify`), plus a periodic poll as the correctness fallback: a missed
//!   notification only delays convergence by one poll interval.

use super::PluginManager;
use crate::db::releases::{ReleaseState, ReplicaHeartbeat};
use crate::db::{Db, DbError};
use crate::domain::now_ms;
use crate::manifest::{Manifest, MANIFEST_FILE};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The PostgreSQL channel a release change is announced on.
pub const CHANNEL: &str = "strata_release";

/// Why one released plugin is not served here.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("released {name}@{version}: no published version row")]
    NoVersion { name: String, version: String },
    #[error("released {name}@{version}: no artifact with sha256 {sha256}")]
    NoArtifact {
        name: String,
        version: String,
        sha256: String,
    },
    #[error("released {name}@{version}: cannot write {path}: {source}")]
    Write {
        name: String,
        version: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("released {name}@{version} is not served on this replica: {reason}")]
    Refused {
        name: String,
        version: String,
        reason: String,
    },
}

fn outcome_kind(o: &super::manager::LoadOutcome) -> &'static str {
    match o {
        super::manager::LoadOutcome::Swapped(_) => "swapped",
        super::manager::LoadOutcome::Unchanged(_) => "unchanged",
        super::manager::LoadOutcome::Available(_) => "available",
    }
}

/// `p` is the released version: same version, same component bytes.
fn serves(p: &crate::runtime::LoadedPlugin, st: &ReleaseState) -> bool {
    p.version() == st.version && p.sha256 == st.sha256
}

/// One replica's follower of the release state.
pub struct ReleaseFollower {
    manager: Arc<PluginManager>,
    db: Db,
    dir: PathBuf,
    replica_id: String,
    host: String,
    started_at: i64,
    /// Released plugins this replica does not serve, and why.
    problems: Mutex<BTreeMap<String, String>>,
    /// The generation applied per plugin.
    applied: Mutex<BTreeMap<String, i64>>,
}

impl ReleaseFollower {
    pub fn new(manager: Arc<PluginManager>, db: Db, dir: PathBuf) -> ReleaseFollower {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        ReleaseFollower {
            manager,
            db,
            dir,
            replica_id: format!("{host}-{}", uuid::Uuid::new_v4().simple()),
            host,
            started_at: now_ms(),
            problems: Mutex::new(BTreeMap::new()),
            applied: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// Released plugins not served here, with the reason (for `/ready` and the API).
    pub fn problems(&self) -> BTreeMap<String, String> {
        self.problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Brings this replica to the release state once; returns how many plugins changed.
    /// Then reports the replica's heartbeat.
    pub async fn converge(&self) -> Result<usize, DbError> {
        let states = self.db.list_release_state().await?;
        let mut changed = 0;
        for st in &states {
            let applied = self
                .applied
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&st.name)
                .copied();
            let live = self.manager.registry().get(&st.name).ok();
            if applied == Some(st.generation) && live.as_ref().is_some_and(|p| serves(p, st)) {
                continue;
            }
            match self.apply(st).await {
                Ok(moved) => {
                    changed += usize::from(moved);
                    self.problems
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&st.name);
                }
                Err(e) => {
                    tracing::warn!(plugin = %st.name, version = %st.version, error = %e, "released version not served here");
                    metrics::counter!("release_apply_failures_total", "plugin" => st.name.clone())
                        .increment(1);
                    self.problems
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(st.name.clone(), e.to_string());
                }
            }
            self.applied
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(st.name.clone(), st.generation);
        }
        self.heartbeat().await?;
        Ok(changed)
    }

    /// Serves `st` here; true if the live version moved.
    async fn apply(&self, st: &ReleaseState) -> Result<bool, FollowError> {
        let (name, version) = (st.name.clone(), st.version.clone());
        if let Ok(p) = self.manager.registry().get(&name) {
            if serves(&p, st) {
                self.pin(&name, &version).await?;
                return Ok(false);
            }
        }
        // A kept version with these bytes: make it live without touching any file.
        if self.pin(&name, &version).await.is_ok()
            && self
                .manager
                .registry()
                .get(&name)
                .is_ok_and(|p| serves(&p, st))
        {
            tracing::info!(plugin = %name, %version, sha256 = %st.sha256, "released version live (kept)");
            return Ok(true);
        }
        let row = self
            .db
            .get_release_version(&name, &version)
            .await?
            .ok_or_else(|| FollowError::NoVersion {
                name: name.clone(),
                version: version.clone(),
            })?;
        let bytes =
            self.db
                .get_artifact(&st.sha256)
                .await?
                .ok_or_else(|| FollowError::NoArtifact {
                    name: name.clone(),
                    version: version.clone(),
                    sha256: st.sha256.clone(),
                })?;
        // A layer's schema files, by their sha256, laid out beside the manifest.
        let mut files = BTreeMap::new();
        for (file, sha256) in row.files()? {
            let bytes =
                self.db
                    .get_artifact(&sha256)
                    .await?
                    .ok_or_else(|| FollowError::NoArtifact {
                        name: name.clone(),
                        version: version.clone(),
                        sha256: sha256.clone(),
                    })?;
            files.insert(file, bytes);
        }
        let dir = self.dir.join(&name);
        super::release::write_files(&dir, &files).map_err(|reason| FollowError::Refused {
            name: name.clone(),
            version: version.clone(),
            reason,
        })?;
        self.write_unit(&dir, &row.manifest, &bytes)
            .map_err(|(path, source)| FollowError::Write {
                name: name.clone(),
                version: version.clone(),
                path,
                source,
            })?;
        let refused = |reason: String| FollowError::Refused {
            name: name.clone(),
            version: version.clone(),
            reason,
        };
        let outcome = self
            .manager
            .load_dir(&dir)
            .await
            .map_err(|e| refused(e.to_string()))?;
        tracing::debug!(plugin = %name, outcome = ?outcome_kind(&outcome), id = %outcome.plugin().id(), "released version loaded");
        if !serves(outcome.plugin(), st) {
            return Err(refused(format!(
                "the directory {} holds {} with sha256 {} instead",
                dir.display(),
                outcome.plugin().id(),
                outcome.plugin().sha256
            )));
        }
        let kind = outcome_kind(&outcome);
        self.pin(&name, &version)
            .await
            .map_err(|e| refused(format!("loaded ({kind}) but not made live: {e}")))?;
        tracing::info!(plugin = %name, %version, sha256 = %st.sha256, generation = st.generation, "released version live");
        Ok(true)
    }

    async fn pin(&self, name: &str, version: &str) -> Result<(), FollowError> {
        self.manager
            .pin(name, Some(version))
            .await
            .map(|_| ())
            .map_err(|e| FollowError::Refused {
                name: name.to_string(),
                version: version.to_string(),
                reason: e.to_string(),
            })
    }

    /// Writes the manifest and the component (under the manifest's component name) into
    /// `dir`, each through a temporary file renamed into place.
    fn write_unit(
        &self,
        dir: &Path,
        manifest: &str,
        bytes: &[u8],
    ) -> Result<(), (PathBuf, std::io::Error)> {
        std::fs::create_dir_all(dir).map_err(|e| (dir.to_path_buf(), e))?;
        let component = Manifest::from_bytes(manifest.as_bytes(), &dir.join(MANIFEST_FILE))
            .map(|m| m.plugin.component)
            .unwrap_or_else(|_| crate::manifest::DEFAULT_COMPONENT.to_string());
        for (file, data) in [
            (component.as_str(), bytes),
            (MANIFEST_FILE, manifest.as_bytes()),
        ] {
            let path = dir.join(file);
            let tmp = dir.join(format!(".{file}.tmp"));
            std::fs::write(&tmp, data).map_err(|e| (tmp.clone(), e))?;
            std::fs::rename(&tmp, &path).map_err(|e| (path.clone(), e))?;
        }
        Ok(())
    }

    /// Records what this replica serves.
    pub async fn heartbeat(&self) -> Result<(), DbError> {
        let serving: BTreeMap<String, serde_json::Value> = self
            .manager
            .registry()
            .slots()
            .iter()
            .filter_map(|s| s.live())
            .map(|p| {
                (
                    p.name().to_string(),
                    serde_json::json!({ "version": p.version().to_string(), "sha256": p.sha256 }),
                )
            })
            .collect();
        self.db
            .upsert_heartbeat(&ReplicaHeartbeat {
                replica_id: self.replica_id.clone(),
                host: Some(self.host.clone()),
                started_at: Some(self.started_at),
                seen_at: now_ms(),
                serving: serde_json::to_string(&serving).unwrap_or_default(),
            })
            .await
    }

    /// Follows the release state until `stop`: a converge on every notification
    /// (PostgreSQL) and every `poll`.
    pub fn spawn(
        self: Arc<Self>,
        poll: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut listener = self.db.listen(CHANNEL).await;
            loop {
                if let Err(e) = self.converge().await {
                    tracing::warn!(error = %e, "cannot read the release state; retrying");
                }
                let notified = async {
                    match listener.as_mut() {
                        Some(l) => {
                            if l.recv().await.is_err() {
                                // The connection dropped: polling carries on; listen again later.
                                std::future::pending::<()>().await;
                            }
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => return,
                }
                if *stop.borrow() {
                    return;
                }
            }
        })
    }
}
