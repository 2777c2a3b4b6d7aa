//! The multipath layer in virtual time: the real host stack and the real
//! target, connected by in-memory pipes (the host's `Connector` trait on
//! one end, `TargetHandle::connect_memory` on the other), on a paused tokio
//! clock. Keep-alive, reconnect delays, requeue limits, ANATT, the write
//! fence and failover then happen at exact, repeatable instants, in
//! milliseconds of real time, whatever the machine's load.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use nvmp_host::{Controller, ControllerOptions, CtrlState};
use nvmp_mpath::{MpathConfig, Multipath, NamespaceHead, RequeuePolicy};
use nvmp_target::{Fault, TargetHandle};
use nvmp_wire::log::AnaState;
use nvmp_wire::StatusCode;
use tokio::time::Instant;

/// Host options of one in-memory path: round numbers so that every instant
/// in these tests can be worked out by hand.
fn mem_opts(port: u16) -> ControllerOptions {
    let mut o = ControllerOptions::new("127.0.0.1", 4420 + port, NQN);
    o.nr_io_queues = 2;
    o.queue_size = 32;
    o.kato_ms = 4_000;
    o.reconnect_delay_ms = 1_000;
    o.ctrl_loss_tmo_s = Some(60);
    o.io_timeout_ms = 10_000;
    o.queue_while_reconnecting = false;
    o
}

async fn mem_path(mp: &Multipath, t: &TargetHandle, port: u16, o: ControllerOptions) -> Controller {
    let t2 = t.clone();
    let connector: Arc<dyn nvmp_host::Connector> =
        Arc::new(move |_addr: &str| t2.connect_memory(port, 1 << 20));
    let c = Controller::connect_with(o, connector)
        .await
        .expect("in-memory connect");
    mp.add_controller(c.clone()).await.expect("link");
    c
}

struct Setup {
    t: TargetHandle,
    mp: Multipath,
    head: Arc<NamespaceHead>,
    ctrls: Vec<Controller>,
}

async fn setup(d: &TargetDef<'_>, cfg: MpathConfig) -> Setup {
    setup_with(d, cfg, |_| {}).await
}

async fn setup_with(
    d: &TargetDef<'_>,
    cfg: MpathConfig,
    tune: impl Fn(&mut ControllerOptions),
) -> Setup {
    init_tracing();
    let (t, _addrs) = start_target(d).await;
    let mp = Multipath::new(cfg);
    let mut ctrls = Vec::new();
    for port in [1u16, 2] {
        let mut o = mem_opts(port);
        tune(&mut o);
        ctrls.push(mem_path(&mp, &t, port, o).await);
    }
    let head = mp.head(NQN, 1).expect("head");
    assert_eq!(head.paths().len(), 2);
    Setup { t, mp, head, ctrls }
}

fn block(lba: u64, gen: u64, head: &NamespaceHead) -> Bytes {
    Bytes::from(block_pattern(lba, gen, head.block_size() as usize))
}

