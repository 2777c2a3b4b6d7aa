//! A TCP fault proxy for tests: sits between a host and one target port and,
//! on command, delays traffic, swallows it (a black hole: TCP stays open,
//! nothing gets through), cuts every connection (a link going down),
//! refuses new connections, or flips one bit in the target-to-host stream;
//! and limits the rate of each direction with a token bucket
//! ([`FaultProxy::set_rate_limit`], shared by all the proxy's connections:
//! one proxy is one path).
//! The target's own fault injection covers NVMe-level faults; this covers
//! what the network does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::bucket::{RateLimit, TokenBucket};

/// A direction of the proxied stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Host to target (commands, write data).
    ToTarget = 0,
    /// Target to host (completions, read data).
    ToHost = 1,
}

/// What the proxy does with the bytes it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Pass,
    /// Forward each chunk after this delay.
    Delay(Duration),
    /// Read and drop everything; connections stay open.
    BlackHole,
    /// Hold host-to-target bytes for this long (target-to-host passes), and
    /// keep delivering what was held after the host closes, as TCP does: a
    /// slow link whose in-flight data still lands.
    DelayToTarget(Duration),
}

#[derive(Debug)]
struct Ctl {
    mode: Mutex<ProxyMode>,
    refuse: AtomicBool,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
    /// Flip a bit in the target-to-host stream once this many more bytes have passed (u64::MAX = never).
    corrupt_after: AtomicU64,
    connections: AtomicU64,
    corrupted: AtomicU64,
    /// Token buckets per [`Direction`] (None: unlimited).
    buckets: [Mutex<Option<TokenBucket>>; 2],
    /// Bytes forwarded per [`Direction`].
    forwarded: [AtomicU64; 2],
}

impl Ctl {
    /// Wait until `n` bytes may pass in direction `d`, and count them.
    async fn throttle(&self, d: Direction, n: usize) {
        let wait = {
            let mut b = self.buckets[d as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            b.as_mut()
                .map(|b| b.reserve(n, tokio::time::Instant::now()))
        };
        if let Some(w) = wait.filter(|w| !w.is_zero()) {
            tokio::time::sleep(w).await;
        }
        self.forwarded[d as usize].fetch_add(n as u64, Relaxed);
    }
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    ctl: Arc<Ctl>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listen on 127.0.0.1 (ephemeral port) and forward to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy listen");
        Self::start_with(l, upstream)
    }

    /// Listen on `listen` and forward to `upstream`.
    pub async fn start_on(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        Ok(Self::start_with(TcpListener::bind(listen).await?, upstream))
    }

