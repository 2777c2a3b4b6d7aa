//! Deterministic tests of the queue core: PDUs in, PDUs and completions out.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use nvmp_wire::pdu::{DataHeader, DataPdu, EncodeOptions, Fes, IcResp, R2t, TermReq};
use nvmp_wire::{Cqe, Digests, Opcode, Pdu, Sqe, Status, StatusCode};

use super::*;

/// A queue core past its ICReq/ICResp exchange (no digests, MAXH2CDATA 8 KiB).
pub(super) fn ready(queue_size: u16) -> QueueCore<u32> {
    ready_with(queue_size, Digests::NONE)
}

/// A queue core past its ICReq/ICResp exchange with digests `dg` (MAXH2CDATA 8 KiB).
pub(super) fn ready_with(queue_size: u16, dg: Digests) -> QueueCore<u32> {
    let mut q = QueueCore::new(QueueConfig {
        qid: 1,
        queue_size,
        digests: dg,
        inline_max: 8192,
        max_data_len: 1 << 20,
    });
    assert!(matches!(q.pop_outbound(), Some(Pdu::IcReq(r)) if r.maxr2t == 0 && r.pfv == 0));
    q.handle(Pdu::IcResp(IcResp {
        pfv: 0,
        cpda: 0,
        digests: dg,
        maxh2cdata: 8192,
    }))
    .unwrap();
    assert!(q.is_ready());
    q
}

fn sent(q: &mut QueueCore<u32>) -> Vec<Pdu> {
    std::iter::from_fn(|| q.pop_outbound()).collect()
}
fn done(q: &mut QueueCore<u32>) -> Vec<(u32, Completion)> {
    std::iter::from_fn(|| q.pop_completion()).collect()
}
fn cqe(cid: u16, code: StatusCode) -> Pdu {
    Pdu::CapsuleResp(Cqe::new(cid, Status::new(code)))
}
fn c2h(cid: u16, offset: u32, data: &[u8], last: bool, success: bool) -> Pdu {
    Pdu::C2HData(DataPdu {
        header: DataHeader {
            cccid: cid,
            ttag: 0,
            offset,
            length: data.len() as u32,
        },
        last,
        success,
        data: Bytes::copy_from_slice(data),
    })
}
fn pattern(n: usize) -> Bytes {
    (0..n).map(|i| (i * 7 + 3) as u8).collect::<Vec<_>>().into()
}

#[test]
fn no_submission_before_icresp() {
    let mut q: QueueCore<u32> = QueueCore::new(QueueConfig::admin(32, Digests::NONE));
    let r = q.submit(1, IoRequest::new(Sqe::new(Opcode::KEEP_ALIVE)), None);
    assert!(matches!(r, Err((1, _, SubmitError::NotReady))));
}

#[test]
fn icresp_with_unrequested_digest_is_rejected() {
    let mut q: QueueCore<u32> = QueueCore::new(QueueConfig::admin(32, Digests::NONE));
    let e = q
        .handle(Pdu::IcResp(IcResp {
            pfv: 0,
            cpda: 0,
            digests: Digests {
                header: true,
                data: false,
            },
            maxh2cdata: 4096,
        }))
        .unwrap_err();
    assert!(matches!(e, QueueError::Protocol { .. }));
}

#[test]
fn inline_write_and_out_of_order_completions() {
    let mut q = ready(4);
    let a = q
        .submit(
            10,
            IoRequest::with_write(Sqe::new(Opcode::WRITE), pattern(4096)),
            None,
        )
        .unwrap();
    let b = q
        .submit(11, IoRequest::with_read(Sqe::new(Opcode::READ), 512), None)
        .unwrap();
    let c = q
        .submit(12, IoRequest::new(Sqe::new(Opcode::FLUSH)), None)
        .unwrap();
    let out = sent(&mut q);
    assert_eq!(out.len(), 3);
    match &out[0] {
        Pdu::CapsuleCmd { sqe, data } => {
            assert_eq!(sqe.cid, a);
            assert_eq!(sqe.dptr, Sgl::in_capsule(0, 4096));
            assert_eq!(data, &pattern(4096));
        }
        p => panic!("{p:?}"),
    }
    match &out[1] {
        Pdu::CapsuleCmd { sqe, data } => {
            assert_eq!(sqe.dptr, Sgl::transport(512));
            assert!(data.is_empty());
        }
        p => panic!("{p:?}"),
    }
    // Completions in reverse order.
    q.handle(cqe(c, StatusCode::SUCCESS)).unwrap();
    q.handle(c2h(b, 0, &[5u8; 512], true, true)).unwrap();
    q.handle(cqe(a, StatusCode::LBA_OUT_OF_RANGE)).unwrap();
    let d = done(&mut q);
    assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), vec![12, 11, 10]);
    assert_eq!(d[1].1.data, Bytes::from(vec![5u8; 512]));
    assert_eq!(d[2].1.status.code, StatusCode::LBA_OUT_OF_RANGE);
    assert_eq!(q.in_flight(), 0);
}

