//! The tokio driver of one connection: runs the sans-IO handshake, then
//! the transmission phase, all in the connection's own task:
//! - reads go into one receive buffer; every complete request in it is
//!   parsed after each read, and write payloads are slices of that buffer
//!   (no copy) handed to the device;
//! - requests run as futures of this task (see `slots`), at most
//!   `Limits::max_inflight` of them and `Limits::max_inflight_bytes` of
//!   payload (a request counts until its reply is fully written);
//! - replies are header bytes plus the payload buffers, written with
//!   vectored writes, every ready reply in one syscall (up to
//!   [`MAX_IOVECS`] buffers).

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::codec::{
    encode_reply, validate, Op, Reply, ReplyBody, Request, RequestDecoder, ValidateParams,
};
use crate::device::{BlockDevice, IoError, IoErrorKind};
use crate::handshake::{Handshake, Negotiated, Outcome};
use crate::proto::{CMD_READ, CMD_WRITE};
use crate::server::{bump, Limits, Shared};
use crate::slots::{Finished, Slots};

/// Size of the receive buffer (reallocated once write payloads still in
/// flight share it): many requests per read syscall. Each in-flight write
/// payload keeps its buffer alive, so memory held is at most
/// `max_inflight` of these (plus payloads longer than this).
const RECV_BUF_BYTES: usize = 256 * 1024;
/// Free space below which the receive buffer is grown before a read.
const MIN_READ_BYTES: usize = 16 * 1024;
/// Buffers per vectored write (Linux's IOV_MAX is 1024).
const MAX_IOVECS: usize = 256;

/// Frees the connection slot, then counts the connection as gone: once
/// `connections_active` has dropped, a new client is sure to get the slot.
struct ActiveGuard<'a>(
    &'a std::sync::atomic::AtomicU64,
    Option<OwnedSemaphorePermit>,
);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        drop(self.1.take());
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection holding one of the `max_connections` slots.
pub(crate) async fn serve<D, S>(shared: Arc<Shared<D>>, stream: S, slot: OwnedSemaphorePermit)
where
    D: BlockDevice,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let c = &shared.counters;
    bump(&c.connections_total, 1);
    bump(&c.connections_active, 1);
    let _active = ActiveGuard(&c.connections_active, Some(slot));
    let mut stream = stream;
    let mut stop = shared.shutdown.subscribe();
    let mut buf = BytesMut::with_capacity(RECV_BUF_BYTES);
    let timeout = Duration::from_millis(shared.limits.handshake_timeout_ms);
    let hs = handshake(&shared, &mut stream, &mut buf, &mut stop);
    let neg = match tokio::time::timeout(timeout, hs).await {
        Ok(Ok(Some(neg))) => neg,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            bump(&c.protocol_errors, 1);
            tracing::info!("NBD handshake failed: {e}");
            return;
        }
        Err(_) => {
            bump(&c.protocol_errors, 1);
            tracing::info!("NBD handshake timed out");
            return;
        }
    };
    transmission(&shared, stream, buf, neg, stop).await;
}

/// Ok(None): the client aborted, went away, or the server shuts down.
async fn handshake<D: BlockDevice, S>(
    shared: &Shared<D>,
    io: &mut S,
    buf: &mut BytesMut,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<Negotiated>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut hs = Handshake::new(shared.export.clone(), shared.limits.handshake);
    loop {
        let outcome = hs.receive(buf).map_err(|e| e.to_string())?;
        let out = hs.take_output();
        if !out.is_empty() {
            io.write_all(&out).await.map_err(|e| e.to_string())?;
            io.flush().await.map_err(|e| e.to_string())?;
        }
        match outcome {
            Some(Outcome::Transmission(neg)) => return Ok(Some(neg)),
            Some(Outcome::Abort) => return Ok(None),
            None => {}
        }
        tokio::select! {
            r = io.read_buf(buf) => match r {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            },
            _ = stop.wait_for(|s| *s) => return Ok(None),
        }
    }
}

