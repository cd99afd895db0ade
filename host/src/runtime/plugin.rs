//! A prepared plugin version: compiled, validated, linked once; ready for calls.

use super::cache::CacheOutcome;
use super::Limits;
use crate::capabilities::CallState;
use crate::capabilities::{EffectiveGrants, HostServices, PluginIdentity};
use crate::manifest::{Manifest, PluginKind};
use crate::wit::since_v0_1_0::{agent::AgentPre, layer::LayerPre, scorer::ScorerPre};
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::Engine;

/// One import of a component and how the host classified it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportInfo {
    pub name: String,
    /// `wasi` (deny-all), `capability:<name>`, or `types`.
    pub class: String,
}

/// The pre-instantiated world of one version (bindings of its contract version).
pub enum WorldPre {
    Scorer(ScorerPre<CallState>),
    Layer(LayerPre<CallState>),
    Agent(AgentPre<CallState>),
}

/// A plugin version ready to serve. Immutable; shared by `Arc` — a call holds its own
/// reference, so a swap never disturbs calls in flight.
pub struct LoadedPlugin {
    pub identity: Arc<PluginIdentity>,
    pub manifest: Manifest,
    pub sha256: String,
    pub size: usize,
    pub source: Option<PathBuf>,
    pub contract_version: String,
    pub imports: Vec<ImportInfo>,
    pub exports: Vec<String>,
    pub grants: Arc<EffectiveGrants>,
    pub limits: Limits,
    pub cache_outcome: CacheOutcome,
    pub compile_ms: f64,
    /// Milliseconds since the epoch when this version became ready.
    pub loaded_at: i64,
    /// Inline on the async worker, or on the blocking pool (see `lane`).
    pub lane: super::CallLane,
    /// Calls one warm instance may serve (0: a fresh instance per call; see `warm`).
    pub reuse_calls: u32,
    /// Dropped with this version: warm instances of it are never used again.
    pub(crate) alive: Arc<()>,
    pub(crate) pre: WorldPre,
    pub(crate) engine: Engine,
    pub(crate) services: Arc<HostServices>,
    pub(crate) fuel_metering: bool,
    /// `runtime.audit_max_records_per_call`: audit records one call sends before identical
    /// ones are summarised.
    pub(crate) audit_max_records: u32,
}

impl LoadedPlugin {
    pub fn name(&self) -> &str {
        &self.identity.name
    }
    pub fn version(&self) -> &str {
        &self.identity.version
    }
    /// `name@version`.
    pub fn id(&self) -> &str {
        &self.identity.id
    }
    pub fn kind(&self) -> PluginKind {
        self.manifest.plugin.kind
    }
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("id", &self.identity.id)
            .field("sha256", &self.sha256)
            .finish()
    }
}
