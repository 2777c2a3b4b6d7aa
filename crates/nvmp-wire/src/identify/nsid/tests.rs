use super::*;
use crate::error::DecodeErrorKind;
use proptest::prelude::*;

#[test]
fn descriptors_known_bytes() {
    // Figure 277: NIDT, NIDL, 2 reserved, NID. NGUID (2h, 10h), UUID (3h, 10h), CSI (4h, 1h), then NIDT 0.
    let mut b = vec![0u8; 4096];
    b[0] = 2;
    b[1] = 0x10;
    b[4..20].copy_from_slice(&[0x11; 16]);
    b[20] = 3;
    b[21] = 0x10;
    b[24..40].copy_from_slice(&[0x22; 16]);
    b[40] = 4;
    b[41] = 1;
    b[44] = 0;
    b[45] = 1; // EUI64 (1h, 8h) at 45 (descriptors are not padded)
    b[46] = 8;
    b[49..57].copy_from_slice(&[0x33; 8]);
    let d = decode_ns_id_descriptors(&b).unwrap();
    assert_eq!(
        d,
        vec![
            NsIdDescriptor::Nguid([0x11; 16]),
            NsIdDescriptor::Uuid([0x22; 16]),
            NsIdDescriptor::Csi(0),
            NsIdDescriptor::Eui64([0x33; 8]),
        ]
    );
    assert_eq!(encode_ns_id_descriptors(&d), b);
}

#[test]
fn descriptors_strict() {
    // UUID with NIDL 8: wrong length for the type.
    let mut b = vec![0u8; 64];
    b[0] = 3;
    b[1] = 8;
    let e = decode_ns_id_descriptors(&b).unwrap_err();
    assert_eq!((e.field, e.offset), ("NsIdDesc.NIDL", Some(1)));
    // NIDL runs past the buffer.
    let b = [9u8, 200, 0, 0, 1, 2];
    let e = decode_ns_id_descriptors(&b).unwrap_err();
    assert!(matches!(
        e.kind,
        DecodeErrorKind::Truncated {
            needed: 200,
            available: 2
        }
    ));
    // Unknown types are kept.
    let b = [9u8, 2, 0, 0, 0xAB, 0xCD, 0, 0];
    assert_eq!(
        decode_ns_id_descriptors(&b).unwrap(),
        vec![NsIdDescriptor::Unknown {
            nidt: 9,
            data: vec![0xAB, 0xCD]
        }]
    );
}

#[test]
fn ns_list_known_bytes() {
    let mut b = vec![0u8; 4096];
    b[0..12].copy_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0, 0x00, 0x01, 0, 0]);
    assert_eq!(decode_ns_list(&b).unwrap(), vec![1, 2, 256]);
    assert_eq!(encode_ns_list(&[1, 2, 256]), b);
    // Not increasing.
    b[8] = 1;
    b[9] = 0;
    let e = decode_ns_list(&b).unwrap_err();
    assert_eq!((e.field, e.offset), ("NsList.NSID", Some(8)));
}

fn desc() -> impl Strategy<Value = NsIdDescriptor> {
    prop_oneof![
        any::<[u8; 8]>().prop_map(NsIdDescriptor::Eui64),
        any::<[u8; 16]>().prop_map(NsIdDescriptor::Nguid),
        any::<[u8; 16]>().prop_map(NsIdDescriptor::Uuid),
        any::<u8>().prop_map(NsIdDescriptor::Csi),
        (5u8.., proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(nidt, data)| NsIdDescriptor::Unknown { nidt, data }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn descriptors_round_trip(d in proptest::collection::vec(desc(), 0..20)) {
        prop_assert_eq!(decode_ns_id_descriptors(&encode_ns_id_descriptors(&d)).unwrap(), d);
    }
    #[test]
    fn ns_list_round_trip(s in proptest::collection::btree_set(1u32..u32::MAX, 0..=1024)) {
        let v: Vec<u32> = s.into_iter().collect();
        prop_assert_eq!(decode_ns_list(&encode_ns_list(&v)).unwrap(), v);
    }
    #[test]
    fn no_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_ns_id_descriptors(&b);
        let _ = decode_ns_list(&b);
    }
}
