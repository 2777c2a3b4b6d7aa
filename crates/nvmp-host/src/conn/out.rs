//! The outgoing side of a queue: a batch of PDUs written with as few
//! vectored writes as possible. Headers (and digests, and payloads too
//! small to be worth an I/O vector entry) are encoded into one reusable
//! buffer; payloads go out as the `Bytes` they are, never copied.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use nvmp_wire::pdu::{EncodeOptions, PduType, CAPSULE_CMD_HLEN, CH_LEN};
use nvmp_wire::Pdu;
use tokio::io::AsyncWrite;

use crate::transport::BoxWrite;

/// Payloads up to this size are copied next to their header (cheaper than
/// an I/O vector entry of their own).
const COPY_MAX: usize = 256;
/// I/O vector entries per `writev` (Linux's UIO_MAXIOV is 1024).
const MAX_IOV: usize = 64;
/// The common header of a capsule without data or header digest: type, no
/// flags, HLEN 72, PDO 0, PLEN 72.
const CAPSULE_CH: [u8; CH_LEN] = [
    PduType::CAPSULE_CMD.0,
    0,
    CAPSULE_CMD_HLEN as u8,
    0,
    CAPSULE_CMD_HLEN as u8,
    0,
    0,
    0,
];
/// Segments written with a small I/O vector.
const SMALL_IOV: usize = 4;

#[derive(Debug)]
enum Seg {
    /// `head[start..end]`
    Head(usize, usize),
    Data(Bytes),
}

impl Seg {
    fn len(&self) -> usize {
        match self {
            Seg::Head(s, e) => e - s,
            Seg::Data(b) => b.len(),
        }
    }
}

/// A batch of encoded PDUs waiting to be written. Buffers are kept and
/// reused: no allocation per batch in steady state.
#[derive(Debug)]
pub(crate) struct OutBatch {
    head: BytesMut,
    /// Start of the header bytes not yet covered by a segment.
    mark: usize,
    segs: Vec<Seg>,
    /// Bytes in `segs`.
    seg_bytes: usize,
    /// Where a write that waited for the socket stopped: segment, offset.
    at: (usize, usize),
}

impl OutBatch {
    pub fn new() -> Self {
        Self {
            head: BytesMut::with_capacity(16 * 1024),
            mark: 0,
            segs: Vec::with_capacity(2 * MAX_IOV),
            seg_bytes: 0,
            at: (0, 0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.segs.is_empty()
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.seg_bytes + (self.head.len() - self.mark)
    }

    /// Encode `pdu` at the end of the batch.
    pub fn push(&mut self, pdu: &Pdu, enc: EncodeOptions) {
        // The usual command (a read, a flush): a capsule without data or
        // header digest is its common header and the SQE, nothing to work
        // out (the same bytes as `encode_head`; tests below).
        if let Pdu::CapsuleCmd { sqe, data } = pdu {
            if data.is_empty() && !enc.digests.header {
                self.head.reserve(CAPSULE_CMD_HLEN);
                self.head.extend_from_slice(&CAPSULE_CH);
                self.head.extend_from_slice(&sqe.to_bytes());
                return;
            }
        }
        let ddgst = pdu.encode_head(enc, &mut self.head);
        if let Some(d) = pdu.data() {
            if d.len() <= COPY_MAX {
                self.head.extend_from_slice(d);
            } else {
                self.close_head();
                self.seg_bytes += d.len();
                self.segs.push(Seg::Data(d.clone()));
            }
        }
        if let Some(dd) = ddgst {
            self.head.extend_from_slice(&dd);
        }
    }

    fn close_head(&mut self) {
        let end = self.head.len();
        if end > self.mark {
            self.segs.push(Seg::Head(self.mark, end));
            self.seg_bytes += end - self.mark;
            self.mark = end;
        }
    }

    /// Write everything queued, `MAX_IOV` segments per system call.
    #[cfg(test)]
    pub async fn flush(&mut self, w: &mut BoxWrite) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_flush(w, cx)).await
    }

    /// Write everything queued, `MAX_IOV` segments per system call, going
    /// on from where the last poll stopped. Ready: all written (the batch
    /// is then empty) or failed (the batch is dropped).
    pub fn poll_flush(&mut self, w: &mut BoxWrite, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close_head();
        let r = self.poll_write_all(w, cx);
        if r.is_ready() {
            self.clear();
        }
        r
    }

    pub fn clear(&mut self) {
        self.head.clear();
        self.mark = 0;
        self.segs.clear();
        self.seg_bytes = 0;
        self.at = (0, 0);
    }

