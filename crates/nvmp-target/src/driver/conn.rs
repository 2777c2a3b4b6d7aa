//! One task per connection: it reads everything readable in one go (a big
//! buffer), lets the queue parse it and run RAM commands in line, and writes
//! every reply produced with vectored writes straight from the PDU headers
//! and the backend's data slices ([`TxBuf`]) — no channel, no payload copy,
//! many PDUs per system call both ways.
//!
//! Memory per connection is bounded: the queue stops taking commands while
//! its unsent replies fill the queue depth or a byte budget (per connection
//! and across the target, see [`Queue::holding`]); the task then stops
//! reading, so TCP pushes back on a peer that does not read its replies.
//! File operations go to a fixed thread pool, at most
//! [`pool::PER_CONN`] at once per connection.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backend::{pool, Backend, IoOp, IoResult};
use crate::core::ccr::GateGuard;
use crate::core::queue::Queue;
use crate::core::state::{ConnId, ConnSignal, PortFaults, Shared};
use crate::core::tx::{Sink, TxBuf, MAX_IOV};

/// Read at least this much per read call when the buffer has less room.
const READ_ROOM: usize = 32 * 1024;
/// Receive buffer size. When it runs low, asking for `READ_BUF - len` more
/// lets `BytesMut` move the unparsed tail to the front of the same
/// allocation (once the parsed PDUs' slices were dropped) instead of
/// allocating anew, which for large buffers means mmap, page faults, munmap.
const READ_BUF: usize = 256 * 1024;

/// Replies held back by the delay fault, in order.
#[derive(Default)]
struct Delayed {
    batches: VecDeque<(Instant, Vec<Bytes>)>,
    bytes: usize,
    /// Released, waiting for the socket (written before anything newer).
    late: TxBuf,
}

/// File operations of this connection.
struct FileOps {
    running: usize,
    waiting: VecDeque<(u16, Arc<Backend>, IoOp, GateGuard)>,
    reply: mpsc::UnboundedSender<(u16, IoResult)>,
    /// The port's faults (the stall fault slows file operations).
    faults: Option<Arc<PortFaults>>,
}

impl FileOps {
    fn submit(&mut self, cid: u16, backend: Arc<Backend>, op: IoOp, guard: GateGuard) {
        if self.running >= pool::PER_CONN {
            self.waiting.push_back((cid, backend, op, guard));
            return;
        }
        self.running += 1;
        pool::submit(pool::Job {
            cid,
            backend,
            op,
            guard,
            stall: Duration::from_millis(
                self.faults
                    .as_ref()
                    .map_or(0, |f| f.stall_ms.load(Ordering::Relaxed)),
            ),
            reply: self.reply.clone(),
        });
    }
    fn done(&mut self) {
        self.running -= 1;
        if let Some((cid, b, op, guard)) = self.waiting.pop_front() {
            self.submit(cid, b, op, guard);
        }
    }
}