#[test]
fn full_table_backpressure_and_stale_cid() {
    let mut q = ready(2);
    let a = q
        .submit(1, IoRequest::new(Sqe::new(Opcode::FLUSH)), None)
        .unwrap();
    let _b = q
        .submit(2, IoRequest::new(Sqe::new(Opcode::FLUSH)), None)
        .unwrap();
    assert!(matches!(
        q.submit(3, IoRequest::new(Sqe::new(Opcode::FLUSH)), None),
        Err((3, _, SubmitError::Full))
    ));
    q.handle(cqe(a, StatusCode::SUCCESS)).unwrap();
    let c = q
        .submit(3, IoRequest::new(Sqe::new(Opcode::FLUSH)), None)
        .unwrap();
    assert_ne!(a, c);
    // A duplicated completion for `a` must not complete `c`.
    let e = q.handle(cqe(a, StatusCode::SUCCESS)).unwrap_err();
    assert!(matches!(e, QueueError::Protocol { .. }), "{e}");
}

#[test]
fn r2t_sequence_split_at_maxh2cdata() {
    let mut q = ready(4);
    let data = pattern(40_000);
    let cid = q
        .submit(
            7,
            IoRequest::with_write(Sqe::new(Opcode::WRITE), data.clone()),
            None,
        )
        .unwrap();
    match &sent(&mut q)[..] {
        [Pdu::CapsuleCmd { sqe, data }] => {
            assert_eq!(sqe.dptr, Sgl::transport(40_000));
            assert!(data.is_empty());
        }
        p => panic!("{p:?}"),
    }
    // Two R2Ts: 0..20000 and 20000..40000; each split in 8192-byte H2CData.
    let mut got = Vec::new();
    for (i, (off, len)) in [(0u32, 20_000u32), (20_000, 20_000)]
        .into_iter()
        .enumerate()
    {
        q.handle(Pdu::R2t(R2t {
            cccid: cid,
            ttag: i as u16 + 5,
            offset: off,
            length: len,
        }))
        .unwrap();
        let pdus = sent(&mut q);
        assert_eq!(pdus.len(), 3);
        for (j, p) in pdus.iter().enumerate() {
            let Pdu::H2CData(d) = p else { panic!("{p:?}") };
            assert_eq!(d.header.ttag, i as u16 + 5);
            assert!(d.header.length <= 8192);
            assert_eq!(d.last, j == 2);
            got.extend_from_slice(&d.data);
        }
    }
    assert_eq!(Bytes::from(got), data);
    q.handle(cqe(cid, StatusCode::SUCCESS)).unwrap();
    assert_eq!(done(&mut q)[0].0, 7);
}

#[test]
fn r2t_out_of_range_is_fatal_with_termreq() {
    let mut q = ready(4);
    let cid = q
        .submit(
            1,
            IoRequest::with_write(Sqe::new(Opcode::WRITE), pattern(10_000)),
            None,
        )
        .unwrap();
    sent(&mut q);
    let e = q
        .handle(Pdu::R2t(R2t {
            cccid: cid,
            ttag: 0,
            offset: 8192,
            length: 4096,
        }))
        .unwrap_err();
    assert!(matches!(e, QueueError::Protocol { fes, .. } if fes == Fes::DATA_OUT_OF_RANGE));
}

