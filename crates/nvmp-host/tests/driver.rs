//! Driver-level tests in virtual time: the real host code against a
//! scripted fake controller over in-memory streams.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::fake::{self, connect, read, write, Fake};
use nvmp_host::{Completion, Controller, ControllerOptions, CtrlEvent, CtrlState, HostError};
use nvmp_wire::StatusCode;
use tokio::time::Instant;

fn opts() -> ControllerOptions {
    let mut o = ControllerOptions::new("fake", 4420, "nqn.2024-01.io.example:fake");
    o.host = nvmp_host::HostIdentity::from_uuid([9; 16]);
    o.nr_io_queues = 2;
    o.queue_size = 32;
    o.kato_ms = 2000;
    o.reconnect_delay_ms = 1000;
    o.ctrl_loss_tmo_s = Some(10);
    o
}

fn pattern(seed: u8, n: usize) -> Bytes {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<_>>()
        .into()
}

async fn wait_state(c: &Controller, s: CtrlState, within: Duration) {
    let mut rx = c.watch_state();
    tokio::time::timeout(within, rx.wait_for(|x| *x == s))
        .await
        .unwrap_or_else(|_| panic!("not {s} within {within:?} (is {})", c.state()))
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn connect_identify_write_read() {
    let f = Fake::new();
    let c = connect(&f, opts()).await;
    assert_eq!(c.state(), CtrlState::Live);
    assert_eq!(c.id_ctrl().sn, "FAKE0001");
    assert_eq!(c.io_queues(), 2);
    assert_eq!(c.cntlid(), 1);
    assert!(c.name().starts_with("ctrl-1@"));
    assert_eq!(c.max_transfer(), 4096 << 5);
    let ns = c.identify_namespace(1).await.unwrap();
    assert_eq!(ns.nsze, fake::NS_BLOCKS);
    // In-capsule (4 KiB) and R2T (100 KiB: several R2Ts, split at MAXH2CDATA).
    let small = pattern(1, 4096);
    let big = pattern(2, 100 * 1024);
    assert!(c.submit(write(0, small.clone())).await.is_success());
    assert!(c.submit(write(8, big.clone())).await.is_success());
    let r = c.submit(read(0, 8)).await;
    assert!(r.is_success());
    assert_eq!(r.data, small);
    let r = c.submit(read(8, 200)).await;
    assert_eq!(r.data, big);
    let s = c.stats();
    assert_eq!(s.completed, 4);
    assert_eq!(s.bytes_written, (4096 + 100 * 1024) as u64);
    assert_eq!(s.outstanding, 0);
    // Larger than MDTS: refused with a status, not sent.
    let r = c.submit(read(0, 1024)).await;
    assert_eq!(r.status.code, StatusCode::INVALID_FIELD);
    assert!(r.status.dnr);
    c.disconnect().await;
    assert_eq!(c.state(), CtrlState::Dead);
    let r = c.submit(read(0, 1)).await;
    assert_eq!(r.status.code, StatusCode::HOST_PATHING_ERROR);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_every_half_kato_stays_live() {
    let f = Fake::new();
    let c = connect(&f, opts()).await;
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    // KATO 2 s: one Keep Alive per second.
    let n = f.keepalives.load(Ordering::SeqCst);
    assert!((9..=11).contains(&n), "{n} keep-alives in 10.5 s");
    assert_eq!(c.stats().resets, 0);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_expiry_resets_and_reconnects() {
    let f = Fake::new();
    let c = connect(&f, opts()).await;
    let mut ev = c.events();
    f.knobs.drop_keepalive.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let reason = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(CtrlEvent::Reset { reason }) = ev.recv().await {
                return reason;
            }
        }
    })
    .await
    .expect("reset within 5 s");
    // First unanswered Keep Alive at 1 s, dead at 1 s + KATO (+ the 100 ms tick).
    let dt = t0.elapsed();
    assert!(
        dt >= Duration::from_secs(3) && dt <= Duration::from_millis(3200),
        "{dt:?}"
    );
    assert!(
        reason.contains("timed out") && reason.contains("0x18"),
        "{reason}"
    );
    f.knobs.drop_keepalive.store(false, Ordering::SeqCst);
    wait_state(&c, CtrlState::Live, Duration::from_secs(3)).await;
    assert_eq!(f.admin_connects.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn io_timeout_resets_and_completes_with_0x371() {
    let f = Fake::new();
    let mut o = opts();
    o.io_timeout_ms = 5000;
    let c = connect(&f, o).await;
    f.knobs.hold_io.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let (a, b) = tokio::join!(c.submit(read(0, 1)), c.submit(read(1, 1)));
    assert_eq!(a.status.code, StatusCode::ABORTED_BY_HOST);
    assert_eq!(b.status.code, StatusCode::ABORTED_BY_HOST);
    assert!(t0.elapsed() >= Duration::from_secs(5) && t0.elapsed() < Duration::from_secs(6));
    assert_ne!(c.state(), CtrlState::Live);
    f.knobs.hold_io.store(false, Ordering::SeqCst);
    wait_state(&c, CtrlState::Live, Duration::from_secs(3)).await;
    assert!(c.submit(read(0, 1)).await.is_success());
    assert_eq!(c.stats().resets, 1);
}

#[tokio::test(start_paused = true)]
async fn reconnect_backoff_until_ctrl_loss_tmo_then_dead() {
    let f = Fake::new();
    let c = connect(&f, opts()).await; // delay 1 s, ctrl_loss_tmo 10 s
    let mut ev = c.events();
    f.knobs.refuse_connections.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    f.kill.notify_waiters();
    wait_state(&c, CtrlState::Dead, Duration::from_secs(30)).await;
    let dt = t0.elapsed();
    assert!(
        dt >= Duration::from_secs(10) && dt < Duration::from_secs(11),
        "{dt:?}"
    );
    let mut attempts = vec![];
    let mut deleted = None;
    while let Ok(e) = ev.try_recv() {
        match e {
            CtrlEvent::ReconnectFailed { attempt, .. } => attempts.push(attempt),
            CtrlEvent::Deleted { reason, status } => deleted = Some((reason, status)),
            _ => {}
        }
    }
    assert_eq!(attempts, (1..=10).collect::<Vec<_>>());
    let (reason, status) = deleted.unwrap();
    assert!(reason.contains("ctrl_loss_tmo"), "{reason}");
    assert!(status.is_none());
    assert_eq!(
        c.submit(read(0, 1)).await.status.code,
        StatusCode::HOST_PATHING_ERROR
    );
}

#[tokio::test(start_paused = true)]
async fn commands_wait_while_reconnecting_then_run() {
    let f = Fake::new();
    let c = connect(&f, opts()).await;
    f.knobs.refuse_connections.store(true, Ordering::SeqCst);
    f.kill.notify_waiters();
    wait_state(&c, CtrlState::Connecting, Duration::from_secs(1)).await;
    let c2 = c.clone();
    let h = tokio::spawn(async move { c2.submit(read(0, 1)).await });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!h.is_finished());
    assert_eq!(c.outstanding(), 1);
    f.knobs.refuse_connections.store(false, Ordering::SeqCst);
    let done = h.await.unwrap();
    assert!(done.is_success(), "{:?}", done.status);
    assert_eq!(c.state(), CtrlState::Live);
}

#[tokio::test(start_paused = true)]
async fn fast_io_fail_fails_queued_commands() {
    let f = Fake::new();
    let mut o = opts();
    o.ctrl_loss_tmo_s = None; // forever
    o.fast_io_fail_tmo_s = Some(3);
    let c = connect(&f, o).await;
    f.knobs.refuse_connections.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    f.kill.notify_waiters();
    wait_state(&c, CtrlState::Connecting, Duration::from_secs(1)).await;
    let r: Completion = c.submit(read(0, 1)).await;
    assert_eq!(r.status.code, StatusCode::HOST_PATHING_ERROR);
    let dt = t0.elapsed();
    assert!(
        dt >= Duration::from_secs(3) && dt < Duration::from_millis(3100),
        "{dt:?}"
    );
    // New commands fail at once while still reconnecting.
    let t1 = Instant::now();
    assert_eq!(
        c.submit(read(0, 1)).await.status.code,
        StatusCode::HOST_PATHING_ERROR
    );
    assert_eq!(t1.elapsed(), Duration::ZERO);
    assert_eq!(c.state(), CtrlState::Connecting);
    // Back: commands run again.
    f.knobs.refuse_connections.store(false, Ordering::SeqCst);
    wait_state(&c, CtrlState::Live, Duration::from_secs(2)).await;
    assert!(c.submit(read(0, 1)).await.is_success());
}

#[tokio::test(start_paused = true)]
async fn multipath_mode_fails_fast_with_0x370() {
    let f = Fake::new();
    let mut o = opts();
    o.queue_while_reconnecting = false;
    let c = connect(&f, o).await;
    f.knobs.refuse_connections.store(true, Ordering::SeqCst);
    f.kill.notify_waiters();
    wait_state(&c, CtrlState::Connecting, Duration::from_secs(1)).await;
    let r = c.submit(read(0, 1)).await;
    assert_eq!(r.status.code, StatusCode::HOST_PATHING_ERROR);
    assert!(r.status.is_path_error() && !r.status.dnr);
}

#[tokio::test(start_paused = true)]
async fn connect_rejected_with_dnr_is_not_retried() {
    let f = Fake::new();
    f.knobs.reject_connect_dnr.store(true, Ordering::SeqCst);
    let e = Controller::connect_with(opts(), f.connector())
        .await
        .unwrap_err();
    match e {
        HostError::ConnectRejected { status } => {
            assert_eq!(status.code, StatusCode::CONNECT_INVALID_HOST);
            assert!(status.dnr);
        }
        e => panic!("{e}"),
    }
    // Lost later: one attempt, rejected with DNR → deleted at once.
    f.knobs.reject_connect_dnr.store(false, Ordering::SeqCst);
    let c = connect(&f, opts()).await;
    let before = f.connects.load(Ordering::SeqCst);
    f.knobs.reject_connect_dnr.store(true, Ordering::SeqCst);
    f.kill.notify_waiters();
    wait_state(&c, CtrlState::Dead, Duration::from_secs(3)).await;
    assert_eq!(f.connects.load(Ordering::SeqCst), before + 1);
    assert!(c.dead_status().unwrap().dnr);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(f.connects.load(Ordering::SeqCst), before + 1, "no retry");
}

#[tokio::test(start_paused = true)]
async fn connect_busy_without_dnr_is_retried() {
    let f = Fake::new();
    let c = connect(&f, opts()).await;
    f.knobs.reject_connect_busy.store(true, Ordering::SeqCst);
    f.kill.notify_waiters();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(c.state(), CtrlState::Connecting);
    f.knobs.reject_connect_busy.store(false, Ordering::SeqCst);
    wait_state(&c, CtrlState::Live, Duration::from_secs(2)).await;
}

#[tokio::test(start_paused = true)]
async fn aer_mid_io_is_reported_and_reposted() {
    let f = Fake::new();
    let c = connect(&f, opts()).await;
    let mut ev = c.events();
    let c2 = c.clone();
    let io = tokio::spawn(async move {
        for i in 0..200u64 {
            assert!(c2.submit(read(i % 64, 8)).await.is_success());
        }
    });
    for _ in 0..2 {
        tokio::task::yield_now().await;
        f.post_aen(fake::ana_event());
        let got = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                if let Ok(CtrlEvent::AsyncEvent(e)) = ev.recv().await {
                    return e;
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(got, fake::ana_event());
    }
    io.await.unwrap();
    // The ANA log can be read on the event.
    let log = c.ana_log(false).await;
    assert!(log.is_ok() || matches!(log, Err(HostError::Malformed(_))));
}

#[tokio::test(start_paused = true)]
async fn out_of_order_completions() {
    let f = Fake::new();
    let mut o = opts();
    o.nr_io_queues = 1;
    let c = connect(&f, o).await;
    for i in 0..4u64 {
        assert!(c
            .submit(write(i * 8, pattern(i as u8, 4096)))
            .await
            .is_success());
    }
    f.knobs.reverse_completions.store(true, Ordering::SeqCst);
    let rs = futures_join4(&c).await;
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r.data, pattern(i as u8, 4096), "read {i}");
    }
}

