//! Sans-IO codec tests with known bytes: handshake and request/reply.

use bytes::{BufMut, Bytes, BytesMut};
use nvmp_nbd::codec::{
    encode_reply, validate, Op, ReplyBody, Request, RequestDecoder, RequestHeader,
    TransmissionError, ValidateParams,
};
use nvmp_nbd::handshake::{Handshake, HandshakeError, HandshakeLimits, Outcome};
use nvmp_nbd::proto::*;
use nvmp_nbd::{ExportInfo, IoError, IoErrorKind, Negotiated};

fn export() -> ExportInfo {
    ExportInfo {
        name: "disk0".into(),
        description: "test".into(),
        size_bytes: 1 << 20,
        read_only: false,
        min_block: 512,
        preferred_block: 4096,
        max_block: 1 << 25,
        structured_replies: true,
    }
}

fn option(opt: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_u64(IHAVEOPT);
    v.put_u32(opt);
    v.put_u32(data.len() as u32);
    v.put_slice(data);
    v
}

fn go_data(name: &str, infos: &[u16]) -> Vec<u8> {
    let mut d = Vec::new();
    d.put_u32(name.len() as u32);
    d.put_slice(name.as_bytes());
    d.put_u16(infos.len() as u16);
    for i in infos {
        d.put_u16(*i);
    }
    d
}

fn opt_reply(opt: u32, kind: u32, data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9];
    v.put_u32(opt);
    v.put_u32(kind);
    v.put_u32(data.len() as u32);
    v.put_slice(data);
    v
}

fn feed(hs: &mut Handshake, bytes: &[u8]) -> Result<Option<Outcome>, HandshakeError> {
    let mut buf = BytesMut::from(bytes);
    let r = hs.receive(&mut buf);
    assert!(
        r.is_err() || buf.is_empty() || matches!(r, Ok(Some(_))),
        "input left unconsumed"
    );
    r
}

#[test]
fn greeting_bytes() {
    let mut hs = Handshake::new(export(), HandshakeLimits::default());
    let mut want = b"NBDMAGICIHAVEOPT".to_vec();
    want.extend_from_slice(&[0x00, 0x03]); // FIXED_NEWSTYLE | NO_ZEROES
    assert_eq!(hs.take_output(), want);
}

#[test]
fn go_with_block_size_known_bytes() {
    let mut hs = Handshake::new(export(), HandshakeLimits::default());
    hs.take_output();
    let mut input = vec![0, 0, 0, 3];
    input.extend(option(OPT_GO, &go_data("disk0", &[INFO_BLOCK_SIZE])));
    let out = feed(&mut hs, &input).unwrap();
    let neg = match out {
        Some(Outcome::Transmission(n)) => n,
        other => panic!("unexpected {other:?}"),
    };
    // HAS_FLAGS | SEND_FLUSH | SEND_FUA | SEND_TRIM | SEND_WRITE_ZEROES | CAN_MULTI_CONN
    assert_eq!(neg.tx_flags, 0x016d);
    assert!(neg.block_size_agreed && !neg.structured_replies);
    let mut want = opt_reply(
        OPT_GO,
        REP_INFO,
        &[0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0x01, 0x6d], // INFO_EXPORT, size 1 MiB, flags
    );
    want.extend(opt_reply(
        OPT_GO,
        REP_INFO,
        &[0, 3, 0, 0, 2, 0, 0, 0, 0x10, 0, 0x02, 0, 0, 0], // 512, 4096, 32 MiB
    ));
    want.extend(opt_reply(OPT_GO, REP_ACK, &[]));
    assert_eq!(hs.take_output(), want);
}

