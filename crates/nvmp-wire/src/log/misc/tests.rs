use super::*;
use crate::status::StatusCode;
use proptest::prelude::*;

#[test]
fn error_log_known_bytes() {
    // Figure 205: ERRCNT 0..8, SQID 8, CID 10, STATUS 12, PEL 14, LBA 16, NSID 24, VSIA 28, TRTYPE 29, CSI 32, TTSI 40.
    let mut b = [0u8; 64];
    b[0] = 9;
    b[8] = 1;
    b[10] = 0x34;
    b[11] = 0x12;
    b[12..14].copy_from_slice(&((0x302u16 << 1) | 0x8000).to_le_bytes()); // ANA inaccessible, DNR
    b[14] = 40;
    b[16] = 0x80;
    b[24] = 1;
    b[29] = 3;
    b[32] = 7;
    b[40] = 2;
    let e = ErrorLogEntry::decode(&b).unwrap();
    assert_eq!(
        (e.error_count, e.sqid, e.cid, e.pel, e.lba, e.nsid),
        (9, 1, 0x1234, 40, 0x80, 1)
    );
    assert_eq!((e.vsia, e.trtype, e.csi, e.ttsi), (0, 3, 7, 2));
    assert_eq!(e.status().code, StatusCode::ANA_INACCESSIBLE);
    assert!(e.status().dnr);
    assert_eq!(e.encode(), b);
    assert_eq!(
        ErrorLogEntry::decode(&b[..63]).unwrap_err().field,
        "ErrorLog.Entry"
    );
    let mut two = b.to_vec();
    two.extend_from_slice(&b);
    two.push(0);
    assert_eq!(ErrorLogEntry::decode_list(&two).unwrap().len(), 2);
}

#[test]
fn smart_known_bytes() {
    // Figure 207: CW 0, CTEMP 1..3, AVSP 3, AVSPT 4, PUSED 5, DUR 32, DUW 48, HRC 64, HWC 80, CBT 96,
    // PWRC 112, POH 128, UPWRC 144, MDIE 160, NEILE 176, WCTT 192, CCTT 196.
    let mut b = vec![0u8; 512];
    b[0] = 0x02;
    b[1..3].copy_from_slice(&310u16.to_le_bytes());
    b[3] = 100;
    b[4] = 10;
    b[5] = 3;
    b[32] = 1;
    b[47] = 0x80; // top byte of the 128-bit DUR
    b[48] = 2;
    b[64] = 3;
    b[80] = 4;
    b[96] = 5;
    b[112] = 6;
    b[128] = 7;
    b[144] = 8;
    b[160] = 9;
    b[176] = 10;
    b[192] = 11;
    b[196] = 12;
    let s = SmartLog::decode(&b).unwrap();
    assert_eq!(
        (
            s.critical_warning,
            s.temperature_k,
            s.available_spare,
            s.available_spare_threshold,
            s.percentage_used
        ),
        (2, 310, 100, 10, 3)
    );
    assert_eq!(s.data_units_read, 1 | (0x80u128 << 120));
    assert_eq!(
        (
            s.data_units_written,
            s.host_read_commands,
            s.host_write_commands
        ),
        (2, 3, 4)
    );
    assert_eq!(
        (
            s.controller_busy_time_min,
            s.power_cycles,
            s.power_on_hours,
            s.unsafe_shutdowns
        ),
        (5, 6, 7, 8)
    );
    assert_eq!((s.media_errors, s.num_err_log_entries), (9, 10));
    assert_eq!(
        (s.warning_temp_time_min, s.critical_temp_time_min),
        (11, 12)
    );
    assert_eq!(s.encode(), b);
    assert_eq!(SmartLog::decode(&b[..511]).unwrap_err().field, "SMART");
}

#[test]
fn changed_ns_known_bytes() {
    let mut b = vec![0u8; 4096];
    b[0] = 3;
    b[4] = 9;
    let c = ChangedNsList::decode(&b).unwrap();
    assert_eq!(
        c,
        ChangedNsList {
            overflow: false,
            nsids: vec![3, 9]
        }
    );
    assert_eq!(c.encode(), b);
    // "the first entry … FFFFFFFFh": overflow.
    let mut o = vec![0u8; 4096];
    o[0..4].fill(0xFF);
    let c = ChangedNsList::decode(&o).unwrap();
    assert!(c.overflow);
    assert_eq!(c.encode(), o);
    // FFFFFFFFh anywhere else is invalid.
    let mut x = b;
    x[8..12].fill(0xFF);
    let e = ChangedNsList::decode(&x).unwrap_err();
    assert_eq!((e.field, e.offset), ("ChangedNs.NSID", Some(8)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn error_log_round_trip(b in proptest::collection::vec(any::<u8>(), 64)) {
        let mut b = b;
        b[30] = 0; b[31] = 0;
        b[42..64].fill(0);
        let e = ErrorLogEntry::decode(&b).unwrap();
        prop_assert_eq!(&e.encode()[..], &b[..]);
    }
    #[test]
    fn smart_round_trip(b in proptest::collection::vec(any::<u8>(), 512)) {
        let mut b = b;
        b[7..32].fill(0);
        b[200..].fill(0);
        let s = SmartLog::decode(&b).unwrap();
        prop_assert_eq!(s.encode(), b);
    }
    #[test]
    fn changed_ns_round_trip(v in proptest::collection::vec(1u32..u32::MAX, 0..=1024)) {
        let c = ChangedNsList { overflow: false, nsids: v };
        prop_assert_eq!(ChangedNsList::decode(&c.encode()).unwrap(), c);
    }
    #[test]
    fn no_panic(b in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = ErrorLogEntry::decode(&b);
        let _ = ErrorLogEntry::decode_list(&b);
        let _ = SmartLog::decode(&b);
        let _ = ChangedNsList::decode(&b);
    }
}
