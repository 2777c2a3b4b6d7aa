//! Fabrics Connect (admin and I/O queues, dynamic controller model, host
//! access control) and Property Get/Set (CC.EN → CSTS.RDY, CC.SHN → CSTS.SHST).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use nvmp_wire::fabrics::{ConnectCmd, ConnectData};
use nvmp_wire::{Sqe, StatusCode};

use super::queue::{Bound, Completion, Ctx};
use super::state::{Ctrl, CtrlState, State, TrafficStamp};

/// Offsets used in "Invalid Parameter" responses (IPO): in the Connect data.
const IPO_CNTLID: u32 = 16;
const IPO_SUBNQN: u32 = 256;
const IPO_HOSTNQN: u32 = 512;
/// In the SQE.
const IPO_QID: u32 = 42;
const IPO_SQSIZE: u32 = 44;

/// Admin queue size nvmet accepts (NVME_AQ_DEPTH).
pub const MAX_ADMIN_QUEUE_SIZE: u16 = 32;

/// "Connect Invalid Parameters": DW0 holds IPO (bits 15:0) and IATTR (bits 23:16; 1 = in the data).
fn invalid_param(in_data: bool, ipo: u32) -> Completion {
    Completion {
        dw0: ipo | ((in_data as u32) << 16),
        ..Completion::err_dnr(StatusCode::CONNECT_INVALID_PARAMETERS)
    }
}

