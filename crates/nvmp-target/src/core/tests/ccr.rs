//! Cross-Controller Reset in the sans-IO core: instance identity in
//! Identify, validation, the fence (nothing of the impacted controller
//! reaches the backend after the command completes), deferred completion
//! through the log page and the notice, limits.

use super::*;
use crate::core::ccr::{Gate, GateGuard, CCR_LIMIT, DEFAULT_CQT_MS};
use nvmp_wire::admin::ccr::{
    CcrLog, CcrResult, CcrStatus, CrossControllerResetCmd, AEC_CCR_COMPLETED, NOTICE_CCR_COMPLETED,
};
use nvmp_wire::admin::{AsyncEvent, LogPageId};

fn id_ctrl(h: &mut H) -> IdentifyController {
    let (c, d) = h.cmd(identify(1, 0), None, 4096);
    assert!(c.status.is_success(), "{:?}", c.status);
    IdentifyController::decode(&d).unwrap()
}

fn ccr(h: &mut H, icid: u16, ciu: u8, cirn: u64) -> Cqe {
    let sqe = CrossControllerResetCmd { icid, ciu, cirn }.to_sqe();
    h.cmd(sqe, None, 0).0
}

fn ccr_log(h: &mut H, rmc: bool) -> CcrLog {
    let (c, d) = h.cmd(get_log(0x1E, rmc as u8, 0, 4096), None, 4096);
    assert!(c.status.is_success(), "{:?}", c.status);
    CcrLog::decode(&d).unwrap()
}

fn write(h: &mut H, slba: u64, byte: u8) -> Cqe {
    let data = Bytes::from(vec![byte; 512]);
    h.cmd(rw(Opcode::WRITE, 1, slba, 1), Some(data), 0).0
}

fn read(h: &mut H, slba: u64) -> Bytes {
    let (c, d) = h.cmd(rw(Opcode::READ, 1, slba, 1), None, 512);
    assert!(c.status.is_success(), "{:?}", c.status);
    d
}

/// A write sent without waiting for its completion (it may be parked).
fn send_write(h: &mut H, cid: u16, slba: u64, byte: u8) -> Vec<Pdu> {
    let mut sqe = rw(Opcode::WRITE, 1, slba, 1);
    sqe.cid = cid;
    sqe.dptr = Sgl::in_capsule(0, 512);
    h.feed(Pdu::CapsuleCmd {
        sqe,
        data: Bytes::from(vec![byte; 512]),
    })
}

/// Controller A (admin + I/O queue, port 1) and B (admin + I/O queue, port 2).
struct Two {
    sh: Arc<Shared>,
    now: Instant,
    a: H,
    a_io: H,
    a_id: IdentifyController,
    b: H,
    b_io: H,
}

fn two() -> Two {
    let sh = shared(true);
    let now = Instant::now();
    let (mut a, _, a_io) = H::admin_and_io(&sh, now, 5000);
    let a_id = id_ctrl(&mut a);
    let mut b = H::new(&sh, 2, now);
    let b_cntlid = b.admin(5000);
    let b_io = H::io(&sh, 2, b_cntlid, now);
    Two {
        sh,
        now,
        a,
        a_io,
        a_id,
        b,
        b_io,
    }
}

fn a_gates(t: &Two) -> Vec<Arc<Gate>> {
    let st = t.sh.lock();
    st.subsystems[SUB].ctrls[&t.a_id.cntlid].ccr.gates.clone()
}

#[test]
fn identify_reports_instance_identity() {
    let sh = shared(true);
    let now = Instant::now();
    let mut a = H::new(&sh, 1, now);
    a.admin(5000);
    let mut b = H::new(&sh, 2, now);
    b.admin(5000);
    let (ia, ib) = (id_ctrl(&mut a), id_ctrl(&mut b));
    assert_eq!((ia.ccrl, ia.cqt), (CCR_LIMIT, DEFAULT_CQT_MS));
    assert!(ia.supports_ccr());
    assert_ne!(ia.oaes & AEC_CCR_COMPLETED, 0);
    assert!(ia.ciu != 0 && ia.cirn != 0);
    assert_ne!((ia.ciu, ia.cirn), (ib.ciu, ib.cirn));
    assert_ne!(ia.cirn, ib.cirn);
    // Discovery controllers take no CCR.
    let mut d = H::with_ic(&sh, 1, now);
    let c = d.connect(nvmp_wire::DISCOVERY_NQN, HOST, 0, 0xFFFF, 0);
    assert!(c.status.is_success());
    let id = id_ctrl(&mut d);
    assert!(!id.supports_ccr());
    assert_eq!(
        ccr(&mut d, ia.cntlid, ia.ciu, ia.cirn).status.code,
        StatusCode::INVALID_OPCODE
    );
}

