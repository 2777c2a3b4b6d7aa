//! Counters and serializable snapshots for observability
//! (`list-subsys -o json`, `nvmp status`, Prometheus metrics).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::latency::{PathLatency, Timing};

/// Per-path counters. Relaxed atomics: one increment per completed command.
#[derive(Debug, Default)]
pub struct PathStats {
    pub ios: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    pub failovers: AtomicU64,
    /// Completion latency (measured while the policy is `service-time`).
    pub latency: PathLatency,
    /// The NUMA node of the path's network interface (looked up once, by the `numa` policy).
    pub nic_node: crate::numa::NodeCell,
}

impl PathStats {
    /// A command completed successfully; `tm` records its latency if it
    /// was timed, with `others()` commands still in flight on the path.
    #[inline]
    pub fn record_ok(&self, bytes: u64, tm: &Timing, others: impl FnOnce() -> u64) {
        self.ios.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
        tm.finish(&self.latency, others);
    }
}

/// Per-head counters.
#[derive(Debug, Default)]
pub struct HeadStats {
    /// Commands that had to wait because no path was usable.
    pub requeued: AtomicU64,
    /// Commands failed over to another path.
    pub failovers: AtomicU64,
    /// Commands returned to the caller with an error.
    pub errors: AtomicU64,
    /// Total time commands spent waiting for a usable path, in microseconds (summed over commands).
    pub no_path_wait_us: AtomicU64,
    /// Longest single wait for a usable path, in microseconds.
    pub longest_wait_us: AtomicU64,
    /// Commands waiting right now.
    pub waiting: AtomicU64,
    /// Writes held back by the write fence before being resent.
    pub fenced: AtomicU64,
    /// Of those, writes resent after a Cross-Controller Reset confirmed the
    /// lost controller could not execute them (no KATO wait).
    pub fenced_by_ccr: AtomicU64,
}

/// Snapshot of one path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathSnapshot {
    pub name: String,
    pub controller: String,
    pub transport: String,
    pub address: String,
    pub ctrl_state: String,
    pub ana_group: u32,
    pub ana_state: String,
    pub ana_pending: bool,
    /// An I/O queue of the controller completed nothing for the read stall
    /// bound (the path is avoided until it answers again).
    #[serde(default)]
    pub stalled: bool,
    pub current: bool,
    pub outstanding: u64,
    pub ios: u64,
    pub bytes: u64,
    pub errors: u64,
    pub failovers: u64,
    /// Decaying average completion latency, µs (0: not measured — only the
    /// `service-time` policy measures).
    #[serde(default)]
    pub latency_us: u64,
    /// The same per size class (up to 4k, 16k, 64k, larger), µs.
    #[serde(default)]
    pub latency_class_us: [u64; crate::latency::CLASSES],
}

/// Snapshot of one namespace head.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeadSnapshot {
    pub name: String,
    pub nsid: u32,
    pub block_size: u32,
    pub capacity_blocks: u64,
    pub nguid: String,
    pub uuid: String,
    pub requeued: u64,
    pub failovers: u64,
    pub errors: u64,
    pub fenced: u64,
    pub waiting: u64,
    pub no_path_wait_ms: u64,
    pub longest_wait_ms: u64,
    pub paths: Vec<PathSnapshot>,
}

/// Snapshot of one controller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CtrlSnapshot {
    pub name: String,
    pub cntlid: u16,
    pub transport: String,
    pub address: String,
    pub state: String,
}

/// Snapshot of one subsystem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubsysSnapshot {
    pub name: String,
    pub nqn: String,
    pub iopolicy: String,
    pub controllers: Vec<CtrlSnapshot>,
    pub heads: Vec<HeadSnapshot>,
}
