//! The sandboxed component runtime: one `Engine` (pooling allocator, epoch interruption,
//! optional fuel), an on-disk cache of compiled artifacts, and per-version prepared plugins
//! (`InstancePre`) whose every call gets a fresh `Store` + instance.

pub mod cache;
pub mod call;
pub mod engine;
pub mod error;
pub mod lane;
pub mod limits;
pub mod plugin;
pub mod prepare;
pub mod reaper;
pub mod settings;
pub mod warm;

pub use cache::ArtifactCache;
pub use engine::EpochTicker;
pub use error::{CallError, LoadError};
pub use lane::CallLane;
pub use limits::Limits;
pub use plugin::{ImportInfo, LoadedPlugin};
pub use settings::RuntimeSettings;

use crate::capabilities::HostServices;
use std::sync::Arc;
use wasmtime::Engine;

/// The engine, its cache and ticker, and the services lent to capabilities.
pub struct Runtime {
    engine: Engine,
    cache: ArtifactCache,
    services: Arc<HostServices>,
    settings: RuntimeSettings,
    _ticker: EpochTicker,
}

impl Runtime {
    pub fn new(settings: RuntimeSettings, services: HostServices) -> Result<Self, LoadError> {
        let engine = engine::build(&settings).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let ticker = EpochTicker::start(&engine, settings.epoch_tick());
        let cache = ArtifactCache::new(engine.clone(), settings.cache_dir.clone());
        Ok(Self {
            engine,
            cache,
            services: Arc::new(services),
            settings,
            _ticker: ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn cache(&self) -> &ArtifactCache {
        &self.cache
    }

    pub fn services(&self) -> &Arc<HostServices> {
        &self.services
    }

    pub fn settings(&self) -> &RuntimeSettings {
        &self.settings
    }
}

/// Records one plugin call.
pub fn call_metrics<T>(plugin: &str, result: &Result<T, CallError>, elapsed: std::time::Duration) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    };
    metrics::counter!("plugin_calls_total", "plugin" => plugin.to_string(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("plugin_call_duration_seconds", "plugin" => plugin.to_string())
        .record(elapsed.as_secs_f64());
}