#[test]
fn c2h_reassembly_and_out_of_range() {
    let mut q = ready(4);
    let cid = q
        .submit(1, IoRequest::with_read(Sqe::new(Opcode::READ), 8192), None)
        .unwrap();
    q.handle(c2h(cid, 0, &[1u8; 4096], false, false)).unwrap();
    q.handle(c2h(cid, 4096, &[2u8; 4096], true, false)).unwrap();
    q.handle(cqe(cid, StatusCode::SUCCESS)).unwrap();
    let d = done(&mut q);
    assert_eq!(&d[0].1.data[..4096], &[1u8; 4096][..]);
    assert_eq!(&d[0].1.data[4096..], &[2u8; 4096][..]);

    let cid = q
        .submit(2, IoRequest::with_read(Sqe::new(Opcode::READ), 4096), None)
        .unwrap();
    let mut buf = BytesMut::new();
    let opts = q.encode_options();
    c2h(cid, 4096, &[0u8; 512], true, true).encode(opts, &mut buf);
    let e = q.receive(&mut buf).unwrap_err();
    assert!(matches!(e, QueueError::Protocol { fes, .. } if fes == Fes::DATA_OUT_OF_RANGE));
    // H2CTermReq queued, connection failed, command completed with a path status.
    assert!(
        matches!(sent(&mut q).last(), Some(Pdu::H2CTermReq(t)) if t.fes == Fes::DATA_OUT_OF_RANGE)
    );
    q.fail_all(Status::new(StatusCode::ABORTED_BY_HOST));
    let d = done(&mut q);
    assert_eq!(d[0].1.status.code, StatusCode::ABORTED_BY_HOST);
    assert!(d[0].1.status.is_path_error());
}

#[test]
fn success_flag_before_all_data_is_fatal() {
    let mut q = ready(4);
    let cid = q
        .submit(1, IoRequest::with_read(Sqe::new(Opcode::READ), 8192), None)
        .unwrap();
    let e = q.handle(c2h(cid, 0, &[1u8; 4096], true, true)).unwrap_err();
    assert!(matches!(e, QueueError::Protocol { .. }));
}

#[test]
fn garbage_sends_termreq() {
    let mut q = ready(4);
    q.submit(1, IoRequest::new(Sqe::new(Opcode::FLUSH)), None)
        .unwrap();
    sent(&mut q);
    let mut buf = BytesMut::from(&b"GARBAGE! this is not an NVMe/TCP PDU at all"[..]);
    let e = q.receive(&mut buf).unwrap_err();
    assert!(matches!(e, QueueError::Malformed(_)));
    let out = sent(&mut q);
    assert!(matches!(&out[..], [Pdu::H2CTermReq(t)] if t.fes == Fes::INVALID_HEADER_FIELD));
    assert!(q.is_failed());
    q.fail_all(Status::new(StatusCode::ABORTED_BY_HOST));
    assert_eq!(done(&mut q).len(), 1);
}

#[test]
fn c2h_termreq_is_fatal() {
    let mut q = ready(4);
    let e = q
        .handle(Pdu::C2HTermReq(TermReq {
            fes: Fes::PDU_SEQUENCE_ERROR,
            fei: 0,
            data: Bytes::new(),
        }))
        .unwrap_err();
    assert_eq!(e, QueueError::TermReq { fes: 2, fei: 0 });
}

#[test]
fn deadlines() {
    let t0 = Instant::now();
    let mut q = ready(4);
    q.submit(
        1,
        IoRequest::new(Sqe::new(Opcode::ASYNC_EVENT_REQUEST)),
        None,
    )
    .unwrap();
    let cid = q
        .submit(
            2,
            IoRequest::new(Sqe::new(Opcode::FLUSH)),
            Some(t0 + Duration::from_secs(30)),
        )
        .unwrap();
    assert_eq!(q.next_deadline(), Some(t0 + Duration::from_secs(30)));
    assert!(q.take_rearm(), "first deadline: the timer must be armed");
    assert!(!q.take_rearm(), "the flag clears");
    assert_eq!(
        q.poll_timeout(t0 + Duration::from_secs(29)).unwrap(),
        Some(t0 + Duration::from_secs(30)),
        "armed for the pending deadline"
    );
    // A later deadline needs no re-arm, an earlier one does.
    q.submit(
        3,
        IoRequest::new(Sqe::new(Opcode::FLUSH)),
        Some(t0 + Duration::from_secs(31)),
    )
    .unwrap();
    assert!(!q.take_rearm());
    let cid4 = q
        .submit(
            4,
            IoRequest::new(Sqe::new(Opcode::FLUSH)),
            Some(t0 + Duration::from_secs(20)),
        )
        .unwrap();
    assert!(q.take_rearm());
    assert_eq!(
        q.poll_timeout(t0 + Duration::from_secs(19)).unwrap(),
        Some(t0 + Duration::from_secs(20))
    );
    let e = q.poll_timeout(t0 + Duration::from_secs(20)).unwrap_err();
    assert_eq!(
        e,
        QueueError::Timeout {
            cid: cid4,
            opcode: 0
        },
        "the earliest fires first"
    );
    assert_ne!(cid, cid4);
    q.fail_all(Status::new(StatusCode::ABORTED_BY_HOST));
    assert_eq!(done(&mut q).len(), 4, "the AER is torn down too");
}

