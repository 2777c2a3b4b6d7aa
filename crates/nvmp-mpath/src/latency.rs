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
use crate::select::PathView;

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

/// The longest latency a sample counts for (~18 minutes): estimates stay
/// below it, so an estimate times a path's depth (< 2^20 commands) cannot
/// overflow the ranks of [`pick`].
pub const MAX_SAMPLE_NS: u64 = 1 << 40;

/// Latency statistics of one path: the completion latency as measured
/// (shown per path), and the time per command in flight that the
/// `service-time` ranking multiplies by a depth.
///
/// A command's latency grows with the commands ahead of it: a path whose
/// commands complete in 1.5 ms at depth 27 takes ~55 µs per command, and
/// one more command there expects ~1.5 ms, not 27 × 1.5 ms. So each sample
/// is also divided by the commands that were in flight on the path with
/// it, itself included (taken at its completion: at a steady depth, as
/// many as when it was sent), and the ranking's estimate is the decaying
/// average of that. A path behind a long fixed delay (a long link: 2 ms
/// whatever the depth) samples its full delay at depth 0 and about
/// delay / (depth + 1) deeper, so its expected time stays near the delay
/// at the depths it is used at. (Multiplying the raw latency by the depth
/// counted the queueing twice: a loaded fast path looked slower than an
/// idle slow one, and service-time over a path with 2 ms more delay got
/// 0.8 × the fast path alone at QD32.)
#[derive(Debug, Default)]
pub struct PathLatency {
    /// Decaying average over every size, ns (0: none yet).
    all_ns: AtomicU64,
    /// Decaying average per size class, ns (0: none yet).
    class_ns: [AtomicU64; CLASSES],
    /// The same per command in flight: over every size, and per size class.
    per_cmd_ns: AtomicU64,
    per_cmd_class_ns: [AtomicU64; CLASSES],
    /// When the last sample arrived, [`now_ns`] (0: never).
    last_ns: AtomicU64,
    samples: AtomicU64,
}

