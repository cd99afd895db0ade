//! `[runtime]`: the sandbox engine's pool, default limits, artifact cache and audit cap.
//! Lives with the runtime it configures; [`crate::config::Config`] aggregates it.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Milliseconds per epoch tick of the runtime; deadlines are whole ticks.
pub const EPOCH_TICK_MS: u64 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// Compiled-artifact cache; none = compile in memory every start.
    pub cache_dir: Option<PathBuf>,
    /// Concurrent instances the pooling allocator holds slots for.
    pub pool_instances: u32,
    /// Largest linear memory any plugin may have (slot size), MiB.
    pub pool_max_memory_mb: u64,
    pub default_memory_mb: u64,
    pub default_deadline_ms: u64,
    pub default_max_input_bytes: u64,
    pub default_max_output_bytes: u64,
    /// Count instructions so `limits.fuel` can be enforced. Off by default: metering costs
    /// every call (about 5 µs of a 10 µs minimal call here); the wall-clock deadline bounds
    /// calls either way. A grant that sets `limits.fuel` requires it.
    pub fuel_metering: bool,
    /// Write `/tmp/perf-<pid>.map` so `perf report` names guest (JIT) functions. For
    /// profiling only.
    pub perf_map: bool,
    /// Audit records one plugin call sends one by one. Past it, calls identical in
    /// (capability, operation, target, allowed) are counted and written at the end of the
    /// call as one `capability_audit` row per distinct key with `count` = the calls it
    /// stands for (summed duration, tokens, cost); more than this many distinct targets
    /// are counted per (capability, operation, allowed). Denied calls are counted too,
    /// never dropped. 0 summarises every call.
    pub audit_max_records_per_call: u32,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            cache_dir: Some(PathBuf::from("var/cache")),
            pool_instances: 256,
            pool_max_memory_mb: 256,
            default_memory_mb: 64,
            default_deadline_ms: 200,
            default_max_input_bytes: 1 << 20,
            default_max_output_bytes: 256 << 10,
            fuel_metering: false,
            perf_map: false,
            audit_max_records_per_call: 100,
        }
    }
}

impl RuntimeSettings {
    pub fn epoch_tick(&self) -> Duration {
        Duration::from_millis(EPOCH_TICK_MS)
    }
}
