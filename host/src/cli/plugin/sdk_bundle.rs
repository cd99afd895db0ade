//! The guest SDK and the WIT it is generated from, embedded in the `strata` binary so
//! `strata plugin new` can write a plugin crate that builds anywhere, from crates.io alone.
//!
//! A new project holds a vendored copy of the SDK at `vendor/strata-sdk/` and the contract
//! at `wit/since_vX.Y.Z/`. The SDK's bindings read `../../wit/since_vX.Y.Z` relative to
//! the SDK crate: in this repository that is `plugins/sdk` → `wit/`, in a new project
//! `vendor/strata-sdk` → `wit/`, so the same sources serve both layouts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The contract version the embedded SDK is generated from (`plugins/sdk/src/bindings.rs`).
pub const SDK_CONTRACT: &str = "0.1.0";

/// Where a new project keeps the vendored SDK, relative to the project.
pub const VENDORED_SDK_DIR: &str = "vendor/strata-sdk";

/// The SDK's sources, relative to the SDK crate (`plugins/sdk`).
pub const SDK_SOURCES: &[(&str, &str)] = &[
    (
        "src/lib.rs",
        include_str!("../../../../plugins/sdk/src/lib.rs"),
    ),
    (
        "src/bindings.rs",
        include_str!("../../../../plugins/sdk/src/bindings.rs"),
    ),
    (
        "src/crm.rs",
        include_str!("../../../../plugins/sdk/src/crm.rs"),
    ),
    (
        "src/layer.rs",
        include_str!("../../../../plugins/sdk/src/layer.rs"),
    ),
    (
        "src/lead.rs",
        include_str!("../../../../plugins/sdk/src/lead.rs"),
    ),
    (
        "src/log.rs",
        include_str!("../../../../plugins/sdk/src/log.rs"),
    ),
    (
        "src/score.rs",
        include_str!("../../../../plugins/sdk/src/score.rs"),
    ),
    (
        "src/state.rs",
        include_str!("../../../../plugins/sdk/src/state.rs"),
    ),
];

/// The contract's WIT files, relative to `wit/since_v{SDK_CONTRACT}/`.
pub const WIT_FILES: &[(&str, &str)] = &[
    (
        "types.wit",
        include_str!("../../../../wit/since_v0.1.0/types.wit"),
    ),
    (
        "log.wit",
        include_str!("../../../../wit/since_v0.1.0/log.wit"),
    ),
    (
        "state.wit",
        include_str!("../../../../wit/since_v0.1.0/state.wit"),
    ),
    (
        "crm.wit",
        include_str!("../../../../wit/since_v0.1.0/crm.wit"),
    ),
    (
        "llm.wit",
        include_str!("../../../../wit/since_v0.1.0/llm.wit"),
    ),
    (
        "mcp.wit",
        include_str!("../../../../wit/since_v0.1.0/mcp.wit"),
    ),
    (
        "scoring.wit",
        include_str!("../../../../wit/since_v0.1.0/scoring.wit"),
    ),
    (
        "events.wit",
        include_str!("../../../../wit/since_v0.1.0/events.wit"),
    ),
    (
        "worlds.wit",
        include_str!("../../../../wit/since_v0.1.0/worlds.wit"),
    ),
];

const SDK_MANIFEST: &str = include_str!("../../../../plugins/sdk/Cargo.toml");
const PLUGINS_WORKSPACE: &str = include_str!("../../../../plugins/Cargo.toml");
const PLUGINS_LOCK: &str = include_str!("../../../../plugins/Cargo.lock");
/// The toolchain the shipped plugins are built with (and the wasm target it needs).
pub const RUST_TOOLCHAIN: &str = include_str!("../../../../rust-toolchain.toml");

/// The embedded bundle cannot be turned into a standalone crate (a bug of this build).
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("embedded {file} is not valid TOML: {source}")]
    Toml {
        file: &'static str,
        source: toml::de::Error,
    },
    #[error("embedded {file}: {what}")]
    Shape { file: &'static str, what: String },
}

fn parse(file: &'static str, text: &str) -> Result<toml::Table, BundleError> {
    text.parse::<toml::Table>()
        .map_err(|source| BundleError::Toml { file, source })
}

fn shape(file: &'static str, what: impl Into<String>) -> BundleError {
    BundleError::Shape {
        file,
        what: what.into(),
    }
}

