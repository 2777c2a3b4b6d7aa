//! Run-time control: [`TargetHandle`] starts a target and changes it while
//! it runs (ANA states, ports down/up, namespaces, links, fault injection),
//! and reports [`TargetStatus`]. The Unix control socket ([`socket`]) and
//! the CLI expose the same operations.

mod dhchap;
mod memory;
pub mod metrics;
pub mod socket;
mod status;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use nvmp_wire::log::AnaState;
use nvmp_wire::{Status, StatusCode};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, NamespaceSpec, TargetConfig};
use crate::core::state::{open_namespace, Shared, State};
pub use status::{
    AnaGroupStatus, ControllerStatus, CountersStatus, FaultStatus, NamespaceStatus, PortStatus,
    SubsystemStatus, TargetStatus,
};

/// A run-time control error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ControlError(pub String);

impl From<ConfigError> for ControlError {
    fn from(e: ConfigError) -> Self {
        ControlError(e.to_string())
    }
}

/// Fail the next `count` I/O commands on a port with `status` (+ DNR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailNext {
    pub count: u32,
    /// Status code as SCT << 8 | SC (e.g. 0x302).
    pub status: u16,
    #[serde(default)]
    pub dnr: bool,
}

/// Fault injection on a port; `None` fields are left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Fault {
    /// Delay every response on the port by this many milliseconds (0 = off).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Stop answering on the port while keeping TCP open.
    #[serde(default)]
    pub black_hole: Option<bool>,
    #[serde(default)]
    pub fail_next: Option<FailNext>,
    /// Park every I/O command on the port this many milliseconds before it
    /// runs, as if it arrived late (0 = off; commands parked stay parked
    /// for their time). A Cross-Controller Reset meanwhile refuses them.
    #[serde(default)]
    pub hold_ms: Option<u64>,
    /// Every file-backend operation on the port takes this many
    /// milliseconds longer once started (a slow disk; 0 = off).
    #[serde(default)]
    pub stall_ms: Option<u64>,
}

