//! The serializable status snapshot.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::config::{format_uuid, DeviceSpec};
use crate::core::state::{Ctrl, CtrlState, State};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub ports: Vec<PortStatus>,
    pub subsystems: Vec<SubsystemStatus>,
    /// Controllers of the discovery subsystem.
    pub discovery_controllers: Vec<ControllerStatus>,
    pub discovery_genctr: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    pub portid: u16,
    pub traddr: String,
    pub trsvcid: u16,
    pub advertise_traddr: Option<String>,
    /// Administratively up.
    pub up: bool,
    /// The listening address, while listening.
    pub listening: Option<String>,
    pub subsystems: Vec<String>,
    pub ana_change_count: u64,
    pub ana_groups: Vec<AnaGroupStatus>,
    pub counters: CountersStatus,
    pub faults: FaultStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnaGroupStatus {
    pub grpid: u32,
    pub state: String,
    pub change_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CountersStatus {
    pub reads: u64,
    pub writes: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub flushes: u64,
    pub other_io: u64,
    pub errors: u64,
    pub connections_accepted: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FaultStatus {
    pub delay_ms: u64,
    pub black_hole: bool,
    pub fail_next: u32,
    pub fail_status: Option<u16>,
    /// I/O commands are parked this long before they run (hold fault).
    #[serde(default)]
    pub hold_ms: u64,
    /// File operations take this much longer (stall fault).
    #[serde(default)]
    pub stall_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubsystemStatus {
    pub nqn: String,
    pub allow_any_host: bool,
    pub allowed_hosts: Vec<String>,
    pub namespaces: Vec<NamespaceStatus>,
    pub controllers: Vec<ControllerStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceStatus {
    pub nsid: u32,
    pub enable: bool,
    pub ana_grpid: u32,
    pub size_bytes: u64,
    pub block_size: u32,
    pub nguid: String,
    pub uuid: String,
    /// "ram" or the file path.
    pub backend: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerStatus {
    pub cntlid: u16,
    pub hostnqn: String,
    pub port: u16,
    pub state: CtrlState,
    pub kato_ms: u32,
    pub io_queues: usize,
}

fn ctrl(c: &Ctrl) -> ControllerStatus {
    ControllerStatus {
        cntlid: c.cntlid,
        hostnqn: c.hostnqn.clone(),
        port: c.port,
        state: c.state,
        kato_ms: c.kato_ms,
        io_queues: c.io_queues.len(),
    }
}

pub(crate) fn snapshot(st: &State) -> TargetStatus {
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let ports = st
        .ports
        .iter()
        .map(|(id, p)| {
            let mut grp: std::collections::BTreeSet<u32> = p.ana.keys().copied().collect();
            for s in p
                .spec
                .subsystems
                .iter()
                .filter_map(|n| st.subsystems.get(n))
            {
                grp.extend(s.namespaces.values().map(|n| n.spec.ana_grpid));
            }
            let fail = *p.faults.fail_next.lock().unwrap_or_else(|e| e.into_inner());
            PortStatus {
                portid: *id,
                traddr: p.spec.traddr.to_string(),
                trsvcid: p.spec.trsvcid,
                advertise_traddr: p.spec.advertise_traddr.clone(),
                up: p.up,
                listening: p.bound.map(|a| a.to_string()),
                subsystems: p.spec.subsystems.clone(),
                ana_change_count: p.ana_change_count,
                ana_groups: grp
                    .into_iter()
                    .map(|g| {
                        let s = p.ana_state(g);
                        AnaGroupStatus {
                            grpid: g,
                            state: s.state.name().to_string(),
                            change_count: s.change_count,
                        }
                    })
                    .collect(),
                counters: CountersStatus {
                    reads: ld(&p.counters.reads),
                    writes: ld(&p.counters.writes),
                    read_bytes: ld(&p.counters.read_bytes),
                    write_bytes: ld(&p.counters.write_bytes),
                    flushes: ld(&p.counters.flushes),
                    other_io: ld(&p.counters.other_io),
                    errors: ld(&p.counters.errors),
                    connections_accepted: ld(&p.counters.connections_accepted),
                },
                faults: FaultStatus {
                    delay_ms: ld(&p.faults.delay_ms),
                    black_hole: p.faults.black_hole.load(Ordering::Relaxed),
                    fail_next: fail.map_or(0, |f| f.0),
                    fail_status: fail.map(|f| f.1.code.0),
                    hold_ms: ld(&p.faults.hold_ms),
                    stall_ms: ld(&p.faults.stall_ms),
                },
            }
        })
        .collect();
    let mut subsystems = Vec::new();
    let mut discovery_controllers = Vec::new();
    for s in st.subsystems.values() {
        if s.discovery {
            discovery_controllers = s.ctrls.values().map(ctrl).collect();
            continue;
        }
        subsystems.push(SubsystemStatus {
            nqn: s.spec.nqn.clone(),
            allow_any_host: s.spec.allow_any_host,
            allowed_hosts: s.spec.allowed_hosts.iter().cloned().collect(),
            namespaces: s
                .namespaces
                .values()
                .map(|n| NamespaceStatus {
                    nsid: n.spec.nsid,
                    enable: n.spec.enable,
                    ana_grpid: n.spec.ana_grpid,
                    size_bytes: n.blocks * n.block_size as u64,
                    block_size: n.block_size,
                    nguid: format_uuid(&n.nguid),
                    uuid: format_uuid(&n.uuid),
                    backend: match &n.spec.device {
                        DeviceSpec::Ram { .. } | DeviceSpec::RamPopulated { .. } => "ram".into(),
                        DeviceSpec::File { path } => path.display().to_string(),
                    },
                })
                .collect(),
            controllers: s.ctrls.values().map(ctrl).collect(),
        });
    }
    TargetStatus {
        ports,
        subsystems,
        discovery_controllers,
        discovery_genctr: st.genctr,
    }
}
