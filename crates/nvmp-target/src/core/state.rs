//! The target's shared registry: ports (with ANA groups, counters, faults),
//! subsystems (namespaces, controllers) and connections. Plain data behind
//! one mutex, no I/O: every method takes `now` where time matters.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use nvmp_wire::admin::AsyncEvent;
use nvmp_wire::log::AnaState;
use nvmp_wire::Status;
use tokio::sync::Notify;

use crate::backend::Backend;
use crate::config::{NamespaceSpec, PortSpec, SubsystemSpec, TargetConfig};

mod events;

pub type ConnId = u64;

/// Bound on events queued per controller (duplicates are coalesced).
pub const MAX_PENDING_EVENTS: usize = 16;
/// Default bound on connections across all ports.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The time of a controller's last traffic, shared by its admin and I/O
/// queues without a lock ("any command counts as traffic" for keep-alive).
/// Milliseconds since `base`; written only when the millisecond changes so
/// that queues on different cores do not bounce the cache line per command.
#[derive(Debug)]
pub struct TrafficStamp {
    base: Instant,
    ms: AtomicU64,
}

impl TrafficStamp {
    pub fn new(now: Instant) -> Self {
        Self {
            base: now,
            ms: AtomicU64::new(0),
        }
    }
    /// Record traffic at `now` (never moves backwards).
    pub fn touch(&self, now: Instant) {
        let v = now.saturating_duration_since(self.base).as_millis() as u64;
        if self.ms.load(Ordering::Relaxed) < v {
            self.ms.fetch_max(v, Ordering::Relaxed);
        }
    }
    /// The last traffic (to the millisecond, rounded down).
    pub fn get(&self) -> Instant {
        self.base + std::time::Duration::from_millis(self.ms.load(Ordering::Relaxed))
    }
}

/// Wakes a connection's driver: pending AENs, or close.
#[derive(Debug, Default)]
pub struct ConnSignal {
    pub wake: Notify,
    closed: AtomicBool,
}

impl ConnSignal {
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Per-port I/O counters.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub read_bytes: AtomicU64,
    pub write_bytes: AtomicU64,
    pub flushes: AtomicU64,
    pub other_io: AtomicU64,
    pub errors: AtomicU64,
    pub connections_accepted: AtomicU64,
}

/// Fault injection settings of a port.
#[derive(Debug, Default)]
pub struct PortFaults {
    pub delay_ms: AtomicU64,
    pub black_hole: AtomicBool,
    /// Park every I/O command this many ms before it runs (0 = off; see `core::queue::hold`).
    pub hold_ms: AtomicU64,
    /// Every file-backend operation takes this many ms longer, once started
    /// (a slow disk; 0 = off; RAM namespaces are not slowed).
    pub stall_ms: AtomicU64,
    /// Fail the next N I/O commands with this status (set with [`PortFaults::set_fail_next`]).
    pub fail_next: Mutex<Option<(u32, Status)>>,
    fail_armed: AtomicBool,
}

impl PortFaults {
    /// Arm "fail the next `count` I/O commands with `status`" (0 disarms).
    pub fn set_fail_next(&self, count: u32, status: Status) {
        let mut g = self.fail_next.lock().unwrap_or_else(|e| e.into_inner());
        *g = (count > 0).then_some((count, status));
        self.fail_armed.store(count > 0, Ordering::SeqCst);
    }

