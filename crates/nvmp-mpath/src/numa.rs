//! NUMA distances for the `numa` policy, as Linux measures them: between
//! the node of the CPU submitting a command and the node of the path's
//! controller — here the node of the network interface the path's
//! connection leaves through (`/sys/class/net/<if>/device/numa_node`),
//! with distances from `/sys/devices/system/node/node<N>/distance`.
//!
//! The interface is the one the kernel routes the path's address through
//! (the longest matching prefix of `/proc/net/route`; loopback addresses go
//! through `lo`, which has no device and so no node). Where the machine
//! reports no node for an interface, or has one node, every distance is
//! equal and the policy behaves as without this module: the first
//! optimized path, sticky. Nothing is read per command unless the machine
//! has several nodes ([`Topology::is_numa`]); then one `getcpu` per 32
//! commands per thread.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use crate::path::Path;
use crate::select::PathView;

/// Nodes and CPUs more than this are ignored (bounds what sysfs can make us allocate).
pub const MAX_NODES: usize = 64;
pub const MAX_CPUS: usize = 4096;

/// The machine's NUMA layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// distance[a][b], as `node<a>/distance` lists it.
    pub distance: Vec<Vec<u32>>,
    /// The node of each CPU (u16::MAX: unknown).
    pub cpu_node: Vec<u16>,
}

/// "0-3,8,10-11" → the CPUs listed (bounded by [`MAX_CPUS`]).
pub fn parse_cpulist(s: &str) -> Vec<usize> {
    let mut v = vec![];
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>(), b.trim().parse::<usize>()),
            None => (part.trim().parse(), part.trim().parse()),
        };
        if let (Ok(a), Ok(b)) = (a, b) {
            for c in a..=b.min(MAX_CPUS - 1) {
                v.push(c);
            }
        }
    }
    v
}

impl Topology {
    /// Read `<sys>/devices/system/node/node*/{distance,cpulist}`; empty if absent.
    pub fn read(sys: &FsPath) -> Topology {
        let base = sys.join("devices/system/node");
        let mut t = Topology::default();
        for n in 0..MAX_NODES {
            let dir = base.join(format!("node{n}"));
            let Ok(d) = std::fs::read_to_string(dir.join("distance")) else {
                break;
            };
            let row: Vec<u32> = d
                .split_whitespace()
                .take(MAX_NODES)
                .filter_map(|x| x.parse().ok())
                .collect();
            t.distance.push(row);
            if let Ok(cl) = std::fs::read_to_string(dir.join("cpulist")) {
                for c in parse_cpulist(&cl) {
                    if t.cpu_node.len() <= c {
                        t.cpu_node.resize(c + 1, u16::MAX);
                    }
                    t.cpu_node[c] = n as u16;
                }
            }
        }
        t
    }
    /// More than one node: distances can differ.
    pub fn is_numa(&self) -> bool {
        self.distance.len() > 1
    }
    /// Distance from node `from` to node `to`; 0 when either is unknown
    /// (every path then looks alike, as today).
    pub fn distance(&self, from: Option<u16>, to: Option<u16>) -> u32 {
        match (from, to) {
            (Some(a), Some(b)) => self
                .distance
                .get(a as usize)
                .and_then(|r| r.get(b as usize))
                .copied()
                .unwrap_or(0),
            _ => 0,
        }
    }
    pub fn node_of_cpu(&self, cpu: usize) -> Option<u16> {
        self.cpu_node.get(cpu).copied().filter(|n| *n != u16::MAX)
    }
}

