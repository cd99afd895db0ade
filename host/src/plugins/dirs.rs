//! What the host knows of each plugin directory: which plugin name it holds, what its last
//! load attempt saw and decided, and which directory owns each name.
//!
//! Invariants:
//! - a plugin name belongs to one directory at a time: the first directory that loads it
//!   owns it (at start, the directory named after the plugin goes first); a second
//!   directory claiming the name is rejected, and removing it never touches the owner;
//! - a directory whose manifest and component bytes (and the grant they were checked
//!   against) are unchanged since its last attempt is not loaded again: the last outcome
//!   stands, so a rejected version is recorded once and retried only when its bytes change.

use crate::runtime::error::NameTaken;
use crate::runtime::LoadedPlugin;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a load attempt of a directory saw: the hashes of its manifest and component and of
/// the operator's grant for the plugin it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub manifest_sha256: String,
    pub component_sha256: String,
    pub grant_sha256: String,
}

/// Where a directory's last load attempt left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirState {
    /// Its version is live.
    Live,
    /// Its version passed every check but the plugin is pinned to another version.
    Available,
    /// Its manifest names a component that is not (yet) next to it.
    Waiting,
    /// Its last attempt failed (see the error).
    Rejected,
}

/// A directory as operators see it (`GET /api/v1/plugins`).
#[derive(Debug, Clone, Serialize)]
pub struct DirStatus {
    pub dir: PathBuf,
    /// The plugin name its manifest claims, when the manifest could be read.
    pub name: Option<String>,
    pub version: Option<String>,
    /// SHA-256 of its component, when it was read.
    pub sha256: Option<String>,
    pub state: DirState,
    /// One line, never the files' bytes.
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}

/// The last attempt's outcome, replayed while the bytes stay the same.
#[derive(Clone)]
pub(crate) enum Outcome {
    Loaded(Arc<LoadedPlugin>),
    Failed(String),
}

struct Entry {
    status: DirStatus,
    seen: Option<(Fingerprint, Outcome)>,
}

#[derive(Default)]
pub(crate) struct DirTable {
    entries: HashMap<PathBuf, Entry>,
    owners: HashMap<String, PathBuf>,
}

impl DirTable {
    /// The outcome recorded for `dir` if its last attempt saw `fp`.
    pub fn replay(&self, dir: &Path, fp: &Fingerprint) -> Option<Outcome> {
        let (seen, outcome) = self.entries.get(dir)?.seen.as_ref()?;
        (seen == fp).then(|| outcome.clone())
    }

    /// Claims `name` for `dir`. Returns the name `dir` held before, if it changed.
    pub fn claim(&mut self, name: &str, dir: &Path) -> Result<Option<String>, NameTaken> {
        if let Some(owner) = self.owners.get(name) {
            if owner != dir && owner.is_dir() {
                return Err(NameTaken {
                    name: name.to_string(),
                    dir: dir.display().to_string(),
                    owner: owner.display().to_string(),
                });
            }
        }
        let before = self.owned_by(dir).filter(|n| n != name);
        if let Some(old) = &before {
            self.owners.remove(old);
        }
        self.owners.insert(name.to_string(), dir.to_path_buf());
        Ok(before)
    }

    /// The name `dir` owns, if any.
    pub fn owned_by(&self, dir: &Path) -> Option<String> {
        self.owners
            .iter()
            .find(|(_, d)| d.as_path() == dir)
            .map(|(n, _)| n.clone())
    }

    /// The directory that owns `name`.
    pub fn owner(&self, name: &str) -> Option<PathBuf> {
        self.owners.get(name).cloned()
    }

    /// Records an attempt: what it saw (when the files were read) and how it ended.
    pub fn record(&mut self, status: DirStatus, seen: Option<(Fingerprint, Outcome)>) {
        self.entries
            .insert(status.dir.clone(), Entry { status, seen });
    }

    /// Marks the directory that produced `plugin` with `state` (pin, rollback, unpin).
    pub fn set_state_of(&mut self, plugin: &LoadedPlugin, state: DirState) {
        for e in self.entries.values_mut() {
            if e.status.name.as_deref() == Some(plugin.name())
                && e.status.sha256.as_deref() == Some(plugin.sha256.as_str())
                && e.status.version.as_deref() == Some(plugin.version())
            {
                e.status.state = state;
            }
        }
    }

    /// Forgets what `dir`'s last attempt decided (its files were caught changing).
    pub fn forget(&mut self, dir: &Path) {
        if let Some(e) = self.entries.get_mut(dir) {
            e.seen = None;
        }
    }

    /// Forgets `dir` (removed); returns the name it owned.
    pub fn remove(&mut self, dir: &Path) -> Option<String> {
        self.entries.remove(dir);
        let name = self.owned_by(dir)?;
        self.owners.remove(&name);
        Some(name)
    }

    /// Forgets every recorded outcome, so the next attempt of each directory loads again
    /// (after a configuration reload).
    pub fn forget_outcomes(&mut self) {
        for e in self.entries.values_mut() {
            e.seen = None;
        }
    }

    /// Every directory's status, sorted by path.
    pub fn statuses(&self) -> Vec<DirStatus> {
        let mut v: Vec<DirStatus> = self.entries.values().map(|e| e.status.clone()).collect();
        v.sort_by(|a, b| a.dir.cmp(&b.dir));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_directory_cannot_take_a_name_and_its_removal_leaves_the_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let (bant, impostor) = (tmp.path().join("bant"), tmp.path().join("zz"));
        std::fs::create_dir_all(&bant).unwrap();
        std::fs::create_dir_all(&impostor).unwrap();
        let mut t = DirTable::default();
        assert_eq!(t.claim("bant", &bant).unwrap(), None);
        let e = t.claim("bant", &impostor).unwrap_err().to_string();
        assert!(e.contains("zz") && e.contains("already holds it"), "{e}");
        assert_eq!(t.remove(&impostor), None);
        assert_eq!(t.owner("bant").as_deref(), Some(bant.as_path()));
        // The owner renames its plugin: the old name is released.
        assert_eq!(t.claim("bant2", &bant).unwrap().as_deref(), Some("bant"));
        assert_eq!(t.owner("bant"), None);
        // An owner whose directory is gone no longer holds the name.
        std::fs::remove_dir_all(&bant).unwrap();
        assert_eq!(t.claim("bant2", &impostor).unwrap(), None);
    }
}
