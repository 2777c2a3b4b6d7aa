//! `PduDecoder::peek_plain` against the decoder: `Some` exactly for the
//! PDUs `decode` takes off the buffer as a C2HData or CapsuleResp in plain
//! form (same header, same data, same length), `None` for everything else.

use super::*;
use crate::status::{Status, StatusCode};
use proptest::prelude::*;

fn decoder(role: Role, digests: Digests, max_data_len: u32) -> PduDecoder {
    PduDecoder::new(PduConfig {
        role,
        digests,
        send_pda: 0,
        max_data_len,
    })
}

fn host() -> PduDecoder {
    decoder(Role::Host, Digests::NONE, 1 << 20)
}

/// What `peek_plain` must answer for `b`, from the decoder alone: the PDU
/// `decode` takes off `b` if it is a C2HData or CapsuleResp whose header
/// is plain (no digests on the connection, no flags but LAST_PDU/SUCCESS,
/// no padding).
fn expected(dec: &PduDecoder, b: &[u8]) -> Option<Plain> {
    let mut buf = BytesMut::from(b);
    let pdu = dec.clone().decode(&mut buf).ok()??;
    let plen = b.len() - buf.len();
    let dg = dec.config.digests;
    match pdu {
        Pdu::C2HData(d)
            if !dg.header
                && !dg.data
                && b[1] & !(flags::LAST_PDU | flags::SUCCESS) == 0
                && usize::from(b[3]) == DATA_HLEN =>
        {
            assert_eq!(d.data, b[DATA_HLEN..plen]);
            Some(Plain::C2HData(DataHead {
                c2h: true,
                header: d.header,
                last: d.last,
                success: d.success,
                pdo: DATA_HLEN,
                plen,
                ddgst: false,
            }))
        }
        Pdu::CapsuleResp(cqe) if !dg.header && b[1] == 0 => Some(Plain::CapsuleResp(cqe)),
        _ => None,
    }
}

/// `peek_plain` on `b` agrees with the decoder (and with `peek_data_head`
/// on a C2HData), says `None` while the PDU is not all there, and ignores
/// what follows the PDU. Returns its answer.
fn agree(dec: &PduDecoder, b: &[u8]) -> Option<Plain> {
    let got = dec.peek_plain(b);
    assert_eq!(got, expected(dec, b), "{:?} {b:02x?}", dec.config);
    if let Some(p) = got {
        if let Plain::C2HData(h) = p {
            assert_eq!(dec.peek_data_head(b), Ok(Some(h)));
            assert_eq!(dec.peek_data_head(&b[..h.pdo]), Ok(Some(h)));
        }
        for short in [0, CH_LEN, DATA_HLEN - 1, DATA_HLEN, p.plen() - 1] {
            let short = short.min(p.plen() - 1);
            assert_eq!(dec.peek_plain(&b[..short]), None, "{short} of {b:02x?}");
        }
        let mut more = b[..p.plen()].to_vec();
        more.extend_from_slice(&[0x07, 0, 0x18, 0x18, 0xff]);
        assert_eq!(dec.peek_plain(&more), got);
    }
    got
}

/// Every decoder configuration the checks depend on: role, digests, and a
/// PDU size limit below and above the 512-byte PDUs of the variants.
fn configs() -> Vec<PduDecoder> {
    let mut v = Vec::new();
    for role in [Role::Host, Role::Controller] {
        for dg in 0..4 {
            for max in [1 << 20, 256] {
                v.push(decoder(role, Digests::from_byte(dg), max));
            }
        }
    }
    v
}