/// A command whose submitter goes away while it is in flight frees its
/// slot when its completion arrives, and that completion (data) never
/// reaches a later command, however often slots are reused.
#[tokio::test(start_paused = true)]
async fn cancelled_commands_release_their_slots() {
    let f = Fake::new();
    let mut o = opts();
    o.nr_io_queues = 1;
    o.queue_size = 16;
    let c = connect(&f, o).await;
    for i in 0..64u64 {
        assert!(c
            .submit(write(i * 8, pattern(i as u8, 4096)))
            .await
            .is_success());
    }
    // The fake holds reads until it has four, then answers them in
    // reverse: the cancelled (first) one completes last.
    f.knobs.reverse_completions.store(true, Ordering::SeqCst);
    for round in 0..48u64 {
        let b = (round % 16) * 4;
        let gone = tokio::time::timeout(Duration::from_millis(1), c.submit(read(b * 8, 8))).await;
        assert!(gone.is_err(), "round {round}: held by the fake");
        let (x, y, z) = tokio::join!(
            c.submit(read((b + 1) * 8, 8)),
            c.submit(read((b + 2) * 8, 8)),
            c.submit(read((b + 3) * 8, 8))
        );
        assert_eq!(x.data, pattern((b + 1) as u8, 4096), "round {round}");
        assert_eq!(y.data, pattern((b + 2) as u8, 4096), "round {round}");
        assert_eq!(z.data, pattern((b + 3) as u8, 4096), "round {round}");
    }
    assert_eq!(c.stats().resets, 0);
    assert_eq!(
        c.outstanding(),
        0,
        "cancelled commands are not counted as outstanding"
    );
    // Three times the queue depth was cancelled: every slot is free again.
    f.knobs.hold_io.store(true, Ordering::SeqCst);
    let before = f.io_cmds.load(Ordering::SeqCst);
    let hs: Vec<_> = (0..16u64)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.submit(read(i * 8, 8)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        f.io_cmds.load(Ordering::SeqCst) - before,
        16,
        "queue_size commands in flight at once"
    );
    c.disconnect().await;
    for h in hs {
        assert_eq!(h.await.unwrap().status.code, StatusCode::ABORTED_BY_HOST);
    }
}

