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
use nvmp_wire::pdu::{
    flags, DataHeader, DataPdu, EncodeOptions, PduType, CAPSULE_RESP_HLEN, DATA_HLEN, DIGEST_LEN,
};
use nvmp_wire::{Cqe, Pdu};

use super::ccr::GateGuard;
use super::types::Output;
use crate::backend::{ram, Backend, IoOp};

/// Receiver of a queue's outputs.
pub trait Sink {
    /// Send a PDU.
    fn send(&mut self, pdu: Pdu, enc: EncodeOptions);
    /// Send one C2HData PDU (LAST) for `cid` whose data is `parts` in order;
    /// the parts are taken (`parts` is left empty, its capacity kept).
    fn c2h_data(&mut self, cid: u16, parts: &mut Vec<Bytes>, enc: EncodeOptions);
    /// Send a CapsuleResp.
    fn cqe(&mut self, cqe: Cqe, enc: EncodeOptions) {
        self.send(Pdu::CapsuleResp(cqe), enc);
    }
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
    fn c2h_data(&mut self, cid: u16, parts: &mut Vec<Bytes>, _enc: EncodeOptions) {
        let mut b = BytesMut::new();
        for p in parts.drain(..) {
            b.extend_from_slice(&p);
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

/// Header bytes already sent that are dropped from the front of the header
/// buffer (when it did not empty meanwhile).
const HEADER_COMPACT: usize = 64 * 1024;
/// Most slices handed to one vectored write.
pub const MAX_IOV: usize = 256;

/// One queued slice: header bytes (a range of the header buffer) or data.
#[derive(Debug)]
enum Seg {
    Hdr(usize, usize),
    Data(Bytes),
    /// Read data not yet loaded into the cache ([`ram::warm`]).
    Cold(Bytes),
}

/// The driver's transmit buffer.
#[derive(Debug, Default)]
pub struct TxBuf {
    /// Header bytes of queued PDUs, back to back; `Seg::Hdr` ranges index
    /// it. Cleared whenever everything was sent (so it is reused, and no
    /// reference is taken per PDU).
    hdr: BytesMut,
    /// Start of the header bytes not yet in a segment.
    open: usize,
    segs: VecDeque<Seg>,
    queued: u64,
    sent: u64,
    /// End positions (in `queued` terms) of queued CapsuleResp PDUs.
    cqe_ends: VecDeque<u64>,
    /// Blocking operations to run.
    pub io: Vec<(u16, Arc<Backend>, IoOp, GateGuard)>,
    pub close: bool,
    /// CapsuleResp PDUs queued so far.
    pub completions: u64,
    /// `Seg::Cold` segments queued.
    cold: usize,
}

impl TxBuf {
    fn seal(&mut self) {
        if self.hdr.len() > self.open {
            self.segs.push_back(Seg::Hdr(self.open, self.hdr.len()));
            self.open = self.hdr.len();
        }
    }

    fn push_data(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.seal();
            self.queued += b.len() as u64;
            self.segs.push_back(Seg::Data(b));
        }
    }

    /// Queue read data, to be loaded into the cache with the rest of the
    /// batch just before it is written ([`TxBuf::iovecs`]) if it is cold.
    fn push_read(&mut self, b: Bytes) {
        if ram::is_cold(&b) && !b.is_empty() {
            self.seal();
            self.queued += b.len() as u64;
            self.segs.push_back(Seg::Cold(b));
            self.cold += 1;
        } else {
            self.push_data(b);
        }
    }

    /// Load the cold read data among the first `n` segments into the
    /// cache, [`ram::WARM_BATCH`] slices at a time ([`ram::warm`]), and mark
    /// it warm.
    fn warm(&mut self, n: usize) {
        if self.cold == 0 {
            return;
        }
        let mut batch: [&[u8]; ram::WARM_BATCH] = [&[]; ram::WARM_BATCH];
        let mut k = 0;
        for s in self.segs.iter().take(n) {
            if let Seg::Cold(b) = s {
                batch[k] = b;
                k += 1;
                if k == batch.len() {
                    ram::warm(&batch);
                    k = 0;
                }
            }
        }
        if k > 0 {
            ram::warm(&batch[..k]);
        }
        for s in self.segs.iter_mut().take(n) {
            if let Seg::Cold(b) = s {
                *s = Seg::Data(std::mem::take(b));
                self.cold -= 1;
            }
        }
    }

    /// Append header bytes (counted).
    fn put(&mut self, b: &[u8]) {
        self.hdr.extend_from_slice(b);
        self.queued += b.len() as u64;
    }

    /// Append header bytes encoded by `f` (counted).
    fn put_hdr(&mut self, f: impl FnOnce(&mut BytesMut)) {
        let before = self.hdr.len();
        f(&mut self.hdr);
        self.queued += (self.hdr.len() - before) as u64;
    }

    /// The header of a C2HData PDU (LAST) of `len` bytes for `cid`, up to
    /// its data; returns whether a data digest must follow the data.
    fn c2h_head(&mut self, cid: u16, len: usize, enc: EncodeOptions) -> bool {
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
        let mut h = [0u8; DATA_HLEN + DIGEST_LEN];
        h[0] = PduType::C2H_DATA.0;
        h[1] = fl;
        h[2] = DATA_HLEN as u8;
        h[3] = pdo as u8;
        h[4..8].copy_from_slice(&((pdo + len + dd) as u32).to_le_bytes());
        h[8..10].copy_from_slice(&cid.to_le_bytes());
        // TTAG, DATAO 0; DATAL; reserved.
        h[16..20].copy_from_slice(&(len as u32).to_le_bytes());
        if hd > 0 {
            let c = crc32c(&h[..DATA_HLEN]);
            h[DATA_HLEN..].copy_from_slice(&c.to_le_bytes());
        }
        self.put(&h[..DATA_HLEN + hd]);
        if pdo > DATA_HLEN + hd {
            self.put_hdr(|b| b.put_bytes(0, pdo - DATA_HLEN - hd));
        }
        dd > 0
    }

    /// Nothing left to write.
    pub fn is_empty(&self) -> bool {
        self.queued == self.sent
    }

    /// How many slices [`TxBuf::iovecs`] would give (all of them).
    pub fn segments(&mut self) -> usize {
        self.seal();
        self.segs.len()
    }

    /// Fill `iov` with the queued slices, in order; returns how many.
    /// Cold read data among them is loaded into the cache first, as one
    /// batch ([`ram::warm`]).
    pub fn iovecs<'a>(&'a mut self, iov: &mut [IoSlice<'a>]) -> usize {
        self.seal();
        self.warm(iov.len());
        let mut n = 0;
        for (s, slot) in self.segs.iter().zip(iov.iter_mut()) {
            *slot = IoSlice::new(match s {
                Seg::Hdr(a, b) => &self.hdr[*a..*b],
                Seg::Data(d) | Seg::Cold(d) => d,
            });
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
            let len = match front {
                Seg::Hdr(a, b) => *b - *a,
                Seg::Data(d) | Seg::Cold(d) => d.len(),
            };
            if len <= n {
                n -= len;
                self.segs.pop_front();
            } else {
                match front {
                    Seg::Hdr(a, _) => *a += n,
                    Seg::Data(d) | Seg::Cold(d) => bytes::Buf::advance(d, n),
                }
                n = 0;
            }
        }
        while self.cqe_ends.front().is_some_and(|e| *e <= self.sent) {
            self.cqe_ends.pop_front();
        }
        self.reclaim();
    }

    /// Reuse the header buffer: from its start once everything was sent,
    /// else drop the sent header bytes from its front now and then.
    fn reclaim(&mut self) {
        // Unsent header bytes begin at the first header segment (headers
        // were sealed: none is outside a segment).
        let first = self.segs.iter().find_map(|s| match s {
            Seg::Hdr(a, _) => Some(*a),
            Seg::Data(_) | Seg::Cold(_) => None,
        });
        match first {
            None => {
                self.hdr.clear();
                self.open = 0;
            }
            Some(sent) if sent >= HEADER_COMPACT => {
                bytes::Buf::advance(&mut self.hdr, sent);
                self.open -= sent;
                for s in &mut self.segs {
                    if let Seg::Hdr(a, b) = s {
                        *a -= sent;
                        *b -= sent;
                    }
                }
            }
            Some(_) => {}
        }
    }

    /// Take every unsent slice out (fault injection delays them as a batch).
    pub fn take_all(&mut self) -> Vec<Bytes> {
        self.seal();
        let hdr = &self.hdr;
        let v: Vec<Bytes> = self
            .segs
            .drain(..)
            .map(|s| match s {
                Seg::Hdr(a, b) => Bytes::copy_from_slice(&hdr[a..b]),
                Seg::Data(d) | Seg::Cold(d) => d,
            })
            .collect();
        self.sent = self.queued;
        self.cold = 0;
        self.cqe_ends.clear();
        self.reclaim();
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
                let dd = self.c2h_head(d.header.cccid, d.data.len(), enc);
                self.push_data(d.data.clone());
                if dd {
                    let c = crc32c(&d.data);
                    self.put(&c.to_le_bytes());
                }
            }
            Pdu::CapsuleResp(c) => self.cqe(*c, enc),
            _ => self.put_hdr(|h| pdu.encode(enc, h)),
        }
    }

