// Shared by pdu_host and pdu_controller: the first input byte picks the
// negotiated digests (bit 0 header, bit 1 data) and whether the input is
// fed as one stream (bit 2) or decoded as exactly one PDU, and whether the
// digests in a single PDU are recomputed before decoding (bit 3, so the
// fuzzer gets past the digest checks); the rest is the byte stream received
// from the peer.
use bytes::{Bytes, BytesMut};
use nvmp_wire::pdu::{Digests, EncodeOptions, Pdu, PduConfig, PduDecoder, Role};

pub fn run(role: Role, data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let digests = Digests::from_byte(sel & 3);
    let mut dec = PduDecoder::new(PduConfig {
        role,
        digests,
        send_pda: 0,
        max_data_len: 64 * 1024,
    });
    if sel & 4 == 0 {
        let mut one = rest.to_vec();
        if sel & 8 != 0 {
            fix_digests(&mut one, digests);
        }
        // The streaming decoder (in place for PDUs without data) agrees
        // with decode_one on a buffer holding exactly one PDU.
        let whole = one.len() >= 8
            && u32::from_le_bytes([one[4], one[5], one[6], one[7]]) as usize == one.len();
        let streamed = whole.then(|| dec.decode(&mut BytesMut::from(&one[..])));
        // A data PDU's header read alone (peek_data_head) agrees with the
        // whole decode: same fields, same errors (the data digest aside).
        if let Some(s) = &streamed {
            let peek = dec.peek_data_head(&one);
            match s {
                Ok(Some(Pdu::C2HData(d) | Pdu::H2CData(d))) => {
                    let h = peek.expect("header of a decoded PDU").expect("a data PDU");
                    assert_eq!((h.header, h.last, h.success), (d.header, d.last, d.success));
                    assert_eq!(dec.peek_data_head(&one[..h.pdo]), Ok(Some(h)));
                }
                Ok(_) => assert_eq!(peek, Ok(None)),
                Err(e) if e.error.field == "PDU.DDGST" => {}
                Err(e) if matches!(one[0], 6 | 7) => assert_eq!(peek.as_ref(), Err(e)),
                Err(e) => assert!(peek == Ok(None) || peek.as_ref() == Err(e)),
            }
        }
        let single = dec.decode_one(Bytes::from(one));
        if let Some(s) = streamed {
            match (&single, s) {
                (Ok(a), Ok(Some(b))) => assert_eq!(*a, b),
                (Err(a), Err(b)) => assert_eq!(*a, b),
                (a, b) => panic!("decode_one {a:?} vs decode {b:?}"),
            }
        }
        if let Ok(pdu) = single {
            // Whatever decodes must re-encode to something that decodes to the same PDU.
            let mut out = BytesMut::new();
            pdu.encode(EncodeOptions { digests, pda: 0 }, &mut out);
            let again = dec
                .decode_one(out.freeze())
                .expect("re-encoded PDU decodes");
            assert_eq!(again, pdu);
        }
        return;
    }
    let mut buf = BytesMut::from(rest);
    while let Ok(Some(_pdu)) = dec.decode(&mut buf) {}
}

/// Recompute HDGST (after HLEN bytes) and DDGST (last 4 bytes, over PDO..PLEN-4).
fn fix_digests(b: &mut [u8], digests: Digests) {
    use nvmp_wire::crc::crc32c;
    if b.len() < 8 {
        return;
    }
    let hlen = usize::from(b[2]);
    let pdo = usize::from(b[3]);
    if digests.header && b.len() >= hlen + 4 {
        let c = crc32c(&b[..hlen]);
        b[hlen..hlen + 4].copy_from_slice(&c.to_le_bytes());
    }
    if digests.data && pdo > 0 && b.len() >= pdo + 4 {
        let end = b.len() - 4;
        let c = crc32c(&b[pdo..end]);
        b[end..].copy_from_slice(&c.to_le_bytes());
    }
}
