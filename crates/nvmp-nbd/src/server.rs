//! The public server: [`NbdServer`] over one [`BlockDevice`] export,
//! listening on TCP and/or Unix sockets, with limits, counters and
//! graceful shutdown.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::device::BlockDevice;
use crate::exec::Executor;
use crate::handshake::{ExportInfo, HandshakeLimits};
use crate::proto::{DEFAULT_MAX_PAYLOAD, MAX_STRING_LEN};

/// Limits; every one is enforced per connection unless said otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent connections per server, all listeners together (16).
    pub max_connections: usize,
    /// Requests in flight per connection (128, like a queue of 128). A
    /// request counts from when it is parsed until its reply is fully
    /// written; at the limit the connection stops reading requests.
    pub max_inflight: usize,
    /// Largest read / write payload: the advertised maximum block size.
    /// At least 32 MiB (the spec says shorter payloads "SHOULD NOT be
    /// considered a denial of service attack"); bigger writes disconnect.
    pub max_request_bytes: u32,
    /// Payload bytes (write data + read data) in flight per connection
    /// (64 MiB); at least `max_request_bytes`.
    pub max_inflight_bytes: u64,
    /// Time a client gets to finish the handshake (10 s).
    pub handshake_timeout_ms: u64,
    /// Time in-flight requests get to finish on shutdown (30 s, the Linux
    /// I/O timeout).
    pub drain_timeout_ms: u64,
    /// Handshake option limits.
    pub handshake: HandshakeLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 16,
            max_inflight: 128,
            max_request_bytes: DEFAULT_MAX_PAYLOAD,
            max_inflight_bytes: 64 << 20,
            handshake_timeout_ms: 10_000,
            drain_timeout_ms: 30_000,
            handshake: HandshakeLimits::default(),
        }
    }
}

/// What is exported and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportConfig {
    /// Export name (clients may also ask for the default export, "").
    pub name: String,
    /// Human-readable description (NBD_OPT_LIST, NBD_INFO_DESCRIPTION).
    pub description: String,
    pub read_only: bool,
    /// Offer structured replies (default true); see
    /// [`ExportInfo::structured_replies`].
    pub structured_replies: bool,
    pub limits: Limits,
}

impl ExportConfig {
    pub fn new(name: impl Into<String>) -> Self {
        ExportConfig {
            name: name.into(),
            description: String::new(),
            read_only: false,
            structured_replies: true,
            limits: Limits::default(),
        }
    }
}

/// Invalid configuration or device geometry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid NBD export configuration: {0}")]
pub struct ConfigError(pub String);

/// A snapshot of the export's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub connections_active: u64,
    pub connections_total: u64,
    /// Connections refused because `max_connections` were open.
    pub connections_rejected: u64,
    /// Connections ended by a protocol violation or handshake failure.
    pub protocol_errors: u64,
    /// Requests answered (all commands but DISC).
    pub requests: u64,
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    pub trims: u64,
    pub write_zeroes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Requests answered with an error.
    pub errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections_active: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub requests: AtomicU64,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub flushes: AtomicU64,
    pub trims: AtomicU64,
    pub write_zeroes: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub errors: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub(crate) struct Shared<D> {
    pub export: ExportInfo,
    pub limits: Limits,
    pub exec: Arc<Executor<D>>,
    pub counters: Counters,
    pub shutdown: watch::Sender<bool>,
    pub connections: Arc<Semaphore>,
}

/// An NBD server exporting one device. Cheap to clone; clones share the
/// export, limits, counters and shutdown.
pub struct NbdServer<D> {
    shared: Arc<Shared<D>>,
}

impl<D> Clone for NbdServer<D> {
    fn clone(&self) -> Self {
        NbdServer {
            shared: self.shared.clone(),
        }
    }
}

