//! The host-wide multipath registry: every controller the host connects is
//! linked into its subsystem and its namespaces into heads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use nvmp_host::{Controller, CtrlState};
use nvmp_wire::identify::cmic;
use nvmp_wire::log::AnaState;

use crate::ana::AnaTracker;
use crate::disposition::RetryLimits;
use crate::head::{NamespaceHead, RequeuePolicy};
use crate::ids::NsIds;
use crate::path::{CtrlEntry, Path};
use crate::policy::IoPolicy;
use crate::stats::SubsysSnapshot;
use crate::subsys::Subsystem;

/// Settings of the multipath layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct MpathConfig {
    /// I/O policy of new subsystems (Linux: `nvme_core.iopolicy`, default numa).
    pub default_policy: IoPolicy,
    pub limits: RetryLimits,
    pub requeue: RequeuePolicy,
    /// Hold writes torn down in flight before resending them (default: for KATO).
    pub fence: crate::disposition::WriteFence,
    /// Reads leave a queue that stopped completing after this (default 500 ms).
    pub read_stall: crate::disposition::ReadStall,
}

/// Why a controller was not linked.
#[derive(Debug, thiserror::Error)]
pub enum MpathError {
    #[error("duplicate cntlid {cntlid} in subsystem {subnqn} (already used by {existing}); rejecting controller at {address}")]
    DuplicateCntlid {
        cntlid: u16,
        subnqn: String,
        existing: String,
        address: String,
    },
    #[error("subsystem {subnqn} does not report multiple controllers (CMIC bit 1) and already has {existing}; ignoring controller at {address}")]
    NotMultiController {
        subnqn: String,
        existing: String,
        address: String,
    },
    #[error("{context}: {source}")]
    Host {
        context: String,
        source: nvmp_host::HostError,
    },
    #[error("{0}")]
    Ana(#[from] crate::ana::AnaLogError),
}

/// A namespace that was not added as a path, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRefusal {
    pub nsid: u32,
    pub reason: String,
}

/// What linking a controller did.
#[derive(Debug, Clone)]
pub struct Linked {
    pub ctrl_name: String,
    pub subsystem: String,
    pub heads_created: Vec<String>,
    pub paths_added: Vec<String>,
    pub refused: Vec<PathRefusal>,
}

#[derive(Debug, Default)]
struct Inner {
    subsystems: Mutex<Vec<Arc<Subsystem>>>,
    monitors: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    next_ctrl: AtomicU32,
    next_subsys: AtomicU32,
    config: MpathConfig,
}

impl Drop for Inner {
    /// The last `Multipath` handle is gone: stop the monitors. They hold
    /// only a weak reference to this registry, but each holds its
    /// controller; aborting them drops the controllers, which disconnect
    /// (in the background) as a dropped `Controller` does.
    fn drop(&mut self) {
        let monitors = self.monitors.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, t) in monitors.drain() {
            t.abort();
        }
    }
}

/// The multipath layer of one host. Dropping every handle (without
/// [`Multipath::shutdown`]) also lets go of its controllers.
#[derive(Debug, Clone, Default)]
pub struct Multipath {
    inner: Arc<Inner>,
}

/// A handle that does not keep the registry alive (held by the monitors,
/// so that the registry and its monitor tasks form no cycle).
#[derive(Debug, Clone)]
pub(crate) struct WeakMultipath(std::sync::Weak<Inner>);

impl WeakMultipath {
    pub fn upgrade(&self) -> Option<Multipath> {
        self.0.upgrade().map(|inner| Multipath { inner })
    }
}

fn host_err(context: impl Into<String>) -> impl FnOnce(nvmp_host::HostError) -> MpathError {
    let context = context.into();
    move |source| MpathError::Host { context, source }
}

