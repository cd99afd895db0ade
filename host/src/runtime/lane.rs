//! Where a call runs: inline on the async worker that took the request, or on the
//! blocking pool.
//!
//! Handing a 20–40 µs scorer call to the blocking pool costs about as much as the call
//! (two thread wake-ups, a cold cache on the other thread, and under load dozens of pool
//! threads contending for two cores). A call may run inline only when it cannot block
//! on anything but the CPU and is known to be short:
//! - *pure*: the component imports no capability but `log` (deny-all WASI, types, `log`
//!   — which only emits a tracing line); no database, LLM, MCP or nested plugin call;
//! - *short deadline*: its effective deadline is at most [`INLINE_MAX_DEADLINE_MS`], so
//!   the epoch interrupt bounds how long any inline call can hold a worker;
//! - *proven fast*: fewer than [`INLINE_MAX_OVERRUNS`] calls of this version have used
//!   more CPU than the budget.
//!
//! The budget is counted in the calling thread's CPU time, not wall time: a call that was
//! merely preempted on a busy machine is not "slow". The first calls of a version are cold
//! (first page faults in a fresh pool slot, lazy initialisation in the host): BANT's first
//! call takes ~1.3 ms of CPU, its next ones ~40 µs — so a single overrun is forgiven. A
//! version that overruns [`INLINE_MAX_OVERRUNS`] times is moved to the blocking pool for
//! good (until it is reloaded), so a slow or hostile plugin can hold an async worker at
//! most that many times, each for at most its deadline. An inline call is not preempted by the request timeout (the
//! deadline is its bound), which is why long deadlines never run inline. The sandbox is the
//! same on both lanes: fresh instance, same limits.

use super::ImportInfo;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// The longest deadline a version may have and still run inline.
pub const INLINE_MAX_DEADLINE_MS: u64 = 100;
/// Calls over the inline budget that move a version to the blocking pool for good.
pub const INLINE_MAX_OVERRUNS: u32 = 3;

/// A version's lane: fixed eligibility, plus the count of slow calls and the one-way
/// "has been slow too often" flag.
#[derive(Debug, serde::Serialize)]
pub struct CallLane {
    /// Imports no capability but `log`.
    pure: bool,
    /// Pure and its deadline is at most [`INLINE_MAX_DEADLINE_MS`].
    eligible: bool,
    /// Calls that overran the inline budget.
    #[serde(serialize_with = "load_count")]
    overruns: AtomicU32,
    /// [`INLINE_MAX_OVERRUNS`] calls overran the inline budget.
    #[serde(rename = "demoted", serialize_with = "load_flag")]
    slow: AtomicBool,
}

fn load_count<S: serde::Serializer>(n: &AtomicU32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u32(n.load(Ordering::Relaxed))
}

fn load_flag<S: serde::Serializer>(f: &AtomicBool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(f.load(Ordering::Relaxed))
}

impl CallLane {
    /// Pure when every import is WASI (deny-all), shared types or the `log` capability.
    pub fn new(imports: &[ImportInfo], deadline_ms: u64) -> Self {
        let pure = imports
            .iter()
            .all(|i| matches!(i.class.as_str(), "wasi" | "types" | "capability:log"));
        Self {
            pure,
            eligible: pure && deadline_ms <= INLINE_MAX_DEADLINE_MS,
            overruns: AtomicU32::new(0),
            slow: AtomicBool::new(false),
        }
    }

    pub fn is_pure(&self) -> bool {
        self.pure
    }

    /// May the next call run inline on the async worker?
    pub fn inline(&self) -> bool {
        self.eligible && !self.slow.load(Ordering::Relaxed)
    }

    /// Records a call's CPU time (see [`thread_cpu_time`]); returns true when this call
    /// moved the version off the inline lane.
    pub fn observe(&self, elapsed: Duration, budget: Duration) -> bool {
        if elapsed <= budget {
            return false;
        }
        let overruns = self.overruns.fetch_add(1, Ordering::Relaxed) + 1;
        overruns >= INLINE_MAX_OVERRUNS && !self.slow.swap(true, Ordering::Relaxed)
    }

    /// Whether too many calls overran the budget (the version now runs on the blocking pool).
    pub fn demoted(&self) -> bool {
        self.slow.load(Ordering::Relaxed)
    }
}

/// CPU time consumed by the calling thread so far.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is a libc constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imports(classes: &[&str]) -> Vec<ImportInfo> {
        classes
            .iter()
            .map(|c| ImportInfo {
                name: format!("x:{c}"),
                class: (*c).into(),
            })
            .collect()
    }

    #[test]
    fn only_wasi_types_and_log_imports_make_a_version_pure() {
        assert!(CallLane::new(&imports(&["wasi", "types", "capability:log"]), 50).inline());
        assert!(CallLane::new(&[], 50).inline());
        for blocking in [
            "capability:state",
            "capability:crm",
            "capability:llm",
            "capability:mcp",
        ] {
            let lane = CallLane::new(&imports(&["wasi", blocking]), 50);
            assert!(!lane.is_pure() && !lane.inline(), "{blocking}");
        }
    }

    #[test]
    fn a_deadline_longer_than_the_inline_bound_keeps_a_pure_version_off_the_worker() {
        assert!(CallLane::new(&[], INLINE_MAX_DEADLINE_MS).inline());
        let lane = CallLane::new(&[], INLINE_MAX_DEADLINE_MS + 1);
        assert!(lane.is_pure() && !lane.inline());
    }

    #[test]
    fn a_cold_first_call_over_budget_is_forgiven() {
        let lane = CallLane::new(&imports(&["wasi"]), 50);
        let budget = Duration::from_millis(1);
        assert!(!lane.observe(Duration::from_micros(1300), budget));
        for _ in 0..100 {
            assert!(!lane.observe(Duration::from_micros(40), budget));
        }
        assert!(lane.inline() && !lane.demoted());
    }

    #[test]
    fn repeated_calls_over_budget_demote_the_version_for_good() {
        let lane = CallLane::new(&imports(&["wasi"]), 50);
        let budget = Duration::from_millis(1);
        assert!(!lane.observe(Duration::from_micros(900), budget));
        assert!(lane.inline());
        for i in 1..INLINE_MAX_OVERRUNS {
            assert!(
                !lane.observe(Duration::from_millis(3), budget),
                "overrun {i}"
            );
            assert!(lane.inline(), "still inline after {i} overruns");
        }
        assert!(
            lane.observe(Duration::from_millis(3), budget),
            "the last allowed overrun reports"
        );
        assert!(
            !lane.observe(Duration::from_millis(3), budget),
            "reported once"
        );
        assert!(!lane.inline() && lane.demoted());
        assert!(!lane.observe(Duration::from_micros(10), budget));
        assert!(!lane.inline(), "a fast call does not promote it back");
    }

    #[test]
    fn thread_cpu_time_counts_work_not_sleep() {
        let t0 = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(30));
        let slept = thread_cpu_time() - t0;
        let mut x = 1u64;
        let t1 = thread_cpu_time();
        while thread_cpu_time() - t1 < Duration::from_millis(5) {
            x = std::hint::black_box(x.wrapping_mul(3));
        }
        assert!(
            slept < Duration::from_millis(30),
            "sleeping burnt {slept:?} of CPU"
        );
        assert!(thread_cpu_time() > t1);
    }
}
