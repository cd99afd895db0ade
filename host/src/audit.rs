//! Batched capability audit: calls enqueue records without waiting; one background task
//! writes them in multi-row transactions (every `FLUSH_EVERY` or `BATCH` records), so
//! auditing does not dominate a call. `flush()` waits until everything queued is stored.
//!
//! The writer does not wake per record: after the first record of a batch it sleeps
//! until the batch's deadline (or until `flush()` or a full batch wakes it), then drains
//! the queue. A record sent meanwhile costs the sender a queue push, not a thread wake-up,
//! and the writer takes the database's write lock once per batch, not once per burst.

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
