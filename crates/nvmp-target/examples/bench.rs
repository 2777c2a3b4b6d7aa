//! Throughput of the target alone: an in-process target on loopback and the
//! raw test client doing 4 KiB random reads (and writes) at QD32 per queue.
//!
//! `cargo run --release -p nvmp-target --example bench -- [SECONDS] [QUEUES]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use nvmp_target::{TargetConfig, TargetHandle};

const SUB: &str = "nqn.2024-01.io.nvmp:bench";
const QD: usize = 32;
const BLOCKS: u64 = 64 * 1024 * 1024 / 4096;

async fn worker(addr: std::net::SocketAddr, cntlid: u16, qid: u16, secs: u64, write: bool) -> u64 {
    let mut io = Client::io(addr, SUB, HOSTNQN, cntlid, qid).await.unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ qid as u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % BLOCKS) * 8
    };
    let buf = Bytes::from(vec![0xA5u8; 4096]);
    for _ in 0..QD {
        submit(&mut io, next(), write, &buf).await;
    }
    let end = Instant::now() + Duration::from_secs(secs);
    let mut done = 0u64;
    while Instant::now() < end {
        let d = io.next_done().await.unwrap();
        assert!(d.cqe.status.is_success());
        done += 1;
        submit(&mut io, next(), write, &buf).await;
    }
    for _ in 0..QD {
        let _ = io.next_done().await;
    }
    done
}

async fn submit(io: &mut Client, lba: u64, write: bool, buf: &Bytes) {
    if write {
        io.submit(write_sqe(1, lba, 8, false), Some(buf.clone()), 0)
            .await
            .unwrap();
    } else {
        io.submit(read_sqe(1, lba, 8), None, 4096).await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let queues: u16 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let cfg = TargetConfig::from_json(&two_port_config(SUB, "")).unwrap();
    let t = TargetHandle::start(cfg).await.unwrap();
    let addr = t.local_addr(1).unwrap();
    let (_admin, cntlid) = Client::admin(addr, SUB, HOSTNQN, 0).await.unwrap();
    for write in [false, true] {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for q in 0..queues {
            // Fresh queue IDs per round.
            let qid = q + 1 + if write { queues } else { 0 };
            tasks.push(tokio::spawn(worker(addr, cntlid, qid, secs, write)));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        let el = start.elapsed().as_secs_f64();
        println!(
            "4 KiB random {} QD{QD} x {queues} queue(s): {:.0} IOPS, {:.1} MiB/s",
            if write { "writes" } else { "reads" },
            total as f64 / el,
            total as f64 * 4096.0 / el / 1048576.0
        );
    }
    t.shutdown().await;
}
