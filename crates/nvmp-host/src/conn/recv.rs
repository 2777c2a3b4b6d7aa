//! The receiving side of a queue: the receive buffer (read data are
//! zero-copy slices of it) and the pool of buffers that large read
//! payloads are read into directly ([`crate::queue::Direct`]).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// The receive buffer of a queue. Read data are handed out as zero-copy
/// slices of it, so a full buffer cannot be reused while some of its data
/// are still held: it is retired, and reused once they are all dropped
/// (no allocation in steady state).
pub(super) struct RecvBuf {
    /// Size of a buffer (`READ_CHUNK_ADMIN`, or from `READ_CHUNK` up to
    /// `max`).
    chunk: usize,
    max: usize,
    pub buf: BytesMut,
    /// Earlier buffers, oldest first, some of whose data may still be held.
    retired: VecDeque<BytesMut>,
}

/// Retired receive buffers kept per queue for reuse (so at most three
/// buffers of about a chunk each per queue, two of them only once data
/// were still held when the current one filled up: 768 KiB per I/O queue,
/// 3 MiB on a queue that moves large transfers).
const RETIRED_MAX: usize = 2;

impl RecvBuf {
    pub fn new(chunk: usize, max: usize) -> Self {
        Self {
            chunk,
            max,
            buf: BytesMut::with_capacity(chunk),
            retired: VecDeque::with_capacity(RETIRED_MAX + 1),
        }
    }

    /// Make room for the next read: at least a quarter of a buffer.
    pub fn make_room(&mut self) {
        let chunk = self.chunk;
        let buf = &mut self.buf;
        if buf.capacity() - buf.len() >= chunk / 4 {
            return;
        }
        // Room for a partial PDU kept at the front, and then some.
        let want = chunk / 2;
        if buf.try_reclaim(want) {
            return;
        }
        let len = buf.len();
        // A partial PDU of an eighth of a buffer or more when the buffer
        // filled up: PDUs are large here, take in more of them per read.
        if len >= chunk / 8 && chunk < self.max {
            self.chunk = (chunk * 2).min(self.max);
        }
        let (chunk, want) = (self.chunk, self.chunk / 2);
        let reuse = self
            .retired
            .iter_mut()
            .position(|r| r.try_reclaim(len + want));
        let mut next = match reuse {
            Some(i) => self.retired.remove(i).unwrap_or_default(),
            None => BytesMut::with_capacity(chunk.max(len + want)),
        };
        // The partial PDU at the end of the old buffer.
        next.extend_from_slice(buf);
        let mut old = std::mem::replace(buf, next);
        old.clear();
        if self.retired.len() == RETIRED_MAX {
            self.retired.pop_front();
        }
        self.retired.push_back(old);
    }
}

/// Buffers that large read payloads are read into, one per command,
/// recycled once the caller has dropped the data (no allocation, no page
/// faults in steady state). At most `POOL_MAX` buffers and `POOL_BYTES`
/// are kept; beyond that a buffer is allocated and left to the caller.
pub(super) struct DataPool {
    /// Buffers handed out (empty, sharing their allocation with data that
    /// may still be held) and their sizes, oldest first.
    bufs: VecDeque<(BytesMut, usize)>,
    /// Sum of their sizes.
    bytes: usize,
}

/// Buffers kept per queue: 32 at 128 KiB (a queue's reads whose data the
/// callers still hold need no more), 4 at 1 MiB.
const POOL_MAX: usize = 32;
const POOL_BYTES: usize = 4 << 20;

impl DataPool {
    pub fn new() -> Self {
        Self {
            bufs: VecDeque::new(),
            bytes: 0,
        }
    }

    /// An empty buffer with room for `len` bytes: a kept one whose data
    /// were all dropped, else a new one.
    pub fn take(&mut self, len: usize) -> BytesMut {
        // The oldest first: most likely dropped by now.
        for i in 0..self.bufs.len() {
            if self.bufs[i].0.try_reclaim(len) {
                if let Some((b, size)) = self.bufs.remove(i) {
                    self.bytes -= size;
                    return b;
                }
            }
        }
        BytesMut::with_capacity(len)
    }

    /// Hand out what `b` holds; keep `b` (sharing its allocation) for reuse.
    pub fn freeze(&mut self, mut b: BytesMut) -> Bytes {
        let size = b.capacity();
        let data = b.split().freeze();
        if size > POOL_BYTES {
            return data;
        }
        while self.bufs.len() == POOL_MAX || self.bytes + size > POOL_BYTES {
            match self.bufs.pop_front() {
                Some((_, n)) => self.bytes -= n,
                None => break,
            }
        }
        self.bufs.push_back((b, size));
        self.bytes += size;
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buffers come back once their data are dropped, not before; the pool
    /// stays within its bounds.
    #[test]
    fn pool_reuses_dropped_buffers_within_bounds() {
        let mut p = DataPool::new();
        let mut b = p.take(1000);
        b.extend_from_slice(&[7; 1000]);
        let ptr = b.as_ptr();
        let held = p.freeze(b);
        let b2 = p.take(1000);
        assert_ne!(b2.as_ptr(), ptr, "data still held: a new buffer");
        drop(held);
        let mut b3 = p.take(1000);
        assert_eq!(b3.as_ptr(), ptr, "data dropped: the buffer is reused");
        b3.extend_from_slice(&[1; 1000]);
        assert_eq!(&p.freeze(b3)[..], &[1; 1000][..]);
        drop(b2);
        // Large buffers: at most POOL_BYTES kept.
        let mut held = Vec::new();
        for _ in 0..10 {
            let mut b = p.take(1 << 20);
            b.extend_from_slice(&vec![3; 1 << 20]);
            held.push(p.freeze(b));
        }
        assert!(p.bytes <= POOL_BYTES && p.bufs.len() <= POOL_MAX);
        assert_eq!(p.bufs.len(), 4);
        // Many small ones: at most POOL_MAX.
        for _ in 0..100 {
            let mut b = p.take(100);
            b.extend_from_slice(&[5; 100]);
            held.push(p.freeze(b));
        }
        assert!(p.bufs.len() <= POOL_MAX);
        assert!(held.iter().all(|d| d.iter().all(|&x| x == d[0])));
    }
}
