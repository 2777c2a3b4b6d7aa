//! The tokio driver through raw sockets: pipelining, alignment handling,
//! error replies, hostile clients, limits and shutdown.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::raw::{connect, is_closed, RawClient};
use common::*;
use nvmp_nbd::proto::*;
use nvmp_nbd::{ExportConfig, IoErrorKind, MemDevice};

#[test]
fn pipelined_requests_simple_and_structured() {
    let s = TestServer::start(MemDevice::new(1 << 20, 512).with_max_transfer(8192));
    for structured in [false, true] {
        let mut c = RawClient::connect(s.port, NAME, structured);
        assert_eq!(c.size, 1 << 20);
        assert_eq!(c.tx_flags & TX_SEND_DF != 0, structured);
        let blocks: Vec<Vec<u8>> = (0..64).map(|i| random_bytes(16384, i + 100)).collect();
        for (i, b) in blocks.iter().enumerate() {
            c.send(
                CMD_WRITE,
                CMD_FLAG_FUA,
                i as u64,
                i as u64 * 16384,
                16384,
                b,
            );
        }
        for i in 0..64u64 {
            c.send(CMD_READ, 0, 1000 + i, i * 16384, 16384, &[]);
        }
        let mut seen = std::collections::HashSet::new();
        for _ in 0..128 {
            let r = c.recv();
            assert_eq!(r.error, 0);
            assert!(seen.insert(r.cookie));
            if r.cookie >= 1000 {
                // Reads were sent after the writes were queued but may have
                // run before them: check the data only from a second pass.
                assert_eq!(r.data.len(), 16384);
            }
        }
        for (i, b) in blocks.iter().enumerate() {
            assert!(c.read(i as u64 * 16384, 16384) == *b, "block {i}");
        }
        c.send(CMD_DISC, 0, 0, 0, 0, &[]);
        assert!(c.is_closed());
    }
    assert!(s.dev.max_len_seen() <= 8192);
}

#[test]
fn unaligned_requests_use_read_modify_write() {
    let s = TestServer::start(MemDevice::new(64 * 1024, 4096));
    let mut c = RawClient::connect(s.port, NAME, true);
    let mut model = vec![0u8; 64 * 1024];
    let base = random_bytes(64 * 1024, 1);
    c.write(0, &base);
    model.copy_from_slice(&base);
    for (off, len, seed) in [
        (5000u64, 100usize, 2u64),
        (4090, 20, 3),
        (8191, 8194, 4),
        (0, 1, 5),
        (65535, 1, 6),
    ] {
        let d = random_bytes(len, seed);
        c.write(off, &d);
        model[off as usize..off as usize + len].copy_from_slice(&d);
    }
    // Zeroes: inside one block, and spanning whole blocks with ragged edges.
    for (off, len) in [(12300u64, 10u32), (20000, 9000)] {
        let r = c.call(CMD_WRITE_ZEROES, CMD_FLAG_NO_HOLE, off, len, &[]);
        assert_eq!(r.error, 0);
        model[off as usize..(off + u64::from(len)) as usize].fill(0);
    }
    // Trim of a partial range only drops whole blocks; data stays defined
    // here because MemDevice trims to zero.
    let r = c.call(CMD_TRIM, 0, 40000, 10000, &[]);
    assert_eq!(r.error, 0);
    model[40960..49152].fill(0);
    assert!(c.read(0, 64 * 1024) == model);
    assert!(c.read(4093, 7) == model[4093..4100]);
    assert!(s.dev.snapshot() == model);
    // Concurrent one-byte writes into the same block: none may be lost.
    for i in 0..32u64 {
        c.send(CMD_WRITE, 0, i, 30000 + i * 3, 1, &[0xf0 | (i as u8 & 0xf)]);
    }
    for _ in 0..32 {
        assert_eq!(c.recv().error, 0);
    }
    let got = c.read(30000, 96);
    for i in 0..32usize {
        assert_eq!(got[i * 3], 0xf0 | (i as u8 & 0xf), "byte {i} lost");
    }
}