/// A running target. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TargetHandle {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl TargetHandle {
    /// Open every backend, bind every port that has a subsystem linked, and
    /// start serving. Errors (a backend that cannot be opened, an address in
    /// use) are returned before anything is served.
    pub async fn start(cfg: TargetConfig) -> anyhow::Result<TargetHandle> {
        let state = State::from_config(&cfg)?;
        let shared = Shared::new(state);
        let (shutdown, _) = watch::channel(false);
        let ports: Vec<(u16, bool)> = {
            let st = shared.lock();
            st.ports
                .iter()
                .map(|(id, p)| (*id, p.should_listen()))
                .collect()
        };
        let mut listeners = Vec::new();
        for (id, listen) in ports {
            let l = if listen {
                Some(
                    crate::driver::bind(&shared, id)
                        .await
                        .map_err(|e| anyhow::anyhow!("port {id}: cannot listen: {e}"))?,
                )
            } else {
                None
            };
            listeners.push((id, l));
        }
        let mut tasks = Vec::new();
        for (id, l) in listeners {
            tasks.push(tokio::spawn(crate::driver::port_task(
                shared.clone(),
                id,
                l,
                shutdown.subscribe(),
            )));
        }
        Ok(TargetHandle {
            shared,
            shutdown,
            tasks: Arc::new(Mutex::new(tasks)),
        })
    }

    /// The address a port listens on (None while it does not listen).
    pub fn local_addr(&self, port: u16) -> Option<SocketAddr> {
        self.shared.lock().ports.get(&port).and_then(|p| p.bound)
    }

    /// Change an ANA group's state on a port; controllers of that port with
    /// an outstanding AER that enabled ANA events are notified.
    pub fn set_ana(&self, port: u16, group: u32, state: AnaState) -> Result<(), ControlError> {
        self.shared
            .lock()
            .set_ana(port, group, state)
            .map_err(ControlError)
    }

    /// Cut a port: close its listener and every connection on it.
    pub fn port_down(&self, port: u16) -> Result<(), ControlError> {
        let mut st = self.shared.lock();
        let p = st
            .ports
            .get_mut(&port)
            .ok_or_else(|| ControlError(format!("no port {port}")))?;
        p.up = false;
        tracing::info!(port, "port down");
        st.close_port_conns(port);
        st.discovery_changed();
        drop(st);
        self.shared.notify_ports_changed();
        Ok(())
    }

    /// Restore a port cut with [`TargetHandle::port_down`].
    pub fn port_up(&self, port: u16) -> Result<(), ControlError> {
        let mut st = self.shared.lock();
        let p = st
            .ports
            .get_mut(&port)
            .ok_or_else(|| ControlError(format!("no port {port}")))?;
        p.up = true;
        tracing::info!(port, "port up");
        st.discovery_changed();
        drop(st);
        self.shared.notify_ports_changed();
        Ok(())
    }

    /// Set fault injection on a port (fields left `None` are unchanged).
    pub fn set_fault(&self, port: u16, fault: Fault) -> Result<(), ControlError> {
        let st = self.shared.lock();
        let p = st
            .ports
            .get(&port)
            .ok_or_else(|| ControlError(format!("no port {port}")))?;
        if let Some(d) = fault.delay_ms {
            p.faults.delay_ms.store(d, Ordering::Relaxed);
        }
        if let Some(b) = fault.black_hole {
            p.faults.black_hole.store(b, Ordering::Relaxed);
        }
        if let Some(h) = fault.hold_ms {
            p.faults.hold_ms.store(h, Ordering::Relaxed);
        }
        if let Some(s) = fault.stall_ms {
            p.faults.stall_ms.store(s, Ordering::Relaxed);
        }
        if let Some(f) = fault.fail_next {
            let mut s = Status::new(StatusCode(f.status & 0x7FF));
            s.dnr = f.dnr;
            p.faults.set_fail_next(f.count, s);
        }
        tracing::info!(port, ?fault, "fault injection set");
        Ok(())
    }

    /// Clear every fault on a port.
    pub fn clear_faults(&self, port: u16) -> Result<(), ControlError> {
        self.set_fault(
            port,
            Fault {
                delay_ms: Some(0),
                black_hole: Some(false),
                hold_ms: Some(0),
                stall_ms: Some(0),
                fail_next: Some(FailNext {
                    count: 0,
                    status: 0,
                    dnr: false,
                }),
            },
        )
    }

    /// Add (or replace) a namespace in a subsystem.
    pub fn add_namespace(&self, subnqn: &str, ns: NamespaceSpec) -> Result<(), ControlError> {
        let rt = open_namespace(subnqn, &ns)
            .map_err(|e| ControlError(format!("namespace {}: cannot open: {e}", ns.nsid)))?;
        let mut st = self.shared.lock();
        let sub = st
            .subsystems
            .get_mut(subnqn)
            .filter(|s| !s.discovery)
            .ok_or_else(|| ControlError(format!("no subsystem {subnqn}")))?;
        sub.spec.namespaces.retain(|n| n.nsid != ns.nsid);
        sub.spec.namespaces.push(ns.clone());
        sub.namespaces.insert(ns.nsid, Arc::new(rt));
        tracing::info!(subnqn, nsid = ns.nsid, "namespace added");
        st.ns_changed(subnqn, ns.nsid);
        Ok(())
    }

    /// Remove a namespace.
    pub fn remove_namespace(&self, subnqn: &str, nsid: u32) -> Result<(), ControlError> {
        let mut st = self.shared.lock();
        let sub = st
            .subsystems
            .get_mut(subnqn)
            .ok_or_else(|| ControlError(format!("no subsystem {subnqn}")))?;
        if sub.namespaces.remove(&nsid).is_none() {
            return Err(ControlError(format!("no namespace {nsid} in {subnqn}")));
        }
        sub.spec.namespaces.retain(|n| n.nsid != nsid);
        tracing::info!(subnqn, nsid, "namespace removed");
        st.ns_changed(subnqn, nsid);
        Ok(())
    }

    /// Link a subsystem to a port (the port starts listening if it was idle).
    pub fn link(&self, port: u16, subnqn: &str) -> Result<(), ControlError> {
        let mut st = self.shared.lock();
        if st.subsystems.get(subnqn).is_none_or(|s| s.discovery) {
            return Err(ControlError(format!("no subsystem {subnqn}")));
        }
        let p = st
            .ports
            .get_mut(&port)
            .ok_or_else(|| ControlError(format!("no port {port}")))?;
        if !p.spec.subsystems.iter().any(|s| s == subnqn) {
            p.spec.subsystems.push(subnqn.to_string());
        }
        st.discovery_changed();
        drop(st);
        self.shared.notify_ports_changed();
        Ok(())
    }

    /// Unlink a subsystem from a port; its controllers on that port are torn down.
    pub fn unlink(&self, port: u16, subnqn: &str) -> Result<(), ControlError> {
        let mut st = self.shared.lock();
        let p = st
            .ports
            .get_mut(&port)
            .ok_or_else(|| ControlError(format!("no port {port}")))?;
        let before = p.spec.subsystems.len();
        p.spec.subsystems.retain(|s| s != subnqn);
        if p.spec.subsystems.len() == before {
            return Err(ControlError(format!(
                "{subnqn} is not linked to port {port}"
            )));
        }
        let victims: Vec<u16> = st
            .subsystems
            .get(subnqn)
            .map(|s| {
                s.ctrls
                    .values()
                    .filter(|c| c.port == port)
                    .map(|c| c.cntlid)
                    .collect()
            })
            .unwrap_or_default();
        for c in victims {
            st.teardown_ctrl(subnqn, c, "subsystem unlinked from port");
        }
        st.discovery_changed();
        drop(st);
        self.shared.notify_ports_changed();
        Ok(())
    }

    /// Reply bytes queued for peers and not yet sent: (now across the
    /// target, the most one connection has held). Bounded per connection by
    /// [`set_buffer_limits`](TargetHandle::set_buffer_limits) plus one reply.
    pub fn buffered_bytes(&self) -> (usize, usize) {
        (
            self.shared.buffered_bytes.load(Ordering::Relaxed),
            self.shared.max_conn_buffered_bytes.load(Ordering::Relaxed),
        )
    }

    /// Byte budgets for unsent replies: per connection and across the
    /// target (defaults 2 MiB and 256 MiB). A connection over either stops
    /// taking new commands until its peer reads.
    pub fn set_buffer_limits(&self, per_conn: usize, per_target: usize) {
        self.shared
            .conn_buffer_bytes
            .store(per_conn.max(1), Ordering::Relaxed);
        self.shared
            .target_buffer_bytes
            .store(per_target.max(1), Ordering::Relaxed);
    }

    /// A snapshot of ports, subsystems, controllers, namespaces, ANA states and counters.
    pub fn status(&self) -> TargetStatus {
        status::snapshot(&self.shared.lock())
    }

    /// Stop listening, close every connection and wait for the port tasks.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        {
            let mut st = self.shared.lock();
            let ids: Vec<u16> = st.ports.keys().copied().collect();
            for id in ids {
                st.close_port_conns(id);
            }
        }
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
        tracing::info!("target stopped");
    }
}