/// `plugins/sdk/Cargo.toml` with every `x.workspace = true` replaced by the workspace's
/// value (`plugins/Cargo.toml`), so the crate builds outside the plugins workspace.
pub fn standalone_sdk_manifest() -> Result<String, BundleError> {
    let mut sdk = parse("plugins/sdk/Cargo.toml", SDK_MANIFEST)?;
    let ws = parse("plugins/Cargo.toml", PLUGINS_WORKSPACE)?;
    let ws = ws
        .get("workspace")
        .and_then(|w| w.as_table())
        .ok_or_else(|| shape("plugins/Cargo.toml", "no [workspace]"))?;
    let inherit = |section: &mut toml::Table, from: Option<&toml::Table>| {
        for (key, value) in section.iter_mut() {
            let Some(t) = value.as_table() else { continue };
            if t.get("workspace").and_then(|w| w.as_bool()) != Some(true) {
                continue;
            }
            let Some(base) = from.and_then(|f| f.get(key)) else {
                return Err(shape(
                    "plugins/Cargo.toml",
                    format!("no workspace value for {key}"),
                ));
            };
            let mut extra = t.clone();
            extra.remove("workspace");
            *value = match (base.clone(), extra.is_empty()) {
                (b, true) => b,
                (toml::Value::String(v), false) => {
                    extra.insert("version".into(), toml::Value::String(v));
                    toml::Value::Table(extra)
                }
                (toml::Value::Table(mut b), false) => {
                    b.extend(extra);
                    toml::Value::Table(b)
                }
                (b, false) => b,
            };
        }
        Ok(())
    };
    let package = sdk
        .get_mut("package")
        .and_then(|p| p.as_table_mut())
        .ok_or_else(|| shape("plugins/sdk/Cargo.toml", "no [package]"))?;
    inherit(package, ws.get("package").and_then(|p| p.as_table()))?;
    if let Some(deps) = sdk.get_mut("dependencies").and_then(|d| d.as_table_mut()) {
        inherit(deps, ws.get("dependencies").and_then(|d| d.as_table()))?;
    }
    let body = toml::to_string(&sdk).map_err(|e| shape("plugins/sdk/Cargo.toml", e.to_string()))?;
    Ok(format!(
        "# strata-sdk for the contract strata:plugin@{SDK_CONTRACT}, written by `strata plugin new`\n\
         # (strata {}). Generated: a newer strata's `plugin new` writes a newer copy.\n\n{body}",
        env!("CARGO_PKG_VERSION")
    ))
}

#[derive(Debug, Clone, serde::Deserialize)]
struct LockedPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

#[derive(serde::Deserialize)]
struct LockFile {
    version: u32,
    package: Vec<LockedPackage>,
}

/// A `Cargo.lock` for a plugin crate `name` (version 0.1.0) depending on `strata-sdk`:
/// the SDK's dependency closure exactly as `plugins/Cargo.lock` pins it, so a new
/// project builds with the versions the shipped plugins are tested with.
pub fn lock_file(name: &str) -> Result<String, BundleError> {
    let lock: LockFile = toml::from_str(PLUGINS_LOCK).map_err(|source| BundleError::Toml {
        file: "plugins/Cargo.lock",
        source,
    })?;
    let mut by_name: BTreeMap<&str, Vec<&LockedPackage>> = BTreeMap::new();
    for p in &lock.package {
        by_name.entry(p.name.as_str()).or_default().push(p);
    }
    // A dependency entry is `name`, `name version` or `name version (source)`.
    let resolve = |dep: &str| {
        let mut parts = dep.split(' ');
        let dep_name = parts.next().unwrap_or_default();
        let version = parts.next();
        by_name
            .get(dep_name)
            .and_then(|c| {
                c.iter()
                    .find(|p| version.is_none_or(|v| p.version == v))
                    .copied()
            })
            .ok_or_else(|| shape("plugins/Cargo.lock", format!("{dep} is not locked")))
    };
    let mut keep: BTreeSet<(String, String)> = BTreeSet::new();
    let mut todo = vec![resolve("strata-sdk")?];
    while let Some(p) = todo.pop() {
        if keep.insert((p.name.clone(), p.version.clone())) {
            for d in &p.dependencies {
                todo.push(resolve(d)?);
            }
        }
    }
    let mut packages: Vec<LockedPackage> = lock
        .package
        .iter()
        .filter(|p| keep.contains(&(p.name.clone(), p.version.clone())))
        .cloned()
        .collect();
    packages.push(LockedPackage {
        name: name.to_string(),
        version: "0.1.0".into(),
        source: None,
        checksum: None,
        dependencies: vec!["strata-sdk".into()],
    });
    packages.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    let mut out = format!(
        "# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\nversion = {}\n",
        lock.version
    );
    for p in packages {
        out.push_str(&format!(
            "\n[[package]]\nname = \"{}\"\nversion = \"{}\"\n",
            p.name, p.version
        ));
        if let Some(s) = &p.source {
            out.push_str(&format!("source = \"{s}\"\n"));
        }
        if let Some(c) = &p.checksum {
            out.push_str(&format!("checksum = \"{c}\"\n"));
        }
        if !p.dependencies.is_empty() {
            out.push_str("dependencies = [\n");
            for d in &p.dependencies {
                out.push_str(&format!(" \"{d}\",\n"));
            }
            out.push_str("]\n");
        }
    }
    Ok(out)
}

