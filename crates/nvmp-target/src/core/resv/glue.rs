//! Reservations wired into the queues and the admin commands: the four I/O
//! commands, notifications (a Reservation Notification log entry and an
//! Asynchronous Event on every controller of the host told), the log page
//! (80h) and the Reservation Notification Mask / Reservation Persistence /
//! Host Identifier features.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use nvmp_wire::admin::{AsyncEvent, AsyncEventType, LogPageId};
use nvmp_wire::io::resv::{
    mask, ResvAcquire, ResvRegister, ResvRelease, ResvReportCmd, FID_HOST_IDENTIFIER,
    FID_RESV_NOTIFICATION_MASK, FID_RESV_PERSISTENCE,
};
use nvmp_wire::log::resv::{
    ResvNotification, ResvNotificationType as Note, AEN_RESERVATION_LOG_AVAILABLE,
    LID_RESERVATION_NOTIFICATION,
};
use nvmp_wire::{Opcode, Sqe, StatusCode};

use super::{HostId, Notice, Outcome};
use crate::core::queue::{Bound, Completion, Exec};
use crate::core::state::{NsRt, Shared, State, MAX_PENDING_EVENTS};

/// Notifications kept per controller until read; more are counted as lost
/// (the Log Page Count of the next one read shows the gap).
pub const MAX_LOG_ENTRIES: usize = 64;

/// A controller's reservation notification state.
#[derive(Debug, Default)]
pub struct CtrlResv {
    /// Mask set for all namespaces (NSID FFFFFFFFh).
    mask_all: u32,
    /// Per-namespace masks (bounded by the subsystem's namespaces).
    masks: BTreeMap<u32, u32>,
    log: VecDeque<ResvNotification>,
    /// The last Log Page Count given out.
    count: u64,
}

impl CtrlResv {
    fn mask(&self, nsid: u32) -> u32 {
        self.masks.get(&nsid).copied().unwrap_or(self.mask_all)
    }
}

fn mask_bit(t: Note) -> u32 {
    match t {
        Note::REGISTRATION_PREEMPTED => mask::REGISTRATION_PREEMPTED,
        Note::RESERVATION_RELEASED => mask::RESERVATION_RELEASED,
        _ => mask::RESERVATION_PREEMPTED,
    }
}

fn err(code: StatusCode) -> Completion {
    Completion::err_dnr(code)
}

/// Run a reservation command (opcodes 0Dh, 0Eh, 11h, 15h) from `hostid`
/// on namespace `ns`; notifications are delivered under the registry lock.
pub fn execute(
    shared: &Shared,
    b: &Bound,
    hostid: &HostId,
    ns: &NsRt,
    sqe: &Sqe,
    data: &Bytes,
) -> Completion {
    let r = &ns.resv;
    let outcome = match sqe.opcode {
        Opcode::RESERVATION_REPORT => {
            let Ok(cmd) = ResvReportCmd::from_sqe(sqe) else {
                return err(StatusCode::INVALID_FIELD);
            };
            // The 24-byte format carries a 64-bit Host Identifier; NVMe over
            // Fabrics hosts have 128-bit ones: "If … the Extended Data
            // Structure bit is cleared to '0' … and the host … 128-bit Host
            // Identifier … Host Identifier Inconsistent Format" (as Linux's and SPDK's targets).
            if !cmd.eds {
                return err(StatusCode::HOST_ID_INCONSISTENT);
            }
            let mut v = r.report().encode(true);
            v.truncate(cmd.len.min(sqe.dptr.length as u64) as usize);
            return Completion::data(Bytes::from(v));
        }
        Opcode::RESERVATION_REGISTER => match ResvRegister::decode(sqe, data) {
            Ok(c) => r.register(hostid, &c),
            Err(_) => return err(StatusCode::SGL_DATA_LENGTH_INVALID),
        },
        Opcode::RESERVATION_ACQUIRE => match ResvAcquire::decode(sqe, data) {
            Ok(c) => r.acquire(hostid, &c),
            Err(_) => return err(StatusCode::SGL_DATA_LENGTH_INVALID),
        },
        Opcode::RESERVATION_RELEASE => match ResvRelease::decode(sqe, data) {
            Ok(c) => r.release(hostid, &c),
            Err(_) => return err(StatusCode::SGL_DATA_LENGTH_INVALID),
        },
        _ => return err(StatusCode::INVALID_OPCODE),
    };
    let Outcome { status, notices } = outcome;
    if let Some(code) = status {
        tracing::debug!(cntlid = b.cntlid, nsid = sqe.nsid, opcode = sqe.opcode.0, status = %code, "reservation command refused");
        return err(code);
    }
    tracing::info!(subnqn = %b.subnqn, cntlid = b.cntlid, nsid = sqe.nsid, opcode = sqe.opcode.0, "reservation changed");
    if !notices.is_empty() {
        deliver(&mut shared.lock(), &b.subnqn, sqe.nsid, &notices);
    }
    Completion::ok()
}

