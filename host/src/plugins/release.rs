//! Publishing a plugin version through the API (issue 21, first slice): the checks of a
//! local load run on the published manifest and component without making them live, and
//! the version's *capability surface* is compared with the version it would replace.
//!
//! The surface of a version is what it may do beyond computing:
//! * `imports`: the interfaces its component imports (WASI interfaces without their
//!   `@version`: they are linked deny-all, so a toolchain's WASI bump grants nothing);
//! * `capabilities`: the capabilities its manifest declares (`log` is implicit and left
//!   out), each with its scope (MCP tools, LLM aliases and budgets, state limits, events
//!   topics, CRM reads, scoring strategies);
//! * `limits`: the resources its manifest asks for.
//!
//! The diff lists, per category, what was added, removed and changed; scopes are
//! flattened to `capability.key` entries (an array's elements one by one, e.g.
//! `mcp.tools: crm/get_lead`), so a new MCP tool or LLM alias is named on its own.
//!
//! What a version is compared with: the released version of the plugin (the
//! `plugin_release_state` row), else the version live on this host from the plugins
//! directory, else nothing. A first publish (nothing to compare with) is a change when it
//! declares any capability or imports any `strata:plugin` capability other than `log`:
//! a pure scorer needs no review, anything that reaches out does. Requested limits of a
//! first publish are listed but need no review: the operator's grant caps them.

use super::smoke;
use super::PluginManager;
use crate::manifest::{Manifest, MANIFEST_FILE, MAX_MANIFEST_BYTES};
use crate::runtime::plugin::ImportInfo;
use crate::runtime::prepare::sha256_hex;
use crate::runtime::{LoadError, LoadedPlugin};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What a version may do beyond computing (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Surface {
    pub imports: BTreeSet<String>,
    pub capabilities: BTreeMap<String, Value>,
    pub limits: BTreeMap<String, Value>,
}

impl Surface {
    /// The surface of a manifest and the imports of its component.
    pub fn of(manifest: &Manifest, imports: &[ImportInfo]) -> Surface {
        let imports = imports
            .iter()
            .map(|i| {
                if i.class == "wasi" {
                    i.name.split('@').next().unwrap_or(&i.name).to_string()
                } else {
                    i.name.clone()
                }
            })
            .collect();
        let mut capabilities = BTreeMap::new();
        let caps = serde_json::to_value(&manifest.capabilities).unwrap_or(Value::Null);
        if let Value::Object(map) = caps {
            for (cap, scope) in map {
                if cap != "log" && !scope.is_null() {
                    capabilities.insert(cap, scope);
                }
            }
        }
        let mut limits = BTreeMap::new();
        if let Ok(Value::Object(map)) = serde_json::to_value(manifest.limits) {
            for (k, v) in map {
                if !v.is_null() {
                    limits.insert(k, v);
                }
            }
        }
        Surface {
            imports,
            capabilities,
            limits,
        }
    }

    /// Does this surface reach beyond `log` (declares a capability or imports one)?
    pub fn reaches_out(&self) -> bool {
        !self.capabilities.is_empty()
            || self.imports.iter().any(|i| {
                i.starts_with("strata:plugin/")
                    && !i.starts_with("strata:plugin/log@")
                    && !i.starts_with("strata:plugin/types@")
            })
    }
}

/// One value that differs between two versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Changed {
    pub key: String,
    #[schema(value_type = Object)]
    pub before: Value,
    #[schema(value_type = Object)]
    pub after: Value,
}

/// What was added, removed and changed in one category.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<Changed>,
}

