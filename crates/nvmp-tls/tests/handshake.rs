//! TLS 1.3 PSK handshakes over loopback TCP: both cipher suites, data both
//! ways in both halves, and refusals that name their reason on both sides.

use std::io::IoSlice;
use std::time::Duration;

use nvmp_tls::{accept, connect, ClientConfig, ConfiguredPsk, KeyStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001";
const SUB: &str = "nqn.2024-01.io.nvmp:tls";
const T: Duration = Duration::from_secs(30);

async fn pair(
    server: ServerConfig,
    client: ClientConfig,
) -> (
    Result<(nvmp_tls::TlsStream, nvmp_tls::TlsPeer), nvmp_tls::TlsError>,
    Result<nvmp_tls::TlsStream, nvmp_tls::TlsError>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let srv = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        accept(s, &server).await
    });
    let c = TcpStream::connect(addr).await.unwrap();
    let cr = tokio::time::timeout(T, connect(c, &client)).await.unwrap();
    let sr = tokio::time::timeout(T, srv).await.unwrap().unwrap();
    (sr, cr)
}

fn store(hmac: u8) -> (ConfiguredPsk, KeyStore) {
    let k = ConfiguredPsk::generate(hmac).unwrap();
    let mut s = KeyStore::new();
    s.insert_host(HOST, k.clone()).unwrap();
    (k, s)
}

#[tokio::test]
async fn both_suites_carry_data() {
    for (hmac, version, suite) in [
        (1, 0, "TLS_AES_128_GCM_SHA256"),
        (2, 1, "TLS_AES_256_GCM_SHA384"),
        (1, 1, "TLS_AES_128_GCM_SHA256"),
    ] {
        let (k, keys) = store(hmac);
        let psk = k.tls_psk(HOST, SUB, version, false).unwrap();
        let id = psk.identity.clone();
        let (s, c) = pair(
            ServerConfig::new(keys).unwrap(),
            ClientConfig::new(psk).unwrap(),
        )
        .await;
        let (s, peer) = s.unwrap();
        let c = c.unwrap();
        assert_eq!(peer.identity, id);
        assert_eq!(peer.cipher, suite);
        assert_eq!(c.cipher(), suite);
        let (mut sr, sw) = s.split();
        let (mut cr, mut cw) = c.split();
        // 1 MiB host -> target through vectored writes, echoed back.
        let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
        let d2 = data.clone();
        let echo = tokio::spawn(async move {
            let mut got = vec![0u8; d2.len()];
            sr.read_exact(&mut got).await.unwrap();
            assert_eq!(got, d2);
            let mut off = 0;
            while off < got.len() {
                let end = (off + 100_000).min(got.len());
                let (a, b) = got[off..end].split_at((end - off) / 3);
                match sw.try_write_vectored(&[IoSlice::new(a), IoSlice::new(b)]) {
                    Ok(n) => off += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        sw.writable().await.unwrap()
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            sw.close();
        });
        for chunk in data.chunks(70_000) {
            let (a, b) = chunk.split_at(24);
            let mut bufs = [IoSlice::new(a), IoSlice::new(b)];
            let mut left: &mut [IoSlice<'_>] = &mut bufs;
            while !left.is_empty() {
                let n = cw.write_vectored(left).await.unwrap();
                IoSlice::advance_slices(&mut left, n);
            }
        }
        let mut back = vec![0u8; data.len()];
        tokio::time::timeout(T, cr.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, data);
        // close_notify: end of stream.
        assert_eq!(cr.read(&mut [0u8; 16]).await.unwrap(), 0);
        echo.await.unwrap();
    }
}

#[tokio::test]
async fn wrong_key_is_refused_with_reasons() {
    let (_, keys) = store(1);
    let other = ConfiguredPsk::generate(1).unwrap();
    let psk = other.tls_psk(HOST, SUB, 0, false).unwrap();
    let (s, c) = pair(
        ServerConfig::new(keys).unwrap(),
        ClientConfig::new(psk).unwrap(),
    )
    .await;
    let se = s.err().expect("server must refuse").to_string();
    let ce = c.err().expect("client must fail").to_string();
    assert!(se.contains("wrong key"), "{se}");
    assert!(ce.contains("wrong key"), "{ce} / server: {se}");
    assert!(ce.contains("NVMe0R01"), "{ce}");
}

#[tokio::test]
async fn version1_wrong_key_is_a_digest_mismatch() {
    let (_, keys) = store(2);
    let other = ConfiguredPsk::generate(2).unwrap();
    let psk = other.tls_psk(HOST, SUB, 1, false).unwrap();
    let (s, c) = pair(
        ServerConfig::new(keys).unwrap(),
        ClientConfig::new(psk).unwrap(),
    )
    .await;
    let se = s.err().unwrap().to_string();
    assert!(se.contains("digest does not match"), "{se}");
    assert!(c.is_err());
}

#[tokio::test]
async fn unknown_identity_is_refused_with_reasons() {
    let (k, keys) = store(1);
    let psk = k
        .tls_psk("nqn.2024-01.io.nvmp:stranger", SUB, 0, false)
        .unwrap();
    let (s, c) = pair(
        ServerConfig::new(keys).unwrap(),
        ClientConfig::new(psk).unwrap(),
    )
    .await;
    let se = s.err().unwrap().to_string();
    let ce = c.err().unwrap().to_string();
    assert!(se.contains("unknown PSK identity"), "{se}");
    assert!(se.contains("stranger"), "{se}");
    assert!(ce.contains("refused PSK identity"), "{ce}");
}

#[tokio::test]
async fn key_file_entries_are_used_as_is() {
    let k = ConfiguredPsk::generate(2).unwrap();
    let psk = k.tls_psk(HOST, SUB, 1, false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("keys");
    nvmp_tls::append_key_file(&f, &psk).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let keys = KeyStore::load_file(&f).unwrap();
    assert_eq!(keys.find_for(HOST, SUB).unwrap(), psk);
    assert!(keys.find_for(HOST, "nqn.other").is_none());
    let (s, c) = pair(
        ServerConfig::new(keys).unwrap(),
        ClientConfig::new(psk).unwrap(),
    )
    .await;
    assert_eq!(s.unwrap().1.cipher, "TLS_AES_256_GCM_SHA384");
    c.unwrap();
}

/// A plain NVMe/TCP peer (an ICReq where a ClientHello should be).
#[tokio::test]
async fn plain_bytes_fail_the_server_handshake() {
    let (_, keys) = store(1);
    let server = ServerConfig::new(keys).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let srv = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        accept(s, &server).await
    });
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut icreq = [0u8; 128];
    icreq[1] = 128;
    icreq[2] = 128;
    c.write_all(&icreq).await.unwrap();
    let r = tokio::time::timeout(T, srv).await.unwrap().unwrap();
    assert!(r.is_err());
}
