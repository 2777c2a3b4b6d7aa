use super::*;
use crate::config::{DeviceSpec, NamespaceSpec};

const A: HostId = [0xA; 16];
const B: HostId = [0xB; 16];
const C: HostId = [0xC; 16];

fn ram() -> NsResv {
    NsResv::open(&NamespaceSpec {
        nsid: 1,
        enable: true,
        ana_grpid: 1,
        device: DeviceSpec::Ram {
            size: 1 << 20,
            block_size: 512,
        },
        nguid: None,
        uuid: None,
    })
}

fn file_spec(path: &std::path::Path) -> NamespaceSpec {
    NamespaceSpec {
        nsid: 1,
        enable: true,
        ana_grpid: 1,
        device: DeviceSpec::File {
            path: path.to_path_buf(),
        },
        nguid: None,
        uuid: None,
    }
}

fn reg(r: &NsResv, h: &HostId, key: u64) -> Outcome {
    r.register(
        h,
        &ResvRegister {
            nrkey: key,
            ..Default::default()
        },
    )
}

fn acq(r: &NsResv, h: &HostId, act: u8, t: ResvType, crkey: u64, prkey: u64) -> Outcome {
    r.acquire(
        h,
        &ResvAcquire {
            nsid: 1,
            racqa: act,
            iekey: false,
            rtype: t,
            crkey,
            prkey,
        },
    )
}

fn rel(r: &NsResv, h: &HostId, act: u8, t: ResvType, crkey: u64) -> Outcome {
    r.release(
        h,
        &ResvRelease {
            nsid: 1,
            rrela: act,
            iekey: false,
            rtype: t,
            crkey,
        },
    )
}

fn ok(o: Outcome) -> Vec<Notice> {
    assert_eq!(o.status, None, "{o:?}");
    o.notices
}

const READ: Opcode = Opcode::READ;
const WRITE: Opcode = Opcode::WRITE;

#[test]
fn access_table_every_type() {
    // (type, [holder read, holder write, registrant read, registrant write, other read, other write])
    let table: [(u8, [bool; 6]); 6] = [
        (1, [true, true, true, false, true, false]),
        (2, [true, true, false, false, false, false]),
        (3, [true, true, true, true, true, false]),
        (4, [true, true, true, true, false, false]),
        (5, [true, true, true, true, true, false]),
        (6, [true, true, true, true, false, false]),
    ];
    for (t, want) in table {
        let r = ram();
        ok(reg(&r, &A, 1));
        ok(reg(&r, &B, 2));
        ok(acq(&r, &A, racqa::ACQUIRE, ResvType(t), 1, 0));
        let got = [
            r.check(&A, READ).is_none(),
            r.check(&A, WRITE).is_none(),
            r.check(&B, READ).is_none(),
            r.check(&B, WRITE).is_none(),
            r.check(&C, READ).is_none(),
            r.check(&C, WRITE).is_none(),
        ];
        assert_eq!(got, want, "type {t}");
        // Every member of each group follows the same rule.
        for op in [0x00u8, 0x04, 0x08, 0x09] {
            assert_eq!(
                r.check(&C, Opcode(op)).is_none(),
                want[5],
                "type {t} op {op:#x}"
            );
        }
        for op in [0x05u8, 0x0C] {
            assert_eq!(
                r.check(&C, Opcode(op)).is_none(),
                want[4],
                "type {t} op {op:#x}"
            );
        }
        assert_eq!(
            r.check(&C, WRITE),
            (!want[5]).then_some(StatusCode::RESERVATION_CONFLICT)
        );
    }
}

#[test]
fn no_reservation_no_check() {
    let r = ram();
    ok(reg(&r, &A, 1));
    // Registered but nothing acquired: everyone may do everything.
    assert_eq!(r.check(&C, WRITE), None);
    assert_eq!(r.held.load(Ordering::Relaxed), 0);
}

