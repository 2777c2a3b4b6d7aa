//! Per-path completion latency, the statistic behind the `service-time`
//! policy: a decaying average per I/O size class, kept in relaxed atomics
//! (no lock; a racing update may be lost, which an estimate tolerates).
//!
//! The head measures only while the policy is `service-time`: one clock
//! read before choosing a path (it also serves as "now" for probing) and
//! one at completion ([`Timing`]).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use nvmp_host::IoRequest;
use tokio::time::Instant;

use crate::path::Path;
use crate::policy::IoPolicy;
use crate::select::{BestBy, PathView};

/// Size classes: up to 4 KiB, 16 KiB, 64 KiB, larger.
pub const CLASSES: usize = 4;
/// Names of the size classes (output).
pub const CLASS_NAMES: [&str; CLASSES] = ["4k", "16k", "64k", "large"];
/// A usable path with nothing outstanding and no completion for this long
/// gets the next command (a probe), so that a path that looked slow is
/// measured again and its recovery seen.
pub const PROBE_AFTER_NS: u64 = 100_000_000;
/// Weight of a new sample, as a shift: 1/8 normally (like TCP's SRTT), 1/2
/// when the previous sample is older than [`PROBE_AFTER_NS`] (the old
/// estimate is stale: a probe counts for much).
const SHIFT: u32 = 3;
const STALE_SHIFT: u32 = 1;

/// The size class of a transfer of `bytes`.
pub fn size_class(bytes: u32) -> u8 {
    match bytes {
        0..=4096 => 0,
        4097..=16384 => 1,
        16385..=65536 => 2,
        _ => 3,
    }
}

