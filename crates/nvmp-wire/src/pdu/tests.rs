use super::*;
use crate::status::Status;
use proptest::prelude::*;

fn host(dg: Digests) -> PduDecoder {
    PduDecoder::new(PduConfig {
        role: Role::Host,
        digests: dg,
        send_pda: 0,
        max_data_len: 1 << 20,
    })
}
fn ctrl(dg: Digests) -> PduDecoder {
    PduDecoder::new(PduConfig {
        role: Role::Controller,
        digests: dg,
        send_pda: 0,
        max_data_len: 1 << 20,
    })
}

#[test]
fn icreq_known_bytes() {
    // Written from the layout: type 0, flags 0, hlen 128, pdo 0, plen 128,
    // PFV 0, HPDA 0, DGST 3 (header + data), MAXR2T 0.
    let mut b = vec![0u8; 128];
    b[2] = 128;
    b[4] = 128;
    b[11] = 3;
    let pdu = ctrl(Digests::NONE)
        .decode_one(Bytes::from(b.clone()))
        .unwrap();
    let want = Pdu::IcReq(IcReq {
        pfv: 0,
        hpda: 0,
        digests: Digests {
            header: true,
            data: true,
        },
        maxr2t: 0,
    });
    assert_eq!(pdu, want);
    let mut out = BytesMut::new();
    want.encode(EncodeOptions::default(), &mut out);
    assert_eq!(&out[..], &b[..]);
}

#[test]
fn icresp_rejects_small_maxh2cdata() {
    let mut b = vec![0u8; 128];
    b[0] = 1;
    b[2] = 128;
    b[4] = 128;
    b[12..16].copy_from_slice(&1024u32.to_le_bytes());
    let err = host(Digests::NONE).decode_one(Bytes::from(b)).unwrap_err();
    assert_eq!(err.error.field, "ICResp.MAXH2CDATA");
}

#[test]
fn capsule_resp_with_header_digest_known_bytes() {
    let mut b = vec![0u8; 28];
    b[0] = 0x05;
    b[1] = 0x01; // HDGSTF
    b[2] = 24;
    b[4] = 28;
    // CQE: CID 7, success
    b[8 + 12] = 7;
    let c = crc32c(&b[..24]);
    b[24..28].copy_from_slice(&c.to_le_bytes());
    let pdu = host(Digests {
        header: true,
        data: false,
    })
    .decode_one(Bytes::from(b.clone()))
    .unwrap();
    let Pdu::CapsuleResp(cqe) = &pdu else {
        panic!("{pdu:?}")
    };
    assert_eq!(cqe.cid, 7);
    assert_eq!(cqe.status, Status::SUCCESS);
    let mut out = BytesMut::new();
    pdu.encode(
        EncodeOptions {
            digests: Digests {
                header: true,
                data: false,
            },
            pda: 0,
        },
        &mut out,
    );
    assert_eq!(&out[..], &b[..]);
    // A flipped bit is a header digest error.
    b[10] ^= 1;
    let err = host(Digests {
        header: true,
        data: false,
    })
    .decode_one(Bytes::from(b))
    .unwrap_err();
    assert_eq!(err.fes, Fes::HEADER_DIGEST_ERROR);
}

