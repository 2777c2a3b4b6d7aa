use super::*;
use crate::error::DecodeErrorKind;
use proptest::prelude::*;

/// Identify Namespace written from NVM Command Set 1.0 Figure 97.
fn known() -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[0..8].copy_from_slice(&[0x00, 0x00, 0x02, 0, 0, 0, 0, 0]); // NSZE 0x20000 blocks
    b[8..16].copy_from_slice(&[0x00, 0x00, 0x02, 0, 0, 0, 0, 0]); // NCAP
    b[16..24].copy_from_slice(&[0x00, 0x10, 0, 0, 0, 0, 0, 0]); // NUSE 0x1000
    b[24] = 0x10; // NSFEAT
    b[25] = 1; // NLBAF: two formats
    b[26] = 1; // FLBAS: format 1
    b[30] = 1; // NMIC: shared
    b[33] = 0x09; // DLFEAT
    b[92..96].copy_from_slice(&[3, 0, 0, 0]); // ANAGRPID 3
    b[99] = 0; // NSATTR
    for i in 0..16 {
        b[104 + i] = 0xA0 + i as u8; // NGUID
    }
    b[120..128].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // EUI64
    b[128..132].copy_from_slice(&[0, 0, 9, 2]); // LBAF0: MS 0, LBADS 9, RP 2
    b[132..136].copy_from_slice(&[8, 0, 12, 0]); // LBAF1: MS 8, LBADS 12, RP 0
    b
}

#[test]
fn known_bytes() {
    let b = known();
    let n = IdentifyNamespace::decode(&b).unwrap();
    assert_eq!((n.nsze, n.ncap, n.nuse), (0x20000, 0x20000, 0x1000));
    assert_eq!(
        (n.nsfeat, n.nlbaf, n.flbas, n.nmic, n.dlfeat),
        (0x10, 1, 1, 1, 9)
    );
    assert_eq!((n.anagrpid, n.nsattr), (3, 0));
    assert_eq!(n.nguid[0], 0xA0);
    assert_eq!(n.nguid[15], 0xAF);
    assert_eq!(n.eui64, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        n.lbaf,
        vec![
            LbaFormat {
                ms: 0,
                lbads: 9,
                rp: 2
            },
            LbaFormat {
                ms: 8,
                lbads: 12,
                rp: 0
            }
        ]
    );
    assert_eq!(n.block_size(), Some(4096));
    assert!(n.is_shared());
    assert_eq!(n.encode(), b);
}

#[test]
fn strict() {
    let mut b = known();
    b[25] = 64;
    let e = IdentifyNamespace::decode(&b).unwrap_err();
    assert_eq!(
        (e.field, e.kind),
        ("IdNs.NLBAF", DecodeErrorKind::OutOfRange { value: 64 })
    );
    assert_eq!(
        IdentifyNamespace::decode(&b[..100]).unwrap_err().field,
        "IdentifyNamespace"
    );
    // FLBAS pointing past NLBAF, or an absurd LBADS: no block size.
    let mut n = IdentifyNamespace::decode(&known()).unwrap();
    n.flbas = 5;
    assert_eq!(n.block_size(), None);
    n.flbas = 0;
    n.lbaf[0].lbads = 40;
    assert_eq!(n.block_size(), None);
}

#[test]
fn flbas_high_bits_with_many_formats() {
    let mut n = IdentifyNamespace {
        nlbaf: 17,
        lbaf: vec![
            LbaFormat {
                ms: 0,
                lbads: 9,
                rp: 0
            };
            18
        ],
        flbas: 0x21, // bits 6:5 = 1 → index 0x11
        ..Default::default()
    };
    n.lbaf[17].lbads = 13;
    assert_eq!(n.lba_format_index(), 17);
    assert_eq!(n.block_size(), Some(8192));
}

prop_compose! {
    fn ns()(
        a in any::<(u64, u64, u64, u8, u8, u8, u8, u32, u8)>(),
        ids in any::<([u8; 16], [u8; 8])>(),
        lbaf in proptest::collection::vec(any::<(u16, u8, u8)>(), 1..=64),
    ) -> IdentifyNamespace {
        IdentifyNamespace {
            nsze: a.0, ncap: a.1, nuse: a.2, nsfeat: a.3, nlbaf: (lbaf.len() - 1) as u8, flbas: a.4,
            dlfeat: a.5, nmic: a.6, anagrpid: a.7, nsattr: a.8, nguid: ids.0, eui64: ids.1,
            lbaf: lbaf.into_iter().map(|(ms, lbads, rp)| LbaFormat { ms, lbads, rp: rp & 3 }).collect(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn round_trip(n in ns()) {
        prop_assert_eq!(IdentifyNamespace::decode(&n.encode()).unwrap(), n);
    }
    #[test]
    fn no_panic(b in proptest::collection::vec(any::<u8>(), 4090..4100)) {
        if let Ok(n) = IdentifyNamespace::decode(&b) {
            let _ = n.block_size();
        }
    }
    #[test]
    fn no_panic_mutated(i in 0usize..512, v: u8) {
        let mut b = known();
        b[i] = v;
        if let Ok(n) = IdentifyNamespace::decode(&b) {
            let _ = n.block_size();
        }
    }
}