/// One step of the decaying average (0 = no estimate yet; never returns 0).
pub fn ewma(old_ns: u64, sample_ns: u64, stale: bool) -> u64 {
    if old_ns == 0 {
        return sample_ns.max(1);
    }
    let shift = if stale { STALE_SHIFT } else { SHIFT };
    let v = if sample_ns >= old_ns {
        old_ns + ((sample_ns - old_ns) >> shift)
    } else {
        old_ns - ((old_ns - sample_ns) >> shift)
    };
    v.max(1)
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since a process-wide epoch (tokio's clock, so paused-time
/// tests see virtual latencies); never 0.
pub fn now_ns() -> u64 {
    Instant::now().saturating_duration_since(epoch()).as_nanos() as u64 + 1
}

/// Latency statistics of one path.
#[derive(Debug, Default)]
pub struct PathLatency {
    /// Decaying average over every size, ns (0: none yet).
    all_ns: AtomicU64,
    /// Decaying average per size class, ns (0: none yet).
    class_ns: [AtomicU64; CLASSES],
    /// When the last sample arrived, [`now_ns`] (0: never).
    last_ns: AtomicU64,
    samples: AtomicU64,
}

impl PathLatency {
    /// Add one sample taken at `now_ns`.
    pub fn record_at(&self, now_ns: u64, latency_ns: u64, class: u8) {
        let last = self.last_ns.swap(now_ns, Relaxed);
        let stale = last == 0 || now_ns.saturating_sub(last) > PROBE_AFTER_NS;
        let c = &self.class_ns[class as usize % CLASSES];
        c.store(ewma(c.load(Relaxed), latency_ns, stale), Relaxed);
        self.all_ns
            .store(ewma(self.all_ns.load(Relaxed), latency_ns, stale), Relaxed);
        self.samples.fetch_add(1, Relaxed);
    }
    /// The estimate for a size class: its own average, else the average
    /// over all sizes, else 0 (unknown).
    #[inline]
    pub fn estimate_ns(&self, class: u8) -> u64 {
        match self.class_ns[class as usize % CLASSES].load(Relaxed) {
            0 => self.all_ns.load(Relaxed),
            v => v,
        }
    }
    /// Whether the path is due a probe at `now_ns`: it has a sample, and
    /// none for [`PROBE_AFTER_NS`]. (A path without a sample has no
    /// estimate and is chosen anyway.)
    #[inline]
    pub fn due_probe(&self, now_ns: u64) -> bool {
        let last = self.last_ns.load(Relaxed);
        last != 0 && now_ns.saturating_sub(last) > PROBE_AFTER_NS
    }
    /// Average over all sizes, ns (0: never measured).
    pub fn average_ns(&self) -> u64 {
        self.all_ns.load(Relaxed)
    }
    /// Per size class, ns (0: never measured).
    pub fn class_averages_ns(&self) -> [u64; CLASSES] {
        std::array::from_fn(|i| self.class_ns[i].load(Relaxed))
    }
    /// Samples taken.
    pub fn samples(&self) -> u64 {
        self.samples.load(Relaxed)
    }
}

/// Commands timed per thread: one in this many (the first of each run).
/// The estimate is a decaying average, so a sample suffices; untimed
/// commands read no clock and use the thread's last reading as "now".
pub const SAMPLE_EVERY: u32 = 8;
/// The same for a head with one path: there is nothing to choose between,
/// the estimate only feeds the statistics (status, metrics), and fewer
/// clock readings keep the policy's cost per command down (a power of two).
pub const SAMPLE_EVERY_ONE_PATH: u32 = 64;

/// The timing of one command through the head: started before the path
/// is chosen, finished at its completion. Only under `service-time`, and
/// there one command in [`SAMPLE_EVERY`] per thread reads the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// When the command started, [`now_ns`] (0: not timed).
    start_ns: u64,
    /// "Now" for probing: `start_ns`, or the thread's last clock reading (0: none).
    now_ns: u64,
    class: u8,
}

impl Timing {
    /// Not timed, size class 0.
    pub const NONE: Timing = Timing {
        start_ns: 0,
        now_ns: 0,
        class: 0,
    };
    /// Start timing `req` if `policy` uses latencies (and this command is
    /// sampled: one in [`SAMPLE_EVERY`], or [`SAMPLE_EVERY_ONE_PATH`] when
    /// the head has `paths` = 1).
    #[inline]
    pub fn start(policy: IoPolicy, req: &IoRequest, paths: usize) -> Timing {
        if policy != IoPolicy::ServiceTime {
            return Timing::NONE;
        }
        thread_local! {
            /// (commands seen, last clock reading)
            static SAMPLER: Cell<(u32, u64)> = const { Cell::new((0, 0)) };
        }
        let several = paths > 1;
        let every = if several {
            SAMPLE_EVERY
        } else {
            SAMPLE_EVERY_ONE_PATH
        };
        SAMPLER.with(|c| {
            let (n, last) = c.get();
            if n & (every - 1) == 0 {
                let t = now_ns();
                c.set((1, t));
                Timing {
                    start_ns: t,
                    now_ns: t,
                    class: size_class(Self::bytes(req)),
                }
            } else {
                c.set((n + 1, last));
                Timing {
                    start_ns: 0,
                    now_ns: last,
                    // Untimed with one path: nothing reads the class.
                    class: if several {
                        size_class(Self::bytes(req))
                    } else {
                        0
                    },
                }
            }
        })
    }
    /// Not timed, but with `req`'s size class (for choosing on a retry).
    pub fn untimed(req: &IoRequest) -> Timing {
        Timing {
            start_ns: 0,
            now_ns: 0,
            class: size_class(Self::bytes(req)),
        }
    }
    fn bytes(req: &IoRequest) -> u32 {
        req.write.as_ref().map_or(req.read_len, |w| w.len() as u32)
    }
    pub fn is_timed(&self) -> bool {
        self.start_ns != 0
    }
    pub fn class(&self) -> u8 {
        self.class
    }
    /// The command completed successfully: record its latency on `lat`.
    #[inline]
    pub fn finish(&self, lat: &PathLatency) {
        if self.start_ns != 0 {
            let now = now_ns();
            lat.record_at(now, now.saturating_sub(self.start_ns), self.class);
        }
    }
}

/// Fill in the latency estimate and probe flag of `v`, the view of `p`,
/// for a command timed by `tm`: what `select` needs for `service-time`.
#[inline]
fn annotate_one(v: &mut PathView, p: &Path, tm: &Timing) {
    let l = &p.stats.latency;
    v.latency_ns = l.estimate_ns(tm.class);
    v.probe = tm.now_ns != 0 && v.depth == 0 && l.due_probe(tm.now_ns);
}

/// [`annotate_one`] for every view (one per path, in order).
pub fn annotate(views: &mut [PathView], paths: &[Arc<Path>], tm: &Timing) {
    for (v, p) in views.iter_mut().zip(paths) {
        annotate_one(v, p, tm);
    }
}

/// The head's fast path under `service-time`: the path `select` would
/// choose, without building views (what it reads per path: the usability
/// check, then for a usable path its depth and estimate); None when no
/// path is usable (the caller then decides between requeue and fail).
/// With one path there is nothing to compare: it is chosen if usable, as
/// Linux's round-robin does with a single path.
#[inline]
pub fn pick(paths: &[Arc<Path>], tm: &Timing) -> Option<usize> {
    if let [p] = paths {
        return p.usable_now().map(|_| 0);
    }
    let mut best = BestBy::default();
    for (i, p) in paths.iter().enumerate() {
        let Some(optimized) = p.usable_now() else {
            continue;
        };
        let l = &p.stats.latency;
        let depth = p.ctrl.ctrl.outstanding();
        let key = if tm.now_ns != 0 && depth == 0 && l.due_probe(tm.now_ns) {
            0
        } else {
            match l.estimate_ns(tm.class) {
                0 => depth as u64,
                est => est.saturating_mul(depth as u64 + 1),
            }
        };
        if best.push_usable(i, optimized, key) {
            break;
        }
    }
    best.result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        assert_eq!(size_class(512), 0);
        assert_eq!(size_class(4096), 0);
        assert_eq!(size_class(4097), 1);
        assert_eq!(size_class(16384), 1);
        assert_eq!(size_class(65536), 2);
        assert_eq!(size_class(1 << 20), 3);
    }

    #[test]
    fn ewma_decays_toward_new_samples() {
        // First sample: taken as is.
        assert_eq!(ewma(0, 1000, false), 1000);
        assert_eq!(ewma(0, 0, false), 1, "0 stays 'unknown'");
        // 1/8 per fresh sample.
        assert_eq!(ewma(8000, 0, false), 7000);
        assert_eq!(ewma(1000, 9000, false), 2000);
        // 1/2 when stale.
        assert_eq!(ewma(8000, 0, true), 4000);
        // Converges: 2 ms -> 100 us within 40 samples to within 10 %.
        let mut v = 2_000_000;
        for _ in 0..40 {
            v = ewma(v, 100_000, false);
        }
        assert!((100_000..110_000).contains(&v), "{v}");
    }

    #[test]
    fn per_class_estimates_fall_back_to_the_overall_one() {
        let l = PathLatency::default();
        assert_eq!(l.estimate_ns(0), 0, "unknown");
        assert!(
            !l.due_probe(1 << 40),
            "never measured: no probe, chosen anyway"
        );
        l.record_at(1_000, 50_000, 0);
        assert_eq!(l.estimate_ns(0), 50_000);
        assert_eq!(
            l.estimate_ns(3),
            50_000,
            "no large sample yet: the overall average"
        );
        l.record_at(2_000, 800_000, 3);
        assert_eq!(l.estimate_ns(3), 800_000);
        assert_eq!(l.estimate_ns(0), 50_000, "classes are separate");
        assert_eq!(l.average_ns(), 50_000 + (750_000 >> 3));
        assert_eq!(l.samples(), 2);
    }

    #[test]
    fn probe_due_after_an_idle_interval_and_stale_samples_weigh_more() {
        let l = PathLatency::default();
        let t0 = 1_000_000_000;
        l.record_at(t0, 2_000_000, 0);
        assert!(!l.due_probe(t0 + PROBE_AFTER_NS));
        assert!(l.due_probe(t0 + PROBE_AFTER_NS + 1));
        // A probe long after: weight 1/2, so a recovered path is seen at once.
        l.record_at(t0 + 2 * PROBE_AFTER_NS, 100_000, 0);
        assert_eq!(l.estimate_ns(0), 1_050_000);
        assert!(!l.due_probe(t0 + 2 * PROBE_AFTER_NS + 1));
        // A fresh one: 1/8.
        l.record_at(t0 + 2 * PROBE_AFTER_NS + 10, 50_000, 0);
        assert_eq!(l.estimate_ns(0), 1_050_000 - (1_000_000 >> 3));
    }

    #[test]
    fn timing_only_for_service_time() {
        let req = IoRequest {
            sqe: Default::default(),
            write: None,
            read_len: 131072,
        };
        assert!(!Timing::start(IoPolicy::RoundRobin, &req, 2).is_timed());
        // One command in SAMPLE_EVERY per thread reads the clock, the first of each run.
        let ts: Vec<Timing> = (0..3 * SAMPLE_EVERY)
            .map(|_| Timing::start(IoPolicy::ServiceTime, &req, 2))
            .collect();
        let timed: Vec<usize> = (0..ts.len()).filter(|i| ts[*i].is_timed()).collect();
        let k = SAMPLE_EVERY as usize;
        assert_eq!(
            timed,
            vec![0, k, 2 * k],
            "this thread's first, then every {k}th"
        );
        assert!(ts
            .iter()
            .all(|t| t.now_ns >= ts[0].start_ns && t.now_ns > 0));
        assert_eq!(
            ts[1].now_ns, ts[0].start_ns,
            "untimed: the thread's last reading"
        );
        let t = ts[0];
        assert!(t.is_timed());
        assert_eq!(t.class(), 3);
        let l = PathLatency::default();
        Timing::NONE.finish(&l);
        assert_eq!(l.samples(), 0);
        t.finish(&l);
        assert_eq!(l.samples(), 1);
        assert!(l.average_ns() >= 1);
        assert_eq!(Timing::untimed(&req).class(), 3);
        assert!(!Timing::untimed(&req).is_timed());
    }

    #[test]
    fn a_head_with_one_path_samples_less() {
        // On a thread of its own: the sampler's count is per thread.
        std::thread::spawn(|| {
            let req = IoRequest::with_read(Default::default(), 4096);
            let n = 4 * SAMPLE_EVERY_ONE_PATH as usize;
            let timed = (0..n)
                .filter(|_| Timing::start(IoPolicy::ServiceTime, &req, 1).is_timed())
                .count();
            assert_eq!(timed, 4, "one in {SAMPLE_EVERY_ONE_PATH}");
            let timed = (0..n)
                .filter(|_| Timing::start(IoPolicy::ServiceTime, &req, 3).is_timed())
                .count();
            assert_eq!(timed, n / SAMPLE_EVERY as usize, "one in {SAMPLE_EVERY}");
        })
        .join()
        .unwrap();
    }
}
