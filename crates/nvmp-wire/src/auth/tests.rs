use super::*;
use proptest::prelude::*;

#[test]
fn auth_send_sqe_known_bytes() {
    // Authentication Send: OPC 7Fh, FCTYPE 05h, SPSP0 byte 41, SPSP1 byte 42,
    // SECP byte 43, TL bytes 44..48.
    let sqe = AuthCmd::send(0x48).to_sqe();
    let mut b = [0u8; 64];
    sqe.encode(&mut b);
    assert_eq!(b[0], 0x7F);
    assert_eq!(b[4], 0x05);
    assert_eq!(&b[40..48], &[0x00, 0x01, 0x01, 0xE9, 0x48, 0, 0, 0]);
    let back = AuthCmd::from_sqe(&Sqe::decode(&b).unwrap()).unwrap();
    assert_eq!(back, AuthCmd::send(0x48));
    assert_eq!(back.check_protocol(), Ok(()));

    let r = AuthCmd::receive(4096).to_sqe();
    sqe_round(&r, 0x06, &[0x00, 0x01, 0x01, 0xE9, 0x00, 0x10, 0, 0]);
}

fn sqe_round(sqe: &Sqe, fctype: u8, cdw10_11: &[u8]) {
    let mut b = [0u8; 64];
    sqe.encode(&mut b);
    assert_eq!(b[4], fctype);
    assert_eq!(&b[40..48], cdw10_11);
}

#[test]
fn auth_cmd_protocol_check_names_the_field() {
    let mut c = AuthCmd::send(8);
    c.secp = 0xEA;
    assert_eq!(c.check_protocol(), Err(43));
    let mut c = AuthCmd::receive(8);
    c.spsp0 = 0;
    assert_eq!(c.check_protocol(), Err(41));
    c.spsp0 = 1;
    c.spsp1 = 2;
    assert_eq!(c.check_protocol(), Err(42));
    assert!(AuthCmd::from_sqe(&Sqe::fabrics(FabricsType::CONNECT)).is_err());
}

#[test]
fn negotiate_known_bytes() {
    // What Linux sends: SHA-256/384/512, NULL and ffdhe2048..8192, T_ID 3.
    let m = AuthMsg::Negotiate(Negotiate {
        t_id: 3,
        sc_c: 0,
        protocols: vec![ProtocolDesc {
            authid: 1,
            hash_ids: vec![1, 2, 3],
            dh_ids: vec![0, 1, 2, 3, 4, 5],
        }],
    });
    let b = m.encode();
    assert_eq!(b.len(), 8 + 64);
    assert_eq!(&b[..8], &[0x00, 0x00, 0, 0, 3, 0, 0, 1]);
    assert_eq!(&b[8..12], &[1, 0, 3, 6]);
    assert_eq!(&b[12..15], &[1, 2, 3]);
    assert!(b[15..42].iter().all(|&x| x == 0));
    assert_eq!(&b[42..48], &[0, 1, 2, 3, 4, 5]);
    assert_eq!(AuthMsg::decode(&b).unwrap(), m);
}