impl CategoryDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    fn of_sets(old: &BTreeSet<String>, new: &BTreeSet<String>) -> CategoryDiff {
        CategoryDiff {
            added: new.difference(old).cloned().collect(),
            removed: old.difference(new).cloned().collect(),
            changed: Vec::new(),
        }
    }

    fn of_maps(old: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>) -> CategoryDiff {
        let mut d = CategoryDiff::default();
        for (k, v) in new {
            match old.get(k) {
                None => d.added.push(format!("{k} = {v}")),
                Some(o) if o != v => d.changed.push(Changed {
                    key: k.clone(),
                    before: o.clone(),
                    after: v.clone(),
                }),
                Some(_) => {}
            }
        }
        for (k, v) in old {
            if !new.contains_key(k) {
                d.removed.push(format!("{k} = {v}"));
            }
        }
        d
    }
}

/// The capability surface diff between two versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SurfaceDiff {
    /// Imported interfaces.
    pub imports: CategoryDiff,
    /// Declared capabilities (by name).
    pub capabilities: CategoryDiff,
    /// Declared scopes, flattened to `capability.key` entries.
    pub scopes: CategoryDiff,
    /// Requested limits.
    pub limits: CategoryDiff,
}

impl SurfaceDiff {
    pub fn between(old: &Surface, new: &Surface) -> SurfaceDiff {
        let names = |s: &Surface| s.capabilities.keys().cloned().collect::<BTreeSet<_>>();
        let (old_sets, old_scalars) = flatten_scopes(&old.capabilities);
        let (new_sets, new_scalars) = flatten_scopes(&new.capabilities);
        let mut scopes = CategoryDiff::of_sets(&old_sets, &new_sets);
        let scalars = CategoryDiff::of_maps(&old_scalars, &new_scalars);
        scopes.added.extend(scalars.added);
        scopes.removed.extend(scalars.removed);
        scopes.changed = scalars.changed;
        SurfaceDiff {
            imports: CategoryDiff::of_sets(&old.imports, &new.imports),
            capabilities: CategoryDiff::of_sets(&names(old), &names(new)),
            scopes,
            limits: CategoryDiff::of_maps(&old.limits, &new.limits),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.imports.is_empty()
            && self.capabilities.is_empty()
            && self.scopes.is_empty()
            && self.limits.is_empty()
    }

    /// The diff for a person: one line per entry (`+` added, `-` removed, `~` changed).
    pub fn text(&self) -> String {
        if self.is_empty() {
            return "capability surface unchanged\n".into();
        }
        let mut out = String::new();
        for (title, c) in [
            ("imports", &self.imports),
            ("capabilities", &self.capabilities),
            ("scopes", &self.scopes),
            ("limits", &self.limits),
        ] {
            if c.is_empty() {
                continue;
            }
            out.push_str(title);
            out.push_str(":\n");
            for a in &c.added {
                out.push_str(&format!("  + {a}\n"));
            }
            for r in &c.removed {
                out.push_str(&format!("  - {r}\n"));
            }
            for ch in &c.changed {
                out.push_str(&format!("  ~ {}: {} -> {}\n", ch.key, ch.before, ch.after));
            }
        }
        out
    }
}

/// Scopes as (array elements `cap.key: element`, scalars `cap.key` → value).
fn flatten_scopes(caps: &BTreeMap<String, Value>) -> (BTreeSet<String>, BTreeMap<String, Value>) {
    fn walk(
        prefix: &str,
        v: &Value,
        sets: &mut BTreeSet<String>,
        scalars: &mut BTreeMap<String, Value>,
    ) {
        match v {
            Value::Null => {}
            Value::Object(m) => {
                for (k, v) in m {
                    walk(&format!("{prefix}.{k}"), v, sets, scalars);
                }
            }
            Value::Array(items) => {
                for i in items {
                    let text = match i {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    sets.insert(format!("{prefix}: {text}"));
                }
            }
            scalar => {
                scalars.insert(prefix.to_string(), scalar.clone());
            }
        }
    }
    let (mut sets, mut scalars) = (BTreeSet::new(), BTreeMap::new());
    for (cap, scope) in caps {
        walk(cap, scope, &mut sets, &mut scalars);
    }
    (sets, scalars)
}

/// Why a published version was refused before it was stored.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The component is larger than `release.max_artifact_bytes` (or
    /// `plugins.max_component_bytes`).
    #[error("component is {size} bytes, over the limit of {max} bytes ({key})")]
    TooLarge {
        size: u64,
        max: u64,
        key: &'static str,
    },
    /// The manifest names another plugin than the URL.
    #[error("the manifest names plugin {found:?}, but it was published as {path:?}")]
    NameMismatch { path: String, found: String },
    /// A file was sent that the manifest's `[schemas]` does not name.
    #[error(
        "the file {file:?} is not one the manifest's [schemas] names ({named:?}): send only those"
    )]
    UnknownFile { file: String, named: Vec<String> },
    /// The version failed a check of a local load.
    #[error(transparent)]
    Invalid(#[from] LoadError),
}

