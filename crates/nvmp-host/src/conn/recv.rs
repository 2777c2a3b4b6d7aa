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
/// faults in steady state). At most `POOL_MAX` are kept; beyond that a
/// buffer is allocated and left to the caller.
pub(super) struct DataPool {
    /// Buffers handed out (empty, sharing their allocation with data that
    /// may still be held), oldest first.
    bufs: VecDeque<BytesMut>,
}

/// Buffers kept per queue (a few MiB at 128 KiB: a queue's reads in flight
/// whose data the callers still hold need no more than their number).
const POOL_MAX: usize = 32;

impl DataPool {
    pub fn new() -> Self {
        Self {
            bufs: VecDeque::new(),
        }
    }

    /// An empty buffer with room for `len` bytes: a kept one whose data
    /// were all dropped, else a new one.
    pub fn take(&mut self, len: usize) -> BytesMut {
        // The oldest first: most likely dropped by now.
        for i in 0..self.bufs.len() {
            if self.bufs[i].try_reclaim(len) {
                if let Some(b) = self.bufs.remove(i) {
                    return b;
                }
            }
        }
        BytesMut::with_capacity(len)
    }

    /// Hand out what `b` holds; keep `b` (sharing its allocation) for reuse.
    pub fn freeze(&mut self, mut b: BytesMut) -> Bytes {
        let data = b.split().freeze();
        if self.bufs.len() == POOL_MAX {
            self.bufs.pop_front();
        }
        self.bufs.push_back(b);
        data
    }
}