#[test]
fn register_unregister_replace() {
    let r = ram();
    ok(reg(&r, &A, 1));
    // Same key again: success; another key: conflict.
    ok(reg(&r, &A, 1));
    assert_eq!(
        reg(&r, &A, 9).status,
        Some(StatusCode::RESERVATION_CONFLICT)
    );
    let replace = |crkey, nrkey, iekey| ResvRegister {
        rrega: rrega::REPLACE,
        crkey,
        nrkey,
        iekey,
        ..Default::default()
    };
    assert_eq!(
        r.register(&A, &replace(5, 2, false)).status,
        Some(StatusCode::RESERVATION_CONFLICT)
    );
    ok(r.register(&A, &replace(1, 2, false)));
    ok(r.register(&A, &replace(77, 3, true)));
    assert_eq!(r.snapshot().regs, vec![Registrant { hostid: A, rkey: 3 }]);
    // Replace / unregister by a non-registrant: conflict.
    assert_eq!(
        r.register(&B, &replace(0, 1, true)).status,
        Some(StatusCode::RESERVATION_CONFLICT)
    );
    let unreg = |crkey| ResvRegister {
        rrega: rrega::UNREGISTER,
        crkey,
        ..Default::default()
    };
    assert_eq!(
        r.register(&A, &unreg(1)).status,
        Some(StatusCode::RESERVATION_CONFLICT)
    );
    let gen = r.snapshot().gen;
    ok(r.register(&A, &unreg(3)));
    assert!(r.snapshot().regs.is_empty());
    assert_eq!(r.snapshot().gen, gen + 1);
    // Reserved action / CPTPL, PTPL on RAM: Invalid Field.
    let bad = ResvRegister {
        rrega: 3,
        ..Default::default()
    };
    assert_eq!(r.register(&A, &bad).status, Some(StatusCode::INVALID_FIELD));
    let ptpl = ResvRegister {
        cptpl: cptpl::SET,
        ..Default::default()
    };
    assert_eq!(
        r.register(&A, &ptpl).status,
        Some(StatusCode::INVALID_FIELD)
    );
    assert_eq!(r.set_ptpl(true), Err(StatusCode::INVALID_FIELD));
}

#[test]
fn acquire_rules() {
    let r = ram();
    // Not registered: conflict. Wrong key: conflict. Bad type / IEKEY: invalid field.
    assert_eq!(
        acq(&r, &A, 0, ResvType(1), 1, 0).status,
        Some(StatusCode::RESERVATION_CONFLICT)
    );
    ok(reg(&r, &A, 1));
    ok(reg(&r, &B, 2));
    assert_eq!(
        acq(&r, &A, 0, ResvType(1), 7, 0).status,
        Some(StatusCode::RESERVATION_CONFLICT)
    );
    assert_eq!(
        acq(&r, &A, 0, ResvType(7), 1, 0).status,
        Some(StatusCode::INVALID_FIELD)
    );
    let mut iekey = ResvAcquire {
        rtype: ResvType(1),
        crkey: 1,
        ..Default::default()
    };
    iekey.iekey = true;
    assert_eq!(
        r.acquire(&A, &iekey).status,
        Some(StatusCode::INVALID_FIELD)
    );
    ok(acq(&r, &A, 0, ResvType(1), 1, 0));
    // Again with the same type: success; another type or another host: conflict.
    ok(acq(&r, &A, 0, ResvType(1), 1, 0));
    assert_eq!(
        acq(&r, &A, 0, ResvType(2), 1, 0).status,
        Some(StatusCode::RESERVATION_CONFLICT)
    );
    assert_eq!(
        acq(&r, &B, 0, ResvType(1), 2, 0).status,
        Some(StatusCode::RESERVATION_CONFLICT)
    );
    let rep = r.report();
    assert_eq!((rep.rtype, rep.regctl), (ResvType(1), 2));
    assert!(rep.find(&A).unwrap().holds() && !rep.find(&B).unwrap().holds());
}

