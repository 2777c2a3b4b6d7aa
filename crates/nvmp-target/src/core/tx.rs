//! Where a queue puts what it sends: [`Sink`]. [`TxBuf`] is the driver's
//! sink: PDU headers are encoded back to back into one buffer and read
//! data stays in the slices the backend handed out, so the driver writes
//! many PDUs with one vectored write and copies no payload. It also counts
//! what is queued and unsent, so the queue can stop taking commands from a
//! peer that does not read its replies.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use nvmp_wire::crc::{crc32c, crc32c_append};
use nvmp_wire::pdu::{flags, DataHeader, DataPdu, EncodeOptions, PduType, DATA_HLEN, DIGEST_LEN};
use nvmp_wire::Pdu;

use super::ccr::GateGuard;
use super::types::Output;
use crate::backend::{Backend, IoOp};

/// Receiver of a queue's outputs.
pub trait Sink {
    /// Send a PDU.
    fn send(&mut self, pdu: Pdu, enc: EncodeOptions);
    /// Send one C2HData PDU (LAST) for `cid` whose data is `parts` in order.
    fn c2h_data(&mut self, cid: u16, parts: &[Bytes], enc: EncodeOptions);
    /// Run a blocking backend operation; report with `Queue::on_io_done`.
    /// `guard` holds the controller's gate open until the operation ended
    /// (drop it after running the operation, or instead of running it).
    fn io(&mut self, cid: u16, backend: Arc<Backend>, op: IoOp, guard: GateGuard);
    /// Close the connection after what was sent.
    fn close(&mut self);
    /// Completions (CapsuleResp PDUs) queued and not yet sent.
    fn unsent_completions(&self) -> usize {
        0
    }
    /// Bytes queued and not yet sent.
    fn unsent_bytes(&self) -> usize {
        0
    }
}

/// The plain sink of the core tests: a list of outputs.
impl Sink for Vec<Output> {
    fn send(&mut self, pdu: Pdu, _enc: EncodeOptions) {
        self.push(Output::Send(pdu));
    }
    fn c2h_data(&mut self, cid: u16, parts: &[Bytes], _enc: EncodeOptions) {
        let mut b = BytesMut::new();
        for p in parts {
            b.extend_from_slice(p);
        }
        self.push(Output::Send(c2h(cid, b.freeze())));
    }
    fn io(&mut self, cid: u16, backend: Arc<Backend>, op: IoOp, guard: GateGuard) {
        self.push(Output::Io {
            cid,
            backend,
            op,
            guard,
        });
    }
    fn close(&mut self) {
        self.push(Output::Close);
    }
}

/// A C2HData PDU carrying a whole transfer.
pub fn c2h(cid: u16, data: Bytes) -> Pdu {
    Pdu::C2HData(DataPdu {
        header: DataHeader {
            cccid: cid,
            ttag: 0,
            offset: 0,
            length: data.len() as u32,
        },
        last: true,
        success: false,
        data,
    })
}

/// Room kept for headers before the buffer is grown.
const HEADER_ROOM: usize = 256;
/// Header buffer growth step.
const HEADER_BUF: usize = 32 * 1024;
/// Most slices handed to one vectored write.
pub const MAX_IOV: usize = 256;

/// The driver's transmit buffer.
#[derive(Debug, Default)]
pub struct TxBuf {
    /// Headers not yet sealed into a segment.
    hdr: BytesMut,
    segs: VecDeque<Bytes>,
    queued: u64,
    sent: u64,
    /// End positions (in `queued` terms) of queued CapsuleResp PDUs.
    cqe_ends: VecDeque<u64>,
    /// Blocking operations to run.
    pub io: Vec<(u16, Arc<Backend>, IoOp, GateGuard)>,
    pub close: bool,
    /// CapsuleResp PDUs queued so far.
    pub completions: u64,
}

impl TxBuf {
    fn room(&mut self) {
        if self.hdr.capacity() - self.hdr.len() < HEADER_ROOM {
            self.hdr.reserve(HEADER_BUF);
        }
    }

    fn seal(&mut self) {
        if !self.hdr.is_empty() {
            self.segs.push_back(self.hdr.split().freeze());
        }
    }

    fn push_data(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.seal();
            self.queued += b.len() as u64;
            self.segs.push_back(b);
        }
    }

    /// Append raw header bytes (counted).
    fn put_hdr(&mut self, f: impl FnOnce(&mut BytesMut)) {
        self.room();
        let before = self.hdr.len();
        f(&mut self.hdr);
        self.queued += (self.hdr.len() - before) as u64;
    }

    /// Nothing left to write.
    pub fn is_empty(&self) -> bool {
        self.queued == self.sent
    }

    /// Fill `iov` with the queued slices, in order; returns how many.
    pub fn iovecs<'a>(&'a mut self, iov: &mut [IoSlice<'a>]) -> usize {
        self.seal();
        let mut n = 0;
        for (s, slot) in self.segs.iter().zip(iov.iter_mut()) {
            *slot = IoSlice::new(s);
            n += 1;
        }
        n
    }

    /// `n` bytes were written.
    pub fn advance(&mut self, mut n: usize) {
        self.seal();
        self.sent += n as u64;
        while n > 0 {
            let Some(front) = self.segs.front_mut() else {
                break;
            };
            if front.len() <= n {
                n -= front.len();
                self.segs.pop_front();
            } else {
                bytes::Buf::advance(front, n);
                n = 0;
            }
        }
        while self.cqe_ends.front().is_some_and(|e| *e <= self.sent) {
            self.cqe_ends.pop_front();
        }
    }

    /// Take every unsent slice out (fault injection delays them as a batch).
    pub fn take_all(&mut self) -> Vec<Bytes> {
        self.seal();
        let v: Vec<Bytes> = self.segs.drain(..).collect();
        self.sent = self.queued;
        self.cqe_ends.clear();
        v
    }

    /// Queue slices taken with [`TxBuf::take_all`] (no completion marks).
    pub fn push_raw(&mut self, v: Vec<Bytes>) {
        for b in v {
            self.push_data(b);
        }
    }
}

