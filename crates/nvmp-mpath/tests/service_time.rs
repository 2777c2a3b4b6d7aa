//! The service-time policy end to end: two optimized paths, one of them
//! through a proxy that adds a delay to every command. Asserts on where the
//! I/O went (per-path counts), never on speed.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use nvmp_mpath::{IoPolicy, MpathConfig, Multipath, NamespaceHead};
use nvmp_testkit::{FaultProxy, ProxyMode};

const DELAY: Duration = Duration::from_millis(40);

fn ios(head: &NamespaceHead) -> Vec<u64> {
    head.paths()
        .iter()
        .map(|p| p.stats.ios.load(Relaxed))
        .collect()
}

/// `n` reads, `qd` at a time; the I/Os each path completed meanwhile.
async fn load(head: &Arc<NamespaceHead>, n: usize, qd: usize) -> Vec<u64> {
    let before = ios(head);
    let mut tasks = vec![];
    for q in 0..qd {
        let head = head.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..n / qd {
                let lba = ((q * 7919 + i * 104_729) % 16_000) as u64 * 8;
                head.read(lba, 8).await.expect("read");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    ios(head).iter().zip(&before).map(|(a, b)| a - b).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_time_sends_most_io_to_the_fast_path_and_follows_the_delay() {
    init_tracing();
    let ports = [
        PortDef {
            id: 1,
            group1: "optimized",
        },
        PortDef {
            id: 2,
            group1: "optimized",
        },
    ];
    let (t, addrs) = start_target(&TargetDef {
        ports: &ports,
        ..Default::default()
    })
    .await;
    let proxies = [
        FaultProxy::start(addrs[0]).await,
        FaultProxy::start(addrs[1]).await,
    ];
    let mp = Multipath::new(MpathConfig::default());
    for p in &proxies {
        connect(&mp, path_opts(p.addr(), NQN)).await;
    }
    let head = mp.head(NQN, 1).unwrap();
    let sub = mp.subsystem(NQN).unwrap();
    assert_eq!(head.paths().len(), 2);
    assert!(head.paths()[0].name < head.paths()[1].name);

    // Round-robin, path 0 delayed: half of the I/O waits for the slow path.
    proxies[0].set_mode(ProxyMode::DelayToTarget(DELAY));
    sub.set_iopolicy(IoPolicy::RoundRobin);
    let d = load(&head, 200, 8).await;
    eprintln!("round-robin, path 0 delayed: {d:?}");
    assert!(d[0] * 10 >= (d[0] + d[1]) * 4, "round-robin: {d:?}");

    // service-time: most of it goes to the fast path; the slow one is
    // still probed (and tried once at the start).
    sub.set_iopolicy(IoPolicy::ServiceTime);
    let d = load(&head, 1000, 8).await;
    eprintln!("service-time, path 0 delayed: {d:?}");
    assert!(d[1] * 10 >= (d[0] + d[1]) * 8, "service-time: {d:?}");
    assert!(d[0] >= 1, "the slow path was measured: {d:?}");
    let snap = mp.snapshot();
    let lat: Vec<u64> = snap[0].heads[0]
        .paths
        .iter()
        .map(|p| p.latency_us)
        .collect();
    assert!(
        lat[0] >= 10_000,
        "slow path's latency (>= 40 ms delay) in the snapshot: {lat:?}"
    );
    assert!(lat[1] > 0 && lat[1] < lat[0], "{lat:?}");

    // The delay moves to path 1: the I/O follows to path 0.
    proxies[0].set_mode(ProxyMode::Pass);
    proxies[1].set_mode(ProxyMode::DelayToTarget(DELAY));
    let _ = load(&head, 80, 8).await; // the estimates catch up
    let d = load(&head, 1000, 8).await;
    eprintln!("service-time, path 1 delayed: {d:?}");
    assert!(d[0] * 10 >= (d[0] + d[1]) * 8, "after the move: {d:?}");

    proxies[1].set_mode(ProxyMode::Pass);
    mp.shutdown().await;
    t.shutdown().await;
}

/// Changing the policy to service-time and back at run time keeps I/O
/// flowing, and only service-time measures latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_measured_only_under_service_time() {
    let (t, _addrs, mp, head) = setup_two_paths().await;
    let sub = mp.subsystem(NQN).unwrap();
    let _ = load(&head, 64, 4).await;
    let samples =
        |h: &NamespaceHead| -> u64 { h.paths().iter().map(|p| p.stats.latency.samples()).sum() };
    assert_eq!(samples(&head), 0, "numa does not time commands");
    sub.set_iopolicy(IoPolicy::ServiceTime);
    let d = load(&head, 64, 4).await;
    // Sampled commands are timed (each worker thread's first one at least;
    // how many more depends on the rate: see latency::SAMPLE_GAP_NS).
    let timed = samples(&head);
    assert!((1..=64).contains(&timed), "{timed}");
    // Port 2 is non-optimized: service-time keeps to the optimized path.
    assert_eq!(d, vec![64, 0]);
    sub.set_iopolicy(IoPolicy::QueueDepth);
    let _ = load(&head, 64, 4).await;
    assert_eq!(samples(&head), timed, "queue-depth times nothing");
    mp.shutdown().await;
    t.shutdown().await;
}
