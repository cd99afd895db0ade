//! Batched capability audit: calls enqueue records without waiting; one background task
//! writes them in multi-row transactions (every `FLUSH_EVERY` or `BATCH` records), so
//! auditing does not dominate a call. `flush()` waits until everything queued is stored.
//!
//! The writer does not wake per record: after the first record of a batch it sleeps
//! until the batch's deadline (or until `flush()` or a full batch wakes it), then drains
//! the queue. A record sent meanwhile costs the sender a queue push, not a thread wake-up,
//! and the writer takes the database's write lock once per batch, not once per burst.
//!
//! What one plugin call may send is bounded by [`CallAudit`]: past
//! `runtime.audit_max_records_per_call`, identical records become one summary row with
//! a `count`.

pub use crate::db::AuditRecord;
use crate::db::Db;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};

const BATCH: usize = 1000;
const FLUSH_EVERY: Duration = Duration::from_millis(50);

enum Msg {
    Record(Box<AuditRecord>),
    Flush(oneshot::Sender<()>),
}

/// What the senders and the writer share besides the queue.
#[derive(Default)]
struct Shared {
    /// Records sent and not yet taken by the writer.
    queued: AtomicUsize,
    /// Wakes the writer before its deadline: a flush, or a full batch.
    wake: Notify,
}

/// Handle to the audit writer. Cheap to clone; sending never blocks.
#[derive(Clone)]
pub struct AuditSink {
    tx: Option<(mpsc::UnboundedSender<Msg>, Arc<Shared>)>,
}

impl AuditSink {
    /// Starts the writer task on the current runtime.
    pub fn spawn(db: Db) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        tokio::spawn(writer(db, rx, shared.clone()));
        Self {
            tx: Some((tx, shared)),
        }
    }

    /// A sink that drops records (offline tools with no database).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    pub fn record(&self, rec: AuditRecord) {
        if let Some((tx, shared)) = &self.tx {
            // Counted before it is sent: the writer's decrement always follows.
            let queued = shared.queued.fetch_add(1, Ordering::Relaxed) + 1;
            if tx.send(Msg::Record(Box::new(rec))).is_err() {
                shared.queued.fetch_sub(1, Ordering::Relaxed);
                tracing::error!("audit writer has stopped; an audit record was lost");
            } else if queued == BATCH {
                shared.wake.notify_one();
            }
        }
    }

    /// Waits until every record sent before this call is written (or failed and logged).
    pub async fn flush(&self) {
        if let Some((tx, shared)) = &self.tx {
            let (done, wait) = oneshot::channel();
            if tx.send(Msg::Flush(done)).is_ok() {
                shared.wake.notify_one();
                let _ = wait.await;
            }
        }
    }
}

async fn writer(db: Db, mut rx: mpsc::UnboundedReceiver<Msg>, shared: Arc<Shared>) {
    let mut batch: Vec<AuditRecord> = Vec::with_capacity(BATCH);
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    let take = |m: Msg, batch: &mut Vec<AuditRecord>, waiters: &mut Vec<_>| match m {
        Msg::Record(r) => {
            shared.queued.fetch_sub(1, Ordering::Relaxed);
            batch.push(*r);
        }
        Msg::Flush(w) => waiters.push(w),
    };
    let mut closed = false;
    while !closed {
        match rx.recv().await {
            Some(m) => take(m, &mut batch, &mut waiters),
            None => break,
        }
        if waiters.is_empty() {
            let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shared.wake.notified() => {}
            }
        }
        // Everything queued now, a batch at a time; a flush's records precede it.
        loop {
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => take(m, &mut batch, &mut waiters),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            let full = batch.len() >= BATCH;
            write_batch(&db, &mut batch).await;
            if !full {
                break;
            }
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
    write_batch(&db, &mut batch).await;
}

async fn write_batch(db: &Db, batch: &mut Vec<AuditRecord>) {
    if batch.is_empty() {
        return;
    }
    for attempt in 1..=3 {
        match db.insert_audit(batch).await {
            Ok(_) => {
                batch.clear();
                return;
            }
            Err(e) if attempt < 3 => {
                tracing::warn!(error = %e, records = batch.len(), attempt, "audit write failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "audit write failed; records dropped");
                batch.clear();
            }
        }
    }
}

/// Longest `target` an audit record keeps; a longer one (an invalid `state` key, say) is
/// cut on a char boundary and ends in `…`.
pub const MAX_TARGET_BYTES: usize = 512;

/// `target`, cut to [`MAX_TARGET_BYTES`].
pub fn audit_target(target: &str) -> String {
    if target.len() <= MAX_TARGET_BYTES {
        return target.to_string();
    }
    let mut end = MAX_TARGET_BYTES;
    while !target.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &target[..end])
}

/// The key records of one call are summarised by: (capability, operation, target,
/// allowed). `target: None` is the catch-all of a (capability, operation, allowed) once a
/// call has more distinct keys than its cap.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SummaryKey<'a> {
    capability: &'a str,
    operation: &'a str,
    target: Option<&'a str>,
    allowed: bool,
}

