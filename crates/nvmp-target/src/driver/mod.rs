//! The tokio driver: one listener task per port (listening only while the
//! port is up and has a subsystem linked), one task per connection that
//! moves bytes between the socket and the sans-IO [`Queue`], and runs
//! backend operations (RAM in line, files on the blocking pool).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::backend::IoResult;
use crate::core::queue::{Limits, Output, Queue};
use crate::core::state::{ConnId, ConnSignal, Shared};

/// Bind a port's listening socket.
pub async fn bind(shared: &Shared, portid: u16) -> std::io::Result<TcpListener> {
    let addr = {
        let st = shared.lock();
        let p = st
            .ports
            .get(&portid)
            .ok_or_else(|| std::io::Error::other(format!("no port {portid}")))?;
        SocketAddr::new(p.spec.traddr, p.spec.trsvcid)
    };
    let l = TcpListener::bind(addr).await?;
    let local = l.local_addr()?;
    {
        let mut st = shared.lock();
        if let Some(p) = st.ports.get_mut(&portid) {
            // Keep an ephemeral port stable across port down/up.
            if p.spec.trsvcid == 0 {
                p.spec.trsvcid = local.port();
            }
            p.bound = Some(local);
        }
    }
    tracing::info!(port = portid, %local, "listening");
    Ok(l)
}

fn limits_of(shared: &Shared, portid: u16) -> Limits {
    let st = shared.lock();
    let mut l = Limits::default();
    if let Some(p) = st.ports.get(&portid) {
        l.inline_data_size = p.spec.inline_data_size;
        l.max_queue_size = p.spec.max_queue_size;
        l.max_io_queues = p.spec.max_io_queues;
    }
    l
}

fn should_listen(shared: &Shared, portid: u16) -> bool {
    shared
        .lock()
        .ports
        .get(&portid)
        .is_some_and(|p| p.should_listen())
}

fn set_unbound(shared: &Shared, portid: u16) {
    if let Some(p) = shared.lock().ports.get_mut(&portid) {
        p.bound = None;
    }
}

/// The task that owns a port's listener.
pub async fn port_task(
    shared: Arc<Shared>,
    portid: u16,
    mut listener: Option<TcpListener>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changed = shared.ports_changed.subscribe();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let want = should_listen(&shared, portid);
        if want && listener.is_none() {
            match bind(&shared, portid).await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::error!(port = portid, error = %e, "cannot listen; retrying in 1 s");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            }
        } else if !want && listener.is_some() {
            listener = None;
            set_unbound(&shared, portid);
            tracing::info!(port = portid, "listener closed");
        }
        match &listener {
            Some(l) => {
                tokio::select! {
                    r = l.accept() => match r {
                        Ok((stream, peer)) => accept(&shared, portid, stream, peer),
                        Err(e) => {
                            tracing::warn!(port = portid, error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    _ = changed.changed() => {}
                    _ = shutdown.changed() => {}
                }
            }
            None => {
                tokio::select! {
                    _ = changed.changed() => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
    set_unbound(&shared, portid);
}

fn accept(shared: &Arc<Shared>, portid: u16, stream: TcpStream, peer: SocketAddr) {
    let reg = shared.lock().register_conn(portid);
    let Some((id, signal)) = reg else {
        tracing::warn!(port = portid, %peer, "connection refused (limit reached or port down)");
        return; // dropping the stream closes it
    };
    tracing::debug!(port = portid, %peer, conn = id, "connection accepted");
    let shared = shared.clone();
    tokio::spawn(async move {
        serve_conn(shared.clone(), portid, stream, id, signal).await;
        shared.lock().unregister_conn(id);
        tracing::debug!(port = portid, %peer, conn = id, "connection closed");
    });
}

type Outgoing = (Option<Instant>, Bytes);

/// Batches of encoded PDUs queued for the socket before reading pauses.
const WRITE_QUEUE_BATCHES: usize = 64;

async fn writer(mut wr: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<Outgoing>) {
    while let Some((at, bytes)) = rx.recv().await {
        if let Some(at) = at {
            tokio::time::sleep_until(at).await;
        }
        if wr.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// Serve one connection until it closes.
pub async fn serve_conn(
    shared: Arc<Shared>,
    portid: u16,
    stream: TcpStream,
    id: ConnId,
    signal: Arc<ConnSignal>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let limits = limits_of(&shared, portid);
    let faults = shared.lock().ports.get(&portid).map(|p| p.faults.clone());
    let (mut rd, wr) = stream.into_split();
    // Bounded: when the peer does not read, we stop reading too (backpressure).
    let (tx, rx) = mpsc::channel::<Outgoing>(WRITE_QUEUE_BATCHES);
    let wtask = tokio::spawn(writer(wr, rx));
    let (io_tx, mut io_rx) = mpsc::unbounded_channel::<(u16, IoResult)>();
    let mut q = Queue::new(
        shared.clone(),
        id,
        signal.clone(),
        portid,
        local,
        limits,
        Instant::now().into_std(),
    );
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut work: VecDeque<Output> = VecDeque::new();
    'conn: loop {
        if buf.capacity() - buf.len() < 32 * 1024 {
            buf.reserve(128 * 1024);
        }
        let now = Instant::now().into_std();
        let deadline = q.next_deadline(now).map(Instant::from_std);
        let outs = tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break 'conn,
                Ok(_) => q.on_bytes(&mut buf, Instant::now().into_std()),
            },
            _ = signal.wake.notified() => q.poll(Instant::now().into_std()),
            Some((cid, res)) = io_rx.recv() => q.on_io_done(cid, res),
            _ = sleep_opt(deadline) => q.on_timer(Instant::now().into_std()),
        };
        work.extend(outs);
        let mut batch = BytesMut::new();
        let mut close = false;
        while let Some(o) = work.pop_front() {
            match o {
                Output::Send(pdu) => {
                    pdu.encode(q.encode_options(), &mut batch);
                }
                Output::Io { cid, backend, op } => {
                    if backend.is_inline() {
                        work.extend(q.on_io_done(cid, backend.execute(&op)));
                    } else {
                        let io_tx = io_tx.clone();
                        tokio::task::spawn_blocking(move || {
                            let _ = io_tx.send((cid, backend.execute(&op)));
                        });
                    }
                }
                Output::Close => close = true,
            }
        }
        if !batch.is_empty() {
            let delay = faults
                .as_ref()
                .map_or(0, |f| f.delay_ms.load(std::sync::atomic::Ordering::Relaxed));
            let at = (delay > 0).then(|| Instant::now() + Duration::from_millis(delay));
            if tx.send((at, batch.freeze())).await.is_err() {
                break;
            }
        }
        if close || q.is_closed() {
            break;
        }
    }
    drop(tx);
    // Let the writer flush what is queued (a TermReq), bounded.
    let _ = tokio::time::timeout(Duration::from_secs(2), wtask).await;
}

async fn sleep_opt(d: Option<Instant>) {
    match d {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
