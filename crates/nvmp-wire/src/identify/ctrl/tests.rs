use super::*;
use crate::error::DecodeErrorKind;
use proptest::prelude::*;

fn le(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

/// Identify Controller written field by field from NVMe Base 2.0 Figure 275
/// and NVMe-oF 1.1 Figure 40 (not by the encoder).
fn known() -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    le(&mut b, 0, &[0x86, 0x80]); // VID 8086h
    le(&mut b, 2, &[0x34, 0x12]); // SSVID
    le(&mut b, 4, b"SN0001              "); // SN, 20 bytes space padded
    le(&mut b, 24, b"nvmp                                    "); // MN, 40 bytes
    le(&mut b, 64, b"0.1.0   "); // FR, 8 bytes
    b[72] = 6; // RAB
    le(&mut b, 73, &[0x00, 0x14, 0x05]); // IEEE
    b[76] = 0x0B; // CMIC: multi-port, multi-controller, ANA
    b[77] = 5; // MDTS
    le(&mut b, 78, &[0x02, 0x00]); // CNTLID 2
    le(&mut b, 80, &[0x00, 0x00, 0x02, 0x00]); // VER 2.0.0
    le(&mut b, 84, &[1, 0, 0, 0]); // RTD3R
    le(&mut b, 88, &[2, 0, 0, 0]); // RTD3E
    le(&mut b, 92, &[0x00, 0x09, 0x00, 0x80]); // OAES: NS attr (8), ANA (11), discovery (31)
    le(&mut b, 96, &[0x01, 0, 0, 0]); // CTRATT
    b[111] = 1; // CNTRLTYPE: I/O controller
    le(&mut b, 128, &[10, 0, 20, 0, 30, 0]); // CRDT1..3 (bytes 133:128)
    b[135] = 0xA5; // CIU (NVMe 2.3)
    le(&mut b, 136, &[1, 2, 3, 4, 5, 6, 7, 0x88]); // CIRN 8807060504030201h
    le(&mut b, 256, &[0x04, 0x00]); // OACS
    b[258] = 3; // ACL
    b[259] = 3; // AERL
    b[260] = 0x03; // FRMW
    b[261] = 0x04; // LPA
    b[262] = 0x7F; // ELPE
    b[263] = 0; // NPSS
    le(&mut b, 320, &[0x64, 0x00]); // KAS 100
    b[343] = 10; // ANATT
    b[344] = 0x5F; // ANACAP
    le(&mut b, 348, &[128, 0, 0, 0]); // ANAGRPMAX
    le(&mut b, 352, &[128, 0, 0, 0]); // NANAGRPID
    le(&mut b, 386, &[0xE8, 0x03]); // CQT 1000 ms
    b[512] = 0x66; // SQES
    b[513] = 0x44; // CQES
    le(&mut b, 514, &[0x80, 0x00]); // MAXCMD 128
    le(&mut b, 516, &[0x00, 0x04, 0, 0]); // NN 1024
    le(&mut b, 520, &[0x0C, 0x00]); // ONCS
    le(&mut b, 522, &[0x01, 0x00]); // FUSES
    b[524] = 0x01; // FNA
    b[525] = 0x05; // VWC
    le(&mut b, 526, &[0x07, 0x00]); // AWUN
    le(&mut b, 528, &[0x03, 0x00]); // AWUPF
    le(&mut b, 536, &[0x01, 0x00, 0x10, 0x00]); // SGLS
    le(&mut b, 540, &[0x00, 0x04, 0, 0]); // MNAN
    le(&mut b, 768, b"nqn.2019-10.io.nvmp:subsys1"); // SUBNQN, NUL padded
    le(&mut b, 1792, &[0x44, 0x01, 0, 0]); // IOCCSZ 324 (64 B SQE + 5120 B in-capsule)
    le(&mut b, 1796, &[0x01, 0, 0, 0]); // IORCSZ
    le(&mut b, 1800, &[0x00, 0x00]); // ICDOFF
    b[1802] = 0; // FCATT: dynamic controller model
    b[1803] = 1; // MSDBD
    le(&mut b, 1804, &[0x01, 0x00]); // OFCS: Disconnect supported
    b[1807] = 4; // CCRL
    b
}

