//! The short ways of [`QueueCore::receive`] (a plain C2HData and a
//! CapsuleResp read in place) accept exactly what the decoder accepts and
//! leave everything else to it: for header variants around the plain ones,
//! `receive` gives the same result and completions as decoding the PDU and
//! handling it.

use bytes::BytesMut;
use nvmp_wire::{Opcode, PduConfig, PduDecoder, Role, Sqe};

use super::*;

fn ready() -> QueueCore<u32> {
    super::tests::ready(4)
}

/// `bytes` through `receive`, and through the decoder then `handle`, on
/// two queues with the same read of 512 bytes in flight.
fn same_as_decoder(bytes: &[u8]) {
    let (mut a, mut b) = (ready(), ready());
    let req = || IoRequest::with_read(Sqe::new(Opcode::READ), 512);
    let cid = a.submit(1, req(), None).unwrap();
    assert_eq!(b.submit(1, req(), None).unwrap(), cid);
    let mut bytes = bytes.to_vec();
    // CCCID of a C2HData, the CQE's CID of a CapsuleResp.
    let at = if bytes[0] == 0x07 { 8 } else { 20 };
    bytes[at..at + 2].copy_from_slice(&cid.to_le_bytes());
    let got = a.receive(&mut BytesMut::from(&bytes[..]));
    let mut dec = PduDecoder::new(PduConfig::initial(Role::Host, 1 << 20));
    let want = match dec.decode(&mut BytesMut::from(&bytes[..])) {
        Ok(Some(p)) => b.handle(p),
        Ok(None) => Ok(()),
        Err(e) => Err(QueueError::Malformed(e)),
    };
    assert_eq!(got, want, "{bytes:02x?}");
    let done =
        |q: &mut QueueCore<u32>| std::iter::from_fn(|| q.pop_completion()).collect::<Vec<_>>();
    assert_eq!(done(&mut a), done(&mut b), "{bytes:02x?}");
}

#[test]
fn short_ways_agree_with_the_decoder() {
    let mut n = 0;
    // C2HData: flags, HLEN, PDO, PLEN, DATAO, DATAL around a plain 512-byte PDU.
    for fl in [0u8, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x01, 0x02, 0x06] {
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
                            same_as_decoder(&b);
                            n += 1;
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
                        same_as_decoder(&b);
                        n += 1;
                    }
                }
            }
        }
    }
    assert!(n > 1000);
}
