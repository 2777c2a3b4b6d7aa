//! A path: one namespace as seen through one controller.

use std::sync::atomic::{
    AtomicBool, AtomicU16, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex};

use nvmp_host::{Controller, CtrlState};
use nvmp_wire::log::AnaState;

use crate::ana::AnaTracker;
use crate::select::{CtrlCondition, PathView};
use crate::stats::PathStats;

/// A controller as the multipath layer keeps it.
#[derive(Debug)]
pub struct CtrlEntry {
    pub ctrl: Controller,
    /// `nvme<N>`, unique in this host.
    pub name: String,
    /// CMIC.ANA: the controller reports ANA states; without it every path counts as optimized.
    pub ana_supported: bool,
    pub ana: Mutex<AnaTracker>,
    /// Wakes the controller's monitor task to re-read the ANA log.
    pub ana_reread: tokio::sync::Notify,
    /// Command Retry Delay times (CRDT1..3) in ms.
    pub crdt_ms: [u64; 3],
    pub removed: AtomicBool,
    /// Cross-Controller Reset of this controller, once per lost instance.
    pub ccr: crate::ccr::CcrFence,
}

impl CtrlEntry {
    /// The controller's CNTLID now: a reconnect may be given another one
    /// (the target's dynamic controller model), so it is never kept here.
    pub fn cntlid(&self) -> u16 {
        self.ctrl.cntlid()
    }
    pub fn condition(&self) -> CtrlCondition {
        if self.removed.load(Relaxed) {
            return CtrlCondition::Gone;
        }
        match self.ctrl.state() {
            // A queue that stopped completing commands: avoided while
            // another path is usable, waited for (it may recover, or time
            // out and reset) otherwise.
            CtrlState::Live if self.ctrl.is_stalled() => CtrlCondition::Recovering,
            CtrlState::Live => CtrlCondition::Live,
            CtrlState::New | CtrlState::Connecting | CtrlState::Resetting => {
                if self.ctrl.fast_fail_expired() {
                    CtrlCondition::Gone
                } else {
                    CtrlCondition::Recovering
                }
            }
            _ => CtrlCondition::Gone,
        }
    }
}

/// One namespace reached through one controller.
#[derive(Debug)]
pub struct Path {
    pub ctrl: Arc<CtrlEntry>,
    /// `nvme<S>c<C>n<NSID>` as Linux names hidden path devices.
    pub name: String,
    pub nsid: u32,
    pub anagrpid: u32,
    /// The ANA state (low byte), the pending flag ([`ANA_PENDING`]) and
    /// the removed flag ([`REMOVED`]) in one word: one load tells whether
    /// the path may be used, and a fresh state and the flag it clears
    /// change together.
    ana: AtomicU16,
    pub stats: PathStats,
}

/// The "ANA error seen, log not re-read yet" bit of [`Path`]'s ANA word.
const ANA_PENDING: u16 = 0x100;
/// The "removed from its head" bit of [`Path`]'s ANA word (its controller
/// was unlinked; the path is never used again).
const REMOVED: u16 = 0x200;

