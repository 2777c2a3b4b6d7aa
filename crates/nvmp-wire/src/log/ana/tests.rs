use super::*;
use proptest::prelude::*;

/// ANA log written from NVMe Base 2.0 Figures 224-226: CHGCNT 7, two groups;
/// group 1 optimized with NSIDs 1 and 2, group 2 inaccessible with NSID 5.
fn known() -> Vec<u8> {
    let mut b = vec![0u8; 16 + 32 + 8 + 32 + 4];
    b[0] = 7; // CHGCNT
    b[8] = 2; // NGRPS
    let d1 = 16;
    b[d1] = 1; // ANAGRPID
    b[d1 + 4] = 2; // NNSIDS
    b[d1 + 8] = 3; // CHGCNT
    b[d1 + 16] = 0x01; // ANAS optimized
    b[d1 + 32] = 1;
    b[d1 + 36] = 2;
    let d2 = d1 + 40;
    b[d2] = 2;
    b[d2 + 4] = 1;
    b[d2 + 8] = 4;
    b[d2 + 16] = 0x03; // inaccessible
    b[d2 + 32] = 5;
    b
}

fn lim() -> AnaLogLimits {
    AnaLogLimits {
        max_groups: 16,
        max_nsids: 1024,
    }
}

#[test]
fn known_bytes() {
    let b = known();
    let l = AnaLog::decode(&b, lim()).unwrap();
    assert_eq!(
        l,
        AnaLog {
            change_count: 7,
            groups: vec![
                AnaGroupDesc {
                    grpid: 1,
                    change_count: 3,
                    state: AnaState::OPTIMIZED,
                    nsids: vec![1, 2]
                },
                AnaGroupDesc {
                    grpid: 2,
                    change_count: 4,
                    state: AnaState::INACCESSIBLE,
                    nsids: vec![5]
                },
            ]
        }
    );
    assert_eq!(l.encode(false), b);
    assert_eq!(l.state_of(5), Some(AnaState::INACCESSIBLE));
    // Trailing bytes (a host's fixed-size buffer) are ignored.
    let mut big = b.clone();
    big.resize(4096, 0);
    assert_eq!(AnaLog::decode(&big, lim()).unwrap(), l);
}

#[test]
fn rgo_known_bytes() {
    // "Return Groups Only": NNSIDS 0 and no NSID lists.
    let mut b = vec![0u8; 16 + 64];
    b[0] = 7;
    b[8] = 2;
    b[16] = 1;
    b[24] = 3;
    b[32] = 1;
    b[48] = 2;
    b[56] = 4;
    b[64] = 3;
    let l = AnaLog::decode(&known(), lim()).unwrap();
    assert_eq!(l.encode(true), b);
    let g = AnaLog::decode(&b, lim()).unwrap();
    assert!(g.groups.iter().all(|g| g.nsids.is_empty()));
    assert_eq!(g.groups[1].state, AnaState::INACCESSIBLE);
}

#[test]
fn strict() {
    let b = known();
    // NGRPS above the limit.
    let e = AnaLog::decode(
        &b,
        AnaLogLimits {
            max_groups: 1,
            max_nsids: 1024,
        },
    )
    .unwrap_err();
    assert_eq!((e.field, e.offset), ("ANA.NGRPS", Some(8)));
    // Total NSIDs above the limit.
    let e = AnaLog::decode(
        &b,
        AnaLogLimits {
            max_groups: 16,
            max_nsids: 2,
        },
    )
    .unwrap_err();
    assert_eq!((e.field, e.offset), ("ANA.NNSIDS", Some(60)));
    // NNSIDS larger than the buffer.
    let mut x = b.clone();
    x[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = AnaLog::decode(
        &x,
        AnaLogLimits {
            max_groups: 16,
            max_nsids: u32::MAX,
        },
    )
    .unwrap_err();
    assert_eq!(e.field, "ANA.NSID");
    assert!(matches!(e.kind, DecodeErrorKind::Truncated { .. }));
    // NGRPS claims more groups than present.
    let mut x = b.clone();
    x[8] = 3;
    assert_eq!(AnaLog::decode(&x, lim()).unwrap_err().field, "ANA.ANAGRPID");
    // Group ID 0.
    let mut x = b.clone();
    x[16] = 0;
    assert_eq!(AnaLog::decode(&x, lim()).unwrap_err().field, "ANA.ANAGRPID");
    // NSID 0.
    let mut x = b;
    x[52] = 0;
    let e = AnaLog::decode(&x, lim()).unwrap_err();
    assert_eq!((e.field, e.offset), ("ANA.NSID", Some(52)));
    assert_eq!(
        AnaLog::decode(&[0; 15], lim()).unwrap_err().field,
        "ANA.RSVD"
    );
}

#[test]
fn state_names() {
    for s in [
        AnaState::OPTIMIZED,
        AnaState::NON_OPTIMIZED,
        AnaState::INACCESSIBLE,
        AnaState::PERSISTENT_LOSS,
        AnaState::CHANGE,
    ] {
        assert_eq!(s.name().parse::<AnaState>().unwrap(), s);
        assert_eq!(s.to_string(), s.name());
    }
    assert!(AnaState::OPTIMIZED.is_usable() && AnaState::NON_OPTIMIZED.is_usable());
    assert!(!AnaState::CHANGE.is_usable() && !AnaState(9).is_usable());
    assert!("bogus".parse::<AnaState>().is_err());
}

fn log() -> impl Strategy<Value = AnaLog> {
    let group = (
        1u32..,
        any::<u64>(),
        prop_oneof![Just(1u8), Just(2), Just(3), Just(4), Just(0xF), 0u8..16],
        proptest::collection::btree_set(1u32.., 0..20),
    )
        .prop_map(|(grpid, change_count, s, nsids)| AnaGroupDesc {
            grpid,
            change_count,
            state: AnaState(s),
            nsids: nsids.into_iter().collect(),
        });
    (any::<u64>(), proptest::collection::vec(group, 0..16)).prop_map(|(change_count, groups)| {
        AnaLog {
            change_count,
            groups,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn round_trip(l in log()) {
        let big = AnaLogLimits { max_groups: 16, max_nsids: 1024 };
        prop_assert_eq!(AnaLog::decode(&l.encode(false), big).unwrap(), l.clone());
        let g = AnaLog::decode(&l.encode(true), big).unwrap();
        prop_assert_eq!(g.groups.len(), l.groups.len());
        prop_assert!(g.groups.iter().all(|g| g.nsids.is_empty()));
    }
    #[test]
    fn no_panic(b in proptest::collection::vec(any::<u8>(), 0..512), mg: u32, mn: u32) {
        let _ = AnaLog::decode(&b, AnaLogLimits { max_groups: mg, max_nsids: mn });
    }
}