/// The interface `/proc/net/route` (its text) sends `addr` through: the
/// longest matching prefix; loopback addresses through `lo`.
pub fn route_iface(route: &str, addr: Ipv4Addr) -> Option<String> {
    if addr.is_loopback() {
        return Some("lo".into());
    }
    let a = u32::from(addr);
    let mut best: Option<(u32, String)> = None;
    for line in route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        // Destination and mask are hex of the address in network order,
        // read as a little-endian word.
        let (Ok(dst), Ok(mask)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
        else {
            continue;
        };
        let (dst, mask) = (
            u32::from_be_bytes(dst.to_ne_bytes()),
            u32::from_be_bytes(mask.to_ne_bytes()),
        );
        if a & mask == dst & mask && best.as_ref().is_none_or(|(m, _)| mask.count_ones() > *m) {
            best = Some((mask.count_ones(), f[0].to_string()));
        }
    }
    best.map(|(_, i)| i)
}

/// The node of interface `iface` (`<sys>/class/net/<iface>/device/numa_node`; -1 or absent: none).
pub fn iface_node(sys: &FsPath, iface: &str) -> Option<u16> {
    if iface.is_empty() || iface.contains('/') || iface.contains("..") {
        return None;
    }
    let s =
        std::fs::read_to_string(sys.join("class/net").join(iface).join("device/numa_node")).ok()?;
    let n: i64 = s.trim().parse().ok()?;
    (0..MAX_NODES as i64).contains(&n).then_some(n as u16)
}

/// The node of the interface a path to `traddr` leaves through, if the machine says.
pub fn path_node(sys: &FsPath, proc_net_route: &str, traddr: &str) -> Option<u16> {
    let ip: IpAddr = traddr.trim_matches(['[', ']']).parse().ok()?;
    let iface = match ip {
        IpAddr::V4(a) => route_iface(proc_net_route, a)?,
        IpAddr::V6(a) if a.is_loopback() => "lo".into(),
        // IPv6 routes (/proc/net/ipv6_route) are not consulted: no node.
        IpAddr::V6(_) => return None,
    };
    iface_node(sys, &iface)
}

/// The machine's topology, read once.
pub fn topology() -> &'static Topology {
    static T: OnceLock<Topology> = OnceLock::new();
    T.get_or_init(|| Topology::read(FsPath::new("/sys")))
}

/// The node of the CPU this thread runs on (refreshed every 32 calls).
fn current_node(t: &Topology) -> Option<u16> {
    thread_local! {
        static CPU: Cell<(usize, u32)> = const { Cell::new((0, 0)) };
    }
    let cpu = CPU.with(|c| {
        let (cpu, n) = c.get();
        if n % 32 == 0 {
            let cpu = rustix::thread::sched_getcpu();
            c.set((cpu, 1));
            cpu
        } else {
            c.set((cpu, n + 1));
            cpu
        }
    });
    t.node_of_cpu(cpu)
}

/// A path's NIC node, looked up once (u32::MAX: not yet; u32::MAX - 1: none).
#[derive(Debug)]
pub struct NodeCell(AtomicU32);

impl Default for NodeCell {
    fn default() -> Self {
        Self(AtomicU32::new(u32::MAX))
    }
}

impl NodeCell {
    pub fn get_or_lookup(&self, traddr: impl FnOnce() -> String) -> Option<u16> {
        match self.0.load(Relaxed) {
            u32::MAX => {
                let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
                let n = path_node(FsPath::new("/sys"), &route, &traddr());
                self.0.store(n.map_or(u32::MAX - 1, u32::from), Relaxed);
                if let Some(n) = n {
                    tracing::info!(node = n, "path's interface is on NUMA node {n}");
                }
                n
            }
            v if v == u32::MAX - 1 => None,
            v => Some(v as u16),
        }
    }
}

/// Whether per-command distances are worth computing: several nodes.
#[inline]
pub fn active() -> bool {
    topology().is_numa()
}

/// Fill in each view's distance from the submitting CPU's node to its path's NIC node.
pub fn annotate(views: &mut [PathView], paths: &[Arc<Path>]) {
    let t = topology();
    let here = current_node(t);
    for (v, p) in views.iter_mut().zip(paths) {
        let node = p
            .stats
            .nic_node
            .get_or_lookup(|| p.ctrl.ctrl.options().traddr.clone());
        v.distance = t.distance(here, node);
    }
}

#[cfg(test)]
mod tests;
