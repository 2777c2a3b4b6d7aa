//! Shared set-up for the multipath end-to-end tests: nvmp's own target on
//! loopback ports, hosts connected through the multipath layer, and a
//! verified-I/O load whose every block encodes its LBA and generation.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nvmp_host::{Controller, ControllerOptions};
use nvmp_mpath::{Linked, MpathConfig, Multipath, NamespaceHead};
use nvmp_target::{TargetConfig, TargetHandle};

pub const NQN: &str = "nqn.2024-11.io.nvmp:mpath-test";
pub const NGUID1: &str = "6e766d70-0000-4000-8000-0000000000a1";

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// One port: its ID and the state of ANA group 1 on it.
pub struct PortDef {
    pub id: u16,
    pub group1: &'static str,
}

/// Target options.
pub struct TargetDef<'a> {
    pub nqn: &'a str,
    pub ports: &'a [PortDef],
    pub cntlid: (u16, u16),
    pub nguid: &'a str,
    pub size: &'a str,
    /// Extra subsystem `attr` entries, as JSON members (e.g. `"nvmp_anatt": "1"`).
    pub extra_attr: &'a str,
}

impl Default for TargetDef<'_> {
    fn default() -> Self {
        Self {
            nqn: NQN,
            ports: &[
                PortDef {
                    id: 1,
                    group1: "optimized",
                },
                PortDef {
                    id: 2,
                    group1: "non-optimized",
                },
            ],
            cntlid: (1, 65519),
            nguid: NGUID1,
            size: "64M",
            extra_attr: "",
        }
    }
}

pub fn config_json(d: &TargetDef) -> String {
    let ports: Vec<String> = d
        .ports
        .iter()
        .map(|p| {
            format!(
                r#"{{"portid": {id}, "addr": {{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "0", "treq": "not specified"}},
                   "param": {{"inline_data_size": "16384"}}, "referrals": [],
                   "ana_groups": [{{"grpid": 1, "ana": {{"state": "{st}"}}}}],
                   "subsystems": ["{nqn}"]}}"#,
                id = p.id,
                st = p.group1,
                nqn = d.nqn
            )
        })
        .collect();
    format!(
        r#"{{"hosts": [], "ports": [{ports}],
            "subsystems": [{{"nqn": "{nqn}",
               "attr": {{"allow_any_host": "1", "serial": "nvmpmpath0001", "model": "nvmp-mpath-test", "version": "1.3", "cntlid_min": "{cmin}", "cntlid_max": "{cmax}"{extra}}},
               "allowed_hosts": [],
               "namespaces": [{{"nsid": 1, "enable": 1, "ana_grpid": 1, "device": {{"size": "{size}", "nguid": "{nguid}", "uuid": "{nguid}"}}}}]}}]}}"#,
        ports = ports.join(","),
        nqn = d.nqn,
        cmin = d.cntlid.0,
        cmax = d.cntlid.1,
        size = d.size,
        nguid = d.nguid,
        extra = if d.extra_attr.is_empty() {
            String::new()
        } else {
            format!(", {}", d.extra_attr)
        },
    )
}

pub async fn start_target(d: &TargetDef<'_>) -> (TargetHandle, Vec<SocketAddr>) {
    let cfg = TargetConfig::from_json(&config_json(d)).expect("test config");
    let t = TargetHandle::start(cfg).await.expect("start target");
    let addrs = d
        .ports
        .iter()
        .map(|p| t.local_addr(p.id).expect("port listens"))
        .collect();
    (t, addrs)
}

/// Options for one path, tuned for fast tests (reconnect every 300 ms).
pub fn path_opts(addr: SocketAddr, nqn: &str) -> ControllerOptions {
    let mut o = ControllerOptions::new(addr.ip().to_string(), addr.port(), nqn);
    o.nr_io_queues = 2;
    o.queue_size = 64;
    o.kato_ms = 2_000;
    o.reconnect_delay_ms = 300;
    o.ctrl_loss_tmo_s = Some(30);
    o.io_timeout_ms = 5_000;
    o.queue_while_reconnecting = false;
    o
}

