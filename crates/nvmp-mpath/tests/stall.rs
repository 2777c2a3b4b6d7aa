//! A path that swallows commands without failing (the connection stays up,
//! nothing comes back): reads leave it for the other path after the read
//! stall bound instead of waiting for the I/O timeout or keep-alive, new
//! I/O avoids it, and the data read is right.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use nvmp_host::Controller;
use nvmp_mpath::{IoPolicy, MpathConfig, Multipath};
use nvmp_testkit::{FaultProxy, ProxyMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_leave_a_black_holed_path_and_writes_avoid_it() {
    black_holed_path(IoPolicy::Numa).await;
}

/// The same under service-time, whose runs read nothing of a path but its
/// depth: a queue's stall reaches them through the head (the controller's
/// monitor is told, and tells the head).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_time_leaves_a_black_holed_path_too() {
    black_holed_path(IoPolicy::ServiceTime).await;
}

async fn black_holed_path(policy: IoPolicy) {
    init_tracing();
    let (_t, addrs) = start_target(&TargetDef::default()).await;
    let proxies = [
        FaultProxy::start(addrs[0]).await,
        FaultProxy::start(addrs[1]).await,
    ];
    let mp = Multipath::new(MpathConfig::default());
    let mut ctrls = Vec::new();
    for p in &proxies {
        let mut o = path_opts(p.addr(), NQN);
        // Neither the I/O timeout nor keep-alive may rescue the reads within
        // this test: only the stall bound (500 ms by default) can.
        o.io_timeout_ms = 120_000;
        o.kato_ms = 120_000;
        let c = Controller::connect(o).await.expect("connect");
        ctrls.push(c.clone());
        mp.add_controller(c).await.expect("link");
    }
    mp.subsystem(NQN).unwrap().set_iopolicy(policy);
    let head = mp.head(NQN, 1).unwrap();
    let bs = head.block_size() as usize;
    for lba in 0..32u64 {
        let d = Bytes::from(block_pattern(lba, 7, bs));
        head.write(lba, d, false).await.unwrap();
    }
    let path1_before = head.paths()[1].stats.ios.load(Relaxed);
    // Path 0 (optimized) swallows everything from now on.
    proxies[0].set_mode(ProxyMode::BlackHole);
    let mut reads = Vec::new();
    for lba in 0..32u64 {
        let h = head.clone();
        reads.push(tokio::spawn(async move { (lba, h.read(lba, 1).await) }));
    }
    // Liveness bound only: without the stall rule these reads wait 120 s.
    let all = tokio::time::timeout(Duration::from_secs(30), async {
        let mut out = Vec::new();
        for r in reads {
            out.push(r.await.unwrap());
        }
        out
    })
    .await
    .expect("reads served by the other path well before the I/O timeout");
    for (lba, r) in all {
        assert_eq!(
            r.expect("read succeeds").as_ref(),
            block_pattern(lba, 7, bs).as_slice(),
            "LBA {lba}"
        );
    }
    let retired = ctrls[0].stats().reads_retired;
    assert!(retired > 0, "reads were retired from the stalled path");
    assert!(ctrls[0].is_stalled(), "path 0 reports the stall");
    assert!(!ctrls[1].is_stalled());
    let paths = head.paths();
    assert!(
        paths[1].stats.ios.load(Relaxed) >= path1_before + 32,
        "path 1 served them"
    );
    assert!(paths[0].stats.failovers.load(Relaxed) > 0);
    // New I/O, writes included, goes to the healthy path at once.
    let d = Bytes::from(block_pattern(40, 8, bs));
    tokio::time::timeout(Duration::from_secs(30), head.write(40, d.clone(), false))
        .await
        .expect("a write avoids the stalled path")
        .unwrap();
    let got = head.read(40, 1).await.unwrap();
    assert_eq!(got, d);
    assert_eq!(
        ctrls[0].stats().reads_retired,
        retired,
        "nothing new was sent to the stalled path"
    );
    // The silent connection is cut: the controller resets, and its stalled
    // queues stop counting (a stall must not outlive its connection).
    proxies[0].set_mode(ProxyMode::Pass);
    proxies[0].cut_all();
    wait_until("the stall cleared", Duration::from_secs(30), || {
        !ctrls[0].is_stalled()
    })
    .await;
    wait_until("path 0 usable again", Duration::from_secs(30), || {
        head.paths()[0].view().is_usable()
    })
    .await;
}
