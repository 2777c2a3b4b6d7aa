//! The reader with a controller played on an in-memory stream: large read
//! payloads arrive in pieces of every size and are read straight into
//! buffers of their own ([`crate::queue::Direct`]), small ones as slices of
//! the receive buffer, in one stream; the data are exact either way.

use bytes::{Bytes, BytesMut};
use nvmp_wire::pdu::{DataHeader, DataPdu, EncodeOptions};
use nvmp_wire::{Cqe, Opcode, Pdu, PduConfig, PduDecoder, Role, Sqe, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::command::IoRequest;

fn pattern(cid: u16, n: usize) -> Bytes {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(cid as u32 * 7) as u8)
        .collect::<Vec<_>>()
        .into()
}

/// Answers every read with its pattern: one C2HData (with SUCCESS on odd
/// lengths' commands, else followed by a CapsuleResp), written in pieces
/// of `piece` bytes (responses in reverse order of a batch).
async fn controller(mut s: tokio::io::DuplexStream, piece: usize) {
    let mut dec = PduDecoder::new(PduConfig::initial(Role::Controller, 1 << 20));
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let enc = EncodeOptions::default();
    loop {
        let mut cmds = Vec::new();
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(Pdu::IcReq(_))) => super::tests::ic_resp().encode(enc, &mut out),
                Ok(Some(Pdu::CapsuleCmd { sqe, .. })) => cmds.push(sqe),
                Ok(Some(p)) => panic!("unexpected {p:?}"),
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
        for sqe in cmds.iter().rev() {
            let len = sqe.cdw10 as usize;
            let success = (len / 4096) % 2 == 1;
            Pdu::C2HData(DataPdu {
                header: DataHeader {
                    cccid: sqe.cid,
                    ttag: 0,
                    offset: 0,
                    length: len as u32,
                },
                last: true,
                success,
                data: pattern(sqe.cdw10 as u16, len),
            })
            .encode(enc, &mut out);
            if !success {
                Pdu::CapsuleResp(Cqe::new(sqe.cid, Status::SUCCESS)).encode(enc, &mut out);
            }
        }
        for c in out.chunks(piece) {
            if s.write_all(c).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
        out.clear();
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_small_reads_arrive_exact_in_pieces_of_any_size() {
    for piece in [1usize << 20, 65_536, 4_097, 1_000, 24] {
        let (a, b) = tokio::io::duplex(256 * 1024);
        tokio::spawn(controller(b, piece));
        let q = super::tests::conn_over(a).await;
        // Sizes around the direct threshold, with and without SUCCESS;
        // several rounds so that pooled buffers are reused.
        let sizes = [
            4096usize,
            32 * 1024,
            128 * 1024,
            12 * 1024,
            36 * 1024,
            1 << 20,
        ];
        let mut held = Vec::new();
        for round in 0..4 {
            let mut jobs = Vec::new();
            for (i, &len) in sizes.iter().enumerate() {
                let q = q.clone();
                let mut sqe = Sqe::new(Opcode(0x02));
                // The controller above reads the length from CDW10.
                sqe.cdw10 = len as u32;
                let hold = (round + i) % 3 == 0;
                jobs.push(tokio::spawn(async move {
                    let c = q.submit(IoRequest::with_read(sqe, len as u32), None).await;
                    assert!(c.is_success(), "{len}: {:?}", c.status);
                    assert_eq!(
                        c.data,
                        pattern(len as u16, len),
                        "{len} bytes, pieces of {piece}"
                    );
                    // Some data are held past the next round's reads.
                    hold.then_some((len, c.data))
                }));
            }
            for j in jobs {
                held.extend(j.await.unwrap());
            }
        }
        // Data held while later reads reused pooled buffers are intact.
        for (len, d) in held {
            assert_eq!(d, pattern(len as u16, len));
        }
        assert!(!q.is_closed());
        q.close();
    }
}
