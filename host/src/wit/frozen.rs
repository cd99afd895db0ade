//! A released contract never changes: `wit/since_vX.Y.Z/` must hash to its row in
//! [`RELEASED`], every supported version is a released one, and each version's bindings
//! read their own directory.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{PACKAGE, RELEASED, SUPPORTED_VERSIONS};

fn wit_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

fn version_dir(version: &str) -> PathBuf {
    wit_root().join(format!("since_v{version}"))
}

/// Every file under `dir`, as (`/`-separated relative path, contents), sorted by path.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_str().unwrap())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `(fingerprint, listing)`: the listing is `sha256sum`'s output for the sorted files,
/// the fingerprint the sha256 of the listing.
fn fingerprint(dir: &Path) -> (String, String) {
    let listing: String = files(dir)
        .iter()
        .map(|(rel, bytes)| format!("{}  {rel}\n", hex::encode(Sha256::digest(bytes))))
        .collect();
    (hex::encode(Sha256::digest(listing.as_bytes())), listing)
}

#[test]
fn released_contracts_are_frozen() {
    let mut changed = Vec::new();
    for (version, released) in RELEASED {
        let (now, listing) = fingerprint(&version_dir(version));
        if now != *released {
            changed.push(format!(
                "contract {version} is released and frozen: add a new version directory instead \
                 of editing it (and revert wit/since_v{version}/).\n  released sha256: \
                 {released}\n  now sha256:      {now}\n  its files now:\n{listing}"
            ));
        }
    }
    assert!(changed.is_empty(), "{}", changed.join("\n"));
}

#[test]
fn supported_versions_are_the_released_contracts() {
    let released: Vec<&str> = RELEASED.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        SUPPORTED_VERSIONS, released,
        "wit::SUPPORTED_VERSIONS and wit::RELEASED must name the same versions in the same order"
    );
}

/// `wit/` holds this README and one directory per released version, nothing else: a flat
/// `.wit` file there would be a contract no version owns.
#[test]
fn wit_holds_only_released_version_directories() {
    let mut strays = Vec::new();
    for entry in std::fs::read_dir(wit_root()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let released = name
            .strip_prefix("since_v")
            .is_some_and(|v| RELEASED.iter().any(|(r, _)| *r == v));
        let ok = if entry.path().is_dir() {
            released
        } else {
            name == "README.md"
        };
        if !ok {
            strays.push(name);
        }
    }
    assert!(
        strays.is_empty(),
        "wit/ may hold only README.md and since_vX.Y.Z/ directories of versions in \
         wit::RELEASED; found {strays:?}"
    );
}

#[test]
fn each_version_directory_declares_its_own_version() {
    for (version, _) in RELEASED {
        let package = format!("package {PACKAGE}@{version};");
        let files = files(&version_dir(version));
        assert!(!files.is_empty(), "wit/since_v{version}/ is empty");
        for (rel, bytes) in files.iter().filter(|(rel, _)| rel.ends_with(".wit")) {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                text.lines().any(|l| l.trim() == package),
                "wit/since_v{version}/{rel} must declare `{package}`"
            );
        }
    }
}

/// `host/src/wit/since_vX_Y_Z.rs` generates its bindings from `wit/since_vX.Y.Z/` only.
#[test]
fn each_versions_bindings_read_its_own_directory() {
    for (version, _) in RELEASED {
        let module = format!("since_v{}.rs", version.replace('.', "_"));
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/wit")
            .join(&module);
        let source = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("bindings module {}: {e}", source.display()));
        let paths: Vec<&str> = source
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("path:"))
            .collect();
        let expected = format!("path: \"../wit/since_v{version}\",");
        assert!(!paths.is_empty(), "{module} has no bindgen! path");
        for p in paths {
            assert_eq!(
                p, expected,
                "{module} must generate from wit/since_v{version}/"
            );
        }
    }
}