#[test]
fn preempt_takes_over_and_notifies() {
    let r = ram();
    ok(reg(&r, &A, 1));
    ok(reg(&r, &B, 2));
    ok(reg(&r, &C, 3));
    ok(acq(&r, &B, 0, ResvType::WRITE_EXCLUSIVE, 2, 0));
    let gen = r.snapshot().gen;
    // A preempts (and aborts) B: B unregistered and told, A holds.
    let n = ok(acq(
        &r,
        &A,
        racqa::PREEMPT_AND_ABORT,
        ResvType::WRITE_EXCLUSIVE,
        1,
        2,
    ));
    assert_eq!(n, vec![(B, Note::REGISTRATION_PREEMPTED)]);
    let s = r.snapshot();
    assert_eq!((s.holder, s.rtype, s.gen), (Some(A), 1, gen + 1));
    assert!(!s.regs.iter().any(|x| x.hostid == B));
    assert!(r.check(&B, WRITE).is_some() && r.check(&A, WRITE).is_none());
    // Preempting a key nobody has: conflict. PRKEY 0 against a non-AR holder: invalid field.
    assert_eq!(
        acq(&r, &C, 1, ResvType(1), 3, 42).status,
        Some(StatusCode::RESERVATION_CONFLICT)
    );
    assert_eq!(
        acq(&r, &C, 1, ResvType(1), 3, 0).status,
        Some(StatusCode::INVALID_FIELD)
    );
    // A non-holder's key: that registrant is removed, the reservation stays.
    ok(reg(&r, &B, 2));
    let n = ok(acq(&r, &C, 1, ResvType(1), 3, 2));
    assert_eq!(n, vec![(B, Note::REGISTRATION_PREEMPTED)]);
    assert_eq!(r.snapshot().holder, Some(A));
    // The holder preempting another registrant's key removes it and keeps its reservation.
    ok(reg(&r, &B, 2));
    let n = ok(acq(&r, &A, 1, ResvType(1), 1, 2));
    assert_eq!(n, vec![(B, Note::REGISTRATION_PREEMPTED)]);
    let s = r.snapshot();
    assert_eq!((s.holder, s.rtype, s.regs.len()), (Some(A), 1, 2));
    // The holder changes its own type: released notices to the others.
    let n = ok(acq(&r, &A, 1, ResvType::EXCLUSIVE_ACCESS, 1, 1));
    assert_eq!(n, vec![(C, Note::RESERVATION_RELEASED)]);
    assert_eq!(r.snapshot().rtype, 2);
}

#[test]
fn all_registrants_types() {
    let r = ram();
    ok(reg(&r, &A, 1));
    ok(reg(&r, &B, 2));
    ok(acq(&r, &A, 0, ResvType::WRITE_EXCLUSIVE_ALL_REGS, 1, 0));
    // Every registrant holds it: B may acquire the same type, and reports show both holding.
    ok(acq(&r, &B, 0, ResvType::WRITE_EXCLUSIVE_ALL_REGS, 2, 0));
    assert!(r.report().ctrls.iter().all(|c| c.holds()));
    // The acquirer unregistering leaves it with B.
    let unreg = ResvRegister {
        rrega: rrega::UNREGISTER,
        crkey: 1,
        ..Default::default()
    };
    ok(r.register(&A, &unreg));
    assert_eq!(r.snapshot().rtype, 5);
    assert!(r.check(&A, WRITE).is_some() && r.check(&B, WRITE).is_none());
    // Preempt with PRKEY 0: C takes a new reservation alone, B is removed.
    ok(reg(&r, &C, 3));
    let n = ok(acq(&r, &C, 1, ResvType::EXCLUSIVE_ACCESS, 3, 0));
    assert_eq!(n, vec![(B, Note::REGISTRATION_PREEMPTED)]);
    let s = r.snapshot();
    assert_eq!((s.rtype, s.holder, s.regs.len()), (2, Some(C), 1));
    // The last registrant of an All Registrants reservation leaves: released.
    let r = ram();
    ok(reg(&r, &A, 1));
    ok(acq(&r, &A, 0, ResvType::EXCLUSIVE_ACCESS_ALL_REGS, 1, 0));
    ok(r.register(&A, &unreg));
    assert_eq!(r.snapshot().rtype, 0);
    assert_eq!(r.check(&C, READ), None);
}