/// The state of the transmission phase besides the running requests.
struct Tx {
    limits: Limits,
    structured: bool,
    /// Replies ready to send, each with the payload bytes it holds.
    out: VecDeque<(Reply, u64)>,
    /// Bytes of `out.front()` already written.
    sent: usize,
    /// Requests admitted whose reply is not fully written, and their bytes.
    inflight: usize,
    inflight_bytes: u64,
    /// A decoded request waiting for room under the limits.
    held: Option<Request>,
    /// False once the client sent DISC or EOF, broke the protocol, or the
    /// server shuts down: then only the requests in flight are finished.
    reading: bool,
    need_flush: bool,
}

impl Tx {
    fn has_room(&self, cost: u64) -> bool {
        self.inflight == 0
            || (self.inflight < self.limits.max_inflight
                && self.inflight_bytes + cost <= self.limits.max_inflight_bytes)
    }

    fn admit(&mut self, cost: u64) {
        self.inflight += 1;
        self.inflight_bytes += cost;
    }

    fn queue(&mut self, cookie: u64, cost: u64, body: ReplyBody) {
        self.out
            .push_back((encode_reply(self.structured, cookie, body), cost));
    }

    /// Writes as many queued replies as one vectored write takes.
    fn poll_write<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
        let mut n = 0;
        let mut skip = self.sent;
        'fill: for (r, _) in &self.out {
            let parts = std::iter::once(r.head()).chain(r.payload().iter().map(|b| &b[..]));
            for part in parts {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                if n == MAX_IOVECS {
                    break 'fill;
                }
                iov[n] = IoSlice::new(&part[skip..]);
                skip = 0;
                n += 1;
            }
        }
        let mut done = match Pin::new(io).poll_write_vectored(cx, &iov[..n]) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(k)) => k + self.sent,
        };
        self.need_flush = true;
        while let Some((r, cost)) = self.out.front() {
            let len = r.wire_len();
            if done < len {
                break;
            }
            done -= len;
            self.inflight -= 1;
            self.inflight_bytes -= cost;
            self.out.pop_front();
        }
        self.sent = done;
        Poll::Ready(Ok(()))
    }
}

/// Payload bytes a request holds while in flight.
fn cost(h: &crate::codec::RequestHeader, limits: &Limits) -> u64 {
    match h.command {
        CMD_READ | CMD_WRITE => u64::from(h.length.min(limits.max_request_bytes)),
        _ => 0,
    }
}