pub async fn connect(mp: &Multipath, o: ControllerOptions) -> Linked {
    let c = Controller::connect(o).await.expect("connect");
    mp.add_controller(c).await.expect("link")
}

pub async fn setup_two_paths() -> (TargetHandle, Vec<SocketAddr>, Multipath, Arc<NamespaceHead>) {
    setup_two_paths_with(&TargetDef::default()).await
}

pub async fn setup_two_paths_with(
    d: &TargetDef<'_>,
) -> (TargetHandle, Vec<SocketAddr>, Multipath, Arc<NamespaceHead>) {
    init_tracing();
    let (t, addrs) = start_target(d).await;
    let mp = Multipath::new(MpathConfig::default());
    for a in &addrs {
        connect(&mp, path_opts(*a, NQN)).await;
    }
    let head = mp.head(NQN, 1).expect("head for NSID 1");
    assert_eq!(head.paths().len(), 2);
    (t, addrs, mp, head)
}

/// Wait until `f` holds (polling every 20 ms) or panic after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.elapsed()
}

/// A block whose every 16 bytes say (LBA, generation).
pub fn block_pattern(lba: u64, generation: u64, block_size: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(block_size);
    while v.len() < block_size {
        v.extend_from_slice(&lba.to_le_bytes());
        v.extend_from_slice(&generation.to_le_bytes());
    }
    v
}

/// Counters of a verified-I/O load.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub ios: AtomicU64,
    pub io_errors: AtomicU64,
    pub data_errors: AtomicU64,
}

/// Writes random 4-block extents with a fresh generation and reads each back,
/// checking every block, from `workers` tasks over disjoint LBA ranges, until
/// `stop` is set. Errors are counted, never hidden.
pub fn spawn_verified_load(
    head: Arc<NamespaceHead>,
    workers: u64,
    stop: Arc<AtomicBool>,
) -> (Arc<LoadStats>, Vec<tokio::task::JoinHandle<()>>) {
    let stats = Arc::new(LoadStats::default());
    let bs = head.block_size() as usize;
    let per = head.capacity_blocks() / workers;
    let mut hs = vec![];
    for w in 0..workers {
        let (head, stop, stats) = (head.clone(), stop.clone(), stats.clone());
        hs.push(tokio::spawn(async move {
            let mut gens: HashMap<u64, u64> = HashMap::new();
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ w;
            let mut generation = 1u64;
            while !stop.load(Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let lba = w * per + (x % (per - 4));
                generation += 1;
                let mut data = Vec::with_capacity(4 * bs);
                for i in 0..4 {
                    data.extend(block_pattern(lba + i, generation, bs));
                }
                match head.write(lba, Bytes::from(data), false).await {
                    Ok(()) => {
                        for i in 0..4 {
                            gens.insert(lba + i, generation);
                        }
                    }
                    Err(e) => {
                        eprintln!("write error at {lba}: {e}");
                        stats.io_errors.fetch_add(1, Relaxed);
                        continue;
                    }
                }
                match head.read(lba, 4).await {
                    Ok(d) => {
                        for i in 0..4u64 {
                            let want = block_pattern(lba + i, gens[&(lba + i)], bs);
                            let got = &d[(i as usize) * bs..(i as usize + 1) * bs];
                            if got != want.as_slice() {
                                eprintln!("data error at LBA {}", lba + i);
                                stats.data_errors.fetch_add(1, Relaxed);
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("read error at {lba}: {e}");
                        stats.io_errors.fetch_add(1, Relaxed);
                    }
                }
                stats.ios.fetch_add(2, Relaxed);
            }
        }));
    }
    (stats, hs)
}

/// Make port `port` fail its next command with 0x370 Host Pathing Error (a
/// path error: the head fails the command over).
pub fn fail_next_with_path_error(t: &TargetHandle, port: u16) {
    t.set_fault(
        port,
        nvmp_target::Fault {
            fail_next: Some(nvmp_target::FailNext {
                count: 1,
                status: nvmp_wire::StatusCode::HOST_PATHING_ERROR.0,
                dnr: false,
            }),
            ..Default::default()
        },
    )
    .unwrap();
}
