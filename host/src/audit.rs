//! Batched capability audit: calls enqueue records without waiting; one background task
//! writes them in multi-row transactions (every `FLUSH_EVERY` or `BATCH` records), so
//! auditing does not dominate a call. `flush()` waits until everything queued is stored.

pub use crate::db::AuditRecord;
use crate::db::Db;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const BATCH: usize = 1000;
const FLUSH_EVERY: Duration = Duration::from_millis(50);

enum Msg {
    Record(Box<AuditRecord>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the audit writer. Cheap to clone; sending never blocks.
#[derive(Clone)]
pub struct AuditSink {
    tx: Option<mpsc::UnboundedSender<Msg>>,
}

impl AuditSink {
    /// Starts the writer task on the current runtime.
    pub fn spawn(db: Db) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(db, rx));
        Self { tx: Some(tx) }
    }

    /// A sink that drops records (offline tools with no database).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    pub fn record(&self, rec: AuditRecord) {
        if let Some(tx) = &self.tx {
            if tx.send(Msg::Record(Box::new(rec))).is_err() {
                tracing::error!("audit writer has stopped; an audit record was lost");
            }
        }
    }

    /// Waits until every record sent before this call is written (or failed and logged).
    pub async fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done, wait) = oneshot::channel();
            if tx.send(Msg::Flush(done)).is_ok() {
                let _ = wait.await;
            }
        }
    }
}

async fn writer(db: Db, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut batch: Vec<AuditRecord> = Vec::with_capacity(BATCH);
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let first = match rx.recv().await {
            Some(m) => m,
            None => break,
        };
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        let mut msg = Some(first);
        loop {
            match msg.take() {
                Some(Msg::Record(r)) => batch.push(*r),
                Some(Msg::Flush(w)) => {
                    waiters.push(w);
                    break;
                }
                None => {}
            }
            if batch.len() >= BATCH {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => msg = Some(m),
                Ok(None) | Err(_) => break,
            }
        }
        write_batch(&db, &mut batch).await;
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
