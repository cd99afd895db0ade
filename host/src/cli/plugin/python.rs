//! Python scorers: `strata plugin new NAME --lang python` and `strata plugin build` of a
//! directory holding `app.py` next to its `plugin.toml`.
//!
//! A Python scorer is a module `app` defining `WitWorld` (see `sdk/python/strata_sdk`),
//! built by componentize-py (PyPI, pinned in `scripts/componentize-py-venv.sh`) into a
//! component of the `scorer` world. Everything a build needs but the author's code comes
//! from this binary, so a project works outside this repository: the frozen WIT of the
//! contract the host supports (`wit/since_v0.1.0`), the `pure-scorer` world
//! (`sdk/python/wit/strata-python.wit`: the scorer world with `log` as its only import)
//! and the `strata_sdk` package. A project's own `wit/` or `strata_sdk/` (as `new`
//! writes them) take precedence.

use crate::capabilities::Capability;
use crate::manifest::{Manifest, PluginKind, MANIFEST_FILE};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The componentize-py version the scripts install and the tests run.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// Where `scripts/componentize-py-venv.sh` installs it by default.
const DEFAULT_VENV_EXE: &str = "/var/tmp/strata-componentize-py-venv/bin/componentize-py";
/// The module componentize-py wraps: `app.py` in the plugin directory.
pub const APP_MODULE: &str = "app";

/// One file of the frozen contract, embedded.
macro_rules! contract {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!("../../../../wit/since_v0.1.0/", $file)),
        )
    };
}

/// The frozen contract, as `wit/deps/strata-plugin/<file>`.
const CONTRACT_WIT: &[(&str, &str)] = &[
    contract!("types.wit"),
    contract!("log.wit"),
    contract!("state.wit"),
    contract!("crm.wit"),
    contract!("llm.wit"),
    contract!("mcp.wit"),
    contract!("scoring.wit"),
    contract!("events.wit"),
    contract!("worlds.wit"),
];
/// The `pure-scorer` world, as `wit/strata-python.wit`.
const PYTHON_WIT: &str = include_str!("../../../../sdk/python/wit/strata-python.wit");
/// The Python SDK, as `strata_sdk/<file>`.
const SDK_FILES: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../../../sdk/python/strata_sdk/__init__.py"),
    ),
    (
        "log.py",
        include_str!("../../../../sdk/python/strata_sdk/log.py"),
    ),
];
/// World of a scorer that imports nothing but `log`.
const PURE_WORLD: &str = "strata:python/pure-scorer@0.1.0";
/// World of a scorer that declares `state` or `crm`.
const FULL_WORLD: &str = "strata:plugin/scorer@0.1.0";

#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    #[error(
        "componentize-py not found (looked at $STRATA_COMPONENTIZE_PY, PATH and {DEFAULT_VENV_EXE}): \
         install it with `scripts/componentize-py-venv.sh` or `pip install componentize-py=={COMPONENTIZE_PY_VERSION}`, \
         or set STRATA_COMPONENTIZE_PY to its path"
    )]
    ComponentizePyNotFound,
    #[error("{plugin} is a {kind}; Python plugins are scorers (kind = \"scorer\")")]
    NotAScorer { plugin: String, kind: PluginKind },
    #[error("{0} has no {APP_MODULE}.py: not a Python plugin")]
    NoApp(PathBuf),
    #[error("componentize-py failed to build {plugin}: {message}")]
    Build { plugin: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PythonError + '_ {
    move |source| PythonError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Is `dir` (or the directory of a `plugin.toml` path) a Python plugin: `app.py` next to
/// `plugin.toml`?
pub fn is_python_plugin(path: &Path) -> bool {
    let dir = if path.is_file() {
        path.parent().unwrap_or(Path::new("."))
    } else {
        path
    };
    dir.join(MANIFEST_FILE).is_file() && dir.join(format!("{APP_MODULE}.py")).is_file()
}

/// The componentize-py to run: `$STRATA_COMPONENTIZE_PY`, else `componentize-py` on
/// `PATH`, else the venv of `scripts/componentize-py-venv.sh`.
pub fn componentize_py() -> Result<PathBuf, PythonError> {
    if let Some(p) = std::env::var_os("STRATA_COMPONENTIZE_PY").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(PythonError::ComponentizePyNotFound)
        };
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("componentize-py"))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from(DEFAULT_VENV_EXE)).filter(|p| p.is_file()))
        .ok_or(PythonError::ComponentizePyNotFound)
}

