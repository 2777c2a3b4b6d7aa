//! Runs validated operations on a [`BlockDevice`]: splits them to the
//! device's transfer limits (the only place a request is split; chunks run
//! concurrently as futures of the request, no task is spawned) and handles
//! requests that are not aligned to the device block size. Read chunks are
//! returned as they are, never concatenated: the reply sends them in order.
//!
//! Alignment policy: the export advertises the device block size as the
//! NBD minimum block size, so well-behaved clients (qemu, libnbd, the
//! kernel) only send aligned requests. Clients that did not negotiate block
//! sizes may legally send unaligned ones ("a server SHOULD support a default
//! minimum block size of 1"), so they are served anyway:
//! - reads: the covering aligned range is read and sliced;
//! - writes and write-zeroes: read-modify-write of the partial edge
//!   blocks, under an export-wide exclusive lock that aligned writes take
//!   shared, so no concurrent write to the same block can be lost;
//! - trims: only the whole blocks inside the range are trimmed (a trim is
//!   a hint; partial blocks keep their data).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use tokio::sync::RwLock;

use crate::codec::{Op, Payload, ReplyBody};
use crate::device::{BlockDevice, IoError, IoErrorKind};

/// Device calls one request keeps in flight at most when split.
const MAX_PARALLEL_CHUNKS: usize = 16;

pub(crate) struct Executor<D> {
    dev: Arc<D>,
    bs: u64,
    rmw: RwLock<()>,
}

impl<D: BlockDevice> Executor<D> {
    pub(crate) fn new(dev: Arc<D>) -> Self {
        Executor {
            bs: u64::from(dev.block_size().max(1)),
            dev,
            rmw: RwLock::new(()),
        }
    }

    /// The device's limits are read per request: a multipath device's
    /// transfer limit can shrink when a path with a smaller one joins.
    fn max_xfer(&self) -> u64 {
        self.whole(self.dev.max_transfer_bytes())
    }

    fn max_discard(&self) -> u64 {
        self.whole(self.dev.max_discard_bytes())
    }

    fn whole(&self, n: u32) -> u64 {
        (u64::from(n) - u64::from(n) % self.bs).max(self.bs)
    }

    pub(crate) async fn run(&self, op: Op) -> Result<ReplyBody, IoError> {
        match op {
            Op::Read { offset, len } => {
                let data = self.read(offset, u64::from(len)).await?;
                Ok(ReplyBody::Data { offset, data })
            }
            Op::Write { offset, data, fua } => self
                .write(offset, data, fua)
                .await
                .map(|()| ReplyBody::Done),
            Op::Flush => self.dev.flush().await.map(|()| ReplyBody::Done),
            Op::Trim { offset, len, fua } => self
                .trim(offset, u64::from(len), fua)
                .await
                .map(|()| ReplyBody::Done),
            Op::WriteZeroes {
                offset,
                len,
                fua,
                may_trim,
            } => self
                .zero(offset, u64::from(len), fua, may_trim)
                .await
                .map(|()| ReplyBody::Done),
            Op::Disconnect => Ok(ReplyBody::Done),
        }
    }

    fn down(&self, x: u64) -> u64 {
        x - x % self.bs
    }

    fn up(&self, x: u64) -> u64 {
        self.down(x + self.bs - 1)
    }

    fn aligned(&self, offset: u64, len: u64) -> bool {
        offset.is_multiple_of(self.bs) && len.is_multiple_of(self.bs)
    }

    async fn read(&self, offset: u64, len: u64) -> Result<Payload, IoError> {
        if len == 0 {
            return Ok(Payload::Empty);
        }
        let (start, end) = (self.down(offset), self.up(offset + len));
        let mut data = self.read_aligned(start, end).await?;
        // Unaligned: drop the head of the first chunk, the tail of the last.
        let skip = (offset - start) as usize;
        let cut = (end - offset - len) as usize;
        if skip != 0 || cut != 0 {
            match &mut data {
                Payload::Empty => {}
                Payload::One(b) => *b = b.slice(skip..b.len() - cut),
                Payload::Many(v) => {
                    let first = &mut v[0];
                    *first = first.slice(skip..);
                    let last = v.last_mut().expect("several chunks");
                    *last = last.slice(..last.len() - cut);
                }
            }
        }
        Ok(data)
    }

    async fn read_aligned(&self, start: u64, end: u64) -> Result<Payload, IoError> {
        let max = self.max_xfer();
        if end - start <= max {
            let data = read_chunk(&*self.dev, start, (end - start) as u32).await?;
            return Ok(Payload::One(data));
        }
        let parts = self
            .chunks(split(start, end, max), |dev, (o, l)| read_chunk(dev, o, l))
            .await?;
        Ok(Payload::Many(parts))
    }

    async fn write(&self, offset: u64, data: Bytes, fua: bool) -> Result<(), IoError> {
        if data.is_empty() {
            return Ok(());
        }
        if self.aligned(offset, data.len() as u64) {
            let _shared = self.rmw.read().await;
            return self.write_aligned(offset, data, fua).await;
        }
        let _exclusive = self.rmw.write().await;
        self.rmw_locked(offset, data, fua).await
    }