    /// Take one failure from the fail-next budget.
    pub fn take_failure(&self) -> Option<Status> {
        if !self.fail_armed.load(Ordering::Relaxed) {
            return None; // fast path: no lock per I/O
        }
        let mut g = self.fail_next.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_mut() {
            Some((n, st)) if *n > 0 => {
                *n -= 1;
                let st = *st;
                if *n == 0 {
                    *g = None;
                    self.fail_armed.store(false, Ordering::SeqCst);
                }
                Some(st)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupState {
    pub state: AnaState,
    pub change_count: u64,
}

#[derive(Debug)]
pub struct PortRt {
    pub spec: PortSpec,
    pub ana: BTreeMap<u32, GroupState>,
    pub ana_change_count: u64,
    /// Administratively up (`port_down` clears it).
    pub up: bool,
    /// Listening address once bound.
    pub bound: Option<SocketAddr>,
    pub counters: Arc<PortCounters>,
    pub faults: Arc<PortFaults>,
}

impl PortRt {
    /// ANA state of a group on this port: configured, else nvmet's defaults
    /// (group 1 optimized, others inaccessible).
    pub fn ana_state(&self, grpid: u32) -> GroupState {
        self.ana.get(&grpid).copied().unwrap_or(GroupState {
            state: if grpid == 1 {
                AnaState::OPTIMIZED
            } else {
                AnaState::INACCESSIBLE
            },
            change_count: 0,
        })
    }
    /// Whether the listener should be open: up and at least one subsystem linked.
    pub fn should_listen(&self) -> bool {
        self.up && !self.spec.subsystems.is_empty()
    }
}

/// A namespace at run time.
#[derive(Debug)]
pub struct NsRt {
    pub spec: NamespaceSpec,
    pub backend: Arc<Backend>,
    pub block_size: u32,
    pub blocks: u64,
    pub nguid: [u8; 16],
    pub uuid: [u8; 16],
    /// Reservations (shared by every controller and port of the subsystem).
    pub resv: super::resv::NsResv,
}

/// Controller states, as Linux names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CtrlState {
    New,
    Connecting,
    Live,
    Resetting,
    Deleting,
    DeletingNoIo,
    Dead,
}

#[derive(Debug)]
pub struct Ctrl {
    pub cntlid: u16,
    pub port: u16,
    pub hostnqn: String,
    pub hostid: [u8; 16],
    pub kato_ms: u32,
    pub cc: u32,
    pub csts: u32,
    pub aec: u32,
    /// Granted number of I/O queues (Set Features), 1-based.
    pub nr_io_queues: u16,
    pub admin_sqsize: u16,
    pub admin_conn: ConnId,
    pub io_queues: BTreeMap<u16, ConnId>,
    pub traffic: Arc<TrafficStamp>,
    pub aer_cids: VecDeque<u16>,
    pub events: VecDeque<u32>,
    pub changed_ns: BTreeSet<u32>,
    pub state: CtrlState,
    /// Reservation notification masks and log.
    pub resv: super::resv::CtrlResv,
    /// Cross-Controller Reset: instance identity, queue gates, CCR log.
    pub ccr: super::ccr::CtrlCcr,
}

impl Ctrl {
    pub fn set_state(&mut self, to: CtrlState) {
        if self.state != to {
            tracing::debug!(cntlid = self.cntlid, from = ?self.state, ?to, "controller state");
            self.state = to;
        }
    }
    /// Queue an event if the host enabled it (AEC bit) and it is not already pending.
    pub fn post_event(&mut self, aec_bit: u32, ev: AsyncEvent) -> bool {
        if self.aec & aec_bit == 0 {
            return false;
        }
        let dw0 = ev.to_dw0();
        if !self.events.contains(&dw0) && self.events.len() < MAX_PENDING_EVENTS {
            self.events.push_back(dw0);
        }
        true
    }
}

#[derive(Debug)]
pub struct SubsysRt {
    pub spec: SubsystemSpec,
    pub discovery: bool,
    pub namespaces: BTreeMap<u32, Arc<NsRt>>,
    pub ctrls: BTreeMap<u16, Ctrl>,
    pub next_cntlid: u16,
    /// Cross-Controller Reset: CIU counter, controllers still quiescing.
    pub ccr: super::ccr::SubsysCcr,
}

impl SubsysRt {
    pub fn host_allowed(&self, hostnqn: &str) -> bool {
        self.discovery || self.spec.allow_any_host || self.spec.allowed_hosts.contains(hostnqn)
    }
    /// Next free CNTLID in cntlid_min..=cntlid_max (next fit).
    pub fn alloc_cntlid(&mut self) -> Option<u16> {
        let (lo, hi) = (self.spec.cntlid_min, self.spec.cntlid_max);
        let span = (hi - lo) as u32 + 1;
        let mut c = self.next_cntlid.clamp(lo, hi);
        for _ in 0..span {
            if !self.ctrls.contains_key(&c) {
                self.next_cntlid = if c == hi { lo } else { c + 1 };
                return Some(c);
            }
            c = if c == hi { lo } else { c + 1 };
        }
        None
    }
}

/// (subsystem NQN, CNTLID, QID) of a bound connection.
pub type Binding = (String, u16, u16);

#[derive(Debug)]
pub struct ConnInfo {
    pub port: u16,
    /// The peer's address (for log lines).
    pub peer: Option<SocketAddr>,
    pub signal: Arc<ConnSignal>,
    /// (subsystem, cntlid, qid) once connected.
    pub bound: Option<Binding>,
}

#[derive(Debug)]
pub struct State {
    pub ports: BTreeMap<u16, PortRt>,
    pub subsystems: BTreeMap<String, SubsysRt>,
    pub hosts: BTreeSet<String>,
    /// DH-HMAC-CHAP settings by host NQN (changed at runtime by the control socket).
    pub dhchap: BTreeMap<String, Arc<crate::config::dhchap::DhchapSpec>>,
    /// Discovery log generation counter.
    pub genctr: u64,
    pub conns: HashMap<ConnId, ConnInfo>,
    pub next_conn: ConnId,
    pub max_connections: usize,
    /// Bumped (under the lock) whenever something an I/O queue resolved at
    /// Connect may have changed: namespaces, ANA states, links, controllers.
    /// I/O queues compare it per command and re-resolve when it moved.
    pub io_epoch: Arc<AtomicU64>,
}

/// Default bound on reply bytes (headers and data) queued but not yet
/// taken by the peer, per connection: past it a queue stops taking new
/// commands off the socket, so TCP pushes back on a host that does not read.
pub const DEFAULT_CONN_BUFFER_BYTES: usize = 2 << 20;
/// Default bound on such bytes across the whole target.
pub const DEFAULT_TARGET_BUFFER_BYTES: usize = 256 << 20;

/// Shared target state: the registry plus a "ports changed" signal for listeners.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    pub ports_changed: tokio::sync::watch::Sender<u64>,
    /// Same as [`State::io_epoch`], readable without the lock.
    pub io_epoch: Arc<AtomicU64>,
    /// Reply bytes queued on all connections and not yet sent.
    pub buffered_bytes: AtomicUsize,
    /// The most [`Shared::buffered_bytes`] one connection has held (for tests and status).
    pub max_conn_buffered_bytes: AtomicUsize,
    pub conn_buffer_bytes: AtomicUsize,
    pub target_buffer_bytes: AtomicUsize,
}

impl Shared {
    pub fn new(state: State) -> Arc<Self> {
        Arc::new(Self {
            io_epoch: state.io_epoch.clone(),
            state: Mutex::new(state),
            ports_changed: tokio::sync::watch::channel(0).0,
            buffered_bytes: AtomicUsize::new(0),
            max_conn_buffered_bytes: AtomicUsize::new(0),
            conn_buffer_bytes: AtomicUsize::new(DEFAULT_CONN_BUFFER_BYTES),
            target_buffer_bytes: AtomicUsize::new(DEFAULT_TARGET_BUFFER_BYTES),
        })
    }
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn notify_ports_changed(&self) {
        self.ports_changed.send_modify(|g| *g += 1);
    }
}

/// Derive a stable identifier from the subsystem NQN and NSID (used when the
/// config gives no NGUID/UUID, so identifiers match on every port and across restarts).
pub fn derived_id(nqn: &str, nsid: u32, salt: u8) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(4).enumerate() {
        let mut input = nqn.as_bytes().to_vec();
        input.extend_from_slice(&nsid.to_le_bytes());
        input.push(salt);
        input.push(i as u8);
        chunk.copy_from_slice(&nvmp_wire::crc::crc32c(&input).to_be_bytes());
    }
    if salt == b'u' {
        // RFC 4122 version 4 / variant bits, so it looks like a UUID.
        out[6] = (out[6] & 0x0f) | 0x40;
        out[8] = (out[8] & 0x3f) | 0x80;
    }
    out
}

/// Open a namespace's backend and fill in identifiers.
pub fn open_namespace(nqn: &str, spec: &NamespaceSpec) -> std::io::Result<NsRt> {
    let (backend, block_size) = Backend::open(&spec.device)?;
    let blocks = backend.size() / block_size as u64;
    Ok(NsRt {
        nguid: spec
            .nguid
            .unwrap_or_else(|| derived_id(nqn, spec.nsid, b'n')),
        uuid: spec
            .uuid
            .unwrap_or_else(|| derived_id(nqn, spec.nsid, b'u')),
        spec: spec.clone(),
        backend: Arc::new(backend),
        block_size,
        blocks,
        resv: super::resv::NsResv::open(spec),
    })
}

fn discovery_subsystem() -> SubsysRt {
    SubsysRt {
        spec: SubsystemSpec {
            nqn: nvmp_wire::nqn::DISCOVERY_NQN.to_string(),
            allow_any_host: true,
            allowed_hosts: BTreeSet::new(),
            serial: "nvmp-discovery".into(),
            model: "nvmp".into(),
            version: 0x0001_0400,
            cntlid_min: 1,
            cntlid_max: 0xFFEF,
            namespaces: vec![],
            ext: Default::default(),
        },
        discovery: true,
        namespaces: BTreeMap::new(),
        ctrls: BTreeMap::new(),
        next_cntlid: 1,
        ccr: Default::default(),
    }
}

impl State {
    /// Build the run-time state from a validated config (opens every backend).
    pub fn from_config(cfg: &TargetConfig) -> Result<State, crate::config::ConfigError> {
        let mut subsystems = BTreeMap::new();
        subsystems.insert(
            nvmp_wire::nqn::DISCOVERY_NQN.to_string(),
            discovery_subsystem(),
        );
        for (i, s) in cfg.subsystems.iter().enumerate() {
            let mut namespaces = BTreeMap::new();
            for (j, n) in s.namespaces.iter().enumerate() {
                let ns = open_namespace(&s.nqn, n).map_err(|e| {
                    crate::config::ConfigError::new(
                        format!("subsystems[{i}].namespaces[{j}].device.path"),
                        format!("cannot open: {e}"),
                    )
                })?;
                namespaces.insert(n.nsid, Arc::new(ns));
            }
            subsystems.insert(
                s.nqn.clone(),
                SubsysRt {
                    spec: s.clone(),
                    discovery: false,
                    namespaces,
                    ctrls: BTreeMap::new(),
                    next_cntlid: s.cntlid_min,
                    ccr: Default::default(),
                },
            );
        }
        let ports = cfg
            .ports
            .iter()
            .map(|p| {
                let ana = p
                    .ana_groups
                    .iter()
                    .map(|(g, s)| {
                        (
                            *g,
                            GroupState {
                                state: *s,
                                change_count: 0,
                            },
                        )
                    })
                    .collect();
                (
                    p.portid,
                    PortRt {
                        spec: p.clone(),
                        ana,
                        ana_change_count: 0,
                        up: true,
                        bound: None,
                        counters: Arc::default(),
                        faults: Arc::default(),
                    },
                )
            })
            .collect();
        Ok(State {
            ports,
            subsystems,
            hosts: cfg.hosts.clone(),
            dhchap: cfg
                .dhchap
                .iter()
                .map(|(h, d)| (h.clone(), Arc::new(d.clone())))
                .collect(),
            genctr: 1,
            conns: HashMap::new(),
            next_conn: 1,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            io_epoch: Arc::new(AtomicU64::new(1)),
        })
    }

