//! Instruction counting for the target's data path (run it under
//! `valgrind --tool=callgrind`; scripts/target-instructions does): an
//! in-process target on loopback with a 64 MiB RAM namespace, and a lean
//! pipelined client that keeps QD commands in flight on one I/O queue and
//! sends each batch of new commands with one write, as a real host does.
//!
//! `NVMP_IOS=N NVMP_MODE=read|write [NVMP_QD=32] cargo run --release -p nvmp-target --example instructions`
//!
//! Two runs with different N give instructions per I/O by difference; the
//! inclusive cost of the connection task (`serve_conn`) per I/O is the
//! target's own share. Reads are of never-written blocks, and writes fill
//! fresh chunks as they go: instructions, not cache misses, are counted.

#[path = "../tests/common/mod.rs"]
mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use nvmp_target::{TargetConfig, TargetHandle};
use nvmp_wire::pdu::EncodeOptions;
use nvmp_wire::{Pdu, PduConfig, PduDecoder, Role, Sgl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SUB: &str = "nqn.2024-01.io.nvmp:instr";
const BLOCKS_4K: u64 = 64 * 1024 * 1024 / 4096;

async fn run(n: u64, write: bool, qd: u64) {
    let cfg = TargetConfig::from_json(&two_port_config(SUB, "")).unwrap();
    let t = TargetHandle::start(cfg).await.unwrap();
    let addr = t.local_addr(1).unwrap();
    let (_admin, cntlid) = Client::admin(addr, SUB, HOSTNQN, 0).await.unwrap();
    let c = Client::io(addr, SUB, HOSTNQN, cntlid, 1).await.unwrap();
    let mut s = c.stream;
    let enc = EncodeOptions::default();
    let mut dec = PduDecoder::new(PduConfig::initial(Role::Host, 1 << 20));
    let data = Bytes::from(vec![0xA5u8; 4096]);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut lba = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % BLOCKS_4K) * 8
    };
    let mut out = BytesMut::with_capacity(1 << 20);
    let cmd = |out: &mut BytesMut, cid: u16, lba: u64| {
        let (mut sqe, d) = if write {
            (write_sqe(1, lba, 8, false), data.clone())
        } else {
            (read_sqe(1, lba, 8), Bytes::new())
        };
        sqe.cid = cid;
        sqe.dptr = if write {
            Sgl::in_capsule(0, 4096)
        } else {
            Sgl::transport(4096)
        };
        Pdu::CapsuleCmd { sqe, data: d }.encode(enc, out);
    };
    let (mut sent, mut done) = (0u64, 0u64);
    for cid in 0..qd.min(n) {
        cmd(&mut out, cid as u16, lba());
        sent += 1;
    }
    let mut buf = BytesMut::with_capacity(1 << 20);
    while done < n {
        if !out.is_empty() {
            s.write_all(&out).await.unwrap();
            out.clear();
        }
        if buf.capacity() - buf.len() < 65536 {
            buf.reserve(1 << 20);
        }
        assert!(s.read_buf(&mut buf).await.unwrap() > 0, "closed");
        while let Some(p) = dec.decode(&mut buf).unwrap() {
            if let Pdu::CapsuleResp(cqe) = p {
                assert!(cqe.status.is_success(), "{}", cqe.status);
                done += 1;
                if sent < n {
                    cmd(&mut out, cqe.cid, lba());
                    sent += 1;
                }
            }
        }
    }
    eprintln!(
        "{n} 4 KiB {} at QD{qd}",
        if write { "writes" } else { "reads" }
    );
    t.shutdown().await;
}

fn main() {
    let env = |k: &str| std::env::var(k).ok();
    let n: u64 = env("NVMP_IOS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10000);
    let qd: u64 = env("NVMP_QD").and_then(|s| s.parse().ok()).unwrap_or(32);
    let write = env("NVMP_MODE").as_deref() == Some("write");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(n, write, qd));
}
