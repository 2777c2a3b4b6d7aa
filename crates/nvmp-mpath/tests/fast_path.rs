//! The head's fast path (a path chosen, the command queued on its
//! controller with `Controller::start`, the completion awaited in the
//! head's own future) keeps the semantics of the full submit: a command
//! given up by its caller stops being counted, a failed command is failed
//! over with its original data, a full queue is waited for, and the
//! per-path counters count what completed. In virtual time over in-memory
//! pipes, as tests/virtual_time.rs.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use nvmp_host::{Controller, ControllerOptions, IoRequest};
use nvmp_mpath::{IoPolicy, MpathConfig, Multipath, NamespaceHead};
use nvmp_target::{Fault, TargetHandle};
use nvmp_wire::io::ReadWrite;

fn mem_opts(port: u16) -> ControllerOptions {
    let mut o = ControllerOptions::new("127.0.0.1", 4420 + port, NQN);
    o.nr_io_queues = 1;
    o.queue_size = 16;
    o.kato_ms = 4_000;
    o.reconnect_delay_ms = 1_000;
    o.ctrl_loss_tmo_s = Some(60);
    o.io_timeout_ms = 10_000;
    o.queue_while_reconnecting = false;
    o
}

struct Setup {
    t: TargetHandle,
    mp: Multipath,
    head: Arc<NamespaceHead>,
    ctrls: Vec<Controller>,
}

/// Port 1 optimized (the numa policy's path), port 2 non-optimized.
async fn setup() -> Setup {
    init_tracing();
    let (t, _addrs) = start_target(&TargetDef::default()).await;
    let mp = Multipath::new(MpathConfig::default());
    let mut ctrls = Vec::new();
    for port in [1u16, 2] {
        let t2 = t.clone();
        let connector: Arc<dyn nvmp_host::Connector> =
            Arc::new(move |_addr: &str| t2.connect_memory(port, 1 << 20));
        let c = Controller::connect_with(mem_opts(port), connector)
            .await
            .expect("in-memory connect");
        mp.add_controller(c.clone()).await.expect("link");
        ctrls.push(c);
    }
    let head = mp.head(NQN, 1).expect("head");
    assert_eq!(head.paths().len(), 2);
    Setup { t, mp, head, ctrls }
}

fn block(lba: u64, gen: u64, head: &NamespaceHead) -> Bytes {
    Bytes::from(block_pattern(lba, gen, head.block_size() as usize))
}

fn read_req(head: &NamespaceHead, lba: u64) -> IoRequest {
    let sqe = ReadWrite {
        nsid: 0, // set by the head
        slba: lba,
        nlb: 0,
        fua: false,
    }
    .read_sqe();
    IoRequest::with_read(sqe, head.block_size())
}

/// The path through `ctrl` (index into `head.paths()`).
fn path_of(s: &Setup, i: usize) -> Arc<nvmp_mpath::path::Path> {
    let c = &s.ctrls[i];
    s.head
        .paths()
        .iter()
        .find(|p| p.ctrl.ctrl.cntlid() == c.cntlid())
        .cloned()
        .expect("path")
}

