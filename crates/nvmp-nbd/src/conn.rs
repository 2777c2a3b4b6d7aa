//! The tokio driver of one connection: runs the sans-IO handshake, then
//! the transmission phase with pipelined requests (bounded in count and
//! bytes) and a writer task that sends replies as they complete.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::codec::{encode_reply, validate, Op, ReplyBody, RequestDecoder, ValidateParams};
use crate::device::{BlockDevice, IoError, IoErrorKind};
use crate::handshake::{Handshake, Negotiated, Outcome};
use crate::server::{bump, Shared};

/// One reply ready to send, with the budget it holds until it is written.
struct Outgoing {
    frames: Vec<Bytes>,
    _permits: (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>),
}

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
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut stop = shared.shutdown.subscribe();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let timeout = Duration::from_millis(shared.limits.handshake_timeout_ms);
    let hs = handshake(&shared, &mut rd, &mut wr, &mut buf, &mut stop);
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
    transmission(shared.clone(), rd, wr, buf, neg, stop).await;
}

/// Ok(None): the client aborted, went away, or the server shuts down.
async fn handshake<D: BlockDevice, R, W>(
    shared: &Shared<D>,
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<Negotiated>, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut hs = Handshake::new(shared.export.clone(), shared.limits.handshake);
    loop {
        let outcome = hs.receive(buf).map_err(|e| e.to_string())?;
        let out = hs.take_output();
        if !out.is_empty() {
            wr.write_all(&out).await.map_err(|e| e.to_string())?;
            wr.flush().await.map_err(|e| e.to_string())?;
        }
        match outcome {
            Some(Outcome::Transmission(neg)) => return Ok(Some(neg)),
            Some(Outcome::Abort) => return Ok(None),
            None => {}
        }
        tokio::select! {
            r = rd.read_buf(buf) => match r {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            },
            _ = stop.wait_for(|s| *s) => return Ok(None),
        }
    }
}

async fn transmission<D, R, W>(
    shared: Arc<Shared<D>>,
    mut rd: R,
    wr: W,
    mut buf: BytesMut,
    neg: Negotiated,
    mut stop: watch::Receiver<bool>,
) where
    D: BlockDevice,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let limits = shared.limits;
    let c = &shared.counters;
    let decoder = RequestDecoder::new(limits.max_request_bytes);
    let params = ValidateParams {
        size_bytes: shared.export.size_bytes,
        read_only: shared.export.read_only,
        max_payload: limits.max_request_bytes,
    };
    let (tx, rx) = mpsc::channel::<Outgoing>(limits.max_inflight + 1);
    let writer = tokio::spawn(writer(wr, rx));
    let requests = Arc::new(Semaphore::new(limits.max_inflight));
    let budget_kib = (limits.max_inflight_bytes / 1024).min(u64::from(u32::MAX >> 4)) as u32;
    let budget = Arc::new(Semaphore::new(budget_kib as usize));
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let req = match decoder.decode(&mut buf) {
            Ok(Some(req)) => req,
            Ok(None) => {
                match decoder.needed(&buf) {
                    Ok(n) => buf.reserve(n.saturating_sub(buf.len())),
                    Err(e) => {
                        bump(&c.protocol_errors, 1);
                        tracing::info!("NBD client disconnected: {e}");
                        break;
                    }
                }
                tokio::select! {
                    r = rd.read_buf(&mut buf) => match r {
                        Ok(0) | Err(_) => break,
                        Ok(_) => continue,
                    },
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tx.closed() => break,
                }
            }
            Err(e) => {
                // Bad magic or an oversized write payload: hard disconnect.
                bump(&c.protocol_errors, 1);
                tracing::info!("NBD client disconnected: {e}");
                break;
            }
        };
        let h = req.header;
        let payload_bytes = match h.command {
            crate::proto::CMD_READ | crate::proto::CMD_WRITE => {
                h.length.min(limits.max_request_bytes)
            }
            _ => 0,
        };
        let kib = payload_bytes.div_ceil(1024).min(budget_kib);
        let permits = tokio::select! {
            p = acquire(&requests, &budget, kib) => p,
            _ = stop.wait_for(|s| *s) => break,
        };
        let structured = neg.structured_replies;
        let op = match validate(req, &neg, &params) {
            Ok(Op::Disconnect) => break,
            Ok(op) => op,
            Err(e) => {
                bump(&c.requests, 1);
                bump(&c.errors, 1);
                tracing::debug!("NBD request {h:?} rejected: {e}");
                let frames = encode_reply(structured, h.cookie, ReplyBody::Error(e));
                if tx
                    .send(Outgoing {
                        frames,
                        _permits: permits,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        let shared = shared.clone();
        let tx = tx.clone();
        tasks.spawn(async move {
            // Its own task, so that a panicking device still gets the
            // client an EIO reply instead of a request that never ends.
            let body = match tokio::spawn(async move { execute(&shared, op).await }).await {
                Ok(body) => body,
                Err(e) => ReplyBody::Error(IoError::new(
                    IoErrorKind::Io,
                    format!("request failed: {e}"),
                )),
            };
            let frames = encode_reply(structured, h.cookie, body);
            let _ = tx
                .send(Outgoing {
                    frames,
                    _permits: permits,
                })
                .await;
        });
    }
    // "The server MUST handle all outstanding requests" (DISC), and "On a
    // server shutdown, the server SHOULD wait for inflight requests".
    // Bounded: a client that stops reading its replies cannot keep the
    // connection (and so a shutdown) alive past the drain timeout.
    let mut writer = writer;
    let finish = async {
        while tasks.join_next().await.is_some() {}
        drop(tx);
        let _ = (&mut writer).await;
    };
    let drain = Duration::from_millis(limits.drain_timeout_ms);
    if tokio::time::timeout(drain, finish).await.is_err() {
        tracing::warn!("NBD connection closed with requests or replies still pending");
        tasks.abort_all();
        writer.abort();
    }
}

async fn acquire(
    requests: &Arc<Semaphore>,
    budget: &Arc<Semaphore>,
    kib: u32,
) -> (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>) {
    let r = requests
        .clone()
        .acquire_owned()
        .await
        .expect("semaphore never closed");
    let b = if kib == 0 {
        None
    } else {
        Some(
            budget
                .clone()
                .acquire_many_owned(kib)
                .await
                .expect("semaphore never closed"),
        )
    };
    (r, b)
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

async fn writer<W: AsyncWrite + Unpin>(wr: W, mut rx: mpsc::Receiver<Outgoing>) {
    let mut w = BufWriter::with_capacity(256 * 1024, wr);
    'outer: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            for f in &out.frames {
                if w.write_all(f).await.is_err() {
                    break 'outer;
                }
            }
            next = rx.try_recv().ok();
        }
        if w.flush().await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}