#[test]
fn challenge_reply_success_known_bytes() {
    let ch = AuthMsg::Challenge(Challenge {
        t_id: 0x0102,
        hash_id: 1,
        dh_id: 1,
        seqnum: 0x0A0B0C0D,
        c1: vec![0xC1; 32],
        dhv: vec![0xDD; 256],
    });
    let b = ch.encode();
    assert_eq!(
        &b[..16],
        &[1, 1, 0, 0, 2, 1, 32, 0, 1, 1, 0x00, 0x01, 0x0D, 0x0C, 0x0B, 0x0A]
    );
    assert_eq!(b.len(), 16 + 32 + 256);
    assert_eq!(AuthMsg::decode(&b).unwrap(), ch);

    let rep = AuthMsg::Reply(Reply {
        t_id: 7,
        cvalid: true,
        seqnum: 9,
        r1: vec![0x11; 48],
        c2: vec![0x22; 48],
        dhv: vec![],
    });
    let b = rep.encode();
    assert_eq!(&b[..16], &[1, 2, 0, 0, 7, 0, 48, 0, 1, 0, 0, 0, 9, 0, 0, 0]);
    assert_eq!(&b[16..64], &[0x11; 48]);
    assert_eq!(&b[64..112], &[0x22; 48]);
    assert_eq!(AuthMsg::decode(&b).unwrap(), rep);

    let s1 = AuthMsg::Success1(Success1 {
        t_id: 7,
        hl: 32,
        r2: Some(vec![0x33; 32]),
    });
    let b = s1.encode();
    assert_eq!(&b[..16], &[1, 3, 0, 0, 7, 0, 32, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(b.len(), 48);
    assert_eq!(AuthMsg::decode(&b).unwrap(), s1);

    let s2 = AuthMsg::Success2 { t_id: 7 };
    assert_eq!(
        s2.encode(),
        [1, 4, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    let f1 = AuthMsg::Failure1(Failure {
        t_id: 7,
        rescode: RESCODE_FAILED,
        reason: FailureReason::DHGROUP_UNUSABLE,
    });
    assert_eq!(f1.encode(), [0, 0xF1, 0, 0, 7, 0, 1, 5]);
    assert_eq!(AuthMsg::decode(&f1.encode()).unwrap(), f1);
}

#[test]
fn trailing_padding_is_ignored() {
    // Authentication Receive returns AL bytes, zero padded.
    let s1 = AuthMsg::Success1(Success1 {
        t_id: 1,
        hl: 64,
        r2: None,
    });
    let mut b = s1.encode();
    b.resize(4096, 0);
    assert_eq!(AuthMsg::decode(&b).unwrap(), s1);
}

#[test]
fn malformed_messages_are_typed_errors() {
    // Unknown AUTH-ID.
    assert_eq!(
        AuthMsg::decode(&[1, 9, 0, 0, 0, 0]).unwrap_err().field,
        "Auth.AUTH-ID"
    );
    // Failure with the DH-HMAC-CHAP type.
    assert!(AuthMsg::decode(&[1, 0xF1, 0, 0, 0, 0, 1, 1]).is_err());
    // HL 0 and HL > 64.
    let mut c = AuthMsg::Challenge(Challenge {
        c1: vec![1; 32],
        ..Default::default()
    })
    .encode();
    c[6] = 0;
    assert_eq!(AuthMsg::decode(&c).unwrap_err().field, "Challenge.HL");
    c[6] = 65;
    assert_eq!(AuthMsg::decode(&c).unwrap_err().field, "Challenge.HL");
    // DHVLEN beyond the largest group.
    c[6] = 32;
    c[10..12].copy_from_slice(&1025u16.to_le_bytes());
    assert_eq!(AuthMsg::decode(&c).unwrap_err().field, "Auth.DHVLEN");
    // DH value cut short.
    c[10..12].copy_from_slice(&256u16.to_le_bytes());
    assert!(matches!(
        AuthMsg::decode(&c).unwrap_err().kind,
        DecodeErrorKind::Truncated { .. }
    ));
    // NAPD 0, HALEN 31.
    let mut n = AuthMsg::Negotiate(Negotiate {
        protocols: vec![ProtocolDesc::default()],
        ..Default::default()
    })
    .encode();
    n[10] = 31;
    assert_eq!(
        AuthMsg::decode(&n).unwrap_err().field,
        "Negotiate.HALEN/DHLEN"
    );
    n[7] = 0;
    assert_eq!(AuthMsg::decode(&n).unwrap_err().field, "Negotiate.NAPD");
    assert!(AuthMsg::decode(&[]).is_err());
}

fn ids() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=MAX_IDS)
}

fn hash() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 1..=MAX_HASH_LEN)
}

fn dhv() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=MAX_DH_VALUE_LEN)
}

fn msg() -> impl Strategy<Value = AuthMsg> {
    let neg = (
        any::<u16>(),
        any::<u8>(),
        proptest::collection::vec((any::<u8>(), ids(), ids()), 1..=MAX_PROTOCOLS),
    )
        .prop_map(|(t_id, sc_c, p)| {
            AuthMsg::Negotiate(Negotiate {
                t_id,
                sc_c,
                protocols: p
                    .into_iter()
                    .map(|(authid, hash_ids, dh_ids)| ProtocolDesc {
                        authid,
                        hash_ids,
                        dh_ids,
                    })
                    .collect(),
            })
        });
    let ch = (
        any::<u16>(),
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
        hash(),
        dhv(),
    )
        .prop_map(|(t_id, hash_id, dh_id, seqnum, c1, dhv)| {
            AuthMsg::Challenge(Challenge {
                t_id,
                hash_id,
                dh_id,
                seqnum,
                c1,
                dhv,
            })
        });
    let rep = (
        any::<u16>(),
        any::<bool>(),
        any::<u32>(),
        hash(),
        any::<u8>(),
        dhv(),
    )
        .prop_map(|(t_id, cvalid, seqnum, r1, c, dhv)| {
            let c2 = vec![c; r1.len()];
            AuthMsg::Reply(Reply {
                t_id,
                cvalid,
                seqnum,
                r1,
                c2,
                dhv,
            })
        });
    let s1 = (any::<u16>(), hash(), any::<bool>()).prop_map(|(t_id, r, valid)| {
        AuthMsg::Success1(Success1 {
            t_id,
            hl: r.len() as u8,
            r2: valid.then_some(r),
        })
    });
    let fail = (any::<u16>(), any::<u8>(), any::<u8>(), any::<bool>()).prop_map(
        |(t_id, rescode, e, one)| {
            let f = Failure {
                t_id,
                rescode,
                reason: FailureReason(e),
            };
            if one {
                AuthMsg::Failure1(f)
            } else {
                AuthMsg::Failure2(f)
            }
        },
    );
    prop_oneof![
        neg,
        ch,
        rep,
        s1,
        any::<u16>().prop_map(|t_id| AuthMsg::Success2 { t_id }),
        fail
    ]
}

proptest! {
    #[test]
    fn round_trip(m in msg(), pad in 0usize..64) {
        let mut b = m.encode();
        b.resize(b.len() + pad, 0);
        prop_assert_eq!(AuthMsg::decode(&b).unwrap(), m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(m) = AuthMsg::decode(&b) {
            // What decodes re-encodes to a prefix-equivalent message.
            prop_assert_eq!(AuthMsg::decode(&m.encode()).unwrap(), m);
        }
    }
}
