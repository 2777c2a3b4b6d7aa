//! A namespace head: one namespace of a subsystem, reached through one or
//! more paths. Commands go down one path as they are; only failures come
//! back through here.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use std::time::Duration;
// Virtual in paused tests (tokio::time::pause), the real clock otherwise.
use tokio::time::Instant;

use bytes::Bytes;
use nvmp_host::{Completion, CtrlState, IoRequest, Started};
use nvmp_wire::{Status, StatusCode};

use crate::disposition::{decide, fence_ms, Attempts, Disposition, RetryLimits, WriteFence};
use crate::ids::NsIds;
use crate::latency::Timing;
use crate::path::{Path, PathList};
use crate::policy::IoPolicy;
use crate::select::{select, PathView, Selection};
use crate::stats::HeadStats;

const NO_CURRENT: usize = usize::MAX;
/// Paths per head; more are refused (bounds the per-command selection work).
pub const MAX_PATHS: usize = 32;

/// How long commands wait for a usable path (`None`: while any controller
/// may come back, which ctrl_loss_tmo and fast_io_fail_tmo bound, as Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequeuePolicy {
    pub timeout: Option<Duration>,
}

/// A command that did not succeed, after the multipath layer's retries and failovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("I/O error: {status}")]
pub struct IoError {
    pub status: Status,
}

/// The multipath device of one namespace.
#[derive(Debug)]
pub struct NamespaceHead {
    pub name: String,
    pub nsid: u32,
    pub ids: NsIds,
    /// NMIC bit 0: the namespace may be attached to several controllers.
    pub shared: bool,
    block_size: u32,
    capacity_blocks: std::sync::atomic::AtomicU64,
    max_transfer_bytes: AtomicUsize,
    policy: Arc<AtomicU8>,
    /// Read per command without a lock (one reference count); replaced
    /// whole by `add_path` / `remove_paths_of`, and given a new version by
    /// `changed` (threads' service-time runs on it end).
    paths: PathList,
    current: AtomicUsize,
    /// Signalled on every change that may make a path usable (or all paths gone).
    wake: tokio::sync::Notify,
    pub stats: HeadStats,
    limits: RetryLimits,
    requeue: RequeuePolicy,
    fence: WriteFence,
}

pub(crate) fn policy_from_u8(v: u8) -> IoPolicy {
    match v {
        1 => IoPolicy::RoundRobin,
        2 => IoPolicy::QueueDepth,
        3 => IoPolicy::ServiceTime,
        _ => IoPolicy::Numa,
    }
}

