//! Per-provider circuit breaker: closed → open after `failure_threshold` consecutive
//! failures → after `open_ms`, half-open: exactly one probe call goes through; its success
//! closes the circuit, its failure opens it again. While open (or while the probe is in
//! flight) calls fail fast without a request.
//!
//! What counts as a failure is the broker's choice (see `broker.rs`): unavailability only
//! (timeouts, connection errors, HTTP 408/429/5xx). Any other HTTP answer is a success for
//! the breaker, even a 4xx or an answer that is unreadable or rejected by the schema: the
//! provider is up, and those are handled by retry/fallback or are configuration errors.

use serde::{Deserialize, Serialize};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A breaker's state as reported by [`LlmBroker::status`](super::LlmBroker::status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    /// The open period is over: the next call is a probe (or a probe is in flight).
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The `llm_breaker_state` gauge's value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant, failures: u32 },
    HalfOpen { probing: bool, failures: u32 },
}

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

/// Leave to make one call. Report how it went with [`Permit::success`] or
/// [`Permit::failure`]; dropped without either (the call was cancelled), a probe's slot is
/// freed for the next caller.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    done: bool,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A permit, or None when the circuit is open (fail fast).
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&self, now: Instant) -> Option<Permit<'_>> {
        let mut inner = self.lock();
        let probe = match *inner {
            Inner::Closed { .. } => false,
            Inner::Open { until, failures } if now >= until => {
                *inner = Inner::HalfOpen {
                    probing: true,
                    failures,
                };
                true
            }
            Inner::Open { .. } => return None,
            Inner::HalfOpen { probing: true, .. } => return None,
            Inner::HalfOpen {
                probing: false,
                failures,
            } => {
                *inner = Inner::HalfOpen {
                    probing: true,
                    failures,
                };
                true
            }
        };
        Some(Permit {
            breaker: self,
            probe,
            done: false,
        })
    }

    /// State and consecutive failures, as of now.
    pub fn state(&self) -> (BreakerState, u32) {
        self.state_at(Instant::now())
    }

    fn state_at(&self, now: Instant) -> (BreakerState, u32) {
        match *self.lock() {
            Inner::Closed { failures } => (BreakerState::Closed, failures),
            Inner::Open { until, failures } if now >= until => (BreakerState::HalfOpen, failures),
            Inner::Open { failures, .. } => (BreakerState::Open, failures),
            Inner::HalfOpen { failures, .. } => (BreakerState::HalfOpen, failures),
        }
    }

    fn on_success(&self) {
        // The provider demonstrably answers: close, whatever the state.
        *self.lock() = Inner::Closed { failures: 0 };
    }

    fn on_failure(&self, probe: bool, now: Instant) {
        let mut inner = self.lock();
        *inner = match *inner {
            Inner::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.threshold {
                    Inner::Open {
                        until: now + self.open_for,
                        failures,
                    }
                } else {
                    Inner::Closed { failures }
                }
            }
            Inner::HalfOpen { probing, failures } => {
                if probe {
                    Inner::Open {
                        until: now + self.open_for,
                        failures: failures.saturating_add(1),
                    }
                } else {
                    // A call that started before the circuit opened: the probe decides.
                    Inner::HalfOpen { probing, failures }
                }
            }
            open @ Inner::Open { .. } => open,
        };
    }

    fn on_abandoned(&self, probe: bool) {
        if !probe {
            return;
        }
        let mut inner = self.lock();
        if let Inner::HalfOpen { failures, .. } = *inner {
            *inner = Inner::HalfOpen {
                probing: false,
                failures,
            };
        }
    }
}

impl Permit<'_> {
    /// Whether this call is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    pub fn success(mut self) {
        self.done = true;
        self.breaker.on_success();
    }

    pub fn failure(self) {
        self.failure_at(Instant::now());
    }

    fn failure_at(mut self, now: Instant) {
        self.done = true;
        self.breaker.on_failure(self.probe, now);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.on_abandoned(self.probe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Duration = Duration::from_secs(30);

    fn fail_at(b: &Breaker, now: Instant) {
        b.try_acquire_at(now).expect("permit").failure_at(now);
    }

    #[test]
    fn opens_after_threshold_consecutive_failures_and_success_resets() {
        let b = Breaker::new(3, OPEN);
        let t0 = Instant::now();
        fail_at(&b, t0);
        fail_at(&b, t0);
        b.try_acquire_at(t0).unwrap().success();
        assert_eq!(b.state_at(t0), (BreakerState::Closed, 0));
        for _ in 0..3 {
            fail_at(&b, t0);
        }
        assert_eq!(b.state_at(t0).0, BreakerState::Open);
        assert!(b.try_acquire_at(t0 + OPEN / 2).is_none());
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let b = Breaker::new(1, OPEN);
        let t0 = Instant::now();
        fail_at(&b, t0);
        let later = t0 + OPEN;
        assert_eq!(b.state_at(later).0, BreakerState::HalfOpen);
        let probe = b.try_acquire_at(later).expect("probe");
        assert!(probe.is_probe());
        assert!(b.try_acquire_at(later).is_none(), "one probe at a time");
        // Probe fails: open again for a full period.
        probe.failure_at(later);
        assert!(b.try_acquire_at(later + OPEN / 2).is_none());
        // Next probe succeeds: closed.
        let probe = b.try_acquire_at(later + OPEN).expect("probe");
        probe.success();
        assert_eq!(b.state_at(later + OPEN), (BreakerState::Closed, 0));
        assert!(!b.try_acquire_at(later + OPEN).unwrap().is_probe());
    }

    #[test]
    fn abandoned_probe_frees_the_slot() {
        let b = Breaker::new(1, OPEN);
        let t0 = Instant::now();
        fail_at(&b, t0);
        let probe = b.try_acquire_at(t0 + OPEN).expect("probe");
        drop(probe);
        assert!(b.try_acquire_at(t0 + OPEN).expect("next probe").is_probe());
    }

    #[test]
    fn late_failure_of_a_pre_open_call_does_not_reopen_a_probing_breaker() {
        let b = Breaker::new(1, OPEN);
        let t0 = Instant::now();
        let early = b.try_acquire_at(t0).unwrap();
        fail_at(&b, t0);
        let probe = b.try_acquire_at(t0 + OPEN).unwrap();
        early.failure();
        assert!(b.try_acquire_at(t0 + OPEN).is_none());
        probe.success();
        assert_eq!(b.state().0, BreakerState::Closed);
    }
}
