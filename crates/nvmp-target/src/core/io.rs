//! NVM I/O commands: Read, Write (FUA), Flush, Write Zeroes, Dataset
//! Management, checked against the namespace and turned into backend
//! operations. The ANA state of the namespace's group on the port is
//! checked first, by the queue, from its resolved view ([`super::view`]).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use nvmp_wire::log::AnaState;
use nvmp_wire::{Opcode, Sqe, Status, StatusCode};

use super::queue::{Bound, Completion};
use super::state::{NsRt, PortCounters};
use crate::backend::IoOp;

/// Counts of one queue, added to the port's counters once per batch (so
/// queues on different cores do not contend on the counters per command).
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalCounters {
    pub reads: u64,
    pub writes: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub flushes: u64,
    pub other_io: u64,
    pub errors: u64,
}

impl LocalCounters {
    /// Add to the port's counters and reset.
    pub fn flush(&mut self, c: &PortCounters) {
        let add = |a: &AtomicU64, v: u64| {
            if v > 0 {
                a.fetch_add(v, Ordering::Relaxed);
            }
        };
        add(&c.reads, self.reads);
        add(&c.writes, self.writes);
        add(&c.read_bytes, self.read_bytes);
        add(&c.write_bytes, self.write_bytes);
        add(&c.flushes, self.flushes);
        add(&c.other_io, self.other_io);
        add(&c.errors, self.errors);
        *self = Self::default();
    }
}

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
    pub fn count(self, c: &mut LocalCounters, len: u32) {
        match self {
            IoKind::Admin => {}
            IoKind::Read => {
                c.reads += 1;
                c.read_bytes += len as u64;
            }
            IoKind::Write => {
                c.writes += 1;
                c.write_bytes += len as u64;
            }
            IoKind::Flush => c.flushes += 1,
            IoKind::Other => c.other_io += 1,
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

fn done(code: StatusCode) -> Completion {
    Completion::err_dnr(code)
}

/// Byte range of an LBA range, checked against the namespace.
fn lba_range(ns: &NsRt, slba: u64, nlb: u64) -> Result<(u64, u64), Completion> {
    match slba.checked_add(nlb) {
        Some(end) if end <= ns.blocks => {
            Ok((slba * ns.block_size as u64, nlb * ns.block_size as u64))
        }
        _ => Err(done(StatusCode::LBA_OUT_OF_RANGE)),
    }
}

/// Check an I/O command against its namespace and turn it into a backend
/// operation (or the completion that refuses it). No lock, no allocation
/// (but for Dataset Management's range list).
pub fn prepare(ns: &NsRt, sqe: &Sqe, data: Bytes) -> Result<IoOp, Completion> {
    let slba = sqe.cdw10 as u64 | ((sqe.cdw11 as u64) << 32);
    let nlb = (sqe.cdw12 & 0xFFFF) as u64 + 1;
    match sqe.opcode {
        Opcode::READ | Opcode::WRITE => {
            let (offset, len) = lba_range(ns, slba, nlb)?;
            if sqe.dptr.length as u64 != len {
                return Err(done(StatusCode::SGL_DATA_LENGTH_INVALID));
            }
            if sqe.opcode == Opcode::READ {
                Ok(IoOp::Read {
                    offset,
                    len: len as u32,
                })
            } else {
                if data.len() as u64 != len {
                    return Err(done(StatusCode::SGL_DATA_LENGTH_INVALID));
                }
                Ok(IoOp::Write {
                    offset,
                    data,
                    fua: sqe.cdw12 & (1 << 30) != 0,
                })
            }
        }
        Opcode::FLUSH => Ok(IoOp::Flush),
        Opcode::WRITE_ZEROES => {
            lba_range(ns, slba, nlb).map(|(offset, len)| IoOp::Zero { offset, len })
        }
        Opcode::DATASET_MANAGEMENT => {
            let nr = (sqe.cdw10 & 0xFF) as usize + 1;
            let deallocate = sqe.cdw11 & (1 << 2) != 0;
            if data.len() < nr * 16 {
                return Err(done(StatusCode::SGL_DATA_LENGTH_INVALID));
            }
            if !deallocate {
                return Err(Completion::ok());
            }
            let mut ranges = Vec::with_capacity(nr);
            for r in data.chunks_exact(16).take(nr) {
                let nlb = u32::from_le_bytes([r[4], r[5], r[6], r[7]]) as u64;
                let slba =
                    u64::from_le_bytes([r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]]);
                if nlb == 0 {
                    continue;
                }
                ranges.push(lba_range(ns, slba, nlb)?);
            }
            Ok(IoOp::Deallocate { ranges })
        }
        _ => Err(done(StatusCode::INVALID_OPCODE)),
    }
}
