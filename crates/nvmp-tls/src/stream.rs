//! A TLS connection over a tokio `TcpStream`, without unsafe code: OpenSSL
//! works on a synchronous adapter ([`Io`]) whose reads and writes are
//! tokio's non-blocking `try_read`/`try_write`; readiness is awaited
//! outside of OpenSSL.
//!
//! - Reads: ciphertext is read ahead in 64 KiB chunks (one system call
//!   for many TLS records, instead of two per record).
//! - Writes: plaintext from many I/O vector entries is gathered into full
//!   16 KiB records (a PDU header is not a record of its own), and the
//!   ciphertext of a batch goes out in one `write`. A write is reported
//!   done only once its ciphertext left; until then it answers "would
//!   block" and must be retried with the same bytes (as `SSL_write`), which
//!   both queue drivers of nvmp do.
//!
//! The read and write halves share the OpenSSL object behind a mutex held
//! only for non-blocking calls.

use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use openssl::ssl::{ErrorCode, SslStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Ciphertext read per system call.
const READ_AHEAD: usize = 64 * 1024;
/// Plaintext encrypted per write call (four full records).
const STAGE: usize = 64 * 1024;

/// The synchronous side OpenSSL reads and writes.
pub(crate) struct Io {
    tcp: Arc<TcpStream>,
    rbuf: Box<[u8]>,
    rpos: usize,
    rlen: usize,
    wbuf: Vec<u8>,
    wpos: usize,
}

impl Io {
    pub(crate) fn new(tcp: Arc<TcpStream>) -> Self {
        Self {
            tcp,
            rbuf: vec![0u8; READ_AHEAD].into_boxed_slice(),
            rpos: 0,
            rlen: 0,
            wbuf: Vec::with_capacity(STAGE + 1024),
            wpos: 0,
        }
    }

    /// Send queued ciphertext; `Ok(true)` once none is left.
    pub(crate) fn send(&mut self) -> io::Result<bool> {
        while self.wpos < self.wbuf.len() {
            match self.tcp.try_write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        Ok(true)
    }
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rpos == self.rlen {
            self.rpos = 0;
            self.rlen = 0;
            let n = self.tcp.try_read(&mut self.rbuf)?;
            if n == 0 {
                return Ok(0);
            }
            self.rlen = n;
        }
        let n = buf.len().min(self.rlen - self.rpos);
        buf[..n].copy_from_slice(&self.rbuf[self.rpos..self.rpos + n]);
        self.rpos += n;
        Ok(n)
    }
}

impl Write for Io {
    /// Always takes everything: the caller bounds what it encrypts at once.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.wbuf.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) struct Inner {
    pub(crate) ssl: SslStream<Io>,
    /// Plaintext bytes encrypted but whose ciphertext has not all left yet.
    unacked: usize,
    stage: Vec<u8>,
}

struct Shared {
    inner: Mutex<Inner>,
    tcp: Arc<TcpStream>,
}

fn tls_err(e: openssl::ssl::Error) -> io::Error {
    match e.into_io_error() {
        Ok(e) => e,
        Err(e) => io::Error::other(format!("TLS: {e}")),
    }
}

/// An established TLS connection; split it into halves for the queue
/// drivers.
pub struct TlsStream {
    sh: Arc<Shared>,
}

impl TlsStream {
    pub(crate) fn new(ssl: SslStream<Io>, tcp: Arc<TcpStream>) -> Self {
        Self {
            sh: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    ssl,
                    unacked: 0,
                    stage: Vec::with_capacity(STAGE),
                }),
                tcp,
            }),
        }
    }
    pub fn split(self) -> (TlsRead, TlsWrite) {
        (
            TlsRead {
                sh: self.sh.clone(),
            },
            TlsWrite { sh: self.sh },
        )
    }
    /// The cipher suite negotiated.
    pub fn cipher(&self) -> String {
        lock(&self.sh)
            .ssl
            .ssl()
            .current_cipher()
            .map_or_else(String::new, |c| c.name().to_string())
    }
}

fn lock(sh: &Shared) -> MutexGuard<'_, Inner> {
    sh.inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// The reading half.
pub struct TlsRead {
    sh: Arc<Shared>,
}
/// The writing half.
pub struct TlsWrite {
    sh: Arc<Shared>,
}

impl AsyncRead for TlsRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut g = lock(&self.sh);
            let r = g.ssl.ssl_read(buf.initialize_unfilled());
            match r {
                Ok(n) => {
                    buf.advance(n);
                    // One record per SSL_read: take in every record already
                    // here (read ahead) while there is room, so that the
                    // caller parses many PDUs per wakeup.
                    while buf.remaining() > 0 {
                        match g.ssl.ssl_read(buf.initialize_unfilled()) {
                            Ok(n) if n > 0 => buf.advance(n),
                            _ => break,
                        }
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) => match e.code() {
                    ErrorCode::ZERO_RETURN => return Poll::Ready(Ok(())),
                    ErrorCode::WANT_READ
                        if e.io_error()
                            .is_none_or(|e| e.kind() == io::ErrorKind::WouldBlock) =>
                    {
                        // Anything OpenSSL queued while reading (an alert,
                        // a key update) goes out.
                        let _ = g.ssl.get_mut().send();
                        drop(g);
                        match self.sh.tcp.poll_read_ready(cx) {
                            Poll::Ready(Ok(())) => continue,
                            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                    ErrorCode::SYSCALL if e.io_error().is_none() => {
                        return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
                    }
                    _ => return Poll::Ready(Err(tls_err(e))),
                },
            }
        }
    }
}

impl TlsWrite {
    /// Encrypt and send what `bufs` hold, without waiting (as
    /// `TcpStream::try_write_vectored`). "Would block" means: wait for
    /// [`TlsWrite::writable`], then call again with the same bytes.
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut g = lock(&self.sh);
        let g = &mut *g;
        if g.unacked > 0 {
            if !g.ssl.get_mut().send()? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            return Ok(std::mem::take(&mut g.unacked));
        }
        if !g.ssl.get_mut().send()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        g.stage.clear();
        for b in bufs {
            let room = STAGE - g.stage.len();
            if room == 0 {
                break;
            }
            g.stage.extend_from_slice(&b[..b.len().min(room)]);
        }
        if g.stage.is_empty() {
            return Ok(0);
        }
        let mut off = 0;
        while off < g.stage.len() {
            match g.ssl.ssl_write(&g.stage[off..]) {
                Ok(n) => off += n,
                Err(e) => return Err(tls_err(e)),
            }
        }
        if g.ssl.get_mut().send()? {
            Ok(off)
        } else {
            g.unacked = off;
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    /// Wait until the socket takes more.
    pub async fn writable(&self) -> io::Result<()> {
        self.sh.tcp.writable().await
    }

    /// Send close_notify and shut the socket's sending side.
    pub fn close(&self) {
        let mut g = lock(&self.sh);
        let _ = g.ssl.shutdown();
        let _ = g.ssl.get_mut().send();
        let _ = socket2::SockRef::from(&*self.sh.tcp).shutdown(std::net::Shutdown::Write);
    }
}

impl AsyncWrite for TlsWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.sh.tcp.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                r => return Poll::Ready(r),
            }
        }
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let sent = lock(&self.sh).ssl.get_mut().send()?;
            if sent {
                return Poll::Ready(Ok(()));
            }
            match self.sh.tcp.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.as_mut().poll_flush(cx) {
            Poll::Ready(_) => {
                self.close();
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
