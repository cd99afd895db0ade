//! Dropping a finished call's `Store` off the caller's thread.
//!
//! Dropping a store returns its instance's slot to the pooling allocator, which resets the
//! guest memory the call touched (zeroing the resident part, re-mapping the image): ~18 µs
//! per layer call in a pipeline profile, paid by the run's thread before its next step.
//! A call's result is complete before its store drops, so [`drop_later`] hands the store
//! to one reaper thread instead.
//!
//! Invariants: at most [`BACKLOG`] stores wait (each holds a pool slot; the pool has
//! `runtime.pool_instances` ≥ 256 by default); when the queue is full, or the thread cannot
//! be started, the store is dropped right here, as before.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;

/// Stores waiting to be dropped, at most.
pub const BACKLOG: usize = 32;

type Garbage = Box<dyn Send>;

static REAPER: OnceLock<Option<SyncSender<Garbage>>> = OnceLock::new();

fn start() -> Option<SyncSender<Garbage>> {
    let (tx, rx) = sync_channel::<Garbage>(BACKLOG);
    let spawned = std::thread::Builder::new()
        .name("strata-reaper".into())
        .spawn(move || {
            for garbage in rx {
                drop(garbage);
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!("cannot start the store reaper thread ({e}); stores drop inline");
            None
        }
    }
}

/// Drops `value` (a call's `Store`) on the reaper thread, or here if its queue is full.
pub fn drop_later<T: Send + 'static>(value: T) {
    let Some(tx) = REAPER.get_or_init(start) else {
        return drop(value);
    };
    if let Err(TrySendError::Full(g) | TrySendError::Disconnected(g)) = tx.try_send(Box::new(value))
    {
        drop(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    struct Counted(Arc<AtomicUsize>, std::thread::ThreadId);
    impl Drop for Counted {
        fn drop(&mut self) {
            if std::thread::current().id() != self.1 {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    #[test]
    fn values_handed_over_are_dropped_on_another_thread() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let me = std::thread::current().id();
        for _ in 0..3 {
            drop_later(Counted(dropped.clone(), me));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while dropped.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            3,
            "every value dropped off this thread"
        );
    }
}
