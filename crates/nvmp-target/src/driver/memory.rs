//! In-memory connections: the same sans-IO [`Queue`] as a TCP connection,
//! driven over any byte stream (a `tokio::io::duplex` pipe). Tests run a
//! real host against the real target this way in virtual time
//! (`tokio::time::pause`), where loopback sockets would let the paused
//! clock jump while bytes are in flight.
//!
//! Simpler than [`super::serve_conn`] (one write call per batch of
//! replies, no delay fault); everything else — port down, black hole, fail
//! next, keep-alive, ANA, flow control, file operations — is the queue's
//! and behaves alike.

use std::io::IoSlice;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backend::{pool, IoResult};
use crate::core::queue::Queue;
use crate::core::state::{ConnId, ConnSignal, Shared};
use crate::core::tx::{TxBuf, MAX_IOV};

/// The peer address an in-memory connection reports (logs, status).
pub const MEMORY_PEER: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// Serve one in-memory connection until it closes.
pub async fn serve_stream<S>(
    shared: Arc<Shared>,
    portid: u16,
    stream: S,
    id: ConnId,
    signal: Arc<ConnSignal>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let limits = super::limits_of(&shared, portid);
    let (reply, mut io_rx) = mpsc::unbounded_channel::<(u16, IoResult)>();
    let mut q = Queue::new(
        shared.clone(),
        id,
        signal.clone(),
        portid,
        None,
        limits,
        Instant::now().into_std(),
    );
    q.set_peer(MEMORY_PEER);
    let mut tx = TxBuf::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut running = 0usize;
    'conn: loop {
        for (cid, backend, op, guard) in tx.io.drain(..) {
            running += 1;
            pool::submit(pool::Job {
                cid,
                backend,
                op,
                guard,
                stall: std::time::Duration::ZERO,
                reply: reply.clone(),
            });
        }
        while !tx.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = tx.iovecs(&mut iov);
            match wr.write_vectored(&iov[..n]).await {
                Ok(0) | Err(_) => break 'conn,
                Ok(w) => tx.advance(w),
            }
        }
        if tx.close || q.is_closed() {
            break;
        }
        if q.holding() {
            // Replies went out: take the commands that waited.
            q.on_bytes_into(&mut buf, Instant::now().into_std(), &mut tx);
            if !tx.is_empty() || !tx.io.is_empty() {
                continue;
            }
        }
        let now = Instant::now();
        let deadline = q.next_deadline(now.into_std()).map(Instant::from_std);
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        tokio::select! {
            r = rd.read_buf(&mut buf), if !q.holding() => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => q.on_bytes_into(&mut buf, Instant::now().into_std(), &mut tx),
            },
            _ = signal.wake.notified() => q.poll_into(Instant::now().into_std(), &mut tx),
            Some((cid, res)) = io_rx.recv(), if running > 0 => {
                running -= 1;
                q.on_io_done_into(cid, res, &mut tx);
                q.flush_counters();
            }
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => q.on_timer_into(Instant::now().into_std(), &mut tx),
        }
    }
    // What is queued (a TermReq, the last completions) goes out if it can.
    while !tx.is_empty() {
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let n = tx.iovecs(&mut iov);
        match wr.write_vectored(&iov[..n]).await {
            Ok(0) | Err(_) => break,
            Ok(w) => tx.advance(w),
        }
    }
    let _ = wr.shutdown().await;
}