impl PathLatency {
    /// Add one sample taken at `now_ns` (capped at [`MAX_SAMPLE_NS`]) of a
    /// command that was alone on the path.
    pub fn record_at(&self, now_ns: u64, latency_ns: u64, class: u8) {
        self.record_at_depth(now_ns, latency_ns, class, 0);
    }
    /// Add one sample taken at `now_ns` of a command that completed with
    /// `others` more in flight on the path.
    pub fn record_at_depth(&self, now_ns: u64, latency_ns: u64, class: u8, others: u64) {
        let latency_ns = latency_ns.min(MAX_SAMPLE_NS);
        let per_cmd_ns = latency_ns / (others.min(MAX_RANK_DEPTH) + 1);
        let last = self.last_ns.swap(now_ns, Relaxed);
        let stale = last == 0 || now_ns.saturating_sub(last) > PROBE_AFTER_NS;
        let update = |a: &AtomicU64, v: u64| a.store(ewma(a.load(Relaxed), v, stale), Relaxed);
        let c = class as usize % CLASSES;
        update(&self.class_ns[c], latency_ns);
        update(&self.all_ns, latency_ns);
        update(&self.per_cmd_class_ns[c], per_cmd_ns);
        update(&self.per_cmd_ns, per_cmd_ns);
        self.samples.fetch_add(1, Relaxed);
    }
    /// The ranking's estimate for a size class: time per command in flight,
    /// its own average, else the average over all sizes, else 0 (unknown).
    #[inline]
    pub fn estimate_ns(&self, class: u8) -> u64 {
        match self.per_cmd_class_ns[class as usize % CLASSES].load(Relaxed) {
            0 => self.per_cmd_ns.load(Relaxed),
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

/// Commands are timed by sampling, per thread: after a timed command the
/// next `period - 1` are not, and the period adapts to the thread's rate
/// so that a timed command comes about every [`SAMPLE_GAP_NS`]: at high
/// rates one command in up to [`SAMPLE_PERIOD_MAX`] reads the clock (its
/// cost per command all but vanishes), at low rates every command does (the
/// estimates still follow a change within a few milliseconds). The estimate
/// is a decaying average: a sample of the traffic serves as well as all
/// of it.
pub const SAMPLE_GAP_NS: u64 = 1_000_000;
/// The longest sampling period (a power of two).
pub const SAMPLE_PERIOD_MAX: u32 = 64;

/// The next sampling period after a timed command `gap_ns` after the
/// previous one: doubled while timed commands come more often than every
/// [`SAMPLE_GAP_NS`], halved while they come less often.
pub fn next_period(period: u32, gap_ns: u64) -> u32 {
    if gap_ns < SAMPLE_GAP_NS {
        (period * 2).min(SAMPLE_PERIOD_MAX)
    } else {
        (period / 2).max(1)
    }
}

/// For instruction counts under valgrind only: sample as a thread at full
/// rate does, one command in [`SAMPLE_PERIOD_MAX`] (valgrind runs the
/// program ~50 times slower, so the sampler, which times a command about
/// every millisecond, would time one in 4 to 8). Read on timed commands
/// only.
static FULL_RATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// See [`FULL_RATE`]: `nvmp-bench`'s count mode sets it for its
/// `-full` modes.
#[doc(hidden)]
pub fn sample_as_at_full_rate(on: bool) {
    FULL_RATE.store(on, Relaxed);
}

/// A thread's sampler: commands left before the next timed one, the
/// period, when the last timed command started.
#[derive(Debug)]
pub(crate) struct Sampler {
    /// Timed commands so far (never 0).
    epoch: Cell<u64>,
    left: Cell<u32>,
    period: Cell<u32>,
    last_ns: Cell<u64>,
}

impl Sampler {
    pub(crate) const fn new() -> Sampler {
        Sampler {
            epoch: Cell::new(1),
            left: Cell::new(0),
            period: Cell::new(1),
            last_ns: Cell::new(0),
        }
    }
    /// One command: its start time from `clock` if it is timed, else 0.
    /// `adapt`: the period follows the rate, else it is the longest.
    #[inline]
    pub(crate) fn step(&self, clock: impl FnOnce() -> u64, adapt: bool) -> u64 {
        let left = self.left.get();
        if left != 0 {
            self.left.set(left - 1);
            return 0;
        }
        self.timed(clock(), adapt)
    }
    /// Timed commands so far on this thread (never 0).
    #[inline(always)]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.get()
    }
    /// A timed command at `t`.
    #[cold]
    fn timed(&self, t: u64, adapt: bool) -> u64 {
        self.epoch.set(self.epoch.get() + 1);
        // (No previous timed command: keep the period.)
        let last = self.last_ns.get();
        let gap = if last == 0 {
            u64::MAX
        } else {
            t.saturating_sub(last)
        };
        let period = if adapt && !FULL_RATE.load(Relaxed) {
            next_period(self.period.get(), gap)
        } else {
            SAMPLE_PERIOD_MAX
        };
        self.period.set(period);
        self.left.set(period - 1);
        self.last_ns.set(t);
        t
    }
}

/// The timing of one command through the head: started before the path
/// is chosen, finished at its completion. Only under `service-time`, and
/// there only sampled commands read the clock (see [`SAMPLE_GAP_NS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// When the command started ([`now_ns`]; 0: not timed), above its
    /// size class (2 bits): one word, passed in a register.
    word: u64,
}

impl Timing {
    /// Not timed, size class 0.
    pub const NONE: Timing = Timing { word: 0 };
    #[inline(always)]
    fn new(start_ns: u64, class: u8) -> Timing {
        Timing {
            word: (start_ns << 2) | u64::from(class & 3),
        }
    }
    /// Start timing `req` if `policy` uses latencies and this thread's
    /// sampler says this command is timed. With one path (`paths` = 1)
    /// there is no choice to make: the estimate only feeds the statistics,
    /// and one command in [`SAMPLE_PERIOD_MAX`] is timed whatever the rate.
    #[inline]
    pub fn start(policy: IoPolicy, req: &IoRequest, paths: usize) -> Timing {
        if policy != IoPolicy::ServiceTime {
            return Timing::NONE;
        }
        crate::local::with_sampler(|s| Self::start_with(s, req, paths))
    }
    /// [`Timing::start`] under `service-time`, with this thread's sampler.
    #[inline(always)]
    pub(crate) fn start_with(s: &Sampler, req: &IoRequest, paths: usize) -> Timing {
        let start_ns = s.step(now_ns, paths > 1);
        // (Untimed with one path: nothing reads the class.)
        let class = if paths > 1 || start_ns != 0 {
            size_class(Self::bytes(req))
        } else {
            0
        };
        Timing::new(start_ns, class)
    }
    /// Not timed, but with `req`'s size class (for choosing on a retry).
    pub fn untimed(req: &IoRequest) -> Timing {
        Timing::new(0, size_class(Self::bytes(req)))
    }
    fn bytes(req: &IoRequest) -> u32 {
        req.write.as_ref().map_or(req.read_len, |w| w.len() as u32)
    }
    #[inline(always)]
    pub fn is_timed(&self) -> bool {
        self.word > 3
    }
    #[inline(always)]
    pub fn class(&self) -> u8 {
        (self.word & 3) as u8
    }
    /// "Now" for probing ([`now_ns`]), known for timed commands only: the
    /// probe check runs at a timed command, often enough for a probe that
    /// is due after [`PROBE_AFTER_NS`].
    #[inline(always)]
    pub fn probe_now_ns(&self) -> u64 {
        self.word >> 2
    }
    /// The command completed successfully: record its latency on `lat`,
    /// with `others()` commands still in flight on its path.
    #[inline]
    pub fn finish(&self, lat: &PathLatency, others: impl FnOnce() -> u64) {
        if self.is_timed() {
            let now = now_ns();
            let l = now.saturating_sub(self.probe_now_ns());
            lat.record_at_depth(now, l, self.class(), others());
        }
    }
}

/// Fill in the latency estimate and probe flag of `v`, the view of `p`,
/// for a command timed by `tm`: what `select` needs for `service-time`.
#[inline]
fn annotate_one(v: &mut PathView, p: &Path, tm: &Timing) {
    let l = &p.stats.latency;
    v.latency_ns = l.estimate_ns(tm.class());
    v.probe = tm.is_timed() && v.depth == 0 && l.due_probe(tm.probe_now_ns());
}

/// [`annotate_one`] for every view (one per path, in order).
pub fn annotate(views: &mut [PathView], paths: &[Arc<Path>], tm: &Timing) {
    for (v, p) in views.iter_mut().zip(paths) {
        annotate_one(v, p, tm);
    }
}

/// The head's fast path under `service-time`: the path `select` would
/// choose, without building views; None when it cannot tell (the caller
/// then asks `select` with full views). Per path it reads the ANA word,
/// and for a path it allows, its depth and estimate (and, for a timed
/// command, whether it is due a probe); only the winner's controller
/// state is checked (a winner whose controller does not serve now sends
/// the command the slow way). With one path there is nothing to compare:
/// it is chosen if usable, as Linux's round-robin does with a single path.
/// With several, the thread's `run` on this head is used while it holds,
/// and started from the ranking otherwise ([`crate::run`]).
#[inline]
pub fn pick(paths: &[Arc<Path>], tm: &Timing, run: &crate::run::Run, epoch: u64) -> Option<usize> {
    if let [p] = paths {
        return p.usable_now().map(|_| 0);
    }
    if let Some(i) = run.next(paths, tm, epoch) {
        return Some(i);
    }
    let r = rank_all(paths, tm, |i| &paths[i].stats.latency);
    let i = r.winner(paths)?;
    run.start(paths, &r, tm, epoch);
    Some(i)
}

/// [`pick`] without a run, with path `i`'s latency statistics from
/// `lat(i)` (tests give their own).
#[inline(always)]
pub fn pick_with<'a>(
    paths: &[Arc<Path>],
    tm: &Timing,
    lat: impl Fn(usize) -> &'a PathLatency,
) -> Option<usize> {
    rank_all(paths, tm, lat).winner(paths)
}

