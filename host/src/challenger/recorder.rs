//! The results recorder: one writer task batches challenger results into the database
//! (one transaction per `challenger.flush_ms`), then lets the canary guard rails judge
//! what it wrote.
//!
//! Guard rails (per canary attachment, over the last `guard_window` results this replica
//! recorded for its generation, once a side has `guard_min_samples`):
//! * error rate — the challenger's errors + timeouts ÷ the calls routed to it, above
//!   `max_error_rate`;
//! * drift — PSI of the scores the challenger served against the scores the champion
//!   served, above `max_psi`.
//!
//! A trip rolls the generation back in the database (a no-op when another replica did
//! it first), records a `rolled-back` strategy event, audits it (`challenger` /
//! `canary-rollback`), counts `challenger_rollbacks_total` and applies at once here.

use super::{ChallengerSettings, Challengers};
use crate::audit::{AuditRecord, AuditSink};
use crate::db::challenger_results::ChallengerResult;
use crate::db::challengers::ChallengerMode;
use crate::db::Db;
use crate::domain::now_ms;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

enum Msg {
    Result(Box<ChallengerResult>),
    Flush(oneshot::Sender<()>),
}

/// The sending side, held by [`Challengers`].
pub(super) struct Handle {
    tx: mpsc::Sender<Msg>,
    rx: Mutex<Option<mpsc::Receiver<Msg>>>,
    db: Db,
    audit: AuditSink,
    flush_every: Duration,
}

impl Handle {
    pub(super) fn new(db: Db, settings: &ChallengerSettings, audit: AuditSink) -> Handle {
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        Handle {
            tx,
            rx: Mutex::new(Some(rx)),
            db,
            audit,
            flush_every: Duration::from_millis(settings.flush_ms.max(1)),
        }
    }

    /// Starts the writer (once).
    pub(super) fn start(&self, service: Weak<Challengers>) {
        let Some(rx) = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let writer = Writer {
            db: self.db.clone(),
            audit: self.audit.clone(),
            service,
            windows: HashMap::new(),
        };
        tokio::spawn(writer.run(rx, self.flush_every));
    }

    pub(super) fn send(&self, r: ChallengerResult) {
        let labels = [
            ("strategy", r.strategy.clone()),
            ("mode", r.mode.as_str().to_string()),
            ("outcome", r.challenger_outcome.clone()),
        ];
        if self.tx.try_send(Msg::Result(Box::new(r))).is_err() {
            metrics::counter!("challenger_results_dropped_total").increment(1);
        } else {
            metrics::counter!("challenger_results_total", &labels).increment(1);
        }
    }

    /// Waits until everything sent so far is written (no-op before `start`).
    pub(super) async fn flush(&self) {
        if self.rx.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
            return;
        }
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// What a guard rail remembers of one attachment generation.
#[derive(Default)]
struct Window {
    /// (served by the challenger, challenger outcome, champion score, challenger score)
    rows: VecDeque<(bool, String, Option<f64>, Option<f64>)>,
    tripped: bool,
}

struct Writer {
    db: Db,
    audit: AuditSink,
    service: Weak<Challengers>,
    windows: HashMap<(String, i64), Window>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>, every: Duration) {
        let mut buf: Vec<ChallengerResult> = Vec::new();
        let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(Msg::Result(r)) => {
                        buf.push(*r);
                        if buf.len() < 1024 { continue; }
                    }
                    Some(Msg::Flush(done)) => waiting.push(done),
                    None => {
                        self.write(&mut buf).await;
                        break;
                    }
                },
                _ = tick.tick() => {}
            }
            // Take what is already queued before writing, so one flush covers it.
            while let Ok(m) = rx.try_recv() {
                match m {
                    Msg::Result(r) => buf.push(*r),
                    Msg::Flush(done) => waiting.push(done),
                }
            }
            self.write(&mut buf).await;
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
        }
    }

    async fn write(&mut self, buf: &mut Vec<ChallengerResult>) {
        if buf.is_empty() {
            return;
        }
        if let Err(e) = self.db.insert_challenger_results(buf).await {
            tracing::warn!(error = %e, results = buf.len(), "cannot store challenger results; they are dropped");
            metrics::counter!("challenger_results_dropped_total").increment(buf.len() as u64);
        }
        let batch = std::mem::take(buf);
        self.judge(batch).await;
    }

    async fn judge(&mut self, batch: Vec<ChallengerResult>) {
        let Some(service) = self.service.upgrade() else {
            return;
        };
        let mut touched = Vec::new();
        for r in batch {
            if r.mode != ChallengerMode::Canary {
                continue;
            }
            let Some(att) = service.attachment(&r.strategy) else {
                continue;
            };
            if att.generation != r.generation || !att.is_active() {
                continue;
            }
            let key = (r.strategy.clone(), r.generation);
            let w = self.windows.entry(key.clone()).or_default();
            w.rows.push_back((
                r.served_by == "challenger" || r.challenger_outcome != "not-run",
                r.challenger_outcome.clone(),
                r.champion.as_ref().map(|c| c.score),
                r.challenger_score,
            ));
            while w.rows.len() > att.guard_window.max(1) as usize {
                w.rows.pop_front();
            }
            if !touched.contains(&key) {
                touched.push(key);
            }
        }
        // Forget windows of generations no longer active.
        self.windows.retain(|(s, g), _| {
            service
                .attachment(s)
                .is_some_and(|a| a.generation == *g && a.is_active())
        });
        for key in touched {
            let Some(att) = service.attachment(&key.0) else {
                continue;
            };
            let Some(w) = self.windows.get_mut(&key) else {
                continue;
            };
            if w.tripped {
                continue;
            }
            let Some(reason) = verdict(w, att.guard_min_samples, att.max_error_rate, att.max_psi)
            else {
                continue;
            };
            w.tripped = true;
            match self
                .db
                .roll_back_challenger(&att.strategy, att.generation, &reason)
                .await
            {
                Ok(rolled) => {
                    if rolled {
                        tracing::warn!(strategy = %att.strategy, challenger = %att.challenger, %reason, "canary rolled back by a guard rail");
                        metrics::counter!("challenger_rollbacks_total", "strategy" => att.strategy.clone())
                            .increment(1);
                        self.audit.record(AuditRecord {
                            at: now_ms(),
                            plugin: att.challenger.clone(),
                            plugin_version: att.challenger_version.clone().unwrap_or_default(),
                            capability: "challenger".into(),
                            operation: "canary-rollback".into(),
                            target: Some(format!("strategy:{}", att.strategy)),
                            allowed: true,
                            detail: Some(format!(
                                "guard rail (generation {}): {reason}",
                                att.generation
                            )),
                            count: 1,
                            ..AuditRecord::default()
                        });
                    }
                    if let Err(e) = service.refresh().await {
                        tracing::warn!(error = %e, "cannot read the strategy challengers again");
                    }
                }
                Err(e) => {
                    w.tripped = false;
                    tracing::warn!(strategy = %att.strategy, error = %e, "a guard rail tripped but the rollback could not be stored; it is tried again on the next results");
                }
            }
        }
    }
}

