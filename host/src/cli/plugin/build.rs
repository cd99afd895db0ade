//! `strata plugin build`: cargo for wasm32-wasip2, then each component next to its
//! plugin.toml, after checking the contract each crate declares.

use crate::manifest::{Manifest, MANIFEST_FILE};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Same shadow-stack size as plugins/.cargo/config.toml: a small stack keeps per-call
/// instance teardown cheap.
const WASM_RUSTFLAGS: &str = "-C link-arg=-zstack-size=32768";

/// Builds the crate or workspace at `path`; copies each component next to its manifest.
/// Cargo's progress goes to stderr as it happens.
pub fn build(path: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let path = std::fs::canonicalize(path).with_context(|| {
        format!(
            "{} not found (pass the plugin crate's directory: `strata plugin build DIR`)",
            crate::cli::absolute(path).display()
        )
    })?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let meta = Command::new(&cargo)
        .current_dir(&path)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .with_context(|| format!("cannot run {cargo} (is Rust installed? https://rustup.rs)"))?;
    if !meta.status.success() {
        bail!(
            "cargo metadata failed in {}: {}",
            path.display(),
            String::from_utf8_lossy(&meta.stderr).trim()
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout)?;
    let packages: Vec<&serde_json::Value> =
        meta["packages"].as_array().into_iter().flatten().collect();
    check_contracts(packages.iter().map(|p| {
        (
            p["name"].as_str().unwrap_or_default(),
            p["metadata"]["strata"]["contract"].as_str(),
        )
    }))?;
    let is_plugin = |p: &&serde_json::Value| {
        Path::new(p["manifest_path"].as_str().unwrap_or_default())
            .parent()
            .is_some_and(|d| d.join(MANIFEST_FILE).is_file())
    };
    if !packages.iter().any(is_plugin) {
        bail!(
            "no plugin crates (a crate with a plugin.toml next to its Cargo.toml) under {}: \
             pass a plugin crate's directory, or create one with `strata plugin new NAME`",
            path.display()
        );
    }
    let status = Command::new(&cargo)
        .current_dir(&path)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS", WASM_RUSTFLAGS)
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("cargo build failed in {} (errors above)", path.display());
    }
    let target_dir = PathBuf::from(meta["target_directory"].as_str().unwrap_or("target"));
    let mut built = Vec::new();
    for pkg in packages {
        let manifest_path = PathBuf::from(pkg["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        if !dir.join(MANIFEST_FILE).is_file() {
            continue;
        }
        let Some(lib) = pkg["targets"].as_array().into_iter().flatten().find(|t| {
            t["crate_types"]
                .as_array()
                .is_some_and(|c| c.iter().any(|x| x == "cdylib"))
        }) else {
            continue;
        };
        let lib_name = lib["name"].as_str().unwrap_or_default().replace('-', "_");
        let wasm = target_dir
            .join("wasm32-wasip2/release")
            .join(format!("{lib_name}.wasm"));
        let manifest = Manifest::load(&dir)?;
        let dest = dir.join(&manifest.plugin.component);
        // Write then rename, so a watching host never sees a half-written component.
        let tmp = dest.with_extension("wasm.tmp");
        std::fs::copy(&wasm, &tmp).with_context(|| format!("copy {}", wasm.display()))?;
        std::fs::rename(&tmp, &dest)?;
        built.push((manifest.id(), dest));
    }
    if built.is_empty() {
        bail!(
            "no plugin crates (a cdylib with a plugin.toml) under {}",
            path.display()
        );
    }
    Ok(built)
}

/// A crate declares a contract (`[package.metadata.strata] contract`) this host cannot
/// load, or a plugin and the SDK vendored next to it disagree.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error(
        "{package} is built against strata:plugin@{contract}, but this strata loads {supported}: \
         use a strata that supports {contract}, or scaffold again with this one (`strata plugin new`)"
    )]
    Unsupported {
        package: String,
        contract: String,
        supported: String,
    },
    #[error(
        "{package} declares strata:plugin@{contract} but its strata-sdk is generated from \
         @{sdk}: make [package.metadata.strata] contract in its Cargo.toml say {sdk}"
    )]
    Mismatch {
        package: String,
        contract: String,
        sdk: String,
    },
}

/// Checks each (package, declared contract) of a workspace: every declared contract is
/// one this host supports, and a plugin's matches the workspace's `strata-sdk`'s (checked
/// first: it is the more precise message).
pub fn check_contracts<'a>(
    packages: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<(), ContractError> {
    let declared: Vec<(&str, &str)> = packages
        .into_iter()
        .filter_map(|(p, c)| Some((p, c?)))
        .collect();
    let sdk = declared.iter().find(|(p, _)| *p == "strata-sdk");
    if let Some((_, sdk)) = sdk {
        for (package, contract) in &declared {
            if contract != sdk {
                return Err(ContractError::Mismatch {
                    package: package.to_string(),
                    contract: contract.to_string(),
                    sdk: sdk.to_string(),
                });
            }
        }
    }
    let supported = crate::wit::SUPPORTED_VERSIONS;
    for (package, contract) in &declared {
        if !supported.contains(contract) {
            return Err(ContractError::Unsupported {
                package: package.to_string(),
                contract: contract.to_string(),
                supported: supported.join(", "),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_supported_contract_passes_and_an_unknown_one_names_the_fix() {
        assert_eq!(
            check_contracts([("lead-heat", Some("0.1.0")), ("strata-sdk", Some("0.1.0"))]),
            Ok(())
        );
        assert_eq!(check_contracts([("bant", None)]), Ok(()));
        let e = check_contracts([("lead-heat", Some("9.0.0"))]).unwrap_err();
        assert!(matches!(e, ContractError::Unsupported { .. }));
        assert!(e.to_string().contains("this strata loads 0.1.0"), "{e}");
    }

    #[test]
    fn a_plugin_disagreeing_with_its_vendored_sdk_is_refused() {
        let e = check_contracts([("strata-sdk", Some("0.1.0")), ("x", Some("0.2.0"))]);
        assert!(matches!(e, Err(ContractError::Mismatch { .. })), "{e:?}");
        let e = check_contracts([("strata-sdk", Some("0.1.0")), ("x", None)]);
        assert_eq!(e, Ok(()), "an undeclared plugin is not checked");
    }
}