/// Park every I/O command on `port` for `ms` before it runs (0: off).
fn delay(s: &Setup, port: u16, ms: u64) {
    s.t.set_fault(
        port,
        Fault {
            hold_ms: Some(ms),
            ..Default::default()
        },
    )
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_head_command_given_up_by_its_caller_stops_being_counted() {
    let s = setup().await;
    s.head.write(7, block(7, 1, &s.head), false).await.unwrap();
    let p1 = path_of(&s, 0);
    let (ios, bytes) = (p1.stats.ios.load(Relaxed), p1.stats.bytes.load(Relaxed));
    let done = s.ctrls[0].stats().completed;
    delay(&s, 1, 200);
    let gone = tokio::time::timeout(
        Duration::from_millis(50),
        s.head.submit(read_req(&s.head, 7)),
    )
    .await;
    assert!(gone.is_err(), "still in flight when given up");
    assert_eq!(s.ctrls[0].outstanding(), 0, "no longer outstanding");
    assert_eq!(s.ctrls[1].outstanding(), 0);
    // Its late completion changes no counter.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.ctrls[0].stats().completed, done);
    assert_eq!(p1.stats.ios.load(Relaxed), ios);
    assert_eq!(p1.stats.bytes.load(Relaxed), bytes);
    assert_eq!(s.head.stats.errors.load(Relaxed), 0);
    // The next one completes and is counted once, on the path it took.
    delay(&s, 1, 0);
    let c = s.head.submit(read_req(&s.head, 7)).await;
    assert!(c.is_success());
    assert_eq!(c.data, block(7, 1, &s.head));
    assert_eq!(p1.stats.ios.load(Relaxed), ios + 1);
    assert_eq!(
        p1.stats.bytes.load(Relaxed),
        bytes + s.head.block_size() as u64
    );
    assert_eq!(s.ctrls[0].stats().completed, done + 1);
    s.mp.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_write_failed_on_the_fast_path_is_resent_with_its_data() {
    for policy in [IoPolicy::Numa, IoPolicy::ServiceTime] {
        let s = setup().await;
        s.mp.subsystem(NQN).unwrap().set_iopolicy(policy);
        let (p1, p2) = (path_of(&s, 0), path_of(&s, 1));
        // The optimized path fails the next command with a path status.
        fail_next_with_path_error(&s.t, 1);
        let data = block(11, 3, &s.head);
        s.head.write(11, data.clone(), false).await.unwrap();
        assert_eq!(s.head.stats.failovers.load(Relaxed), 1, "{policy}");
        assert_eq!(p1.stats.errors.load(Relaxed), 1, "{policy}");
        assert_eq!(p1.stats.ios.load(Relaxed), 0, "{policy}");
        assert_eq!(p2.stats.ios.load(Relaxed), 1, "{policy}: resent on path 2");
        assert_eq!(p2.stats.bytes.load(Relaxed), data.len() as u64);
        // What the other path wrote is the original data, read back
        // straight from each controller.
        for c in &s.ctrls {
            let r = c.read(1, 11, 1, s.head.block_size()).await;
            assert!(r.is_success());
            assert_eq!(r.data, data, "{policy}");
        }
        assert_eq!(s.ctrls[0].outstanding() + s.ctrls[1].outstanding(), 0);
        s.mp.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn more_commands_than_queue_slots_wait_for_a_slot() {
    let s = setup().await;
    for lba in 0..48u64 {
        s.head
            .write(lba, block(lba, 2, &s.head), false)
            .await
            .unwrap();
    }
    let p1 = path_of(&s, 0);
    let ios = p1.stats.ios.load(Relaxed);
    // Each command held 10 ms: 48 reads at once on a 16-slot queue.
    delay(&s, 1, 10);
    let hs: Vec<_> = (0..48u64)
        .map(|lba| {
            let h = s.head.clone();
            tokio::spawn(async move { (lba, h.submit(read_req(&h, lba)).await) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(s.ctrls[0].outstanding(), 48, "queued or waiting for a slot");
    for h in hs {
        let (lba, c) = h.await.unwrap();
        assert!(c.is_success(), "{lba}: {}", c.status);
        assert_eq!(c.data, block(lba, 2, &s.head), "{lba}");
    }
    assert_eq!(p1.stats.ios.load(Relaxed), ios + 48);
    assert_eq!(s.ctrls[0].outstanding(), 0);
    assert_eq!(s.head.stats.failovers.load(Relaxed), 0);
    s.mp.shutdown().await;
}

/// The head's service-time fast path (`latency::pick`) chooses what the
/// pure selection function chooses from full views, for every mix of ANA
/// states, pending ANA errors, latency estimates and a probe that is due;
/// where it cannot tell (no path its ANA words allow, or a winner whose
/// controller does not serve) it says so and the head asks `select`.
#[tokio::test(start_paused = true)]
async fn service_time_fast_path_agrees_with_select() {
    use nvmp_mpath::latency::{self, now_ns, PathLatency, Timing, PROBE_AFTER_NS};
    use nvmp_mpath::select::{select, PathView, Selection};
    use nvmp_wire::log::AnaState;
    let s = setup().await;
    // Far past the process-wide epoch of `now_ns` (set by its first call,
    // maybe under another test's paused clock), so that "idle long enough
    // for a probe" has a time to be measured from.
    let _ = now_ns();
    tokio::time::advance(Duration::from_secs(3600)).await;
    let paths = s.head.paths();
    let req = read_req(&s.head, 0);
    let anas = [
        (AnaState::OPTIMIZED, false),
        (AnaState::NON_OPTIMIZED, false),
        (AnaState::INACCESSIBLE, false),
        (AnaState::OPTIMIZED, true),
    ];
    // Estimates: none, 50 µs, 2 ms, and 2 ms but idle long enough for a probe.
    let lats: [&dyn Fn(&PathLatency); 4] = [
        &|_| {},
        &|l| l.record_at(now_ns(), 50_000, 0),
        &|l| l.record_at(now_ns(), 2_000_000, 0),
        &|l| l.record_at(now_ns().saturating_sub(2 * PROBE_AFTER_NS), 2_000_000, 0),
    ];
    let (mut checked, mut probes) = (0, 0);
    for (a0, a1) in anas.iter().flat_map(|a| anas.iter().map(move |b| (*a, *b))) {
        for l0 in 0..lats.len() {
            for l1 in 0..lats.len() {
                // Fresh statistics per case (a path's latency cannot be reset).
                let stats = [PathLatency::default(), PathLatency::default()];
                lats[l0](&stats[0]);
                lats[l1](&stats[1]);
                for (p, (ana, pending)) in paths.iter().zip([a0, a1]) {
                    p.set_ana_state(ana);
                    if pending {
                        p.mark_ana_pending();
                    }
                }
                // Timed (probes checked) and untimed commands.
                for timed in [true, false] {
                    let tm = if timed {
                        // (At most one period of this thread's sampler.)
                        loop {
                            let t = Timing::start(IoPolicy::ServiceTime, &req, 2);
                            if t.is_timed() {
                                break t;
                            }
                        }
                    } else {
                        Timing::untimed(&req)
                    };
                    let views: Vec<PathView> = paths
                        .iter()
                        .zip(&stats)
                        .map(|(p, l)| {
                            let mut v = p.view();
                            v.latency_ns = l.estimate_ns(tm.class());
                            v.probe = tm.probe_now_ns() != 0
                                && v.depth == 0
                                && l.due_probe(tm.probe_now_ns());
                            v
                        })
                        .collect();
                    probes += views.iter().filter(|v| v.probe).count();
                    let want = select(&views, IoPolicy::ServiceTime, None);
                    let got = latency::pick_with(&paths, &tm, |i| &stats[i]);
                    match (got, want) {
                        (Some(i), Selection::Path(j)) => assert_eq!(i, j, "{views:?}"),
                        (None, Selection::Path(_)) => panic!("fast path gave up: {views:?}"),
                        (Some(i), w) => panic!("fast path chose {i}, select {w:?}: {views:?}"),
                        (None, _) => {}
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 16 * 16 * 2);
    assert!(probes > 0, "the cases include paths due a probe");
    s.mp.shutdown().await;
}

/// service-time's run (`nvmp_mpath::run`): a ranking's winner takes the
/// thread's next commands while the ranking holds, and no longer: not past
/// the thread's next timed command, not for a command of another size
/// class, and not once the path is deeper than the run allows. (What else
/// makes a path unusable ends the run through the head:
/// `a_change_told_to_the_head_ends_service_time_runs`.)
#[tokio::test(start_paused = true)]
async fn a_service_time_run_holds_only_while_its_ranking_does() {
    use nvmp_mpath::latency::{self, now_ns, PathLatency, Timing};
    use nvmp_mpath::run::Run;
    use nvmp_wire::log::AnaState;
    let s = setup().await;
    let p0 = path_of(&s, 0);
    let paths = s.head.paths();
    let i0 = paths.iter().position(|p| Arc::ptr_eq(p, &p0)).unwrap();
    for p in paths.iter() {
        p.set_ana_state(AnaState::OPTIMIZED);
    }
    // Path i0 answers in 50 µs, the other in 400 µs.
    let stats = [PathLatency::default(), PathLatency::default()];
    stats[i0].record_at(now_ns(), 50_000, 0);
    stats[1 - i0].record_at(now_ns(), 400_000, 0);
    let req = read_req(&s.head, 0);
    let tm = Timing::untimed(&req);
    let run = Run::new();
    // The thread's count of timed commands when ranked.
    let epoch = 7;
    let start = || {
        let r = latency::rank_all(&paths, &tm, |i| &stats[i]);
        assert_eq!(r.best, i0, "the faster path wins");
        run.start(&paths, &r, &tm, epoch);
        assert!(run.is_on());
    };
    start();
    for n in 0..200 {
        assert_eq!(
            run.next(&paths, &tm, epoch),
            Some(i0),
            "command {n} of the run"
        );
    }
    // A timed command came on the thread: the run is over (the timed
    // command ranks afresh; probes are checked then).
    assert_eq!(run.next(&paths, &tm, epoch + 1), None);
    assert!(!run.is_on());
    assert_eq!(run.next(&paths, &tm, epoch), None, "the run is over");
    // So does a command of another size class (estimates are per class).
    start();
    let big = IoRequest::with_read(read_req(&s.head, 0).sqe, 128 << 10);
    assert_eq!(run.next(&paths, &Timing::untimed(&big), epoch), None);
    assert_eq!(run.next(&paths, &tm, epoch), None, "the run is over");

    // Depth: ranked at depth 0, a run may take the path one command deeper.
    // (Held 300 ms: below the 500 ms after which a queue counts as stalled.)
    start();
    delay(&s, 1, 300);
    let c0 = s.ctrls[0].clone();
    // (Straight to the controller: the NSID the head would set.)
    let direct = || {
        let mut r = read_req(&s.head, 0);
        r.sqe.nsid = s.head.nsid;
        let c = c0.clone();
        tokio::spawn(async move { c.submit(r).await })
    };
    let held: Vec<_> = (0..2).map(|_| direct()).collect();
    let _ = wait_until("both held", Duration::from_secs(5), || {
        c0.outstanding() >= 2
    })
    .await;
    assert_eq!(
        run.next(&paths, &tm, epoch),
        None,
        "two deep: past the run's limit"
    );
    for h in held {
        let c = h.await.unwrap();
        assert!(c.is_success(), "{}", c.status);
    }
    start();
    delay(&s, 1, 300);
    let one = direct();
    let _ = wait_until("held", Duration::from_secs(5), || c0.outstanding() >= 1).await;
    assert_eq!(
        run.next(&paths, &tm, epoch),
        Some(i0),
        "one deep: within the limit"
    );
    assert!(one.await.unwrap().is_success());
    delay(&s, 1, 0);
    s.mp.shutdown().await;
}

/// Both paths optimized (the head told), path 2 slower by `slow_ms`, and
/// service-time's runs settled on path 1.
async fn settled_on_path_1(s: &Setup, slow_ms: u64) {
    use nvmp_wire::log::AnaState;
    s.mp.subsystem(NQN)
        .unwrap()
        .set_iopolicy(IoPolicy::ServiceTime);
    path_of(s, 1).set_ana_state(AnaState::OPTIMIZED);
    s.head.changed();
    delay(s, 2, slow_ms);
    reads(s, 64).await;
    let p0 = path_of(s, 0);
    let before = p0.stats.ios.load(Relaxed);
    reads(s, 32).await;
    assert!(
        p0.stats.ios.load(Relaxed) >= before + 30,
        "runs on the faster path"
    );
}

async fn reads(s: &Setup, n: u64) {
    for lba in 0..n {
        let c = s.head.submit(read_req(&s.head, lba)).await;
        assert!(c.is_success(), "LBA {lba}: {}", c.status);
    }
}

/// What makes a path unusable reaches service-time's runs through the head
/// (`NamespaceHead::changed`: the registry calls it after reading an ANA
/// log, and when a controller's state or a queue's stall changes). Once
/// told, the thread's next commands leave the path: no run stays on it.
#[tokio::test(start_paused = true)]
async fn a_change_told_to_the_head_ends_service_time_runs() {
    use nvmp_wire::log::AnaState;
    let s = setup().await;
    settled_on_path_1(&s, 2).await;
    let (p0, p1) = (path_of(&s, 0), path_of(&s, 1));
    // (An ANA error pending would not stay: it has the ANA log re-read,
    // which says optimized.)
    for (what, state) in [
        ("inaccessible", AnaState::INACCESSIBLE),
        ("non-optimized", AnaState::NON_OPTIMIZED),
    ] {
        p0.set_ana_state(state);
        s.head.changed();
        let (a0, a1) = (p0.stats.ios.load(Relaxed), p1.stats.ios.load(Relaxed));
        reads(&s, 16).await;
        assert_eq!(p0.stats.ios.load(Relaxed), a0, "{what}: path 1 left");
        assert_eq!(p1.stats.ios.load(Relaxed), a1 + 16, "{what}");
        // Back, and settled on it again.
        p0.set_ana_state(AnaState::OPTIMIZED);
        s.head.changed();
        reads(&s, 64).await;
        let b0 = p0.stats.ios.load(Relaxed);
        reads(&s, 16).await;
        assert!(
            p0.stats.ios.load(Relaxed) >= b0 + 14,
            "{what}: back on path 1"
        );
    }
    assert_eq!(s.head.stats.failovers.load(Relaxed), 0);
    assert_eq!(s.head.stats.errors.load(Relaxed), 0);
    delay(&s, 2, 0);
    s.mp.shutdown().await;
}

/// A controller that leaves the live state under a service-time run: the
/// head chooses again, the other path, without a failover, an error or a
/// wait for the controller. Whichever comes first does it: the
/// controller's monitor telling the head (the run ends), or the run's next
/// command coming back not sent (the head chooses again).
#[tokio::test(start_paused = true)]
async fn a_run_on_a_controller_that_went_down_chooses_again() {
    let s = setup().await;
    settled_on_path_1(&s, 2).await;
    let p1 = path_of(&s, 1);
    s.ctrls[0].reset();
    for _ in 0..100 {
        if s.ctrls[0].state() != nvmp_host::CtrlState::Live {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_ne!(s.ctrls[0].state(), nvmp_host::CtrlState::Live);
    let a1 = p1.stats.ios.load(Relaxed);
    reads(&s, 8).await;
    assert_eq!(p1.stats.ios.load(Relaxed), a1 + 8, "served by path 2");
    assert_eq!(s.head.stats.failovers.load(Relaxed), 0);
    assert_eq!(s.head.stats.errors.load(Relaxed), 0);
    assert_eq!(s.head.stats.requeued.load(Relaxed), 0, "no wait for a path");
    delay(&s, 2, 0);
    s.mp.shutdown().await;
}