#[test]
fn header_variants_agree_with_the_decoder() {
    let decs = configs();
    let (mut n, mut c2h, mut resp) = (0, 0, 0);
    let mut check = |b: &[u8]| {
        for dec in &decs {
            match agree(dec, b) {
                Some(Plain::C2HData(_)) => c2h += 1,
                Some(Plain::CapsuleResp(_)) => resp += 1,
                None => {}
            }
        }
        n += 1;
    };
    // Data PDUs: type, flags, HLEN, PDO, PLEN, DATAO, DATAL around a plain
    // C2HData of 512 bytes.
    for t in [0x07u8, 0x06, 0x05] {
        for fl in [0u8, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x01, 0x02, 0x06] {
            for hlen in [24u8, 28] {
                for pdo in [24u8, 28, 0] {
                    for plen in [536u32, 535, 24, 540] {
                        for datao in [0u32, 1, u32::MAX] {
                            for datal in [512u32, 511, 0] {
                                let mut b = vec![t, fl, hlen, pdo];
                                b.extend_from_slice(&plen.to_le_bytes());
                                b.extend_from_slice(&[0x34, 0x12, 0, 0]);
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
    }
    // CapsuleResp: type, flags, HLEN, PDO, PLEN around the plain one; status in the CQE.
    for t in [0x05u8, 0x07] {
        for fl in [0u8, 0x01, 0x02, 0x04] {
            for hlen in [24u8, 28] {
                for pdo in [0u8, 4] {
                    for plen in [24u32, 28, 23] {
                        for status in [0u16, 0x0002 << 1] {
                            let mut b = vec![t, fl, hlen, pdo];
                            b.extend_from_slice(&plen.to_le_bytes());
                            b.extend_from_slice(&[0; 12]);
                            b.extend_from_slice(&[0x34, 0x12]);
                            b.extend_from_slice(&status.to_le_bytes());
                            b.resize(plen.max(24) as usize, 0);
                            check(&b);
                        }
                    }
                }
            }
        }
    }
    assert_eq!(n, 3 * 1944 + 2 * 96);
    // Not vacuous, the plain ones are recognised. C2HData: 3 flag variants x
    // PLEN/DATAL 536/512 and 535/511 x DATAO 0 and 1, on one configuration
    // (host, no digests, the higher limit). CapsuleResp: on 4 configurations
    // (host, data digest or not, either limit), the 2 statuses of the
    // CapsuleResp loop and the 9 DATAO/DATAL variants of the data loop's
    // type 5 with PDO 0 and PLEN 24 (those bytes are a CQE).
    assert_eq!((c2h, resp), (3 * 2 * 2, 4 * (2 + 9)));
}

#[test]
fn plain_known_bytes() {
    // C2HData written from the layout: type 7, flags LAST_PDU|SUCCESS, HLEN
    // 24, PDO 24, PLEN 28; CCCID 0x1234, TTAG 0, DATAO 0x200, DATAL 4,
    // reserved; data "abcd".
    #[rustfmt::skip]
    let c2h = [
        0x07, 0x0c, 0x18, 0x18, 0x1c, 0, 0, 0, // common header
        0x34, 0x12, 0, 0,                      // CCCID, TTAG
        0, 0x02, 0, 0,                         // DATAO
        4, 0, 0, 0,                            // DATAL
        0, 0, 0, 0,                            // reserved
        b'a', b'b', b'c', b'd',                // data
    ];
    let head = DataHead {
        c2h: true,
        header: DataHeader {
            cccid: 0x1234,
            ttag: 0,
            offset: 0x200,
            length: 4,
        },
        last: true,
        success: true,
        pdo: 24,
        plen: 28,
        ddgst: false,
    };
    let p = host().peek_plain(&c2h);
    assert_eq!(p, Some(Plain::C2HData(head)));
    assert_eq!(p.unwrap().plen(), 28);
    assert_eq!(host().peek_plain(&c2h[..27]), None);
    // CapsuleResp: type 5, no flags, HLEN 24, PDO 0, PLEN 24; CQE DW0
    // 0x11223344, DW1 0, SQHD 5, SQID 1, CID 0x1234, status word 0x0005
    // (Invalid Field in Command, phase 1).
    #[rustfmt::skip]
    let resp = [
        0x05, 0, 0x18, 0, 0x18, 0, 0, 0, // common header
        0x44, 0x33, 0x22, 0x11,          // DW0
        0, 0, 0, 0,                      // DW1
        5, 0, 1, 0,                      // SQHD, SQID
        0x34, 0x12, 0x05, 0,             // CID, status word
    ];
    let cqe = Cqe {
        dw0: 0x1122_3344,
        dw1: 0,
        sqhd: 5,
        sqid: 1,
        cid: 0x1234,
        status: Status::new(StatusCode::INVALID_FIELD),
        phase: true,
    };
    let p = host().peek_plain(&resp);
    assert_eq!(p, Some(Plain::CapsuleResp(cqe)));
    assert_eq!(p.unwrap().plen(), 24);
    assert_eq!(host().peek_plain(&resp[..23]), None);
    // Not plain: a controller's decoder, digests on (a data digest only
    // concerns the C2HData), padding, a reserved flag.
    let ctrl = decoder(Role::Controller, Digests::NONE, 1 << 20);
    assert_eq!(ctrl.peek_plain(&c2h), None);
    assert_eq!(ctrl.peek_plain(&resp), None);
    for dg in [1, 3] {
        let d = decoder(Role::Host, Digests::from_byte(dg), 1 << 20);
        assert_eq!((d.peek_plain(&c2h), d.peek_plain(&resp)), (None, None));
    }
    let ddgst = decoder(Role::Host, Digests::from_byte(2), 1 << 20);
    assert_eq!(ddgst.peek_plain(&c2h), None);
    assert_eq!(ddgst.peek_plain(&resp), Some(Plain::CapsuleResp(cqe)));
    let mut padded = c2h.to_vec();
    padded[3] = 28;
    padded[4] = 32;
    padded.splice(24..24, [0; 4]);
    assert!(matches!(
        host().decode_one(padded.clone().into()),
        Ok(Pdu::C2HData(_))
    ));
    assert_eq!(host().peek_plain(&padded), None);
    let mut reserved = c2h;
    reserved[1] |= 0x10;
    assert!(host().decode_one(reserved.to_vec().into()).is_ok());
    assert_eq!(host().peek_plain(&reserved), None);
}

fn arb_plain_pdu() -> impl Strategy<Value = Pdu> {
    prop_oneof![
        (
            any::<u16>(),
            prop_oneof![Just(0u32), 0u32..1 << 30, Just(u32::MAX - 600)],
            proptest::collection::vec(any::<u8>(), 1..600),
            0u8..3,
        )
            .prop_map(|(cccid, offset, data, fl)| {
                Pdu::C2HData(DataPdu {
                    header: DataHeader {
                        cccid,
                        ttag: 0,
                        offset,
                        length: data.len() as u32,
                    },
                    last: fl > 0,
                    success: fl == 2,
                    data: data.into(),
                })
            }),
        proptest::collection::vec(any::<u8>(), 16)
            .prop_map(|b| Pdu::CapsuleResp(Cqe::decode(&b).unwrap())),
    ]
}

proptest! {
    /// A C2HData or CapsuleResp encoded without digests or padding is read
    /// back by `peek_plain` as itself; with digests or padding it is not
    /// plain (and the decoder still takes it).
    #[test]
    fn plain_round_trip(p in arb_plain_pdu(), dg in 0u8..4, pda in 0u8..4, tail in proptest::collection::vec(any::<u8>(), 0..32)) {
        let dg = Digests::from_byte(dg);
        let mut b = BytesMut::new();
        p.encode(EncodeOptions { digests: dg, pda }, &mut b);
        let plen = b.len();
        b.extend_from_slice(&tail);
        let dec = decoder(Role::Host, dg, 1 << 20);
        let got = agree(&dec, &b);
        let resp = matches!(p, Pdu::CapsuleResp(_));
        if !dg.header && (resp || (!dg.data && usize::from(b[3]) == DATA_HLEN)) {
            let got = got.expect("plain");
            prop_assert_eq!(got.plen(), plen);
            match (got, &p) {
                (Plain::C2HData(h), Pdu::C2HData(d)) => {
                    prop_assert_eq!((h.header, h.last, h.success), (d.header, d.last, d.success));
                    prop_assert_eq!(&b[h.pdo..h.plen], &d.data[..]);
                }
                (Plain::CapsuleResp(cqe), Pdu::CapsuleResp(c)) => prop_assert_eq!(cqe, *c),
                (g, p) => prop_assert!(false, "{:?} for {:?}", g, p),
            }
        } else {
            prop_assert_eq!(got, None);
            prop_assert!(dec.decode_one(b.freeze().slice(..plen)).is_ok());
        }
    }

    /// Plain PDUs with a header byte changed, on any decoder configuration,
    /// cut short or not: `peek_plain` agrees with the decoder.
    #[test]
    fn plain_agrees_with_the_decoder(
        p in arb_plain_pdu(),
        cfg in (any::<bool>(), 0u8..4, prop_oneof![Just(1u32 << 20), 1u32..700]),
        mutation in proptest::option::of((0usize..24, any::<u8>())),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let mut b = BytesMut::new();
        p.encode(EncodeOptions::default(), &mut b);
        if let Some((i, v)) = mutation {
            b[i] = v;
        }
        if let Some(c) = cut {
            b.truncate(c % (b.len() + 1));
        }
        let role = if cfg.0 { Role::Host } else { Role::Controller };
        agree(&decoder(role, Digests::from_byte(cfg.1), cfg.2), &b);
    }

    /// Any bytes at all: `peek_plain` agrees with the decoder, never panics.
    #[test]
    fn plain_agrees_on_garbage(b in proptest::collection::vec(any::<u8>(), 0..64), dg in 0u8..4) {
        agree(&decoder(Role::Host, Digests::from_byte(dg), 16), &b);
    }
}