/// A ranking of the paths: the winner (smallest rank; ties go to the
/// first), its rank and estimate, and the runner-up's rank.
#[derive(Debug, Clone, Copy)]
pub struct Ranked {
    pub best: usize,
    pub best_rank: u64,
    pub best_estimate_ns: u64,
    /// The winner ranked first as a probe (due one, nothing outstanding).
    pub best_probe: bool,
    /// `u64::MAX`: no other path ranked.
    pub second_rank: u64,
}

impl Ranked {
    /// The winner, if one ranked and its controller serves.
    #[inline(always)]
    fn winner(&self, paths: &[Arc<Path>]) -> Option<usize> {
        (self.best_rank != u64::MAX && paths[self.best].ctrl_serving()).then_some(self.best)
    }
}

/// Rank every path ([`rank`]).
#[inline(always)]
pub fn rank_all<'a>(
    paths: &[Arc<Path>],
    tm: &Timing,
    lat: impl Fn(usize) -> &'a PathLatency,
) -> Ranked {
    let mut r = Ranked {
        best: 0,
        best_rank: u64::MAX,
        best_estimate_ns: 0,
        best_probe: false,
        second_rank: u64::MAX,
    };
    for (i, p) in paths.iter().enumerate() {
        let l = lat(i);
        let (rank, est) = rank(p, l, tm);
        if rank < r.best_rank {
            r = Ranked {
                best: i,
                best_rank: rank,
                best_estimate_ns: est,
                best_probe: est == PROBE,
                second_rank: r.best_rank,
            };
        } else if rank < r.second_rank {
            r.second_rank = rank;
        }
    }
    r
}