#[test]
fn data_digest_error_fails_the_command_not_the_connection() {
    let dg = Digests {
        header: true,
        data: true,
    };
    let mut q = ready_with(4, dg);
    let a = q
        .submit(1, IoRequest::with_read(Sqe::new(Opcode::READ), 512), None)
        .unwrap();
    let b = q
        .submit(2, IoRequest::with_read(Sqe::new(Opcode::READ), 512), None)
        .unwrap();
    let opts = q.encode_options();
    let mut buf = BytesMut::new();
    c2h(a, 0, &[1u8; 512], true, true).encode(opts, &mut buf);
    let n = buf.len();
    buf[n - 1] ^= 0xFF; // corrupt the data digest
    c2h(b, 0, &[2u8; 512], true, true).encode(opts, &mut buf);
    q.receive(&mut buf).unwrap();
    assert!(!q.is_failed());
    let d = done(&mut q);
    assert_eq!(d[0].0, 1);
    assert_eq!(d[0].1.status.code, StatusCode::DATA_TRANSFER_ERROR);
    assert_eq!(d[1].1.data, Bytes::from(vec![2u8; 512]));
}

fn read_req(len: u32) -> IoRequest {
    IoRequest::with_read(Sqe::new(Opcode::READ), len)
}

#[test]
fn stalled_queue_retires_reads_not_writes() {
    let mut q = ready(8);
    let t0 = Instant::now();
    let dl = Some(t0 + Duration::from_secs(30));
    q.set_read_stall(Some(Duration::from_secs(1)));
    assert!(q.take_rearm(), "setting the bound asks for a timer check");
    let r = q.submit(1, read_req(4), dl).unwrap();
    let w = q
        .submit(
            2,
            IoRequest::with_write(Sqe::new(Opcode::WRITE), pattern(16)),
            dl,
        )
        .unwrap();
    sent(&mut q);
    // Busy from t0: checks every half bound.
    assert_eq!(
        q.poll_timeout(t0).unwrap(),
        Some(t0 + Duration::from_millis(500))
    );
    let t1 = t0 + Duration::from_millis(500);
    assert_eq!(
        q.poll_timeout(t1).unwrap(),
        Some(t1 + Duration::from_millis(500))
    );
    assert!(
        done(&mut q).is_empty() && !q.is_stalled(),
        "half the bound: nothing yet"
    );
    let t2 = t0 + Duration::from_secs(1);
    q.poll_timeout(t2).unwrap();
    let d = done(&mut q);
    assert_eq!(d.len(), 1, "the read is retired, the write stays");
    assert_eq!(d[0].0, 1);
    assert_eq!(d[0].1.status.code, StatusCode::ABORTED_BY_HOST);
    assert!(
        d[0].1.status.is_path_error(),
        "a path error: multipath sends it elsewhere"
    );
    assert!(q.is_stalled());
    assert!(q.stalled_with_unretired(), "the write still waits there");
    assert_eq!(
        q.take_slot_delta(),
        (0, 1),
        "the retired read keeps its slot"
    );
    assert_eq!(q.in_flight(), 2);
    assert_eq!(q.reads_retired(), 1);
    // A read submitted to the stalled queue is retired at the next check.
    q.submit(3, read_req(4), dl).unwrap();
    q.poll_timeout(t2 + Duration::from_millis(500)).unwrap();
    assert_eq!(
        done(&mut q).iter().map(|d| d.0).collect::<Vec<_>>(),
        vec![3]
    );
    assert_eq!(q.take_slot_delta(), (0, 1));
    // The late answer to the first read: accepted, dropped, slot freed.
    q.handle(c2h(r, 0, b"late", true, true)).unwrap();
    assert!(done(&mut q).is_empty());
    assert_eq!(q.take_slot_delta(), (1, 0));
    assert!(
        !q.is_stalled(),
        "a response: the queue makes progress again"
    );
    assert_eq!(q.in_flight(), 2);
    q.handle(cqe(w, StatusCode::SUCCESS)).unwrap();
    assert_eq!(
        done(&mut q).iter().map(|d| d.0).collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(q.take_slot_delta(), (0, 0));
}

#[test]
fn progress_keeps_reads_and_idle_queues_need_no_checks() {
    let mut q = ready(8);
    let t0 = Instant::now();
    let dl = Some(t0 + Duration::from_secs(30));
    q.set_read_stall(Some(Duration::from_secs(1)));
    // An AER alone (no deadline) is not outstanding work.
    q.submit(
        9,
        IoRequest::new(Sqe::new(Opcode::ASYNC_EVENT_REQUEST)),
        None,
    )
    .unwrap();
    assert_eq!(q.poll_timeout(t0).unwrap(), None);
    let a = q.submit(1, read_req(4), dl).unwrap();
    q.submit(2, read_req(4), dl).unwrap();
    q.poll_timeout(t0).unwrap();
    // Something completes between every two checks: a slow queue, not a stalled one.
    for i in 1..=6u64 {
        if i == 1 {
            q.handle(c2h(a, 0, b"data", true, true)).unwrap();
        } else {
            let c = q.submit(10 + i as u32, read_req(4), dl).unwrap();
            q.handle(c2h(c, 0, b"data", true, true)).unwrap();
        }
        q.poll_timeout(t0 + Duration::from_millis(500 * i)).unwrap();
        assert!(!q.is_stalled());
    }
    assert!(done(&mut q).iter().all(|d| d.1.status.is_success()));
    assert_eq!(q.reads_retired(), 0);
    // Off: never retired.
    q.set_read_stall(None);
    assert_eq!(q.poll_timeout(t0 + Duration::from_secs(20)).unwrap(), dl);
    assert_eq!(q.reads_retired(), 0);
}

#[test]
fn a_retired_read_still_times_out_the_queue() {
    let mut q = ready(8);
    let t0 = Instant::now();
    q.set_read_stall(Some(Duration::from_millis(100)));
    let r = q
        .submit(1, read_req(4), Some(t0 + Duration::from_secs(2)))
        .unwrap();
    q.poll_timeout(t0).unwrap();
    q.poll_timeout(t0 + Duration::from_millis(100)).unwrap();
    assert_eq!(done(&mut q).len(), 1);
    assert!(
        q.is_stalled() && !q.stalled_with_unretired(),
        "only the retired read is left"
    );
    // Nothing in flight but the retired read: no more stall checks, the deadline stays.
    assert_eq!(
        q.poll_timeout(t0 + Duration::from_millis(150)).unwrap(),
        Some(t0 + Duration::from_secs(2))
    );
    let e = q.poll_timeout(t0 + Duration::from_secs(2)).unwrap_err();
    assert_eq!(e, QueueError::Timeout { cid: r, opcode: 2 });
}

/// A large C2HData whose data are not all in: the header is taken off the
/// receive buffer and the data, read elsewhere, complete the read as if
/// the PDU had come whole. Small, whole, or foreign PDUs are left alone.
#[test]
fn large_c2h_data_read_directly() {
    let mut q = ready(4);
    let len = 64 * 1024;
    let big = q.submit(1, read_req(len), None).unwrap();
    let small = q.submit(2, read_req(4096), None).unwrap();
    sent(&mut q);
    let data = pattern(len as usize);
    let mut wire = BytesMut::new();
    c2h(big, 0, &data, true, true).encode(EncodeOptions::default(), &mut wire);
    // Header and 100 bytes of data in.
    let mut buf = BytesMut::from(&wire[..24 + 100]);
    q.receive(&mut buf).unwrap();
    assert!(
        q.direct_begin(&mut buf, 128 * 1024).is_none(),
        "under the minimum"
    );
    let d = q.direct_begin(&mut buf, 32 * 1024).expect("direct");
    assert_eq!(d.data_len(), len as usize);
    assert_eq!(&buf[..], &data[..100], "only the header was taken");
    q.direct_done(d, data.clone()).unwrap();
    assert_eq!(
        done(&mut q),
        vec![(1, {
            let mut c = Completion::with_status(Status::SUCCESS);
            c.data = data.clone();
            c
        })]
    );
    // A small one, whole or not, goes through receive.
    let mut wire = BytesMut::new();
    c2h(small, 0, &data[..4096], true, true).encode(EncodeOptions::default(), &mut wire);
    let mut part = BytesMut::from(&wire[..30]);
    assert!(q.direct_begin(&mut part, 1024 * 1024).is_none());
    assert!(
        q.direct_begin(&mut part, 1).is_some(),
        "at any size over the minimum"
    );
    // An unknown command is left for receive to reject.
    let mut wire = BytesMut::new();
    c2h(0x3ff, 0, &data, true, true).encode(EncodeOptions::default(), &mut wire);
    let mut part = BytesMut::from(&wire[..200]);
    assert!(q.direct_begin(&mut part, 1).is_none());
    assert_eq!(part.len(), 200);
}

/// Data of a direct read that break the protocol fail the queue as
/// `receive` would (here: a C2HData with SUCCESS, no CapsuleResp, for a
/// read of the wrong length cannot begin; a connection that failed while
/// the data were read reports Closed).
#[test]
fn direct_read_on_a_failed_queue_is_closed() {
    let mut q = ready(4);
    let cid = q.submit(1, read_req(40_000), None).unwrap();
    let data = pattern(40_000);
    let mut wire = BytesMut::new();
    c2h(cid, 0, &data[..39_000], true, true).encode(EncodeOptions::default(), &mut wire);
    let mut part = BytesMut::from(&wire[..100]);
    assert!(q.direct_begin(&mut part, 1).is_none(), "not the whole read");
    let mut wire = BytesMut::new();
    c2h(cid, 0, &data, true, true).encode(EncodeOptions::default(), &mut wire);
    let mut part = BytesMut::from(&wire[..100]);
    let d = q.direct_begin(&mut part, 1).unwrap();
    q.fail_all(Status::new(StatusCode::ABORTED_BY_HOST));
    assert_eq!(q.direct_done(d, data), Err(QueueError::Closed));
}

/// Whole C2HData PDUs in the receive buffer (the short way, no PDU built):
/// the data are exact slices, and a bad header fails the queue with the
/// decoder's own error and a TermReq.
#[test]
fn whole_c2h_data_from_the_receive_buffer() {
    let mut q = ready(4);
    let a = q.submit(1, read_req(4096), None).unwrap();
    let b = q.submit(2, read_req(512), None).unwrap();
    sent(&mut q);
    let (da, db) = (pattern(4096), pattern(512));
    let enc = EncodeOptions::default();
    let mut buf = BytesMut::new();
    c2h(a, 0, &da, true, false).encode(enc, &mut buf);
    cqe(a, StatusCode::SUCCESS).encode(enc, &mut buf);
    c2h(b, 0, &db, true, true).encode(enc, &mut buf);
    let cut = buf.len() - 10;
    let mut rest = buf.split_off(cut);
    q.receive(&mut buf).unwrap();
    assert_eq!(buf.len(), cut - 4096 - 24 - 24, "the partial PDU is kept");
    buf.unsplit(std::mem::take(&mut rest));
    q.receive(&mut buf).unwrap();
    assert!(buf.is_empty());
    let got = done(&mut q);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0, &got[0].1.data), (1, &da));
    assert_eq!((got[1].0, &got[1].1.data), (2, &db));
    // DATAL that disagrees with PLEN.
    let c = q.submit(3, read_req(4096), None).unwrap();
    sent(&mut q);
    let mut buf = BytesMut::new();
    c2h(c, 0, &da, true, true).encode(enc, &mut buf);
    buf[16] ^= 1;
    let e = q.receive(&mut buf).unwrap_err();
    assert!(
        matches!(&e, QueueError::Malformed(p) if p.error.field == "DATA.DATAL"),
        "{e:?}"
    );
    assert!(matches!(sent(&mut q)[..], [Pdu::H2CTermReq(_)]));
}
