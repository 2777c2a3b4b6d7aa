//! Admin commands: Identify, Get Log Page, Set/Get Features, Asynchronous
//! Event Request, Keep Alive.

use std::time::Instant;

use bytes::Bytes;
use nvmp_wire::admin::aec;
use nvmp_wire::{Opcode, Sqe, StatusCode};

use super::queue::{Bound, Completion, Ctx, Exec};
use super::state::State;
use super::{identify, logs};

/// AERL (0's based): up to 4 outstanding Asynchronous Event Requests.
pub const AERL: u8 = 3;

/// Feature identifiers handled here.
const FID_NUMBER_OF_QUEUES: u8 = 0x07;
const FID_ASYNC_EVENT_CONFIG: u8 = 0x0B;
const FID_KEEP_ALIVE_TIMER: u8 = 0x0F;

/// The events a controller can report (OAES, and what AEC accepts).
pub fn supported_events(discovery: bool) -> u32 {
    if discovery {
        aec::DISCOVERY_LOG_CHANGE
    } else {
        aec::NS_ATTR_CHANGED | aec::ANA_CHANGE | nvmp_wire::admin::ccr::AEC_CCR_COMPLETED
    }
}

fn dnr(code: StatusCode) -> Exec {
    Exec::Done(Completion::err_dnr(code))
}

/// Execute an admin command on a bound admin queue.
pub fn execute(
    st: &mut State,
    ctx: &Ctx,
    b: &Bound,
    sqe: &Sqe,
    _data: &Bytes,
    now: Instant,
) -> Exec {
    let _ = now;
    match sqe.opcode {
        Opcode::IDENTIFY => identify::identify(st, ctx, b, sqe),
        Opcode::CROSS_CONTROLLER_RESET => super::ccr::execute(st, ctx, b, sqe),
        Opcode::GET_LOG_PAGE => logs::get_log_page(st, ctx, b, sqe),
        Opcode::SET_FEATURES => match super::resv::set_feature(st, b, sqe) {
            Some(e) => e,
            None => set_features(st, b, sqe),
        },
        Opcode::GET_FEATURES => match super::resv::get_feature(st, b, sqe) {
            Some(e) => e,
            None => get_features(st, b, sqe),
        },
        Opcode::ASYNC_EVENT_REQUEST => {
            let Some(c) = st.ctrl_mut(&b.subnqn, b.cntlid) else {
                return dnr(StatusCode::INTERNAL_ERROR);
            };
            // "the number of concurrently outstanding Asynchronous Event Request commands … AERL".
            if c.aer_cids.len() > AERL as usize {
                return dnr(StatusCode::AER_LIMIT_EXCEEDED);
            }
            c.aer_cids.push_back(sqe.cid);
            Exec::Deferred
        }
        Opcode::KEEP_ALIVE => Exec::Done(Completion::ok()),
        _ => dnr(StatusCode::INVALID_OPCODE),
    }
}

/// Forget the outstanding AER `cid` of the admin queue `b` (the host reused
/// its CID). "Command ID Conflict" is for "the command identifier is already
/// in use"; an AER the host dropped is not in use on its side, and
/// answering it now would complete the host's new command. `false` if `cid`
/// is no outstanding AER.
pub fn abandon_aer(st: &mut State, b: &Bound, cid: u16) -> bool {
    let Some(c) = st.ctrl_mut(&b.subnqn, b.cntlid) else {
        return false;
    };
    let Some(i) = c.aer_cids.iter().position(|x| *x == cid) else {
        return false;
    };
    c.aer_cids.remove(i);
    true
}

fn set_features(st: &mut State, b: &Bound, sqe: &Sqe) -> Exec {
    let fid = (sqe.cdw10 & 0xFF) as u8;
    let save = sqe.cdw10 & (1 << 31) != 0;
    if save {
        return dnr(StatusCode::FEATURE_NOT_SAVEABLE);
    }
    let max_q = st
        .subsystems
        .get(&*b.subnqn)
        .and_then(|s| s.ctrls.get(&b.cntlid))
        .and_then(|c| st.ports.get(&c.port))
        .map_or(1, |p| p.spec.max_io_queues);
    let Some(c) = st.ctrl_mut(&b.subnqn, b.cntlid) else {
        return dnr(StatusCode::INTERNAL_ERROR);
    };
    match fid {
        FID_NUMBER_OF_QUEUES if !b.discovery => {
            let nsqr = sqe.cdw11 & 0xFFFF;
            let ncqr = sqe.cdw11 >> 16;
            // "A value of 65,535 … is invalid".
            if nsqr == 0xFFFF || ncqr == 0xFFFF {
                return dnr(StatusCode::INVALID_FIELD);
            }
            let want = (nsqr.min(ncqr) + 1) as u16;
            let granted = want.min(max_q);
            c.nr_io_queues = granted;
            let g = (granted - 1) as u32;
            Exec::Done(Completion::dw0(g | (g << 16)))
        }
        FID_ASYNC_EVENT_CONFIG => {
            c.aec = sqe.cdw11 & supported_events(b.discovery);
            Exec::Done(Completion::ok())
        }
        FID_KEEP_ALIVE_TIMER => {
            c.kato_ms = sqe.cdw11;
            Exec::Done(Completion::ok())
        }
        _ => dnr(StatusCode::INVALID_FIELD),
    }
}

fn get_features(st: &mut State, b: &Bound, sqe: &Sqe) -> Exec {
    let fid = (sqe.cdw10 & 0xFF) as u8;
    let sel = ((sqe.cdw10 >> 8) & 0x7) as u8;
    let Some(c) = st.ctrl_mut(&b.subnqn, b.cntlid) else {
        return dnr(StatusCode::INTERNAL_ERROR);
    };
    if sel == 3 {
        // Supported capabilities: changeable, not saveable, not namespace specific.
        return match fid {
            FID_NUMBER_OF_QUEUES | FID_ASYNC_EVENT_CONFIG | FID_KEEP_ALIVE_TIMER => {
                Exec::Done(Completion::dw0(0b100))
            }
            _ => dnr(StatusCode::INVALID_FIELD),
        };
    }
    match fid {
        FID_NUMBER_OF_QUEUES if !b.discovery => {
            let g = (c.nr_io_queues.max(1) - 1) as u32;
            Exec::Done(Completion::dw0(g | (g << 16)))
        }
        FID_ASYNC_EVENT_CONFIG => Exec::Done(Completion::dw0(c.aec)),
        FID_KEEP_ALIVE_TIMER => Exec::Done(Completion::dw0(c.kato_ms)),
        _ => dnr(StatusCode::INVALID_FIELD),
    }
}
