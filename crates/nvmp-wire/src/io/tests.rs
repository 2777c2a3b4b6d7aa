use super::*;
use proptest::prelude::*;

#[test]
fn read_known_bytes() {
    // Read: OPC 02h, NSID 1, SLBA 0x1_0000_0010 (CDW10/11), NLB 0's based 7 (8 blocks), FUA (CDW12 bit 30).
    let mut b = [0u8; 64];
    b[0] = 0x02;
    b[1] = 0x40;
    b[4] = 1;
    b[40] = 0x10;
    b[44] = 0x01;
    b[48] = 7;
    b[51] = 0x40;
    let s = Sqe::decode(&b).unwrap();
    let rw = ReadWrite::from_sqe(&s).unwrap();
    assert_eq!(
        rw,
        ReadWrite {
            nsid: 1,
            slba: 0x1_0000_0010,
            nlb: 8,
            fua: true
        }
    );
    assert_eq!(rw.read_sqe().to_bytes(), b);
    b[0] = 0x01;
    assert_eq!(rw.write_sqe().to_bytes(), b);
    assert_eq!(rw.len_bytes(512), 4096);
    assert!(ReadWrite::from_sqe(&Flush { nsid: 1 }.to_sqe()).is_err());
}

#[test]
fn write_zeroes_flush_dsm_known_bytes() {
    let mut b = [0u8; 64];
    b[0] = 0x08;
    b[1] = 0x40;
    b[4] = 2;
    b[48..52].copy_from_slice(&(0xFFFFu32 | 1 << 25).to_le_bytes());
    let wz = WriteZeroes::from_sqe(&Sqe::decode(&b).unwrap()).unwrap();
    assert_eq!(
        wz,
        WriteZeroes {
            nsid: 2,
            slba: 0,
            nlb: 65536,
            deallocate: true
        }
    );
    assert_eq!(wz.to_sqe().to_bytes(), b);

    let mut b = [0u8; 64];
    b[1] = 0x40;
    b[4] = 3;
    assert_eq!(
        Flush::from_sqe(&Sqe::decode(&b).unwrap()).unwrap(),
        Flush { nsid: 3 }
    );
    assert_eq!(Flush { nsid: 3 }.to_sqe().to_bytes(), b);

    // DSM: OPC 09h, NR (CDW10[7:0], 0's based) 255 = 256 ranges, AD (CDW11 bit 2).
    let mut b = [0u8; 64];
    b[0] = 0x09;
    b[1] = 0x40;
    b[4] = 1;
    b[40] = 0xFF;
    b[44] = 0x04;
    let d = Dsm::from_sqe(&Sqe::decode(&b).unwrap()).unwrap();
    assert_eq!(
        d,
        Dsm {
            nsid: 1,
            ranges: 256,
            deallocate: true
        }
    );
    assert_eq!(d.data_len(), 4096);
    assert_eq!(d.to_sqe().to_bytes(), b);
}

#[test]
fn dsm_range_known_bytes() {
    // Range: CATTR 0..4, NLB 4..8 (not 0's based), SLBA 8..16.
    let b: [u8; 16] = [1, 0, 0, 0, 0x00, 0x01, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0x80];
    let r = DsmRange::decode_list(&b, 1).unwrap();
    assert_eq!(
        r,
        vec![DsmRange {
            cattr: 1,
            nlb: 256,
            slba: 0x8000_0000_0000_0010
        }]
    );
    assert_eq!(DsmRange::encode_list(&r), b);
    assert_eq!(
        DsmRange::decode_list(&b, 2).unwrap_err().field,
        "DSM.Range.CATTR"
    );
    assert_eq!(DsmRange::decode_list(&b, 0).unwrap_err().field, "DSM.NR");
    assert_eq!(DsmRange::decode_list(&b, 257).unwrap_err().field, "DSM.NR");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn rw_round_trip(nsid: u32, slba: u64, nlb in 1u32..=MAX_NLB, fua: bool, deallocate: bool) {
        let rw = ReadWrite { nsid, slba, nlb, fua };
        prop_assert_eq!(ReadWrite::from_sqe(&rw.read_sqe()).unwrap(), rw);
        prop_assert_eq!(ReadWrite::from_sqe(&rw.write_sqe()).unwrap(), rw);
        let wz = WriteZeroes { nsid, slba, nlb, deallocate };
        prop_assert_eq!(WriteZeroes::from_sqe(&wz.to_sqe()).unwrap(), wz);
        let d = Dsm { nsid, ranges: (nlb % 256 + 1) as u16, deallocate };
        prop_assert_eq!(Dsm::from_sqe(&d.to_sqe()).unwrap(), d);
    }
    #[test]
    fn dsm_ranges_round_trip(v in proptest::collection::vec(any::<(u32, u32, u64)>(), 1..=256)) {
        let r: Vec<DsmRange> = v.into_iter().map(|(cattr, nlb, slba)| DsmRange { cattr, nlb, slba }).collect();
        prop_assert_eq!(DsmRange::decode_list(&DsmRange::encode_list(&r), r.len()).unwrap(), r);
    }
    #[test]
    fn no_panic(b in proptest::collection::vec(any::<u8>(), 0..600), n in 0usize..300) {
        let _ = DsmRange::decode_list(&b, n);
        if let Ok(s) = Sqe::decode(&b) {
            let _ = ReadWrite::from_sqe(&s);
            let _ = WriteZeroes::from_sqe(&s);
            let _ = Dsm::from_sqe(&s);
        }
    }
}