impl Path {
    pub fn new(
        ctrl: Arc<CtrlEntry>,
        name: String,
        nsid: u32,
        anagrpid: u32,
        ana: AnaState,
    ) -> Self {
        Self {
            ctrl,
            name,
            nsid,
            anagrpid,
            ana: AtomicU16::new(ana.0 as u16),
            stats: PathStats::default(),
        }
    }
    pub fn ana_state(&self) -> AnaState {
        AnaState(self.ana.load(Relaxed) as u8)
    }
    /// Set the ANA state from a fresh log; clears the pending flag. Returns
    /// the old state. The head's commands choose by it once the head is
    /// told ([`crate::NamespaceHead::changed`]: the registry does after
    /// reading an ANA log); until then a thread's `service-time` run may
    /// stay on the path ([`crate::run`]).
    pub fn set_ana_state(&self, s: AnaState) -> AnaState {
        let old = self
            .ana
            .fetch_update(Relaxed, Relaxed, |w| Some((w & REMOVED) | s.0 as u16))
            .unwrap_or_else(|w| w);
        AnaState(old as u8)
    }
    /// The path's controller was unlinked: never choose it again.
    pub(crate) fn mark_removed(&self) {
        self.ana.fetch_or(REMOVED, Relaxed);
    }
    pub fn ana_pending(&self) -> bool {
        self.ana.load(Relaxed) & ANA_PENDING != 0
    }
    /// An ANA status was returned on this path: stop using it until the log is re-read.
    pub fn mark_ana_pending(&self) {
        self.ana.fetch_or(ANA_PENDING, Relaxed);
        self.ctrl.ana_reread.notify_one();
    }
    /// Commands outstanding on the path's controller.
    #[inline]
    pub fn depth(&self) -> u64 {
        self.ctrl.ctrl.outstanding() as u64
    }
    /// What the path's ANA word allows: `Some(optimized)` when its state is
    /// optimized or non-optimized, no ANA error is pending and the path was
    /// not removed (one load).
    #[inline]
    pub fn ana_usable(&self) -> Option<bool> {
        match self.ana.load(Relaxed) {
            w if w == AnaState::OPTIMIZED.0 as u16 => Some(true),
            w if w == AnaState::NON_OPTIMIZED.0 as u16 => Some(false),
            _ => None,
        }
    }
    /// Whether the path's controller serves I/O now: live, no stalled
    /// queue. (Removal is in the ANA word: [`Path::ana_usable`].)
    #[inline]
    pub fn ctrl_serving(&self) -> bool {
        self.ctrl.ctrl.state() == CtrlState::Live && !self.ctrl.ctrl.is_stalled()
    }
    /// `self.view().is_optimized()`, reading only what that needs (the
    /// sticky policy's per-command check).
    #[inline]
    pub fn is_optimized_now(&self) -> bool {
        self.ana_usable() == Some(true) && self.ctrl_serving()
    }
    /// `Some(optimized)` when `self.view().is_usable()`, reading only what
    /// that needs.
    #[inline]
    pub fn usable_now(&self) -> Option<bool> {
        // (ana_usable is None for a removed path.)
        self.ana_usable().filter(|_| self.ctrl_serving())
    }
    pub fn view(&self) -> PathView {
        let w = self.ana.load(Relaxed);
        PathView {
            ctrl: self.ctrl.condition(),
            ana: AnaState(w as u8),
            ana_pending: w & ANA_PENDING != 0,
            distance: 0,
            depth: self.ctrl.ctrl.outstanding(),
            ..PathView::GONE
        }
    }
}

/// The paths of a head: replaced whole when one is added or removed
/// (rare), read by every command. A command holds the list (one reference
/// count) rather than one path of it; it finds the list through its
/// thread's entry for the head ([`crate::local`]).
#[derive(Debug)]
pub(crate) struct PathList {
    list: arc_swap::ArcSwap<Vec<Arc<Path>>>,
    /// The version of `list`: unique among all heads (from [`VERSIONS`]),
    /// published after the list.
    version: AtomicU64,
    w: Mutex<()>,
}

/// A path list as read by a command.
pub(crate) type Paths = Arc<Vec<Arc<Path>>>;

/// Versions of path lists, unique in the process (0: none).
static VERSIONS: AtomicU64 = AtomicU64::new(1);

impl Default for PathList {
    fn default() -> Self {
        Self {
            list: arc_swap::ArcSwap::from_pointee(Vec::new()),
            version: AtomicU64::new(VERSIONS.fetch_add(1, Relaxed)),
            w: Mutex::new(()),
        }
    }
}

impl PathList {
    /// The current list (a shared reference to it).
    pub fn load_full(&self) -> Paths {
        self.list.load_full()
    }

    /// The version of the current list (unique in the process; loaded
    /// before the list, a reader sees that version's list or a newer one).
    #[inline(always)]
    pub fn version(&self) -> u64 {
        self.version.load(Acquire)
    }

    /// Give the list a new version: what its paths allow changed (an ANA
    /// state, an ANA error pending, a controller's state), and threads'
    /// runs on it end ([`crate::run`]).
    pub fn bump(&self) {
        let _w = self.w.lock().unwrap_or_else(|e| e.into_inner());
        self.version.store(VERSIONS.fetch_add(1, Relaxed), Release);
    }

    /// Replace the list with `f`'s result (one writer at a time).
    pub fn update<E>(
        &self,
        f: impl FnOnce(&[Arc<Path>]) -> Result<Vec<Arc<Path>>, E>,
    ) -> Result<usize, E> {
        let _w = self.w.lock().unwrap_or_else(|e| e.into_inner());
        let v = f(&self.list.load())?;
        let n = v.len();
        self.list.store(Arc::new(v));
        // After the list: a reader that sees this version sees this list.
        self.version.store(VERSIONS.fetch_add(1, Relaxed), Release);
        Ok(n)
    }
}