async fn transmission<D, S>(
    shared: &Shared<D>,
    mut io: S,
    mut buf: BytesMut,
    neg: Negotiated,
    mut stop: watch::Receiver<bool>,
) where
    D: BlockDevice,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limits = shared.limits;
    let c = &shared.counters;
    let decoder = RequestDecoder::new(limits.max_request_bytes);
    let params = ValidateParams {
        size_bytes: shared.export.size_bytes,
        read_only: shared.export.read_only,
        max_payload: limits.max_request_bytes,
    };
    let mut tx = Tx {
        limits,
        structured: neg.structured_replies,
        out: VecDeque::with_capacity(limits.max_inflight.min(1024)),
        sent: 0,
        inflight: 0,
        inflight_bytes: 0,
        held: None,
        reading: true,
        need_flush: false,
    };
    let mut set = Slots::new(limits.max_inflight);
    let mut stopped = pin!(stop.wait_for(|s| *s));
    let mut stopping = false;
    // "The server MUST handle all outstanding requests" (DISC), and "On a
    // server shutdown, the server SHOULD wait for inflight requests".
    // Bounded: a client that stops reading its replies cannot keep the
    // connection (and so a shutdown) alive past the drain timeout.
    let drain = Duration::from_millis(limits.drain_timeout_ms);
    let mut drain_timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let result = poll_fn(|cx| loop {
        let mut progress = false;
        if !stopping && stopped.as_mut().poll(cx).is_ready() {
            stopping = true;
            tx.reading = false;
        }
        // Admit every complete request in the buffer, within the limits.
        while tx.reading {
            let req = match tx.held.take() {
                Some(r) => r,
                None => match decoder.decode(&mut buf) {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        // Bad magic or an oversized write payload: hard
                        // disconnect (after the requests in flight).
                        bump(&c.protocol_errors, 1);
                        tracing::info!("NBD client disconnected: {e}");
                        tx.reading = false;
                        break;
                    }
                },
            };
            let h = req.header;
            let cost = cost(&h, &limits);
            if !tx.has_room(cost) || set.is_full() {
                tx.held = Some(req);
                break;
            }
            match validate(req, &neg, &params) {
                Ok(Op::Disconnect) => tx.reading = false,
                Ok(op) => {
                    tx.admit(cost);
                    set.push(execute(shared, op), (h.cookie, cost));
                }
                Err(e) => {
                    bump(&c.requests, 1);
                    bump(&c.errors, 1);
                    tracing::debug!("NBD request {h:?} rejected: {e}");
                    tx.admit(cost);
                    tx.queue(h.cookie, cost, ReplyBody::Error(e));
                }
            }
        }
        set.poll_finished(cx, |(cookie, cost), r| {
            let body = match r {
                Finished::Done(body) => body,
                Finished::Panicked => {
                    bump(&c.errors, 1);
                    ReplyBody::Error(IoError::new(
                        IoErrorKind::Io,
                        "request failed: the device panicked",
                    ))
                }
            };
            tx.queue(cookie, cost, body);
        });
        if !tx.out.is_empty() {
            match tx.poll_write(&mut io, cx) {
                Poll::Ready(Ok(())) => progress = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(format!("write: {e}"))),
                Poll::Pending => {}
            }
        } else if tx.need_flush {
            match Pin::new(&mut io).poll_flush(cx) {
                Poll::Ready(Ok(())) => tx.need_flush = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(format!("flush: {e}"))),
                Poll::Pending => {}
            }
        }
        if tx.reading && tx.held.is_none() {
            let free = buf.capacity() - buf.len();
            let want = match decoder.needed(&buf) {
                Ok(n) => n.saturating_sub(buf.len()).max(MIN_READ_BYTES),
                Err(_) => MIN_READ_BYTES, // reported by the next decode
            };
            if free < want {
                buf.reserve(want.max(RECV_BUF_BYTES));
            }
            match pin!(io.read_buf(&mut buf)).poll(cx) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    tx.reading = false;
                    progress = true;
                }
                Poll::Ready(Ok(_)) => progress = true,
                Poll::Pending => {}
            }
        }
        if !tx.reading {
            if tx.inflight == 0 && !tx.need_flush {
                return Poll::Ready(Ok(()));
            }
            let timer = drain_timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(drain)));
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err("requests or replies still pending".to_string()));
            }
        }
        if !progress {
            return Poll::Pending;
        }
    })
    .await;
    match result {
        Ok(()) => {
            let _ = tokio::time::timeout(drain, io.shutdown()).await;
        }
        Err(e) => tracing::warn!("NBD connection closed: {e}"),
    }
}

async fn execute<D: BlockDevice>(shared: &Shared<D>, op: Op) -> ReplyBody {
    let c = &shared.counters;
    let (counter, written) = match &op {
        Op::Read { .. } => (&c.reads, 0),
        Op::Write { data, .. } => (&c.writes, data.len() as u64),
        Op::Flush | Op::Disconnect => (&c.flushes, 0),
        Op::Trim { .. } => (&c.trims, 0),
        Op::WriteZeroes { .. } => (&c.write_zeroes, 0),
    };
    bump(counter, 1);
    bump(&c.requests, 1);
    match shared.exec.run(op).await {
        Ok(body) => {
            if let ReplyBody::Data { data, .. } = &body {
                bump(&c.bytes_read, data.len() as u64);
            }
            bump(&c.bytes_written, written);
            body
        }
        Err(e) => {
            bump(&c.errors, 1);
            tracing::debug!("NBD request failed: {e}");
            ReplyBody::Error(e)
        }
    }
}