impl<D: BlockDevice> NbdServer<D> {
    /// Checks the configuration and the device geometry.
    pub fn new(device: Arc<D>, config: ExportConfig) -> Result<Self, ConfigError> {
        let l = config.limits;
        let bs = device.block_size();
        let size = device.size_bytes();
        let err = |m: String| Err(ConfigError(m));
        if !bs.is_power_of_two() || bs > 65536 {
            return err(format!("block size {bs} is not a power of two <= 65536"));
        }
        if !size.is_multiple_of(u64::from(bs)) {
            return err(format!(
                "size {size} is not a multiple of the block size {bs}"
            ));
        }
        if device.max_transfer_bytes() < bs || device.max_discard_bytes() < bs {
            return err("device transfer limits are smaller than one block".into());
        }
        if config.name.len() > MAX_STRING_LEN || config.description.len() > MAX_STRING_LEN {
            return err("export name and description are limited to 4096 bytes".into());
        }
        if config.name.contains('\0') || config.description.contains('\0') {
            return err("export name and description must not contain NUL".into());
        }
        if l.max_request_bytes < DEFAULT_MAX_PAYLOAD || !l.max_request_bytes.is_multiple_of(bs) {
            return err(
                "max_request_bytes must be >= 32 MiB and a multiple of the block size".into(),
            );
        }
        if l.max_inflight_bytes < u64::from(l.max_request_bytes) {
            return err("max_inflight_bytes must be >= max_request_bytes".into());
        }
        if l.max_connections == 0 || l.max_inflight == 0 {
            return err("max_connections and max_inflight must be >= 1".into());
        }
        let export = ExportInfo {
            name: config.name,
            description: config.description,
            size_bytes: size,
            read_only: config.read_only,
            min_block: bs,
            preferred_block: bs.max(4096),
            max_block: l.max_request_bytes,
            structured_replies: config.structured_replies,
        };
        Ok(NbdServer {
            shared: Arc::new(Shared {
                export,
                limits: l,
                exec: Arc::new(Executor::new(device)),
                counters: Counters::default(),
                shutdown: watch::channel(false).0,
                connections: Arc::new(Semaphore::new(l.max_connections)),
            }),
        })
    }

    /// The export as clients see it.
    pub fn export(&self) -> &ExportInfo {
        &self.shared.export
    }

    /// Current counters.
    pub fn stats(&self) -> ExportStats {
        let c = &self.shared.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ExportStats {
            connections_active: g(&c.connections_active),
            connections_total: g(&c.connections_total),
            connections_rejected: g(&c.connections_rejected),
            protocol_errors: g(&c.protocol_errors),
            requests: g(&c.requests),
            reads: g(&c.reads),
            writes: g(&c.writes),
            flushes: g(&c.flushes),
            trims: g(&c.trims),
            write_zeroes: g(&c.write_zeroes),
            bytes_read: g(&c.bytes_read),
            bytes_written: g(&c.bytes_written),
            errors: g(&c.errors),
        }
    }

    /// Starts a graceful shutdown: listeners stop accepting, connections
    /// stop reading requests, finish those in flight (up to
    /// `drain_timeout_ms`) and close. The `serve_*` calls then return.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shared.shutdown.borrow()
    }

    /// Serves TCP clients until [`NbdServer::shutdown`]; returns after
    /// every connection it accepted has closed.
    pub async fn serve_tcp(&self, listener: TcpListener) -> io::Result<()> {
        self.accept_loop(|| async {
            let (s, _) = listener.accept().await?;
            // "both the client and server SHOULD disable Nagle's algorithm".
            s.set_nodelay(true)?;
            Ok(s)
        })
        .await
    }

    /// Serves Unix socket clients until [`NbdServer::shutdown`].
    pub async fn serve_unix(&self, listener: UnixListener) -> io::Result<()> {
        self.accept_loop(|| async { Ok(listener.accept().await?.0) })
            .await
    }

    /// Serves one already connected client (any byte stream) to the end,
    /// within the connection limit. Returns false if refused (limit reached).
    pub async fn serve_stream<S>(&self, stream: S) -> bool
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        match self.admit() {
            Some(slot) => {
                crate::conn::serve(self.shared.clone(), stream, slot).await;
                true
            }
            None => false,
        }
    }

    fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let c = &self.shared.counters;
        match self.shared.connections.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                bump(&c.connections_rejected, 1);
                None
            }
        }
    }

    async fn accept_loop<S, F, Fut>(&self, mut accept: F) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = io::Result<S>>,
    {
        let mut stop = self.shared.shutdown.subscribe();
        let mut conns = JoinSet::new();
        let result = loop {
            if *stop.borrow_and_update() {
                break Ok(());
            }
            tokio::select! {
                _ = stop.changed() => continue,
                Some(_) = conns.join_next(), if !conns.is_empty() => continue,
                r = accept() => match r {
                    Ok(stream) => {
                        let Some(slot) = self.admit() else {
                            tracing::warn!("NBD connection refused: connection limit reached");
                            drop(stream);
                            continue;
                        };
                        let shared = self.shared.clone();
                        conns.spawn(crate::conn::serve(shared, stream, slot));
                    }
                    // Per-connection accept errors (ECONNABORTED, EMFILE...)
                    // must not stop the server: back off briefly.
                    Err(e) if is_transient(&e) => {
                        tracing::warn!("NBD accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => break Err(e),
                },
            }
        };
        while conns.join_next().await.is_some() {}
        result
    }
}

fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | OutOfMemory
    ) || e.raw_os_error().is_some_and(|c| c == 23 || c == 24) // ENFILE, EMFILE
}