#[test]
fn c2h_data_known_bytes_with_digests() {
    // C2HData, HDGSTF|DDGSTF|LAST_PDU|SUCCESS, hlen 24, pdo 28, 8 data bytes.
    let data = *b"ABCDEFGH";
    let mut b = vec![0u8; 24];
    b[0] = 0x07;
    b[1] = 0x01 | 0x02 | 0x04 | 0x08;
    b[2] = 24;
    b[3] = 28;
    b[4..8].copy_from_slice(&(28u32 + 8 + 4).to_le_bytes());
    b[8..10].copy_from_slice(&3u16.to_le_bytes()); // CCCID
    b[12..16].copy_from_slice(&512u32.to_le_bytes()); // DATAO
    b[16..20].copy_from_slice(&8u32.to_le_bytes()); // DATAL
    let h = crc32c(&b[..24]);
    b.extend_from_slice(&h.to_le_bytes());
    b.extend_from_slice(&data);
    b.extend_from_slice(&crc32c(&data).to_le_bytes());
    let dg = Digests {
        header: true,
        data: true,
    };
    let pdu = host(dg).decode_one(Bytes::from(b.clone())).unwrap();
    let Pdu::C2HData(d) = &pdu else { panic!() };
    assert_eq!(
        d.header,
        DataHeader {
            cccid: 3,
            ttag: 0,
            offset: 512,
            length: 8
        }
    );
    assert!(d.last && d.success);
    assert_eq!(&d.data[..], &data);
    let mut out = BytesMut::new();
    pdu.encode(
        EncodeOptions {
            digests: dg,
            pda: 0,
        },
        &mut out,
    );
    assert_eq!(&out[..], &b[..]);
    // Corrupt data: data digest error.
    let mut bad = b.clone();
    bad[30] ^= 0x80;
    assert_eq!(
        host(dg)
            .decode_one(Bytes::from(bad))
            .unwrap_err()
            .error
            .field,
        "PDU.DDGST"
    );
}

#[test]
fn capsule_cmd_in_capsule_data_and_padding() {
    let mut sqe = Sqe::new(crate::sqe::Opcode::WRITE);
    sqe.cid = 9;
    sqe.dptr = crate::sqe::Sgl::in_capsule(0, 5);
    let pdu = Pdu::CapsuleCmd {
        sqe,
        data: Bytes::from_static(b"hello"),
    };
    let mut out = BytesMut::new();
    // pda 7 => 32-byte alignment: pdo = 96
    pdu.encode(
        EncodeOptions {
            digests: Digests::NONE,
            pda: 7,
        },
        &mut out,
    );
    assert_eq!(out[3], 96);
    assert_eq!(out.len(), 96 + 5);
    assert_eq!(&out[96..], b"hello");
    assert_eq!(ctrl(Digests::NONE).decode_one(out.freeze()).unwrap(), pdu);
}

#[test]
fn streaming_decode_split_anywhere() {
    let mut stream = BytesMut::new();
    let mut pdus = vec![];
    for i in 0..5u16 {
        let mut cqe = crate::cqe::Cqe::new(i, Status::SUCCESS);
        cqe.dw0 = i as u32;
        pdus.push(Pdu::CapsuleResp(cqe));
        pdus.push(Pdu::C2HData(DataPdu {
            header: DataHeader {
                cccid: i,
                ttag: 0,
                offset: 0,
                length: 3,
            },
            last: true,
            success: false,
            data: Bytes::from_static(b"xyz"),
        }));
    }
    let dg = Digests {
        header: true,
        data: true,
    };
    for p in &pdus {
        p.encode(
            EncodeOptions {
                digests: dg,
                pda: 0,
            },
            &mut stream,
        );
    }
    for chunk in [1usize, 7, 13, 64] {
        let mut dec = host(dg);
        let mut buf = BytesMut::new();
        let mut got = vec![];
        for c in stream.chunks(chunk) {
            buf.extend_from_slice(c);
            while let Some(p) = dec.decode(&mut buf).unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got, pdus);
    }
}

#[test]
fn hostile_headers() {
    let d = ctrl(Digests::NONE);
    // Unknown type.
    let e = d.needed(&[0x42, 0, 24, 0, 24, 0, 0, 0]).unwrap_err();
    assert_eq!(e.error.field, "PDU.PDU-TYPE");
    // A host-bound PDU arriving at a controller.
    let e = d.needed(&[0x05, 0, 24, 0, 24, 0, 0, 0]).unwrap_err();
    assert_eq!(e.error.field, "PDU.PDU-TYPE");
    // Wrong HLEN.
    let e = d.needed(&[0x04, 0, 70, 0, 72, 0, 0, 0]).unwrap_err();
    assert_eq!((e.error.field, e.fei), ("PDU.HLEN", 2));
    // Enormous PLEN.
    let e = d
        .needed(&[0x04, 0, 72, 72, 0xff, 0xff, 0xff, 0xff])
        .unwrap_err();
    assert_eq!(e.error.field, "PDU.PLEN");
    assert_eq!(e.fes, Fes::DATA_LIMIT_EXCEEDED);
    // PDO inside the header.
    let e = d.needed(&[0x04, 0, 72, 8, 100, 0, 0, 0]).unwrap_err();
    assert_eq!(e.error.field, "PDU.PDO");
    // Header digest flag when none negotiated.
    let e = d.needed(&[0x04, 1, 72, 0, 76, 0, 0, 0]).unwrap_err();
    assert_eq!(e.error.field, "PDU.FLAGS.HDGSTF");
}

