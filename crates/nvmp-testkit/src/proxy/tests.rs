//! The proxy's rate limit through real sockets, in tokio's paused time:
//! the clock moves only by the bucket's waits, so bytes over (virtual)
//! time are exact however loaded the machine is.

use super::*;

const KIB: u64 = 1024;

/// An upstream that sends `n` bytes to whoever connects, then closes.
async fn source(n: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(&vec![7u8; n]).await.unwrap();
        let _ = s.shutdown().await;
    });
    a
}

/// An upstream that reads `n` bytes and reports when it has them.
async fn sink(
    n: usize,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Receiver<tokio::time::Instant>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; n];
        s.read_exact(&mut buf).await.unwrap();
        let _ = tx.send(tokio::time::Instant::now());
    });
    (a, rx)
}

#[tokio::test(start_paused = true)]
async fn to_host_rate_is_the_bucket_rate() {
    let n = 1024 * KIB;
    let p = FaultProxy::start(source(n as usize).await).await;
    p.set_rate_limit(
        Direction::ToHost,
        Some(RateLimit {
            bytes_per_s: 256 * KIB,
            burst_bytes: 64 * KIB,
        }),
    );
    assert_eq!(p.rate_limit(Direction::ToTarget), None);
    let t0 = tokio::time::Instant::now();
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(got.len() as u64, n);
    assert_eq!(p.forwarded(Direction::ToHost), n);
    // The burst passes at once, the rest at the rate: (1024 - 64) / 256 s.
    assert!((3.74..3.80).contains(&secs), "{secs} s");
}

#[tokio::test(start_paused = true)]
async fn to_target_rate_is_the_bucket_rate_and_unlimited_is_instant() {
    let n = 512 * KIB as usize;
    let (up, done) = sink(n).await;
    let p = FaultProxy::start(up).await;
    p.set_rate_limit(
        Direction::ToTarget,
        Some(RateLimit {
            bytes_per_s: 128 * KIB,
            burst_bytes: 64 * KIB,
        }),
    );
    let t0 = tokio::time::Instant::now();
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    c.write_all(&vec![1u8; n]).await.unwrap();
    let at = done.await.unwrap();
    let secs = (at - t0).as_secs_f64();
    assert_eq!(p.forwarded(Direction::ToTarget), n as u64);
    assert!((3.49..3.55).contains(&secs), "{secs} s");

    // Without a limit, no (virtual) time passes at all.
    let (up, done) = sink(n).await;
    let p = FaultProxy::start(up).await;
    p.set_rate_limit(Direction::ToTarget, Some(RateLimit::new(1)));
    p.set_rate_limit(Direction::ToTarget, None);
    let t0 = tokio::time::Instant::now();
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    c.write_all(&vec![1u8; n]).await.unwrap();
    assert_eq!(done.await.unwrap(), t0);
}