/// The sending side of a connection as the driver uses it: non-blocking
/// vectored writes and a readiness wait. Plain TCP is tokio's socket half
/// itself (the driver is monomorphized for it: no indirection per write);
/// TLS is [`nvmp_tls::TlsWrite`].
pub(super) trait Wire {
    fn try_write_vectored(&self, iov: &[IoSlice<'_>]) -> std::io::Result<usize>;
    fn writable(&self) -> impl std::future::Future<Output = std::io::Result<()>>;
    fn close(&mut self) -> impl std::future::Future<Output = ()>;
}

impl Wire for tokio::net::tcp::WriteHalf<'_> {
    fn try_write_vectored(&self, iov: &[IoSlice<'_>]) -> std::io::Result<usize> {
        tokio::net::tcp::WriteHalf::try_write_vectored(self, iov)
    }
    async fn writable(&self) -> std::io::Result<()> {
        tokio::net::tcp::WriteHalf::writable(self).await
    }
    async fn close(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
    }
}

impl Wire for nvmp_tls::TlsWrite {
    fn try_write_vectored(&self, iov: &[IoSlice<'_>]) -> std::io::Result<usize> {
        nvmp_tls::TlsWrite::try_write_vectored(self, iov)
    }
    async fn writable(&self) -> std::io::Result<()> {
        nvmp_tls::TlsWrite::writable(self).await
    }
    async fn close(&mut self) {
        nvmp_tls::TlsWrite::close(self);
    }
}

/// Slices of a write small enough for a small I/O vector (a reply or a
/// few): filling the whole [`MAX_IOV`] array costs more than the write's
/// own work at queue depth 1.
const SMALL_IOV: usize = 8;

/// Write as much as the socket takes without waiting; returns bytes written.
fn flush<W: Wire>(wr: &W, tx: &mut TxBuf, calls: &mut u64) -> std::io::Result<usize> {
    let mut total = 0;
    while !tx.is_empty() {
        *calls += 1;
        let r = if tx.segments() <= SMALL_IOV {
            let mut iov = [IoSlice::new(&[]); SMALL_IOV];
            let n = tx.iovecs(&mut iov);
            wr.try_write_vectored(&iov[..n])
        } else {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = tx.iovecs(&mut iov);
            wr.try_write_vectored(&iov[..n])
        };
        match r {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(w) => {
                tx.advance(w);
                total += w;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// Serve one plain TCP connection until it closes.
pub async fn serve_conn(
    shared: Arc<Shared>,
    portid: u16,
    mut stream: TcpStream,
    peer: std::net::SocketAddr,
    id: ConnId,
    signal: Arc<ConnSignal>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let (rd, wr) = stream.split();
    serve_io(shared, portid, rd, wr, local, peer, id, signal, None).await;
}

/// Serve one connection, given its halves, until it closes.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve_io<R: tokio::io::AsyncRead + Unpin, W: Wire>(
    shared: Arc<Shared>,
    portid: u16,
    mut rd: R,
    mut wr: W,
    local: Option<std::net::SocketAddr>,
    peer: std::net::SocketAddr,
    id: ConnId,
    signal: Arc<ConnSignal>,
    tls_hostnqn: Option<String>,
) {
    let limits = super::limits_of(&shared, portid);
    let faults = shared.lock().ports.get(&portid).map(|p| p.faults.clone());
    let (reply, mut io_rx) = mpsc::unbounded_channel::<(u16, IoResult)>();
    let mut files = FileOps {
        running: 0,
        waiting: VecDeque::new(),
        reply,
        faults: faults.clone(),
    };
    let mut q = Queue::new(
        shared.clone(),
        id,
        signal.clone(),
        portid,
        local,
        limits,
        Instant::now().into_std(),
    );
    q.set_peer(peer);
    if let Some(h) = tls_hostnqn {
        q.set_tls_hostnqn(h);
    }
    let mut tx = TxBuf::default();
    let mut delayed = Delayed::default();
    let mut buf = BytesMut::new();
    let mut accounted = 0usize;
    let (mut read_calls, mut write_calls) = (0u64, 0u64);
    loop {
        // Everything the last event produced: file operations, the delay
        // fault, then as much writing as the socket takes.
        for (cid, b, op, guard) in tx.io.drain(..) {
            files.submit(cid, b, op, guard);
        }
        let delay_ms = faults
            .as_ref()
            .map_or(0, |f| f.delay_ms.load(Ordering::Relaxed));
        let now = Instant::now();
        if (delay_ms > 0 || !delayed.batches.is_empty() || !delayed.late.is_empty())
            && !tx.is_empty()
        {
            let v = tx.take_all();
            delayed.bytes += v.iter().map(|b| b.len()).sum::<usize>();
            let at = now + Duration::from_millis(delay_ms);
            delayed.batches.push_back((at, v));
        }
        while delayed.batches.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, v)) = delayed.batches.pop_front() {
                delayed.bytes -= v.iter().map(|b| b.len()).sum::<usize>();
                delayed.late.push_raw(v);
            }
        }
        let wire = if delayed.late.is_empty() {
            &mut tx
        } else {
            &mut delayed.late
        };
        let wrote = match flush(&wr, wire, &mut write_calls) {
            Ok(n) => n,
            Err(_) => break,
        };
        let held = tx.unsent_bytes() + delayed.bytes + delayed.late.unsent_bytes();
        if held != accounted {
            if held > accounted {
                shared
                    .buffered_bytes
                    .fetch_add(held - accounted, Ordering::Relaxed);
                shared
                    .max_conn_buffered_bytes
                    .fetch_max(held, Ordering::Relaxed);
            } else {
                shared
                    .buffered_bytes
                    .fetch_sub(accounted - held, Ordering::Relaxed);
            }
            accounted = held;
        }
        let closing = tx.close || q.is_closed();
        if closing {
            break;
        }
        if q.holding() && wrote > 0 {
            // Replies went out: take the commands that waited.
            q.on_bytes_into(&mut buf, Instant::now().into_std(), &mut tx);
            continue;
        }
        // Wait for the next event.
        let can_read = !q.holding();
        if can_read && buf.capacity() - buf.len() < READ_ROOM {
            buf.reserve(READ_BUF.saturating_sub(buf.len()).max(READ_ROOM));
        }
        let want_write = !tx.is_empty() || !delayed.late.is_empty();
        let deadline = q.next_deadline(now.into_std()).map(Instant::from_std);
        let release = delayed.batches.front().map(|(at, _)| *at);
        tokio::select! {
            r = rd.read_buf(&mut buf), if can_read => {
                read_calls += 1;
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(_) => q.on_bytes_into(&mut buf, Instant::now().into_std(), &mut tx),
                }
            }
            r = wr.writable(), if want_write => {
                if r.is_err() {
                    break;
                }
                if q.holding() {
                    q.on_bytes_into(&mut buf, Instant::now().into_std(), &mut tx);
                }
            }
            _ = signal.wake.notified() => q.poll_into(Instant::now().into_std(), &mut tx),
            Some((cid, res)) = io_rx.recv() => {
                files.done();
                q.on_io_done_into(cid, res, &mut tx);
                while let Ok((cid, res)) = io_rx.try_recv() {
                    files.done();
                    q.on_io_done_into(cid, res, &mut tx);
                }
                q.flush_counters();
                if q.holding() {
                    q.on_bytes_into(&mut buf, Instant::now().into_std(), &mut tx);
                }
            }
            _ = sleep_opt(deadline) => q.on_timer_into(Instant::now().into_std(), &mut tx),
            _ = sleep_opt(release) => {}
        }
    }
    // Let what is queued (a TermReq, the last completions) go out, bounded.
    let end = Instant::now() + Duration::from_secs(2);
    for _ in 0..1000 {
        let wire = if delayed.late.is_empty() {
            &mut tx
        } else {
            &mut delayed.late
        };
        if wire.is_empty() || flush(&wr, wire, &mut write_calls).is_err() {
            break;
        }
        if wire.is_empty() || tokio::time::timeout_at(end, wr.writable()).await.is_err() {
            break;
        }
    }
    shared
        .buffered_bytes
        .fetch_sub(accounted, Ordering::Relaxed);
    tracing::debug!(
        conn = id,
        read_calls,
        write_calls,
        completions = tx.completions,
        "connection I/O"
    );
    wr.close().await;
}

async fn sleep_opt(d: Option<Instant>) {
    match d {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