fn write_files(dir: &Path, files: &[(&str, &str)]) -> Result<(), PythonError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
}

/// Writes the contract WIT and the `pure-scorer` world into `wit` (`wit/deps/...`).
fn write_wit(wit: &Path) -> Result<(), PythonError> {
    write_files(&wit.join("deps/strata-plugin"), CONTRACT_WIT)?;
    write_files(wit, &[("strata-python.wit", PYTHON_WIT)])
}

/// Builds the Python scorer in `path` (a directory or its `plugin.toml`) into the
/// manifest's component file; returns the plugin's `name@version` and that file.
pub fn build(path: &Path) -> Result<(String, PathBuf), PythonError> {
    let exe = componentize_py()?;
    build_with(path, &exe)
}

/// [`build`] with the given componentize-py executable.
pub fn build_with(path: &Path, exe: &Path) -> Result<(String, PathBuf), PythonError> {
    let dir = if path.is_file() {
        path.parent().unwrap_or(Path::new("."))
    } else {
        path
    };
    let dir = std::fs::canonicalize(dir).map_err(io(dir))?;
    if !dir.join(format!("{APP_MODULE}.py")).is_file() {
        return Err(PythonError::NoApp(dir));
    }
    let manifest = Manifest::load(&dir).map_err(|e| PythonError::Build {
        plugin: dir.display().to_string(),
        message: e.to_string(),
    })?;
    let plugin = manifest.id();
    if manifest.plugin.kind != PluginKind::Scorer {
        return Err(PythonError::NotAScorer {
            plugin,
            kind: manifest.plugin.kind,
        });
    }
    // What the project does not bring comes from this binary, in a scratch directory.
    let scratch = tempfile::tempdir().map_err(io(&dir))?;
    let wit = if dir.join("wit/strata-python.wit").is_file() {
        dir.join("wit")
    } else {
        let wit = scratch.path().join("wit");
        write_wit(&wit)?;
        wit
    };
    let mut python_path = vec![dir.clone()];
    if !dir.join("strata_sdk/__init__.py").is_file() {
        let sdk = scratch.path().join("py");
        write_files(&sdk.join("strata_sdk"), SDK_FILES)?;
        python_path.push(sdk);
    }
    let declares_capability = Capability::ALL
        .iter()
        .any(|&c| c != Capability::Log && manifest.capabilities.declares(c));
    let world = if declares_capability {
        FULL_WORLD
    } else {
        PURE_WORLD
    };
    let dest = dir.join(&manifest.plugin.component);
    let tmp = dest.with_extension("wasm.tmp");
    let mut cmd = Command::new(exe);
    cmd.current_dir(&dir)
        .arg("--quiet")
        .arg("--wit-path")
        .arg(&wit)
        .arg("--world")
        .arg(world)
        .arg("componentize")
        .arg(APP_MODULE)
        .arg("--output")
        .arg(&tmp);
    for p in &python_path {
        cmd.arg("--python-path").arg(p);
    }
    let out = cmd.output().map_err(|e| PythonError::Build {
        plugin: plugin.clone(),
        message: format!("cannot run {}: {e}", exe.display()),
    })?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(PythonError::Build {
            plugin,
            message: last_lines(&String::from_utf8_lossy(&out.stderr), 6),
        });
    }
    // Rename into place, so a watching host never sees a half-written component.
    std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
    Ok((plugin, dest))
}

