//! NVM I/O commands: Read, Write (FUA), Flush, Write Zeroes, Dataset
//! Management. Every command checks the namespace's ANA state on the port
//! it arrived on first.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use nvmp_wire::log::AnaState;
use nvmp_wire::{Opcode, Sqe, Status, StatusCode};

use super::queue::{Bound, Completion, Ctx, Exec};
use super::state::{NsRt, PortCounters, State};
use crate::backend::IoOp;

/// Classification of a command for the per-port counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoKind {
    Admin,
    Read,
    Write,
    Flush,
    Other,
}

impl IoKind {
    pub fn of(sqe: &Sqe, bound: Option<&Bound>) -> Self {
        match bound {
            Some(b) if b.qid > 0 && !sqe.is_fabrics() => match sqe.opcode {
                Opcode::READ => IoKind::Read,
                Opcode::WRITE => IoKind::Write,
                Opcode::FLUSH => IoKind::Flush,
                _ => IoKind::Other,
            },
            _ => IoKind::Admin,
        }
    }
    /// Count a successful command that moved `len` bytes.
    pub fn count(self, c: &PortCounters, len: u32) {
        match self {
            IoKind::Admin => {}
            IoKind::Read => {
                c.reads.fetch_add(1, Ordering::Relaxed);
                c.read_bytes.fetch_add(len as u64, Ordering::Relaxed);
            }
            IoKind::Write => {
                c.writes.fetch_add(1, Ordering::Relaxed);
                c.write_bytes.fetch_add(len as u64, Ordering::Relaxed);
            }
            IoKind::Flush => {
                c.flushes.fetch_add(1, Ordering::Relaxed);
            }
            IoKind::Other => {
                c.other_io.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The status an I/O gets in an ANA state ("optimized and non-optimized serve I/O").
pub fn ana_status(state: AnaState) -> Option<Status> {
    match state {
        AnaState::OPTIMIZED | AnaState::NON_OPTIMIZED => None,
        AnaState::PERSISTENT_LOSS => Some(Status::new(StatusCode::ANA_PERSISTENT_LOSS)),
        AnaState::CHANGE => Some(Status::new(StatusCode::ANA_TRANSITION)),
        _ => Some(Status::new(StatusCode::ANA_INACCESSIBLE)),
    }
}

fn done(code: StatusCode) -> Exec {
    Exec::Done(Completion::err_dnr(code))
}

/// Byte range of an LBA range, checked against the namespace.
fn lba_range(ns: &NsRt, slba: u64, nlb: u64) -> Result<(u64, u64), Exec> {
    match slba.checked_add(nlb) {
        Some(end) if end <= ns.blocks => {
            Ok((slba * ns.block_size as u64, nlb * ns.block_size as u64))
        }
        _ => Err(done(StatusCode::LBA_OUT_OF_RANGE)),
    }
}

/// Execute an I/O command (the lock is held only to look things up).
pub fn execute(st: &State, ctx: &Ctx, b: &Bound, sqe: &Sqe, data: Bytes) -> Exec {
    let Some(sub) = st.subsystems.get(&b.subnqn) else {
        return done(StatusCode::INTERNAL_ERROR);
    };
    let ns = match sub.namespaces.get(&sqe.nsid) {
        Some(ns) if ns.spec.enable => ns.clone(),
        _ => return done(StatusCode::INVALID_NAMESPACE),
    };
    if let Some(port) = st.ports.get(&ctx.port).filter(|_| sub.spec.ext.ana) {
        if let Some(s) = ana_status(port.ana_state(ns.spec.ana_grpid).state) {
            return Exec::Done(Completion::status(s));
        }
    }
    let slba = sqe.cdw10 as u64 | ((sqe.cdw11 as u64) << 32);
    let nlb = (sqe.cdw12 & 0xFFFF) as u64 + 1;
    let backend = ns.backend.clone();
    match sqe.opcode {
        Opcode::READ | Opcode::WRITE => {
            let (offset, len) = match lba_range(&ns, slba, nlb) {
                Ok(r) => r,
                Err(e) => return e,
            };
            if sqe.dptr.length as u64 != len {
                return done(StatusCode::SGL_DATA_LENGTH_INVALID);
            }
            if sqe.opcode == Opcode::READ {
                Exec::Io {
                    backend,
                    op: IoOp::Read {
                        offset,
                        len: len as u32,
                    },
                }
            } else {
                if data.len() as u64 != len {
                    return done(StatusCode::SGL_DATA_LENGTH_INVALID);
                }
                Exec::Io {
                    backend,
                    op: IoOp::Write {
                        offset,
                        data,
                        fua: sqe.cdw12 & (1 << 30) != 0,
                    },
                }
            }
        }
        Opcode::FLUSH => Exec::Io {
            backend,
            op: IoOp::Flush,
        },
        Opcode::WRITE_ZEROES => match lba_range(&ns, slba, nlb) {
            Ok((offset, len)) => Exec::Io {
                backend,
                op: IoOp::Zero { offset, len },
            },
            Err(e) => e,
        },
        Opcode::DATASET_MANAGEMENT => {
            let nr = (sqe.cdw10 & 0xFF) as usize + 1;
            let deallocate = sqe.cdw11 & (1 << 2) != 0;
            if data.len() < nr * 16 {
                return done(StatusCode::SGL_DATA_LENGTH_INVALID);
            }
            if !deallocate {
                return Exec::Done(Completion::ok());
            }
            let mut ranges = Vec::with_capacity(nr);
            for r in data.chunks_exact(16).take(nr) {
                let nlb = u32::from_le_bytes([r[4], r[5], r[6], r[7]]) as u64;
                let slba =
                    u64::from_le_bytes([r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]]);
                if nlb == 0 {
                    continue;
                }
                match lba_range(&ns, slba, nlb) {
                    Ok(x) => ranges.push(x),
                    Err(e) => return e,
                }
            }
            Exec::Io {
                backend,
                op: IoOp::Deallocate { ranges },
            }
        }
        _ => done(StatusCode::INVALID_OPCODE),
    }
}