/// The files a manifest's `[schemas]` names (relative to the plugin directory).
pub fn schema_files(spec: &crate::pipelines::schemas::SchemasSpec) -> BTreeSet<&str> {
    spec.output
        .iter()
        .chain(spec.inputs.values())
        .chain(spec.events.values())
        .map(String::as_str)
        .collect()
}

/// `file` is a plain relative path inside a plugin directory: not empty, not absolute,
/// no `..`, `.` or empty component.
pub fn is_plain_relative(file: &str) -> bool {
    !file.is_empty()
        && !file.starts_with('/')
        && !file.contains('\\')
        && file
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Writes `files` (relative path → bytes) under `dir`, each through a temporary file
/// renamed into place; a path that is not [`is_plain_relative`] is refused.
pub fn write_files(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    for (file, bytes) in files {
        if !is_plain_relative(file) {
            return Err(format!(
                "file path {file:?} must be relative to the plugin directory, without `..`"
            ));
        }
        let path = dir.join(file);
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        let tmp = parent.join(format!(
            ".{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
        ));
        std::fs::write(&tmp, bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

impl PluginManager {
    /// Runs the checks of a local load on a published manifest and component — manifest
    /// parse, name, `component_sha256`, size, component validity, imports vs declared vs
    /// granted (the operator's grant for `name`), world, smoke tests — without making the
    /// version live or recording a load attempt. The prepared plugin is returned (its
    /// component stays in the compile cache).
    ///
    /// `files` are the other files the version carries (relative path → bytes): a
    /// layer's `[schemas]` files. Each must be one the manifest's `[schemas]` names; they
    /// are laid out in a directory of their own beside the manifest, as a local load
    /// finds them.
    pub async fn check_published(
        &self,
        name: &str,
        manifest_text: &[u8],
        wasm: Vec<u8>,
        files: &BTreeMap<String, Vec<u8>>,
    ) -> Result<LoadedPlugin, PublishError> {
        let config = self.config();
        let size = wasm.len() as u64;
        for (max, key) in [
            (
                config.release.max_artifact_bytes,
                "release.max_artifact_bytes",
            ),
            (
                config.plugins.max_component_bytes,
                "plugins.max_component_bytes",
            ),
        ] {
            if size > max {
                return Err(PublishError::TooLarge { size, max, key });
            }
        }
        if manifest_text.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(LoadError::Other {
                plugin: name.to_string(),
                message: format!("plugin.toml is over {MAX_MANIFEST_BYTES} bytes"),
            }
            .into());
        }
        // The manifest is read as a local load reads it: from a directory of its own, a
        // layer's schema files beside it.
        let tmp = tempfile::Builder::new()
            .prefix("strata-publish-")
            .tempdir()
            .map_err(|e| LoadError::Other {
                plugin: name.to_string(),
                message: format!("cannot create a temporary directory: {e}"),
            })?;
        write_files(tmp.path(), files).map_err(|message| LoadError::Other {
            plugin: name.to_string(),
            message,
        })?;
        let path = tmp.path().join(MANIFEST_FILE);
        let manifest = Manifest::from_bytes(manifest_text, &path).map_err(LoadError::from)?;
        let named = schema_files(&manifest.schemas);
        if let Some(extra) = files.keys().find(|f| !named.contains(f.as_str())) {
            return Err(PublishError::UnknownFile {
                file: extra.clone(),
                named: named.into_iter().map(str::to_string).collect(),
            });
        }
        if manifest.plugin.name != name {
            return Err(PublishError::NameMismatch {
                path: name.to_string(),
                found: manifest.plugin.name.clone(),
            });
        }
        let sha256 = sha256_hex(&wasm);
        if let Some(want) = &manifest.plugin.component_sha256 {
            if !want.eq_ignore_ascii_case(&sha256) {
                return Err(LoadError::Other {
                    plugin: manifest.id(),
                    message: format!(
                        "the component has sha256 {sha256}, not the {want} plugin.component_sha256 names"
                    ),
                }
                .into());
            }
        }
        let grant = config.grant(name).cloned();
        let runtime = self.runtime().clone();
        let id = manifest.id();
        let plugin = tokio::task::spawn_blocking(move || {
            let plugin = runtime.prepare(manifest, &wasm, grant.as_ref(), None)?;
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
            plugin: id,
            message: format!("check task failed: {e}"),
        })??;
        drop(tmp);
        Ok(plugin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        let text =
            format!("[plugin]\nname = \"p\"\nversion = \"1.0.0\"\nkind = \"scorer\"\n{extra}\n");
        Manifest::parse(&text, std::path::Path::new("plugin.toml")).unwrap()
    }

    fn import(name: &str, class: &str) -> ImportInfo {
        ImportInfo {
            name: name.into(),
            class: class.into(),
        }
    }

    #[test]
    fn a_new_capability_and_tool_are_named_and_wasi_versions_are_ignored() {
        let old = Surface::of(
            &manifest("[limits]\ndeadline_ms = 50"),
            &[
                import("wasi:cli/stdout@0.2.3", "wasi"),
                import("strata:plugin/log@0.1.0", "capability:log"),
            ],
        );
        assert!(!old.reaches_out());
        let new = Surface::of(
            &manifest(
                "[capabilities.mcp]\ntools = [\"crm/get_lead\"]\n[limits]\ndeadline_ms = 100",
            ),
            &[
                import("wasi:cli/stdout@0.2.6", "wasi"),
                import("strata:plugin/log@0.1.0", "capability:log"),
                import("strata:plugin/mcp@0.1.0", "capability:mcp"),
            ],
        );
        assert!(new.reaches_out());
        let d = SurfaceDiff::between(&old, &new);
        assert_eq!(d.imports.added, vec!["strata:plugin/mcp@0.1.0"]);
        assert!(d.imports.removed.is_empty());
        assert_eq!(d.capabilities.added, vec!["mcp"]);
        assert_eq!(d.scopes.added, vec!["mcp.tools: crm/get_lead"]);
        assert_eq!(d.limits.changed[0].key, "deadline_ms");
        let text = d.text();
        assert!(text.contains("+ mcp.tools: crm/get_lead"), "{text}");
        assert!(text.contains("~ deadline_ms: 50 -> 100"), "{text}");
        assert!(SurfaceDiff::between(&new, &new).is_empty());
        let back = SurfaceDiff::between(&new, &old);
        assert_eq!(back.capabilities.removed, vec!["mcp"]);
    }

    #[test]
    fn scalar_scopes_change_in_place() {
        let a = Surface::of(&manifest("[capabilities.state]\nmax_keys = 10"), &[]);
        let b = Surface::of(&manifest("[capabilities.state]\nmax_keys = 20"), &[]);
        let d = SurfaceDiff::between(&a, &b);
        assert!(d.capabilities.is_empty());
        assert_eq!(d.scopes.changed.len(), 1);
        assert_eq!(d.scopes.changed[0].key, "state.max_keys");
    }
}
