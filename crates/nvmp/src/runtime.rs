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

/// Build the runtime `a` asks for.
pub fn build(a: &RuntimeArgs) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if let Some(n) = a.workers {
        b.worker_threads(n as usize);
    }
    if a.poll {
        // Not 1: with 1, tokio 1.54 runs its maintenance before every task
        // and the spinners starve everything else (seen: a target that never
        // accepted). 2 checks the driver every other task poll.
        b.event_interval(2);
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
