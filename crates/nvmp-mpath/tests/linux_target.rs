//! Multipath against the real Linux nvmet-tcp target (../shared/linux-peer
//! in target mode: one subsystem on two ports; NSID 1 in ANA group 1,
//! optimized on port 1 and non-optimized on port 2). One head with two
//! paths; verified I/O while port 1 is taken down and brought back and
//! while ANA states are flipped: zero data errors, zero I/O errors.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use nvmp_mpath::{MpathConfig, Multipath};
use nvmp_testkit::{skip_linux_peer, FaultProxy, LinuxPeer, PeerMode};
use nvmp_wire::log::AnaState;

const PEER_NQN: &str = "nqn.2024-01.io.example:peer";

async fn peer(p: &Arc<LinuxPeer>, args: &'static [&'static str]) {
    let p = p.clone();
    tokio::task::spawn_blocking(move || p.run(args))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_target_two_paths_failover_and_ana() {
    if skip_linux_peer("mpath linux_target") {
        return;
    }
    init_tracing();
    let p = Arc::new(
        tokio::task::spawn_blocking(|| LinuxPeer::start("nvmp-mpath-it", PeerMode::Target))
            .await
            .unwrap(),
    );
    let mp = Multipath::new(MpathConfig::default());
    // Port 1 through a fault proxy (to black-hole it below), port 2 direct.
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", p.ports[1]).parse().unwrap()).await;
    for addr in [
        proxy.addr(),
        format!("127.0.0.1:{}", p.ports[2]).parse().unwrap(),
    ] {
        let mut o = path_opts(addr, PEER_NQN);
        o.reconnect_delay_ms = 1000;
        o.io_timeout_ms = 15_000;
        o.kato_ms = 5_000;
        connect(&mp, o).await;
    }
    let subs = mp.snapshot();
    assert_eq!(subs.len(), 1, "one subsystem");
    assert_eq!(subs[0].controllers.len(), 2);
    let head = mp.head(PEER_NQN, 1).expect("head for NSID 1");
    assert_eq!(head.paths().len(), 2, "one head, two paths");
    let (p0, p1) = (head.paths()[0].clone(), head.paths()[1].clone());
    assert_eq!(p0.ana_state(), AnaState::OPTIMIZED);
    assert_eq!(p1.ana_state(), AnaState::NON_OPTIMIZED);
    // Linux 6.12's nvmet has no Cross-Controller Reset (CCRL 0): writes torn
    // down in flight fall back to the KATO (+ CQT) fence.
    let id = p0.ctrl.ctrl.id_ctrl();
    assert!(!id.supports_ccr(), "CCRL {}", id.ccrl);
    eprintln!("Linux target: CCRL {}, CQT {} ms", id.ccrl, id.cqt);
    assert_eq!(
        mp.head(PEER_NQN, 2).expect("head for NSID 2").paths().len(),
        2
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (stats, hs) = spawn_verified_load(head.clone(), 2, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Port 1 down: the optimized path goes, I/O continues on port 2.
    peer(&p, &["port-down", "1"]).await;
    wait_until("port 1 path unusable", Duration::from_secs(20), || {
        !p0.view().is_usable()
    })
    .await;
    // I/O continues on port 2 (a write in flight on port 1 is first held for
    // KATO, 5 s, by the write fence).
    let mid = stats.ios.load(Relaxed);
    wait_until("I/O continued on port 2", Duration::from_secs(12), || {
        stats.ios.load(Relaxed) > mid + 4
    })
    .await;
    peer(&p, &["port-up", "1"]).await;
    let back = wait_until("port 1 path back", Duration::from_secs(20), || {
        p0.view().is_optimized()
    })
    .await;
    eprintln!("port 1 path back {back:?} after port-up");

    // ANA flips: port 1 inaccessible, then optimized again.
    peer(&p, &["ana", "1", "1", "inaccessible"]).await;
    wait_until("port 1 inaccessible", Duration::from_secs(10), || {
        p0.ana_state() == AnaState::INACCESSIBLE
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    peer(&p, &["ana", "1", "1", "optimized"]).await;
    wait_until("port 1 optimized", Duration::from_secs(10), || {
        p0.ana_state() == AnaState::OPTIMIZED
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Port 1 goes silent under load: writes in flight there are torn down
    // when keep-alive notices (KATO) and, the Linux target having no
    // Cross-Controller Reset, held for KATO + CQT before they are resent.
    proxy.set_mode(nvmp_testkit::ProxyMode::BlackHole);
    wait_until("a write fenced", Duration::from_secs(40), || {
        head.stats.fenced.load(Relaxed) > 0
    })
    .await;
    let mid = stats.ios.load(Relaxed);
    wait_until("I/O continued on port 2", Duration::from_secs(30), || {
        stats.ios.load(Relaxed) > mid + 4
    })
    .await;
    proxy.set_mode(nvmp_testkit::ProxyMode::Pass);
    proxy.cut_all();
    wait_until("port 1 path back", Duration::from_secs(30), || {
        p0.view().is_optimized()
    })
    .await;

    stop.store(true, Relaxed);
    for h in hs {
        h.await.unwrap();
    }
    eprintln!(
        "verified load: {stats:?}, head failovers {}, writes fenced {} (by CCR {})",
        head.stats.failovers.load(Relaxed),
        head.stats.fenced.load(Relaxed),
        head.stats.fenced_by_ccr.load(Relaxed)
    );
    assert_eq!(
        head.stats.fenced_by_ccr.load(Relaxed),
        0,
        "no CCR against a target without it: the KATO fallback"
    );
    assert_eq!(stats.data_errors.load(Relaxed), 0, "data errors");
    assert_eq!(
        stats.io_errors.load(Relaxed),
        0,
        "I/O errors returned while a path was usable"
    );
    assert!(stats.ios.load(Relaxed) > 20);
    mp.shutdown().await;
}
