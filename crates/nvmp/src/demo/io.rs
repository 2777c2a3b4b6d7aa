//! The demo's verified random I/O: each worker owns a disjoint set of
//! blocks and remembers the generation it last wrote to each, so every read
//! is checked against exactly what must be there (stale data from a lost
//! path, a misdirected read or a torn write all show up).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use nvmp_mpath::NamespaceHead;
use rand::{Rng, SeedableRng};

/// Counters shared by the workers and the view.
#[derive(Debug, Default)]
pub struct IoStats {
    pub ios: AtomicU64,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub bytes: AtomicU64,
    pub verified_reads: AtomicU64,
    pub data_errors: AtomicU64,
    pub io_errors: AtomicU64,
    /// Largest I/O latency since the view last took it (µs).
    pub window_max_us: AtomicU64,
    /// Largest I/O latency of the whole run (µs).
    pub max_us: AtomicU64,
    /// The slowest I/O since the view last took it: latency (µs) and start.
    pub window_slowest: Mutex<Option<(u64, Instant)>>,
    pub first_error: Mutex<Option<String>>,
}

impl IoStats {
    /// Only an I/O slower than the window's maximum so far gets here (rare).
    fn note_slowest(&self, us: u64, start: Instant) {
        let mut g = self
            .window_slowest
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if g.is_none_or(|(max, _)| us > max) {
            *g = Some((us, start));
        }
    }

    /// Take the window's slowest I/O.
    pub fn take_slowest(&self) -> Option<(u64, Instant)> {
        self.window_slowest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn error(&self, msg: String) {
        let mut g = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(msg);
        }
    }
}

/// One worker: `blocks` are the block indices (of `io_bytes` each) it owns.
pub async fn worker(
    head: Arc<NamespaceHead>,
    id: usize,
    blocks: Vec<u64>,
    io_bytes: u64,
    stats: Arc<IoStats>,
    stop: Arc<AtomicBool>,
) {
    let bs = head.block_size() as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6465_6d6f ^ id as u64);
    let mut generation = vec![0u64; blocks.len()];
    let mut next_gen = 1u64;
    while !stop.load(Relaxed) {
        let i = rng.gen_range(0..blocks.len());
        let off = blocks[i] * io_bytes;
        let write = generation[i] == 0 || rng.gen_bool(0.3);
        let t = Instant::now();
        if write {
            let g = next_gen;
            next_gen += 1;
            let data = Bytes::from(crate::pattern::make(io_bytes as usize, off, g));
            match head.write(off / bs, data, false).await {
                Ok(()) => {
                    generation[i] = g;
                    stats.writes.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    stats.io_errors.fetch_add(1, Relaxed);
                    stats.error(format!("write at {off}: {e}"));
                    // The block's content is now unknown: read it back as either generation.
                    generation[i] = 0;
                    continue;
                }
            }
        } else {
            match head.read(off / bs, (io_bytes / bs) as u32).await {
                Ok(d) => {
                    stats.reads.fetch_add(1, Relaxed);
                    stats.verified_reads.fetch_add(1, Relaxed);
                    if let Err(m) = crate::pattern::check(&d, off, generation[i]) {
                        stats.data_errors.fetch_add(1, Relaxed);
                        stats.error(m.to_string());
                    }
                }
                Err(e) => {
                    stats.io_errors.fetch_add(1, Relaxed);
                    stats.error(format!("read at {off}: {e}"));
                    continue;
                }
            }
        }
        let us = t.elapsed().as_micros() as u64;
        if us > stats.window_max_us.fetch_max(us, Relaxed) {
            stats.note_slowest(us, t);
        }
        stats.max_us.fetch_max(us, Relaxed);
        stats.ios.fetch_add(1, Relaxed);
        stats.bytes.fetch_add(io_bytes, Relaxed);
    }
}

/// Split `n_blocks` among `workers` (interleaved, so every worker touches the whole namespace).
pub fn partition(n_blocks: u64, workers: usize) -> Vec<Vec<u64>> {
    let mut v = vec![Vec::new(); workers];
    for b in 0..n_blocks {
        v[(b % workers as u64) as usize].push(b);
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn partition_is_disjoint_and_complete() {
        let p = super::partition(10, 3);
        assert_eq!(p.iter().map(Vec::len).sum::<usize>(), 10);
        assert_eq!(p[0], vec![0, 3, 6, 9]);
    }
}