#[test]
fn h2c_data_datal_must_match() {
    let mut b = vec![0u8; 24];
    b[0] = 0x06;
    b[2] = 24;
    b[3] = 24;
    b[4] = 24 + 4;
    b[16] = 5; // DATAL 5 but 4 bytes present
    b.extend_from_slice(b"abcd");
    let e = ctrl(Digests::NONE).decode_one(Bytes::from(b)).unwrap_err();
    assert_eq!(e.error.field, "DATA.DATAL");
}

#[test]
fn term_req_truncates_long_data() {
    let t = Pdu::C2HTermReq(TermReq {
        fes: Fes::PDU_SEQUENCE_ERROR,
        fei: 0,
        data: Bytes::from(vec![7u8; 300]),
    });
    let mut out = BytesMut::new();
    t.encode(EncodeOptions::default(), &mut out);
    assert_eq!(out.len(), TERM_REQ_MAX_LEN);
    let Pdu::C2HTermReq(back) = host(Digests::NONE).decode_one(out.freeze()).unwrap() else {
        panic!()
    };
    assert_eq!(back.data.len(), 128);
}

fn arb_digests() -> impl Strategy<Value = Digests> {
    (any::<bool>(), any::<bool>()).prop_map(|(header, data)| Digests { header, data })
}

fn arb_data() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 1..300).prop_map(Bytes::from)
}

fn arb_sqe() -> impl Strategy<Value = Sqe> {
    proptest::collection::vec(any::<u8>(), 64).prop_map(|b| Sqe::decode(&b).unwrap())
}

fn arb_c2h() -> impl Strategy<Value = Pdu> {
    prop_oneof![
        (
            any::<u16>(),
            0u8..32,
            0u8..4,
            (4096u32..1 << 20).prop_map(|x| x & !3)
        )
            .prop_map(|(pfv, cpda, d, m)| {
                Pdu::IcResp(IcResp {
                    pfv,
                    cpda,
                    digests: Digests::from_byte(d),
                    maxh2cdata: m,
                })
            }),
        (
            any::<u16>(),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..128)
        )
            .prop_map(|(f, fei, d)| Pdu::C2HTermReq(TermReq {
                fes: Fes(f),
                fei,
                data: Bytes::from(d)
            })),
        proptest::collection::vec(any::<u8>(), 16)
            .prop_map(|b| Pdu::CapsuleResp(Cqe::decode(&b).unwrap())),
        (any::<u16>(), 0u32..1 << 30, arb_data(), any::<bool>()).prop_map(
            |(cccid, off, data, s)| {
                Pdu::C2HData(DataPdu {
                    header: DataHeader {
                        cccid,
                        ttag: 0,
                        offset: off,
                        length: data.len() as u32,
                    },
                    last: s || off % 2 == 0,
                    success: s,
                    data,
                })
            }
        ),
        (any::<u16>(), any::<u16>(), 0u32..1 << 30, 1u32..1 << 20).prop_map(
            |(cccid, ttag, offset, length)| Pdu::R2t(R2t {
                cccid,
                ttag,
                offset,
                length
            })
        ),
    ]
}