#[test]
fn structured_reply_then_info_then_go_default_export() {
    let mut hs = Handshake::new(export(), HandshakeLimits::default());
    hs.take_output();
    let mut input = vec![0, 0, 0, 1];
    input.extend(option(OPT_STRUCTURED_REPLY, &[]));
    input.extend(option(
        OPT_INFO,
        &go_data("", &[INFO_NAME, INFO_DESCRIPTION]),
    ));
    assert_eq!(feed(&mut hs, &input).unwrap(), None);
    let out = hs.take_output();
    assert_eq!(
        &out[..20],
        &opt_reply(OPT_STRUCTURED_REPLY, REP_ACK, &[])[..]
    );
    // INFO_EXPORT now carries SEND_DF.
    assert_eq!(&out[20..40], &opt_reply(OPT_INFO, REP_INFO, &[0; 12])[..20]);
    assert_eq!(&out[50..52], &[0x01, 0xed]);
    let name = opt_reply(OPT_INFO, REP_INFO, b"\x00\x01disk0");
    assert_eq!(&out[52..52 + name.len()], &name[..]);
    let out2 = feed(&mut hs, &option(OPT_GO, &go_data("", &[]))).unwrap();
    let Some(Outcome::Transmission(neg)) = out2 else {
        panic!("no transmission")
    };
    assert!(neg.structured_replies && !neg.block_size_agreed);
    assert_eq!(neg.tx_flags & TX_SEND_DF, TX_SEND_DF);
}

