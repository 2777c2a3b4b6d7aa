//! One NVMe/TCP queue (one TCP connection), sans I/O: bytes in, PDUs and
//! backend operations out. ICReq/ICResp, Connect, capsules with in-capsule
//! data, R2T/H2CData for larger writes, C2HData for reads, TermReq on fatal
//! errors; the timers (keep-alive, stalled PDU, connect timeout) are in
//! [`timers`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use nvmp_wire::pdu::{DataPdu, EncodeOptions, Fes, IcResp, TermReq};
use nvmp_wire::sqe::{DataDirection, SglId};
use nvmp_wire::{Cqe, Pdu, PduConfig, PduDecoder, PduError, Role, Sqe, StatusCode};

use super::io::LocalCounters;
use super::state::{ConnId, ConnSignal, PortCounters, PortFaults, Shared};
use super::tx::{c2h, Sink};
use super::view::IoView;
use super::{admin, connect, io};
use crate::backend::IoResult;

pub use super::types::*;

pub(crate) mod auth;
mod flow;
mod hold;
mod timers;

/// Hasher for CID / TTAG keys (u16): a multiply, no SipHash per command.
#[derive(Default)]
pub struct TagHasher(u64);

impl Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | *b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u16(&mut self, v: u16) {
        self.0 = (v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type TagMap<V> = HashMap<u16, V, BuildHasherDefault<TagHasher>>;

#[derive(Debug)]
struct PendingWrite {
    /// R2T sent (else waiting in `r2t_waiting` for the byte budget).
    granted: bool,
    cid: u16,
    sqe: Sqe,
    buf: BytesMut,
    total: u32,
}

#[derive(Debug, Clone, Copy)]
struct Inflight {
    /// Expected controller-to-host data length.
    read_len: u32,
    /// SGL length (bytes moved either way).
    xfer_len: u32,
    kind: io::IoKind,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    AwaitIcReq,
    Ready,
    Closed,
}

/// One queue's state machine.
pub struct Queue {
    shared: Arc<Shared>,
    signal: Arc<ConnSignal>,
    ctx: Ctx,
    phase: Phase,
    decoder: PduDecoder,
    enc: EncodeOptions,
    bound: Option<Bound>,
    inflight: TagMap<Inflight>,
    r2t: TagMap<PendingWrite>,
    /// Bytes granted with R2T and not yet executed.
    r2t_bytes: usize,
    /// Reply data of admitted reads not yet completed (reserved in the budget).
    read_reserved: usize,
    /// Admitted writes whose R2T waits for `r2t_bytes` to fall under the budget.
    r2t_waiting: std::collections::VecDeque<u16>,
    next_ttag: u16,
    created: Instant,
    partial_since: Option<Instant>,
    counters: Arc<PortCounters>,
    local: LocalCounters,
    faults: Arc<PortFaults>,
    /// I/O queues: namespaces, ANA and keep-alive stamp, resolved.
    view: IoView,
    epoch: Arc<AtomicU64>,
    /// Read data slices of the command being completed (reused).
    scratch: Vec<Bytes>,
    /// New commands are held in the receive buffer (see [`Queue::holding`]).
    holding: bool,
    /// In-band authentication, when the host must authenticate.
    auth: Option<auth::QueueAuth>,
    /// Admission to the backends, fenced by a Cross-Controller Reset or
    /// any teardown of the controller ([`super::ccr`]).
    gate: Arc<super::ccr::Gate>,
    /// I/O commands parked by the hold fault ([`hold`]).
    held: std::collections::VecDeque<hold::Held>,
}

impl Queue {
    /// A new connection on `port` (already registered in the state).
    pub fn new(
        shared: Arc<Shared>,
        conn: ConnId,
        signal: Arc<ConnSignal>,
        port: u16,
        local_addr: Option<SocketAddr>,
        limits: Limits,
        now: Instant,
    ) -> Self {
        let (counters, faults) = {
            let st = shared.lock();
            st.ports
                .get(&port)
                .map(|p| (p.counters.clone(), p.faults.clone()))
                .unwrap_or_default()
        };
        let max_data = limits
            .maxh2cdata
            .max(limits.inline_data_size)
            .max(ADMIN_INLINE_DATA_SIZE);
        Self {
            signal,
            ctx: Ctx {
                port,
                peer: None,
                conn,
                local_addr,
                limits,
                tls_hostnqn: None,
            },
            phase: Phase::AwaitIcReq,
            decoder: PduDecoder::new(PduConfig::initial(Role::Controller, max_data)),
            enc: EncodeOptions::default(),
            bound: None,
            inflight: TagMap::default(),
            r2t: TagMap::default(),
            r2t_bytes: 0,
            r2t_waiting: Default::default(),
            read_reserved: 0,
            next_ttag: 0,
            created: now,
            partial_since: None,
            counters,
            local: LocalCounters::default(),
            faults,
            view: IoView::default(),
            epoch: shared.io_epoch.clone(),
            shared,
            scratch: Vec::new(),
            holding: false,
            auth: None,
            gate: Arc::default(),
            held: Default::default(),
        }
    }

    pub fn encode_options(&self) -> EncodeOptions {
        self.enc
    }
    pub fn bound(&self) -> Option<&Bound> {
        self.bound.as_ref()
    }
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }
    pub fn port(&self) -> u16 {
        self.ctx.port
    }

    /// Name the peer in this queue's log lines.
    pub fn set_peer(&mut self, peer: SocketAddr) {
        self.ctx.peer = Some(peer);
    }

    /// The host NQN of the connection's TLS PSK identity.
    pub fn set_tls_hostnqn(&mut self, hostnqn: String) {
        self.ctx.tls_hostnqn = Some(hostnqn);
    }

    /// Whether new commands wait in the receive buffer because the peer
    /// does not take its replies: the driver stops reading (TCP pushes back)
    /// and calls [`Queue::on_bytes_into`] again once replies were sent.
    pub fn holding(&self) -> bool {
        self.holding
    }

    /// Feed received bytes; whole PDUs are taken from the front of `buf`.
    pub fn on_bytes(&mut self, buf: &mut BytesMut, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        self.on_bytes_into(buf, now, &mut out);
        out
    }

    /// [`Queue::on_bytes`] into a sink.
    pub fn on_bytes_into(&mut self, buf: &mut BytesMut, now: Instant, out: &mut dyn Sink) {
        let mut progressed = false;
        self.holding = false;
        self.prefetch(buf);
        while self.phase != Phase::Closed {
            if self.must_hold(buf, out) {
                self.holding = true;
                break;
            }
            match self.decoder.decode(buf) {
                Ok(Some(pdu)) => {
                    progressed = true;
                    self.on_pdu(pdu, now, out)
                }
                Ok(None) => break,
                Err(e) => self.on_pdu_error(e, out),
            }
        }
        // The stall timer measures how long one PDU takes to arrive: it
        // restarts whenever a whole PDU was taken (and does not run while
        // commands wait for the peer to take its replies).
        self.partial_since = if buf.is_empty() || self.phase == Phase::Closed || self.holding {
            None
        } else if progressed {
            Some(now)
        } else {
            self.partial_since.or(Some(now))
        };
        self.local.flush(&self.counters);
    }

    fn on_pdu_error(&mut self, e: PduError, out: &mut dyn Sink) {
        // A data digest error is not fatal: the command fails with a
        // Transient Transport Error (the PDU was consumed whole).
        if e.error.field == "PDU.DDGST" {
            tracing::warn!(port = self.ctx.port, peer = ?self.ctx.peer, error = %e, "data digest error");
            let cid = match e.header.first().copied() {
                Some(0x04) if e.header.len() >= 12 => {
                    u16::from_le_bytes([e.header[10], e.header[11]])
                }
                Some(0x06) if e.header.len() >= 10 => {
                    let cccid = u16::from_le_bytes([e.header[8], e.header[9]]);
                    let ttag = u16::from_le_bytes([e.header[10], e.header[11]]);
                    self.r2t_done(ttag, out);
                    cccid
                }
                _ => return self.fatal(e.fes, e.fei, e.header, out),
            };
            let c = Completion::err(StatusCode::TRANSIENT_TRANSPORT_ERROR);
            if self.inflight.contains_key(&cid) {
                self.complete(cid, c, out);
            } else {
                self.send_cqe(cid, c, out);
            }
            return;
        }
        tracing::warn!(port = self.ctx.port, peer = ?self.ctx.peer, error = %e, "malformed PDU, terminating connection");
        self.fatal(e.fes, e.fei, e.header, out);
    }

    /// Send a C2HTermReq and close: "the receiver shall … send a TermReq … and close".
    fn fatal(&mut self, fes: Fes, fei: u32, header: Bytes, out: &mut dyn Sink) {
        if self.phase == Phase::Closed {
            return;
        }
        let data = header.slice(..header.len().min(128));
        out.send(Pdu::C2HTermReq(TermReq { fes, fei, data }), self.enc);
        out.close();
        self.phase = Phase::Closed;
    }

    fn close(&mut self, out: &mut dyn Sink) {
        if self.phase != Phase::Closed {
            out.close();
            self.phase = Phase::Closed;
        }
    }

    fn on_pdu(&mut self, pdu: Pdu, now: Instant, out: &mut dyn Sink) {
        if self.faults.black_hole.load(Ordering::Relaxed) && self.phase == Phase::Ready {
            return; // fault injection: swallow everything, answer nothing
        }
        match (&self.phase, pdu) {
            (Phase::AwaitIcReq, Pdu::IcReq(ic)) => {
                // "PFV … shall be 0h"; anything else is an unsupported parameter.
                if ic.pfv != 0 {
                    let hdr = Bytes::from(vec![0u8; 8]);
                    return self.fatal(Fes::UNSUPPORTED_PARAMETER, 8, hdr, out);
                }
                let digests = ic.digests;
                self.decoder.config.digests = digests;
                self.enc = EncodeOptions {
                    digests,
                    pda: ic.hpda,
                };
                self.phase = Phase::Ready;
                let resp = Pdu::IcResp(IcResp {
                    pfv: 0,
                    cpda: 0,
                    digests,
                    maxh2cdata: self.ctx.limits.maxh2cdata,
                });
                out.send(resp, self.enc);
            }
            (Phase::AwaitIcReq, _) | (Phase::Ready, Pdu::IcReq(_)) => {
                // "PDU Sequence Error": an IC PDU out of place, or anything before ICReq.
                self.fatal(Fes::PDU_SEQUENCE_ERROR, 0, Bytes::new(), out);
            }
            (Phase::Ready, Pdu::H2CTermReq(t)) => {
                tracing::info!(
                    port = self.ctx.port,
                    peer = ?self.ctx.peer,
                    fes = t.fes.0,
                    "host terminated the connection"
                );
                self.close(out);
            }
            (Phase::Ready, Pdu::CapsuleCmd { sqe, data }) => self.on_capsule(sqe, data, now, out),
            (Phase::Ready, Pdu::H2CData(d)) => self.on_h2c_data(d, now, out),
            (Phase::Ready, _) => self.fatal(Fes::INVALID_HEADER_FIELD, 0, Bytes::new(), out),
            (Phase::Closed, _) => {}
        }
    }

    fn on_capsule(&mut self, sqe: Sqe, data: Bytes, now: Instant, out: &mut dyn Sink) {
        let cid = sqe.cid;
        if self.inflight.contains_key(&cid) && !self.abandon_aer(cid) {
            return self.send_cqe(cid, Completion::err_dnr(StatusCode::CID_CONFLICT), out);
        }
        let depth = self.bound.as_ref().map_or(1, |b| b.sqsize as usize + 1);
        if self.inflight.len() >= depth.max(1) {
            // The host exceeded the queue size it asked for.
            return self.send_cqe(cid, Completion::err(StatusCode::INTERNAL_ERROR), out);
        }
        let dir = sqe.data_direction();
        let sgl = sqe.dptr;
        let read_len = if dir == DataDirection::ControllerToHost {
            sgl.length
        } else {
            0
        };
        if sgl.length > self.ctx.limits.mdts_bytes {
            return self.send_cqe(
                cid,
                Completion::err_dnr(StatusCode::SGL_DATA_LENGTH_INVALID),
                out,
            );
        }
        self.read_reserved += read_len as usize;
        self.inflight.insert(
            cid,
            Inflight {
                read_len,
                xfer_len: sgl.length,
                kind: io::IoKind::of(&sqe, self.bound.as_ref()),
            },
        );
        if !data.is_empty() {
            // In-capsule data: "SGL Data Block descriptor … Offset subtype".
            let limit = match &self.bound {
                Some(b) if b.qid > 0 => self.ctx.limits.inline_data_size,
                _ => ADMIN_INLINE_DATA_SIZE,
            };
            if sgl.sgl_id() != SglId::DATA_BLOCK_OFFSET
                || sgl.address != 0
                || sgl.length as usize != data.len()
                || dir != DataDirection::HostToController
            {
                return self.complete(
                    cid,
                    Completion::err_dnr(StatusCode::SGL_DATA_LENGTH_INVALID),
                    out,
                );
            }
            if data.len() > limit as usize {
                return self.complete(
                    cid,
                    Completion::err_dnr(StatusCode::SGL_DATA_LENGTH_INVALID),
                    out,
                );
            }
            return self.execute(sqe, data, now, out);
        }
        if dir == DataDirection::HostToController && sgl.length > 0 {
            if sgl.sgl_id() != SglId::TRANSPORT_DATA_BLOCK {
                return self.complete(cid, Completion::err_dnr(StatusCode::SGL_TYPE_INVALID), out);
            }
            // Ask for the data with one R2T, once the budget allows.
            let ttag = self.alloc_ttag();
            self.r2t.insert(
                ttag,
                PendingWrite {
                    granted: false,
                    cid,
                    sqe,
                    buf: BytesMut::new(),
                    total: sgl.length,
                },
            );
            self.r2t_waiting.push_back(ttag);
            return self.grant_r2ts(out);
        }
        self.execute(sqe, Bytes::new(), now, out);
    }

    /// A new admin command reuses the CID of an outstanding Asynchronous
    /// Event Request: the host gave that AER up (SPDK drops its AERs locally
    /// at shutdown and reuses their CIDs for the Property Get/Set that shut
    /// the controller down; SPDK's target accepts that). Forget the AER
    /// without answering it (any answer would carry the new command's CID)
    /// and let the new command run; a pending event waits for the next AER.
    /// Every other reuse stays a "Command ID Conflict".
    fn abandon_aer(&mut self, cid: u16) -> bool {
        let Some(b) = self.bound.as_ref().filter(|b| b.qid == 0) else {
            return false;
        };
        if !admin::abandon_aer(&mut self.shared.lock(), b, cid) {
            return false;
        }
        if let Some(inf) = self.inflight.remove(&cid) {
            self.read_reserved -= inf.read_len as usize;
        }
        tracing::debug!(port = self.ctx.port, peer = ?self.ctx.peer, cid, "AER abandoned by the host (its CID reused)");
        true
    }

    fn alloc_ttag(&mut self) -> u16 {
        loop {
            let t = self.next_ttag;
            self.next_ttag = self.next_ttag.wrapping_add(1);
            if !self.r2t.contains_key(&t) {
                return t;
            }
        }
    }

    fn on_h2c_data(&mut self, d: DataPdu, now: Instant, out: &mut dyn Sink) {
        let h = d.header;
        let hdr = || {
            let mut b = vec![0x06, 0, 24, 0, 0, 0, 0, 0];
            b.extend_from_slice(&h.cccid.to_le_bytes());
            b.extend_from_slice(&h.ttag.to_le_bytes());
            b.extend_from_slice(&h.offset.to_le_bytes());
            b.extend_from_slice(&h.length.to_le_bytes());
            Bytes::from(b)
        };
        let Some(pw) = self.r2t.get_mut(&h.ttag).filter(|pw| pw.granted) else {
            // Unknown transfer tag (or no R2T sent for it yet): invalid header field (TTAG at byte 10).
            return self.fatal(Fes::INVALID_HEADER_FIELD, 10, hdr(), out);
        };
        if pw.cid != h.cccid {
            return self.fatal(Fes::INVALID_HEADER_FIELD, 8, hdr(), out);
        }
        if h.length > self.ctx.limits.maxh2cdata {
            return self.fatal(Fes::DATA_LIMIT_EXCEEDED, 16, hdr(), out);
        }
        // "DATAO … shall be … the next byte expected"; out of range otherwise.
        let end = h.offset as u64 + h.length as u64;
        if h.offset as usize != pw.buf.len() || end > pw.total as u64 {
            return self.fatal(Fes::DATA_OUT_OF_RANGE, 12, hdr(), out);
        }
        pw.buf.extend_from_slice(&d.data);
        if pw.buf.len() as u32 == pw.total {
            if let Some(pw) = self.r2t_done(h.ttag, out) {
                self.execute(pw.sqe, pw.buf.freeze(), now, out);
            }
        }
    }

    fn execute(&mut self, sqe: Sqe, data: Bytes, now: Instant, out: &mut dyn Sink) {
        let cid = sqe.cid;
        let exec = if sqe.is_fabrics() {
            self.fabrics(&sqe, &data, now, out)
        } else if let Some(c) = self.auth_gate() {
            Exec::Done(c)
        } else {
            match &self.bound {
                None => Exec::Done(Completion::err_dnr(StatusCode::COMMAND_SEQUENCE_ERROR)),
                Some(b) if b.qid > 0 => return self.execute_or_park(sqe, data, now, out),
                Some(b) => {
                    let mut st = self.shared.lock();
                    if let Some(c) = st.ctrl_mut(&b.subnqn, b.cntlid) {
                        // "any command counts as traffic" for keep-alive.
                        c.traffic.touch(now);
                    } else {
                        drop(st);
                        return self.close(out);
                    }
                    admin::execute(&mut st, &self.ctx, b, &sqe, &data, now)
                }
            }
        };
        match exec {
            Exec::Done(c) => self.complete(cid, c, out),
            Exec::Deferred => {
                // AERs are pending in the controller; an event may already be queued.
                self.poll_aens(out);
            }
        }
    }

    fn fabrics(&mut self, sqe: &Sqe, data: &Bytes, now: Instant, out: &mut dyn Sink) -> Exec {
        use nvmp_wire::FabricsType as F;
        match sqe.fctype() {
            F::CONNECT => {
                if self.bound.is_some() {
                    return Exec::Done(Completion::err_dnr(StatusCode::COMMAND_SEQUENCE_ERROR));
                }
                let mut st = self.shared.lock();
                match connect::connect(&mut st, &self.ctx, sqe, data, now) {
                    Ok((bound, mut c)) => {
                        self.auth = auth::on_connect(&st, &bound, &mut c, now);
                        super::ccr::bind(&mut st, &bound, &self.gate);
                        if bound.qid > 0 {
                            self.view.resolve(&st, self.ctx.port, &bound);
                        }
                        self.bound = Some(bound);
                        Exec::Done(c)
                    }
                    Err(c) => Exec::Done(c),
                }
            }
            F::AUTH_SEND | F::AUTH_RECEIVE => self.auth_command(sqe, data, now),
            F::PROPERTY_GET | F::PROPERTY_SET if self.auth_gate().is_some() => {
                Exec::Done(self.auth_gate().expect("checked"))
            }
            F::PROPERTY_GET | F::PROPERTY_SET => match &self.bound {
                Some(b) if b.qid == 0 => {
                    let mut st = self.shared.lock();
                    if let Some(c) = st.ctrl_mut(&b.subnqn, b.cntlid) {
                        c.traffic.touch(now);
                    }
                    Exec::Done(connect::property(&mut st, b, sqe))
                }
                Some(_) => Exec::Done(Completion::err_dnr(StatusCode::INVALID_FIELD)),
                None => Exec::Done(Completion::err_dnr(StatusCode::COMMAND_SEQUENCE_ERROR)),
            },
            F::DISCONNECT => {
                // Complete, then delete the queue (close after the response).
                self.complete(sqe.cid, Completion::ok(), out);
                self.close(out);
                Exec::Deferred
            }
            _ => Exec::Done(Completion::err_dnr(StatusCode::INVALID_OPCODE)),
        }
    }

    /// Complete a command: C2HData (if any) then CapsuleResp.
    fn complete(&mut self, cid: u16, c: Completion, out: &mut dyn Sink) {
        let Some(inf) = self.inflight.remove(&cid) else {
            return;
        };
        self.read_reserved -= inf.read_len as usize;
        if !c.status.is_success() {
            self.local.errors += 1;
        }
        if let (true, Some(data)) = (c.status.is_success(), c.data.clone()) {
            let want = inf.read_len as usize;
            if want > 0 {
                let data = if data.len() >= want {
                    data.slice(..want)
                } else {
                    let mut v = BytesMut::from(&data[..]);
                    v.resize(want, 0);
                    v.freeze()
                };
                out.send(c2h(cid, data), self.enc);
            }
        }
        self.send_cqe(cid, c, out);
    }

    fn send_cqe(&mut self, cid: u16, c: Completion, out: &mut dyn Sink) {
        let mut cqe = Cqe::new(cid, c.status);
        cqe.dw0 = c.dw0;
        cqe.dw1 = c.dw1;
        cqe.sqid = self.bound.as_ref().map_or(0, |b| b.qid);
        out.cqe(cqe, self.enc);
    }

    /// A backend operation finished.
    pub fn on_io_done(&mut self, cid: u16, result: IoResult) -> Vec<Output> {
        let mut out = Vec::new();
        self.on_io_done_into(cid, result, &mut out);
        self.local.flush(&self.counters);
        out
    }

    /// [`Queue::on_io_done`] into a sink (counters are flushed by the next
    /// [`Queue::on_bytes_into`] or [`Queue::flush_counters`]).
    pub fn on_io_done_into(&mut self, cid: u16, result: IoResult, out: &mut dyn Sink) {
        if self.phase == Phase::Closed {
            return;
        }
        let Some(inf) = self.inflight.get(&cid).copied() else {
            return;
        };
        let c = match result {
            Ok(data) => {
                inf.kind.count(&mut self.local, inf.xfer_len);
                if inf.read_len > 0 {
                    Completion::data(data)
                } else {
                    Completion::ok()
                }
            }
            Err(e) => {
                tracing::error!(port = self.ctx.port, peer = ?self.ctx.peer, cid, error = %e, "backend I/O failed");
                Completion::err(if inf.read_len > 0 {
                    StatusCode::UNRECOVERED_READ_ERROR
                } else {
                    StatusCode::WRITE_FAULT
                })
            }
        };
        self.complete(cid, c, out);
    }
}
