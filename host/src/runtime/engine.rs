//! Engine configuration and the epoch ticker.

use super::settings::RuntimeSettings;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
};

/// Guest linear memory kept resident (not madvised away) per pooled slot on instance drop.
/// Without it every drop returns pages to the kernel and two threads run slower than one.
const MEMORY_KEEP_RESIDENT: usize = 2 << 20;
const TABLE_KEEP_RESIDENT: usize = 64 << 10;
const GUEST_RESERVATION: u64 = 4 << 30;
const GUEST_GUARD: u64 = 32 << 20;

pub fn build(s: &RuntimeSettings) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(s.pool_instances)
        .total_core_instances(s.pool_instances * 4)
        .total_memories(s.pool_instances * 2)
        .total_tables(s.pool_instances * 4)
        .total_stacks(s.pool_instances)
        .max_memory_size((s.pool_max_memory_mb as usize) << 20)
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .max_unused_warm_slots(s.pool_instances);
    let mut cfg = Config::new();
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .consume_fuel(s.fuel_metering)
        .max_wasm_stack(512 << 10)
        .wasm_component_model(true)
        .parallel_compilation(true)
        // 4 GiB of address space (not memory) per slot plus a guard region lets Cranelift
        // drop the bounds check on every guest load and store: a fault in the guard is
        // the trap. Measured: BANT's guest code ran ~2x slower with explicit checks.
        .memory_reservation(GUEST_RESERVATION)
        .memory_guard_size(GUEST_GUARD)
        .memory_reservation_for_growth(0);
    if s.perf_map {
        cfg.profiler(ProfilingStrategy::PerfMap);
    }
    Engine::new(&cfg)
}

/// Advances the engine's epoch on a fixed tick; deadlines are counted in ticks. Holds only
/// a weak reference, so it stops by itself when the engine is gone.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub fn start(engine: &Engine, tick: Duration) -> Self {
        let weak = engine.weak();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("strata-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawn epoch ticker thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
