//! PDU header parse + digest check: `cargo bench -p nvmp-wire`.
use bytes::{Bytes, BytesMut};
use divan::{black_box, Bencher};
use nvmp_wire::pdu::{
    DataHeader, DataPdu, Digests, EncodeOptions, Pdu, PduConfig, PduDecoder, Role,
};
use nvmp_wire::{Cqe, Status};

fn main() {
    divan::main();
}

fn encoded(p: &Pdu, digests: Digests) -> Bytes {
    let mut out = BytesMut::new();
    p.encode(EncodeOptions { digests, pda: 0 }, &mut out);
    out.freeze()
}

fn host(digests: Digests) -> PduDecoder {
    PduDecoder::new(PduConfig {
        role: Role::Host,
        digests,
        send_pda: 0,
        max_data_len: 1 << 20,
    })
}

const HDGST: Digests = Digests {
    header: true,
    data: false,
};
const BOTH: Digests = Digests {
    header: true,
    data: true,
};

/// CapsuleResp (24-byte header) with a header digest.
#[divan::bench]
fn capsule_resp_hdgst(b: Bencher) {
    let mut cqe = Cqe::new(7, Status::SUCCESS);
    cqe.dw0 = 1;
    let bytes = encoded(&Pdu::CapsuleResp(cqe), HDGST);
    let dec = host(HDGST);
    b.counter(divan::counter::BytesCount::new(bytes.len()))
        .bench(|| dec.decode_one(black_box(bytes.clone())).unwrap());
}

/// C2HData carrying 4 KiB, header and data digests.
#[divan::bench]
fn c2hdata_4k_both_digests(b: Bencher) {
    let p = Pdu::C2HData(DataPdu {
        header: DataHeader {
            cccid: 9,
            ttag: 0,
            offset: 0,
            length: 4096,
        },
        last: true,
        success: false,
        data: Bytes::from(vec![0x5A; 4096]),
    });
    let bytes = encoded(&p, BOTH);
    let dec = host(BOTH);
    b.counter(divan::counter::BytesCount::new(bytes.len()))
        .bench(|| dec.decode_one(black_box(bytes.clone())).unwrap());
}

/// Streaming decode of 32 CapsuleResps from one buffer (the receive path).
#[divan::bench]
fn stream_32_capsule_resps_hdgst(b: Bencher) {
    let mut all = BytesMut::new();
    for cid in 0..32u16 {
        all.extend_from_slice(&encoded(
            &Pdu::CapsuleResp(Cqe::new(cid, Status::SUCCESS)),
            HDGST,
        ));
    }
    let all = all.freeze();
    b.counter(divan::counter::ItemsCount::new(32usize))
        .bench(|| {
            let mut dec = host(HDGST);
            let mut buf = BytesMut::from(&all[..]);
            let mut n = 0;
            while let Some(p) = dec.decode(&mut buf).unwrap() {
                black_box(p);
                n += 1;
            }
            n
        });
}

/// CRC32C alone over 4 KiB (the data digest's share of the C2HData figure).
#[divan::bench]
fn crc32c_4k(b: Bencher) {
    let data = vec![0x5Au8; 4096];
    b.counter(divan::counter::BytesCount::new(4096usize))
        .bench(|| nvmp_wire::crc::crc32c(black_box(&data)));
}