    fn start_with(l: TcpListener, upstream: SocketAddr) -> FaultProxy {
        let addr = l.local_addr().expect("proxy addr");
        let ctl = Arc::new(Ctl {
            mode: Mutex::new(ProxyMode::Pass),
            refuse: AtomicBool::new(false),
            cut: watch::channel(0).0,
            corrupt_after: AtomicU64::new(u64::MAX),
            connections: AtomicU64::new(0),
            corrupted: AtomicU64::new(0),
            buckets: [Mutex::new(None), Mutex::new(None)],
            forwarded: [AtomicU64::new(0), AtomicU64::new(0)],
        });
        let c = ctl.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((down, _)) = l.accept().await else {
                    continue;
                };
                if c.refuse.load(Relaxed) {
                    drop(down);
                    continue;
                }
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    c.connections.fetch_add(1, Relaxed);
                    let _ = down.set_nodelay(true);
                    let _ = up.set_nodelay(true);
                    let mut cut = c.cut.subscribe();
                    let (dr, dw) = down.into_split();
                    let (ur, uw) = up.into_split();
                    // Host-to-target bytes go through a queue to a writer task, so
                    // that held bytes are still delivered after the host closes.
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    let writer = tokio::spawn(deliver(rx, uw, c.clone()));
                    tokio::select! {
                        _ = pump_to_target(dr, tx, c.clone()) => {
                            // The host closed: wait for the held bytes to land, unless cut.
                            tokio::select! {
                                _ = writer => {}
                                _ = cut.changed() => {}
                            }
                        }
                        _ = pump(ur, dw, c.clone(), true) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        FaultProxy { addr, ctl, task }
    }

    /// The address hosts connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn mode(&self) -> ProxyMode {
        *self.ctl.mode.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn set_mode(&self, m: ProxyMode) {
        *self.ctl.mode.lock().unwrap_or_else(|e| e.into_inner()) = m;
    }
    /// Close every open connection (both directions), as a failed link would.
    pub fn cut_all(&self) {
        self.ctl.cut.send_modify(|g| *g += 1);
    }
    /// Refuse (accept and close at once) new connections while set.
    pub fn refuse(&self, on: bool) {
        self.ctl.refuse.store(on, Relaxed);
    }
    /// Flip the lowest bit of the byte that comes `after` bytes from now in the target-to-host direction.
    pub fn corrupt_target_byte_after(&self, after: u64) {
        self.ctl.corrupt_after.store(after, Relaxed);
    }
    /// Connections proxied so far.
    pub fn connections(&self) -> u64 {
        self.ctl.connections.load(Relaxed)
    }
    /// Bytes corrupted so far.
    pub fn corrupted(&self) -> u64 {
        self.ctl.corrupted.load(Relaxed)
    }
    /// Limit the rate of one direction (None: unlimited), for every
    /// connection of this proxy together, from now on.
    pub fn set_rate_limit(&self, d: Direction, limit: Option<RateLimit>) {
        let mut b = self.ctl.buckets[d as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = tokio::time::Instant::now();
        *b = match (b.take(), limit) {
            (_, None) => None,
            (Some(mut old), Some(l)) => {
                old.set_limit(l, now);
                Some(old)
            }
            (None, Some(l)) => Some(TokenBucket::new(l, now)),
        };
    }
    /// The rate limit of one direction.
    pub fn rate_limit(&self, d: Direction) -> Option<RateLimit> {
        self.ctl.buckets[d as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(TokenBucket::limit)
    }
    /// Bytes forwarded in one direction so far.
    pub fn forwarded(&self, d: Direction) -> u64 {
        self.ctl.forwarded[d as usize].load(Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut_all();
        self.task.abort();
    }
}

async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    c: Arc<Ctl>,
    from_target: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mode = *c.mode.lock().unwrap_or_else(|e| e.into_inner());
        match mode {
            ProxyMode::BlackHole => continue,
            ProxyMode::Delay(d) => tokio::time::sleep(d).await,
            ProxyMode::Pass | ProxyMode::DelayToTarget(_) => {}
        }
        if from_target {
            let left = c.corrupt_after.load(Relaxed);
            if left != u64::MAX {
                if left < n as u64 {
                    buf[left as usize] ^= 1;
                    c.corrupt_after.store(u64::MAX, Relaxed);
                    c.corrupted.fetch_add(1, Relaxed);
                } else {
                    c.corrupt_after.store(left - n as u64, Relaxed);
                }
            }
        }
        c.throttle(Direction::ToHost, n).await;
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Read host-to-target bytes and queue them with the time they may be delivered.
async fn pump_to_target(
    mut r: tokio::net::tcp::OwnedReadHalf,
    tx: tokio::sync::mpsc::UnboundedSender<(tokio::time::Instant, Vec<u8>)>,
    c: Arc<Ctl>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mode = *c.mode.lock().unwrap_or_else(|e| e.into_inner());
        let at = tokio::time::Instant::now()
            + match mode {
                ProxyMode::BlackHole => continue,
                ProxyMode::Delay(d) | ProxyMode::DelayToTarget(d) => d,
                ProxyMode::Pass => Duration::ZERO,
            };
        if tx.send((at, buf[..n].to_vec())).is_err() {
            return;
        }
    }
}

/// Write queued chunks in order, each not before its time; then close.
async fn deliver(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(tokio::time::Instant, Vec<u8>)>,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    c: Arc<Ctl>,
) {
    while let Some((at, chunk)) = rx.recv().await {
        tokio::time::sleep_until(at).await;
        c.throttle(Direction::ToTarget, chunk.len()).await;
        if w.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests;