    /// I/O vector entries for the segments from `i` (the first from
    /// `off`), as many as fit; returns how many.
    fn fill_iov<'a>(&'a self, i: usize, off: usize, iov: &mut [IoSlice<'a>]) -> usize {
        let mut k = 0;
        for (j, seg) in self.segs[i..].iter().take(iov.len()).enumerate() {
            let s: &[u8] = match seg {
                Seg::Head(a, b) => &self.head[*a..*b],
                Seg::Data(d) => d,
            };
            iov[k] = IoSlice::new(if j == 0 { &s[off..] } else { s });
            k += 1;
        }
        k
    }

    fn poll_write_all(&mut self, w: &mut BoxWrite, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Position: segment index and offset inside it.
        let (mut i, mut off) = self.at;
        while i < self.segs.len() {
            // A small vector for the usual few segments (filling 64 entries
            // costs more than the rest of the write's user-space work).
            let r = if self.segs.len() - i <= SMALL_IOV {
                let mut iov = [IoSlice::new(&[]); SMALL_IOV];
                let k = self.fill_iov(i, off, &mut iov);
                Pin::new(&mut *w).poll_write_vectored(cx, &iov[..k])
            } else {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let k = self.fill_iov(i, off, &mut iov);
                Pin::new(&mut *w).poll_write_vectored(cx, &iov[..k])
            };
            let mut n = match r {
                Poll::Ready(r) => r?,
                Poll::Pending => {
                    self.at = (i, off);
                    return Poll::Pending;
                }
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            // Advance past what was written.
            while n > 0 && i < self.segs.len() {
                let left = self.segs[i].len() - off;
                if n >= left {
                    n -= left;
                    i += 1;
                    off = 0;
                } else {
                    off += n;
                    n = 0;
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvmp_wire::pdu::{DataHeader, DataPdu};
    use nvmp_wire::{Digests, Sqe};
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::AsyncWrite;

    /// Accepts at most `max` bytes per write and records them.
    struct Trickle {
        max: usize,
        got: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }
    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.max);
            self.got.lock().unwrap().extend_from_slice(&buf[..n]);
            self.calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut left = self.max;
            let mut g = self.got.lock().unwrap();
            for b in bufs {
                let n = b.len().min(left);
                g.extend_from_slice(&b[..n]);
                left -= n;
                if left == 0 {
                    break;
                }
            }
            self.calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Poll::Ready(Ok(self.max - left))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn pdus() -> Vec<Pdu> {
        let mut v = Vec::new();
        for i in 0..100u16 {
            let len = [0usize, 16, 4096, 300][i as usize % 4];
            let data = Bytes::from((0..len).map(|b| (b as u8) ^ i as u8).collect::<Vec<_>>());
            v.push(if i % 3 == 0 {
                Pdu::H2CData(DataPdu {
                    header: DataHeader {
                        cccid: i,
                        ttag: 1,
                        offset: 0,
                        length: data.len() as u32,
                    },
                    last: true,
                    success: false,
                    data,
                })
            } else {
                let mut sqe = Sqe {
                    cid: i,
                    nsid: 0x0102_0304 ^ i as u32,
                    ..Sqe::default()
                };
                sqe.cdw10 = 0xdead_0000 | i as u32;
                sqe.cdw15 = !(i as u32);
                Pdu::CapsuleCmd { sqe, data }
            });
        }
        v
    }

    /// The batch's bytes are exactly the PDUs' encodings one after the
    /// other, however the writes are cut, and with digests.
    #[tokio::test]
    async fn batch_equals_concatenated_encodings() {
        for digests in [
            Digests::default(),
            Digests {
                header: true,
                data: true,
            },
        ] {
            let enc = EncodeOptions { digests, pda: 0 };
            let mut want = BytesMut::new();
            for p in pdus() {
                p.encode(enc, &mut want);
            }
            for max in [1usize, 7, 100, 4096, 1 << 20] {
                let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let mut w: BoxWrite = Box::new(Trickle {
                    max,
                    got: got.clone(),
                    calls: calls.clone(),
                });
                let mut b = OutBatch::new();
                for p in pdus() {
                    b.push(&p, enc);
                }
                assert_eq!(b.len(), want.len());
                b.flush(&mut w).await.unwrap();
                assert!(b.is_empty());
                assert_eq!(&got.lock().unwrap()[..], &want[..], "max {max}");
                if max == 1 << 20 {
                    // 100 PDUs, 25 payloads > COPY_MAX each with their own
                    // entry: a handful of writev calls, not one per PDU.
                    let n = calls.load(std::sync::atomic::Ordering::Relaxed);
                    assert!(n <= 2, "{n} writes for one batch");
                }
            }
        }
    }
}