/// Records past the cap of one key: the first of them (its time, request id, first
/// detail), with count, duration, tokens and cost summed over all of them.
struct Summary {
    record: AuditRecord,
    first_detail: Option<String>,
}

impl Summary {
    fn key(&self) -> SummaryKey<'_> {
        let r = &self.record;
        SummaryKey {
            capability: &r.capability,
            operation: &r.operation,
            target: r.target.as_deref(),
            allowed: r.allowed,
        }
    }

    fn add(&mut self, duration_us: i64, usage: Option<(u64, u64, f64)>) {
        let r = &mut self.record;
        r.count += 1;
        r.duration_us = r.duration_us.saturating_add(duration_us);
        if let Some((tokens_in, tokens_out, cost)) = usage {
            r.tokens_in = Some(r.tokens_in.unwrap_or(0).saturating_add(tokens_in as i64));
            r.tokens_out = Some(r.tokens_out.unwrap_or(0).saturating_add(tokens_out as i64));
            r.cost_usd = Some(r.cost_usd.unwrap_or(0.0) + cost);
        }
    }

    /// The summary record: `count` calls, and a detail that says so (one call: its own
    /// record, sent late).
    fn into_record(self, cap: u32) -> AuditRecord {
        let mut r = self.record;
        if r.count == 1 && r.target.is_some() {
            r.detail = self.first_detail;
            return r;
        }
        let n = thousands(r.count);
        let mut detail = match r.target {
            Some(_) => format!("summarised: {n} more identical calls"),
            None => format!(
                "summarised: {n} more calls to other targets (past {cap} distinct targets in \
                 this call, or a target over {MAX_TARGET_BYTES} bytes)"
            ),
        };
        if let Some(first) = self.first_detail {
            detail.push_str("; first: ");
            detail.push_str(&first);
        }
        r.detail = Some(detail);
        r
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Summaries of one call, by the hash of their key (collisions share a bucket).
#[derive(Default)]
struct Summaries {
    hasher: std::hash::RandomState,
    by_hash: std::collections::HashMap<u64, Vec<Summary>>,
    /// Distinct keys with a target (catch-alls not counted).
    distinct: u32,
}

/// The audit of one call (one store): bounds how many records one call sends.
///
/// The first `cap` records go to the sink one by one. Past the cap, records identical in
/// (capability, operation, target, allowed) are counted instead, and [`Self::finish`] — at
/// the end of the call, whatever ended it — sends one summary record per key with
/// `count` = the calls it stands for, summed duration, tokens and cost, and a detail
/// `summarised: N more identical calls`. Past `cap` distinct keys (or for a target over
/// [`MAX_TARGET_BYTES`]), further calls are counted under a catch-all per (capability,
/// operation, allowed) with no target. So one call writes at most `cap` single records,
/// `cap` per-key summaries and one catch-all per (capability, operation, allowed) — a
/// fixed set — and the counts add up to every call made: a denied call is never lost, at
/// worst it is counted in a summary.
///
/// Under the cap a record costs one counter increment more than before; the summaries
/// (a small map) are allocated only once a call passes the cap.
pub struct CallAudit {
    cap: u32,
    sent: std::cell::Cell<u32>,
    summaries: std::cell::RefCell<Option<Box<Summaries>>>,
}

impl CallAudit {
    pub fn new(cap: u32) -> Self {
        Self {
            cap,
            sent: std::cell::Cell::new(0),
            summaries: std::cell::RefCell::new(None),
        }
    }

    /// Sends `record()` to `sink`, or counts it in a summary once the call has sent `cap`
    /// records. `record` builds the full record (called only when it is needed: under
    /// the cap, or for the first record of a new summary).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        sink: &AuditSink,
        capability: &str,
        operation: &str,
        target: &str,
        allowed: bool,
        duration_us: i64,
        usage: Option<(u64, u64, f64)>,
        record: impl FnOnce() -> AuditRecord,
    ) {
        let sent = self.sent.get();
        if sent < self.cap {
            self.sent.set(sent + 1);
            sink.record(record());
            return;
        }
        let mut slot = self.summaries.borrow_mut();
        let s: &mut Summaries = slot.get_or_insert_with(Default::default);
        let target = if target.len() > MAX_TARGET_BYTES {
            None
        } else {
            Some(target)
        };
        let mut key = SummaryKey {
            capability,
            operation,
            target,
            allowed,
        };
        let hash = |s: &Summaries, k: &SummaryKey| std::hash::BuildHasher::hash_one(&s.hasher, k);
        let mut h = hash(s, &key);
        let found = s
            .by_hash
            .get(&h)
            .and_then(|b| b.iter().position(|x| x.key() == key));
        if let Some(i) = found {
            if let Some(summary) = s.by_hash.get_mut(&h).and_then(|b| b.get_mut(i)) {
                summary.add(duration_us, usage);
            }
            return;
        }
        if key.target.is_some() && s.distinct >= self.cap.max(1) {
            // Too many distinct targets: count this one under its catch-all.
            key.target = None;
            h = hash(s, &key);
            let bucket = s.by_hash.entry(h).or_default();
            if let Some(summary) = bucket.iter_mut().find(|x| x.key() == key) {
                summary.add(duration_us, usage);
                return;
            }
        }
        let mut first = record();
        first.count = 1;
        first.duration_us = duration_us;
        let first_detail = first.detail.take();
        match key.target {
            Some(_) => s.distinct += 1,
            None => first.target = None,
        }
        s.by_hash.entry(h).or_default().push(Summary {
            record: first,
            first_detail,
        });
    }

    /// Sends the summaries of the records past the cap (if any) and starts counting anew:
    /// the end of a call. Idempotent.
    pub fn finish(&self, sink: &AuditSink) {
        self.sent.set(0);
        let Some(s) = self.summaries.borrow_mut().take() else {
            return;
        };
        let mut all: Vec<Summary> = s.by_hash.into_values().flatten().collect();
        all.sort_by_key(|x| x.record.at);
        for summary in all {
            sink.record(summary.into_record(self.cap));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink whose records can be read back: the writer's queue, never drained.
    fn capture() -> (AuditSink, mpsc::UnboundedReceiver<Msg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            AuditSink {
                tx: Some((tx, Arc::new(Shared::default()))),
            },
            rx,
        )
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<Msg>) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            if let Msg::Record(r) = m {
                out.push(*r);
            }
        }
        out
    }

    fn call(a: &CallAudit, sink: &AuditSink, op: &str, target: &str, allowed: bool, at: i64) {
        a.record(sink, "state", op, target, allowed, 3, None, || {
            AuditRecord {
                at,
                capability: "state".into(),
                operation: op.into(),
                target: Some(audit_target(target)),
                allowed,
                detail: (!allowed).then(|| format!("denied at {at}")),
                duration_us: 3,
                ..Default::default()
            }
        });
    }

    #[test]
    fn past_the_cap_identical_records_are_summarised_with_an_exact_count() {
        let (sink, mut rx) = capture();
        let a = CallAudit::new(10);
        for i in 0..1000 {
            call(&a, &sink, "get", "k", true, i);
        }
        for i in 0..50 {
            call(&a, &sink, "set", "", false, 1000 + i);
        }
        assert_eq!(
            drain(&mut rx).len(),
            10,
            "only the cap is sent during the call"
        );
        a.finish(&sink);
        let summaries = drain(&mut rx);
        assert_eq!(summaries.len(), 2, "{summaries:?}");
        let get = &summaries[0];
        assert_eq!((get.operation.as_str(), get.count), ("get", 990));
        assert_eq!(get.duration_us, 990 * 3);
        assert_eq!(get.at, 10, "the time of the first summarised call");
        assert_eq!(
            get.detail.as_deref(),
            Some("summarised: 990 more identical calls")
        );
        let denied = &summaries[1];
        assert!(!denied.allowed);
        assert_eq!(denied.count, 50);
        assert_eq!(
            denied.detail.as_deref(),
            Some("summarised: 50 more identical calls; first: denied at 1000")
        );
        // A new call (a reused store) starts under the cap again.
        a.finish(&sink);
        assert!(drain(&mut rx).is_empty());
        call(&a, &sink, "get", "k", true, 0);
        assert_eq!(drain(&mut rx).len(), 1);
    }

    #[test]
    fn distinct_targets_past_the_cap_are_bounded_too() {
        let (sink, mut rx) = capture();
        let a = CallAudit::new(4);
        for i in 0..100 {
            call(&a, &sink, "get", &format!("k{i}"), true, i);
        }
        let long = "x".repeat(MAX_TARGET_BYTES + 10);
        call(&a, &sink, "get", &long, false, 100);
        a.finish(&sink);
        let rows = drain(&mut rx);
        // 4 sent, 4 distinct summaries, 1 allowed catch-all, 1 denied catch-all.
        assert_eq!(rows.len(), 10, "{rows:?}");
        assert_eq!(rows.iter().map(|r| r.count).sum::<i64>(), 101);
        let catch_all = rows
            .iter()
            .find(|r| r.target.is_none() && r.allowed)
            .unwrap();
        assert_eq!(catch_all.count, 92);
        assert!(catch_all
            .detail
            .as_deref()
            .unwrap()
            .starts_with("summarised: 92 more calls to other targets"));
        assert!(rows.iter().any(|r| !r.allowed && r.count == 1));
    }

    #[test]
    fn long_targets_are_cut_and_counts_read_with_separators() {
        let t = audit_target(&"é".repeat(MAX_TARGET_BYTES));
        assert!(t.len() <= MAX_TARGET_BYTES + '…'.len_utf8());
        assert!(t.ends_with('…'));
        assert_eq!(thousands(99_900), "99,900");
        assert_eq!(thousands(100), "100");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
