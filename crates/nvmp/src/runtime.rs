//! The async runtime of every `nvmp` command: tokio's multi-threaded
//! scheduler, sleeping in epoll when idle (the default), or busy-polling
//! (`--poll`) for latency, as SPDK's reactors do.
//!
//! Polling: each worker keeps one spinner task that only yields, so the
//! worker never parks (no futex wake-up, no context switch between a
//! completion and its submitter), and the I/O driver is checked for
//! readiness after every other task poll (`event_interval(2)`) instead of every
//! 61. It costs a whole core per worker whether there is I/O or not: use it
//! with `--workers 1` (and `taskset`) for one polling core per process.

use clap::Args;

/// Runtime options, global to every subcommand.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Busy-poll instead of sleeping between events (lower latency; each
    /// worker thread uses a whole core).
    #[arg(long = "poll", global = true)]
    pub poll: bool,
    /// Worker threads of the runtime (default: one per core). `nvmp nbd`
    /// serves its export on a runtime of its own (`nvmp nbd --threads`).
    #[arg(long = "workers", global = true, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
}

/// Task polls between two looks at the I/O driver while polling. Not 1:
/// with 1, tokio 1.54 runs its maintenance before every task and the
/// spinners starve everything else (seen: a target that never accepted).
/// Not 2 either (sessions 3–5): looking every other task poll takes each
/// completion as it lands and sends each command alone, a system call
/// apiece, and `nvmp --poll bench` at one queue of depth 32 reached only
/// 200–280k reads/s, less than sleeping. With 8 the tasks that are ready
/// run as a batch between looks: 378k–467k (2 on the same machine, same
/// build, interleaved: 202k–282k), and QD1's p50 did not move beyond the
/// noise (33–40 µs vs 28–33 µs; 16: 30–34; 32: 32–34; docs/PERFORMANCE.md).
const POLL_EVENT_INTERVAL: u32 = 8;

/// Build the runtime `a` asks for.
pub fn build(a: &RuntimeArgs) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if let Some(n) = a.workers {
        b.worker_threads(n as usize);
    }
    if a.poll {
        b.event_interval(POLL_EVENT_INTERVAL);
    }
    let rt = b.build()?;
    if a.poll {
        let workers = rt.metrics().num_workers();
        for _ in 0..workers {
            rt.spawn(async {
                loop {
                    tokio::task::yield_now().await;
                }
            });
        }
    }
    Ok(rt)
}
