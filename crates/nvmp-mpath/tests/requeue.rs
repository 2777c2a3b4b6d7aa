//! No usable path: commands wait while a controller may come back, run when
//! one does, and fail once none can (ctrl_loss_tmo, fast_io_fail_tmo).

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use common::*;
use nvmp_mpath::{MpathConfig, Multipath};
use nvmp_wire::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeued_while_reconnecting_and_released_on_reconnect() {
    let (t, _a, mp, head) = setup_two_paths().await;
    let data = bytes::Bytes::from(block_pattern(5, 1, 512));
    head.write(5, data.clone(), false).await.unwrap();
    t.port_down(1).unwrap();
    t.port_down(2).unwrap();
    let h2 = head.clone();
    let pending = tokio::spawn(async move { h2.read(5, 1).await });
    wait_until(
        "the read waits in the requeue list",
        Duration::from_secs(5),
        || head.stats.waiting.load(Relaxed) == 1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !pending.is_finished(),
        "still waiting while controllers reconnect"
    );
    let snap = mp.snapshot();
    assert_eq!(snap[0].heads[0].waiting, 1);
    t.port_up(2).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("released")
        .unwrap();
    assert_eq!(got.unwrap(), data);
    assert_eq!(head.stats.waiting.load(Relaxed), 0);
    let longest = head.stats.longest_wait_us.load(Relaxed);
    assert!(longest >= 1_000_000, "wait observed: {longest} us");
    assert!(head.stats.requeued.load(Relaxed) >= 1);
    t.port_up(1).unwrap();
    mp.shutdown().await;
    t.shutdown().await;
}

async fn fail_when_no_controller_can_come_back(
    ctrl_loss_tmo_s: u64,
    fast_io_fail_tmo_s: Option<u64>,
) -> Duration {
    init_tracing();
    let (t, addrs) = start_target(&TargetDef::default()).await;
    let mp = Multipath::new(MpathConfig::default());
    for a in &addrs {
        let mut o = path_opts(*a, NQN);
        o.ctrl_loss_tmo_s = Some(ctrl_loss_tmo_s);
        o.fast_io_fail_tmo_s = fast_io_fail_tmo_s;
        connect(&mp, o).await;
    }
    let head = mp.head(NQN, 1).unwrap();
    head.read(0, 1).await.unwrap();
    t.port_down(1).unwrap();
    t.port_down(2).unwrap();
    let start = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(30), head.read(0, 1))
        .await
        .expect("bounded wait")
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.status.code, StatusCode::HOST_PATHING_ERROR);
    assert!(e.status.dnr);
    mp.shutdown().await;
    t.shutdown().await;
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_after_ctrl_loss_tmo() {
    let took = fail_when_no_controller_can_come_back(2, None).await;
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "failed after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_after_fast_io_fail_tmo() {
    let took = fail_when_no_controller_can_come_back(60, Some(1)).await;
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(4),
        "failed after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_timeout_bounds_the_wait() {
    init_tracing();
    let (t, addrs) = start_target(&TargetDef::default()).await;
    let cfg = MpathConfig {
        requeue: nvmp_mpath::RequeuePolicy {
            timeout: Some(Duration::from_millis(800)),
        },
        ..Default::default()
    };
    let mp = Multipath::new(cfg);
    for a in &addrs {
        connect(&mp, path_opts(*a, NQN)).await;
    }
    let head = mp.head(NQN, 1).unwrap();
    t.port_down(1).unwrap();
    t.port_down(2).unwrap();
    let start = Instant::now();
    let e = head.read(0, 1).await.unwrap_err();
    assert_eq!(e.status.code, StatusCode::HOST_PATHING_ERROR);
    assert!(start.elapsed() >= Duration::from_millis(800));
    mp.shutdown().await;
    t.shutdown().await;
}