/// Handle a Connect; on success the queue is bound and DW0 carries the CNTLID.
pub fn connect(
    st: &mut State,
    ctx: &Ctx,
    sqe: &Sqe,
    data: &Bytes,
    now: Instant,
) -> Result<(Bound, Completion), Completion> {
    // The Connect data is exactly 1024 bytes; another length is refused as
    // Linux does: "SGL Data Length Invalid".
    if sqe.dptr.length != 1024 || data.len() != 1024 {
        tracing::warn!(port = ctx.port, peer = ?ctx.peer, len = sqe.dptr.length, "Connect with data length other than 1024");
        return Err(Completion::err_dnr(StatusCode::SGL_DATA_LENGTH_INVALID));
    }
    let cmd = ConnectCmd::from_sqe(sqe).map_err(|_| invalid_param(false, 40))?;
    // "RECFMT … 0h" is the only record format.
    if cmd.recfmt != 0 {
        return Err(Completion::err_dnr(StatusCode::CONNECT_INCOMPATIBLE_FORMAT));
    }
    let cd = ConnectData::decode(data).map_err(|e| {
        tracing::warn!(port = ctx.port, peer = ?ctx.peer, error = %e, "Connect with undecodable data");
        let ipo = match e.field {
            f if f.contains("HOSTNQN") || f.contains("hostnqn") => IPO_HOSTNQN,
            f if f.contains("SUBNQN") || f.contains("subnqn") => IPO_SUBNQN,
            _ => 0,
        };
        invalid_param(true, ipo)
    })?;
    let port = st
        .ports
        .get(&ctx.port)
        .ok_or_else(|| invalid_param(true, IPO_SUBNQN))?;
    let discovery = cd.subnqn == nvmp_wire::nqn::DISCOVERY_NQN;
    // The discovery subsystem is served on every port; others only where linked.
    if !discovery && !port.spec.subsystems.contains(&cd.subnqn) {
        tracing::warn!(port = ctx.port, peer = ?ctx.peer, subnqn = %cd.subnqn, hostnqn = %cd.hostnqn, "Connect to a subsystem not on this port");
        return Err(invalid_param(true, IPO_SUBNQN));
    }
    let max_qs = port.spec.max_queue_size;
    let max_io_queues = port.spec.max_io_queues;
    let Some(sub) = st.subsystems.get_mut(&cd.subnqn) else {
        return Err(invalid_param(true, IPO_SUBNQN));
    };
    // Host access as Linux nvmet decides it (nvmet_host_allowed): with
    // allow_any_host every host name is a host, the empty one included
    // (SPDK sends an all-NUL HOSTNQN unless given one; nvmp-wire takes the
    // field as Linux does); otherwise the name must equal an allowed host's
    // and the empty name never does. A refused host gets what Linux answers:
    // "Connect Invalid Host" with DNR, IATTR 1 and IPO at HOSTNQN (byte 512).
    if !sub.host_allowed(&cd.hostnqn) {
        // "Connect Invalid Host: The host is not allowed to establish an association …"
        tracing::warn!(port = ctx.port, peer = ?ctx.peer, subnqn = %cd.subnqn, hostnqn = %cd.hostnqn, "Connect refused: host not allowed");
        return Err(Completion {
            dw0: IPO_HOSTNQN | (1 << 16),
            ..Completion::err_dnr(StatusCode::CONNECT_INVALID_HOST)
        });
    }
    // A TLS connection's key was derived for the host its PSK identity
    // names: a Connect naming another host is refused as a host that is
    // not allowed.
    if ctx.tls_hostnqn.as_ref().is_some_and(|h| *h != cd.hostnqn) {
        tracing::warn!(port = ctx.port, peer = ?ctx.peer, subnqn = %cd.subnqn, hostnqn = %cd.hostnqn, "Connect refused: HOSTNQN is not the host of the TLS PSK identity");
        return Err(Completion {
            dw0: IPO_HOSTNQN | (1 << 16),
            ..Completion::err_dnr(StatusCode::CONNECT_INVALID_HOST)
        });
    }
    // SQSIZE is 0's based; "a value of 0h is invalid".
    let qsize = cmd.sqsize as u32 + 1;
    if cmd.qid == 0 {
        if cmd.sqsize == 0 || qsize > MAX_ADMIN_QUEUE_SIZE.max(max_qs) as u32 {
            return Err(invalid_param(false, IPO_SQSIZE));
        }
        if cd.cntlid != 0xFFFF {
            // Dynamic controller model: "the host shall set CNTLID to FFFFh".
            return Err(invalid_param(true, IPO_CNTLID));
        }
        let Some(cntlid) = sub.alloc_cntlid() else {
            return Err(Completion::err(StatusCode::CONNECT_CONTROLLER_BUSY));
        };
        let ctrl = Ctrl {
            cntlid,
            port: ctx.port,
            hostnqn: cd.hostnqn.clone(),
            hostid: cd.hostid,
            kato_ms: cmd.kato_ms,
            cc: 0,
            csts: 0,
            aec: 0,
            nr_io_queues: max_io_queues,
            admin_sqsize: cmd.sqsize,
            admin_conn: ctx.conn,
            io_queues: BTreeMap::new(),
            traffic: Arc::new(TrafficStamp::new(now)),
            aer_cids: VecDeque::new(),
            events: VecDeque::new(),
            changed_ns: BTreeSet::new(),
            state: CtrlState::New,
            resv: Default::default(),
            ccr: super::ccr::new_instance(sub),
        };
        sub.ctrls.insert(cntlid, ctrl);
        tracing::info!(port = ctx.port, peer = ?ctx.peer, subnqn = %cd.subnqn, hostnqn = %cd.hostnqn, cntlid, kato_ms = cmd.kato_ms, "controller created");
        if let Some(ci) = st.conns.get_mut(&ctx.conn) {
            ci.bound = Some((cd.subnqn.clone(), cntlid, 0));
        }
        let bound = Bound {
            subnqn: cd.subnqn.into(),
            cntlid,
            qid: 0,
            discovery,
            sqsize: cmd.sqsize,
        };
        return Ok((bound, Completion::dw0(cntlid as u32)));
    }
    // I/O queue: "CNTLID … of the controller … the admin queue … was created for".
    if discovery {
        return Err(invalid_param(false, IPO_QID));
    }
    if cmd.sqsize == 0 || qsize > max_qs as u32 {
        return Err(invalid_param(false, IPO_SQSIZE));
    }
    let Some(ctrl) = sub.ctrls.get_mut(&cd.cntlid) else {
        tracing::warn!(
            port = ctx.port,
            peer = ?ctx.peer,
            cntlid = cd.cntlid,
            "I/O queue Connect names an unknown controller"
        );
        return Err(invalid_param(true, IPO_CNTLID));
    };
    if ctrl.hostnqn != cd.hostnqn || ctrl.hostid != cd.hostid {
        tracing::warn!(port = ctx.port, peer = ?ctx.peer, cntlid = cd.cntlid, hostnqn = %cd.hostnqn, "I/O queue Connect from another host");
        return Err(invalid_param(true, IPO_HOSTNQN));
    }
    if ctrl.port != ctx.port {
        return Err(invalid_param(true, IPO_CNTLID));
    }
    if cmd.qid > ctrl.nr_io_queues || ctrl.io_queues.contains_key(&cmd.qid) {
        return Err(invalid_param(false, IPO_QID));
    }
    if ctrl.csts & 1 == 0 {
        // I/O queues need an enabled controller.
        return Err(Completion::err_dnr(StatusCode::COMMAND_SEQUENCE_ERROR));
    }
    ctrl.io_queues.insert(cmd.qid, ctx.conn);
    ctrl.traffic.touch(now);
    let cntlid = ctrl.cntlid;
    if let Some(ci) = st.conns.get_mut(&ctx.conn) {
        ci.bound = Some((cd.subnqn.clone(), cntlid, cmd.qid));
    }
    let bound = Bound {
        subnqn: cd.subnqn.into(),
        cntlid,
        qid: cmd.qid,
        discovery: false,
        sqsize: cmd.sqsize,
    };
    Ok((bound, Completion::dw0(cntlid as u32)))
}