/// A command cancelled while held by the controller and then torn down
/// (disconnect) frees its slot; the others complete with a path error.
#[tokio::test(start_paused = true)]
async fn cancelled_command_is_released_at_teardown() {
    let f = Fake::new();
    let mut o = opts();
    o.nr_io_queues = 1;
    o.queue_size = 16;
    o.io_timeout_ms = 60_000;
    let c = connect(&f, o).await;
    f.knobs.hold_io.store(true, Ordering::SeqCst);
    let gone = tokio::time::timeout(Duration::from_millis(1), c.submit(read(0, 1))).await;
    assert!(gone.is_err());
    let c2 = c.clone();
    let h = tokio::spawn(async move { c2.submit(read(1, 1)).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(f.io_cmds.load(Ordering::SeqCst), 2);
    c.disconnect().await;
    assert_eq!(h.await.unwrap().status.code, StatusCode::ABORTED_BY_HOST);
}

async fn futures_join4(c: &Controller) -> [Completion; 4] {
    let (a, b, d, e) = tokio::join!(
        c.submit(read(0, 8)),
        c.submit(read(8, 8)),
        c.submit(read(16, 8)),
        c.submit(read(24, 8))
    );
    [a, b, d, e]
}

/// A fatal fault from the controller, switched on by `knob`: the read in
/// flight completes with 0x371, an H2CTermReq with `fes` goes out, and once
/// the fault is off the controller comes back live.
async fn fatal_fault_resets(
    knob: fn(&fake::Knobs) -> &AtomicBool,
    fes: u32,
    what: &str,
) -> (Arc<Fake>, Controller) {
    let f = Fake::new();
    let c = connect(&f, opts()).await;
    knob(&f.knobs).store(true, Ordering::SeqCst);
    let r = c.submit(read(0, 1)).await;
    assert_eq!(r.status.code, StatusCode::ABORTED_BY_HOST);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        f.termreqs.load(Ordering::SeqCst),
        1,
        "an H2CTermReq was sent"
    );
    assert_eq!(f.last_fes.load(Ordering::SeqCst), fes, "FES: {what}");
    knob(&f.knobs).store(false, Ordering::SeqCst);
    wait_state(&c, CtrlState::Live, Duration::from_secs(3)).await;
    (f, c)
}

#[tokio::test(start_paused = true)]
async fn garbage_from_the_controller_resets_with_path_status() {
    let (_f, c) = fatal_fault_resets(|k| &k.garbage_on_read, 1, "invalid header field").await;
    assert_eq!(c.stats().resets, 1);
}

#[tokio::test(start_paused = true)]
async fn c2h_data_out_of_range_resets() {
    fatal_fault_resets(|k| &k.c2h_out_of_range, 4, "data transfer out of range").await;
}

#[tokio::test(start_paused = true)]
async fn backpressure_at_queue_depth() {
    let f = Fake::new();
    let mut o = opts();
    o.nr_io_queues = 1;
    o.queue_size = 16;
    o.io_timeout_ms = 60_000;
    let c = connect(&f, o).await;
    f.knobs.hold_io.store(true, Ordering::SeqCst);
    let mut hs = vec![];
    for i in 0..20 {
        let c = c.clone();
        hs.push(tokio::spawn(async move { c.submit(read(i, 1)).await }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        f.io_cmds.load(Ordering::SeqCst),
        16,
        "at most queue_size in flight"
    );
    assert_eq!(c.outstanding(), 20);
    c.disconnect().await;
    for h in hs {
        assert!(h.await.unwrap().status.is_path_error());
    }
}

#[tokio::test(start_paused = true)]
async fn header_and_data_digests() {
    let f = Fake::new();
    let mut o = opts();
    o.hdr_digest = true;
    o.data_digest = true;
    let c = connect(&f, o).await;
    let big = pattern(5, 100 * 1024);
    assert!(c.submit(write(16, big.clone())).await.is_success());
    assert!(c.submit(write(0, pattern(6, 4096))).await.is_success());
    assert_eq!(c.submit(read(16, 200)).await.data, big);
    assert_eq!(c.submit(read(0, 8)).await.data, pattern(6, 4096));
}

#[tokio::test(start_paused = true)]
async fn discovery_rereads_when_genctr_changes() {
    use nvmp_wire::log::DiscoveryEntry;
    let f = Fake::new();
    {
        let mut d = f.disc.lock().unwrap();
        for (i, port) in ["4420", "4421"].into_iter().enumerate() {
            d.entries.push(DiscoveryEntry {
                trtype: 3,
                adrfam: 1,
                subtype: 2,
                treq: 0,
                portid: i as u16 + 1,
                cntlid: 0xFFFF,
                asqsz: 32,
                eflags: 0,
                trsvcid: port.into(),
                subnqn: "nqn.2024-01.io.example:fake".into(),
                traddr: "10.0.0.1".into(),
                tsas: [0; 256],
            });
        }
        d.numrec = 2;
    }
    f.bump_genctr_once.store(true, Ordering::SeqCst);
    let mut o = nvmp_host::discovery_options("fake", 8009);
    o.host = nvmp_host::HostIdentity::from_uuid([9; 16]);
    let e = nvmp_host::discover_with(o, f.connector()).await.unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!(e[1].trsvcid, "4421");
    // header, (entries, header: changed) , header, entries, header
    assert_eq!(f.disc_header_reads.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn persistent_discovery_reports_log_changes() {
    use nvmp_wire::admin::{AsyncEvent, LogPageId, NOTICE_DISCOVERY_LOG_CHANGE};
    let f = Fake::new();
    let mut o = nvmp_host::discovery_options("fake", 8009);
    o.host = nvmp_host::HostIdentity::from_uuid([9; 16]);
    let d = nvmp_host::PersistentDiscovery::connect_with(o, f.connector())
        .await
        .unwrap();
    assert_eq!(d.controller().options().kato_ms, 30_000);
    let mut ev = d.controller().events();
    assert!(d.log().await.unwrap().entries.is_empty());
    f.post_aen(AsyncEvent::notice(
        NOTICE_DISCOVERY_LOG_CHANGE,
        LogPageId::DISCOVERY,
    ));
    tokio::time::timeout(Duration::from_secs(20), d.changed(&mut ev))
        .await
        .unwrap()
        .unwrap();
    d.disconnect().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_deletes_the_controller() {
    let f = Fake::new();
    let c = connect(&f, opts()).await;
    let mut st = c.watch_state();
    let c2 = c.clone();
    drop(c);
    tokio::task::yield_now().await;
    assert_eq!(
        *st.borrow_and_update(),
        CtrlState::Live,
        "a clone still holds it"
    );
    drop(c2);
    tokio::time::timeout(
        Duration::from_secs(5),
        st.wait_for(|s| *s == CtrlState::Dead),
    )
    .await
    .unwrap()
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn timeout_fires_while_the_writer_is_blocked() {
    // A peer that stops reading: the host's writes block once the pipe is
    // full; the command timeout must still fire and reset the controller.
    let f = Fake::new();
    f.knobs.pipe_size.store(16 * 1024, Ordering::SeqCst);
    let mut o = opts();
    o.nr_io_queues = 1;
    o.io_timeout_ms = 2000;
    o.kato_ms = 0;
    let c = connect(&f, o).await;
    f.knobs.black_hole.store(true, Ordering::SeqCst);
    // Let the fake notice (its read completes on the next PDU).
    let _ = c.submit(read(0, 1)).await;
    let t0 = Instant::now();
    let mut hs = vec![];
    for i in 0..16u64 {
        let c = c.clone();
        hs.push(tokio::spawn(async move {
            c.submit(write(i * 16, pattern(1, 8192))).await
        }));
    }
    for h in hs {
        let r = h.await.unwrap();
        assert!(r.status.is_path_error(), "{}", r.status);
    }
    assert!(
        t0.elapsed() <= Duration::from_millis(2300),
        "{:?}",
        t0.elapsed()
    );
    assert_ne!(c.state(), CtrlState::Live);
    f.knobs.black_hole.store(false, Ordering::SeqCst);
    f.kill.notify_waiters();
    wait_state(&c, CtrlState::Live, Duration::from_secs(3)).await;
}
