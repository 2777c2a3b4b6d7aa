//! Run to completion ([`super::write`]): a command submitted to an idle
//! queue is written by its submitter; what the stream does not take at
//! once is finished by the writer task, before anything queued later.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use nvmp_wire::pdu::EncodeOptions;
use nvmp_wire::{Cqe, Opcode, Pdu, PduConfig, PduDecoder, Role, Sqe, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use crate::command::IoRequest;

fn sum(d: &[u8]) -> u32 {
    d.iter()
        .fold(0u32, |a, &b| a.wrapping_mul(31).wrapping_add(b as u32))
}

/// Answers every capsule with a CapsuleResp whose DW0 is a checksum of its
/// in-capsule data, and records CDW10 of the capsules in arrival order.
/// Reads at most 100 bytes at a time (the stream's buffer is small too).
async fn controller(mut s: DuplexStream, seen: Arc<Mutex<Vec<u32>>>) {
    let mut dec = PduDecoder::new(PduConfig::initial(Role::Controller, 1 << 20));
    let mut buf = BytesMut::new();
    let enc = EncodeOptions::default();
    loop {
        let mut out = BytesMut::new();
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(Pdu::IcReq(_))) => super::tests::ic_resp().encode(enc, &mut out),
                Ok(Some(Pdu::CapsuleCmd { sqe, data })) => {
                    seen.lock().unwrap().push(sqe.cdw10);
                    let mut cqe = Cqe::new(sqe.cid, Status::SUCCESS);
                    cqe.dw0 = sum(&data);
                    Pdu::CapsuleResp(cqe).encode(enc, &mut out);
                }
                Ok(Some(p)) => panic!("unexpected {p:?}"),
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
        if s.write_all(&out).await.is_err() {
            return;
        }
        let mut chunk = [0u8; 100];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn write(i: u32) -> IoRequest {
    let mut sqe = Sqe::new(Opcode(0x01));
    sqe.cdw10 = i;
    let data: Bytes = (0..4096u32)
        .map(|b| (b.wrapping_mul(7) ^ i) as u8)
        .collect::<Vec<_>>()
        .into();
    IoRequest::with_write(sqe, data)
}

/// Writes of 4 KiB in capsule through a stream that takes 512 bytes at a
/// time: alone on the queue (written by their submitters, who leave the
/// rest to the writer task), then many at once (through the writer). Every
/// command arrives whole and in submission order, and completes with its
/// own data's checksum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_queue_writes_inline_whole_and_in_order_through_a_narrow_stream() {
    let (a, b) = tokio::io::duplex(512);
    let seen = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(controller(b, seen.clone()));
    let q = super::tests::conn_over(a).await;
    let mut want = Vec::new();
    for i in 0..20u32 {
        let req = write(i);
        let s = sum(req.write.as_ref().unwrap());
        let c = q.submit(req, Some(Duration::from_secs(30))).await;
        assert!(c.is_success(), "{i}: {:?}", c.status);
        assert_eq!(c.dw0, s, "command {i} arrived whole");
        want.push(i);
    }
    // Many at once, submitted in order from one task (fewer than the
    // queue's 32 slots): the first alone on the queue, written inline,
    // the others queued behind it for the writer.
    let mut jobs = Vec::new();
    for i in 20..50u32 {
        let req = write(i);
        let s = sum(req.write.as_ref().unwrap());
        let t = q.send_now(req, Some(Duration::from_secs(30))).unwrap();
        jobs.push((i, s, q.clone().queued(t)));
        want.push(i);
    }
    for (i, s, j) in jobs {
        let c = j.await;
        assert!(c.is_success(), "{i}: {:?}", c.status);
        assert_eq!(c.dw0, s, "command {i} arrived whole");
    }
    assert_eq!(*seen.lock().unwrap(), want, "arrival order");
    assert!(!q.is_closed());
    q.close();
}