#[test]
fn reused_cntlid_gets_a_new_ciu() {
    // One CNTLID only: every new controller reuses it.
    let mut cfg = config(true);
    cfg.subsystems[0].cntlid_min = 7;
    cfg.subsystems[0].cntlid_max = 7;
    let sh = Shared::new(State::from_config(&cfg).unwrap());
    let now = Instant::now();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let mut a = H::new(&sh, 1, now);
        a.admin(5000);
        let id = id_ctrl(&mut a);
        assert_eq!(id.cntlid, 7);
        seen.push((id.ciu, id.cirn));
        sh.lock().teardown_ctrl(SUB, 7, "test");
    }
    assert_ne!(seen[0].0, seen[1].0);
    assert_ne!(seen[1].0, seen[2].0);
    assert_ne!(seen[0].1, seen[1].1);
}

#[test]
fn ccr_fences_the_impacted_controller() {
    let mut t = two();
    assert!(write(&mut t.a_io, 0, 0x11).status.is_success());
    let ana_before = ana_log(&t.b.cmd(get_log(0x0C, 0, 0, 4096), None, 4096).1);
    let (ciu, cirn) = (t.a_id.ciu, t.a_id.cirn);
    let c = ccr(&mut t.b, t.a_id.cntlid, ciu, cirn);
    assert!(c.status.is_success(), "{:?}", c.status);
    assert_eq!(
        CcrResult::from_dw0(c.dw0),
        CcrResult {
            irs: true,
            validated: true,
            clri: true
        }
    );
    // A is gone, its gates are fenced and empty.
    assert!(!t.sh.lock().subsystems[SUB]
        .ctrls
        .contains_key(&t.a_id.cntlid));
    for q in [&mut t.a, &mut t.a_io] {
        let outs = q.q.poll(t.now);
        q.run(outs);
        assert!(q.closed && q.q.is_closed(), "A's queues are torn down");
    }
    // A write arriving on A's queue after the reset never lands.
    let r = send_write(&mut t.a_io, 900, 0, 0x22);
    assert!(r
        .iter()
        .all(|p| !matches!(p, Pdu::CapsuleResp(c) if c.status.is_success())));
    assert_eq!(read(&mut t.b_io, 0), Bytes::from(vec![0x11; 512]));
    // B works on, ANA untouched; a second CCR for A: no such instance any more.
    assert!(write(&mut t.b_io, 0, 0x33).status.is_success());
    assert_eq!(read(&mut t.b_io, 0), Bytes::from(vec![0x33; 512]));
    let ana_after = ana_log(&t.b.cmd(get_log(0x0C, 0, 0, 4096), None, 4096).1);
    assert_eq!(ana_before, ana_after);
    let c = ccr(&mut t.b, t.a_id.cntlid, ciu, cirn);
    assert_eq!(
        CcrResult::from_dw0(c.dw0),
        CcrResult {
            irs: true,
            ..Default::default()
        }
    );
    assert!(ccr_log(&mut t.b, false).entries.is_empty());
}

