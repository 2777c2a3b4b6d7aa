//! A subsystem: the controllers that share a subsystem NQN, and the
//! namespace heads reached through them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::head::NamespaceHead;
use crate::path::CtrlEntry;
use crate::policy::IoPolicy;
use crate::stats::{CtrlSnapshot, HeadSnapshot, PathSnapshot, SubsysSnapshot};

/// One NVM subsystem as the host sees it.
#[derive(Debug)]
pub struct Subsystem {
    /// `nvme-subsys<N>`.
    pub name: String,
    pub instance: u32,
    pub nqn: String,
    pub(crate) policy: Arc<AtomicU8>,
    pub(crate) ctrls: Mutex<Vec<Arc<CtrlEntry>>>,
    pub(crate) heads: Mutex<BTreeMap<u32, Arc<NamespaceHead>>>,
}

impl Subsystem {
    pub(crate) fn new(instance: u32, nqn: String, policy: IoPolicy) -> Self {
        Self {
            name: format!("nvme-subsys{instance}"),
            instance,
            nqn,
            policy: Arc::new(AtomicU8::new(policy as u8)),
            ctrls: Mutex::new(Vec::new()),
            heads: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn iopolicy(&self) -> IoPolicy {
        crate::head::policy_from_u8(self.policy.load(Relaxed))
    }

    /// Change the I/O policy at run time; every head forgets its current path.
    pub fn set_iopolicy(&self, p: IoPolicy) {
        let old = self.iopolicy();
        self.policy.store(p as u8, Relaxed);
        for h in self.heads().values() {
            h.changed();
        }
        tracing::info!(subsys = %self.name, from = %old, to = %p, "iopolicy");
    }

    pub fn controllers(&self) -> Vec<Arc<CtrlEntry>> {
        self.ctrls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn heads(&self) -> BTreeMap<u32, Arc<NamespaceHead>> {
        self.heads.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn head(&self, nsid: u32) -> Option<Arc<NamespaceHead>> {
        self.heads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&nsid)
            .cloned()
    }

    pub fn snapshot(&self) -> SubsysSnapshot {
        let controllers = self
            .controllers()
            .iter()
            .map(|c| CtrlSnapshot {
                name: c.name.clone(),
                cntlid: c.cntlid(),
                transport: "tcp".into(),
                address: c.ctrl.address(),
                state: c.ctrl.state().to_string(),
            })
            .collect();
        let heads = self.heads().values().map(|h| head_snapshot(h)).collect();
        SubsysSnapshot {
            name: self.name.clone(),
            nqn: self.nqn.clone(),
            iopolicy: self.iopolicy().to_string(),
            controllers,
            heads,
        }
    }
}

fn head_snapshot(h: &NamespaceHead) -> HeadSnapshot {
    use std::sync::atomic::Ordering::Relaxed as R;
    let cur = h.current_path().map(|p| p.name.clone());
    let paths = h
        .paths()
        .iter()
        .map(|p| PathSnapshot {
            name: p.name.clone(),
            controller: p.ctrl.name.clone(),
            transport: "tcp".into(),
            address: p.ctrl.ctrl.address(),
            ctrl_state: p.ctrl.ctrl.state().to_string(),
            ana_group: p.anagrpid,
            ana_state: p.ana_state().name().to_string(),
            ana_pending: p.ana_pending(),
            stalled: p.ctrl.ctrl.is_stalled(),
            current: cur.as_deref() == Some(p.name.as_str()),
            outstanding: p.ctrl.ctrl.outstanding() as u64,
            ios: p.stats.ios.load(R),
            bytes: p.stats.bytes.load(R),
            errors: p.stats.errors.load(R),
            failovers: p.stats.failovers.load(R),
            latency_us: p.stats.latency.average_ns() / 1000,
            latency_class_us: p.stats.latency.class_averages_ns().map(|n| n / 1000),
        })
        .collect();
    HeadSnapshot {
        name: h.name.clone(),
        nsid: h.nsid,
        block_size: h.block_size(),
        capacity_blocks: h.capacity_blocks(),
        nguid: crate::ids::hex(&h.ids.nguid),
        uuid: crate::ids::hex(&h.ids.uuid),
        requeued: h.stats.requeued.load(R),
        failovers: h.stats.failovers.load(R),
        errors: h.stats.errors.load(R),
        fenced: h.stats.fenced.load(R),
        waiting: h.stats.waiting.load(R),
        no_path_wait_ms: h.stats.no_path_wait_us.load(R) / 1000,
        longest_wait_ms: h.stats.longest_wait_us.load(R) / 1000,
        paths,
    }
}
