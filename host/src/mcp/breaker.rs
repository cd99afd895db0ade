//! Per-server failure handling, as plain state machines over explicit instants:
//! [`Breaker`] (closed → open after N consecutive failures → half-open after a cool-down,
//! one trial call) and [`Backoff`] (reconnect attempts at most once per window, the
//! window doubling per consecutive failure).

use std::time::{Duration, Instant};

/// Where a server's circuit breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once (`McpError::CircuitOpen`) until the cool-down has passed.
    Open,
    /// Cool-down over: one trial call goes through; its outcome closes or reopens.
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
}

/// How a call was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Normal,
    /// The one trial of a half-open breaker: its outcome must be reported (or
    /// [`Breaker::release_trial`] called if it has none).
    Trial,
}

#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            failures: 0,
            opened_at: None,
            trial_in_flight: false,
        }
    }

    pub(crate) fn state(&self, now: Instant) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(t) if now.saturating_duration_since(t) < self.cooldown => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Consecutive failures so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Lets a call through, or refuses it (`None`) while open or while the half-open
    /// trial is running.
    pub(crate) fn admit(&mut self, now: Instant) -> Option<Admission> {
        match self.state(now) {
            BreakerState::Closed => Some(Admission::Normal),
            BreakerState::Open => None,
            BreakerState::HalfOpen if self.trial_in_flight => None,
            BreakerState::HalfOpen => {
                self.trial_in_flight = true;
                Some(Admission::Trial)
            }
        }
    }

    pub(crate) fn success(&mut self) {
        self.failures = 0;
        self.opened_at = None;
        self.trial_in_flight = false;
    }

    pub(crate) fn failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let was_trial = self.trial_in_flight;
        self.trial_in_flight = false;
        if was_trial || self.opened_at.is_some() || self.failures >= self.threshold {
            self.opened_at = Some(now);
        }
    }

    /// The trial ended without an outcome (its caller went away): let another try.
    pub(crate) fn release_trial(&mut self) {
        self.trial_in_flight = false;
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    /// Connect failures and lost connections since the last successful exchange.
    streak: u32,
    last_attempt: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            streak: 0,
            last_attempt: None,
        }
    }

    /// The window after an attempt: none for the first reconnect after a failure,
    /// then `initial`, doubling, at most `max`.
    pub(crate) fn window(&self) -> Duration {
        if self.streak <= 1 {
            return Duration::ZERO;
        }
        let doublings = (self.streak - 2).min(31);
        self.initial
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// `Ok` if an attempt may start now, else how long until it may.
    pub(crate) fn ready(&self, now: Instant) -> Result<(), Duration> {
        match self.last_attempt {
            None => Ok(()),
            Some(t) => {
                let at = t + self.window();
                if now >= at {
                    Ok(())
                } else {
                    Err(at - now)
                }
            }
        }
    }

    pub(crate) fn attempt(&mut self, now: Instant) {
        self.last_attempt = Some(now);
    }

    /// A connect failed or a connection was lost.
    pub(crate) fn failed(&mut self) {
        self.streak = self.streak.saturating_add(1);
    }

    /// An exchange on a connection succeeded.
    pub(crate) fn succeeded(&mut self) {
        self.streak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn breaker_opens_after_threshold_then_half_opens_with_one_trial() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, 100 * MS);
        assert_eq!(b.admit(t0), Some(Admission::Normal));
        b.failure(t0);
        b.failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        b.success();
        b.failure(t0);
        b.failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed, "success reset the count");
        b.failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(b.admit(t0 + 50 * MS), None);
        let t1 = t0 + 100 * MS;
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert_eq!(b.admit(t1), Some(Admission::Trial));
        assert_eq!(b.admit(t1), None, "one trial at a time");
        b.failure(t1);
        assert_eq!(b.state(t1), BreakerState::Open, "failed trial reopens");
        let t2 = t1 + 100 * MS;
        assert_eq!(b.admit(t2), Some(Admission::Trial));
        b.release_trial();
        assert_eq!(b.admit(t2), Some(Admission::Trial), "released trial");
        b.success();
        assert_eq!(b.state(t2), BreakerState::Closed);
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn backoff_first_reconnect_is_immediate_then_doubles_to_max() {
        let t0 = Instant::now();
        let mut k = Backoff::new(100 * MS, 350 * MS);
        assert_eq!(k.ready(t0), Ok(()));
        k.attempt(t0);
        k.failed(); // first failure: reconnect at once
        assert_eq!(k.window(), Duration::ZERO);
        assert_eq!(k.ready(t0), Ok(()));
        k.attempt(t0);
        k.failed();
        assert_eq!(k.window(), 100 * MS);
        assert_eq!(k.ready(t0 + 40 * MS), Err(60 * MS));
        assert_eq!(k.ready(t0 + 100 * MS), Ok(()));
        k.failed();
        assert_eq!(k.window(), 200 * MS);
        k.failed();
        assert_eq!(k.window(), 350 * MS, "capped");
        for _ in 0..100 {
            k.failed();
        }
        assert_eq!(k.window(), 350 * MS);
        k.succeeded();
        assert_eq!(k.window(), Duration::ZERO);
    }
}