#[test]
fn wrong_instance_resets_nothing() {
    let mut t = two();
    let (icid, ciu, cirn) = (t.a_id.cntlid, t.a_id.ciu, t.a_id.cirn);
    let not_validated = CcrResult {
        irs: true,
        ..Default::default()
    };
    for (ciu, cirn) in [(ciu, cirn ^ 1), (ciu.wrapping_add(1), cirn), (ciu, 0)] {
        let c = ccr(&mut t.b, icid, ciu, cirn);
        assert!(c.status.is_success());
        assert_eq!(CcrResult::from_dw0(c.dw0), not_validated);
    }
    // A CNTLID not in use.
    assert_eq!(
        CcrResult::from_dw0(ccr(&mut t.b, 999, ciu, cirn).dw0),
        not_validated
    );
    // A controller resetting itself: "Invalid Field in Command".
    let b_id = id_ctrl(&mut t.b);
    let c = ccr(&mut t.b, b_id.cntlid, b_id.ciu, b_id.cirn);
    assert_eq!(c.status.code, StatusCode::INVALID_FIELD);
    assert!(c.status.dnr);
    // Another host cannot reset A, even with the right identity.
    let mut o = H::with_ic(&t.sh, 1, t.now);
    assert!(o.connect(SUB, OTHER, 0, 0xFFFF, 5000).status.is_success());
    assert_eq!(
        CcrResult::from_dw0(ccr(&mut o, icid, ciu, cirn).dw0),
        not_validated
    );
    // Another subsystem's controller (here the discovery subsystem's, whose
    // CNTLIDs overlap): the same subsystem only.
    let mut d = H::with_ic(&t.sh, 1, t.now);
    let dc = d.connect(nvmp_wire::DISCOVERY_NQN, HOST, 0, 0xFFFF, 0);
    assert!(dc.status.is_success());
    let did = id_ctrl(&mut d);
    assert!(did.ciu != 0 && did.cirn != 0);
    let c = ccr(&mut t.b, did.cntlid, did.ciu, did.cirn);
    assert_eq!(CcrResult::from_dw0(c.dw0), not_validated);
    assert!(t.sh.lock().subsystems[nvmp_wire::DISCOVERY_NQN]
        .ctrls
        .contains_key(&did.cntlid));
    // A lives on.
    assert!(t.sh.lock().subsystems[SUB].ctrls.contains_key(&icid));
    assert!(write(&mut t.a_io, 3, 0x44).status.is_success());
    assert_eq!(read(&mut t.b_io, 3), Bytes::from(vec![0x44; 512]));
}