fn arb_h2c() -> impl Strategy<Value = Pdu> {
    prop_oneof![
        (any::<u16>(), 0u8..32, 0u8..4, any::<u32>()).prop_map(|(pfv, hpda, d, maxr2t)| {
            Pdu::IcReq(IcReq {
                pfv,
                hpda,
                digests: Digests::from_byte(d),
                maxr2t,
            })
        }),
        (
            any::<u16>(),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..128)
        )
            .prop_map(|(f, fei, d)| Pdu::H2CTermReq(TermReq {
                fes: Fes(f),
                fei,
                data: Bytes::from(d)
            })),
        (arb_sqe(), proptest::option::of(arb_data())).prop_map(|(sqe, data)| Pdu::CapsuleCmd {
            sqe,
            data: data.unwrap_or_default()
        }),
        (
            any::<u16>(),
            any::<u16>(),
            0u32..1 << 30,
            arb_data(),
            any::<bool>()
        )
            .prop_map(|(cccid, ttag, off, data, last)| {
                Pdu::H2CData(DataPdu {
                    header: DataHeader {
                        cccid,
                        ttag,
                        offset: off,
                        length: data.len() as u32,
                    },
                    last,
                    success: false,
                    data,
                })
            }),
    ]
}

/// `p` encoded, with one byte set to `val` at `idx` (mod length) when
/// `mutation` is given; None when the mutation hit PLEN (it no longer
/// matches the buffer, and the decoders differ on that by design).
fn encoded_maybe_mutated(
    p: &Pdu,
    dg: Digests,
    pda: u8,
    mutation: Option<(usize, u8)>,
) -> Option<BytesMut> {
    let mut out = BytesMut::new();
    p.encode(EncodeOptions { digests: dg, pda }, &mut out);
    if let Some((idx, val)) = mutation {
        let i = idx % out.len();
        out[i] = val;
    }
    let plen = u32::from_le_bytes([out[4], out[5], out[6], out[7]]) as usize;
    (plen == out.len()).then_some(out)
}

proptest! {
    #[test]
    fn round_trip_c2h(p in arb_c2h(), dg in arb_digests(), pda in 0u8..32) {
        let dg = if matches!(p, Pdu::IcResp(_) | Pdu::C2HTermReq(_)) { Digests::NONE } else { dg };
        let mut out = BytesMut::new();
        p.encode(EncodeOptions { digests: dg, pda }, &mut out);
        let mut dec = host(dg);
        let got = dec.decode(&mut out).unwrap().unwrap();
        prop_assert!(out.is_empty());
        prop_assert_eq!(got, p);
    }

    #[test]
    fn round_trip_h2c(p in arb_h2c(), dg in arb_digests(), pda in 0u8..32) {
        let dg = if matches!(p, Pdu::IcReq(_) | Pdu::H2CTermReq(_)) { Digests::NONE } else { dg };
        let mut out = BytesMut::new();
        p.encode(EncodeOptions { digests: dg, pda }, &mut out);
        let got = ctrl(dg).decode_one(out.freeze()).unwrap();
        prop_assert_eq!(got, p);
    }

    /// The streaming decoder (which decodes a PDU without data in place,
    /// without taking a reference to the buffer) and `decode_one` agree on
    /// every PDU and every error, for valid and for mutated bytes.
    #[test]
    fn streaming_agrees_with_decode_one(
        p in arb_h2c(), q in arb_c2h(), dg in arb_digests(), pda in 0u8..32,
        idx in any::<usize>(), val in any::<u8>(), mutate in any::<bool>(),
    ) {
        for (p, mut dec) in [(p, ctrl(dg)), (q, host(dg))] {
            let Some(out) = encoded_maybe_mutated(&p, dg, pda, mutate.then_some((idx, val))) else {
                continue; // a mutated PLEN: decoders differ on it by design
            };
            let one = dec.decode_one(out.clone().freeze());
            let mut buf = out.clone();
            match (one, dec.decode(&mut buf)) {
                (Ok(a), Ok(Some(b))) => {
                    prop_assert_eq!(a, b);
                    prop_assert!(buf.is_empty());
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "decode_one {:?} vs decode {:?}", a, b),
            }
        }
    }

    #[test]
    fn no_panic_on_garbage(b in proptest::collection::vec(any::<u8>(), 0..400), dg in arb_digests()) {
        for mut dec in [host(dg), ctrl(dg)] {
            let mut buf = BytesMut::from(&b[..]);
            while let Ok(Some(_)) = dec.decode(&mut buf) {}
            let _ = dec.decode_one(Bytes::from(b.clone()));
        }
    }

    #[test]
    fn no_panic_on_mutated_valid(p in arb_c2h(), idx in any::<usize>(), val in any::<u8>()) {
        let mut out = BytesMut::new();
        p.encode(EncodeOptions::default(), &mut out);
        let i = idx % out.len();
        out[i] = val;
        let _ = host(Digests::NONE).decode_one(out.freeze());
    }
}

