use super::*;
use proptest::prelude::*;

const SUBNQN: &str = "nqn.2019-10.io.nvmp:subsys1";

/// Written from NVMe-oF 1.1 Figures 32-33: header (GENCTR 5, NUMREC 1, RECFMT 0)
/// and one TCP entry.
fn known() -> Vec<u8> {
    let mut b = vec![0u8; 2048];
    b[0] = 5; // GENCTR
    b[8] = 1; // NUMREC
    let e = 1024;
    b[e] = 3; // TRTYPE TCP
    b[e + 1] = 1; // ADRFAM IPv4
    b[e + 2] = 2; // SUBTYPE NVMe subsystem
    b[e + 3] = 0x02; // TREQ: secure channel not required
    b[e + 4] = 1; // PORTID
    b[e + 6] = 0xFF; // CNTLID FFFFh
    b[e + 7] = 0xFF;
    b[e + 8] = 32; // ASQSZ
    b[e + 32..e + 36].copy_from_slice(b"4420"); // TRSVCID
    b[e + 256..e + 256 + SUBNQN.len()].copy_from_slice(SUBNQN.as_bytes());
    b[e + 512..e + 521].copy_from_slice(b"127.0.0.1"); // TRADDR
    b[e + 768] = 0; // TSAS.SECTYPE none
    b
}

#[test]
fn known_bytes() {
    let b = known();
    assert_eq!(DiscoveryLog::decode_header(&b).unwrap(), (5, 1, 0));
    let l = DiscoveryLog::decode(&b).unwrap();
    assert_eq!((l.genctr, l.numrec, l.recfmt), (5, 1, 0));
    let e = &l.entries[0];
    assert_eq!(
        (e.trtype, e.adrfam, e.subtype, e.treq),
        (trtype::TCP, adrfam::IPV4, subtype::NVME, 2)
    );
    assert_eq!((e.portid, e.cntlid, e.asqsz, e.eflags), (1, 0xFFFF, 32, 0));
    assert_eq!(
        (e.trsvcid.as_str(), e.subnqn.as_str(), e.traddr.as_str()),
        ("4420", SUBNQN, "127.0.0.1")
    );
    assert_eq!(l.encode(), b);
}

#[test]
fn space_padded_addresses_are_accepted() {
    // SPDK pads TRSVCID and TRADDR with spaces.
    let mut b = known();
    b[1024 + 36..1024 + 64].fill(b' ');
    b[1024 + 521..1024 + 768].fill(b' ');
    let l = DiscoveryLog::decode(&b).unwrap();
    assert_eq!(
        (l.entries[0].trsvcid.as_str(), l.entries[0].traddr.as_str()),
        ("4420", "127.0.0.1")
    );
}

#[test]
fn strict() {
    // NUMREC larger than the buffer holds.
    let mut b = known();
    b[8] = 2;
    let e = DiscoveryLog::decode(&b).unwrap_err();
    assert_eq!((e.field, e.offset), ("Discovery.NUMREC", Some(8)));
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(
        DiscoveryLog::decode(&b).unwrap_err().field,
        "Discovery.NUMREC"
    );
    assert_eq!(
        DiscoveryLog::decode(&b[..100]).unwrap_err().field,
        "Discovery.Header"
    );
    assert_eq!(
        DiscoveryLog::decode_header(&b[..10]).unwrap_err().field,
        "Discovery.NUMREC"
    );
    // Non-ASCII TRADDR.
    let mut b = known();
    b[1024 + 520] = 0xC3;
    let e = DiscoveryLog::decode(&b).unwrap_err();
    assert_eq!((e.field, e.offset), ("Discovery.TRADDR", Some(1024 + 512)));
    assert_eq!(DiscoveryLog::len_for(2), Some(3072));
    assert_eq!(DiscoveryLog::len_for(u64::MAX), None);
}

fn entry() -> impl Strategy<Value = DiscoveryEntry> {
    (
        any::<(u8, u8, u8, u8, u16, u16, u16, u16)>(),
        "[0-9]{1,5}",
        "nqn\\.20[0-9]{2}-1[0-2]\\.[a-z]{1,8}:[!-~]{0,100}",
        "[!-~]{0,64}",
        proptest::collection::vec(any::<u8>(), 256),
    )
        .prop_map(|(a, trsvcid, subnqn, traddr, tsas)| DiscoveryEntry {
            trtype: a.0,
            adrfam: a.1,
            subtype: a.2,
            treq: a.3,
            portid: a.4,
            cntlid: a.5,
            asqsz: a.6,
            eflags: a.7,
            trsvcid,
            subnqn,
            traddr,
            tsas: tsas.try_into().unwrap(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn round_trip(genctr: u64, recfmt: u16, entries in proptest::collection::vec(entry(), 0..6)) {
        let l = DiscoveryLog { genctr, numrec: entries.len() as u64, recfmt, entries };
        prop_assert_eq!(DiscoveryLog::decode(&l.encode()).unwrap(), l);
    }
    #[test]
    fn no_panic(b in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = DiscoveryLog::decode(&b);
        let _ = DiscoveryEntry::decode(&b, 0);
    }
    #[test]
    fn no_panic_mutated(i in 0usize..2048, v: u8) {
        let mut b = known();
        b[i] = v;
        let _ = DiscoveryLog::decode(&b);
    }
}