/// Writes the SDK crate to `project/vendor/strata-sdk/` and the contract to
/// `project/wit/since_v{SDK_CONTRACT}/`.
pub fn write_vendored(project: &Path) -> anyhow::Result<()> {
    let sdk = project.join(VENDORED_SDK_DIR);
    std::fs::create_dir_all(sdk.join("src"))?;
    std::fs::write(sdk.join("Cargo.toml"), standalone_sdk_manifest()?)?;
    for (rel, text) in SDK_SOURCES {
        std::fs::write(sdk.join(rel), text)?;
    }
    let wit = project.join(format!("wit/since_v{SDK_CONTRACT}"));
    std::fs::create_dir_all(&wit)?;
    for (rel, text) in WIT_FILES {
        std::fs::write(wit.join(rel), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn names(dir: &Path) -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_bundle_holds_every_sdk_source_and_wit_file() {
        let src: BTreeSet<String> = SDK_SOURCES
            .iter()
            .map(|(p, _)| p.trim_start_matches("src/").to_string())
            .collect();
        assert_eq!(
            src,
            names(&repo().join("plugins/sdk/src")),
            "add the file to SDK_SOURCES"
        );
        let wit: BTreeSet<String> = WIT_FILES.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(
            wit,
            names(&repo().join(format!("wit/since_v{SDK_CONTRACT}"))),
            "add the file to WIT_FILES"
        );
    }

    #[test]
    fn the_embedded_sdk_targets_a_contract_this_host_loads() {
        assert!(crate::wit::SUPPORTED_VERSIONS.contains(&SDK_CONTRACT));
        let bindings = SDK_SOURCES
            .iter()
            .find(|(p, _)| *p == "src/bindings.rs")
            .unwrap()
            .1;
        let want = format!("path: \"../../wit/since_v{SDK_CONTRACT}\"");
        let paths = bindings.lines().filter(|l| l.contains("path: ")).count();
        assert_eq!(
            bindings.matches(&want).count(),
            paths,
            "every world in bindings.rs reads {want} (the layout write_vendored reproduces)"
        );
        let sdk = parse("sdk", SDK_MANIFEST).unwrap();
        assert_eq!(
            sdk["package"]["metadata"]["strata"]["contract"].as_str(),
            Some(SDK_CONTRACT)
        );
    }

    #[test]
    fn the_standalone_sdk_manifest_inherits_nothing_from_a_workspace() {
        let text = standalone_sdk_manifest().unwrap();
        assert!(!text.contains("workspace"), "{text}");
        let t: toml::Table = text.parse().unwrap();
        assert_eq!(t["package"]["name"].as_str(), Some("strata-sdk"));
        assert_eq!(t["package"]["edition"].as_str(), Some("2021"));
        assert_eq!(t["dependencies"]["wit-bindgen"].as_str(), Some("0.63"));
        assert_eq!(
            t["dependencies"]["serde"]["features"].as_array().unwrap()[0].as_str(),
            Some("derive")
        );
    }

    #[test]
    fn the_lock_file_pins_the_sdk_closure_as_the_plugins_workspace_does() {
        let text = lock_file("my-scorer").unwrap();
        let lock: LockFile = toml::from_str(&text).unwrap();
        let find = |n: &str| lock.package.iter().find(|p| p.name == n).cloned();
        assert_eq!(find("my-scorer").unwrap().dependencies, ["strata-sdk"]);
        assert!(find("strata-sdk").unwrap().source.is_none());
        let wb = find("wit-bindgen").expect("wit-bindgen locked");
        let shipped: LockFile = toml::from_str(PLUGINS_LOCK).unwrap();
        assert!(shipped.package.iter().any(|p| p.name == "wit-bindgen"
            && p.version == wb.version
            && p.checksum == wb.checksum));
        assert!(find("bant").is_none(), "only the SDK's closure");
    }
}
