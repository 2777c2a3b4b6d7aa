//! Integration tests over real loopback TCP with the raw test client.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use nvmp_target::{TargetConfig, TargetHandle};
use nvmp_wire::log::AnaState;
use nvmp_wire::{Pdu, StatusCode};

const SUB: &str = "nqn.2024-01.io.nvmp:loopback";

async fn start() -> TargetHandle {
    let cfg = TargetConfig::from_json(&two_port_config(SUB, "")).unwrap();
    TargetHandle::start(cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_write_read_r2t_and_ana() {
    let t = start().await;
    let addr = t.local_addr(1).unwrap();
    let (mut admin, cntlid) = Client::admin(addr, SUB, HOSTNQN, 5000).await.unwrap();
    let mut io = Client::io(addr, SUB, HOSTNQN, cntlid, 1).await.unwrap();
    // Small write (in-capsule) and read back.
    let small = Bytes::from(vec![0x5a; 4096]);
    let (c, _) = io
        .command(write_sqe(1, 0, 8, false), Some(small.clone()), 0)
        .await
        .unwrap();
    assert!(c.status.is_success());
    let (c, d) = io.command(read_sqe(1, 0, 8), None, 4096).await.unwrap();
    assert!(c.status.is_success());
    assert_eq!(d, small);
    // Large write via R2T (512 KiB, several H2CData PDUs), FUA.
    let big: Vec<u8> = (0..512 * 1024u32).map(|i| (i * 7 % 253) as u8).collect();
    let big = Bytes::from(big);
    let (c, _) = io
        .command(write_sqe(1, 100, 1024, true), Some(big.clone()), 0)
        .await
        .unwrap();
    assert!(c.status.is_success(), "{}", c.status);
    let (c, d) = io
        .command(read_sqe(1, 100, 1024), None, 512 * 1024)
        .await
        .unwrap();
    assert!(c.status.is_success());
    assert_eq!(d, big);
    // ANA change through the handle reaches I/O.
    t.set_ana(1, 1, AnaState::INACCESSIBLE).unwrap();
    let (c, _) = io.command(read_sqe(1, 0, 1), None, 512).await.unwrap();
    assert_eq!(c.status.code, StatusCode::ANA_INACCESSIBLE);
    t.set_ana(1, 1, AnaState::OPTIMIZED).unwrap();
    let st = t.status();
    assert_eq!(st.subsystems[0].controllers.len(), 1);
    assert!(st.ports[0].counters.writes >= 2);
    assert!(st.ports[0].counters.read_bytes >= 512 * 1024);
    // Keep the admin queue alive.
    let (c, _) = admin
        .command(nvmp_wire::admin::keep_alive_sqe(), None, 0)
        .await
        .unwrap();
    assert!(c.status.is_success());
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_termreq_while_others_keep_working() {
    let t = start().await;
    let addr = t.local_addr(1).unwrap();
    let (_admin, cntlid) = Client::admin(addr, SUB, HOSTNQN, 5000).await.unwrap();
    let mut io = Client::io(addr, SUB, HOSTNQN, cntlid, 1).await.unwrap();
    let mut bad = Client::connect(addr).await.unwrap();
    bad.send_raw(&[0xEE, 0, 8, 0, 8, 0, 0, 0]).await.unwrap();
    match bad.recv().await.unwrap() {
        Pdu::C2HTermReq(t) => assert_eq!(t.fes, nvmp_wire::pdu::Fes::INVALID_HEADER_FIELD),
        o => panic!("expected TermReq, got {o:?}"),
    }
    assert!(bad.recv().await.is_err(), "connection must be closed");
    // The good connection still works.
    let (c, _) = io.command(read_sqe(1, 0, 1), None, 512).await.unwrap();
    assert!(c.status.is_success());
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_down_closes_and_up_restores() {
    let t = start().await;
    let addr = t.local_addr(2).unwrap();
    let (mut admin, _) = Client::admin(addr, SUB, HOSTNQN, 5000).await.unwrap();
    t.port_down(2).unwrap();
    assert!(admin.recv().await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener must be closed"
    );
    t.port_up(2).unwrap();
    let mut ok = false;
    for _ in 0..50 {
        if Client::admin(addr, SUB, HOSTNQN, 5000).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "port 2 must listen again");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_and_delay_faults() {
    let t = start().await;
    let addr = t.local_addr(1).unwrap();
    let (_admin, cntlid) = Client::admin(addr, SUB, HOSTNQN, 5000).await.unwrap();
    let mut io = Client::io(addr, SUB, HOSTNQN, cntlid, 1).await.unwrap();
    t.set_fault(
        1,
        nvmp_target::Fault {
            delay_ms: Some(200),
            ..Default::default()
        },
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    let (c, _) = io.command(read_sqe(1, 0, 1), None, 512).await.unwrap();
    assert!(c.status.is_success());
    assert!(t0.elapsed() >= Duration::from_millis(190));
    t.clear_faults(1).unwrap();
    t.set_fault(
        1,
        nvmp_target::Fault {
            black_hole: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    let r = tokio::time::timeout(
        Duration::from_millis(300),
        io.command(read_sqe(1, 0, 1), None, 512),
    )
    .await;
    assert!(r.is_err(), "black hole must not answer");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_data_digests_end_to_end() {
    let t = start().await;
    let addr = t.local_addr(1).unwrap();
    let dg = nvmp_wire::pdu::Digests {
        header: true,
        data: true,
    };
    let mut a = Client::connect_with(addr, dg).await.unwrap();
    let c = a
        .fabrics_connect(SUB, HOSTNQN, 0, 0xFFFF, 31, 5000)
        .await
        .unwrap();
    assert!(c.status.is_success());
    let cntlid = c.dw0 as u16;
    assert!(a
        .prop_set_cc(1 | (6 << 16) | (4 << 20))
        .await
        .unwrap()
        .status
        .is_success());
    let mut io = Client::connect_with(addr, dg).await.unwrap();
    assert!(io
        .fabrics_connect(SUB, HOSTNQN, 1, cntlid, 127, 0)
        .await
        .unwrap()
        .status
        .is_success());
    let big = Bytes::from(
        (0..256 * 1024u32)
            .map(|i| (i % 249) as u8)
            .collect::<Vec<_>>(),
    );
    let (c, _) = io
        .command(write_sqe(2, 0, 512, false), Some(big.clone()), 0)
        .await
        .unwrap();
    // NSID 2 is non-optimized on port 1: served.
    assert!(c.status.is_success(), "{}", c.status);
    let (c, d) = io
        .command(read_sqe(2, 0, 512), None, 256 * 1024)
        .await
        .unwrap();
    assert!(c.status.is_success());
    assert_eq!(d, big);
    // Unlinking the only subsystem closes the listener ("a port listens only while a subsystem is linked").
    t.unlink(1, SUB).unwrap();
    for _ in 0..100 {
        if t.local_addr(1).is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(t.local_addr(1).is_none());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    t.link(1, SUB).unwrap();
    for _ in 0..100 {
        if t.local_addr(1).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        t.local_addr(1),
        Some(addr),
        "ephemeral port is kept across relisten"
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_backend_over_tcp() {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(8 << 20).unwrap();
    let path = f.path().display().to_string();
    let text = two_port_config(SUB, "").replace(
        r#""size": "64M", "nguid": "4e560000-0000-4000-8000-0000000000a1""#,
        &format!(r#""path": "{path}", "nguid": "4e560000-0000-4000-8000-0000000000a1""#),
    );
    let t = TargetHandle::start(TargetConfig::from_json(&text).unwrap())
        .await
        .unwrap();
    assert!(t.status().subsystems[0].namespaces[0]
        .backend
        .contains(&path));
    let addr = t.local_addr(1).unwrap();
    let (_admin, cntlid) = Client::admin(addr, SUB, HOSTNQN, 5000).await.unwrap();
    let mut io = Client::io(addr, SUB, HOSTNQN, cntlid, 1).await.unwrap();
    let data = Bytes::from(
        (0..128 * 1024u32)
            .map(|i| (i % 241) as u8)
            .collect::<Vec<_>>(),
    );
    let (c, _) = io
        .command(write_sqe(1, 64, 256, true), Some(data.clone()), 0)
        .await
        .unwrap();
    assert!(c.status.is_success());
    let mut flush = nvmp_wire::Sqe::new(nvmp_wire::Opcode::FLUSH);
    flush.nsid = 1;
    assert!(io
        .command(flush, None, 0)
        .await
        .unwrap()
        .0
        .status
        .is_success());
    let (c, d) = io
        .command(read_sqe(1, 64, 256), None, 128 * 1024)
        .await
        .unwrap();
    assert!(c.status.is_success());
    assert_eq!(d, data);
    // The bytes are in the file.
    let on_disk = std::fs::read(f.path()).unwrap();
    assert_eq!(&on_disk[64 * 512..64 * 512 + 128 * 1024], &data[..]);
    // Beyond the end of the 8 MiB file.
    let (c, _) = io.command(read_sqe(1, 16384, 1), None, 512).await.unwrap();
    assert_eq!(c.status.code, StatusCode::LBA_OUT_OF_RANGE);
    t.shutdown().await;
}
