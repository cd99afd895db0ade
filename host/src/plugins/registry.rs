//! Live plugin versions. Readers take an `Arc<LoadedPlugin>` without locks (arc-swap);
//! a swap stores a new `Arc` — calls in flight keep the version they started with.

use crate::runtime::{CallError, LoadedPlugin};
use arc_swap::{ArcSwap, ArcSwapOption};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The last failed load of a plugin, for operators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadFailure {
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub error: String,
    pub at: i64,
}

/// A kept version and the id of its `plugin_versions` row.
pub type Kept = (Arc<LoadedPlugin>, Option<String>);

/// One plugin name: its live version, the versions kept for rollback, its switches.
///
/// While the slot is pinned (by `pin` or `rollback`), new versions are kept as available
/// and the live one does not change until the operator unpins or picks another.
pub struct Slot {
    pub name: String,
    live: ArcSwapOption<LoadedPlugin>,
    /// Newest first; includes the live version. Bounded by `keep_versions`, never by
    /// dropping the live version.
    history: Mutex<VecDeque<Kept>>,
    disabled: AtomicBool,
    pinned: AtomicBool,
    last_error: Mutex<Option<LoadFailure>>,
}

/// Why a slot could not move to the version asked for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SlotError {
    #[error("plugin {0} is not loaded")]
    NotLoaded(String),
    #[error("plugin {name} has no earlier version to roll back to (kept: {kept})")]
    NothingOlder { name: String, kept: String },
    #[error("plugin {name} keeps no version {version} (kept: {kept})")]
    NoSuchVersion {
        name: String,
        version: String,
        kept: String,
    },
}

