//! `PduDecoder::peek_plain` (the host's per-PDU fast path) against the
//! decoder. The first input byte picks the decoder: bit 0 header digest,
//! bit 1 data digest, bit 2 controller role (else host), bit 3 a PDU size
//! limit of 256 data bytes (else 64 KiB); the rest is the receive buffer.
//! `peek_plain` must be `Some` exactly when `decode` takes a C2HData or
//! CapsuleResp in plain form (no digests on the connection, FLAGS only
//! LAST_PDU/SUCCESS or none, PDO = HLEN) off the buffer, with the same
//! header, data and length, and `None` while the PDU is not all there.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use nvmp_wire::pdu::{
    flags, DataHead, Digests, Pdu, PduConfig, PduDecoder, Plain, Role, DATA_HLEN,
};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, buf)) = data.split_first() else {
        return;
    };
    let dec = PduDecoder::new(PduConfig {
        role: if sel & 4 == 0 {
            Role::Host
        } else {
            Role::Controller
        },
        digests: Digests::from_byte(sel & 3),
        send_pda: 0,
        max_data_len: if sel & 8 == 0 { 64 * 1024 } else { 256 },
    });
    let got = dec.peek_plain(buf);
    // What the decoder says.
    let mut rest = BytesMut::from(buf);
    let decoded = dec.clone().decode(&mut rest);
    let plen = buf.len() - rest.len();
    let dg = dec.config.digests;
    let want = match decoded {
        Ok(Some(Pdu::C2HData(d)))
            if !dg.header
                && !dg.data
                && buf[1] & !(flags::LAST_PDU | flags::SUCCESS) == 0
                && usize::from(buf[3]) == DATA_HLEN =>
        {
            assert_eq!(d.data, buf[DATA_HLEN..plen]);
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
        Ok(Some(Pdu::CapsuleResp(cqe))) if !dg.header && buf[1] == 0 => {
            Some(Plain::CapsuleResp(cqe))
        }
        _ => None,
    };
    assert_eq!(got, want);
    if let Some(p) = got {
        assert_eq!(p.plen(), plen);
        if let Plain::C2HData(h) = p {
            assert_eq!(dec.peek_data_head(buf), Ok(Some(h)));
        }
        assert_eq!(dec.peek_plain(&buf[..plen - 1]), None);
        assert_eq!(dec.peek_plain(&buf[..plen]), got);
    }
});
