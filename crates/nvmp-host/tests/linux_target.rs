//! Interop with the real Linux nvmet-tcp target (../shared/linux-peer in
//! target mode, a QEMU VM under TCG). One test, one VM, steps in order:
//! discovery, connect, Identify, 64 MiB written and read back per
//! namespace, idle for 3 × KATO (KATO 2 s to keep the test short),
//! port down / up → reconnect within reconnect_delay (1 s) + 1 s.
//!
//! Skipped only with NVMP_SKIP_LINUX_PEER=1; otherwise a missing VM fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nvmp_host::{discover, discovery_options, Controller, ControllerOptions, CtrlState, IoRequest};
use nvmp_testkit::{skip_linux_peer, LinuxPeer, PeerMode};
use nvmp_wire::identify::{cmic, NsIdDescriptor};
use nvmp_wire::io::ReadWrite;
use tokio::sync::Semaphore;

const NQN: &str = "nqn.2024-01.io.example:peer";
const INSTANCE: &str = "nvmp-host-it";
const IO_SIZE: usize = 128 * 1024;
const QD: usize = 8;
const TOTAL: usize = 64 << 20;

fn uuid(s: &str) -> [u8; 16] {
    *uuid::Uuid::parse_str(s).unwrap().as_bytes()
}

/// Every 8 bytes: (nsid << 56) | byte offset.
fn pattern(nsid: u32, off: usize, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    for i in (0..len).step_by(8) {
        v.extend_from_slice(&(((nsid as u64) << 56) | (off + i) as u64).to_le_bytes());
    }
    v.into()
}

