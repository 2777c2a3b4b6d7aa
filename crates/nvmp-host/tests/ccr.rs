//! Cross-Controller Reset end to end (issue 10 item 5): nvmp's host and
//! nvmp's target over real loopback TCP, two controllers of one subsystem.
//! Controller A has a write in flight that the target holds (the hold
//! fault parks I/O before it runs, as a command stuck in the network);
//! controller B resets A; once the reset completed, A's write never lands
//! (read back through B) while B's writes do. Without the reset the same
//! held write does land (the control). A wrong CIU or CIRN resets nothing.
//! With A's write inside a (slow) backend the reset completes later, through
//! B's CCR log page and the notice.

use std::time::{Duration, Instant};

use bytes::Bytes;
use nvmp_host::ctrl::ccr::{CcrStatus, CcrWait, NOTICE_CCR_COMPLETED};
use nvmp_host::{Controller, ControllerOptions, CtrlEvent, CtrlState};
use nvmp_target::{Fault, TargetConfig, TargetHandle};
use nvmp_testkit::free_port;

const SUB: &str = "nqn.2024-01.io.nvmp:ccr-it";
const HOLD: Duration = Duration::from_millis(1500);

fn config(p1: u16, p2: u16) -> String {
    config_with(p1, p2, r#"{"size": "4M"}"#)
}

fn config_with(p1: u16, p2: u16, device: &str) -> String {
    let port = |id: u16, p: u16| {
        format!(
            r#"{{"portid": {id}, "addr": {{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "{p}"}},
      "ana_groups": [{{"grpid": 1, "ana": {{"state": "optimized"}}}}], "subsystems": ["{SUB}"]}}"#
        )
    };
    format!(
        r#"{{"hosts": [], "ports": [{}, {}],
  "subsystems": [{{"nqn": "{SUB}", "attr": {{"allow_any_host": "1", "serial": "CCR0001"}},
      "namespaces": [{{"nsid": 1, "enable": 1, "ana_grpid": 1, "device": {device}}}]}}]}}"#,
        port(1, p1),
        port(2, p2)
    )
}

struct Setup {
    t: TargetHandle,
    a: Controller,
    b: Controller,
    bs: u32,
}

async fn setup() -> Setup {
    setup_with(None).await
}

