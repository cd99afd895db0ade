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
pub struct Slot {
    pub name: String,
    live: ArcSwapOption<LoadedPlugin>,
    /// Newest first; includes the live version. Bounded by `keep_versions`.
    history: Mutex<VecDeque<Kept>>,
    disabled: AtomicBool,
    last_error: Mutex<Option<LoadFailure>>,
}

impl Slot {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            live: ArcSwapOption::empty(),
            history: Mutex::new(VecDeque::new()),
            disabled: AtomicBool::new(false),
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
        h.retain(|(v, _)| v.sha256 != p.sha256 || v.version() != p.version());
        h.push_front((p.clone(), row));
        h.truncate(keep.max(1));
        self.live.swap(Some(p))
    }

    /// Makes the newest kept version older than the live one live again; the rolled-back
    /// version is dropped from the history. Returns (new live, old live).
    pub(crate) fn roll_back(&self) -> Option<(Kept, Kept)> {
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let live = self.live.load_full()?;
        let pos = h.iter().position(|(v, _)| Arc::ptr_eq(v, &live))?;
        let old = h.remove(pos)?;
        let prev = h.get(pos).cloned().or_else(|| h.front().cloned())?;
        self.live.store(Some(prev.0.clone()));
        Some((prev, old))
    }

    pub(crate) fn clear(&self) -> Option<Arc<LoadedPlugin>> {
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
