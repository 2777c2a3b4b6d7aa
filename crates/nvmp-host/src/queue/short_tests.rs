//! The short ways of [`QueueCore::receive`] (`receive_short`: a plain
//! C2HData or CapsuleResp read in place by `PduDecoder::peek_plain`, a
//! C2HData with header digest by `peek_data_head`) accept exactly what the
//! decoder accepts and leave everything else to it: for header variants
//! around the plain ones, `receive` gives the same result and completions
//! as decoding the PDU and handling it, with and without digests.
//! (nvmp-wire's `pdu::plain` tests hold `peek_plain` itself to the decoder
//! on the same variants, on every decoder configuration.)

use bytes::BytesMut;
use nvmp_wire::crc::crc32c;
use nvmp_wire::{Digests, Opcode, PduConfig, PduDecoder, Role, Sqe};

use super::*;

/// A queue core past its ICReq/ICResp exchange with digests `dg`.
fn ready(dg: Digests) -> QueueCore<u32> {
    super::tests::ready_with(4, dg)
}

/// Recompute HDGST (after HLEN bytes) and DDGST (the last 4 bytes, over
/// PDO..PLEN-4) where `b` has room for them, so that variants get past the
/// digest checks.
fn fix_digests(b: &mut [u8], dg: Digests) {
    let (hlen, pdo) = (usize::from(b[2]), usize::from(b[3]));
    if dg.header && b.len() >= hlen + 4 {
        let c = crc32c(&b[..hlen]);
        b[hlen..hlen + 4].copy_from_slice(&c.to_le_bytes());
    }
    if dg.data && pdo > 0 && b.len() >= pdo + 4 {
        let end = b.len() - 4;
        let c = crc32c(&b[pdo..end]);
        b[end..].copy_from_slice(&c.to_le_bytes());
    }
}

/// `bytes` through `receive`, and through the decoder then `handle`, on
/// two queues with digests `dg` and the same read of 512 bytes in flight:
/// the same result, completions, and bytes left over. Also with the last
/// byte not there yet, and with a data digest, with the DDGST corrupted.
fn same_as_decoder(dg: Digests, bytes: &[u8]) {
    let mut bytes = bytes.to_vec();
    fix_digests(&mut bytes, dg);
    same_as_decoder_exactly(dg, &bytes);
    same_as_decoder_exactly(dg, &bytes[..bytes.len() - 1]);
    if dg.data {
        *bytes.last_mut().unwrap() ^= 0xff;
        same_as_decoder_exactly(dg, &bytes);
    }
}

fn same_as_decoder_exactly(dg: Digests, bytes: &[u8]) {
    let (mut a, mut b) = (ready(dg), ready(dg));
    let req = || IoRequest::with_read(Sqe::new(Opcode::READ), 512);
    let cid = a.submit(1, req(), None).unwrap();
    assert_eq!(b.submit(1, req(), None).unwrap(), cid);
    // The CCCID of a C2HData and the CQE's CID of a CapsuleResp are 0, the
    // first command's CID (the digests cover them).
    assert_eq!(cid, 0);
    let mut ra = BytesMut::from(bytes);
    let got = a.receive(&mut ra);
    let mut dec = PduDecoder::new(PduConfig {
        role: Role::Host,
        digests: dg,
        send_pda: 0,
        max_data_len: 1 << 20,
    });
    let mut rb = BytesMut::from(bytes);
    let want = match dec.decode(&mut rb) {
        Ok(Some(p)) => b.handle(p),
        Ok(None) => Ok(()),
        Err(e) if e.error.field == "PDU.DDGST" => b.on_data_digest_error(&e),
        Err(e) => Err(QueueError::Malformed(e)),
    };
    assert_eq!(got, want, "{dg:?} {bytes:02x?}");
    if got.is_ok() {
        assert_eq!(ra.len(), rb.len(), "{dg:?} {bytes:02x?}");
    }
    let done =
        |q: &mut QueueCore<u32>| std::iter::from_fn(|| q.pop_completion()).collect::<Vec<_>>();
    assert_eq!(done(&mut a), done(&mut b), "{dg:?} {bytes:02x?}");
}

#[test]
fn short_ways_agree_with_the_decoder() {
    let mut n = 0;
    for dg in (0..4).map(Digests::from_byte) {
        let mut check = |b: &[u8]| {
            same_as_decoder(dg, b);
            n += 1;
        };
        // C2HData: flags, HLEN, PDO, PLEN, DATAO, DATAL around a plain
        // 512-byte PDU (and one with a header digest: PDO and PLEN + 4).
        for fl in [
            0u8, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x01, 0x02, 0x06, 0x05, 0x0d, 0x0f,
        ] {
            for hlen in [24u8, 28] {
                for pdo in [24u8, 28, 0] {
                    for plen in [536u32, 535, 24, 540] {
                        for datao in [0u32, 1, u32::MAX] {
                            for datal in [512u32, 511, 0] {
                                let mut b = vec![0x07, fl, hlen, pdo];
                                b.extend_from_slice(&plen.to_le_bytes());
                                b.extend_from_slice(&[0, 0, 0, 0]);
                                b.extend_from_slice(&datao.to_le_bytes());
                                b.extend_from_slice(&datal.to_le_bytes());
                                b.extend_from_slice(&[0; 4]);
                                b.resize(plen.max(24) as usize, 0x5a);
                                check(&b);
                            }
                        }
                    }
                }
            }
        }
        // CapsuleResp: flags, HLEN, PDO, PLEN around the plain one; status in the CQE.
        for fl in [0u8, 0x01, 0x02, 0x04] {
            for hlen in [24u8, 28] {
                for pdo in [0u8, 4] {
                    for plen in [24u32, 28, 23] {
                        for status in [0u16, 0x0002 << 1] {
                            let mut b = vec![0x05, fl, hlen, pdo];
                            b.extend_from_slice(&plen.to_le_bytes());
                            b.extend_from_slice(&[0; 12]);
                            b.extend_from_slice(&[0, 0]);
                            b.extend_from_slice(&status.to_le_bytes());
                            b.resize(plen.max(24) as usize, 0);
                            check(&b);
                        }
                    }
                }
            }
        }
    }
    assert_eq!(n, 4 * (12 * 2 * 3 * 4 * 3 * 3 + 4 * 2 * 2 * 3 * 2));
}

/// Before the queue is ready (ICResp not in yet), a plain C2HData or
/// CapsuleResp is not taken the short way: the PDU is out of sequence,
/// reported as `handle` reports it.
#[test]
fn short_ways_wait_for_the_queue_to_be_ready() {
    let c2h = Pdu::C2HData(nvmp_wire::pdu::DataPdu {
        header: nvmp_wire::pdu::DataHeader {
            cccid: 0,
            ttag: 0,
            offset: 0,
            length: 4,
        },
        last: true,
        success: true,
        data: vec![1u8; 4].into(),
    });
    let resp = Pdu::CapsuleResp(nvmp_wire::Cqe::new(0, nvmp_wire::Status::SUCCESS));
    for p in [c2h, resp] {
        let cfg = || QueueConfig::admin(32, Digests::NONE);
        let (mut a, mut b) = (QueueCore::<u32>::new(cfg()), QueueCore::<u32>::new(cfg()));
        let mut buf = BytesMut::new();
        p.encode(Default::default(), &mut buf);
        let want = b.handle(p);
        assert!(matches!(want, Err(QueueError::Protocol { .. })), "{want:?}");
        assert_eq!(a.receive(&mut buf), want);
        assert!(!a.is_ready());
    }
}