/// A and B; the namespace in RAM, or in the file `path`.
async fn setup_with(path: Option<&std::path::Path>) -> Setup {
    let (p1, p2) = (free_port(), free_port());
    let cfg = match path {
        None => config(p1, p2),
        Some(p) => config_with(p1, p2, &format!(r#"{{"path": "{}"}}"#, p.display())),
    };
    let t = TargetHandle::start(TargetConfig::from_json(&cfg).unwrap())
        .await
        .unwrap();
    let opts = |p| {
        let mut o = ControllerOptions::new("127.0.0.1", p, SUB);
        o.nr_io_queues = 1;
        o.kato_ms = 30_000;
        o.reconnect_delay_ms = 300;
        o
    };
    let a = Controller::connect(opts(p1)).await.unwrap();
    let b = Controller::connect(opts(p2)).await.unwrap();
    let bs = a.identify_namespace(1).await.unwrap().block_size().unwrap();
    Setup { t, a, b, bs }
}

fn block(byte: u8, bs: u32) -> Bytes {
    Bytes::from(vec![byte; bs as usize])
}

/// A write through A that the target parks for [`HOLD`]; returns its task
/// once the command has had time to reach the target.
async fn held_write(s: &Setup, byte: u8) -> tokio::task::JoinHandle<nvmp_host::Completion> {
    s.t.set_fault(
        1,
        Fault {
            hold_ms: Some(HOLD.as_millis() as u64),
            ..Default::default()
        },
    )
    .unwrap();
    let a = s.a.clone();
    let (data, bs) = (block(byte, s.bs), s.bs);
    let w = tokio::spawn(async move { a.write(1, 0, data, bs, false).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!w.is_finished(), "the target holds the write");
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_write_lands_without_a_reset() {
    // The control: the hold fault holds, then the write runs.
    let s = setup().await;
    assert!(s
        .a
        .write(1, 0, block(0x0A, s.bs), s.bs, false)
        .await
        .is_success());
    let w = held_write(&s, 0x0B).await;
    let c = tokio::time::timeout(Duration::from_secs(30), w)
        .await
        .unwrap()
        .unwrap();
    assert!(c.is_success(), "{:?}", c.status);
    assert_eq!(s.b.read(1, 0, 1, s.bs).await.data, block(0x0B, s.bs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccr_fences_a_held_write() {
    let s = setup().await;
    let ida = s.a.ccr_identity();
    assert!(ida.supported() && s.b.ccr_identity().supported());
    assert_eq!(ida.cqt_ms, 1000);
    assert_eq!(ida.cntlid, s.a.cntlid());
    assert!(s
        .a
        .write(1, 0, block(0x01, s.bs), s.bs, false)
        .await
        .is_success());
    let w = held_write(&s, 0x02).await;

    let t0 = Instant::now();
    let out =
        s.b.cross_controller_reset(ida.cntlid, ida.ciu, ida.cirn)
            .await
            .unwrap();
    let took = t0.elapsed();
    assert!(out.quiesced(), "{out:?}");
    assert!(out.result.validated && out.result.clri, "{out:?}");
    eprintln!("CCR completed in {took:?}");

    // A's held write is released by the target after HOLD: it never lands.
    let c = tokio::time::timeout(Duration::from_secs(30), w)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !c.is_success(),
        "A's write must not complete: {:?}",
        c.status
    );
    tokio::time::sleep(HOLD).await;
    assert_eq!(s.b.read(1, 0, 1, s.bs).await.data, block(0x01, s.bs));
    // B's writes land.
    assert!(s
        .b
        .write(1, 0, block(0x03, s.bs), s.bs, false)
        .await
        .is_success());
    assert_eq!(s.b.read(1, 0, 1, s.bs).await.data, block(0x03, s.bs));
    assert!(s.b.ccr_log(true).await.unwrap().entries.is_empty());

    // A comes back as a new controller instance.
    s.t.clear_faults(1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.a.state() != CtrlState::Live || s.a.ccr_identity().cirn == ida.cirn {
        assert!(Instant::now() < deadline, "A reconnects");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new = s.a.ccr_identity();
    assert_ne!(
        (new.cntlid, new.ciu, new.cirn),
        (ida.cntlid, ida.ciu, ida.cirn)
    );
    // The old identity names nothing any more.
    let again =
        s.b.cross_controller_reset(ida.cntlid, ida.ciu, ida.cirn)
            .await
            .unwrap();
    assert!(again.quiesced() && !again.result.validated, "{again:?}");
    assert_eq!(s.a.state(), CtrlState::Live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ciu_or_cirn_resets_nothing() {
    let s = setup().await;
    let ida = s.a.ccr_identity();
    let wrong = nvmp_host::ctrl::ccr::CcrIdentity {
        cirn: ida.cirn ^ 2,
        ..ida
    };
    let r =
        s.b.reset_instance(wrong, Duration::from_secs(30))
            .await
            .unwrap();
    assert_eq!(r, CcrWait::Quiesced { validated: false });
    for (ciu, cirn) in [(ida.ciu ^ 0x80, ida.cirn), (ida.ciu, ida.cirn ^ 1)] {
        let out =
            s.b.cross_controller_reset(ida.cntlid, ciu, cirn)
                .await
                .unwrap();
        assert!(out.status.is_success() && out.result.irs, "{out:?}");
        assert!(!out.result.validated && !out.result.clri, "{out:?}");
    }
    // B cannot reset itself.
    let idb = s.b.ccr_identity();
    let out =
        s.b.cross_controller_reset(idb.cntlid, idb.ciu, idb.cirn)
            .await
            .unwrap();
    assert_eq!(out.status.code, nvmp_wire::StatusCode::INVALID_FIELD);
    // A is untouched.
    assert_eq!(s.a.state(), CtrlState::Live);
    assert!(s
        .a
        .write(1, 8, block(0x44, s.bs), s.bs, false)
        .await
        .is_success());
    assert_eq!(s.b.read(1, 8, 1, s.bs).await.data, block(0x44, s.bs));
    assert_eq!(s.a.ccr_identity(), ida);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccr_waits_for_an_operation_in_the_backend() {
    // A file namespace whose operations stall once started (a slow disk):
    // the reset cannot complete with the command, so it completes later,
    // through the CCR log page and the notice, once A's write is done.
    let path =
        std::env::temp_dir().join(format!("nvmp-ccr-{}-{}", std::process::id(), free_port()));
    std::fs::write(&path, vec![0u8; 4 << 20]).unwrap();
    let s = setup_with(Some(&path)).await;
    let mut events = s.b.events();
    let ida = s.a.ccr_identity();
    assert!(s
        .a
        .write(1, 0, block(0x01, s.bs), s.bs, false)
        .await
        .is_success());
    let stall = Duration::from_millis(3000);
    s.t.set_fault(
        1,
        Fault {
            stall_ms: Some(stall.as_millis() as u64),
            ..Default::default()
        },
    )
    .unwrap();
    let a = s.a.clone();
    let (data, bs) = (block(0x02, s.bs), s.bs);
    let w = tokio::spawn(async move { a.write(1, 0, data, bs, false).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!w.is_finished(), "A's write is in the backend");

    let out =
        s.b.cross_controller_reset(ida.cntlid, ida.ciu, ida.cirn)
            .await
            .unwrap();
    assert!(out.pending(), "{out:?}");
    let e = s.b.ccr_log(false).await.unwrap().entries;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].icid, e[0].ciu, e[0].acid),
        (ida.cntlid, ida.ciu, s.b.cntlid())
    );
    assert_eq!(e[0].status, CcrStatus::IN_PROGRESS);
    // The same instance again while its reset runs.
    let again =
        s.b.cross_controller_reset(ida.cntlid, ida.ciu, ida.cirn)
            .await
            .unwrap();
    assert_eq!(again.status.code, nvmp_wire::StatusCode::CCR_IN_PROGRESS);

    // The notice comes once the write ended; the entry reads Success.
    let notice = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(CtrlEvent::AsyncEvent(ev)) = events.recv().await {
                if ev.info == NOTICE_CCR_COMPLETED {
                    return ev;
                }
            }
        }
    })
    .await
    .expect("CCR completed notice");
    assert_eq!(
        notice.log_page,
        nvmp_wire::admin::LogPageId::CROSS_CONTROLLER_RESET
    );
    let e = s.b.ccr_log(true).await.unwrap().entries;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].status, e[0].validated, e[0].clri),
        (CcrStatus::SUCCESS, true, true)
    );
    assert!(
        s.b.ccr_log(false).await.unwrap().entries.is_empty(),
        "RMC removed it"
    );
    // A's write was inside the backend when the reset began: it completed
    // there before the reset did (its fate is unknown to the host: A's
    // connection was closed, so it ends with an abort on A's side).
    let c = tokio::time::timeout(Duration::from_secs(30), w)
        .await
        .unwrap()
        .unwrap();
    assert!(!c.is_success(), "{:?}", c.status);
    s.t.clear_faults(1).unwrap();
    assert_eq!(s.b.read(1, 0, 1, s.bs).await.data, block(0x02, s.bs));
    // The same through reset_instance (which waits): A's new instance,
    // with a write inside the slow backend again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.a.state() != CtrlState::Live || s.a.ccr_identity().cirn == ida.cirn {
        assert!(Instant::now() < deadline, "A reconnects");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ida2 = s.a.ccr_identity();
    s.t.set_fault(
        1,
        Fault {
            stall_ms: Some(1000),
            ..Default::default()
        },
    )
    .unwrap();
    let a = s.a.clone();
    let (data, bs) = (block(0x04, s.bs), s.bs);
    let w = tokio::spawn(async move { a.write(1, 0, data, bs, false).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r =
        s.b.reset_instance(ida2, Duration::from_secs(30))
            .await
            .unwrap();
    assert_eq!(r, CcrWait::Quiesced { validated: true });
    assert!(s.b.ccr_log(false).await.unwrap().entries.is_empty());
    // Quiesced means A's write already landed: B's write right now stays
    // (were A's write still to land, it would overwrite it within the stall).
    assert!(s
        .b
        .write(1, 0, block(0x05, s.bs), s.bs, false)
        .await
        .is_success());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.b.read(1, 0, 1, s.bs).await.data, block(0x05, s.bs));
    let c = tokio::time::timeout(Duration::from_secs(30), w)
        .await
        .unwrap()
        .unwrap();
    assert!(!c.is_success(), "{:?}", c.status);
    s.t.clear_faults(1).unwrap();
    // And nothing of A after it: B's write stays.
    assert!(s
        .b
        .write(1, 0, block(0x03, s.bs), s.bs, false)
        .await
        .is_success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.b.read(1, 0, 1, s.bs).await.data, block(0x03, s.bs));
    let _ = std::fs::remove_file(&path);
}
