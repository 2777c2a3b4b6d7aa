//! Runs validated operations on a [`BlockDevice`]: splits them to the
//! device's transfer limits (chunks run concurrently) and handles requests
//! that are not aligned to the device block size.
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

use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::RwLock;
use tokio::task::JoinSet;

use crate::codec::{Op, ReplyBody};
use crate::device::{BlockDevice, IoError, IoErrorKind};

/// Device calls one request keeps in flight at most when split.
const MAX_PARALLEL_CHUNKS: usize = 16;

pub(crate) struct Executor<D> {
    dev: Arc<D>,
    bs: u64,
    max_xfer: u64,
    max_discard: u64,
    rmw: RwLock<()>,
}

impl<D: BlockDevice> Executor<D> {
    pub(crate) fn new(dev: Arc<D>) -> Self {
        let bs = u64::from(dev.block_size().max(1));
        let whole = |n: u32| (u64::from(n) - u64::from(n) % bs).max(bs);
        Executor {
            max_xfer: whole(dev.max_transfer_bytes()),
            max_discard: whole(dev.max_discard_bytes()),
            bs,
            dev,
            rmw: RwLock::new(()),
        }
    }

    pub(crate) async fn run(self: &Arc<Self>, op: Op) -> Result<ReplyBody, IoError> {
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

    async fn read(self: &Arc<Self>, offset: u64, len: u64) -> Result<Bytes, IoError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let (start, end) = (self.down(offset), self.up(offset + len));
        let data = self.read_aligned(start, end).await?;
        let skip = (offset - start) as usize;
        Ok(data.slice(skip..skip + len as usize))
    }

    async fn read_aligned(self: &Arc<Self>, start: u64, end: u64) -> Result<Bytes, IoError> {
        let ranges = split(start, end, self.max_xfer);
        let total = (end - start) as usize;
        let parts = self
            .chunks(ranges, |dev, (o, l)| async move {
                let data = dev.read(o, l).await?;
                if data.len() != l as usize {
                    return Err(IoError::new(
                        IoErrorKind::Io,
                        "device returned a short read",
                    ));
                }
                Ok(data)
            })
            .await?;
        if parts.len() == 1 {
            return Ok(parts.into_iter().next().expect("one part"));
        }
        let mut buf = BytesMut::with_capacity(total);
        for p in parts {
            buf.extend_from_slice(&p);
        }
        Ok(buf.freeze())
    }

    async fn write(self: &Arc<Self>, offset: u64, data: Bytes, fua: bool) -> Result<(), IoError> {
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
    async fn rmw_locked(
        self: &Arc<Self>,
        offset: u64,
        data: Bytes,
        fua: bool,
    ) -> Result<(), IoError> {
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

    async fn write_aligned(
        self: &Arc<Self>,
        offset: u64,
        data: Bytes,
        fua: bool,
    ) -> Result<(), IoError> {
        let items: Vec<(u64, Bytes)> = split(offset, offset + data.len() as u64, self.max_xfer)
            .into_iter()
            .map(|(o, l)| {
                let at = (o - offset) as usize;
                (o, data.slice(at..at + l as usize))
            })
            .collect();
        self.chunks(items, move |dev, (o, d)| async move {
            dev.write(o, d, fua).await
        })
        .await?;
        Ok(())
    }

    async fn trim(self: &Arc<Self>, offset: u64, len: u64, fua: bool) -> Result<(), IoError> {
        let (start, end) = (self.up(offset), self.down(offset + len));
        if start >= end {
            return Ok(());
        }
        let _shared = self.rmw.read().await;
        let ranges = split(start, end, self.max_discard);
        self.chunks(ranges, |dev, (o, l)| async move { dev.trim(o, l).await })
            .await?;
        self.flush_if(fua).await
    }

    async fn zero(
        self: &Arc<Self>,
        offset: u64,
        len: u64,
        fua: bool,
        may_trim: bool,
    ) -> Result<(), IoError> {
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

    async fn zero_aligned(
        self: &Arc<Self>,
        start: u64,
        end: u64,
        may_trim: bool,
    ) -> Result<(), IoError> {
        let ranges = split(start, end, self.max_discard);
        self.chunks(ranges, move |dev, (o, l)| async move {
            dev.write_zeroes(o, l, may_trim).await
        })
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

    /// Runs `f` on every item, at most [`MAX_PARALLEL_CHUNKS`] at a time;
    /// results in item order. The first error wins (the rest are dropped).
    async fn chunks<I, T, F, Fut>(&self, items: Vec<I>, f: F) -> Result<Vec<T>, IoError>
    where
        I: Send + 'static,
        T: Send + 'static,
        F: Fn(Arc<D>, I) -> Fut,
        Fut: Future<Output = Result<T, IoError>> + Send + 'static,
    {
        if items.len() == 1 {
            let item = items.into_iter().next().expect("one item");
            return Ok(vec![f(self.dev.clone(), item).await?]);
        }
        let mut results: Vec<Option<T>> = (0..items.len()).map(|_| None).collect();
        let mut pending = items.into_iter().enumerate();
        let mut set = JoinSet::new();
        loop {
            while set.len() < MAX_PARALLEL_CHUNKS {
                let Some((i, item)) = pending.next() else {
                    break;
                };
                let fut = f(self.dev.clone(), item);
                set.spawn(async move { (i, fut.await) });
            }
            match set.join_next().await {
                None => break,
                Some(Ok((i, r))) => results[i] = Some(r?),
                Some(Err(e)) => {
                    return Err(IoError::new(
                        IoErrorKind::Io,
                        format!("device task failed: {e}"),
                    ))
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every chunk completed"))
            .collect())
    }
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

/// Splits `start..end` into pieces of at most `max` bytes.
fn split(start: u64, end: u64, max: u64) -> Vec<(u64, u32)> {
    let mut v = Vec::with_capacity(((end - start) / max + 1) as usize);
    let mut o = start;
    while o < end {
        let l = (end - o).min(max);
        v.push((o, l as u32));
        o += l;
    }
    v
}