impl Slot {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            live: ArcSwapOption::empty(),
            history: Mutex::new(VecDeque::new()),
            disabled: AtomicBool::new(false),
            pinned: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }

    pub fn live(&self) -> Option<Arc<LoadedPlugin>> {
        self.live.load_full()
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Acquire)
    }

    pub fn set_disabled(&self, disabled: bool) {
        self.disabled.store(disabled, Ordering::Release);
    }

    /// Pinned: new versions are kept as available, not made live.
    pub fn is_pinned(&self) -> bool {
        self.pinned.load(Ordering::Acquire)
    }

    pub fn last_error(&self) -> Option<LoadFailure> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_last_error(&self, f: Option<LoadFailure>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = f;
    }

    /// Versions kept, newest first, with their `plugin_versions` row ids.
    pub fn history(&self) -> Vec<Kept> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Makes `p` live; returns the version it replaced.
    pub(crate) fn swap_in(
        &self,
        p: Arc<LoadedPlugin>,
        row: Option<String>,
        keep: usize,
    ) -> Option<Arc<LoadedPlugin>> {
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        Self::remember(&mut h, p.clone(), row, keep, Some(&p));
        self.live.swap(Some(p))
    }

    /// Keeps `p` as available beside the live (pinned) version.
    pub(crate) fn keep_available(&self, p: Arc<LoadedPlugin>, row: Option<String>, keep: usize) {
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let live = self.live.load_full();
        Self::remember(&mut h, p, row, keep, live.as_ref());
    }

    /// Puts `p` first in `h` (replacing an equal version) and trims `h` to `keep`
    /// entries, oldest first, never dropping `live`.
    fn remember(
        h: &mut VecDeque<Kept>,
        p: Arc<LoadedPlugin>,
        row: Option<String>,
        keep: usize,
        live: Option<&Arc<LoadedPlugin>>,
    ) {
        h.retain(|(v, _)| v.sha256 != p.sha256 || v.version() != p.version());
        h.push_front((p, row));
        while h.len() > keep.max(1) {
            let Some(pos) = h
                .iter()
                .rposition(|(v, _)| live.is_none_or(|l| !Arc::ptr_eq(v, l)))
            else {
                break;
            };
            h.remove(pos);
        }
    }

    fn kept_versions(h: &VecDeque<Kept>) -> String {
        h.iter()
            .map(|(v, _)| v.version().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Makes a kept version live and pins it: `to` by version number, or else the newest
    /// kept version older than the live one. Returns (new live, old live).
    pub(crate) fn roll_back(&self, to: Option<&str>) -> Result<(Kept, Kept), SlotError> {
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let live = self
            .live
            .load_full()
            .ok_or_else(|| SlotError::NotLoaded(self.name.clone()))?;
        let pos = h.iter().position(|(v, _)| Arc::ptr_eq(v, &live));
        let old = pos
            .and_then(|p| h.get(p).cloned())
            .unwrap_or((live.clone(), None));
        let target = match to {
            Some(version) => h
                .iter()
                .find(|(v, _)| v.version() == version)
                .cloned()
                .ok_or_else(|| SlotError::NoSuchVersion {
                    name: self.name.clone(),
                    version: version.to_string(),
                    kept: Self::kept_versions(&h),
                })?,
            None => {
                pos.and_then(|p| h.get(p + 1).cloned())
                    .ok_or_else(|| SlotError::NothingOlder {
                        name: self.name.clone(),
                        kept: Self::kept_versions(&h),
                    })?
            }
        };
        self.pinned.store(true, Ordering::Release);
        self.live.store(Some(target.0.clone()));
        Ok((target, old))
    }

    /// Pins the live version (`None`) or makes the kept `version` live and pins it.
    /// Returns (new live, old live).
    pub(crate) fn pin(&self, version: Option<&str>) -> Result<(Kept, Kept), SlotError> {
        match version {
            Some(v) => self.roll_back(Some(v)),
            None => {
                let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
                let live = self
                    .live
                    .load_full()
                    .ok_or_else(|| SlotError::NotLoaded(self.name.clone()))?;
                let kept = h
                    .iter()
                    .find(|(v, _)| Arc::ptr_eq(v, &live))
                    .cloned()
                    .unwrap_or((live, None));
                self.pinned.store(true, Ordering::Release);
                Ok((kept.clone(), kept))
            }
        }
    }

    /// Unpins: the newest kept version (what the plugin's directory last delivered) goes
    /// live. Returns (new live, old live) when that changed the live version.
    pub(crate) fn unpin(&self) -> Option<(Kept, Kept)> {
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        self.pinned.store(false, Ordering::Release);
        let newest = h.front().cloned()?;
        let live = self.live.load_full()?;
        if Arc::ptr_eq(&newest.0, &live) {
            return None;
        }
        let old = h
            .iter()
            .find(|(v, _)| Arc::ptr_eq(v, &live))
            .cloned()
            .unwrap_or((live, None));
        self.live.store(Some(newest.0.clone()));
        Some((newest, old))
    }

    pub(crate) fn clear(&self) -> Option<Arc<LoadedPlugin>> {
        self.pinned.store(false, Ordering::Release);
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.live.swap(None)
    }
}

/// All plugin slots by name. The map itself is swapped on the rare insert, so lookups on
/// the call path take no lock.
#[derive(Default)]
pub struct Registry {
    slots: ArcSwap<HashMap<String, Arc<Slot>>>,
    insert_lock: Mutex<()>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        self.slots.load().get(name).cloned()
    }

    pub(crate) fn slot_or_insert(&self, name: &str) -> Arc<Slot> {
        if let Some(s) = self.slot(name) {
            return s;
        }
        let _g = self.insert_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = self.slot(name) {
            return s;
        }
        let slot = Arc::new(Slot::new(name));
        let mut map = HashMap::clone(&self.slots.load());
        map.insert(name.to_string(), slot.clone());
        self.slots.store(Arc::new(map));
        slot
    }

    /// The live, enabled version of `name` — what a call should run on.
    pub fn get(&self, name: &str) -> Result<Arc<LoadedPlugin>, CallError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| CallError::NotLoaded(name.to_string()))?;
        if slot.is_disabled() {
            return Err(CallError::Disabled(name.to_string()));
        }
        slot.live()
            .ok_or_else(|| CallError::NotLoaded(name.to_string()))
    }

    /// All slots, sorted by name.
    pub fn slots(&self) -> Vec<Arc<Slot>> {
        let mut v: Vec<_> = self.slots.load().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}
