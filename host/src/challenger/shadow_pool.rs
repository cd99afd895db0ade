//! The threads shadow scorings run on: `challenger.max_concurrent_shadows` OS threads at
//! the idle scheduling class (Linux `SCHED_IDLE`: they get a core only when nothing else
//! wants it), fed by a queue as deep as the pool. A shadow therefore takes CPU time
//! from no request: under full load the queue fills and new samples are skipped (and
//! counted) instead of slowing the champion's responses.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send + 'static>;

pub(super) struct ShadowPool {
    tx: SyncSender<Job>,
}

impl ShadowPool {
    pub(super) fn new(threads: usize) -> ShadowPool {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("strata-shadow-{i}"))
                .spawn(move || worker(rx));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a shadow thread; shadow samples will be skipped");
            }
        }
        ShadowPool { tx }
    }

    /// Queues `job`; `false` (not run) when the queue is full.
    pub(super) fn try_run(&self, job: Job) -> bool {
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

fn worker(rx: Arc<Mutex<Receiver<Job>>>) {
    idle_priority();
    loop {
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            // The pool was dropped: the service is gone.
            Err(_) => return,
        };
        // A panic in a job must not take the thread (and the pool's capacity) with it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Moves the calling thread to the idle scheduling class (Linux); elsewhere, or if
/// refused, the lowest nice value is tried; failing both, the thread runs as is.
fn idle_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
            return;
        }
    }
    // SAFETY: adjusts the calling thread's nice value (Linux: per thread).
    unsafe {
        *libc::__errno_location() = 0;
        libc::nice(19);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Waits until `count` is `n`. The pool's threads run at idle priority, so on a machine
    /// whose cores are busy (a parallel test run, a build) they may wait seconds for a
    /// core: the bound is generous and only reached when the count never comes.
    fn wait_for_count(count: &AtomicUsize, n: usize) {
        let start = std::time::Instant::now();
        while count.load(Ordering::SeqCst) != n && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(count.load(Ordering::SeqCst), n);
    }

    #[test]
    fn jobs_run_and_a_full_queue_refuses_instead_of_waiting() {
        let pool = ShadowPool::new(1);
        let done = Arc::new(AtomicUsize::new(0));
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        // One job holds the thread, one waits in the queue: the third is refused.
        let started = Arc::new(AtomicUsize::new(0));
        let mut accepted = 0;
        for i in 0..3 {
            let (d, g, st) = (done.clone(), gate.clone(), started.clone());
            if pool.try_run(Box::new(move || {
                st.fetch_add(1, Ordering::SeqCst);
                let _ = g.lock().unwrap().recv_timeout(Duration::from_secs(60));
                d.fetch_add(1, Ordering::SeqCst);
            })) {
                accepted += 1;
            }
            if i == 0 {
                // The thread has taken the first job off the queue.
                wait_for_count(&started, 1);
            }
        }
        assert_eq!(accepted, 2);
        release.send(()).unwrap();
        release.send(()).unwrap();
        wait_for_count(&done, 2);
        // A job that panics leaves the thread serving.
        let st = started.clone();
        assert!(pool.try_run(Box::new(move || {
            st.fetch_add(1, Ordering::SeqCst);
            panic!("hostile")
        })));
        wait_for_count(&started, 3);
        let d = done.clone();
        assert!(pool.try_run(Box::new(move || {
            d.fetch_add(1, Ordering::SeqCst);
        })));
        wait_for_count(&done, 3);
    }
}
