use super::*;
use crate::error::DecodeErrorKind;
use proptest::prelude::*;

const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6";
const SUBNQN: &str = "nqn.2019-10.io.nvmp:subsys1";

#[test]
fn connect_sqe_known_bytes() {
    // NVMe-oF 1.1 Figure 20: OPC 7Fh, FCTYPE 01h at byte 4, RECFMT 40-41,
    // QID 42-43, SQSIZE 44-45, CATTR 46, KATO 48-51.
    let mut b = [0u8; 64];
    b[0] = 0x7F;
    b[1] = 0x40;
    b[4] = 0x01;
    b[42] = 2; // QID 2
    b[44] = 127; // SQSIZE 127 (128 entries)
    b[46] = 0x04; // CATTR
    b[48..52].copy_from_slice(&5000u32.to_le_bytes());
    let sqe = Sqe::decode(&b).unwrap();
    let c = ConnectCmd::from_sqe(&sqe).unwrap();
    assert_eq!(
        c,
        ConnectCmd {
            recfmt: 0,
            qid: 2,
            sqsize: 127,
            cattr: 4,
            kato_ms: 5000
        }
    );
    assert_eq!(c.to_sqe().to_bytes(), b);
}

#[test]
fn connect_rejects_other_fctype() {
    let e = ConnectCmd::from_sqe(&PropertyGet::default().to_sqe()).unwrap_err();
    assert_eq!(e.field, "Connect.FCTYPE");
}

fn connect_data_bytes() -> Vec<u8> {
    // Figure 21: HOSTID 0..16, CNTLID 16..18, SUBNQN 256..512, HOSTNQN 512..768.
    let mut b = vec![0u8; 1024];
    for (i, x) in b[0..16].iter_mut().enumerate() {
        *x = i as u8 + 1;
    }
    b[16] = 0xFF;
    b[17] = 0xFF;
    b[256..256 + SUBNQN.len()].copy_from_slice(SUBNQN.as_bytes());
    b[512..512 + HOSTNQN.len()].copy_from_slice(HOSTNQN.as_bytes());
    b
}

#[test]
fn connect_data_known_bytes() {
    let b = connect_data_bytes();
    let d = ConnectData::decode(&b).unwrap();
    assert_eq!(d.hostid[0], 1);
    assert_eq!(d.hostid[15], 16);
    assert_eq!(d.cntlid, 0xFFFF);
    assert_eq!(d.subnqn, SUBNQN);
    assert_eq!(d.hostnqn, HOSTNQN);
    assert_eq!(&d.encode()[..], &b[..]);
}

#[test]
fn connect_data_strict() {
    let e = ConnectData::decode(&connect_data_bytes()[..1000]).unwrap_err();
    assert_eq!(e.field, "ConnectData");
    // Garbage after the NUL terminator.
    let mut b = connect_data_bytes();
    b[256 + SUBNQN.len() + 2] = b'x';
    let e = ConnectData::decode(&b).unwrap_err();
    assert_eq!(
        (e.field, e.kind),
        ("ConnectData.SUBNQN", DecodeErrorKind::BadText)
    );
    // A SUBNQN that is not an NQN.
    let mut b = connect_data_bytes();
    b[256..256 + SUBNQN.len()].fill(0);
    b[256..263].copy_from_slice(b"testnqn");
    assert_eq!(
        ConnectData::decode(&b).unwrap_err().field,
        "ConnectData.SUBNQN"
    );
    // HOSTNQN: no terminator at all (256 bytes of text).
    let mut b = connect_data_bytes();
    b[512..768].fill(b'a');
    assert_eq!(
        ConnectData::decode(&b).unwrap_err().field,
        "ConnectData.HOSTNQN"
    );
    // HOSTNQN: not UTF-8, or a control character.
    for bad in [&[0xC3u8, 0x28][..], &b"nqn.2014-08.a\x1b[2J"[..]] {
        let mut b = connect_data_bytes();
        b[512..768].fill(0);
        b[512..512 + bad.len()].copy_from_slice(bad);
        let e = ConnectData::decode(&b).unwrap_err();
        assert_eq!(
            (e.field, e.kind),
            ("ConnectData.HOSTNQN", DecodeErrorKind::BadText)
        );
    }
}

#[test]
fn connect_data_host_nqn_as_linux_takes_it() {
    // SPDK without `hostnqn:`: HOSTNQN is 256 NUL bytes → the empty name,
    // and it encodes back to the same bytes.
    let mut b = connect_data_bytes();
    b[512..768].fill(0);
    let d = ConnectData::decode(&b).unwrap();
    assert_eq!(d.hostnqn, "");
    assert_eq!(d.subnqn, SUBNQN);
    assert_eq!(&d.encode()[..], &b[..]);
    // Not in the NQN format: taken as sent.
    b[512..519].copy_from_slice(b"testnqn");
    assert_eq!(ConnectData::decode(&b).unwrap().hostnqn, "testnqn");
    // Bytes after the first NUL are ignored (Linux compares the C string).
    b[600] = b'x';
    assert_eq!(ConnectData::decode(&b).unwrap().hostnqn, "testnqn");
    // 255 bytes of name and the NUL (longer than the NQN's 223 bytes).
    let mut b = connect_data_bytes();
    b[512..767].fill(b'h');
    b[767] = 0;
    let d = ConnectData::decode(&b).unwrap();
    assert_eq!(d.hostnqn.len(), 255);
    assert_eq!(&d.encode()[..], &b[..]);
}

