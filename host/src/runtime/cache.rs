//! Compiled-artifact cache: a component is compiled once per content hash (and engine
//! configuration) and stored on disk; later loads deserialize it in ~0.1 ms instead of
//! compiling for tens of milliseconds.
//!
//! Invariant: the cache directory belongs to the host. Deserializing an artifact is
//! `unsafe` in wasmtime because a forged artifact is native code; only files this module
//! wrote (atomically, named by hash) are ever deserialized.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;
use wasmtime::component::Component;
use wasmtime::Engine;

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheOutcome {
    /// Already in memory (same bytes loaded before in this process).
    Memory,
    /// Deserialized from the on-disk cache.
    Disk,
    /// Compiled now (and written to the cache if one is configured).
    Compiled,
}

pub struct ArtifactCache {
    engine: Engine,
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<String, Component>>,
    compat: String,
}

impl ArtifactCache {
    pub fn new(engine: Engine, dir: Option<PathBuf>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let compat = format!("{:016x}", h.finish());
        Self {
            engine,
            dir,
            memory: Mutex::new(HashMap::new()),
            compat,
        }
    }

    fn path(&self, sha256: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{sha256}-{}.cwasm", self.compat)))
    }

    /// Returns the component for `wasm` (whose hash is `sha256`), compiling at most once.
    /// Blocking (compilation takes tens of ms): call from a blocking thread.
    pub fn load(
        &self,
        wasm: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome, f64)> {
        let started = Instant::now();
        if let Some(c) = self
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sha256)
        {
            return Ok((c.clone(), CacheOutcome::Memory, ms(started)));
        }
        let (component, outcome) = match self.path(sha256) {
            Some(path) if path.exists() => {
                // Read into memory rather than `deserialize_file`: that mmaps the file, and
                // anyone truncating it later would crash the host with SIGBUS.
                // SAFETY: the file was written by `compile_and_store` from
                // `precompile_component` output of an engine with the same compatibility
                // hash (part of the name); wasmtime also checks its header and version.
                let read = std::fs::read(&path).map_err(wasmtime::Error::from);
                match read.and_then(|bytes| unsafe { Component::deserialize(&self.engine, &bytes) })
                {
                    Ok(c) => (c, CacheOutcome::Disk),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "unusable cached artifact; recompiling");
                        let _ = std::fs::remove_file(&path);
                        (
                            self.compile_and_store(wasm, sha256)?,
                            CacheOutcome::Compiled,
                        )
                    }
                }
            }
            _ => (
                self.compile_and_store(wasm, sha256)?,
                CacheOutcome::Compiled,
            ),
        };
        self.memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sha256.to_string(), component.clone());
        Ok((component, outcome, ms(started)))
    }

    fn compile_and_store(&self, wasm: &[u8], sha256: &str) -> wasmtime::Result<Component> {
        let Some(path) = self.path(sha256) else {
            return Component::new(&self.engine, wasm);
        };
        let artifact = self.engine.precompile_component(wasm)?;
        if let Err(e) = write_atomic(&path, &artifact) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write compiled artifact to cache");
        }
        // SAFETY: `artifact` was produced just now by this engine.
        unsafe { Component::deserialize(&self.engine, &artifact) }
    }

    /// Drops the in-memory entry (the disk artifact stays). Used by benchmarks.
    pub fn forget(&self, sha256: &str) {
        self.memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sha256);
    }
}

fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