#[test]
fn structured_replies_refused_when_disabled() {
    let mut hs = Handshake::new(
        ExportInfo {
            structured_replies: false,
            ..export()
        },
        HandshakeLimits::default(),
    );
    hs.take_output();
    let mut input = vec![0, 0, 0, 1];
    input.extend(option(OPT_STRUCTURED_REPLY, &[]));
    assert_eq!(feed(&mut hs, &input).unwrap(), None);
    assert_eq!(
        hs.take_output(),
        opt_reply(
            OPT_STRUCTURED_REPLY,
            REP_ERR_UNSUP,
            b"structured replies are disabled"
        )
    );
    let Some(Outcome::Transmission(neg)) =
        feed(&mut hs, &option(OPT_GO, &go_data("", &[]))).unwrap()
    else {
        panic!("no transmission")
    };
    // Simple replies only, and no SEND_DF ("MUST leave this flag clear if
    // structured replies have not been negotiated").
    assert!(!neg.structured_replies);
    assert_eq!(neg.tx_flags, 0x016d);
    // A read is answered with a simple reply header and the data.
    let r = encode_reply(
        neg.structured_replies,
        7,
        ReplyBody::Data {
            offset: 0,
            data: Bytes::from_static(b"abcd").into(),
        },
    );
    let mut want = vec![0x67, 0x44, 0x66, 0x98, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    want.extend_from_slice(b"abcd");
    assert_eq!(r.to_vec(), want);
}

#[test]
fn option_errors_keep_negotiating() {
    let mut hs = Handshake::new(export(), HandshakeLimits::default());
    hs.take_output();
    let mut input = vec![0, 0, 0, 3];
    input.extend(option(99, b"whatever"));
    input.extend(option(OPT_GO, &go_data("nope", &[])));
    input.extend(option(OPT_GO, &[0, 0, 0, 9, b'x'])); // name longer than the data
    input.extend(option(OPT_LIST, b"x"));
    input.extend(option(OPT_STARTTLS, &[]));
    input.extend(option(OPT_SET_META_CONTEXT, &[0; 8]));
    input.extend(option(OPT_LIST, &[]));
    assert_eq!(feed(&mut hs, &input).unwrap(), None);
    let out = hs.take_output();
    let mut kinds = Vec::new();
    let mut at = 0;
    while at < out.len() {
        let kind = u32::from_be_bytes(out[at + 12..at + 16].try_into().unwrap());
        let len = u32::from_be_bytes(out[at + 16..at + 20].try_into().unwrap()) as usize;
        kinds.push(kind);
        at += 20 + len;
    }
    assert_eq!(
        kinds,
        [
            REP_ERR_UNSUP,
            REP_ERR_UNKNOWN,
            REP_ERR_INVALID,
            REP_ERR_INVALID,
            REP_ERR_UNSUP,
            REP_ERR_UNSUP,
            REP_SERVER,
            REP_ACK
        ]
    );
    let abort = feed(&mut hs, &option(OPT_ABORT, &[])).unwrap();
    assert_eq!(abort, Some(Outcome::Abort));
    assert_eq!(hs.take_output(), opt_reply(OPT_ABORT, REP_ACK, &[]));
}

#[test]
fn export_name_with_and_without_zeroes() {
    for (flags, zeroes) in [(1u8, 124usize), (3, 0)] {
        let mut hs = Handshake::new(export(), HandshakeLimits::default());
        hs.take_output();
        let mut input = vec![0, 0, 0, flags];
        input.extend(option(OPT_EXPORT_NAME, b"disk0"));
        assert!(matches!(
            feed(&mut hs, &input).unwrap(),
            Some(Outcome::Transmission(_))
        ));
        let out = hs.take_output();
        assert_eq!(out.len(), 10 + zeroes);
        assert_eq!(&out[..10], &[0, 0, 0, 0, 0, 0x10, 0, 0, 0x01, 0x6d]);
    }
    let mut hs = Handshake::new(export(), HandshakeLimits::default());
    let mut input = vec![0, 0, 0, 1];
    input.extend(option(OPT_EXPORT_NAME, b"other"));
    assert!(matches!(
        feed(&mut hs, &input),
        Err(HandshakeError::UnknownExport(_))
    ));
}

#[test]
fn hostile_handshakes_disconnect() {
    let limits = HandshakeLimits {
        max_option_len: 1024,
        max_options: 4,
    };
    let cases: Vec<Vec<u8>> = vec![
        vec![0, 0, 0, 8], // unknown client flag
        [vec![0, 0, 0, 1], b"GARBAGE!\0\0\0\x07\0\0\0\0".to_vec()].concat(), // bad magic
    ];
    for input in &cases {
        let mut hs = Handshake::new(export(), limits);
        assert!(feed(&mut hs, input).is_err(), "{input:?}");
    }
    // Oversized option length: rejected from the header alone.
    let mut input = vec![0, 0, 0, 1];
    input.put_u64(IHAVEOPT);
    input.put_u32(OPT_GO);
    input.put_u32(u32::MAX);
    let mut hs = Handshake::new(export(), limits);
    assert!(matches!(
        feed(&mut hs, &input),
        Err(HandshakeError::Protocol(_))
    ));
    // Too many options.
    let mut input = vec![0, 0, 0, 1];
    for _ in 0..5 {
        input.extend(option(OPT_LIST, &[]));
    }
    let mut hs = Handshake::new(export(), limits);
    assert!(matches!(
        feed(&mut hs, &input),
        Err(HandshakeError::Protocol(_))
    ));
    // Partial input is just "need more".
    let mut hs = Handshake::new(export(), limits);
    let mut partial = BytesMut::from(&[0u8, 0, 0, 1, 0x49, 0x48, 0x41][..]);
    assert_eq!(hs.receive(&mut partial).unwrap(), None);
    assert_eq!(partial.len(), 3, "the partial option header stays buffered");
}

#[test]
fn request_header_known_bytes_and_decoder() {
    let h = RequestHeader {
        flags: CMD_FLAG_FUA,
        command: CMD_WRITE,
        cookie: 0x0102_0304_0506_0708,
        offset: 4096,
        length: 4,
    };
    let bytes = h.encode();
    assert_eq!(
        bytes,
        [
            0x25, 0x60, 0x95, 0x13, 0, 1, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0x10, 0,
            0, 0, 0, 4
        ]
    );
    let dec = RequestDecoder::new(1 << 25);
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert_eq!(dec.needed(&buf).unwrap(), 32);
    buf.put_slice(b"abcd");
    let req = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(req.header, h);
    assert_eq!(&req.payload[..], b"abcd");
    assert!(buf.is_empty());

    let mut bad = BytesMut::from(&bytes[..]);
    bad[0] = 0;
    assert_eq!(
        dec.decode(&mut bad),
        Err(TransmissionError::BadMagic(0x0060_9513))
    );
    let huge = RequestHeader {
        length: u32::MAX,
        ..h
    }
    .encode();
    let r = dec.decode(&mut BytesMut::from(&huge[..]));
    assert!(matches!(r, Err(TransmissionError::PayloadTooLarge { .. })));
}

#[test]
fn reply_known_bytes() {
    let cookie = 0x1122_3344_5566_7788;
    let simple = encode_reply(
        false,
        cookie,
        ReplyBody::Error(IoError::new(IoErrorKind::Inval, "x")),
    );
    assert_eq!(
        simple.to_vec(),
        [0x67, 0x44, 0x66, 0x98, 0, 0, 0, 22, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
    );
    let data = Bytes::from_static(b"hi");
    let simple_read = encode_reply(
        false,
        cookie,
        ReplyBody::Data {
            offset: 512,
            data: data.clone().into(),
        },
    );
    assert_eq!(simple_read.to_vec().len(), 18);
    let sr = encode_reply(
        true,
        cookie,
        ReplyBody::Data {
            offset: 512,
            data: data.into(),
        },
    )
    .to_vec();
    assert_eq!(
        sr,
        [
            0x66, 0x8e, 0x33, 0xef, 0, 1, 0, 1, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0,
            0, 0, 10, 0, 0, 0, 0, 0, 0, 2, 0, b'h', b'i'
        ]
    );
    let err = encode_reply(
        true,
        cookie,
        ReplyBody::Error(IoError::new(IoErrorKind::Io, "bad")),
    );
    let err = err.to_vec();
    assert_eq!(&err[..8], &[0x66, 0x8e, 0x33, 0xef, 0, 1, 0x80, 0x01]);
    assert_eq!(
        &err[16..],
        &[0, 0, 0, 9, 0, 0, 0, 5, 0, 3, b'b', b'a', b'd']
    );
    let none = encode_reply(
        true,
        cookie,
        ReplyBody::Data {
            offset: 0,
            data: Bytes::new().into(),
        },
    )
    .to_vec();
    assert_eq!(&none[4..8], &[0, 1, 0, 0]);
}

#[test]
fn validation_rules() {
    let neg = Negotiated {
        structured_replies: false,
        block_size_agreed: true,
        tx_flags: 0,
    };
    let p = ValidateParams {
        size_bytes: 1 << 20,
        read_only: false,
        max_payload: 1 << 25,
    };
    let req = |command, flags, offset, length| Request {
        header: RequestHeader {
            flags,
            command,
            cookie: 1,
            offset,
            length,
        },
        payload: Bytes::new(),
    };
    let kind = |r: Result<Op, IoError>| r.unwrap_err().kind;
    assert_eq!(
        validate(req(CMD_READ, 0, 0, 512), &neg, &p),
        Ok(Op::Read {
            offset: 0,
            len: 512
        })
    );
    assert_eq!(
        kind(validate(req(CMD_READ, 0, 1 << 20, 1), &neg, &p)),
        IoErrorKind::Inval
    );
    assert_eq!(
        kind(validate(req(CMD_READ, 0, u64::MAX, 2), &neg, &p)),
        IoErrorKind::Inval
    );
    assert_eq!(
        kind(validate(req(CMD_WRITE, 0, 1 << 20, 1), &neg, &p)),
        IoErrorKind::NoSpc
    );
    assert_eq!(
        kind(validate(req(CMD_READ, CMD_FLAG_DF, 0, 1), &neg, &p)),
        IoErrorKind::Inval
    );
    assert_eq!(
        kind(validate(req(CMD_READ, CMD_FLAG_NO_HOLE, 0, 1), &neg, &p)),
        IoErrorKind::Inval
    );
    assert_eq!(
        kind(validate(req(CMD_BLOCK_STATUS, 0, 0, 1), &neg, &p)),
        IoErrorKind::Inval
    );
    assert_eq!(
        kind(validate(req(CMD_CACHE, 0, 0, 1), &neg, &p)),
        IoErrorKind::Inval
    );
    assert_eq!(
        kind(validate(req(77, 0, 0, 0), &neg, &p)),
        IoErrorKind::Inval
    );
    assert_eq!(
        validate(
            req(CMD_WRITE_ZEROES, CMD_FLAG_NO_HOLE | CMD_FLAG_FUA, 0, 4096),
            &neg,
            &p
        ),
        Ok(Op::WriteZeroes {
            offset: 0,
            len: 4096,
            fua: true,
            may_trim: false
        })
    );
    assert_eq!(
        validate(req(CMD_FLUSH, CMD_FLAG_FUA, 0, 0), &neg, &p),
        Ok(Op::Flush)
    );
    assert_eq!(
        validate(req(CMD_DISC, 0, 0, 0), &neg, &p),
        Ok(Op::Disconnect)
    );
    let ro = ValidateParams {
        read_only: true,
        ..p
    };
    assert_eq!(
        kind(validate(req(CMD_TRIM, 0, 0, 512), &neg, &ro)),
        IoErrorKind::Perm
    );
    let big = ValidateParams {
        size_bytes: 1 << 30,
        ..p
    };
    assert_eq!(
        kind(validate(req(CMD_READ, 0, 0, (1 << 25) + 512), &neg, &big)),
        IoErrorKind::Inval
    );
}