#[test]
fn property_get_set_known_bytes() {
    // Figure 26/28: ATTRIB byte 40 (size bits 2:0, 1 = 8 bytes), OFST 44..48, VALUE 48..56.
    let mut b = [0u8; 64];
    b[0] = 0x7F;
    b[1] = 0x40;
    b[4] = 0x04;
    b[40] = 1;
    b[44] = 0x00;
    let g = PropertyGet::from_sqe(&Sqe::decode(&b).unwrap()).unwrap();
    assert_eq!(
        g,
        PropertyGet {
            offset: super::prop::CAP,
            size8: true
        }
    );
    assert_eq!(g.to_sqe().to_bytes(), b);

    let mut b = [0u8; 64];
    b[0] = 0x7F;
    b[1] = 0x40;
    b[4] = 0x00;
    b[44] = 0x14;
    b[48..52].copy_from_slice(&0x0046_0001u32.to_le_bytes());
    let s = PropertySet::from_sqe(&Sqe::decode(&b).unwrap()).unwrap();
    assert_eq!(
        s,
        PropertySet {
            offset: super::prop::CC,
            size8: false,
            value: 0x0046_0001
        }
    );
    assert_eq!(s.to_sqe().to_bytes(), b);
    let cc = Cc(s.value as u32);
    assert!(cc.en());
    assert_eq!((cc.iosqes(), cc.iocqes()), (6, 4));
}

#[test]
fn property_attrib_out_of_range() {
    let mut s = PropertyGet::default().to_sqe();
    s.cdw10 = 2;
    let e = PropertyGet::from_sqe(&s).unwrap_err();
    assert_eq!((e.field, e.offset), ("PropertyGet.ATTRIB", Some(40)));
}

#[test]
fn disconnect_known_bytes() {
    let mut b = [0u8; 64];
    b[0] = 0x7F;
    b[1] = 0x40;
    b[4] = 0x08;
    assert_eq!(disconnect_sqe(0).to_bytes(), b);
}

#[test]
fn registers() {
    // CAP written from Figure 36: MQES 1023, CQR, TO 15 (7.5 s), CSS NVM (bit 37), MPSMAX 0.
    let cap = Cap(1023 | 1 << 16 | 15 << 24 | 1 << 37);
    assert_eq!(cap, Cap::new(1023, 15));
    assert_eq!(
        (cap.mqes(), cap.cqr(), cap.to_500ms(), cap.css_nvm()),
        (1023, true, 15, true)
    );
    assert_eq!((cap.mpsmin(), cap.mpsmax()), (0, 0));
    let cc = Cc::default()
        .with_en(true)
        .with_shn(Cc::SHN_NORMAL)
        .with_iosqes(6)
        .with_iocqes(4);
    assert_eq!(cc.0, 1 | 1 << 14 | 6 << 16 | 4 << 20);
    assert_eq!(cc.with_en(false).0, cc.0 & !1);
    let csts = Csts(0b1001);
    assert!(csts.rdy() && !csts.cfs());
    assert_eq!(csts.shst(), Csts::SHST_COMPLETE);
    assert_eq!(version(1, 4, 0), 0x0001_0400);
    assert_eq!(version(2, 0, 1), 0x0002_0001);
}

fn nqn_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "nqn\\.20[0-9]{2}-0[1-9]\\.[a-z]{1,10}\\.[a-z]{1,10}:[ -~]{0,150}",
        any::<[u8; 16]>().prop_map(|u| crate::nqn::Nqn::from_uuid(u).into_string()),
    ]
}

/// What a host may call itself: an NQN, nothing, or any printable text up to 255 bytes.
fn host_nqn_strategy() -> impl Strategy<Value = String> {
    prop_oneof![nqn_strategy(), Just(String::new()), "[ -~]{1,255}"]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn connect_cmd_round_trip(recfmt: u16, qid: u16, sqsize: u16, cattr: u8, kato_ms: u32) {
        let c = ConnectCmd { recfmt, qid, sqsize, cattr, kato_ms };
        prop_assert_eq!(ConnectCmd::from_sqe(&c.to_sqe()).unwrap(), c);
    }
    #[test]
    fn connect_data_round_trip(hostid: [u8; 16], cntlid: u16, subnqn in nqn_strategy(), hostnqn in host_nqn_strategy()) {
        let d = ConnectData { hostid, cntlid, subnqn, hostnqn };
        prop_assert_eq!(ConnectData::decode(&d.encode()).unwrap(), d);
    }
    #[test]
    fn property_round_trip(offset: u32, size8: bool, value: u64) {
        let value = if size8 { value } else { value & 0xFFFF_FFFF };
        let g = PropertyGet { offset, size8 };
        prop_assert_eq!(PropertyGet::from_sqe(&g.to_sqe()).unwrap(), g);
        let s = PropertySet { offset, size8, value };
        prop_assert_eq!(PropertySet::from_sqe(&s.to_sqe()).unwrap(), s);
    }
    #[test]
    fn no_panic(b in proptest::collection::vec(any::<u8>(), 0..1100)) {
        let _ = ConnectData::decode(&b);
        if let Ok(s) = Sqe::decode(&b) {
            let _ = ConnectCmd::from_sqe(&s);
            let _ = PropertyGet::from_sqe(&s);
            let _ = PropertySet::from_sqe(&s);
        }
    }
}
