//! Path selection: a pure function of the paths' states and the policy.
//!
//! The rules are Linux's (drivers/nvme/host/multipath.c), restated:
//! - a path is *usable* when its controller is live, its namespace is not
//!   waiting for an ANA log re-read, and its ANA state is optimized or
//!   non-optimized;
//! - optimized paths are preferred to non-optimized ones;
//! - when no path is usable, I/O is requeued while some controller may
//!   still come back (live, resetting or connecting, and its fast-fail
//!   timer has not expired); otherwise it fails.

use crate::policy::IoPolicy;
use nvmp_wire::log::AnaState;

/// The controller state as far as path selection cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtrlCondition {
    Live,
    /// Resetting or connecting: may come back.
    Recovering,
    /// Deleting, dead, or fast_io_fail expired: will not serve queued I/O.
    Gone,
}

/// What selection needs to know about one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathView {
    pub ctrl: CtrlCondition,
    pub ana: AnaState,
    /// An ANA error was seen and the log has not been re-read yet.
    pub ana_pending: bool,
    /// NUMA distance (0 = local).
    pub distance: u32,
    /// Commands outstanding on the path's controller (queue-depth and service-time).
    pub depth: usize,
    /// Time per command in flight on the path, ns (service-time; 0 = unknown):
    /// its latency per command that was in flight with it ([`crate::latency::PathLatency`]).
    pub latency_ns: u64,
    /// The path is due a probe (service-time): nothing outstanding, no completion for a while.
    pub probe: bool,
}

impl PathView {
    /// A path that serves nothing (the filler of fixed-size view arrays).
    pub const GONE: PathView = PathView {
        ctrl: CtrlCondition::Gone,
        ana: AnaState::INACCESSIBLE,
        ana_pending: false,
        distance: 0,
        depth: 0,
        latency_ns: 0,
        probe: false,
    };
    pub fn is_usable(&self) -> bool {
        self.ctrl == CtrlCondition::Live && !self.ana_pending && self.ana.is_usable()
    }
    pub fn is_optimized(&self) -> bool {
        self.ctrl == CtrlCondition::Live && !self.ana_pending && self.ana == AnaState::OPTIMIZED
    }
}

/// The result of path selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Send the command down this path (an index into the slice).
    Path(usize),
    /// No usable path now, but a controller may come back: wait in the requeue list.
    Requeue,
    /// No path can serve the command.
    Fail,
}

/// Whether any path's controller may still serve I/O later ("nvme_available_path").
pub fn available(paths: &[PathView]) -> bool {
    paths.iter().any(|p| p.ctrl != CtrlCondition::Gone)
}

fn no_path(paths: &[PathView]) -> Selection {
    if available(paths) {
        Selection::Requeue
    } else {
        Selection::Fail
    }
}

/// Choose a path. `current` is the head's cached current path (the sticky
/// path for `numa`, the last path used for `round-robin`).
pub fn select(paths: &[PathView], policy: IoPolicy, current: Option<usize>) -> Selection {
    let found = match policy {
        IoPolicy::Numa => numa(paths, current),
        IoPolicy::RoundRobin => round_robin(paths, current),
        IoPolicy::QueueDepth => queue_depth(paths),
        IoPolicy::ServiceTime => service_time(paths),
    };
    match found {
        Some(i) => Selection::Path(i),
        None => no_path(paths),
    }
}

/// Sticky: keep the current path while it is optimized and no optimized
/// path is nearer (distances are those from the submitting CPU's node);
/// else the nearest optimized path, else the nearest non-optimized one.
fn numa(paths: &[PathView], current: Option<usize>) -> Option<usize> {
    if let Some(c) = current {
        if let Some(cp) = paths.get(c).filter(|p| p.is_optimized()) {
            if !paths
                .iter()
                .any(|p| p.is_optimized() && p.distance < cp.distance)
            {
                return Some(c);
            }
        }
    }
    nearest(paths)
}

/// The nearest optimized path, else the nearest non-optimized one; ties go to the first.
pub fn nearest(paths: &[PathView]) -> Option<usize> {
    best_by(paths, |p| p.distance as u64)
}

/// The usable path with the smallest `key`, optimized paths first; ties go
/// to the first. Stops early at an optimized path with key 0.
fn best_by(paths: &[PathView], key: impl Fn(&PathView) -> u64) -> Option<usize> {
    let mut b = BestBy::default();
    for (i, p) in paths.iter().enumerate() {
        if b.push(i, p, key(p)) {
            break;
        }
    }
    b.result()
}

/// [`best_by`] one view at a time (for callers that build views as they go).
#[derive(Debug, Clone, Copy, Default)]
pub struct BestBy {
    opt: Option<(u64, usize)>,
    non: Option<(u64, usize)>,
}

impl BestBy {
    /// Consider path `i` with view `p` and key `k`; true when nothing can
    /// beat what was found (an optimized path with key 0).
    #[inline]
    pub fn push(&mut self, i: usize, p: &PathView, k: u64) -> bool {
        if !p.is_usable() {
            return false;
        }
        self.push_usable(i, p.ana == AnaState::OPTIMIZED, k)
    }
    /// [`BestBy::push`] for a path already known to be usable.
    #[inline]
    pub fn push_usable(&mut self, i: usize, optimized: bool, k: u64) -> bool {
        let slot = if optimized {
            &mut self.opt
        } else {
            &mut self.non
        };
        if slot.is_none_or(|(d, _)| k < d) {
            *slot = Some((k, i));
        }
        self.opt.is_some_and(|(d, _)| d == 0)
    }
    /// The best optimized path, else the best non-optimized one.
    pub fn result(&self) -> Option<usize> {
        self.opt.or(self.non).map(|(_, i)| i)
    }
}

/// The next optimized path after `current` (wrapping); else the first
/// non-optimized one after it; else `current` itself if still usable.
fn round_robin(paths: &[PathView], current: Option<usize>) -> Option<usize> {
    let n = paths.len();
    if n == 0 {
        return None;
    }
    let start = current.map_or(0, |c| (c + 1) % n);
    let mut fallback = None;
    for k in 0..n {
        let i = (start + k) % n;
        let p = &paths[i];
        if Some(i) == current {
            continue;
        }
        if p.is_optimized() {
            return Some(i);
        }
        if fallback.is_none() && p.is_usable() {
            fallback = Some(i);
        }
    }
    // Only the current path is left: keep it if it is optimized, or if it is
    // usable and nothing else is.
    match current {
        Some(c) if c < n && paths[c].is_optimized() => Some(c),
        Some(c) if c < n && paths[c].is_usable() && fallback.is_none() => Some(c),
        _ => fallback,
    }
}

/// The optimized path with the fewest outstanding commands, else the
/// non-optimized one with the fewest.
fn queue_depth(paths: &[PathView]) -> Option<usize> {
    best_by(paths, |p| p.depth as u64)
}

/// The expected completion time of one more command on a path: its time
/// per command in flight times its outstanding commands plus one. A path due a
/// probe scores 0, one never measured its depth (a few ns: it is chosen
/// before any measured path, the least loaded first).
pub fn expected_ns(p: &PathView) -> u64 {
    if p.probe {
        return 0;
    }
    if p.latency_ns == 0 {
        return p.depth as u64;
    }
    p.latency_ns.saturating_mul(p.depth as u64 + 1)
}

/// The optimized path with the shortest expected completion time, else the
/// non-optimized one; a path due a probe (or never measured) first; ties
/// to the first.
fn service_time(paths: &[PathView]) -> Option<usize> {
    best_by(paths, expected_ns)
}

#[cfg(test)]
mod tests;