    /// Read-modify-write of the blocks covering `offset..offset+len`; the
    /// caller holds the exclusive lock.
    async fn rmw_locked(&self, offset: u64, data: Bytes, fua: bool) -> Result<(), IoError> {
        let end_data = offset + data.len() as u64;
        let (start, end) = (self.down(offset), self.up(end_data));
        let bs = self.bs as usize;
        let mut buf = vec![0u8; (end - start) as usize];
        if offset != start {
            let head = self.dev.read(start, bs as u32).await?;
            check_len(&head, bs)?;
            buf[..bs].copy_from_slice(&head);
        }
        if end_data != end && (offset == start || end - start > self.bs) {
            let tail = self.dev.read(end - self.bs, bs as u32).await?;
            check_len(&tail, bs)?;
            let at = buf.len() - bs;
            buf[at..].copy_from_slice(&tail);
        }
        let at = (offset - start) as usize;
        buf[at..at + data.len()].copy_from_slice(&data);
        self.write_aligned(start, Bytes::from(buf), fua).await
    }

    async fn write_aligned(&self, offset: u64, data: Bytes, fua: bool) -> Result<(), IoError> {
        let max = self.max_xfer();
        if data.len() as u64 <= max {
            return self.dev.write(offset, data, fua).await;
        }
        let items = split(offset, offset + data.len() as u64, max).map(|(o, l)| {
            let at = (o - offset) as usize;
            (o, data.slice(at..at + l as usize))
        });
        self.chunks(items, |dev, (o, d)| dev.write(o, d, fua))
            .await?;
        Ok(())
    }

    async fn trim(&self, offset: u64, len: u64, fua: bool) -> Result<(), IoError> {
        let (start, end) = (self.up(offset), self.down(offset + len));
        if start >= end {
            return Ok(());
        }
        let _shared = self.rmw.read().await;
        let ranges = split(start, end, self.max_discard());
        self.chunks(ranges, |dev, (o, l)| dev.trim(o, l)).await?;
        self.flush_if(fua).await
    }

    async fn zero(&self, offset: u64, len: u64, fua: bool, may_trim: bool) -> Result<(), IoError> {
        if len == 0 {
            return Ok(());
        }
        let end_data = offset + len;
        let (start, end) = (self.up(offset), self.down(end_data));
        if self.aligned(offset, len) {
            let _shared = self.rmw.read().await;
            self.zero_aligned(offset, end_data, may_trim).await?;
            return self.flush_if(fua).await;
        }
        let _exclusive = self.rmw.write().await;
        if start >= end {
            // No whole block inside: plain read-modify-write of zeroes.
            return self
                .rmw_locked(offset, Bytes::from(vec![0u8; len as usize]), fua)
                .await;
        }
        if offset != start {
            let head = Bytes::from(vec![0u8; (start - offset) as usize]);
            self.rmw_locked(offset, head, false).await?;
        }
        if end_data != end {
            let tail = Bytes::from(vec![0u8; (end_data - end) as usize]);
            self.rmw_locked(end, tail, false).await?;
        }
        self.zero_aligned(start, end, may_trim).await?;
        self.flush_if(fua).await
    }

    async fn zero_aligned(&self, start: u64, end: u64, may_trim: bool) -> Result<(), IoError> {
        let ranges = split(start, end, self.max_discard());
        self.chunks(ranges, |dev, (o, l)| dev.write_zeroes(o, l, may_trim))
            .await?;
        Ok(())
    }

    async fn flush_if(&self, fua: bool) -> Result<(), IoError> {
        // Trim and write-zeroes have no FUA on the device: a flush after
        // them gives "persisted to non-volatile storage" before the reply.
        if fua {
            self.dev.flush().await
        } else {
            Ok(())
        }
    }

    /// Runs `f` on every item, at most [`MAX_PARALLEL_CHUNKS`] at a time,
    /// as futures of this request (polled together, no task spawned);
    /// results in item order. The first error wins (the rest are dropped).
    async fn chunks<'a, I, T, F, Fut>(
        &'a self,
        items: impl Iterator<Item = I>,
        f: F,
    ) -> Result<Vec<T>, IoError>
    where
        F: Fn(&'a D, I) -> Fut,
        Fut: Future<Output = Result<T, IoError>> + 'a,
    {
        let mut items = items.enumerate();
        let mut results: Vec<Option<T>> = Vec::new();
        let mut running: Vec<(usize, Pin<Box<Fut>>)> = Vec::with_capacity(MAX_PARALLEL_CHUNKS);
        poll_fn(|cx| loop {
            while running.len() < MAX_PARALLEL_CHUNKS {
                let Some((i, item)) = items.next() else {
                    break;
                };
                results.push(None);
                running.push((i, Box::pin(f(&self.dev, item))));
            }
            if running.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let mut finished = false;
            let mut k = 0;
            while k < running.len() {
                match running[k].1.as_mut().poll(cx) {
                    Poll::Pending => k += 1,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(t)) => {
                        results[running[k].0] = Some(t);
                        running.swap_remove(k);
                        finished = true;
                    }
                }
            }
            if !finished {
                return Poll::Pending;
            }
        })
        .await?;
        Ok(results
            .into_iter()
            .map(|r| r.expect("every chunk completed"))
            .collect())
    }
}

async fn read_chunk<D: BlockDevice>(dev: &D, offset: u64, len: u32) -> Result<Bytes, IoError> {
    let data = dev.read(offset, len).await?;
    check_len(&data, len as usize)?;
    Ok(data)
}

fn check_len(data: &Bytes, want: usize) -> Result<(), IoError> {
    if data.len() == want {
        Ok(())
    } else {
        Err(IoError::new(
            IoErrorKind::Io,
            "device returned a short read",
        ))
    }
}

/// Splits `start..end` into pieces of at most `max` bytes: the one place
/// requests are cut to the device's limits.
fn split(start: u64, end: u64, max: u64) -> impl Iterator<Item = (u64, u32)> {
    (start..end)
        .step_by(max as usize)
        .map(move |o| (o, (end - o).min(max) as u32))
}