    fn c2h_data(&mut self, cid: u16, parts: &mut Vec<Bytes>, enc: EncodeOptions) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let dd = self.c2h_head(cid, len, enc);
        let digest = dd.then(|| parts.iter().fold(0, |c, p| crc32c_append(c, p)));
        for p in parts.drain(..) {
            self.push_read(p);
        }
        if let Some(d) = digest {
            self.put(&d.to_le_bytes());
        }
    }

    fn cqe(&mut self, cqe: Cqe, enc: EncodeOptions) {
        let hd = if enc.digests.header { DIGEST_LEN } else { 0 };
        let mut h = [0u8; CAPSULE_RESP_HLEN + DIGEST_LEN];
        h[0] = PduType::CAPSULE_RESP.0;
        h[1] = if hd > 0 { flags::HDGSTF } else { 0 };
        h[2] = CAPSULE_RESP_HLEN as u8;
        // PDO 0
        h[4..8].copy_from_slice(&((CAPSULE_RESP_HLEN + hd) as u32).to_le_bytes());
        h[8..CAPSULE_RESP_HLEN].copy_from_slice(&cqe.to_bytes());
        if hd > 0 {
            let c = crc32c(&h[..CAPSULE_RESP_HLEN]);
            h[CAPSULE_RESP_HLEN..].copy_from_slice(&c.to_le_bytes());
        }
        self.put(&h[..CAPSULE_RESP_HLEN + hd]);
        self.cqe_ends.push_back(self.queued);
        self.completions += 1;
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
                let whole_copy = whole.clone();
                c2h(7, whole.freeze()).encode(enc, &mut want);
                Pdu::CapsuleResp(Cqe::new(7, Status::SUCCESS)).encode(enc, &mut want);
                let mut tx = TxBuf::default();
                let mut v = parts.to_vec();
                tx.c2h_data(7, &mut v, enc);
                assert!(v.is_empty());
                tx.cqe(Cqe::new(7, Status::SUCCESS), enc);
                assert_eq!(tx.unsent_completions(), 1);
                assert_eq!(tx.unsent_bytes(), want.len());
                let got = drain(&mut tx);
                assert_eq!(&got[..], &want[..]);
                // The same through the generic path (whole PDUs).
                let mut tx2 = TxBuf::default();
                tx2.send(c2h(7, Bytes::copy_from_slice(&whole_copy)), enc);
                tx2.send(Pdu::CapsuleResp(Cqe::new(7, Status::SUCCESS)), enc);
                assert_eq!(tx2.unsent_completions(), 1);
                assert_eq!(&drain(&mut tx2)[..], &want[..]);
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

    /// Many PDUs written in pieces of every size: the bytes come out as
    /// encoded, in order, while the header buffer is reused and compacted.
    #[test]
    fn partial_writes_of_a_long_stream_keep_every_byte() {
        let enc = EncodeOptions::default();
        let mut tx = TxBuf::default();
        let mut want = BytesMut::new();
        let mut got = BytesMut::new();
        let data = Bytes::from((0..4096u32).map(|i| i as u8).collect::<Vec<u8>>());
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..4000u32 {
            let cid = round as u16;
            let n = (round % 3) as usize; // 0..2 data parts
            let mut parts: Vec<Bytes> = (0..n).map(|k| data.slice(k * 100..4096)).collect();
            if n > 0 {
                let mut whole = BytesMut::new();
                for p in &parts {
                    whole.extend_from_slice(p);
                }
                c2h(cid, whole.freeze()).encode(enc, &mut want);
                tx.c2h_data(cid, &mut parts, enc);
            }
            Pdu::CapsuleResp(Cqe::new(cid, Status::SUCCESS)).encode(enc, &mut want);
            tx.cqe(Cqe::new(cid, Status::SUCCESS), enc);
            // Write a pseudo-random share of what is queued (sometimes all).
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let k = tx.iovecs(&mut iov);
            let avail: usize = iov[..k].iter().map(|s| s.len()).sum();
            let w = if x.is_multiple_of(4) {
                avail
            } else {
                (x as usize >> 8) % (avail + 1)
            };
            let mut left = w;
            for s in &iov[..k] {
                let t = left.min(s.len());
                got.extend_from_slice(&s[..t]);
                left -= t;
            }
            tx.advance(w);
            assert_eq!(tx.unsent_bytes(), want.len() - got.len());
        }
        got.extend_from_slice(&drain(&mut tx));
        assert_eq!(got.len(), want.len());
        assert!(got[..] == want[..]);
        assert!(tx.is_empty() && tx.unsent_completions() == 0);
        assert_eq!(
            tx.hdr.len(),
            0,
            "the header buffer is reused once all was sent"
        );
    }

    /// Read data is queued cold and warmed when a write is about to take
    /// it, only as far as the vectored write reaches; the bytes are as
    /// queued either way.
    #[test]
    fn cold_read_data_is_warmed_as_far_as_each_write_reaches() {
        let enc = EncodeOptions::default();
        let mut tx = TxBuf::default();
        let mut want = BytesMut::new();
        for cid in 0..40u16 {
            let part = Bytes::from(vec![cid as u8; 4096]);
            c2h(cid, part.clone()).encode(enc, &mut want);
            tx.c2h_data(cid, &mut vec![part], enc);
        }
        // Large and empty data is never cold.
        c2h(40, Bytes::from(vec![9u8; 65536])).encode(enc, &mut want);
        tx.c2h_data(40, &mut vec![Bytes::from(vec![9u8; 65536])], enc);
        assert_eq!(tx.cold, 40);
        let mut got = BytesMut::new();
        while !tx.is_empty() {
            let mut iov = [IoSlice::new(&[]); 9];
            let n = tx.iovecs(&mut iov);
            let w: usize = iov[..n].iter().map(|s| s.len()).sum();
            for s in &iov[..n] {
                got.extend_from_slice(s);
            }
            // None cold among what the write took; the rest still cold.
            assert!(tx.segs.iter().take(n).all(|s| !matches!(s, Seg::Cold(_))));
            let rest = tx.segs.iter().filter(|s| matches!(s, Seg::Cold(_)));
            assert_eq!(rest.count(), tx.cold);
            tx.advance(w);
        }
        assert_eq!(tx.cold, 0);
        assert!(got[..] == want[..]);
        // Slices taken out whole (fault injection) leave nothing cold.
        tx.c2h_data(1, &mut vec![Bytes::from(vec![1u8; 512])], enc);
        assert_eq!(tx.cold, 1);
        assert_eq!(tx.take_all().len(), 2);
        assert_eq!(tx.cold, 0);
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
