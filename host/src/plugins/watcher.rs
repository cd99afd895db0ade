//! Hot reload: watch the plugins directory (debounced) and load, reload or unload the
//! plugin directories that changed. Loading itself is `PluginManager::load_dir`, which
//! dedupes by hash, so a burst of events for one write costs one compile.

use super::PluginManager;
use crate::manifest::MANIFEST_FILE;
use notify::RecursiveMode;
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

/// Starts watching `root` (itself, non-recursively, for plugin directories appearing or
/// going away) and each plugin directory in it (non-recursively: a plugin is its
/// manifest and component, and build trees such as `target/` next to them must not cost
/// a watch each). Must be called inside a tokio runtime.
pub fn watch(
    manager: Arc<PluginManager>,
    root: &Path,
    debounce: Duration,
) -> notify::Result<WatchHandle> {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let (tx, mut rx) = mpsc::unbounded_channel::<BTreeSet<PathBuf>>();
    let handler_root = root.clone();
    let mut debouncer = new_debouncer(debounce, None, move |res: DebounceEventResult| match res {
        Ok(events) => {
            let dirs: BTreeSet<PathBuf> = events
                .iter()
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
                if dir.join(MANIFEST_FILE).is_file() {
                    // Errors are recorded and logged by the manager; the old version stays.
                    let _ = manager.load_dir(&dir).await;
                } else if !dir.exists() || !dir.join(MANIFEST_FILE).exists() {
                    if let Some(name) = manager.unload_dir(&dir).await {
                        tracing::info!(plugin = %name, dir = %dir.display(), "plugin directory removed");
                    }
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
    use super::plugin_dir_of;
    use std::path::Path;

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
