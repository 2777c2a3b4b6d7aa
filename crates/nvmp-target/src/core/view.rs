//! What an I/O queue needs per command, resolved out of the shared registry
//! so that the hot path takes no lock and allocates nothing: the
//! controller's keep-alive stamp and, per namespace, its backend and the
//! status its ANA group gives on this queue's port.
//!
//! The control plane bumps [`State::io_epoch`] (under the lock, after the
//! change) whenever namespaces, ANA states, links or controllers change;
//! a queue compares the epoch with an atomic load per command and resolves
//! again when it moved, so an ANA flip or a namespace removal takes effect
//! on the very next command of every existing connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nvmp_wire::Status;

use super::io::ana_status;
use super::state::{NsRt, Shared, State, TrafficStamp};
use super::types::Bound;

/// One namespace as an I/O queue sees it.
#[derive(Debug, Clone)]
pub struct NsView {
    pub nsid: u32,
    pub ns: Arc<NsRt>,
    /// `Some` when the namespace's ANA group refuses I/O on this port.
    pub ana: Option<Status>,
}

/// A resolved view, valid while the epoch it was built at is current.
#[derive(Debug, Default)]
pub struct IoView {
    epoch: u64,
    /// `None`: the controller is gone (the queue must close).
    traffic: Option<Arc<TrafficStamp>>,
    /// The controller's Host Identifier (reservations are per host).
    hostid: [u8; 16],
    /// Sorted by NSID (enabled namespaces only).
    ns: Vec<NsView>,
    /// The last time stamped on `traffic`: the commands of one batch share
    /// their arrival time, so the stamp is written once per batch.
    touched: Option<std::time::Instant>,
}

/// The result of looking at the view before a command.
pub enum Lookup<'a> {
    /// The controller is gone.
    Gone,
    Ns(Option<&'a NsView>),
}

impl IoView {
    /// Refresh if the epoch moved, then look up `nsid` and stamp the traffic.
    pub fn lookup(
        &mut self,
        shared: &Shared,
        epoch: &AtomicU64,
        port: u16,
        b: &Bound,
        nsid: u32,
        now: std::time::Instant,
    ) -> Lookup<'_> {
        if epoch.load(Ordering::Acquire) != self.epoch {
            self.resolve(&shared.lock(), port, b);
        }
        let Some(t) = &self.traffic else {
            return Lookup::Gone;
        };
        if self.touched != Some(now) {
            t.touch(now);
            self.touched = Some(now);
        }
        Lookup::Ns(
            self.ns
                .binary_search_by_key(&nsid, |n| n.nsid)
                .ok()
                .map(|i| &self.ns[i]),
        )
    }

    /// Namespace `nsid` as last resolved (no refresh, no stamp).
    pub fn peek(&self, nsid: u32) -> Option<&NsView> {
        self.ns
            .binary_search_by_key(&nsid, |n| n.nsid)
            .ok()
            .map(|i| &self.ns[i])
    }

    /// The Host Identifier of the queue's controller.
    pub fn hostid(&self) -> [u8; 16] {
        self.hostid
    }

    /// Resolve from the registry (the caller holds the lock).
    pub fn resolve(&mut self, st: &State, port: u16, b: &Bound) {
        self.epoch = st.io_epoch.load(Ordering::Acquire);
        self.ns.clear();
        self.touched = None;
        let sub = st.subsystems.get(&*b.subnqn);
        let ctrl = sub.and_then(|s| s.ctrls.get(&b.cntlid));
        self.traffic = ctrl.map(|c| c.traffic.clone());
        self.hostid = ctrl.map_or([0; 16], |c| c.hostid);
        let (Some(sub), Some(p)) = (sub, st.ports.get(&port)) else {
            return;
        };
        for (nsid, ns) in &sub.namespaces {
            if !ns.spec.enable {
                continue;
            }
            let ana = if sub.spec.ext.ana {
                ana_status(p.ana_state(ns.spec.ana_grpid).state)
            } else {
                None
            };
            self.ns.push(NsView {
                nsid: *nsid,
                ns: ns.clone(),
                ana,
            });
        }
    }
}