/// Property offsets.
const CAP: u32 = 0x00;
const VS: u32 = 0x08;
const CC: u32 = 0x14;
const CSTS: u32 = 0x1C;

/// CAP: MQES (0's based), CQR, TO (500 ms units), CSS NVM (bit 37), MPSMIN=MPSMAX=0 (4 KiB).
pub fn cap_value(max_queue_size: u16) -> u64 {
    let mqes = (max_queue_size.max(2) - 1) as u64;
    mqes | (1 << 16) | (15u64 << 24) | (1u64 << 37)
}

/// Property Get / Set on the admin queue.
pub fn property(st: &mut State, b: &Bound, sqe: &Sqe) -> Completion {
    let set = sqe.fctype() == nvmp_wire::FabricsType::PROPERTY_SET;
    let size8 = sqe.cdw10 & 0x7 == 1;
    let offset = sqe.cdw11;
    let max_qs = st
        .subsystems
        .get(&*b.subnqn)
        .and_then(|s| s.ctrls.get(&b.cntlid))
        .and_then(|c| st.ports.get(&c.port))
        .map_or(128, |p| p.spec.max_queue_size);
    let version = st
        .subsystems
        .get(&*b.subnqn)
        .map_or(0x0001_0400, |s| s.spec.version);
    let Some(c) = st.ctrl_mut(&b.subnqn, b.cntlid) else {
        return Completion::err(StatusCode::INTERNAL_ERROR);
    };
    if !set {
        let v: u64 = match (offset, size8) {
            (CAP, true) => cap_value(max_qs),
            (VS, false) => version as u64,
            (CC, false) => c.cc as u64,
            (CSTS, false) => c.csts as u64,
            _ => return Completion::err_dnr(StatusCode::INVALID_FIELD),
        };
        return Completion {
            dw0: v as u32,
            dw1: (v >> 32) as u32,
            ..Completion::ok()
        };
    }
    if offset != CC || size8 {
        return Completion::err_dnr(StatusCode::INVALID_FIELD);
    }
    let new = sqe.cdw12;
    let old = c.cc;
    c.cc = new;
    let en = new & 1 != 0;
    let was_en = old & 1 != 0;
    let shn = (new >> 14) & 3;
    if en && !was_en {
        // IOSQES must be 6 (64 bytes) and IOCQES 4 (16 bytes) for an I/O controller.
        let iosqes = (new >> 16) & 0xF;
        let iocqes = (new >> 20) & 0xF;
        if !b.discovery && (iosqes != 6 || iocqes != 4) {
            c.csts |= 1 << 1; // CFS
        } else {
            c.csts |= 1; // RDY
            c.set_state(CtrlState::Live);
        }
    } else if !en && was_en {
        // Controller reset: RDY clears.
        c.csts &= !1;
        c.set_state(CtrlState::Resetting);
    }
    if shn != 0 {
        // "Shutdown processing complete" (SHST = 10b).
        c.csts = (c.csts & !(3 << 2)) | (2 << 2);
        c.set_state(CtrlState::Deleting);
    } else if (old >> 14) & 3 != 0 {
        c.csts &= !(3 << 2);
    }
    Completion::ok()
}