    /// Register a new connection on a port; `None` when over the limit or the port is down.
    pub fn register_conn(&mut self, port: u16) -> Option<(ConnId, Arc<ConnSignal>)> {
        self.register_conn_from(port, None)
    }

    /// [`State::register_conn`] for a peer. At the connection limit, the
    /// oldest connection that has not completed a Connect yet is closed to
    /// make room: idle sockets that never send ICReq (or Connect) cannot
    /// lock hosts out until their 10 s deadline; only connections bound to
    /// a controller make the target refuse new ones.
    pub fn register_conn_from(
        &mut self,
        port: u16,
        peer: Option<SocketAddr>,
    ) -> Option<(ConnId, Arc<ConnSignal>)> {
        if !self.ports.get(&port)?.up {
            return None;
        }
        if self.conns.len() >= self.max_connections {
            let oldest = self
                .conns
                .iter()
                .filter(|(_, c)| c.bound.is_none())
                .map(|(id, _)| *id)
                .min()?;
            if let Some(victim) = self.conns.remove(&oldest) {
                tracing::warn!(
                    port = victim.port,
                    peer = ?victim.peer,
                    conn = oldest,
                    "connection limit reached: closing the oldest connection without a Connect"
                );
                victim.signal.close();
            }
        }
        let p = self.ports.get(&port)?;
        p.counters
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        let id = self.next_conn;
        self.next_conn += 1;
        let signal = Arc::new(ConnSignal::default());
        self.conns.insert(
            id,
            ConnInfo {
                port,
                peer,
                signal: signal.clone(),
                bound: None,
            },
        );
        Some((id, signal))
    }

