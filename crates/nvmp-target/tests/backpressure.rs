//! A host that pipelines large reads and does not read the replies must not
//! drive the target out of memory: the target stops taking commands once
//! unsent replies fill the queue depth or the connection's byte budget, so
//! TCP pushes back; when the host reads, everything completes correctly.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use nvmp_target::{TargetConfig, TargetHandle};
use nvmp_wire::pdu::EncodeOptions;
use nvmp_wire::{Pdu, PduConfig, PduDecoder, Role, Sgl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SUB: &str = "nqn.2024-01.io.nvmp:backpressure";
/// Reads pipelined: 4000 x 128 KiB = 500 MiB of replies.
const READS: u32 = 4000;
const BLOCKS: u32 = 256; // 128 KiB of 512-byte blocks
const FILE_BYTES: usize = 8 << 20;

fn pattern(off: usize) -> u8 {
    ((off / 512) as u32 * 31 + off as u32 % 512) as u8
}

fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_replies_are_bounded_and_complete_later() {
    // A file namespace: every read reply is a real buffer of its own.
    let f = tempfile::NamedTempFile::new().unwrap();
    let data: Vec<u8> = (0..FILE_BYTES).map(pattern).collect();
    std::fs::write(f.path(), &data).unwrap();
    let path = f.path().display().to_string();
    let text = two_port_config(SUB, "").replace(
        r#""size": "64M", "nguid": "4e560000-0000-4000-8000-0000000000a1""#,
        &format!(r#""path": "{path}", "nguid": "4e560000-0000-4000-8000-0000000000a1""#),
    );
    let t = TargetHandle::start(TargetConfig::from_json(&text).unwrap())
        .await
        .unwrap();
    let addr = t.local_addr(1).unwrap();
    let (_admin, cntlid) = Client::admin(addr, SUB, HOSTNQN, 0).await.unwrap();
    let io = Client::io(addr, SUB, HOSTNQN, cntlid, 1).await.unwrap(); // depth 128
    let (mut rd, mut wr) = io.stream.into_split();
    let rss0 = rss_bytes();

    // Pipeline every read (distinct CIDs) without reading a reply.
    let writer = tokio::spawn(async move {
        let mut b = BytesMut::new();
        for i in 0..READS {
            let mut sqe = read_sqe(1, (i % 64) as u64 * BLOCKS as u64, BLOCKS);
            sqe.cid = i as u16 + 1;
            sqe.dptr = Sgl::transport(BLOCKS * 512);
            Pdu::CapsuleCmd {
                sqe,
                data: bytes::Bytes::new(),
            }
            .encode(EncodeOptions::default(), &mut b);
        }
        wr.write_all(&b).await.unwrap();
        wr
    });
    // Bound: the connection budget (2 MiB) plus one reply (128 KiB + header).
    let bound = (2 << 20) + (128 << 10) + 4096;
    let mut peak = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (now, max_conn) = t.buffered_bytes();
        assert!(
            now <= bound && max_conn <= bound,
            "{now} / {max_conn} > {bound}"
        );
        peak = peak.max(now);
    }
    assert!(peak > 1 << 20, "the target held replies ({peak} bytes)");
    let grown = rss_bytes().saturating_sub(rss0);
    assert!(grown < 64 << 20, "RSS grew by {grown} bytes");

    // Now read everything: each command completes once, with its data.
    let mut dec = PduDecoder::new(PduConfig::initial(Role::Host, 1 << 20));
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut seen = vec![false; READS as usize + 1];
    let mut done = 0;
    let mut data_for: Option<(u16, bytes::Bytes)> = None;
    while done < READS {
        let pdu = loop {
            if let Some(p) = dec.decode(&mut buf).unwrap() {
                break p;
            }
            buf.reserve(1 << 20);
            let n = tokio::time::timeout(Duration::from_secs(20), rd.read_buf(&mut buf))
                .await
                .expect("replies keep coming")
                .unwrap();
            assert!(n > 0, "connection closed after {done} completions");
        };
        match pdu {
            Pdu::C2HData(d) => {
                assert_eq!(d.data.len(), (BLOCKS * 512) as usize);
                data_for = Some((d.header.cccid, d.data));
            }
            Pdu::CapsuleResp(c) => {
                assert!(c.status.is_success(), "cid {}: {}", c.cid, c.status);
                let (cid, d) = data_for.take().expect("data before the completion");
                assert_eq!(cid, c.cid);
                let i = cid as usize - 1;
                assert!(!seen[i], "cid {cid} completed twice");
                seen[i] = true;
                let off = (i % 64) * (BLOCKS as usize * 512);
                assert!(d[..] == data[off..off + d.len()], "cid {cid}: wrong data");
                done += 1;
            }
            o => panic!("unexpected {o:?}"),
        }
    }
    writer.await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(t.buffered_bytes().0, 0);
    t.shutdown().await;
}
