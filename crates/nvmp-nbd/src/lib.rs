#![forbid(unsafe_code)]
//! `nvmp-nbd`: an NBD server (fixed newstyle handshake, structured replies)
//! over any async [`BlockDevice`].
//!
//! Layers: [`proto`] (constants), [`handshake`] and [`codec`] (sans-IO:
//! bytes in, bytes out), `exec` (alignment and splitting on the device),
//! `conn` and [`server`] (the tokio driver).
//!
//! Behaviour worth knowing:
//! - One export per server (clients may also ask for the default export,
//!   `""`). No TLS, no metadata contexts / block status, no extended
//!   headers: those options get `NBD_REP_ERR_UNSUP`, as the spec allows.
//!   Structured replies can be turned off too
//!   ([`ExportConfig::structured_replies`]): simple replies cost libnbd
//!   clients two `recv`s per read instead of four.
//! - Block sizes: minimum = the device block size, preferred = max(it,
//!   4096), maximum = `Limits::max_request_bytes` (32 MiB). Requests that
//!   are not block aligned are still served (read-modify-write under an
//!   export-wide lock; see `exec`), so clients that never asked for block
//!   sizes work too. Requests bigger than the device's transfer limit are
//!   split, chunks running concurrently.
//! - Errors: out of range reads/trims `EINVAL`, writes `ENOSPC`, read-only
//!   `EPERM`, unknown commands or flags `EINVAL`, device errors as the
//!   device reports them; the connection goes on. Bad request magic, a
//!   write payload above the cap, or a malformed handshake end the
//!   connection (a hard disconnect, which the spec permits) and nothing
//!   else.
//! - Limits: connections, handshake time, option count and size, requests
//!   and payload bytes in flight per connection; see [`Limits`].
//! - Data path (`conn`): one task per connection, none per request. Every
//!   complete request in the receive buffer is parsed after each read
//!   syscall; write payloads are slices of that buffer handed to the device
//!   (no copy); requests run as futures of the connection task (a panic in
//!   the device is caught and answered with `EIO`); replies are header
//!   bytes plus the read data's buffers, and all ready replies go out in
//!   one vectored write.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use nvmp_nbd::{ExportConfig, MemDevice, NbdServer};
//! let dev = Arc::new(MemDevice::new(64 << 20, 512));
//! let server = NbdServer::new(dev, ExportConfig::new("disk")).expect("valid config");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:10809").await?;
//! server.serve_tcp(listener).await
//! # }
//! ```

pub mod codec;
mod conn;
pub mod device;
mod exec;
pub mod handshake;
pub mod proto;
pub mod server;
mod slots;

pub use device::{BlockDevice, IoError, IoErrorKind, MemDevice};
pub use handshake::{ExportInfo, HandshakeLimits, Negotiated};
pub use server::{ConfigError, ExportConfig, ExportStats, Limits, NbdServer};