/// Post each notice on every controller of its host in the subsystem
/// (unless masked there): a log entry and a "Reservation Log Page
/// Available" event.
pub fn deliver(st: &mut State, subnqn: &str, nsid: u32, notices: &[Notice]) {
    let ev = AsyncEvent {
        event_type: AsyncEventType::IO_CMD_SET,
        info: AEN_RESERVATION_LOG_AVAILABLE,
        log_page: LogPageId(LID_RESERVATION_NOTIFICATION),
    }
    .to_dw0();
    let mut wake = Vec::new();
    let Some(sub) = st.subsystems.get_mut(subnqn) else {
        return;
    };
    for c in sub.ctrls.values_mut() {
        for (host, t) in notices {
            if &c.hostid != host || c.resv.mask(nsid) & mask_bit(*t) != 0 {
                continue;
            }
            c.resv.count = c.resv.count.wrapping_add(1).max(1);
            if c.resv.log.len() < MAX_LOG_ENTRIES {
                c.resv.log.push_back(ResvNotification {
                    count: c.resv.count,
                    log_type: *t,
                    available: 0,
                    nsid,
                });
            }
            if !c.events.contains(&ev) && c.events.len() < MAX_PENDING_EVENTS {
                c.events.push_back(ev);
            }
            wake.push(c.admin_conn);
        }
    }
    for id in wake {
        if let Some(ci) = st.conns.get(&id) {
            ci.signal.wake.notify_one();
        }
    }
}

/// Get Log Page 80h: the oldest notification (consumed), or an empty page.
pub fn ctrl_log_page(st: &mut State, b: &Bound) -> Option<Vec<u8>> {
    let c = st.ctrl_mut(&b.subnqn, b.cntlid)?;
    let page = match c.resv.log.pop_front() {
        Some(mut n) => {
            n.available = c.resv.log.len().min(255) as u8;
            n
        }
        None => ResvNotification::default(),
    };
    Some(page.encode().to_vec())
}

fn ns_of(st: &State, b: &Bound, nsid: u32) -> Result<std::sync::Arc<NsRt>, StatusCode> {
    st.subsystems
        .get(&*b.subnqn)
        .and_then(|s| s.namespaces.get(&nsid))
        .filter(|n| n.spec.enable)
        .cloned()
        .ok_or(StatusCode::INVALID_NAMESPACE)
}

fn all_ns(st: &State, b: &Bound) -> Vec<std::sync::Arc<NsRt>> {
    st.subsystems
        .get(&*b.subnqn)
        .map(|s| {
            s.namespaces
                .values()
                .filter(|n| n.spec.enable)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Set Features for the reservation features; `None` if `fid` is not one of them.
pub fn set_feature(st: &mut State, b: &Bound, sqe: &Sqe) -> Option<Exec> {
    let fid = (sqe.cdw10 & 0xFF) as u8;
    let done = |r: Result<u32, StatusCode>| {
        Some(Exec::Done(match r {
            Ok(dw0) => Completion::dw0(dw0),
            Err(c) => err(c),
        }))
    };
    if b.discovery {
        return None;
    }
    match fid {
        FID_RESV_NOTIFICATION_MASK => {
            let m = sqe.cdw11;
            if m & !mask::ALL != 0 {
                return done(Err(StatusCode::INVALID_FIELD));
            }
            let ns = if sqe.nsid == 0xFFFF_FFFF {
                None
            } else {
                match ns_of(st, b, sqe.nsid) {
                    Ok(_) => Some(sqe.nsid),
                    Err(e) => return done(Err(e)),
                }
            };
            let c = st.ctrl_mut(&b.subnqn, b.cntlid)?;
            match ns {
                Some(n) => {
                    c.resv.masks.insert(n, m);
                }
                None => {
                    c.resv.mask_all = m;
                    c.resv.masks.clear();
                }
            }
            done(Ok(m))
        }
        FID_RESV_PERSISTENCE => {
            let on = sqe.cdw11 & 1 != 0;
            let targets = if sqe.nsid == 0xFFFF_FFFF {
                all_ns(st, b)
            } else {
                match ns_of(st, b, sqe.nsid) {
                    Ok(n) => vec![n],
                    Err(e) => return done(Err(e)),
                }
            };
            for n in &targets {
                if let Err(e) = n.resv.set_ptpl(on) {
                    return done(Err(e));
                }
            }
            done(Ok(u32::from(on)))
        }
        // The Host Identifier comes with the Connect command on fabrics.
        FID_HOST_IDENTIFIER => done(Err(StatusCode::COMMAND_SEQUENCE_ERROR)),
        _ => None,
    }
}

/// Get Features for the reservation features; `None` if `fid` is not one of them.
pub fn get_feature(st: &mut State, b: &Bound, sqe: &Sqe) -> Option<Exec> {
    let fid = (sqe.cdw10 & 0xFF) as u8;
    let sel = ((sqe.cdw10 >> 8) & 0x7) as u8;
    if b.discovery
        || !matches!(
            fid,
            FID_RESV_NOTIFICATION_MASK | FID_RESV_PERSISTENCE | FID_HOST_IDENTIFIER
        )
    {
        return None;
    }
    if sel == 3 {
        // Capabilities: namespace specific (bit 1) and changeable (bit 2), except the Host Identifier.
        let caps = if fid == FID_HOST_IDENTIFIER { 0 } else { 0b110 };
        return Some(Exec::Done(Completion::dw0(caps)));
    }
    let res = match fid {
        FID_RESV_NOTIFICATION_MASK => {
            let c = st.ctrl_mut(&b.subnqn, b.cntlid)?;
            Ok(Completion::dw0(c.resv.mask(sqe.nsid)))
        }
        FID_RESV_PERSISTENCE => {
            ns_of(st, b, sqe.nsid).map(|n| Completion::dw0(u32::from(n.resv.ptpl())))
        }
        _ => {
            let c = st.ctrl_mut(&b.subnqn, b.cntlid)?;
            // EXHID (CDW11 bit 0): the 128-bit Host Identifier is the only one fabrics have.
            if sqe.cdw11 & 1 == 0 {
                Err(StatusCode::HOST_ID_INCONSISTENT)
            } else {
                Ok(Completion::data(Bytes::copy_from_slice(&c.hostid)))
            }
        }
    };
    Some(Exec::Done(res.unwrap_or_else(err)))
}
