//! I/O policies over two paths, changed at run time.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use nvmp_mpath::{IoPolicy, MpathConfig, Multipath};
use nvmp_target::Fault;

async fn both_optimized() -> (
    nvmp_target::TargetHandle,
    Multipath,
    std::sync::Arc<nvmp_mpath::NamespaceHead>,
) {
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
    let mp = Multipath::new(MpathConfig::default());
    for a in &addrs {
        connect(&mp, path_opts(*a, NQN)).await;
    }
    let head = mp.head(NQN, 1).unwrap();
    (t, mp, head)
}

fn ios(head: &nvmp_mpath::NamespaceHead) -> Vec<u64> {
    head.paths()
        .iter()
        .map(|p| p.stats.ios.load(Relaxed))
        .collect()
}

fn delta(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numa_sticks_round_robin_alternates_queue_depth_avoids_the_slow_path() {
    let (t, mp, head) = both_optimized().await;
    let sub = mp.subsystem(NQN).unwrap();
    let data = Bytes::from(vec![0xabu8; 4096]);

    // numa: one sticky path.
    let b = ios(&head);
    for i in 0..100 {
        head.write(i * 8, data.clone(), false).await.unwrap();
    }
    let d = delta(&ios(&head), &b);
    assert!(d.contains(&100) && d.contains(&0), "numa is sticky: {d:?}");

    // round-robin: strict alternation between the two optimized paths.
    sub.set_iopolicy(IoPolicy::RoundRobin);
    assert_eq!(head.policy(), IoPolicy::RoundRobin);
    let b = ios(&head);
    for i in 0..100 {
        head.read(i * 8, 8).await.unwrap();
    }
    let d = delta(&ios(&head), &b);
    assert_eq!(d, [50, 50], "round-robin alternates");

    // queue-depth: with port 1 slowed down by 30 ms, concurrent I/O goes mostly to port 2.
    sub.set_iopolicy(IoPolicy::QueueDepth);
    t.set_fault(
        1,
        Fault {
            delay_ms: Some(30),
            ..Default::default()
        },
    )
    .unwrap();
    let b = ios(&head);
    let mut hs = vec![];
    for w in 0..8u64 {
        let head = head.clone();
        hs.push(tokio::spawn(async move {
            for i in 0..25u64 {
                head.read(w * 1000 + i * 8, 8).await.unwrap();
            }
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    let d = delta(&ios(&head), &b);
    assert_eq!(d.iter().sum::<u64>(), 200);
    assert!(d[1] > d[0] * 3, "queue-depth prefers the idle path: {d:?}");
    t.clear_faults(1).unwrap();

    // Snapshot reflects the policy.
    assert_eq!(mp.snapshot()[0].iopolicy, "queue-depth");
    mp.shutdown().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_prefers_optimized_over_non_optimized() {
    let (_t, _a, mp, head) = setup_two_paths().await;
    mp.subsystem(NQN)
        .unwrap()
        .set_iopolicy(IoPolicy::RoundRobin);
    let b = ios(&head);
    for i in 0..40 {
        head.read(i, 1).await.unwrap();
    }
    assert_eq!(delta(&ios(&head), &b), [40, 0], "only the optimized path");
    tokio::time::sleep(Duration::from_millis(1)).await;
    mp.shutdown().await;
}
