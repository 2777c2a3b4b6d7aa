//! The transmission data path: device panics, reads split by the transfer
//! limit (unaligned too), the in-flight limit, and replies coalesced into
//! few vectored writes.

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::raw::RawClient;
use common::*;
use nvmp_nbd::codec::RequestHeader;
use nvmp_nbd::proto::*;
use nvmp_nbd::{BlockDevice, ExportConfig, IoError, MemDevice, NbdServer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A MemDevice that panics on reads at `panic_at` and sleeps `delay_ms`
/// per read, counting how many reads run at once.
struct TestDevice {
    mem: MemDevice,
    panic_at: Option<u64>,
    delay_ms: u64,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

const PANIC_AT: u64 = 7 * 4096;

impl BlockDevice for TestDevice {
    fn size_bytes(&self) -> u64 {
        self.mem.size_bytes()
    }
    fn block_size(&self) -> u32 {
        self.mem.block_size()
    }
    fn max_transfer_bytes(&self) -> u32 {
        self.mem.max_transfer_bytes()
    }
    async fn read(&self, offset: u64, len: u32) -> Result<Bytes, IoError> {
        assert_ne!(Some(offset), self.panic_at, "test device: poisoned offset");
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        if self.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.delay_ms)).await;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.mem.read(offset, len).await
    }
    async fn write(&self, offset: u64, data: Bytes, fua: bool) -> Result<(), IoError> {
        self.mem.write(offset, data, fua).await
    }
    async fn flush(&self) -> Result<(), IoError> {
        self.mem.flush().await
    }
    async fn trim(&self, offset: u64, len: u32) -> Result<(), IoError> {
        self.mem.trim(offset, len).await
    }
    async fn write_zeroes(&self, offset: u64, len: u32, may_trim: bool) -> Result<(), IoError> {
        self.mem.write_zeroes(offset, len, may_trim).await
    }
}

/// Serves `dev` on 127.0.0.1:ephemeral from a runtime thread.
fn serve(dev: TestDevice, cfg: ExportConfig) -> (u16, NbdServer<TestDevice>, Arc<TestDevice>) {
    let dev = Arc::new(dev);
    let server = NbdServer::new(dev.clone(), cfg).expect("valid config");
    let srv = server.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(l.local_addr().expect("addr").port())
                .expect("send port");
            srv.serve_tcp(l).await.expect("serve");
        });
    });
    let port = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server started");
    (port, server, dev)
}

fn test_device(panic_at: Option<u64>, delay_ms: u64) -> TestDevice {
    TestDevice {
        mem: MemDevice::new(1 << 20, 512).with_max_transfer(4096),
        panic_at,
        delay_ms,
        running: AtomicUsize::new(0),
        max_running: AtomicUsize::new(0),
    }
}

#[test]
fn device_panic_is_an_eio_reply_and_the_connection_goes_on() {
    let (port, server, _dev) = serve(test_device(Some(PANIC_AT), 0), ExportConfig::new(NAME));
    for structured in [false, true] {
        let mut c = RawClient::connect(port, NAME, structured);
        c.write(0, &random_bytes(8192, 1));
        let r = c.call(CMD_READ, 0, 0, PANIC_AT as u32 + 4096, &[]);
        assert_eq!(r.error, 5, "EIO for the request whose device call panicked");
        if structured {
            assert!(r.message.contains("panicked"), "{}", r.message);
        }
        assert_eq!(c.read(0, 8192), random_bytes(8192, 1));
    }
    assert_eq!(server.stats().errors, 2);
    server.shutdown();
}

#[test]
fn reads_split_by_the_transfer_limit_unaligned_too() {
    let s = TestServer::start(MemDevice::new(1 << 20, 512).with_max_transfer(4096));
    let image = random_bytes(1 << 20, 9);
    for structured in [false, true] {
        let mut c = RawClient::connect(s.port, NAME, structured);
        c.write(0, &image);
        for (off, len) in [
            (0u64, 65536usize),
            (1000, 10000),
            (4095, 4098),
            (511, 1),
            (7, 12289),
        ] {
            let got = c.read(off, len as u32);
            assert!(
                got == image[off as usize..off as usize + len],
                "{off}+{len}"
            );
        }
    }
    assert!(s.dev.max_len_seen() <= 4096);
}

