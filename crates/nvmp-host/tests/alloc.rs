//! No heap allocation per command on the host's I/O hot path once warmed up
//! (issue 4): submit → capsule out → data and completion in → result back.
//!
//! The counting allocator is `nvmp_testkit::alloc` (the one `unsafe impl`).
//!
//! Set-up: nvmp's own target runs in another OS thread (its own runtime),
//! so its allocations are not counted. The host (controller, its reader,
//! writer and timer tasks, and the submitting task) runs on a
//! current-thread runtime on the test thread, and only allocations made on
//! this thread while measuring are counted: that is the whole host side.
//! `TRACE_ALLOC=1` prints a backtrace of each allocation counted.
//!
//! Before the completion cells and the receive-buffer reuse this counted
//! 1024 allocations per 1004 commands (a oneshot per command, and a new
//! 256 KiB receive buffer plus its shared header every ~100 commands).

use std::time::Duration;

use bytes::Bytes;
use nvmp_host::{Completion, Controller, ControllerOptions, IoRequest};
use nvmp_testkit::alloc::{self, Counting};
use nvmp_wire::io::ReadWrite;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while `f` runs.
async fn count_allocs<F: std::future::Future>(f: F) -> (u64, F::Output) {
    alloc::start();
    let out = f.await;
    (alloc::stop(), out)
}

const NQN: &str = "nqn.2024-01.io.nvmp:alloc";
const BS: u32 = 512;
const LEN: u32 = 4096;
const NLB: u32 = LEN / BS;
/// Distinct 4 KiB blocks touched (1 MiB).
const SPAN: u64 = 256;
static DATA: [u8; LEN as usize] = [0xA5; LEN as usize];

fn target_config(port: u16) -> String {
    format!(
        r#"{{"hosts": [], "ports": [{{"portid": 1, "addr": {{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "{port}", "treq": "not specified"}},
      "param": {{"inline_data_size": "16384"}}, "ana_groups": [{{"grpid": 1, "ana": {{"state": "optimized"}}}}],
      "referrals": [], "subsystems": ["{NQN}"]}}],
  "subsystems": [{{"nqn": "{NQN}", "attr": {{"allow_any_host": "1", "serial": "ALLOC", "model": "nvmp-alloc", "version": "1.3", "cntlid_min": "1", "cntlid_max": "65519"}},
      "allowed_hosts": [], "namespaces": [{{"nsid": 1, "enable": 1, "ana_grpid": 1, "device": {{"size": "16M"}}}}]}}]}}"#
    )
}

/// Start the target on its own thread and runtime; returns its port and a
/// sender that stops it.
fn start_target() -> (
    u16,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let th = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let cfg = nvmp_target::TargetConfig::from_json(&target_config(port)).unwrap();
            let t = nvmp_target::TargetHandle::start(cfg).await.unwrap();
            ready_tx.send(()).unwrap();
            let _ = stop_rx.await;
            t.shutdown().await;
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("target started");
    (port, stop_tx, th)
}

fn read(slba: u64) -> IoRequest {
    let rw = ReadWrite {
        nsid: 1,
        slba,
        nlb: NLB,
        fua: false,
    };
    IoRequest::with_read(rw.read_sqe(), LEN)
}
fn write(slba: u64) -> IoRequest {
    let rw = ReadWrite {
        nsid: 1,
        slba,
        nlb: NLB,
        fua: false,
    };
    IoRequest::with_write(rw.write_sqe(), Bytes::from_static(&DATA))
}

fn check(c: &Completion, what: &str) {
    assert!(c.is_success(), "{what}: {:?}", c.status);
}

/// `n` commands, alternating writes and reads over `SPAN` blocks: half at
/// QD1, half at QD8 (four reads and four writes at once). Returns the
/// number of commands run.
async fn workload(c: &Controller, n: u64, mut i: u64) -> u64 {
    let mut done = 0;
    let slba = |i: u64| (i % SPAN) * NLB as u64;
    while done < n / 2 {
        check(&c.submit(write(slba(i))).await, "write QD1");
        let r = c.submit(read(slba(i))).await;
        check(&r, "read QD1");
        assert_eq!(r.data.len(), LEN as usize);
        i += 1;
        done += 2;
    }
    while done < n {
        let rs = tokio::join!(
            c.submit(write(slba(i))),
            c.submit(read(slba(i + 1))),
            c.submit(write(slba(i + 2))),
            c.submit(read(slba(i + 3))),
            c.submit(write(slba(i + 4))),
            c.submit(read(slba(i + 5))),
            c.submit(write(slba(i + 6))),
            c.submit(read(slba(i + 7))),
        );
        for r in [rs.0, rs.1, rs.2, rs.3, rs.4, rs.5, rs.6, rs.7] {
            check(&r, "QD8");
        }
        i += 8;
        done += 8;
    }
    done
}

#[test]
fn no_allocation_per_command_once_warmed_up() {
    let (port, stop, th) = start_target();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut o = ControllerOptions::new("127.0.0.1", port, NQN);
        o.nr_io_queues = 1;
        o.queue_size = 32;
        // No keep-alive during the measurement (an admin command, not I/O).
        o.kato_ms = 60_000;
        let c = Controller::connect(o).await.expect("connect");
        let ns = c.identify_namespace(1).await.unwrap();
        assert_eq!(ns.block_size().unwrap(), BS);

        // Warm up: buffers, slot and cell tables, runtime queues reach their sizes.
        let warm = workload(&c, 1000, 0).await;
        let (allocs, n) = count_allocs(workload(&c, 1000, warm)).await;
        // Sanity check that the counter counts on this thread.
        let (probe, _) = count_allocs(async { std::hint::black_box(Vec::<u8>::with_capacity(1)) }).await;
        assert_eq!(probe, 1, "the counting allocator is in use");
        eprintln!(
            "host-side allocations over {n} commands (4 KiB, QD1 and QD8): {allocs} ({:.4} per command)",
            allocs as f64 / n as f64
        );
        assert_eq!(allocs, 0, "allocations on the host's I/O hot path");
        c.disconnect().await;
    });
    let _ = stop.send(());
    th.join().unwrap();
}