#[test]
fn known_bytes() {
    let b = known();
    let c = IdentifyController::decode(&b).unwrap();
    assert_eq!((c.vid, c.ssvid), (0x8086, 0x1234));
    assert_eq!(
        (c.sn.as_str(), c.mn.as_str(), c.fr.as_str()),
        ("SN0001", "nvmp", "0.1.0")
    );
    assert_eq!(
        (c.rab, c.ieee, c.cmic, c.mdts, c.cntlid),
        (6, [0, 0x14, 5], 0x0B, 5, 2)
    );
    assert_eq!(c.ver, 0x0002_0000);
    assert_eq!((c.rtd3r, c.rtd3e, c.oaes, c.ctratt), (1, 2, 0x8000_0900, 1));
    assert_eq!((c.cntrltype, c.crdt), (1, [10, 20, 30]));
    assert_eq!(
        (c.ciu, c.cirn, c.cqt, c.ccrl),
        (0xA5, 0x8807_0605_0403_0201, 1000, 4)
    );
    assert!(c.supports_ccr());
    assert_eq!(
        (c.oacs, c.acl, c.aerl, c.frmw, c.lpa, c.elpe, c.npss),
        (4, 3, 3, 3, 4, 0x7F, 0)
    );
    assert_eq!(
        (c.kas, c.anatt, c.anacap, c.anagrpmax, c.nanagrpid),
        (100, 10, 0x5F, 128, 128)
    );
    assert_eq!(
        (c.sqes, c.cqes, c.maxcmd, c.nn, c.oncs),
        (0x66, 0x44, 128, 1024, 0x0C)
    );
    assert_eq!((c.fuses, c.fna, c.vwc, c.awun, c.awupf), (1, 1, 5, 7, 3));
    assert_eq!((c.sgls, c.mnan), (0x0010_0001, 1024));
    assert_eq!(c.subnqn, "nqn.2019-10.io.nvmp:subsys1");
    assert_eq!(
        (c.ioccsz, c.iorcsz, c.icdoff, c.fcatt, c.msdbd, c.ofcs),
        (324, 1, 0, 0, 1, 1)
    );
    assert!(c.has_ana());
    assert_eq!(c.max_transfer_bytes(4096), Some(128 * 1024));
    assert_eq!(c.encode(), b);
}

#[test]
fn strict() {
    let b = known();
    let e = IdentifyController::decode(&b[..4095]).unwrap_err();
    assert_eq!(e.field, "IdentifyController");
    let mut bad = b.clone();
    bad[10] = 0x80; // non-ASCII in SN
    let e = IdentifyController::decode(&bad).unwrap_err();
    assert_eq!(
        (e.field, e.kind, e.offset),
        ("IdCtrl.SN", DecodeErrorKind::BadText, Some(4))
    );
    let mut bad = b;
    bad[1000] = b'x'; // garbage after the SUBNQN terminator
    assert_eq!(
        IdentifyController::decode(&bad).unwrap_err().field,
        "IdCtrl.SUBNQN"
    );
}

prop_compose! {
    fn ctrl()(
        raw in proptest::collection::vec(any::<u8>(), 160),
        sn in "[!-~]([ -~]{0,18}[!-~])?", mn in "[!-~]{0,40}", fr in "[!-~]{0,8}",
        subnqn in "[!-~]{0,223}",
    ) -> IdentifyController {
        let mut r = crate::reader::Reader::new(&raw);
        macro_rules! g { (u8) => { r.u8("t").unwrap() }; (u16) => { r.u16("t").unwrap() }; (u32) => { r.u32("t").unwrap() }; }
        IdentifyController {
            vid: g!(u16), ssvid: g!(u16), sn, mn, fr, rab: g!(u8), ieee: [g!(u8), g!(u8), g!(u8)],
            cmic: g!(u8), mdts: g!(u8), cntlid: g!(u16), ver: g!(u32), rtd3r: g!(u32), rtd3e: g!(u32),
            oaes: g!(u32), ctratt: g!(u32), cntrltype: g!(u8), crdt: [g!(u16), g!(u16), g!(u16)],
            ciu: g!(u8), cirn: u64::from(g!(u32)) << 32 | u64::from(g!(u32)), cqt: g!(u16),
            oacs: g!(u16), acl: g!(u8), aerl: g!(u8), frmw: g!(u8), lpa: g!(u8), elpe: g!(u8),
            npss: g!(u8), kas: g!(u16), anatt: g!(u8), anacap: g!(u8), anagrpmax: g!(u32),
            nanagrpid: g!(u32), sqes: g!(u8), cqes: g!(u8), maxcmd: g!(u16), nn: g!(u32),
            oncs: g!(u16), fuses: g!(u16), fna: g!(u8), vwc: g!(u8), awun: g!(u16), awupf: g!(u16),
            sgls: g!(u32), mnan: g!(u32), subnqn, ioccsz: g!(u32), iorcsz: g!(u32), icdoff: g!(u16),
            fcatt: g!(u8), msdbd: g!(u8), ofcs: g!(u16), ccrl: g!(u8),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn round_trip(c in ctrl()) {
        let b = c.encode();
        prop_assert_eq!(b.len(), 4096);
        prop_assert_eq!(IdentifyController::decode(&b).unwrap(), c);
    }
    #[test]
    fn no_panic(b in proptest::collection::vec(any::<u8>(), 4090..4100)) {
        let _ = IdentifyController::decode(&b);
    }
    #[test]
    fn no_panic_mutated(i in 0usize..4096, v: u8) {
        let mut b = known();
        b[i] = v;
        let _ = IdentifyController::decode(&b);
    }
}
