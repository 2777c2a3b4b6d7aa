//! The sans-IO core of one NVMe/TCP queue (one TCP connection): ICReq /
//! ICResp, CID allocation, in-capsule data, R2T → H2CData, C2HData
//! reassembly, CapsuleResp matching, TermReq, per-command deadlines.
//!
//! It takes received bytes and `now`, and yields PDUs to send and
//! completions; it never blocks, never reads a clock and owns no socket.
//! `T` is the caller's per-command token (the ticket of a reusable
//! completion cell in the driver, a number in tests) handed back with the
//! completion.

mod direct;
#[cfg(test)]
mod short_tests;
pub mod slots;
mod stall;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use nvmp_wire::pdu::{DataHeader, DataPdu, EncodeOptions, Fes, IcReq, IcResp, R2t, TermReq};
use nvmp_wire::{
    Cqe, Digests, Pdu, PduConfig, PduDecoder, PduError, Role, Sgl, Status, StatusCode,
};

use crate::command::{Completion, IoRequest};
pub use direct::Direct;
use slots::Slots;

/// Linux's in-capsule data limit on the admin queue (NVME_TCP_ADMIN_CCSZ).
pub const ADMIN_INLINE_MAX: u32 = 8192;

/// Per-connection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// 0 for the admin queue.
    pub qid: u16,
    /// Number of command slots (16..=1024 for I/O queues).
    pub queue_size: u16,
    /// Digests to request in ICReq.
    pub digests: Digests,
    /// Largest write sent as in-capsule data. Linux: 8 KiB on the admin
    /// queue, IOCCSZ × 16 − 64 on I/O queues.
    pub inline_max: u32,
    /// Largest data payload accepted in one received PDU (bounds memory per PDU).
    pub max_data_len: u32,
}

impl QueueConfig {
    pub fn admin(queue_size: u16, digests: Digests) -> Self {
        Self {
            qid: 0,
            queue_size,
            digests,
            inline_max: ADMIN_INLINE_MAX,
            max_data_len: 1 << 20,
        }
    }
}

/// Why a connection cannot go on. Each is fatal to the connection; the
/// controller resets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("malformed PDU from the controller: {0}")]
    Malformed(PduError),
    #[error("controller violated the protocol: {what}")]
    Protocol { what: String, fes: Fes },
    #[error("controller terminated the connection (C2HTermReq FES {fes:#x}, FEI {fei:#x})")]
    TermReq { fes: u16, fei: u32 },
    #[error("incompatible controller: {0}")]
    Incompatible(String),
    #[error("command CID {cid:#06x} (opcode {opcode:#04x}) timed out")]
    Timeout { cid: u16, opcode: u8 },
    #[error("connection closed")]
    Closed,
}

/// Why a command could not be queued (the token is returned with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// All slots are in use: wait for a completion.
    Full,
    /// The connection is not (or no longer) usable.
    NotReady,
    /// The request is inconsistent (read and write at once, or larger than the queue accepts).
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitIcResp,
    Ready,
    Failed,
}

#[derive(Debug)]
struct InFlight<T> {
    /// None: a read retired from a stalled queue ([`QueueCore::set_read_stall`]);
    /// its slot stays taken until the late response arrives, then it is dropped.
    token: Option<T>,
    opcode: u8,
    write: Option<Bytes>,
    /// Write bytes already sent (in capsule or H2CData).
    sent: u32,
    read_len: u32,
    received: u32,
    /// Data that arrived in one C2HData PDU (zero-copy) …
    single: Option<Bytes>,
    /// … or reassembled from several.
    assembled: Option<BytesMut>,
    /// A data digest error was seen on this command's data.
    xfer_error: bool,
    deadline: Option<Instant>,
}