    /// A connection ended: drop its queue; losing the admin queue tears the controller down.
    pub fn unregister_conn(&mut self, id: ConnId) {
        let Some(info) = self.conns.remove(&id) else {
            return;
        };
        if let Some((nqn, cntlid, qid)) = info.bound {
            if qid == 0 {
                self.teardown_ctrl(&nqn, cntlid, "admin queue closed");
            } else if let Some(c) = self
                .subsystems
                .get_mut(&nqn)
                .and_then(|s| s.ctrls.get_mut(&cntlid))
            {
                if c.io_queues.get(&qid) == Some(&id) {
                    c.io_queues.remove(&qid);
                }
            }
        }
    }

    /// Tear a controller down: close all its connections, drop it.
    pub fn teardown_ctrl(&mut self, nqn: &str, cntlid: u16, why: &str) {
        let Some(mut c) = self
            .subsystems
            .get_mut(nqn)
            .and_then(|s| s.ctrls.remove(&cntlid))
        else {
            return;
        };
        c.set_state(CtrlState::Dead);
        if let Some(s) = self.subsystems.get_mut(nqn) {
            // No command of this controller reaches a backend from now on.
            super::ccr::retire(s, cntlid, &c.hostnqn, &c.ccr);
        }
        self.bump_io_epoch();
        tracing::info!(subnqn = nqn, cntlid, hostnqn = %c.hostnqn, port = c.port, reason = why, "controller torn down");
        for conn in std::iter::once(c.admin_conn).chain(c.io_queues.values().copied()) {
            if let Some(ci) = self.conns.get(&conn) {
                ci.signal.close();
            }
        }
    }

    /// Close every connection of a port (port down).
    pub fn close_port_conns(&mut self, port: u16) {
        let victims: Vec<(ConnId, Option<Binding>)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.port == port)
            .map(|(id, c)| (*id, c.bound.clone()))
            .collect();
        for (id, bound) in victims {
            if let Some((nqn, cntlid, _)) = bound {
                self.teardown_ctrl(&nqn, cntlid, "port down");
            }
            if let Some(ci) = self.conns.get(&id) {
                ci.signal.close();
            }
        }
    }

    /// Tell I/O queues to re-resolve their view (call with the lock held,
    /// after the change).
    pub fn bump_io_epoch(&self) {
        self.io_epoch.fetch_add(1, Ordering::Release);
    }

    pub fn ctrl_mut(&mut self, nqn: &str, cntlid: u16) -> Option<&mut Ctrl> {
        self.subsystems.get_mut(nqn)?.ctrls.get_mut(&cntlid)
    }
}