#[test]
fn peek_data_head_known_bytes() {
    // C2HData: type 7, flags LAST_PDU | SUCCESS (0x0c), hlen 24, pdo 24,
    // plen 32; CCCID 5, TTAG 0, DATAO 0, DATAL 8, reserved; 8 data bytes.
    let mut b = vec![
        0x07, 0x0c, 24, 24, 32, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0,
    ];
    let d = host(Digests::NONE);
    assert_eq!(
        d.peek_data_head(&b[..23]).unwrap(),
        None,
        "header not all in"
    );
    let want = DataHead {
        c2h: true,
        header: DataHeader {
            cccid: 5,
            ttag: 0,
            offset: 0,
            length: 8,
        },
        last: true,
        success: true,
        pdo: 24,
        plen: 32,
        ddgst: false,
    };
    assert_eq!(d.peek_data_head(&b).unwrap(), Some(want));
    b.extend_from_slice(&[1, 2, 3]);
    assert_eq!(
        d.peek_data_head(&b).unwrap(),
        Some(want),
        "part of the data"
    );
    // Not a data PDU: a CapsuleResp.
    let mut r = vec![0x05, 0, 24, 0, 24, 0, 0, 0];
    r.resize(24, 0);
    assert_eq!(d.peek_data_head(&r).unwrap(), None);
    // DATAL that disagrees with PLEN, and SUCCESS without LAST_PDU.
    b[16] = 9;
    assert_eq!(d.peek_data_head(&b).unwrap_err().error.field, "DATA.DATAL");
    b[16] = 8;
    b[1] = 0x08;
    assert_eq!(
        d.peek_data_head(&b).unwrap_err().error.field,
        "PDU.FLAGS.SUCCESS"
    );
}

proptest! {
    /// `peek_data_head` reads a data PDU's header as `decode` does (same
    /// fields, same errors), from the header bytes alone.
    #[test]
    fn peek_data_head_agrees_with_decode(
        p in arb_h2c(), q in arb_c2h(), dg in arb_digests(), pda in 0u8..32,
        idx in any::<usize>(), val in any::<u8>(), mutate in any::<bool>(),
    ) {
        for (p, mut dec) in [(p, ctrl(dg)), (q, host(dg))] {
            let Some(out) = encoded_maybe_mutated(&p, dg, pda, mutate.then_some((idx, val))) else {
                continue; // a mutated PLEN: decoders differ on it by design
            };
            let peek = dec.peek_data_head(&out);
            let is_data = matches!(out[0], 6 | 7);
            match dec.decode(&mut out.clone()) {
                Ok(Some(Pdu::C2HData(d) | Pdu::H2CData(d))) => {
                    let h = peek.unwrap().unwrap();
                    prop_assert_eq!((h.header, h.last, h.success), (d.header, d.last, d.success));
                    prop_assert_eq!(h.plen, out.len());
                    prop_assert_eq!(&out[h.pdo..h.pdo + d.data.len()], &d.data[..]);
                    // The header alone is enough.
                    prop_assert_eq!(dec.peek_data_head(&out[..h.pdo]).unwrap(), Some(h));
                }
                Ok(_) => prop_assert_eq!(peek.unwrap(), None),
                // The data digest is the caller's to check.
                Err(e) if e.error.field == "PDU.DDGST" => {}
                Err(e) if is_data => prop_assert_eq!(peek.unwrap_err(), e),
                Err(e) => prop_assert!(peek == Ok(None) || peek == Err(e)),
            }
        }
    }
}