async fn blocking(peer: &Arc<LinuxPeer>, args: &'static [&'static str]) {
    let p = peer.clone();
    tokio::task::spawn_blocking(move || p.run(args))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_nvmet_tcp_target() {
    if skip_linux_peer("linux_target") {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter("nvmp_host=info")
        .with_test_writer()
        .try_init();
    let t = Instant::now();
    let peer = Arc::new(
        tokio::task::spawn_blocking(|| LinuxPeer::start(INSTANCE, PeerMode::Target))
            .await
            .unwrap(),
    );
    eprintln!("linux-peer started in {:?}", t.elapsed());

    // Discovery. nvmet's discovery log is per port (the subsystems linked
    // to the port the query came in on), so each port is asked: together
    // they list both ports (with the guest's addresses).
    let [_, p1, p2] = peer.ports;
    let mut all = Vec::new();
    for p in [p1, p2] {
        let t = Instant::now();
        let entries = discover(discovery_options("127.0.0.1", p))
            .await
            .expect("discover");
        let short: Vec<_> = entries
            .iter()
            .map(|e| {
                format!(
                    "{}:{} {} (subtype {})",
                    e.traddr, e.trsvcid, e.subnqn, e.subtype
                )
            })
            .collect();
        eprintln!("discovery via {p}: {short:?} in {:?}", t.elapsed());
        all.extend(entries);
    }
    for svc in ["4420", "4421"] {
        assert!(
            all.iter()
                .any(|e| e.trsvcid == svc && e.subnqn == NQN && e.trtype == 3 && e.subtype == 2),
            "no NVM subsystem entry for port {svc}"
        );
    }

    // Connect.
    let mut o = ControllerOptions::new("127.0.0.1", p1, NQN);
    o.kato_ms = 2000;
    o.reconnect_delay_ms = 1000;
    o.ctrl_loss_tmo_s = Some(60);
    o.nr_io_queues = 2;
    o.queue_size = 32;
    let t = Instant::now();
    let c = Controller::connect(o).await.expect("connect");
    eprintln!(
        "connected {} in {:?}: {} I/O queues",
        c.name(),
        t.elapsed(),
        c.io_queues()
    );
    let id = c.id_ctrl();
    assert_eq!(id.sn, "LINUXPEER0001");
    assert_eq!(id.mn, "Linux-Peer-nvmet");
    assert_ne!(id.cmic & cmic::ANA, 0, "CMIC.ANA");
    assert!(id.nn >= 2);
    assert_eq!(id.subnqn, NQN);
    assert_eq!(id.cntlid, c.cntlid());
    // Linux 6.12's nvmet has no Cross-Controller Reset (NVMe 2.3): CCRL 0,
    // no CIU/CIRN, CQT 0, and opcode 38h is refused; a multipath fence
    // falls back to waiting KATO there.
    let ccr = c.ccr_identity();
    eprintln!("CCR identity: {ccr:?}");
    assert!(!ccr.supported(), "{ccr:?}");
    assert_eq!((ccr.ciu, ccr.cirn, ccr.cqt_ms), (0, 0, 0), "{ccr:?}");
    let out = c.cross_controller_reset(0xFFEE, 0, 0).await.unwrap();
    assert_eq!(
        out.status.code,
        nvmp_wire::StatusCode::INVALID_OPCODE,
        "{out:?}"
    );
    let r = c
        .reset_instance(
            nvmp_host::ctrl::ccr::CcrIdentity {
                cntlid: 0xFFEE,
                ..ccr
            },
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(
        matches!(r, nvmp_host::ctrl::ccr::CcrWait::Refused(s) if s.code == nvmp_wire::StatusCode::INVALID_OPCODE),
        "{r:?}"
    );
    assert_eq!(c.state(), CtrlState::Live);
    let active = c.active_namespaces().await.unwrap();
    assert!(active.contains(&1) && active.contains(&2), "{active:?}");
    let mut bs = [0u32; 3];
    for nsid in [1u32, 2] {
        let d = c.ns_id_descriptors(nsid).await.unwrap();
        let u = uuid(&format!("4c500000-0000-4000-8000-00000000000{nsid}"));
        let g = uuid(&format!("4c500000-0000-4000-8000-0000000000a{nsid}"));
        assert!(d.contains(&NsIdDescriptor::Uuid(u)), "ns {nsid}: {d:?}");
        assert!(d.contains(&NsIdDescriptor::Nguid(g)), "ns {nsid}: {d:?}");
        let ns = c.identify_namespace(nsid).await.unwrap();
        assert_eq!(ns.nguid, g);
        bs[nsid as usize] = ns.block_size().unwrap();
        assert!(ns.nsze * bs[nsid as usize] as u64 >= TOTAL as u64);
    }
    let ana = c.ana_log(false).await.unwrap();
    eprintln!("ANA log: {ana:?}");

    // 64 MiB per namespace, 128 KiB I/Os, QD 8: write, then read back.
    for write in [true, false] {
        let t = Instant::now();
        for nsid in [1u32, 2] {
            let bsz = bs[nsid as usize] as usize;
            let sem = Arc::new(Semaphore::new(QD));
            let mut hs = Vec::new();
            for off in (0..TOTAL).step_by(IO_SIZE) {
                let p = sem.clone().acquire_owned().await.unwrap();
                let c = c.clone();
                hs.push(tokio::spawn(async move {
                    let rw = ReadWrite {
                        nsid,
                        slba: (off / bsz) as u64,
                        nlb: (IO_SIZE / bsz) as u32,
                        fua: false,
                    };
                    let want = pattern(nsid, off, IO_SIZE);
                    if write {
                        let r = c.submit(IoRequest::with_write(rw.write_sqe(), want)).await;
                        assert!(r.is_success(), "write ns {nsid} @{off}: {}", r.status);
                    } else {
                        let r = c
                            .submit(IoRequest::with_read(rw.read_sqe(), IO_SIZE as u32))
                            .await;
                        assert!(r.is_success(), "read ns {nsid} @{off}: {}", r.status);
                        assert!(r.data == want, "data mismatch ns {nsid} @{off}");
                    }
                    drop(p);
                }));
            }
            for h in hs {
                h.await.unwrap();
            }
        }
        let dt = t.elapsed();
        eprintln!(
            "{} 2 × 64 MiB in {dt:?} ({:.1} MiB/s)",
            if write { "wrote" } else { "read and verified" },
            128.0 / dt.as_secs_f64()
        );
    }
    let s = c.stats();
    assert_eq!(s.errors, 0);
    assert_eq!(s.bytes_written, 2 * TOTAL as u64);

    // Header and data digests negotiated (off by default): a second
    // controller with both, one 128 KiB write and read.
    {
        let mut o = ControllerOptions::new("127.0.0.1", p1, NQN);
        o.hdr_digest = true;
        o.data_digest = true;
        o.nr_io_queues = 1;
        let d = Controller::connect(o).await.expect("connect with digests");
        assert_ne!(d.cntlid(), c.cntlid());
        let rw = ReadWrite {
            nsid: 2,
            slba: 0,
            nlb: (IO_SIZE / bs[2] as usize) as u32,
            fua: false,
        };
        let want = pattern(2, 0, IO_SIZE);
        assert!(d
            .submit(IoRequest::with_write(rw.write_sqe(), want.clone()))
            .await
            .is_success());
        let r = d
            .submit(IoRequest::with_read(rw.read_sqe(), IO_SIZE as u32))
            .await;
        assert!(
            r.is_success() && r.data == want,
            "digest read: {}",
            r.status
        );
        d.disconnect().await;
    }

    // Flush, Write Zeroes, Dataset Management (deallocate) on the real target.
    {
        let b = bs[1];
        assert!(c.flush(1).await.is_success());
        let off = (TOTAL / b as usize) as u64; // beyond the patterned area
        assert!(c
            .write(1, off, pattern(1, 0, 8192), b, true)
            .await
            .is_success());
        let r = c.write_zeroes(1, off, 8192 / b, false).await;
        assert!(r.is_success(), "write zeroes: {}", r.status);
        let r = c.read(1, off, 8192 / b, b).await;
        assert!(r.is_success() && r.data.iter().all(|&x| x == 0));
        let range = nvmp_wire::io::DsmRange {
            cattr: 0,
            nlb: 8192 / b,
            slba: off,
        };
        let r = c.deallocate(1, &[range]).await;
        assert!(r.is_success(), "deallocate: {}", r.status);
    }

    // An ANA change on the target arrives as an AEN; the log shows it.
    {
        use nvmp_wire::admin::{AsyncEventType, NOTICE_ANA_CHANGE};
        use nvmp_wire::log::AnaState;
        let mut ev = c.events();
        for (state, want) in [
            ("non-optimized", AnaState::NON_OPTIMIZED),
            ("optimized", AnaState::OPTIMIZED),
        ] {
            let p = peer.clone();
            tokio::task::spawn_blocking(move || p.run(&["ana", "1", "1", state]))
                .await
                .unwrap();
            let t = Instant::now();
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    if let Ok(nvmp_host::CtrlEvent::AsyncEvent(e)) = ev.recv().await {
                        if e.event_type == AsyncEventType::NOTICE && e.info == NOTICE_ANA_CHANGE {
                            return;
                        }
                    }
                }
            })
            .await
            .expect("ANA change AEN");
            let log = c.ana_log(false).await.unwrap();
            let g1 = log.groups.iter().find(|g| g.grpid == 1).unwrap();
            assert_eq!(g1.state, want, "{log:?}");
            eprintln!(
                "ANA change to {state}: AEN {:?} after the command, log agrees",
                t.elapsed()
            );
        }
    }

    // Idle for 3 × KATO: keep-alives keep it live.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(c.state(), CtrlState::Live);
    assert_eq!(c.stats().resets, 0);
    c.keep_alive().await.expect("keep-alive after idling");

    // Port down: the target tears the controller down; port up: reconnected
    // within reconnect_delay + 1 s.
    let mut st = c.watch_state();
    blocking(&peer, &["port-down", "1"]).await;
    tokio::time::timeout(
        Duration::from_secs(15),
        st.wait_for(|s| *s != CtrlState::Live),
    )
    .await
    .expect("controller noticed the port going down")
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_ne!(c.state(), CtrlState::Live);
    // The port comes back somewhere during the `port-up` command (it goes
    // through the guest's control agent): measure from its start and allow
    // its own duration on top of reconnect_delay + 1 s.
    let t = Instant::now();
    let up = {
        let p = peer.clone();
        tokio::task::spawn_blocking(move || {
            p.run(&["port-up", "1"]);
            Instant::now()
        })
    };
    tokio::time::timeout(
        Duration::from_secs(15),
        st.wait_for(|s| *s == CtrlState::Live),
    )
    .await
    .expect("reconnected")
    .unwrap();
    let dt = t.elapsed();
    let cmd = up.await.unwrap() - t;
    eprintln!("reconnected {dt:?} after port-up was issued (the port-up command took {cmd:?})");
    assert!(
        dt <= cmd + Duration::from_secs(2),
        "reconnect took {dt:?} > port-up ({cmd:?}) + reconnect_delay + 1 s"
    );
    let rw = ReadWrite {
        nsid: 1,
        slba: 0,
        nlb: (IO_SIZE / bs[1] as usize) as u32,
        fua: false,
    };
    let r = c
        .submit(IoRequest::with_read(rw.read_sqe(), IO_SIZE as u32))
        .await;
    assert!(r.is_success() && r.data == pattern(1, 0, IO_SIZE));
    c.disconnect().await;
    assert_eq!(c.state(), CtrlState::Dead);
}
