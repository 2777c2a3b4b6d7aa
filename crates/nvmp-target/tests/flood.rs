//! Connections that never send ICReq must not lock legitimate hosts out:
//! at the connection limit the oldest connection without a Connect is
//! closed to make room.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use nvmp_target::{TargetConfig, TargetHandle};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const SUB: &str = "nqn.2024-01.io.nvmp:flood";
/// More idle connections than the target's limit (1024).
const IDLE: usize = 1100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_lock_hosts_out() {
    let t = TargetHandle::start(TargetConfig::from_json(&two_port_config(SUB, "")).unwrap())
        .await
        .unwrap();
    let addr = t.local_addr(1).unwrap();
    // A host already connected keeps working whatever happens.
    let (_admin0, cntlid0) = Client::admin(addr, SUB, HOSTNQN, 0).await.unwrap();
    let mut idle = Vec::new();
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the target accept them all.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A new host connects, well before the 10 s ICReq deadline.
    let t0 = Instant::now();
    let (_admin, cntlid) =
        tokio::time::timeout(Duration::from_secs(3), Client::admin(addr, SUB, HOSTNQN, 0))
            .await
            .expect("a host connects while idle connections are held")
            .unwrap();
    let mut io = Client::io(addr, SUB, HOSTNQN, cntlid, 1).await.unwrap();
    let data = Bytes::from(vec![0x3c; 4096]);
    let (c, _) = io
        .command(write_sqe(1, 8, 8, false), Some(data.clone()), 0)
        .await
        .unwrap();
    assert!(c.status.is_success());
    let (c, d) = io.command(read_sqe(1, 8, 8), None, 4096).await.unwrap();
    assert!(c.status.is_success() && d == data);
    assert!(t0.elapsed() < Duration::from_secs(3));
    // The first host's controller is still there.
    let mut io0 = Client::io(addr, SUB, HOSTNQN, cntlid0, 1).await.unwrap();
    let (c, _) = io0.command(read_sqe(1, 8, 8), None, 4096).await.unwrap();
    assert!(c.status.is_success());
    // The oldest idle connections were the ones closed.
    let mut closed = 0;
    for s in idle.iter_mut().take(IDLE + 4 - 1024) {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await {
            closed += 1;
        }
    }
    assert_eq!(
        closed,
        IDLE + 4 - 1024,
        "the oldest idle connections were closed"
    );
    drop(idle);
    t.shutdown().await;
}