type Case = (u16, u16, u64, u32, &'static [u8], u32);

#[test]
fn error_replies_keep_the_connection() {
    let s = TestServer::start(MemDevice::new(1 << 20, 512));
    for structured in [false, true] {
        let mut c = RawClient::connect(s.port, NAME, structured);
        // (command, flags, offset, length, payload, expected NBD errno)
        let cases: [Case; 7] = [
            (CMD_READ, 0, 1 << 20, 512, &[], 22),
            (CMD_READ, 0, u64::MAX - 10, 512, &[], 22),
            (CMD_WRITE, 0, (1 << 20) - 1, 2, &[1, 2], 28),
            (CMD_TRIM, 0, 0, u32::MAX, &[], 22),
            (CMD_READ, 0, 0, (1 << 25) + 512, &[], 22),
            (CMD_BLOCK_STATUS, 0, 0, 512, &[], 22),
            (99, 0, 0, 0, &[], 22),
        ];
        for (cmd, flags, off, len, payload, errno) in cases {
            let r = c.call(cmd, flags, off, len, payload);
            assert_eq!(r.error, errno, "cmd {cmd} off {off} len {len}");
            assert!(r.data.is_empty());
            if structured {
                assert!(!r.message.is_empty());
            }
        }
        // An unknown flag on a write: the payload is consumed, EINVAL.
        let r = c.call(CMD_WRITE, 1 << 9, 0, 4, b"abcd");
        assert_eq!(r.error, 22);
        s.dev.inject_error(Some(IoErrorKind::Io));
        assert_eq!(c.call(CMD_READ, 0, 0, 512, &[]).error, 5);
        assert_eq!(c.call(CMD_FLUSH, 0, 0, 0, &[]).error, 5);
        s.dev.inject_error(None);
        c.write(512, b"still works, still works, still!");
        assert_eq!(&c.read(512, 5), b"still");
    }
    let st = s.server.stats();
    assert_eq!(st.errors, 2 * 10);
    assert_eq!(st.protocol_errors, 0);

    let mut cfg = ExportConfig::new(NAME);
    cfg.read_only = true;
    let ro = TestServer::start_with(MemDevice::new(1 << 20, 512), cfg);
    let mut c = RawClient::connect(ro.port, NAME, true);
    assert_ne!(c.tx_flags & TX_READ_ONLY, 0);
    for cmd in [CMD_WRITE, CMD_TRIM, CMD_WRITE_ZEROES] {
        let payload: &[u8] = if cmd == CMD_WRITE { &[0; 512] } else { &[] };
        assert_eq!(c.call(cmd, 0, 0, 512, payload).error, 1, "cmd {cmd}");
    }
    assert_eq!(c.read(0, 512), vec![0; 512]);
}

#[test]
fn hostile_clients_do_not_disturb_others() {
    let s = TestServer::start(MemDevice::new(1 << 20, 512));
    let mut good = RawClient::connect(s.port, NAME, true);
    good.write(0, b"good data");

    // Garbage instead of client flags / options.
    let mut g = connect(s.port);
    g.write_all(&random_bytes(4096, 9)).unwrap();
    assert!(is_closed(&mut g));
    // A huge option length.
    let mut g = connect(s.port);
    let mut v = 1u32.to_be_bytes().to_vec();
    v.extend_from_slice(&IHAVEOPT.to_be_bytes());
    v.extend_from_slice(&OPT_GO.to_be_bytes());
    v.extend_from_slice(&u32::MAX.to_be_bytes());
    g.write_all(&v).unwrap();
    assert!(is_closed(&mut g));
    // Bad request magic after a good handshake.
    let mut c = RawClient::connect(s.port, NAME, false);
    c.s.write_all(&[0xde; 28]).unwrap();
    assert!(c.is_closed());
    // A write announcing 4 GiB of payload.
    let mut c = RawClient::connect(s.port, NAME, true);
    c.send(CMD_WRITE, 0, 1, 0, u32::MAX, &[0; 100]);
    assert!(c.is_closed());
    // Unknown export through NBD_OPT_EXPORT_NAME: the server must hang up.
    let mut g = connect(s.port);
    let mut v = 1u32.to_be_bytes().to_vec();
    v.extend_from_slice(&IHAVEOPT.to_be_bytes());
    v.extend_from_slice(&OPT_EXPORT_NAME.to_be_bytes());
    v.extend_from_slice(&4u32.to_be_bytes());
    v.extend_from_slice(b"nope");
    g.write_all(&v).unwrap();
    assert!(is_closed(&mut g));
    // A client that connects and then vanishes mid-request.
    let mut c = RawClient::connect(s.port, NAME, true);
    c.s.write_all(&REQUEST_MAGIC.to_be_bytes()).unwrap();
    drop(c);

    // The first client and new clients are still served.
    assert_eq!(&good.read(0, 9), b"good data");
    let mut fresh = RawClient::connect(s.port, NAME, false);
    assert_eq!(&fresh.read(0, 9), b"good data");
    let st = s.server.stats();
    assert_eq!(st.protocol_errors, 5, "{st:?}");
}

#[test]
fn limits_connections_and_handshake_time() {
    let mut cfg = ExportConfig::new(NAME);
    cfg.limits.max_connections = 2;
    cfg.limits.handshake_timeout_ms = 1000;
    let s = TestServer::start_with(MemDevice::new(1 << 20, 512), cfg);
    let mut a = RawClient::connect(s.port, NAME, true);
    let mut idle = connect(s.port); // never completes the handshake
    let mut third = connect(s.port);
    assert!(is_closed(&mut third), "third connection must be refused");
    let t = Instant::now();
    assert!(is_closed(&mut idle), "idle handshake must time out");
    assert!(t.elapsed() < Duration::from_secs(5));
    // Its slot is free again once the server has counted it gone.
    while s.server.stats().connections_active > 1 {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut b = RawClient::connect(s.port, NAME, false);
    a.write(0, b"x");
    assert_eq!(b.read(0, 1), b"x");
    let st = s.server.stats();
    assert_eq!(st.connections_rejected, 1, "{st:?}");
    assert_eq!(st.connections_active, 2, "{st:?}");
}

#[test]
fn disc_answers_outstanding_requests_then_closes() {
    let s = TestServer::start(MemDevice::new(1 << 20, 512));
    let mut c = RawClient::connect(s.port, NAME, true);
    let data = random_bytes(65536, 3);
    c.send(CMD_WRITE, 0, 1, 0, 65536, &data);
    c.send(CMD_READ, 0, 2, 65536, 4096, &[]);
    c.send(CMD_DISC, 0, 3, 0, 0, &[]);
    let mut cookies = vec![c.recv().cookie, c.recv().cookie];
    cookies.sort();
    assert_eq!(cookies, [1, 2]);
    assert!(c.is_closed());
    assert!(s.dev.snapshot()[..65536] == data);
}

#[test]
fn shutdown_closes_idle_clients_and_returns() {
    let s = TestServer::start(MemDevice::new(1 << 20, 512));
    let mut c = RawClient::connect(s.port, NAME, true);
    c.write(0, b"before shutdown");
    let mut h = connect(s.port); // still in the handshake
    s.server.shutdown();
    assert!(c.is_closed());
    assert!(is_closed(&mut h));
    let t = Instant::now();
    drop(s); // joins the server thread: serve_tcp / serve_unix returned
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn serve_stream_over_in_memory_duplex() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dev = Arc::new(MemDevice::new(1 << 20, 512));
    let server = nvmp_nbd::NbdServer::new(dev.clone(), ExportConfig::new("m")).unwrap();
    let (mut client, server_side) = tokio::io::duplex(1 << 20);
    let srv = server.clone();
    let task = tokio::spawn(async move { srv.serve_stream(server_side).await });

    let mut greeting = [0u8; 18];
    client.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting[..16], b"NBDMAGICIHAVEOPT");
    let mut hello = vec![0, 0, 0, 3];
    hello.extend_from_slice(&IHAVEOPT.to_be_bytes());
    hello.extend_from_slice(&OPT_EXPORT_NAME.to_be_bytes());
    hello.extend_from_slice(&1u32.to_be_bytes());
    hello.push(b'm');
    client.write_all(&hello).await.unwrap();
    let mut export = [0u8; 10]; // size + flags, no zeroes (NO_ZEROES)
    client.read_exact(&mut export).await.unwrap();
    assert_eq!(u64::from_be_bytes(export[..8].try_into().unwrap()), 1 << 20);

    let write = nvmp_nbd::codec::RequestHeader {
        flags: 0,
        command: CMD_WRITE,
        cookie: 42,
        offset: 1024,
        length: 512,
    };
    client.write_all(&write.encode()).await.unwrap();
    client.write_all(&[0x5a; 512]).await.unwrap();
    let mut reply = [0u8; 16];
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, nvmp_nbd::codec::encode_simple_reply(42, 0));
    let disc = nvmp_nbd::codec::RequestHeader {
        command: CMD_DISC,
        length: 0,
        offset: 0,
        ..write
    };
    client.write_all(&disc.encode()).await.unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert!(task.await.unwrap(), "served within the connection limit");
    assert!(dev.snapshot()[1024..1536].iter().all(|&b| b == 0x5a));
    assert_eq!(server.stats().writes, 1);
}