#[test]
fn in_flight_requests_are_limited_and_all_answered() {
    let mut cfg = ExportConfig::new(NAME);
    cfg.limits.max_inflight = 4;
    let (port, server, dev) = serve(test_device(None, 2), cfg);
    let mut c = RawClient::connect(port, NAME, true);
    let image = random_bytes(64 * 4096, 3);
    c.write(0, &image);
    for i in 0..64u64 {
        c.send(CMD_READ, 0, i, i * 4096, 4096, &[]);
    }
    let mut seen = [false; 64];
    for _ in 0..64 {
        let r = c.recv();
        assert_eq!(r.error, 0);
        let i = r.cookie as usize;
        assert!(!seen[i], "one reply per request");
        seen[i] = true;
        assert!(r.data == image[i * 4096..(i + 1) * 4096], "block {i}");
    }
    let max = dev.max_running.load(Ordering::SeqCst);
    assert!((2..=4).contains(&max), "{max} reads ran at once (limit 4)");
    server.shutdown();
}

/// A stream that counts the vectored writes the server makes.
struct Counting<S> {
    inner: S,
    writes: Arc<AtomicUsize>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if r.is_ready() {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn ready_replies_share_vectored_writes() {
    let dev = Arc::new(MemDevice::new(1 << 20, 512));
    let server = NbdServer::new(dev.clone(), ExportConfig::new("m")).unwrap();
    let (mut client, server_side) = tokio::net::UnixStream::pair().unwrap();
    let writes = Arc::new(AtomicUsize::new(0));
    let stream = Counting {
        inner: server_side,
        writes: writes.clone(),
    };
    let srv = server.clone();
    let task = tokio::spawn(async move { srv.serve_stream(stream).await });
    let mut greeting = [0u8; 18];
    client.read_exact(&mut greeting).await.unwrap();
    let mut hello = vec![0, 0, 0, 3];
    hello.extend_from_slice(&IHAVEOPT.to_be_bytes());
    hello.extend_from_slice(&OPT_EXPORT_NAME.to_be_bytes());
    hello.extend_from_slice(&1u32.to_be_bytes());
    hello.push(b'm');
    client.write_all(&hello).await.unwrap();
    let mut export = [0u8; 10];
    client.read_exact(&mut export).await.unwrap();
    let image = random_bytes(64 * 4096, 5);
    {
        let mut w = Vec::new();
        w.extend_from_slice(
            &RequestHeader {
                flags: 0,
                command: CMD_WRITE,
                cookie: 1000,
                offset: 0,
                length: image.len() as u32,
            }
            .encode(),
        );
        w.extend_from_slice(&image);
        client.write_all(&w).await.unwrap();
        let mut reply = [0u8; 16];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply, nvmp_nbd::codec::encode_simple_reply(1000, 0));
    }
    let before = writes.load(Ordering::SeqCst);
    // 64 reads in one send: their 64 replies (128 buffers) go out in a
    // few vectored writes, not one or two writes each.
    let mut batch = Vec::new();
    for i in 0..64u64 {
        let h = RequestHeader {
            flags: 0,
            command: CMD_READ,
            cookie: i,
            offset: i * 4096,
            length: 4096,
        };
        batch.extend_from_slice(&h.encode());
    }
    client.write_all(&batch).await.unwrap();
    for _ in 0..64 {
        let mut head = [0u8; 16];
        client.read_exact(&mut head).await.unwrap();
        assert_eq!(&head[..8], &[0x67, 0x44, 0x66, 0x98, 0, 0, 0, 0]);
        let i = u64::from_be_bytes(head[8..].try_into().unwrap()) as usize;
        let mut data = vec![0u8; 4096];
        client.read_exact(&mut data).await.unwrap();
        assert!(data == image[i * 4096..(i + 1) * 4096], "block {i}");
    }
    let used = writes.load(Ordering::SeqCst) - before;
    assert!(used <= 8, "64 replies took {used} vectored writes");
    drop(client);
    assert!(task.await.unwrap());
}