impl Multipath {
    pub fn new(config: MpathConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                subsystems: Mutex::default(),
                monitors: Mutex::default(),
                next_ctrl: AtomicU32::default(),
                next_subsys: AtomicU32::default(),
                config,
            }),
        }
    }

    pub fn subsystems(&self) -> Vec<Arc<Subsystem>> {
        self.inner
            .subsystems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn subsystem(&self, nqn: &str) -> Option<Arc<Subsystem>> {
        self.subsystems().into_iter().find(|s| s.nqn == nqn)
    }

    /// The head of `nsid` in subsystem `nqn`.
    pub fn head(&self, nqn: &str, nsid: u32) -> Option<Arc<NamespaceHead>> {
        self.subsystem(nqn)?.head(nsid)
    }

    pub fn snapshot(&self) -> Vec<SubsysSnapshot> {
        self.subsystems().iter().map(|s| s.snapshot()).collect()
    }

    fn find_or_create_subsystem(&self, nqn: &str) -> Arc<Subsystem> {
        let mut g = self
            .inner
            .subsystems
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(s) = g.iter().find(|s| s.nqn == nqn) {
            return s.clone();
        }
        let inst = self.inner.next_subsys.fetch_add(1, Relaxed);
        let s = Arc::new(Subsystem::new(
            inst,
            nqn.to_string(),
            self.inner.config.default_policy,
        ));
        tracing::info!(subsys = %s.name, nqn, "new subsystem");
        g.push(s.clone());
        s
    }

    /// Link a connected controller: join its subsystem (by subsystem NQN),
    /// read its ANA log, and add each of its namespaces as a path of the
    /// matching head (by NSID and identifiers).
    pub async fn add_controller(&self, ctrl: Controller) -> Result<Linked, MpathError> {
        let id = ctrl.id_ctrl();
        let subnqn = ctrl.subnqn();
        let address = ctrl.address();
        let sub = self.find_or_create_subsystem(subnqn);
        let name = format!("nvme{}", self.inner.next_ctrl.fetch_add(1, Relaxed));
        let ana_supported = id.cmic & cmic::ANA != 0;
        ctrl.set_read_stall(self.inner.config.read_stall.0);
        let entry = Arc::new(CtrlEntry {
            ctrl: ctrl.clone(),
            name: name.clone(),
            ana_supported,
            ana: Mutex::new(AnaTracker::new(id.anatt, id.anagrpmax)),
            ana_reread: tokio::sync::Notify::new(),
            crdt_ms: id.crdt.map(|c| c as u64 * 100),
            removed: AtomicBool::new(false),
            ccr: Default::default(),
        });
        entry.ccr.record(crate::ccr::Instance::current(&ctrl));
        {
            let mut ctrls = sub.ctrls.lock().unwrap_or_else(|e| e.into_inner());
            let live: Vec<&Arc<CtrlEntry>> = ctrls
                .iter()
                .filter(|c| {
                    !c.removed.load(Relaxed)
                        && !matches!(
                            c.ctrl.state(),
                            CtrlState::Dead | CtrlState::Deleting | CtrlState::DeletingNoIo
                        )
                })
                .collect();
            if let Some(dup) = live.iter().find(|c| c.cntlid() == entry.cntlid()) {
                return Err(MpathError::DuplicateCntlid {
                    cntlid: entry.cntlid(),
                    subnqn: subnqn.to_string(),
                    existing: dup.name.clone(),
                    address,
                });
            }
            if let Some(first) = live.first() {
                if id.cmic & cmic::MULTI_CTRL == 0 {
                    return Err(MpathError::NotMultiController {
                        subnqn: subnqn.to_string(),
                        existing: first.name.clone(),
                        address,
                    });
                }
            }
            ctrls.push(entry.clone());
        }
        tracing::info!(ctrl = %name, subsys = %sub.name, %address, cntlid = entry.cntlid(), ana = ana_supported, "controller linked");
        let result = async {
            if ana_supported {
                self.reread_ana(&sub, &entry).await?;
            }
            self.scan(&sub, &entry, false).await
        }
        .await;
        let linked = match result {
            Ok(l) => l,
            Err(e) => {
                self.unlink(&sub, &entry);
                return Err(e);
            }
        };
        let task = tokio::spawn(crate::monitor::run(
            WeakMultipath(Arc::downgrade(&self.inner)),
            sub.clone(),
            entry.clone(),
        ));
        self.inner
            .monitors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, task);
        Ok(linked)
    }

    /// Disconnect a controller and remove its paths.
    pub async fn remove_controller(&self, ctrl_name: &str) -> bool {
        for sub in self.subsystems() {
            let found = sub.controllers().into_iter().find(|c| c.name == ctrl_name);
            if let Some(entry) = found {
                if let Some(t) = self
                    .inner
                    .monitors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(ctrl_name)
                {
                    t.abort();
                }
                self.unlink(&sub, &entry);
                entry.ctrl.disconnect().await;
                return true;
            }
        }
        false
    }

    /// Disconnect everything.
    pub async fn shutdown(&self) {
        for sub in self.subsystems() {
            for c in sub.controllers() {
                self.remove_controller(&c.name).await;
            }
        }
    }

    /// Remove a controller's paths; heads left without paths are removed and
    /// their waiting commands fail.
    pub(crate) fn unlink(&self, sub: &Subsystem, entry: &Arc<CtrlEntry>) {
        entry.removed.store(true, Relaxed);
        sub.ctrls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c| !Arc::ptr_eq(c, entry));
        let mut heads = sub.heads.lock().unwrap_or_else(|e| e.into_inner());
        heads.retain(|nsid, h| {
            let left = h.remove_paths_of(&entry.name);
            if left == 0 {
                tracing::info!(head = %h.name, nsid, "head removed: no path left");
            }
            left > 0
        });
        tracing::info!(ctrl = %entry.name, subsys = %sub.name, "controller unlinked");
    }

    /// Read the ANA log of a controller and update its paths.
    pub(crate) async fn reread_ana(
        &self,
        sub: &Subsystem,
        entry: &Arc<CtrlEntry>,
    ) -> Result<(), MpathError> {
        let log = entry
            .ctrl
            .ana_log(false)
            .await
            .map_err(host_err(format!("{}: reading the ANA log", entry.name)))?;
        // tokio's clock: virtual in paused tests.
        let now = tokio::time::Instant::now().into_std();
        let mut t = entry.ana.lock().unwrap_or_else(|e| e.into_inner());
        t.apply(&log, now)?;
        let tracker = t.clone();
        drop(t);
        for h in sub.heads().values() {
            let mut touched = false;
            for p in h.paths().iter().filter(|p| Arc::ptr_eq(&p.ctrl, entry)) {
                let new = tracker
                    .ns_state(p.nsid, p.anagrpid)
                    .unwrap_or(AnaState::INACCESSIBLE);
                let was_pending = p.ana_pending();
                let old = p.set_ana_state(new);
                if old != new || was_pending {
                    tracing::info!(path = %p.name, group = p.anagrpid, from = %old.name(), to = %new.name(), "ANA state");
                    touched = true;
                }
            }
            if touched {
                h.changed();
            }
        }
        Ok(())
    }

    /// Scan a controller's active namespaces: add new paths, drop paths of namespaces that are gone.
    pub(crate) async fn scan(
        &self,
        sub: &Arc<Subsystem>,
        entry: &Arc<CtrlEntry>,
        revalidate: bool,
    ) -> Result<Linked, MpathError> {
        let c = &entry.ctrl;
        let nsids = c.active_namespaces().await.map_err(host_err(format!(
            "{}: Identify active namespace list",
            entry.name
        )))?;
        let mut linked = Linked {
            ctrl_name: entry.name.clone(),
            subsystem: sub.name.clone(),
            heads_created: vec![],
            paths_added: vec![],
            refused: vec![],
        };
        // Namespaces that disappeared from this controller.
        for (nsid, h) in sub.heads() {
            if !nsids.contains(&nsid) && h.paths().iter().any(|p| Arc::ptr_eq(&p.ctrl, entry)) {
                let left = h.remove_paths_of(&entry.name);
                tracing::info!(head = %h.name, ctrl = %entry.name, "namespace gone from controller");
                if left == 0 {
                    sub.heads
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&nsid);
                }
            }
        }
        for nsid in nsids {
            let existing = sub.head(nsid);
            if let Some(h) = existing
                .as_ref()
                .filter(|h| h.paths().iter().any(|p| Arc::ptr_eq(&p.ctrl, entry)))
            {
                // Already a path: revalidate the capacity (a namespace attribute change may be a resize).
                if revalidate {
                    if let Ok(idns) = c.identify_namespace(nsid).await {
                        if idns.nsze != h.capacity_blocks() && idns.nsze != 0 {
                            tracing::info!(head = %h.name, from = h.capacity_blocks(), to = idns.nsze, "capacity changed");
                            h.set_capacity_blocks(idns.nsze);
                        }
                    }
                }
                continue;
            }
            let idns = c.identify_namespace(nsid).await.map_err(host_err(format!(
                "{}: Identify Namespace {nsid}",
                entry.name
            )))?;
            if idns.nsze == 0 {
                continue;
            }
            let descs = c.ns_id_descriptors(nsid).await.unwrap_or_default();
            let ids = NsIds::from_identify(&idns, &descs);
            let shared = idns.nmic & nvmp_wire::identify::nmic::SHARED != 0;
            let Some(block_size) = idns.block_size() else {
                linked.refused.push(PathRefusal {
                    nsid,
                    reason: "unsupported LBA format".into(),
                });
                continue;
            };
            let ana = if entry.ana_supported {
                entry
                    .ana
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .ns_state(nsid, idns.anagrpid)
                    .unwrap_or(AnaState::INACCESSIBLE)
            } else {
                AnaState::OPTIMIZED
            };
            let path_name = format!(
                "nvme{}c{}n{}",
                sub.instance,
                entry.name.trim_start_matches("nvme"),
                nsid
            );
            let path = Arc::new(Path::new(
                entry.clone(),
                path_name.clone(),
                nsid,
                idns.anagrpid,
                ana,
            ));
            let head = {
                let mut heads = sub.heads.lock().unwrap_or_else(|e| e.into_inner());
                match heads.get(&nsid) {
                    Some(h) => {
                        if let Some(m) = h.ids.mismatch(&ids) {
                            let reason = format!(
                                "IDs don't match for shared namespace {nsid}: {} of {} is {}, head {} has {}",
                                m.field, entry.name, m.path, h.name, m.head
                            );
                            tracing::error!(ctrl = %entry.name, nsid, "{reason}");
                            linked.refused.push(PathRefusal { nsid, reason });
                            continue;
                        }
                        if !h.shared || !shared {
                            let reason = format!("duplicate unshared namespace {nsid} (NMIC bit 0 clear) seen through {}", entry.name);
                            tracing::error!(ctrl = %entry.name, nsid, "{reason}");
                            linked.refused.push(PathRefusal { nsid, reason });
                            continue;
                        }
                        h.clone()
                    }
                    None => {
                        let h = Arc::new(NamespaceHead::new(
                            format!("nvme{}n{}", sub.instance, nsid),
                            nsid,
                            ids,
                            shared,
                            block_size,
                            idns.nsze,
                            sub.policy.clone(),
                            self.inner.config.limits,
                            self.inner.config.requeue,
                            self.inner.config.fence,
                        ));
                        tracing::info!(head = %h.name, nsid, "new namespace head");
                        linked.heads_created.push(h.name.clone());
                        heads.insert(nsid, h.clone());
                        h
                    }
                }
            };
            if let Err(why) = head.add_path(path) {
                linked.refused.push(PathRefusal {
                    nsid,
                    reason: why.into(),
                });
                continue;
            }
            tracing::info!(path = %path_name, head = %head.name, ana = %ana.name(), "path added");
            linked.paths_added.push(path_name);
        }
        Ok(linked)
    }
}