#[test]
fn held_write_lands_without_ccr_and_never_after_one() {
    let hold = Duration::from_millis(500);
    for with_ccr in [false, true] {
        let mut t = two();
        t.sh.lock().ports[&1].faults.hold_ms.store(
            hold.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        // Parked: no completion yet.
        assert!(send_write(&mut t.a_io, 77, 5, 0x55).is_empty());
        t.sh.lock().ports[&1]
            .faults
            .hold_ms
            .store(0, std::sync::atomic::Ordering::Relaxed);
        assert!(t
            .a_io
            .q
            .next_deadline(t.now)
            .is_some_and(|d| d <= t.now + hold));
        if with_ccr {
            let c = ccr(&mut t.b, t.a_id.cntlid, t.a_id.ciu, t.a_id.cirn);
            assert!(CcrResult::from_dw0(c.dw0).irs);
        }
        let later = t.now + hold;
        let outs = t.a_io.q.on_timer(later);
        let r = t.a_io.run(outs);
        let landed = read(&mut t.b_io, 5) == vec![0x55; 512];
        assert_eq!(landed, !with_ccr, "with_ccr={with_ccr} {r:?}");
        assert_eq!(
            r.iter()
                .any(|p| matches!(p, Pdu::CapsuleResp(c) if c.cid == 77)),
            !with_ccr
        );
    }
}

#[test]
fn fenced_gate_refuses_a_command_that_passed_the_view() {
    // The race the gate closes: the I/O queue resolved its view before the
    // teardown and runs a command after the fence.
    let mut t = two();
    for g in a_gates(&t) {
        g.fence();
    }
    let (c, _) = t.a_io.cmd(
        rw(Opcode::WRITE, 1, 9, 1),
        Some(Bytes::from(vec![0x66; 512])),
        0,
    );
    assert_eq!(c.status.code, StatusCode::ABORTED_SQ_DELETED);
    assert!(t.a_io.closed);
    assert_eq!(read(&mut t.b_io, 9), Bytes::from(vec![0; 512]));
}

#[test]
fn in_flight_operation_defers_the_reset_to_the_log_and_notice() {
    let mut t = two();
    let io_gate = a_gates(&t).pop().unwrap();
    // A file operation of A in a backend.
    let inside = GateGuard::acquire(&io_gate).unwrap();
    // B listens for the notice.
    let s = set_features(0x0B, AEC_CCR_COMPLETED);
    assert!(t.b.cmd(s, None, 0).0.status.is_success());
    assert!(t.b.feed(aer(600)).is_empty());
    let (icid, ciu, cirn) = (t.a_id.cntlid, t.a_id.ciu, t.a_id.cirn);
    let c = ccr(&mut t.b, icid, ciu, cirn);
    assert!(c.status.is_success());
    assert_eq!(CcrResult::from_dw0(c.dw0), CcrResult::default());
    assert!(inside.fenced());
    let log = ccr_log(&mut t.b, true);
    let b_cntlid = id_ctrl(&mut t.b).cntlid;
    assert_eq!(log.entries.len(), 1);
    let e = log.entries[0];
    assert_eq!(
        (e.icid, e.ciu, e.acid, e.status),
        (icid, ciu, b_cntlid, CcrStatus::IN_PROGRESS)
    );
    // Asked again while it runs: "Cross-Controller Reset in Progress".
    assert_eq!(
        ccr(&mut t.b, icid, ciu, cirn).status.code,
        StatusCode::CCR_IN_PROGRESS
    );
    // Nothing completes while the operation is inside.
    let outs = t.b.q.poll(t.now);
    assert!(t.b.run(outs).is_empty());
    drop(inside);
    let outs = t.b.q.poll(t.now);
    match &t.b.run(outs)[..] {
        [Pdu::CapsuleResp(c)] => {
            assert_eq!(c.cid, 600);
            assert_eq!(
                AsyncEvent::from_dw0(c.dw0),
                AsyncEvent::notice(NOTICE_CCR_COMPLETED, LogPageId::CROSS_CONTROLLER_RESET)
            );
        }
        o => panic!("{o:?}"),
    }
    let log = ccr_log(&mut t.b, true);
    assert_eq!(log.entries.len(), 1);
    let e = log.entries[0];
    assert_eq!(
        (e.status, e.validated, e.clri),
        (CcrStatus::SUCCESS, true, true)
    );
    // Read with RMC: the completed entry is gone.
    assert!(ccr_log(&mut t.b, false).entries.is_empty());
}

#[test]
fn limit_and_teardown_of_a_busy_controller() {
    let sh = shared(true);
    let now = Instant::now();
    let mut b = H::new(&sh, 2, now);
    b.admin(5000);
    let mut held = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..=CCR_LIMIT {
        let (mut a, cntlid, io) = H::admin_and_io(&sh, now, 5000);
        let id = id_ctrl(&mut a);
        let g = sh.lock().subsystems[SUB].ctrls[&cntlid]
            .ccr
            .gates
            .last()
            .cloned()
            .unwrap();
        held.push((GateGuard::acquire(&g).unwrap(), a, io));
        ids.push(id);
    }
    for id in &ids[..CCR_LIMIT as usize] {
        let c = ccr(&mut b, id.cntlid, id.ciu, id.cirn);
        assert!(c.status.is_success() && !CcrResult::from_dw0(c.dw0).irs);
    }
    let last = &ids[CCR_LIMIT as usize];
    let c = ccr(&mut b, last.cntlid, last.ciu, last.cirn);
    assert_eq!(c.status.code, StatusCode::CCR_LIMIT_EXCEEDED);
    // The refused one was not reset. Its admin queue goes away (a teardown
    // that is not a CCR) while its operation is still inside: a CCR then
    // waits for that operation too.
    assert!(sh.lock().subsystems[SUB].ctrls.contains_key(&last.cntlid));
    held.drain(..CCR_LIMIT as usize);
    let outs = b.q.poll(now);
    b.run(outs);
    assert!(ccr_log(&mut b, true)
        .entries
        .iter()
        .all(|e| e.status == CcrStatus::SUCCESS));
    sh.lock().teardown_ctrl(SUB, last.cntlid, "test");
    let c = ccr(&mut b, last.cntlid, last.ciu, last.cirn);
    assert!(c.status.is_success());
    assert_eq!(
        CcrResult::from_dw0(c.dw0),
        CcrResult::default(),
        "a torn-down controller with an operation inside is still quiescing"
    );
    held.clear();
    let outs = b.q.poll(now);
    b.run(outs);
    let log = ccr_log(&mut b, true);
    assert_eq!(log.entries.len(), 1);
    assert_eq!(
        (log.entries[0].status, log.entries[0].clri),
        (CcrStatus::SUCCESS, false)
    );
}

#[test]
fn gate_counts_and_wakes() {
    let g = Arc::new(Gate::default());
    assert!(g.enter() && g.enter());
    assert_eq!(g.inside(), 2);
    g.fence();
    assert!(!g.enter(), "a fenced gate admits nothing");
    assert_eq!(g.inside(), 2);
    assert!(!g.drained());
    g.leave();
    let guard = GateGuard::entered(g.clone());
    assert!(guard.fenced() && !g.drained());
    drop(guard);
    assert!(g.drained());
}