/// Why the window trips a guard rail, if it does.
fn verdict(w: &Window, min_samples: i64, max_error_rate: f64, max_psi: f64) -> Option<String> {
    let min = min_samples.max(1) as usize;
    let routed: Vec<_> = w.rows.iter().filter(|r| r.0).collect();
    if routed.len() >= min {
        let failed = routed.iter().filter(|r| r.1 != "ok").count();
        let rate = failed as f64 / routed.len() as f64;
        if rate > max_error_rate {
            return Some(format!(
                "challenger error+timeout rate {:.1}% over its last {} calls exceeds max_error_rate {:.1}%",
                rate * 100.0,
                routed.len(),
                max_error_rate * 100.0
            ));
        }
    }
    let champion: Vec<f64> = w.rows.iter().filter(|r| !r.0).filter_map(|r| r.2).collect();
    let challenger: Vec<f64> = w.rows.iter().filter_map(|r| r.3).collect();
    if champion.len() >= min && challenger.len() >= min {
        if let Some(psi) = crate::evaluation::psi(&champion, &challenger) {
            if psi > max_psi {
                return Some(format!(
                    "score drift: PSI {psi:.3} of the challenger's {} scores against the champion's {} exceeds max_psi {max_psi}",
                    challenger.len(),
                    champion.len()
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(rows: &[(bool, &str, Option<f64>, Option<f64>)]) -> Window {
        Window {
            rows: rows
                .iter()
                .map(|(a, b, c, d)| (*a, b.to_string(), *c, *d))
                .collect(),
            tripped: false,
        }
    }

    #[test]
    fn error_rate_above_the_bound_trips_once_enough_calls_were_routed() {
        let mut rows = vec![(true, "error", Some(50.0), None); 3];
        rows.extend(vec![(true, "ok", None, Some(50.0)); 7]);
        assert!(
            verdict(&window(&rows), 20, 0.1, 10.0).is_none(),
            "too few samples"
        );
        let v = verdict(&window(&rows), 10, 0.1, 10.0).unwrap();
        assert!(v.contains("error+timeout rate 30.0%"), "{v}");
        assert!(verdict(&window(&rows), 10, 0.5, 10.0).is_none());
    }

    #[test]
    fn drift_trips_on_shifted_scores_and_not_on_the_same_ones() {
        let mut same = Vec::new();
        let mut shifted = Vec::new();
        for i in 0..50 {
            let x = f64::from(i) * 2.0;
            same.push((false, "not-run", Some(x), None));
            same.push((true, "ok", None, Some(x)));
            shifted.push((false, "not-run", Some(x / 2.0), None));
            shifted.push((true, "ok", None, Some(50.0 + x / 2.0)));
        }
        assert!(verdict(&window(&same), 30, 0.1, 0.25).is_none());
        let v = verdict(&window(&shifted), 30, 0.1, 0.25).unwrap();
        assert!(v.starts_with("score drift: PSI"), "{v}");
    }
}