/// One queue's protocol state.
#[derive(Debug)]
pub struct QueueCore<T> {
    cfg: QueueConfig,
    phase: Phase,
    slots: Slots<InFlight<T>>,
    decoder: PduDecoder,
    enc: EncodeOptions,
    maxh2cdata: u32,
    outbound: VecDeque<Pdu>,
    done: VecDeque<(T, Completion)>,
    /// The deadline the driver's timer is armed for (from the last
    /// [`QueueCore::poll_timeout`]); None: not armed.
    armed: Option<Instant>,
    /// A command was queued with a deadline earlier than `armed`.
    rearm: bool,
    stall: stall::Stall,
}

impl<T> QueueCore<T> {
    /// A new queue; [`QueueCore::pop_outbound`] yields the ICReq first.
    pub fn new(cfg: QueueConfig) -> Self {
        let mut outbound = VecDeque::with_capacity(cfg.queue_size as usize * 2);
        // "MAXR2T: … 0's based": one outstanding R2T per command, as Linux.
        outbound.push_back(Pdu::IcReq(IcReq {
            pfv: 0,
            hpda: 0,
            digests: cfg.digests,
            maxr2t: 0,
        }));
        Self {
            cfg,
            phase: Phase::AwaitIcResp,
            slots: Slots::new(cfg.queue_size),
            decoder: PduDecoder::new(PduConfig::initial(Role::Host, cfg.max_data_len)),
            enc: EncodeOptions::default(),
            maxh2cdata: 0,
            outbound,
            done: VecDeque::with_capacity(cfg.queue_size as usize),
            armed: None,
            rearm: false,
            stall: stall::Stall::default(),
        }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.cfg
    }
    /// Set the in-capsule limit (I/O queues learn IOCCSZ from Identify).
    pub fn set_inline_max(&mut self, n: u32) {
        self.cfg.inline_max = n;
    }
    /// ICResp received and accepted.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }
    pub fn is_failed(&self) -> bool {
        self.phase == Phase::Failed
    }
    pub fn is_full(&self) -> bool {
        self.slots.is_full()
    }
    pub fn in_flight(&self) -> usize {
        self.slots.in_use()
    }
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }
    pub fn maxh2cdata(&self) -> u32 {
        self.maxh2cdata
    }
    /// Encoding options for PDUs we send (digests, controller's CPDA).
    pub fn encode_options(&self) -> EncodeOptions {
        self.enc
    }

    /// Queue a command. `deadline` None: never times out (AERs). On
    /// error the token and the request are handed back untouched.
    #[allow(clippy::type_complexity)]
    pub fn submit(
        &mut self,
        token: T,
        req: IoRequest,
        deadline: Option<Instant>,
    ) -> Result<u16, (T, IoRequest, SubmitError)> {
        if self.phase != Phase::Ready {
            return Err((token, req, SubmitError::NotReady));
        }
        if (req.write.is_some() && req.read_len > 0) || req.read_len > self.cfg.max_data_len {
            return Err((token, req, SubmitError::Invalid));
        }
        if self.slots.is_full() {
            return Err((token, req, SubmitError::Full));
        }
        let IoRequest {
            mut sqe,
            write,
            read_len,
        } = req;
        let write_len = write.as_ref().map_or(0, |w| w.len() as u32);
        let inline = write_len > 0 && write_len <= self.cfg.inline_max;
        let entry = InFlight {
            token: Some(token),
            opcode: sqe.opcode.0,
            sent: if inline { write_len } else { 0 },
            write: if inline || write_len == 0 {
                None
            } else {
                write.clone()
            },
            read_len,
            received: 0,
            single: None,
            assembled: None,
            xfer_error: false,
            deadline,
        };
        if let Some(d) = deadline {
            if self.armed.is_none_or(|a| d < a) {
                self.rearm = true;
            }
        }
        let Ok(cid) = self.slots.insert(entry) else {
            unreachable!("a free slot was checked above");
        };
        sqe.cid = cid;
        let data = if inline {
            // "the SGL … Data Block descriptor … Offset subtype" for in-capsule data.
            sqe.dptr = Sgl::in_capsule(0, write_len);
            write.unwrap_or_default()
        } else {
            // Transport SGL: data moved by R2T/H2CData or C2HData (length 0: no data, as Linux).
            sqe.dptr = Sgl::transport(write_len.max(read_len));
            Bytes::new()
        };
        self.outbound.push_back(Pdu::CapsuleCmd { sqe, data });
        Ok(cid)
    }

    /// Feed received bytes; whole PDUs are consumed from `buf`.
    pub fn receive(&mut self, buf: &mut BytesMut) -> Result<(), QueueError> {
        if self.phase == Phase::Failed {
            return Err(QueueError::Closed);
        }
        loop {
            if let Some(r) = self.receive_short(buf) {
                r.map_err(|e| self.fatal(e))?;
                // All taken (the common case): no call to the decoder to
                // find that out.
                if buf.is_empty() {
                    return Ok(());
                }
                continue;
            }
            match self.decoder.decode(buf) {
                Ok(Some(pdu)) => {
                    if let Err(e) = self.handle(pdu) {
                        return Err(self.fatal(e));
                    }
                }
                Ok(None) => return Ok(()),
                // A data digest error fails the command, not the connection
                // (the PDU was consumed whole; its header is intact).
                Err(e) if e.error.field == "PDU.DDGST" => {
                    if let Err(e) = self.on_data_digest_error(&e) {
                        return Err(self.fatal(e));
                    }
                }
                Err(e) => return Err(self.fatal(QueueError::Malformed(e))),
            }
        }
    }

    /// Handle one decoded PDU (also used by tests).
    pub fn handle(&mut self, pdu: Pdu) -> Result<(), QueueError> {
        match (self.phase, pdu) {
            (_, Pdu::C2HTermReq(t)) => Err(QueueError::TermReq {
                fes: t.fes.0,
                fei: t.fei,
            }),
            (Phase::AwaitIcResp, Pdu::IcResp(r)) => self.on_icresp(r),
            (Phase::Ready, Pdu::CapsuleResp(cqe)) => self.on_resp(cqe),
            (Phase::Ready, Pdu::C2HData(d)) => self.on_c2h(d),
            (Phase::Ready, Pdu::R2t(r)) => self.on_r2t(r),
            (_, p) => Err(proto(
                format!("unexpected {:?} PDU", p.pdu_type()),
                Fes::PDU_SEQUENCE_ERROR,
            )),
        }
    }

    fn on_icresp(&mut self, r: IcResp) -> Result<(), QueueError> {
        // "PFV … shall be 0h" for NVMe/TCP 1.0.
        if r.pfv != 0 {
            return Err(QueueError::Incompatible(format!("ICResp PFV {}", r.pfv)));
        }
        // The controller may only enable the digests the host asked for.
        let want = self.cfg.digests;
        if (r.digests.header && !want.header) || (r.digests.data && !want.data) {
            return Err(proto(
                "ICResp enables a digest the host did not request".into(),
                Fes::INVALID_HEADER_FIELD,
            ));
        }
        if r.digests != want {
            return Err(QueueError::Incompatible(format!(
                "controller refused digests {:?} (got {:?})",
                want, r.digests
            )));
        }
        self.maxh2cdata = r.maxh2cdata;
        self.decoder.config.digests = r.digests;
        self.enc = EncodeOptions {
            digests: r.digests,
            pda: r.cpda,
        };
        self.phase = Phase::Ready;
        Ok(())
    }

    fn on_resp(&mut self, cqe: Cqe) -> Result<(), QueueError> {
        let Some(f) = self.slots.get_mut(cqe.cid) else {
            return Err(proto(
                format!("CapsuleResp for unknown or stale CID {:#06x}", cqe.cid),
                Fes::PDU_SEQUENCE_ERROR,
            ));
        };
        let mut status = cqe.status;
        if status.is_success() && f.received != f.read_len {
            // Completed successfully with data missing.
            status = Status::new(StatusCode::DATA_TRANSFER_ERROR);
        }
        self.finish(cqe.cid, status, cqe.dw0, cqe.dw1);
        Ok(())
    }

    fn on_c2h(&mut self, d: DataPdu) -> Result<(), QueueError> {
        let h = d.header;
        let Some(f) = self.slots.get_mut(h.cccid) else {
            return Err(proto(
                format!("C2HData for unknown or stale CID {:#06x}", h.cccid),
                Fes::PDU_SEQUENCE_ERROR,
            ));
        };
        // "DATAO … shall not exceed the … data length", data arrives in order.
        let end = h.offset as u64 + h.length as u64;
        if h.offset != f.received || end > f.read_len as u64 {
            return Err(proto(
                format!(
                    "C2HData CID {:#06x} offset {} length {} outside the expected {} (received {})",
                    h.cccid, h.offset, h.length, f.read_len, f.received
                ),
                Fes::DATA_OUT_OF_RANGE,
            ));
        }
        if h.offset == 0 && h.length == f.read_len {
            f.single = Some(d.data);
        } else {
            let buf = f
                .assembled
                .get_or_insert_with(|| BytesMut::with_capacity(f.read_len as usize));
            buf.extend_from_slice(&d.data);
        }
        f.received += h.length;
        if d.success {
            // "SUCCESS … the command completed successfully … no CapsuleResp".
            if f.received != f.read_len {
                return Err(proto(
                    format!("C2HData SUCCESS for CID {:#06x} before all data", h.cccid),
                    Fes::PDU_SEQUENCE_ERROR,
                ));
            }
            self.finish(h.cccid, Status::SUCCESS, 0, 0);
        }
        Ok(())
    }

    /// A C2HData whose data digest did not match: account for its bytes and
    /// complete the command with Data Transfer Error (as Linux does).
    fn on_data_digest_error(&mut self, e: &PduError) -> Result<(), QueueError> {
        let h = &e.header;
        if h.len() < 24 || h[0] != 0x07 {
            return Err(QueueError::Malformed(e.clone()));
        }
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let cid = u16::from_le_bytes([h[8], h[9]]);
        let (offset, length) = (u32_at(12), u32_at(16));
        let success = h[1] & nvmp_wire::pdu::flags::SUCCESS != 0;
        let Some(f) = self.slots.get_mut(cid) else {
            return Err(QueueError::Malformed(e.clone()));
        };
        if offset != f.received || offset as u64 + length as u64 > f.read_len as u64 {
            return Err(QueueError::Malformed(e.clone()));
        }
        tracing::warn!(cid, offset, length, "C2HData data digest error");
        f.received += length;
        f.xfer_error = true;
        if success {
            self.finish(cid, Status::new(StatusCode::DATA_TRANSFER_ERROR), 0, 0);
        }
        Ok(())
    }

    fn on_r2t(&mut self, r: R2t) -> Result<(), QueueError> {
        let max = self.maxh2cdata;
        let Some(f) = self.slots.get_mut(r.cccid) else {
            return Err(proto(
                format!("R2T for unknown or stale CID {:#06x}", r.cccid),
                Fes::PDU_SEQUENCE_ERROR,
            ));
        };
        let Some(data) = f.write.clone() else {
            return Err(proto(
                format!("R2T for CID {:#06x} which has no data to send", r.cccid),
                Fes::PDU_SEQUENCE_ERROR,
            ));
        };
        let end = r.offset as u64 + r.length as u64;
        // Data is requested in order and within the command's data.
        if end > data.len() as u64 || r.offset != f.sent {
            return Err(proto(
                format!(
                    "R2T CID {:#06x} offset {} length {} (sent {}, data {})",
                    r.cccid,
                    r.offset,
                    r.length,
                    f.sent,
                    data.len()
                ),
                Fes::DATA_OUT_OF_RANGE,
            ));
        }
        f.sent = end as u32;
        // "H2CData … DATAL … shall not exceed MAXH2CDATA".
        let mut off = r.offset;
        while off < end as u32 {
            let len = (end as u32 - off).min(max);
            let last = off + len == end as u32;
            self.outbound.push_back(Pdu::H2CData(DataPdu {
                header: DataHeader {
                    cccid: r.cccid,
                    ttag: r.ttag,
                    offset: off,
                    length: len,
                },
                last,
                success: false,
                data: data.slice(off as usize..(off + len) as usize),
            }));
            off += len;
        }
        Ok(())
    }

    fn finish(&mut self, cid: u16, mut status: Status, dw0: u32, dw1: u32) {
        if let Some(f) = self.slots.remove(cid) {
            self.stall.responses = self.stall.responses.wrapping_add(1);
            let Some(token) = f.token else {
                // A retired read's late completion: its caller has moved on.
                self.stall.zombies_freed += 1;
                return;
            };
            let data = match (f.single, f.assembled) {
                _ if f.xfer_error => {
                    if status.is_success() {
                        status = Status::new(StatusCode::DATA_TRANSFER_ERROR);
                    }
                    Bytes::new()
                }
                (Some(b), _) => b,
                (None, Some(b)) => b.freeze(),
                _ => Bytes::new(),
            };
            self.done.push_back((
                token,
                Completion {
                    status,
                    dw0,
                    dw1,
                    data,
                },
            ));
        }
    }

    /// Mark the connection dead after `e`, queue an H2CTermReq when the
    /// controller sent something we reject ("the receiver … shall send a
    /// TermReq … and close the connection"), and return `e`.
    fn fatal(&mut self, e: QueueError) -> QueueError {
        self.phase = Phase::Failed;
        self.outbound.clear();
        let term = match &e {
            QueueError::Malformed(p) => Some((p.fes, p.fei, p.header.clone())),
            QueueError::Protocol { fes, .. } => Some((*fes, 0, Bytes::new())),
            _ => None,
        };
        if let Some((fes, fei, data)) = term {
            self.outbound
                .push_back(Pdu::H2CTermReq(TermReq { fes, fei, data }));
        }
        e
    }

    /// Check deadlines: the first command past its deadline fails the
    /// connection. Otherwise returns the earliest deadline still pending,
    /// for which the driver arms its timer (None: no timer needed until a
    /// command with a deadline is queued, see [`QueueCore::take_rearm`]).
    pub fn poll_timeout(&mut self, now: Instant) -> Result<Option<Instant>, QueueError> {
        let expired = self
            .slots
            .iter()
            .find(|(_, f)| f.deadline.is_some_and(|d| d <= now))
            .map(|(cid, f)| (cid, f.opcode));
        match expired {
            Some((cid, opcode)) => {
                self.phase = Phase::Failed;
                self.outbound.clear();
                Err(QueueError::Timeout { cid, opcode })
            }
            None => {
                self.rearm = false;
                let stall_check = self.check_stall(now);
                self.armed = match (self.next_deadline(), stall_check) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                Ok(self.armed)
            }
        }
    }

    /// Whether a command queued since the last [`QueueCore::poll_timeout`]
    /// has an earlier deadline than the timer is armed for (then the driver
    /// calls `poll_timeout` again). Clears the flag.
    pub fn take_rearm(&mut self) -> bool {
        std::mem::take(&mut self.rearm)
    }

    /// The earliest deadline of a command in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots.iter().filter_map(|(_, f)| f.deadline).min()
    }

    /// Complete every command in flight with `status` (the connection is torn down).
    pub fn fail_all(&mut self, status: Status) {
        self.phase = Phase::Failed;
        let cids: Vec<u16> = self.slots.cids().collect();
        for cid in cids {
            self.finish(cid, status, 0, 0);
        }
    }

    /// Next PDU to send.
    pub fn pop_outbound(&mut self) -> Option<Pdu> {
        self.outbound.pop_front()
    }
    /// The next PDU to send if it is the only one queued.
    pub fn pop_sole_outbound(&mut self) -> Option<Pdu> {
        if self.outbound.len() == 1 {
            self.outbound.pop_front()
        } else {
            None
        }
    }
    pub fn has_outbound(&self) -> bool {
        !self.outbound.is_empty()
    }
    /// Next finished command.
    pub fn pop_completion(&mut self) -> Option<(T, Completion)> {
        self.done.pop_front()
    }
}

fn proto(what: String, fes: Fes) -> QueueError {
    QueueError::Protocol { what, fes }
}