#[test]
fn release_and_clear() {
    let r = ram();
    ok(reg(&r, &A, 1));
    ok(reg(&r, &B, 2));
    ok(acq(&r, &A, 0, ResvType::WRITE_EXCLUSIVE_REG_ONLY, 1, 0));
    // A non-holder's release: success, nothing changes.
    ok(rel(&r, &B, rrela::RELEASE, ResvType(3), 2));
    assert_eq!(r.snapshot().rtype, 3);
    // Wrong key: conflict; wrong type: invalid field.
    assert_eq!(
        rel(&r, &A, 0, ResvType(3), 9).status,
        Some(StatusCode::RESERVATION_CONFLICT)
    );
    assert_eq!(
        rel(&r, &A, 0, ResvType(1), 1).status,
        Some(StatusCode::INVALID_FIELD)
    );
    let gen = r.snapshot().gen;
    let n = ok(rel(&r, &A, rrela::RELEASE, ResvType(3), 1));
    assert_eq!(n, vec![(B, Note::RESERVATION_RELEASED)]);
    let s = r.snapshot();
    // Release does not change the generation; registrations stay.
    assert_eq!((s.rtype, s.holder, s.gen, s.regs.len()), (0, None, gen, 2));
    // Write Exclusive released: no notice.
    ok(acq(&r, &A, 0, ResvType::WRITE_EXCLUSIVE, 1, 0));
    assert!(ok(rel(&r, &A, 0, ResvType(1), 1)).is_empty());
    // Clear: everything goes, the others are told "reservation preempted".
    ok(acq(&r, &A, 0, ResvType::WRITE_EXCLUSIVE, 1, 0));
    let n = ok(rel(&r, &B, rrela::CLEAR, ResvType(0), 2));
    assert_eq!(n, vec![(A, Note::RESERVATION_PREEMPTED)]);
    let s = r.snapshot();
    assert!(s.regs.is_empty() && s.rtype == 0 && s.gen == gen + 1);
    assert_eq!(r.check(&C, WRITE), None);
}

#[test]
fn ptpl_survives_reopen_and_clear_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    std::fs::write(&path, vec![0u8; 1 << 16]).unwrap();
    let r = NsResv::open(&file_spec(&path));
    assert!(r.ptpl_capable());
    // Without PTPL nothing is written.
    ok(reg(&r, &A, 1));
    let state_file = dir.path().join("ns.img.nvmp-resv.json");
    assert!(!state_file.exists());
    ok(r.register(
        &B,
        &ResvRegister {
            nrkey: 2,
            cptpl: cptpl::SET,
            ..Default::default()
        },
    ));
    ok(acq(&r, &B, 0, ResvType::WRITE_EXCLUSIVE, 2, 0));
    assert!(state_file.exists());
    let before = r.snapshot();
    drop(r);
    let r = NsResv::open(&file_spec(&path));
    assert_eq!(r.snapshot(), before);
    assert!(r.report().ptpls);
    assert_eq!(r.check(&A, WRITE), Some(StatusCode::RESERVATION_CONFLICT));
    // PTPL cleared: the file goes, a reopen starts empty.
    r.set_ptpl(false).unwrap();
    assert!(!state_file.exists());
    drop(r);
    let r = NsResv::open(&file_spec(&path));
    assert_eq!(r.snapshot(), ResvState::default());
    // A corrupt file is ignored.
    std::fs::write(&state_file, b"{not json").unwrap();
    assert_eq!(
        NsResv::open(&file_spec(&path)).snapshot(),
        ResvState::default()
    );
    // An inconsistent one too (holder not registered).
    let bad = ResvState {
        rtype: 1,
        holder: Some(C),
        ptpl: true,
        ..Default::default()
    };
    std::fs::write(&state_file, serde_json::to_vec(&bad).unwrap()).unwrap();
    assert_eq!(
        NsResv::open(&file_spec(&path)).snapshot(),
        ResvState::default()
    );
}

#[test]
fn registrant_limit() {
    let r = ram();
    for i in 0..MAX_REGISTRANTS {
        let mut h = [0u8; 16];
        h[..8].copy_from_slice(&(i as u64).to_le_bytes());
        ok(reg(&r, &h, 1));
    }
    assert_eq!(
        reg(&r, &[0xFF; 16], 1).status,
        Some(StatusCode::INTERNAL_ERROR)
    );
}