/// The last `n` non-empty lines of a tool's output, joined with " | " (one line).
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    if tail.is_empty() {
        "no error output".into()
    } else {
        tail.iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// Scaffolds a Python scorer `name` in `parent/name`: `app.py`, `plugin.toml`, the
/// `strata_sdk` package and the WIT (so editors and `componentize-py bindings` see the
/// types), and a `.gitignore`. Works in any directory; needs nothing from this repository.
pub fn scaffold(name: &str, parent: &Path) -> anyhow::Result<PathBuf> {
    let dir = parent.join(name);
    if dir.exists() {
        anyhow::bail!("{} already exists", dir.display());
    }
    write_files(&dir.join("strata_sdk"), SDK_FILES)?;
    write_wit(&dir.join("wit"))?;
    let manifest = SCAFFOLD_MANIFEST.replace("{name}", name);
    write_files(
        &dir,
        &[
            ("app.py", SCAFFOLD_APP),
            (MANIFEST_FILE, &manifest),
            (".gitignore", "*.wasm\n*.wasm.tmp\n__pycache__/\n"),
        ],
    )?;
    Ok(dir)
}

const SCAFFOLD_APP: &str = r#""""A Strata scorer in Python. Build: `strata plugin build .`; test: `strata plugin test .`"""

import strata_sdk
from strata_sdk import Lead, Score


def score(lead: Lead) -> Score:
    budget = lead.budget or 0.0
    value = min(max(budget / 1000.0, 0.0), 100.0)
    return (
        strata_sdk.score(value)
        .factor("budget", value)
        .reasoning("budget " + str(budget))
        .confidence(0.8 if lead.budget is not None else 0.2)
        .action("review")
        .build()
    )


WitWorld = strata_sdk.export_scorer(score)
"#;

/// A Python scorer's manifest, with room for a CPython guest (see docs/performance.md).
const SCAFFOLD_MANIFEST: &str = r#"[plugin]
name = "{name}"
version = "0.1.0"
kind = "scorer"
description = "TODO: what {name} does"

# Declaring state or crm builds against the full scorer world (and needs a grant).
[capabilities]
# state = {}
# crm = {}

[limits]
deadline_ms = 100
# A CPython guest starts at ~13 MiB of linear memory (docs/performance.md).
memory_mb = 32

[[smoke]]
name = "any lead scores in range"
[smoke.input]
id = "smoke-1"
budget = 50000.0
[smoke.expect]
min_score = 0.0
max_score = 100.0
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaffold_writes_a_self_contained_project() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = scaffold("hot-py", tmp.path()).unwrap();
        for f in [
            "app.py",
            "plugin.toml",
            "strata_sdk/__init__.py",
            "strata_sdk/log.py",
            "wit/strata-python.wit",
            "wit/deps/strata-plugin/types.wit",
        ] {
            assert!(dir.join(f).is_file(), "{f} missing");
        }
        let m = Manifest::load(&dir).unwrap();
        assert_eq!(m.id(), "hot-py@0.1.0");
        assert!(is_python_plugin(&dir));
        assert!(scaffold("hot-py", tmp.path()).is_err(), "never overwrites");
    }

    #[test]
    fn embedded_contract_is_the_frozen_one() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/since_v0.1.0");
        let on_disk = std::fs::read_dir(&root).unwrap().count();
        assert_eq!(
            on_disk,
            CONTRACT_WIT.len(),
            "a contract file is not embedded"
        );
        for (name, text) in CONTRACT_WIT {
            assert_eq!(std::fs::read_to_string(root.join(name)).unwrap(), *text);
        }
    }

    #[test]
    fn tool_errors_are_one_line() {
        assert_eq!(last_lines("a\n\n b \nc\n", 2), "b | c");
        assert_eq!(last_lines("", 2), "no error output");
    }
}