impl NamespaceHead {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        nsid: u32,
        ids: NsIds,
        shared: bool,
        block_size: u32,
        capacity_blocks: u64,
        policy: Arc<AtomicU8>,
        limits: RetryLimits,
        requeue: RequeuePolicy,
        fence: WriteFence,
    ) -> Self {
        Self {
            name,
            nsid,
            ids,
            shared,
            block_size,
            capacity_blocks: capacity_blocks.into(),
            max_transfer_bytes: AtomicUsize::new(usize::MAX),
            policy,
            paths: PathList::default(),
            current: AtomicUsize::new(NO_CURRENT),
            wake: tokio::sync::Notify::new(),
            stats: HeadStats::default(),
            limits,
            requeue,
            fence,
        }
    }

    pub fn block_size(&self) -> u32 {
        self.block_size
    }
    pub fn capacity_blocks(&self) -> u64 {
        self.capacity_blocks.load(Relaxed)
    }
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_blocks() * self.block_size as u64
    }
    pub(crate) fn set_capacity_blocks(&self, n: u64) {
        self.capacity_blocks.store(n, Relaxed);
    }
    /// The largest transfer every path accepts (the smallest MDTS), in bytes.
    pub fn max_transfer_bytes(&self) -> u32 {
        let m = self.max_transfer_bytes.load(Relaxed);
        if m == usize::MAX {
            1 << 20
        } else {
            m as u32
        }
    }
    pub fn policy(&self) -> IoPolicy {
        policy_from_u8(self.policy.load(Relaxed))
    }
    pub fn paths(&self) -> Arc<Vec<Arc<Path>>> {
        self.paths.load_full()
    }
    /// The current path (sticky for numa, last used for round-robin), if any.
    pub fn current_path(&self) -> Option<Arc<Path>> {
        let c = self.current.load(Relaxed);
        self.paths().get(c).cloned()
    }

    pub(crate) fn add_path(&self, p: Arc<Path>) -> Result<(), &'static str> {
        let mt = p.ctrl.ctrl.max_transfer() as usize;
        self.paths.update(|old| {
            if old.len() >= MAX_PATHS {
                return Err("too many paths");
            }
            let mut v = old.to_vec();
            v.push(p);
            Ok(v)
        })?;
        self.max_transfer_bytes.fetch_min(mt, Relaxed);
        self.changed();
        Ok(())
    }

    /// Remove the paths through one controller; returns how many paths are left.
    pub(crate) fn remove_paths_of(&self, ctrl_name: &str) -> usize {
        let left = self
            .paths
            .update(|old| {
                // Marked first: a command that still holds the old list
                // does not choose them.
                for p in old.iter().filter(|p| p.ctrl.name == ctrl_name) {
                    p.mark_removed();
                }
                Ok::<_, std::convert::Infallible>(
                    old.iter()
                        .filter(|p| p.ctrl.name != ctrl_name)
                        .cloned()
                        .collect(),
                )
            })
            .unwrap_or_else(|e| match e {});
        self.changed();
        left
    }

    /// Something about the paths changed: forget the current path and wake
    /// commands waiting for a usable path.
    pub fn changed(&self) {
        self.current.store(NO_CURRENT, Relaxed);
        // (Threads' service-time runs on the paths end.)
        self.paths.bump();
        self.wake.notify_waiters();
    }

    /// The common case of [`NamespaceHead::choose`] for `numa`, inlined
    /// into `submit`: the sticky path while it is still optimized (one
    /// NUMA node). None: ask `choose`. (`service-time`'s common case is its
    /// thread's run, [`crate::local::current_and_pick`].) `policy`: the
    /// head's policy as stored.
    #[inline(always)]
    fn choose_fast(&self, paths: &[Arc<Path>], policy: u8) -> Option<usize> {
        if policy == IoPolicy::Numa as u8 && !crate::numa::active() {
            let cur = self.current.load(Relaxed);
            if let Some(p) = paths.get(cur) {
                if p.is_optimized_now() {
                    return Some(cur);
                }
            }
        }
        None
    }

    /// Pick a path. `avoid` is the path a command just failed on: it is not
    /// chosen again for that command while another path is usable.
    #[inline(never)]
    fn choose(&self, paths: &[Arc<Path>], avoid: Option<&Arc<Path>>, tm: &Timing) -> Selection {
        let cur = self.current.load(Relaxed);
        let policy = self.policy();
        // Fast path for the sticky policy: the current path is still optimized
        // (not on a machine with several NUMA nodes: the nearest path depends
        // on the submitting CPU).
        if policy == IoPolicy::Numa && avoid.is_none() && !crate::numa::active() {
            if let Some(p) = paths.get(cur) {
                if p.is_optimized_now() {
                    return Selection::Path(cur);
                }
            }
        }
        let mut views = [PathView::GONE; MAX_PATHS];
        let n = paths.len().min(MAX_PATHS);
        for (v, p) in views.iter_mut().zip(paths.iter()) {
            *v = p.view();
        }
        if policy == IoPolicy::ServiceTime {
            crate::latency::annotate(&mut views[..n], paths, tm);
        } else if policy == IoPolicy::Numa && crate::numa::active() {
            crate::numa::annotate(&mut views[..n], paths);
        }
        let current = (cur < n).then_some(cur);
        let mut s = select(&views[..n], policy, current);
        if let (Some(a), Selection::Path(i)) = (avoid, s) {
            if Arc::ptr_eq(a, &paths[i]) {
                views[i].ana_pending = true;
                if let Selection::Path(j) = select(&views[..n], policy, current) {
                    s = Selection::Path(j);
                }
            }
        }
        if let Selection::Path(i) = s {
            if i != cur {
                self.current.store(i, Relaxed);
                // (With several NUMA nodes the nearest path differs per node:
                // the current path may change with the submitting CPU.)
                if policy == IoPolicy::Numa && !crate::numa::active() {
                    tracing::info!(head = %self.name, path = %paths[i].name, "current path");
                }
            }
        }
        s
    }

    /// Submit one command (its NSID is set here). Path errors are failed
    /// over, other errors retried per Linux's rules; the final completion is
    /// returned, successful or not.
    ///
    /// The common case — a usable path now, success on the first attempt —
    /// runs here; everything else (waiting for a path, failover, retries)
    /// in [`NamespaceHead::submit_slow`], boxed: this future stays as small
    /// as the controller's own, and the hot path does no more than choose.
    // A plain fn returning an async block, not an `async fn`: an async fn
    // moves its arguments into the future's locals on the first poll (a
    // copy of the 104-byte request); the block uses its capture in place.
    #[allow(clippy::manual_async_fn)]
    pub fn submit(&self, mut req: IoRequest) -> impl Future<Output = Completion> + '_ {
        async move {
            req.sqe.nsid = self.nsid;
            // (As stored: compared, not converted.)
            let policy = self.policy.load(Relaxed);
            let (paths, tm, fast) = if policy == IoPolicy::ServiceTime as u8 {
                crate::local::current_and_pick(&self.paths, &req)
            } else {
                let paths = crate::local::current(&self.paths);
                let fast = self.choose_fast(&paths, policy);
                (paths, Timing::NONE, fast)
            };
            let i = match fast {
                Some(i) => i,
                None => match self.choose(&paths, None, &tm) {
                    Selection::Path(i) => i,
                    _ => {
                        drop(paths);
                        return self.slow(req, None).await;
                    }
                },
            };
            let path = &paths[i];
            // Queued at once (no nested submit future: the head awaits the
            // queue's completion cell itself); the request is kept for a
            // failover. Anything else goes the slow way, boxed: this future
            // stays small (futures are moved whole).
            let c = match path.ctrl.ctrl.start_copy(&req) {
                Started::Queued(p) => p.await,
                Started::Done(c) => return self.not_queued(req, path.clone(), Ok(c), tm).await,
                Started::NotSent(r) => return self.not_queued(req, path.clone(), Err(r), tm).await,
            };
            if c.status.is_success() {
                let bytes = req.write.as_ref().map_or(c.data.len(), |w| w.len());
                path.stats.record_ok(bytes as u64, &tm, || path.depth());
                return c;
            }
            let path = path.clone();
            drop(paths);
            self.slow(req, Some((path, c))).await
        }
    }

    /// [`NamespaceHead::submit_slow`], boxed.
    #[inline(never)]
    fn slow(
        &self,
        req: IoRequest,
        last: Option<(Arc<Path>, Completion)>,
    ) -> Pin<Box<dyn Future<Output = Completion> + Send + '_>> {
        Box::pin(self.submit_slow(req, last))
    }

    /// The rest of [`NamespaceHead::submit`] for a command `path` did not
    /// queue at once: completed without being sent (`Ok`), or not sent
    /// (`Err`, the copy handed back): no free slot (wait for one, with the
    /// controller's own submit), or the controller is no longer live
    /// (choose again).
    #[inline(never)]
    fn not_queued(
        &self,
        req: IoRequest,
        path: Arc<Path>,
        done: Result<Completion, IoRequest>,
        tm: Timing,
    ) -> Pin<Box<dyn Future<Output = Completion> + Send + '_>> {
        Box::pin(async move {
            let ctrl = &path.ctrl.ctrl;
            let c = match done {
                Ok(c) => c,
                Err(r) if ctrl.state() == CtrlState::Live => ctrl.submit(r).await,
                Err(_) => return self.submit_slow(req, None).await,
            };
            if c.status.is_success() {
                let bytes = req.write.as_ref().map_or(c.data.len(), |w| w.len());
                path.stats.record_ok(bytes as u64, &tm, || path.depth());
                return c;
            }
            self.submit_slow(req, Some((path, c))).await
        })
    }

    /// The rest of [`NamespaceHead::submit`]: `last` is the first attempt's
    /// path and (failed) completion, if there was one.
    async fn submit_slow(
        &self,
        req: IoRequest,
        mut last: Option<(Arc<Path>, Completion)>,
    ) -> Completion {
        let mut attempts = Attempts::default();
        let mut wait_started: Option<Instant> = None;
        let mut avoid: Option<Arc<Path>> = None;
        loop {
            let (path, c) = match last.take() {
                Some(pc) => pc,
                None => {
                    let tm = Timing::untimed(&req);
                    let path = match self
                        .wait_for_path(avoid.as_ref(), &mut wait_started, &tm)
                        .await
                    {
                        Ok(p) => p,
                        Err(c) => return c,
                    };
                    let c = path.ctrl.ctrl.submit(req.clone()).await;
                    if c.status.is_success() {
                        let bytes = req.write.as_ref().map_or(c.data.len(), |w| w.len());
                        path.stats.record_ok(bytes as u64, &tm, || path.depth());
                        return c;
                    }
                    (path, c)
                }
            };
            path.stats.errors.fetch_add(1, Relaxed);
            match decide(c.status, attempts, path.ctrl.crdt_ms, self.limits) {
                Disposition::Complete => return self.fail_completion(c),
                Disposition::Failover { delay_ms } => {
                    attempts.failovers += 1;
                    path.stats.failovers.fetch_add(1, Relaxed);
                    self.stats.failovers.fetch_add(1, Relaxed);
                    if c.status.is_ana_error() {
                        path.mark_ana_pending();
                    }
                    tracing::info!(head = %self.name, path = %path.name, status = %c.status, "failover");
                    self.changed();
                    let kato_ms = path.ctrl.ctrl.options().kato_ms;
                    let fence = fence_ms(c.status, req.sqe.opcode, kato_ms, self.fence);
                    if fence > 0 {
                        self.stats.fenced.fetch_add(1, Relaxed);
                        self.fence_write(&path, fence).await;
                    }
                    avoid = Some(path);
                    if delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    }
                }
                Disposition::Retry { delay_ms } => {
                    attempts.retries += 1;
                    if delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    }
                }
            }
        }
    }

    /// A usable path for a command, waiting (requeued) while none is usable
    /// but one may come back; the failure completion when none will.
    async fn wait_for_path(
        &self,
        avoid: Option<&Arc<Path>>,
        wait_started: &mut Option<Instant>,
        tm: &Timing,
    ) -> Result<Arc<Path>, Completion> {
        loop {
            let chosen = {
                let paths = self.paths.load_full();
                match self.choose(&paths, avoid, tm) {
                    Selection::Path(i) => Some(paths[i].clone()),
                    _ => None,
                }
            };
            if let Some(p) = chosen {
                self.end_wait(wait_started);
                return Ok(p);
            }
            // Register for wake-ups before looking again, so that a change
            // between the two looks is not missed. (Only here: the hot path
            // never touches the Notify's lock.)
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.choose(&self.paths(), avoid, tm) {
                Selection::Path(_) => continue,
                Selection::Requeue => {}
                Selection::Fail => {
                    self.end_wait(wait_started);
                    tracing::warn!(head = %self.name, "no available path - failing I/O");
                    return Err(self.fail(Status::new(StatusCode::HOST_PATHING_ERROR).with_dnr()));
                }
            }
            if wait_started.is_none() {
                *wait_started = Some(Instant::now());
                self.stats.requeued.fetch_add(1, Relaxed);
                self.stats.waiting.fetch_add(1, Relaxed);
                tracing::debug!(head = %self.name, "no usable path - requeuing I/O");
            }
            let waited = wait_started.map_or(Duration::ZERO, |t| t.elapsed());
            if let Some(limit) = self.requeue.timeout {
                if waited >= limit {
                    self.end_wait(wait_started);
                    tracing::warn!(head = %self.name, "no usable path within {limit:?} - failing I/O");
                    return Err(self.fail(Status::new(StatusCode::HOST_PATHING_ERROR).with_dnr()));
                }
            }
            // Re-check at least every 250 ms: controller state changes are
            // also delivered through `wake`, this is a safety net.
            let _ = tokio::time::timeout(Duration::from_millis(250), notified).await;
        }
    }

    /// A write torn down in flight on `lost` may still execute there:
    /// resend it only once another controller reset the lost one
    /// (Cross-Controller Reset), or after the lost controller's KATO + CQT.
    async fn fence_write(&self, lost: &Arc<Path>, kato_fence_ms: u64) {
        let hold_ms = crate::ccr::fallback_ms(&lost.ctrl, kato_fence_ms);
        let deadline = Instant::now() + Duration::from_millis(hold_ms);
        let paths = self.paths();
        match crate::ccr::fence(&paths, lost, deadline).await {
            crate::ccr::FenceOutcome::Reset { .. } => {
                self.stats.fenced_by_ccr.fetch_add(1, Relaxed);
                tracing::info!(head = %self.name, path = %lost.name, "write torn down in flight: resent after Cross-Controller Reset of its controller");
            }
            crate::ccr::FenceOutcome::Fallback => {
                tracing::info!(head = %self.name, path = %lost.name, hold_ms, "write torn down in flight: held for KATO + CQT before resending");
                tokio::time::sleep_until(deadline).await;
            }
        }
    }

    fn end_wait(&self, started: &mut Option<Instant>) {
        if let Some(t) = started.take() {
            let us = t.elapsed().as_micros() as u64;
            self.stats.waiting.fetch_sub(1, Relaxed);
            self.stats.no_path_wait_us.fetch_add(us, Relaxed);
            self.stats.longest_wait_us.fetch_max(us, Relaxed);
        }
    }

    fn fail(&self, status: Status) -> Completion {
        self.stats.errors.fetch_add(1, Relaxed);
        Completion {
            status,
            dw0: 0,
            dw1: 0,
            data: Bytes::new(),
        }
    }

    fn fail_completion(&self, c: Completion) -> Completion {
        self.stats.errors.fetch_add(1, Relaxed);
        c
    }
}
