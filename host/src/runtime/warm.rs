//! Opt-in instance reuse for pure scorers ("warm instances").
//!
//! By default every call gets a fresh instance: nothing a guest keeps in memory can reach
//! another call. Instantiating and resetting one costs more than BANT's whole scoring
//! logic, so an operator may grant a *pure* scorer (no capability but `log`; checked at
//! load) `reuse_calls = N`: one instance then serves up to N calls, one after another, on
//! the worker thread that created it. What that gives up, and why it is opt-in: a guest
//! can carry memory from one call into the next (e.g. one lead's data into another's
//! reasoning). What it keeps:
//! - every call still has its own deadline (epoch), fuel, input and output checks, log
//!   budget and request id; memory stays capped by the version's limit;
//! - an instance that fails in any way (trap, deadline, memory, invalid output) is dropped,
//!   never called again; a guest's own `plugin-error` is an answer and keeps it;
//! - an instance belongs to one version: a reload, rollback or disable retires it (the
//!   version's `alive` token dies with the version);
//! - each thread keeps at most [`WARM_PER_THREAD`] instances, and only the async workers
//!   (the inline lane) use this path, so warm instances hold a small, fixed number of the
//!   pooling allocator's slots.

use super::plugin::WorldPre;
use super::{CallError, LoadedPlugin};
use crate::capabilities::CallState;
use crate::wit::since_v0_1_0::{scorer::Scorer, types as wit};
use std::cell::{Cell, RefCell};
use std::sync::{Arc, Weak};
use wasmtime::Store;

/// Warm instances one thread keeps (the oldest is dropped first).
pub const WARM_PER_THREAD: usize = 4;

struct Warm {
    version: Weak<()>,
    store: Store<CallState>,
    bindings: Scorer,
    calls_left: u32,
}

thread_local! {
    static WARM: RefCell<Vec<Warm>> = const { RefCell::new(Vec::new()) };
    /// The last warm call on this thread created its instance (see [`take_cold`]).
    static COLD: Cell<bool> = const { Cell::new(false) };
}

/// Whether the last warm call on this thread was *cold*: it instantiated the instance it
/// then keeps, so its CPU time is mostly setup — the instantiation and the first touch of
/// the instance's memory (~7 ms for a CPython guest, docs/performance.md), paid once per
/// `reuse_calls` calls. The inline lane does not count such a call against its CPU budget
/// (it is still bounded by the deadline). Reading clears it.
pub fn take_cold() -> bool {
    COLD.replace(false)
}

/// Takes this thread's warm instance of `version`, dropping instances of retired versions.
fn take(version: &Weak<()>) -> Option<Warm> {
    WARM.with_borrow_mut(|warm| {
        warm.retain(|w| w.version.strong_count() > 0);
        let i = warm.iter().position(|w| w.version.ptr_eq(version))?;
        Some(warm.remove(i))
    })
}

fn give_back(w: Warm) {
    WARM.with_borrow_mut(|warm| {
        if warm.len() >= WARM_PER_THREAD {
            warm.remove(0);
        }
        warm.push(w);
    });
}

/// Warm instances this thread holds (for tests and diagnostics).
pub fn warm_on_this_thread() -> usize {
    WARM.with_borrow(|w| w.len())
}

impl LoadedPlugin {
    /// The scorer call on a warm instance of this version when its grant allows reuse,
    /// else on a fresh one. For the inline lane (see the module doc).
    pub(crate) fn call_score_warm(
        &self,
        input: &wit::Lead,
        request_id: Option<Arc<str>>,
    ) -> Result<Result<wit::Score, wit::PluginError>, CallError> {
        let version = Arc::downgrade(&self.alive);
        let mut warm = match take(&version) {
            Some(w) => w,
            None => {
                COLD.set(true);
                let WorldPre::Scorer(pre) = &self.pre else {
                    return Err(self.wrong_kind("a scorer"));
                };
                let mut store = self.new_store(None)?;
                let bindings = pre
                    .instantiate(&mut store)
                    .map_err(|e| self.classify(e, &store))?;
                Warm {
                    version,
                    store,
                    bindings,
                    calls_left: self.reuse_calls,
                }
            }
        };
        warm.store.data_mut().begin_call(request_id);
        self.arm(&mut warm.store)?;
        let out = warm.bindings.call_score(&mut warm.store, input);
        let result = out.map_err(|e| self.classify(e, &warm.store));
        warm.store.data().finish_call();
        warm.calls_left = warm.calls_left.saturating_sub(1);
        if result.is_ok() && warm.calls_left > 0 {
            give_back(warm);
        }
        result
    }
}
