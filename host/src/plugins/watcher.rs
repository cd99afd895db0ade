//! Hot reload: watch the plugins directory (debounced) and load, reload or unload the
//! plugin directories whose content changed. Loading itself is `PluginManager::load_dir`,
//! which skips bytes it already decided, so a burst of events for one write costs one
//! compile and a rejected version is recorded once.
//!
//! Invariants:
//! - only content changes count: create, write (modify or close after writing), rename,
//!   remove. Opening, reading, closing a file read-only and metadata changes (atime,
//!   permissions) are ignored, so the host's own reads — or a backup tool's, or
//!   `strata plugin inspect` — never trigger a load: an idle host reads no plugin file;
//! - a changed directory is read only once it has been still for `plugins.settle_ms`
//!   (by `stat`, no content read), so a manifest and its component written one after the
//!   other are read together.

use super::PluginManager;
use crate::manifest::MANIFEST_FILE;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Keeps the watch alive; dropping it stops hot reload.
pub struct WatchHandle {
    _debouncer: Box<dyn std::any::Any + Send>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The plugin directory (direct child of `root`) that `path` belongs to.
fn plugin_dir_of(root: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(root).ok()?;
    let first = rel.components().next()?;
    Some(root.join(first.as_os_str()))
}

/// Whether an event changes what a directory holds (see the module's invariants).
pub fn is_content_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        // Unknown kinds: the backend could not say; a load of unchanged bytes is cheap
        // (no row, no compile) and cannot loop, since it reads without writing.
        EventKind::Any | EventKind::Other => true,
    }
}

/// Waits until `dir` has been still (by `stat`) for `settle`, at most 40 rounds.
async fn settle(dir: &Path, settle: Duration) {
    if settle.is_zero() {
        return;
    }
    let mut before = super::manager::dir_stamps(dir);
    for _ in 0..40 {
        tokio::time::sleep(settle).await;
        let now = super::manager::dir_stamps(dir);
        if now == before {
            return;
        }
        before = now;
    }
}

/// Starts watching `root` (itself, non-recursively, for plugin directories appearing or
/// going away) and each plugin directory in it (non-recursively: a plugin is its
/// manifest and component, and build trees such as `target/` next to them must not cost
/// a watch each). Must be called inside a tokio runtime.
pub fn watch(
    manager: Arc<PluginManager>,
    root: &Path,
    debounce: Duration,
) -> notify::Result<WatchHandle> {
    let settle_for = Duration::from_millis(manager.config().plugins.settle_ms);
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let (tx, mut rx) = mpsc::unbounded_channel::<BTreeSet<PathBuf>>();
    let handler_root = root.clone();
    let mut debouncer = new_debouncer(debounce, None, move |res: DebounceEventResult| match res {
        Ok(events) => {
            let dirs: BTreeSet<PathBuf> = events
                .iter()
                .filter(|e| is_content_change(&e.kind))
                .flat_map(|e| e.paths.iter())
                .filter(|p| !p.components().any(|c| c.as_os_str() == "target"))
                .filter_map(|p| plugin_dir_of(&handler_root, p))
                .collect();
            if !dirs.is_empty() {
                let _ = tx.send(dirs);
            }
        }
        Err(errors) => {
            for e in errors {
                tracing::warn!(error = %e, "plugin directory watch error");
            }
        }
    })?;
    debouncer.watch(&root, RecursiveMode::NonRecursive)?;
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    for dir in PluginManager::plugin_dirs(&root).unwrap_or_default() {
        debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
        watched.insert(dir);
    }
    tracing::info!(dir = %root.display(), plugins = watched.len(), "watching plugins for hot reload");
    let debouncer = Arc::new(std::sync::Mutex::new(debouncer));
    let handle = debouncer.clone();

    let task = tokio::spawn(async move {
        while let Some(dirs) = rx.recv().await {
            for dir in dirs {
                // A new plugin directory: watch it too (its files may still be arriving).
                if dir.is_dir() && !watched.contains(&dir) {
                    let mut d = debouncer.lock().unwrap_or_else(|e| e.into_inner());
                    match d.watch(&dir, RecursiveMode::NonRecursive) {
                        Ok(()) => {
                            watched.insert(dir.clone());
                        }
                        Err(e) => {
                            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch plugin directory")
                        }
                    }
                }
                if !dir.exists() {
                    watched.remove(&dir);
                }
                settle(&dir, settle_for).await;
                // A manifest of any file type is loaded (a FIFO or symlink is refused
                // with its reason, the old version stays); only a missing one unloads.
                if dir.is_dir() && std::fs::symlink_metadata(dir.join(MANIFEST_FILE)).is_ok() {
                    // Errors are recorded and logged by the manager; the old version stays.
                    let _ = manager.load_dir(&dir).await;
                } else if let Some(name) = manager.unload_dir(&dir).await {
                    tracing::info!(plugin = %name, dir = %dir.display(), "plugin directory removed");
                }
            }
        }
    });
    Ok(WatchHandle {
        _debouncer: Box::new(handle),
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::{is_content_change, plugin_dir_of};
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind, RenameMode,
    };
    use notify::EventKind;
    use std::path::Path;

    #[test]
    fn reads_and_metadata_changes_are_not_content_changes() {
        for quiet in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
        ] {
            assert!(!is_content_change(&quiet), "{quiet:?}");
        }
        for change in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Remove(notify::event::RemoveKind::File),
        ] {
            assert!(is_content_change(&change), "{change:?}");
        }
    }

    #[test]
    fn events_map_to_their_plugin_directory() {
        let root = Path::new("/p");
        assert_eq!(
            plugin_dir_of(root, Path::new("/p/bant/plugin.wasm")).unwrap(),
            Path::new("/p/bant")
        );
        assert_eq!(
            plugin_dir_of(root, Path::new("/p/bant")).unwrap(),
            Path::new("/p/bant")
        );
        assert_eq!(plugin_dir_of(root, Path::new("/elsewhere/x")), None);
    }
}