impl Sink for TxBuf {
    fn send(&mut self, pdu: Pdu, enc: EncodeOptions) {
        match &pdu {
            Pdu::C2HData(d) if !d.data.is_empty() => {
                self.c2h_data(d.header.cccid, std::slice::from_ref(&d.data), enc)
            }
            _ => {
                let is_cqe = matches!(pdu, Pdu::CapsuleResp(_));
                self.put_hdr(|h| pdu.encode(enc, h));
                if is_cqe {
                    self.cqe_ends.push_back(self.queued);
                    self.completions += 1;
                }
            }
        }
    }

    fn c2h_data(&mut self, cid: u16, parts: &[Bytes], enc: EncodeOptions) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let hd = if enc.digests.header { DIGEST_LEN } else { 0 };
        let dd = if enc.digests.data && len > 0 {
            DIGEST_LEN
        } else {
            0
        };
        let align = (enc.pda as usize + 1) * 4;
        let pdo = (DATA_HLEN + hd).div_ceil(align) * align;
        let mut fl = flags::LAST_PDU;
        if hd > 0 {
            fl |= flags::HDGSTF;
        }
        if dd > 0 {
            fl |= flags::DDGSTF;
        }
        self.put_hdr(|h| {
            let start = h.len();
            h.put_u8(PduType::C2H_DATA.0);
            h.put_u8(fl);
            h.put_u8(DATA_HLEN as u8);
            h.put_u8(pdo as u8);
            h.put_u32_le((pdo + len + dd) as u32);
            h.put_u16_le(cid);
            h.put_u16_le(0); // TTAG
            h.put_u32_le(0); // DATAO
            h.put_u32_le(len as u32); // DATAL
            h.put_u32_le(0);
            if hd > 0 {
                let c = crc32c(&h[start..start + DATA_HLEN]);
                h.put_u32_le(c);
            }
            h.put_bytes(0, pdo - DATA_HLEN - hd);
        });
        for p in parts {
            self.push_data(p.clone());
        }
        if dd > 0 {
            let d = parts.iter().fold(0, |c, p| crc32c_append(c, p));
            self.put_hdr(|h| h.put_u32_le(d));
        }
    }

    fn io(&mut self, cid: u16, backend: Arc<Backend>, op: IoOp, guard: GateGuard) {
        self.io.push((cid, backend, op, guard));
    }

    fn close(&mut self) {
        self.close = true;
    }

    fn unsent_completions(&self) -> usize {
        self.cqe_ends.len()
    }

    fn unsent_bytes(&self) -> usize {
        (self.queued - self.sent) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvmp_wire::pdu::Digests;
    use nvmp_wire::{Cqe, PduConfig, PduDecoder, Role, Status};

    fn drain(tx: &mut TxBuf) -> BytesMut {
        let mut out = BytesMut::new();
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let n = tx.iovecs(&mut iov);
        for s in &iov[..n] {
            out.extend_from_slice(s);
        }
        let len = out.len();
        tx.advance(len);
        out
    }

    /// Scattered C2HData encodes exactly as the wire encoder does it contiguously.
    #[test]
    fn scattered_c2h_matches_wire_encoding_with_digests() {
        for digests in [
            Digests::NONE,
            Digests {
                header: true,
                data: true,
            },
        ] {
            for pda in [0u8, 3] {
                let enc = EncodeOptions { digests, pda };
                let parts = [Bytes::from(vec![1u8; 100]), Bytes::from(vec![2u8; 4096])];
                let mut whole = BytesMut::new();
                whole.extend_from_slice(&parts[0]);
                whole.extend_from_slice(&parts[1]);
                let mut want = BytesMut::new();
                c2h(7, whole.freeze()).encode(enc, &mut want);
                Pdu::CapsuleResp(Cqe::new(7, Status::SUCCESS)).encode(enc, &mut want);
                let mut tx = TxBuf::default();
                tx.c2h_data(7, &parts, enc);
                tx.send(Pdu::CapsuleResp(Cqe::new(7, Status::SUCCESS)), enc);
                assert_eq!(tx.unsent_completions(), 1);
                assert_eq!(tx.unsent_bytes(), want.len());
                let got = drain(&mut tx);
                assert_eq!(&got[..], &want[..]);
                assert_eq!((tx.unsent_completions(), tx.unsent_bytes()), (0, 0));
                let mut dec = PduDecoder::new(PduConfig {
                    digests,
                    ..PduConfig::initial(Role::Host, 1 << 20)
                });
                let mut b = got;
                assert!(matches!(dec.decode(&mut b), Ok(Some(Pdu::C2HData(_)))));
            }
        }
    }

    #[test]
    fn partial_writes_release_completions_in_order() {
        let enc = EncodeOptions::default();
        let mut tx = TxBuf::default();
        for cid in 0..3 {
            tx.send(Pdu::CapsuleResp(Cqe::new(cid, Status::SUCCESS)), enc);
        }
        assert_eq!(tx.unsent_completions(), 3);
        tx.advance(30); // the first (24 bytes) and part of the second
        assert_eq!(tx.unsent_completions(), 2);
        assert_eq!(tx.unsent_bytes(), 42);
        let rest = drain(&mut tx);
        assert_eq!(rest.len(), 42);
        assert!(tx.is_empty());
    }
}
