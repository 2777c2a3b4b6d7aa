//! Failover: path errors go to another path without copying the command;
//! DNR and other errors go back to the caller after Linux's retry rules.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use nvmp_target::{FailNext, Fault};
use nvmp_wire::log::AnaState;
use nvmp_wire::StatusCode;

fn fail_next(status: u16, count: u32, dnr: bool) -> Fault {
    Fault {
        fail_next: Some(FailNext { count, status, dnr }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_status_fails_over_to_the_other_path() {
    let (t, _a, mp, head) = setup_two_paths().await;
    let data = Bytes::from(block_pattern(3, 9, 512));
    head.write(3, data.clone(), false).await.unwrap();
    let p0 = head.paths()[0].clone();
    let p1 = head.paths()[1].clone();
    for code in [0x300u16, 0x301, 0x302, 0x303, 0x360, 0x370, 0x371] {
        // The optimized path (port 1) fails the next command with `code`.
        wait_until(
            "port 1 path optimized and usable",
            Duration::from_secs(5),
            || p0.view().is_optimized(),
        )
        .await;
        t.set_fault(1, fail_next(code, 1, false)).unwrap();
        let before = (
            head.stats.failovers.load(Relaxed),
            p1.stats.ios.load(Relaxed),
        );
        let got = head
            .read(3, 1)
            .await
            .unwrap_or_else(|e| panic!("{code:#x}: {e}"));
        assert_eq!(got, data, "{code:#x}");
        assert_eq!(
            head.stats.failovers.load(Relaxed),
            before.0 + 1,
            "{code:#x}: one failover"
        );
        assert_eq!(
            p1.stats.ios.load(Relaxed),
            before.1 + 1,
            "{code:#x}: served by the other path"
        );
        if StatusCode(code).is_ana_error() {
            // The ANA error made the path pending until its log was re-read.
            wait_until("ANA log re-read", Duration::from_secs(5), || {
                !p0.ana_pending()
            })
            .await;
        }
    }
    assert_eq!(head.stats.errors.load(Relaxed), 0);
    mp.shutdown().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnr_is_returned_to_the_caller() {
    let (t, _a, mp, head) = setup_two_paths().await;
    t.set_fault(1, fail_next(0x302, 1, true)).unwrap();
    let e = head.read(0, 1).await.unwrap_err();
    assert_eq!(e.status.code, StatusCode::ANA_INACCESSIBLE);
    assert!(e.status.dnr);
    assert_eq!(
        head.stats.failovers.load(Relaxed),
        0,
        "no failover with DNR"
    );
    mp.shutdown().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_errors_are_retried_five_times_then_returned() {
    let (t, _a, mp, head) = setup_two_paths().await;
    // Two internal errors: retried, then success.
    t.set_fault(1, fail_next(0x006, 2, false)).unwrap();
    head.read(0, 1).await.expect("retried to success");
    // Six: the sixth is returned (1 try + 5 retries).
    t.set_fault(1, fail_next(0x006, 6, false)).unwrap();
    let e = head.read(0, 1).await.unwrap_err();
    assert_eq!(e.status.code, StatusCode::INTERNAL_ERROR);
    assert_eq!(head.stats.failovers.load(Relaxed), 0);
    t.clear_faults(1).unwrap();
    mp.shutdown().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_down_and_up_under_verified_load_loses_nothing() {
    let (t, _a, mp, head) = setup_two_paths().await;
    let stop = Arc::new(AtomicBool::new(false));
    let (stats, hs) = spawn_verified_load(head.clone(), 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p0 = head.paths()[0].clone();
    let before = p0.stats.ios.load(Relaxed);
    assert!(before > 0, "the optimized path carried I/O");
    // Hold port 1's responses for 200 ms so that commands are surely in
    // flight on it when it goes down (they must fail over, not be lost).
    t.set_fault(
        1,
        Fault {
            delay_ms: Some(200),
            ..Default::default()
        },
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    t.port_down(1).unwrap();
    wait_until("port 1 controller not live", Duration::from_secs(5), || {
        !p0.view().is_usable()
    })
    .await;
    // I/O continues on port 2 (a write that was in flight on port 1 is held
    // for KATO by the write fence first, so allow for that).
    let mid = stats.ios.load(Relaxed);
    wait_until("I/O continues on port 2", Duration::from_secs(5), || {
        stats.ios.load(Relaxed) > mid + 10
    })
    .await;
    t.clear_faults(1).unwrap();
    t.port_up(1).unwrap();
    let back = wait_until("port 1 path back", Duration::from_secs(10), || {
        p0.view().is_optimized()
    })
    .await;
    eprintln!("path back {back:?} after port up");
    let after_up = p0.stats.ios.load(Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        p0.stats.ios.load(Relaxed) > after_up,
        "numa returns to the optimized path"
    );
    stop.store(true, Relaxed);
    for h in hs {
        h.await.unwrap();
    }
    assert_eq!(stats.data_errors.load(Relaxed), 0);
    assert_eq!(stats.io_errors.load(Relaxed), 0);
    assert!(head.stats.failovers.load(Relaxed) >= 1);
    mp.shutdown().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ana_flips_under_verified_load_lose_nothing() {
    let (t, _a, mp, head) = setup_two_paths().await;
    let stop = Arc::new(AtomicBool::new(false));
    let (stats, hs) = spawn_verified_load(head.clone(), 4, stop.clone());
    let states = [
        (AnaState::INACCESSIBLE, AnaState::OPTIMIZED),
        (AnaState::OPTIMIZED, AnaState::PERSISTENT_LOSS),
        (AnaState::CHANGE, AnaState::NON_OPTIMIZED),
        (AnaState::NON_OPTIMIZED, AnaState::OPTIMIZED),
        (AnaState::OPTIMIZED, AnaState::NON_OPTIMIZED),
    ];
    for (s1, s2) in states {
        t.set_ana(1, 1, s1).unwrap();
        t.set_ana(2, 1, s2).unwrap();
        let (p0, p1) = (head.paths()[0].clone(), head.paths()[1].clone());
        wait_until(
            "ANA states seen by the host",
            Duration::from_secs(5),
            || p0.ana_state() == s1 && p1.ana_state() == s2,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Relaxed);
    for h in hs {
        h.await.unwrap();
    }
    assert_eq!(stats.data_errors.load(Relaxed), 0);
    assert_eq!(stats.io_errors.load(Relaxed), 0);
    assert!(stats.ios.load(Relaxed) > 50, "load ran: {:?}", stats);
    mp.shutdown().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_on_a_black_holed_path_fails_over() {
    init_tracing();
    let (t, addrs) = start_target(&TargetDef::default()).await;
    // The I/O timeout's path (the read stall rule, which acts first by
    // default, is tested in stall.rs).
    let mp = nvmp_mpath::Multipath::new(nvmp_mpath::MpathConfig {
        read_stall: nvmp_mpath::disposition::ReadStall(None),
        ..Default::default()
    });
    for a in &addrs {
        let mut o = path_opts(*a, NQN);
        o.io_timeout_ms = 1_000;
        connect(&mp, o).await;
    }
    let head = mp.head(NQN, 1).unwrap();
    let data = Bytes::from(block_pattern(9, 3, 512));
    head.write(9, data.clone(), false).await.unwrap();
    // Port 1 keeps its TCP connections open but stops answering.
    t.set_fault(
        1,
        Fault {
            black_hole: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    let start = std::time::Instant::now();
    let got = head
        .read(9, 1)
        .await
        .expect("served by port 2 after the timeout");
    let took = start.elapsed();
    assert_eq!(got, data);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(head.stats.failovers.load(Relaxed), 1);
    assert_eq!(head.paths()[0].stats.failovers.load(Relaxed), 1);
    t.clear_faults(1).unwrap();
    mp.shutdown().await;
    t.shutdown().await;
}
