use super::*;
use proptest::prelude::*;

#[test]
fn register_known_bytes() {
    // nvme resv-register -n 1 --nrkey=0xabcd --rrega=0 --cptpl=3: OPC 0Dh, CDW10 = 0xC000_0000.
    let r = ResvRegister {
        nsid: 1,
        rrega: rrega::REGISTER,
        iekey: false,
        cptpl: cptpl::SET,
        crkey: 0,
        nrkey: 0xabcd,
    };
    let b = r.to_sqe().to_bytes();
    assert_eq!(b[0], 0x0D);
    assert_eq!(&b[4..8], &[1, 0, 0, 0]);
    assert_eq!(&b[40..44], &[0, 0, 0, 0xC0]);
    let d = r.data();
    assert_eq!(&d[8..10], &[0xcd, 0xab]);
    assert_eq!(
        ResvRegister::decode(&Sqe::decode(&b).unwrap(), &d).unwrap(),
        r
    );
    assert!(ResvRegister::decode(&r.to_sqe(), &d[..15]).is_err());
    assert!(ResvRegister::decode(&ResvRelease::default().to_sqe(), &d).is_err());
}

#[test]
fn acquire_release_known_bytes() {
    // Preempt and Abort, IEKEY, Write Exclusive: CDW10 = 0x0000_010A.
    let a = ResvAcquire {
        nsid: 2,
        racqa: racqa::PREEMPT_AND_ABORT,
        iekey: true,
        rtype: ResvType::WRITE_EXCLUSIVE,
        crkey: 1,
        prkey: 2,
    };
    let s = a.to_sqe();
    assert_eq!(s.opcode, Opcode(0x11));
    assert_eq!(s.cdw10, 0x10A);
    assert_eq!(ResvAcquire::decode(&s, &a.data()).unwrap(), a);
    let r = ResvRelease {
        nsid: 2,
        rrela: rrela::CLEAR,
        iekey: false,
        rtype: ResvType::EXCLUSIVE_ACCESS_ALL_REGS,
        crkey: 7,
    };
    let s = r.to_sqe();
    assert_eq!(s.opcode, Opcode(0x15));
    assert_eq!(s.cdw10, 0x601);
    assert_eq!(r.data(), [7, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(ResvRelease::decode(&s, &r.data()).unwrap(), r);
    assert!(ResvRelease::decode(&s, &[0; 7]).is_err());
}

#[test]
fn report_cmd() {
    let c = ResvReportCmd {
        nsid: 1,
        len: 4096,
        eds: true,
    };
    let s = c.to_sqe();
    assert_eq!((s.opcode, s.cdw10, s.cdw11), (Opcode(0x0E), 1023, 1));
    assert_eq!(ResvReportCmd::from_sqe(&s).unwrap(), c);
    assert_eq!(
        s.data_direction(),
        crate::sqe::DataDirection::ControllerToHost
    );
    assert_eq!(
        ResvRegister::default().to_sqe().data_direction(),
        crate::sqe::DataDirection::HostToController
    );
}

#[test]
fn status_known_bytes_both_formats() {
    let hostid = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
    let st = ResvStatus {
        gen: 3,
        rtype: ResvType::WRITE_EXCLUSIVE,
        regctl: 1,
        ptpls: true,
        ctrls: vec![RegisteredCtrl {
            cntlid: 0xFFFF,
            rcsts: RCSTS_HOLDS,
            hostid,
            rkey: 0x1122,
        }],
    };
    let e = st.encode(true);
    assert_eq!(e.len(), 128);
    assert_eq!(&e[0..10], &[3, 0, 0, 0, 1, 1, 0, 0, 0, 1]);
    assert_eq!(&e[64..67], &[0xFF, 0xFF, 1]);
    assert_eq!(&e[72..74], &[0x22, 0x11]);
    assert_eq!(&e[80..96], &hostid);
    assert_eq!(ResvStatus::decode(&e, true).unwrap(), st);
    let n = st.encode(false);
    assert_eq!(n.len(), 48);
    assert_eq!(&n[24 + 8..24 + 16], &hostid[..8]);
    assert_eq!(&n[24 + 16..24 + 18], &[0x22, 0x11]);
    let back = ResvStatus::decode(&n, false).unwrap();
    assert_eq!(back.ctrls[0].hostid[..8], hostid[..8]);
    assert_eq!(back.ctrls[0].hostid[8..], [0; 8]);
    // A short buffer: REGCTL says 1, no entry fits.
    let short = ResvStatus::decode(&e[..64], true).unwrap();
    assert_eq!((short.regctl, short.ctrls.len()), (1, 0));
    assert!(ResvStatus::decode(&e[..63], true).is_err());
}

fn arb_status() -> impl Strategy<Value = ResvStatus> {
    (
        any::<u32>(),
        any::<u8>(),
        any::<bool>(),
        proptest::collection::vec(
            (any::<u16>(), any::<u8>(), any::<[u8; 16]>(), any::<u64>()),
            0..8,
        ),
    )
        .prop_map(|(gen, rtype, ptpls, v)| ResvStatus {
            gen,
            rtype: ResvType(rtype),
            regctl: v.len() as u16,
            ptpls,
            ctrls: v
                .into_iter()
                .map(|(cntlid, rcsts, hostid, rkey)| RegisteredCtrl {
                    cntlid,
                    rcsts,
                    hostid,
                    rkey,
                })
                .collect(),
        })
}

proptest! {
    #[test]
    fn status_round_trip_eds(st in arb_status()) {
        prop_assert_eq!(ResvStatus::decode(&st.encode(true), true).unwrap(), st);
    }

    #[test]
    fn status_round_trip_compact(mut st in arb_status()) {
        for c in &mut st.ctrls {
            c.hostid[8..].fill(0);
        }
        prop_assert_eq!(ResvStatus::decode(&st.encode(false), false).unwrap(), st);
    }

    #[test]
    fn commands_round_trip(nsid in any::<u32>(), act in 0u8..8, iekey in any::<bool>(), t in any::<u8>(), k1 in any::<u64>(), k2 in any::<u64>(), cp in 0u8..4) {
        let r = ResvRegister { nsid, rrega: act, iekey, cptpl: cp, crkey: k1, nrkey: k2 };
        prop_assert_eq!(ResvRegister::decode(&r.to_sqe(), &r.data()).unwrap(), r);
        let a = ResvAcquire { nsid, racqa: act, iekey, rtype: ResvType(t), crkey: k1, prkey: k2 };
        prop_assert_eq!(ResvAcquire::decode(&a.to_sqe(), &a.data()).unwrap(), a);
        let l = ResvRelease { nsid, rrela: act, iekey, rtype: ResvType(t), crkey: k1 };
        prop_assert_eq!(ResvRelease::decode(&l.to_sqe(), &l.data()).unwrap(), l);
    }

    #[test]
    fn status_decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..600), eds in any::<bool>()) {
        if let Ok(st) = ResvStatus::decode(&b, eds) {
            prop_assert!(st.ctrls.len() <= usize::from(st.regctl));
        }
    }
}