#[tokio::test(start_paused = true)]
async fn a_path_error_fails_over_at_once() {
    let s = setup(&TargetDef::default(), MpathConfig::default()).await;
    s.head.write(3, block(3, 1, &s.head), false).await.unwrap();
    // The optimized path (port 1) fails the next command with a path status.
    fail_next_with_path_error(&s.t, 1);
    let t0 = Instant::now();
    let got = s.head.read(3, 1).await.unwrap();
    let took = t0.elapsed();
    eprintln!("failover took {took:?}");
    assert_eq!(got, block(3, 1, &s.head));
    assert_eq!(took, Duration::ZERO, "no wait: the other path is live");
    assert_eq!(s.head.stats.failovers.load(Relaxed), 1);
    s.mp.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn requeued_until_a_controller_reconnects() {
    let s = setup(&TargetDef::default(), MpathConfig::default()).await;
    s.head.write(5, block(5, 1, &s.head), false).await.unwrap();
    let t0 = Instant::now();
    s.t.port_down(1).unwrap();
    s.t.port_down(2).unwrap();
    let h = s.head.clone();
    let pending = tokio::spawn(async move { h.read(5, 1).await });
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        !pending.is_finished(),
        "waits while the controllers reconnect"
    );
    assert_eq!(s.head.stats.waiting.load(Relaxed), 1);
    s.t.port_up(2).unwrap();
    let got = pending.await.unwrap().unwrap();
    let took = t0.elapsed();
    eprintln!("requeued read done after {took:?}");
    assert_eq!(got, block(5, 1, &s.head));
    // Reconnect attempts every reconnect_delay (1 s) from the loss at t0:
    // the first after port 2 came back (2.5 s) is at 3 s.
    assert_eq!(took, Duration::from_secs(3));
    s.mp.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn requeue_limit_fails_commands_at_the_limit() {
    let cfg = MpathConfig {
        requeue: RequeuePolicy {
            timeout: Some(Duration::from_secs(2)),
        },
        ..Default::default()
    };
    let s = setup(&TargetDef::default(), cfg).await;
    s.t.port_down(1).unwrap();
    s.t.port_down(2).unwrap();
    let t0 = Instant::now();
    let e = s.head.read(0, 1).await.unwrap_err();
    let took = t0.elapsed();
    eprintln!("requeue limit: failed after {took:?}");
    assert_eq!(e.status.code, StatusCode::HOST_PATHING_ERROR);
    assert_eq!(took, Duration::from_secs(2));
    s.mp.shutdown().await;
}

/// Black-hole port 1, start a write there, and return when the controller
/// of port 1 leaves live (the host's keep-alive notices) with the write's
/// task.
async fn write_into_black_hole(
    s: &Setup,
    t0: Instant,
) -> (
    Duration,
    Bytes,
    tokio::task::JoinHandle<Result<(), nvmp_mpath::IoError>>,
) {
    s.t.set_fault(
        1,
        Fault {
            black_hole: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    let mut states = s.ctrls[0].watch_state();
    let h = s.head.clone();
    let data = block(9, 2, &s.head);
    let d2 = data.clone();
    let w = tokio::spawn(async move { h.write(9, d2, false).await });
    let reset_at = loop {
        states.changed().await.unwrap();
        if *states.borrow() != CtrlState::Live {
            break t0.elapsed();
        }
    };
    (reset_at, data, w)
}

#[tokio::test(start_paused = true)]
async fn a_write_torn_down_in_flight_is_resent_after_cross_controller_reset() {
    // The host gives up on the write after its I/O timeout (1 s), long
    // before the target's keep-alive timeout (4 s) would end the old
    // controller: only a Cross-Controller Reset makes resending safe then.
    // (Without the stall rule, which would act first at 500 ms.)
    let cfg = MpathConfig {
        read_stall: nvmp_mpath::disposition::ReadStall(None),
        ..Default::default()
    };
    let s = setup_with(&TargetDef::default(), cfg, |o| {
        o.io_timeout_ms = 1_000;
    })
    .await;
    assert!(
        s.ctrls[1].id_ctrl().supports_ccr(),
        "nvmp's target offers CCR"
    );
    let t0 = Instant::now();
    let (reset_at, data, w) = write_into_black_hole(&s, t0).await;
    w.await.unwrap().unwrap();
    let took = t0.elapsed();
    eprintln!("controller reset at {reset_at:?}, write done at {took:?}");
    assert_eq!(
        reset_at,
        Duration::from_millis(1_000),
        "the write timed out"
    );
    assert_eq!(s.head.stats.fenced.load(Relaxed), 1);
    assert_eq!(s.head.stats.fenced_by_ccr.load(Relaxed), 1);
    // Resent at once (the fallback would have held it KATO + CQT = 5 s).
    assert_eq!(took, reset_at);
    s.t.clear_faults(1).unwrap();
    assert_eq!(s.head.read(9, 1).await.unwrap(), data);
    s.mp.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_write_on_a_silent_path_is_resent_after_the_stall_bound() {
    // Neither the I/O timeout (60 s) nor keep-alive (4 s) notices first: the
    // queue completes nothing for the read stall bound (500 ms) with the
    // write outstanding, the monitor has the other controller reset this
    // one (CCR), the write is torn down and resent at once.
    let s = setup_with(&TargetDef::default(), MpathConfig::default(), |o| {
        o.io_timeout_ms = 60_000;
    })
    .await;
    let t0 = Instant::now();
    let (reset_at, data, w) = write_into_black_hole(&s, t0).await;
    w.await.unwrap().unwrap();
    let took = t0.elapsed();
    eprintln!("controller reset at {reset_at:?}, write done at {took:?}");
    assert_eq!(reset_at, Duration::from_millis(500), "the stall bound");
    assert_eq!(took, reset_at);
    assert_eq!(s.head.stats.fenced.load(Relaxed), 1);
    assert_eq!(s.head.stats.fenced_by_ccr.load(Relaxed), 1);
    s.t.clear_faults(1).unwrap();
    assert_eq!(s.head.read(9, 1).await.unwrap(), data);
    s.mp.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_reconnected_controller_is_fenced_by_its_new_identity() {
    // After a reset the controller comes back as a new instance (another
    // CNTLID, CIU, CIRN): a second silent spell must reset that one, not
    // name the old instance (which the target would answer as gone).
    let s = setup_with(&TargetDef::default(), MpathConfig::default(), |o| {
        o.io_timeout_ms = 60_000;
    })
    .await;
    let first = s.ctrls[0].cntlid();
    for round in 0..2 {
        let t0 = Instant::now();
        let (reset_at, data, w) = write_into_black_hole(&s, t0).await;
        w.await.unwrap().unwrap();
        assert_eq!(reset_at, Duration::from_millis(500), "round {round}");
        assert_eq!(t0.elapsed(), reset_at, "round {round}");
        s.t.clear_faults(1).unwrap();
        assert_eq!(s.head.read(9, 1).await.unwrap(), data);
        while !s.head.paths()[0].view().is_usable() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_ne!(s.ctrls[0].cntlid(), first, "a new controller instance");
    assert_eq!(s.head.stats.fenced_by_ccr.load(Relaxed), 2);
    s.mp.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn without_a_live_controller_to_reset_it_a_write_waits_kato_plus_cqt() {
    let s = setup(
        &TargetDef {
            extra_attr: r#""nvmp_cqt_ms": "250""#,
            ..Default::default()
        },
        MpathConfig::default(),
    )
    .await;
    assert_eq!(s.ctrls[0].id_ctrl().cqt, 250);
    let t0 = Instant::now();
    // Port 2 is down until 5.5 s: its controller reconnects at 6 s, after
    // the write's loss at 4 s, so no live controller can reset port 1's.
    s.t.port_down(2).unwrap();
    let t = s.t.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        t.port_up(2).unwrap();
    });
    let (reset_at, data, w) = write_into_black_hole(&s, t0).await;
    w.await.unwrap().unwrap();
    let took = t0.elapsed();
    eprintln!("controller reset at {reset_at:?}, write done at {took:?}");
    assert_eq!(reset_at, Duration::from_millis(4_000));
    assert_eq!(s.head.stats.fenced.load(Relaxed), 1);
    assert_eq!(s.head.stats.fenced_by_ccr.load(Relaxed), 0);
    // Held for KATO (4 s) + CQT (250 ms) from the loss.
    assert_eq!(took - reset_at, Duration::from_millis(4_250));
    s.t.clear_faults(1).unwrap();
    assert_eq!(s.head.read(9, 1).await.unwrap(), data);
    s.mp.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn anatt_expiry_resets_the_controller() {
    let s = setup(
        &TargetDef {
            extra_attr: r#""nvmp_anatt": "1""#,
            ..Default::default()
        },
        MpathConfig::default(),
    )
    .await;
    let p0 = s.head.paths()[0].clone();
    let mut states = s.ctrls[0].watch_state();
    let t0 = Instant::now();
    s.t.set_ana(1, 1, AnaState::CHANGE).unwrap();
    let reset = loop {
        states.changed().await.unwrap();
        if matches!(
            *states.borrow(),
            CtrlState::Resetting | CtrlState::Connecting
        ) {
            break t0.elapsed();
        }
    };
    eprintln!("ANATT reset after {reset:?}");
    assert_eq!(reset, Duration::from_secs(2), "2 x ANATT (1 s)");
    s.t.set_ana(1, 1, AnaState::OPTIMIZED).unwrap();
    while !p0.view().is_optimized() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.mp.shutdown().await;
}
