//! Configuration reload without a restart (`SIGHUP`, `POST /api/v1/config/reload`).
//!
//! What applies live: `[grants.*]` — capabilities, scopes and limits. Each plugin whose
//! grant changed is validated again from its directory against the new grant: it goes on
//! with the new grant, or, if it no longer loads (a grant it imports was taken away), it
//! stops being served and its reason is its last error. A pin on such a plugin is released
//! (the pinned version was checked against the old grant). Every other section is
//! compared and, when changed, named as needing a restart; the running values stay.

use super::manager::LoadOutcome;
use super::PluginManager;
use crate::config::Config;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What a reload changed.
#[derive(Debug, Default, Serialize)]
pub struct ReloadReport {
    /// Plugins whose grant changed, and what became of each.
    pub grants: Vec<GrantChange>,
    /// Changed settings that take effect only after a restart (`section` or
    /// `section.key`).
    pub restart_required: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct GrantChange {
    pub plugin: String,
    /// `live`, `stopped`, or `not_loaded` (no directory serves it).
    pub outcome: &'static str,
    /// The version now live (`name@version`), when there is one.
    pub live: Option<String>,
    pub sha256: Option<String>,
    pub error: Option<String>,
}

/// Top-level sections of two configurations whose values differ (`grants` excluded),
/// each as `section.key` where the section is a table.
pub fn changed_settings(old: &Config, new: &Config) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return vec!["(configuration could not be compared)".into()];
    };
    let mut changed = Vec::new();
    let sections: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for section in sections.into_iter().filter(|s| s.as_str() != "grants") {
        let (x, y) = (a.get(section), b.get(section));
        if x == y {
            continue;
        }
        match (x, y) {
            (Some(serde_json::Value::Object(x)), Some(serde_json::Value::Object(y))) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    if x.get(k) != y.get(k) {
                        changed.push(format!("{section}.{k}"));
                    }
                }
            }
            _ => changed.push(section.clone()),
        }
    }
    changed
}

/// Plugin names whose `[grants.<name>]` differs between the two configurations.
fn changed_grants(old: &Config, new: &Config) -> Vec<String> {
    let names: BTreeSet<&String> = old.grants.keys().chain(new.grants.keys()).collect();
    names
        .into_iter()
        .filter(|n| {
            let a = old.grants.get(*n).map(serde_json::to_value);
            let b = new.grants.get(*n).map(serde_json::to_value);
            a.map(|r| r.ok()) != b.map(|r| r.ok())
        })
        .cloned()
        .collect()
}

impl PluginManager {
    /// Applies `new`'s grants to new calls and re-validates the plugins they concern.
    pub async fn reload_config(&self, new: Config) -> ReloadReport {
        let old = self.config();
        let restart_required = changed_settings(&old, &new);
        let names = changed_grants(&old, &new);
        // Grants live in the manager's configuration; the rest keeps running as started.
        let mut applied = Config::clone(&old);
        applied.grants = new.grants;
        self.set_config(Arc::new(applied));
        self.forget_outcomes();
        let mut grants = Vec::new();
        for name in names {
            grants.push(self.revalidate(&name).await);
        }
        tracing::info!(grants = ?grants.iter().map(|g| (&g.plugin, g.outcome)).collect::<Vec<_>>(),
            restart_required = ?restart_required, "configuration reloaded");
        ReloadReport {
            grants,
            restart_required,
        }
    }

    async fn revalidate(&self, name: &str) -> GrantChange {
        let Some(dir) = self.dir_of(name) else {
            return GrantChange {
                plugin: name.to_string(),
                outcome: "not_loaded",
                live: None,
                sha256: None,
                error: None,
            };
        };
        if let Some(slot) = self.registry().slot(name) {
            if slot.is_pinned() {
                tracing::info!(plugin = %name, "grant changed: the pin is released and the directory's version checked again");
                let _ = self.unpin(name).await;
            }
        }
        match self.load_dir(&dir).await {
            Ok(o) => {
                let p = match &o {
                    LoadOutcome::Swapped(p)
                    | LoadOutcome::Unchanged(p)
                    | LoadOutcome::Available(p) => p,
                };
                GrantChange {
                    plugin: name.to_string(),
                    outcome: "live",
                    live: Some(p.id().to_string()),
                    sha256: Some(p.sha256.clone()),
                    error: None,
                }
            }
            Err(e) => {
                // The version in service was checked against the old grant: stop it.
                self.unload(name).await;
                tracing::warn!(plugin = %name, error = %e, "plugin no longer loads under the reloaded grants; it is not served");
                GrantChange {
                    plugin: name.to_string(),
                    outcome: "stopped",
                    live: None,
                    sha256: None,
                    error: Some(e.to_string()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_settings_name_the_keys_and_leave_grants_out() {
        let a = Config::default();
        let mut b = Config::default();
        b.server.bind = "0.0.0.0:1".into();
        b.plugins.keep_versions = 9;
        b.grants.insert("bant".into(), Default::default());
        assert_eq!(
            changed_settings(&a, &b),
            vec!["plugins.keep_versions", "server.bind"]
        );
        assert_eq!(changed_grants(&a, &b), vec!["bant"]);
        assert!(changed_settings(&a, &a).is_empty());
    }
}
