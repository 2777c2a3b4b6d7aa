//! `Controller::start`: the poll-based half of `submit` that the multipath
//! head uses (queue now, await the completion in the caller's own future),
//! against a scripted fake controller in virtual time.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::fake::{self, connect, read, write, Fake};
use nvmp_host::{ControllerOptions, CtrlState, Started};
use nvmp_wire::StatusCode;

fn opts() -> ControllerOptions {
    let mut o = ControllerOptions::new("fake", 4420, "nqn.2024-01.io.example:fake");
    o.host = nvmp_host::HostIdentity::from_uuid([9; 16]);
    o.nr_io_queues = 1;
    o.queue_size = 16;
    o.kato_ms = 2000;
    o.reconnect_delay_ms = 1000;
    o.ctrl_loss_tmo_s = Some(10);
    o.queue_while_reconnecting = false;
    o
}

#[tokio::test(start_paused = true)]
async fn a_started_command_completes_and_is_counted_like_submit() {
    let f = Fake::new();
    let c = connect(&f, opts()).await;
    let data = Bytes::from(vec![0x5a; fake::BS]);
    let Started::Queued(p) = c.start(write(4, data.clone())) else {
        panic!("a live controller with free slots queues at once");
    };
    assert_eq!(c.outstanding(), 1, "counted from the start");
    assert!(p.await.is_success());
    let Started::Queued(p) = c.start(read(4, 1)) else {
        panic!("queued");
    };
    let r = p.await;
    assert_eq!(r.data, data);
    let s = c.stats();
    assert_eq!((s.completed, s.errors, s.outstanding), (2, 0, 0));
    assert_eq!(
        (s.bytes_written, s.bytes_read),
        (fake::BS as u64, fake::BS as u64)
    );
    c.disconnect().await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_pending_command_stops_counting() {
    let f = Fake::new();
    let c = connect(&f, opts()).await;
    f.knobs.hold_io.store(true, Ordering::SeqCst);
    let Started::Queued(p) = c.start(read(0, 1)) else {
        panic!("queued");
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(f.io_cmds.load(Ordering::SeqCst), 1, "sent");
    assert_eq!(c.outstanding(), 1);
    drop(p);
    assert_eq!(c.outstanding(), 0, "a dropped command is not outstanding");
    assert_eq!(c.stats().completed, 0, "nor completed");
    c.disconnect().await;
    assert_eq!(c.outstanding(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_hands_the_command_back_and_submit_waits_for_a_slot() {
    let f = Fake::new();
    let c = connect(&f, opts()).await;
    f.knobs.hold_io.store(true, Ordering::SeqCst);
    let held: Vec<_> = (0..16u64)
        .map(|i| match c.start(read(i, 1)) {
            Started::Queued(p) => p,
            _ => panic!("slot {i} of 16 is free"),
        })
        .collect();
    let req = read(99, 2);
    let Started::NotSent(back) = c.start(req.clone()) else {
        panic!("every slot taken: handed back");
    };
    assert_eq!(back.sqe, req.sqe, "the same command");
    assert_eq!(back.read_len, req.read_len);
    assert_eq!(c.outstanding(), 16, "a command handed back is not counted");
    // submit waits for a slot (counted while it waits), and gets one when a
    // held command is given up (its slot is freed when the fake answers, so
    // here only at teardown: the waiting submit then fails 0x370).
    let c2 = c.clone();
    let h = tokio::spawn(async move { c2.submit(back).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!h.is_finished(), "waiting for a slot");
    assert_eq!(c.outstanding(), 17);
    drop(held);
    assert_eq!(c.outstanding(), 1);
    c.disconnect().await;
    let r = h.await.unwrap();
    assert!(!r.is_success());
    assert_eq!(c.outstanding(), 0);
}

#[tokio::test(start_paused = true)]
async fn refused_at_once_or_handed_back_when_not_live() {
    let f = Fake::new();
    let c = connect(&f, opts()).await;
    // Larger than MDTS: completed (and counted) without being sent.
    let too_big = read(0, (c.max_transfer() / fake::BS as u32) + 1);
    let Started::Done(d) = c.start(too_big) else {
        panic!("refused at once");
    };
    assert_eq!(d.status.code, StatusCode::INVALID_FIELD);
    assert!(d.status.dnr);
    let s = c.stats();
    assert_eq!((s.completed, s.errors, s.outstanding), (1, 1, 0));
    assert_eq!(f.io_cmds.load(Ordering::SeqCst), 0);
    // Not live: handed back, not counted.
    f.knobs.refuse_connections.store(true, Ordering::SeqCst);
    f.kill.notify_waiters();
    let mut rx = c.watch_state();
    tokio::time::timeout(
        Duration::from_secs(1),
        rx.wait_for(|s| *s != CtrlState::Live),
    )
    .await
    .expect("reset")
    .unwrap();
    assert!(matches!(c.start(read(0, 1)), Started::NotSent(_)));
    assert_eq!(c.stats().completed, 1);
    assert_eq!(
        c.submit(read(0, 1)).await.status.code,
        StatusCode::HOST_PATHING_ERROR,
        "not queueing while reconnecting: submit fails it"
    );
    c.disconnect().await;
}