/// The depth a rank counts at most (commands in flight are bounded far
/// below: 256 queues of 1024).
pub(crate) const MAX_RANK_DEPTH: u64 = 1 << 20;
/// Ranks above this are non-optimized paths ([`rank`]).
pub(crate) const NON_OPTIMIZED_RANK: u64 = 1 << 62;

/// [`rank`]'s estimate for a path ranked as a probe.
const PROBE: u64 = u64::MAX;

/// A path's rank for [`pick`]: its expected completion time
/// ([`crate::select::expected_ns`], below [`NON_OPTIMIZED_RANK`]), plus
/// that for a non-optimized path (any optimized path ranks first);
/// `u64::MAX` for a path its ANA word rules out. With the estimate it used
/// (0: none; [`PROBE`]: a probe, ranked 0).
#[inline(always)]
fn rank(p: &Path, l: &PathLatency, tm: &Timing) -> (u64, u64) {
    let class = match p.ana_usable() {
        Some(true) => 0,
        Some(false) => NON_OPTIMIZED_RANK,
        None => return (u64::MAX, 0),
    };
    let depth = p.depth().min(MAX_RANK_DEPTH);
    // (est <= MAX_SAMPLE_NS, depth <= MAX_RANK_DEPTH: the product stays
    // below NON_OPTIMIZED_RANK.)
    let (key, est) = match l.estimate_ns(tm.class()) {
        _ if tm.is_timed() && depth == 0 && l.due_probe(tm.probe_now_ns()) => (0, PROBE),
        0 => (depth, 0),
        est => (est.wrapping_mul(depth + 1), est),
    };
    (class | key, est)
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
    fn sampling_period_follows_the_rate() {
        assert_eq!(next_period(1, 10_000), 2, "frequent: double");
        assert_eq!(next_period(32, 10_000), SAMPLE_PERIOD_MAX);
        assert_eq!(
            next_period(SAMPLE_PERIOD_MAX, 0),
            SAMPLE_PERIOD_MAX,
            "capped"
        );
        assert_eq!(next_period(8, SAMPLE_GAP_NS), 4, "rare: halve");
        assert_eq!(next_period(1, u64::MAX), 1, "at least every command");
    }

    #[test]
    fn the_sampler_times_one_command_per_period() {
        // Commands 10 µs apart: the period doubles at each timed command
        // up to the cap (timed: 0, 1, 3, 7, 15, 31, 63, then every 64th).
        let smp = Sampler::new();
        let mut now = 1_000_000_000u64;
        let mut timed = vec![];
        for i in 0..400 {
            now += 10_000;
            if smp.step(|| now, true) != 0 {
                timed.push(i);
            }
        }
        assert_eq!(timed, vec![0, 1, 3, 7, 15, 31, 63, 127, 191, 255, 319, 383]);
        // Commands 5 ms apart: the 47 left of the period go untimed, then
        // the period halves at each timed command, back to every command.
        let timed: Vec<usize> = (0..120)
            .filter(|_| {
                now += 5_000_000;
                smp.step(|| now, true) != 0
            })
            .collect();
        let mut want = vec![47, 79, 95, 103, 107, 109];
        want.extend(110..120);
        assert_eq!(timed, want);
        // Not adapting (one path): one in SAMPLE_PERIOD_MAX, whatever the rate.
        let one = Sampler::new();
        let timed: Vec<u64> = (0..200u64)
            .filter(|i| one.step(|| 1_000 + i * 5_000_000, false) != 0)
            .collect();
        assert_eq!(timed, vec![0, 64, 128, 192]);
    }

    #[test]
    fn timing_only_for_service_time() {
        let req = IoRequest::with_read(Default::default(), 131072);
        assert!(!Timing::start(IoPolicy::RoundRobin, &req, 2).is_timed());
        // This thread's first command is timed.
        let t = std::thread::spawn(|| {
            let req = IoRequest::with_read(Default::default(), 131072);
            Timing::start(IoPolicy::ServiceTime, &req, 2)
        })
        .join()
        .unwrap();
        assert!(t.is_timed() && t.probe_now_ns() > 0);
        assert_eq!(t.class(), 3);
        let l = PathLatency::default();
        Timing::NONE.finish(&l, || 0);
        assert_eq!(l.samples(), 0);
        t.finish(&l, || 0);
        assert_eq!(l.samples(), 1);
        assert!(l.average_ns() >= 1);
        assert_eq!(Timing::untimed(&req).class(), 3);
        assert!(!Timing::untimed(&req).is_timed());
        assert_eq!(
            Timing::untimed(&req).probe_now_ns(),
            0,
            "untimed: no probe check"
        );
    }
}
