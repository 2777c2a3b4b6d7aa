//! A fixed pool of threads for file and block-device I/O (positional
//! `pread`/`pwrite`/`fdatasync`, which block).
//!
//! Bounds: the pool has [`THREADS`] threads whatever the load (tokio's
//! blocking pool would grow to hundreds), and each connection keeps at most
//! [`PER_CONN`] operations queued or running here (the driver holds the
//! rest back, in command order, until some complete), so the queue holds
//! at most connections x [`PER_CONN`] jobs.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use tokio::sync::mpsc::UnboundedSender;

use super::{Backend, IoOp, IoResult};
use crate::core::ccr::GateGuard;

/// Threads in the pool.
pub const THREADS: usize = 8;
/// Operations one connection may have in the pool at once.
pub const PER_CONN: usize = 32;

/// One operation and where its result goes.
pub struct Job {
    pub cid: u16,
    pub backend: Arc<Backend>,
    pub op: IoOp,
    /// The controller's gate, left when the operation ended (a
    /// Cross-Controller Reset waits for it; fenced before the operation
    /// started, the operation is dropped).
    pub guard: GateGuard,
    /// Fault injection: the operation takes this much longer (a slow disk).
    pub stall: std::time::Duration,
    pub reply: UnboundedSender<(u16, IoResult)>,
}

struct Pool {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let p: &'static Pool = Box::leak(Box::new(Pool {
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        }));
        for i in 0..THREADS {
            let spawned = std::thread::Builder::new()
                .name(format!("nvmp-file-io-{i}"))
                .spawn(move || worker(p));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a file I/O thread");
            }
        }
        p
    })
}

fn worker(p: &'static Pool) {
    loop {
        let job = {
            let mut q = p.jobs.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(j) = q.pop_front() {
                    break j;
                }
                q = p.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let res = if job.guard.fenced() {
            Err(std::io::Error::other("controller reset: operation dropped"))
        } else {
            if !job.stall.is_zero() {
                std::thread::sleep(job.stall);
            }
            job.backend.execute(&job.op)
        };
        let Job {
            cid, guard, reply, ..
        } = job;
        drop(guard);
        // The connection may be gone: its result is dropped with it.
        let _ = reply.send((cid, res));
    }
}

/// Queue an operation (the caller enforces [`PER_CONN`]).
pub fn submit(job: Job) {
    let p = pool();
    p.jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push_back(job);
    p.ready.notify_one();
}
