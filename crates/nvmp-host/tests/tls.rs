//! NVMe/TCP over TLS 1.3 between nvmp's host and nvmp's target (real
//! loopback TCP): both cipher suites, I/O through TLS, the discovery log's
//! TREQ/TSAS, wrong key and unknown identity refused with reasons, a
//! TLS-required port refusing plain TCP, an optional port serving both; and
//! OpenSSL's `s_client`/`s_server` completing the handshake with the key and
//! identity nvmp derives and carrying the ICReq/ICResp exchange.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use nvmp_host::{discover, discovery_options, Controller, ControllerOptions, HostIdentity};
use nvmp_target::{TargetConfig, TargetHandle};
use nvmp_testkit::free_port;
use nvmp_tls::{ConfiguredPsk, HostKey};

const SUB: &str = "nqn.2024-01.io.nvmp:tls-it";
const H256: &str = "nqn.2014-08.org.nvmexpress:uuid:7e570000-0000-4000-8000-000000000256";
const H384: &str = "nqn.2014-08.org.nvmexpress:uuid:7e570000-0000-4000-8000-000000000384";
const STRANGER: &str = "nqn.2014-08.org.nvmexpress:uuid:7e570000-0000-4000-8000-00000000dead";

struct Keys {
    k256: ConfiguredPsk,
    k384: ConfiguredPsk,
}

fn keys() -> Keys {
    Keys {
        k256: ConfiguredPsk::generate(1).unwrap(),
        k384: ConfiguredPsk::generate(2).unwrap(),
    }
}

/// Port 1: TLS required; port 2: TLS optional ("not required").
fn config(p1: u16, p2: u16, k: &Keys) -> String {
    let port = |id: u16, p: u16, treq: &str| {
        format!(
            r#"{{"portid": {id}, "addr": {{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "{p}", "treq": "{treq}", "tsas": "tls1.3"}},
      "referrals": [], "subsystems": ["{SUB}"]}}"#
        )
    };
    format!(
        r#"{{"hosts": [{{"nqn": "{H256}", "psk": "{}"}}, {{"nqn": "{H384}", "psk": "{}"}}, {{"nqn": "{STRANGER}"}}],
  "ports": [{}, {}],
  "subsystems": [{{"nqn": "{SUB}", "attr": {{"allow_any_host": "1", "serial": "NVMPTLS0001", "model": "nvmp-tls-it", "version": "1.3", "cntlid_min": "1", "cntlid_max": "65519"}},
      "allowed_hosts": [],
      "namespaces": [{{"nsid": 1, "enable": 1, "ana_grpid": 1, "device": {{"size": "16M"}}}}]}}]}}"#,
        k.k256.to_interchange(),
        k.k384.to_interchange(),
        port(1, p1, "required"),
        port(2, p2, "not required"),
    )
}

fn opts(port: u16, host: &str, key: Option<HostKey>) -> ControllerOptions {
    let mut o = ControllerOptions::new("127.0.0.1", port, SUB);
    o.host = HostIdentity {
        hostnqn: host.to_string(),
        hostid: [7; 16],
    };
    o.nr_io_queues = 2;
    o.kato_ms = 5000;
    o.ctrl_loss_tmo_s = Some(0);
    o.connect_timeout_ms = 10_000;
    o.tls = key;
    o
}

fn configured(k: &ConfiguredPsk, version: u8) -> HostKey {
    HostKey::Configured {
        key: k.clone(),
        identity_version: version,
        compat: false,
    }
}

fn pattern(seed: u64, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u64 ^ seed).wrapping_mul(0x9e37) as u8)
        .collect::<Vec<u8>>()
        .into()
}

async fn start(k: &Keys) -> (TargetHandle, u16, u16) {
    let (p1, p2) = (free_port(), free_port());
    let t = TargetHandle::start(TargetConfig::from_json(&config(p1, p2, k)).unwrap())
        .await
        .unwrap();
    (t, p1, p2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_suites_carry_io() {
    let k = keys();
    let (_t, p1, p2) = start(&k).await;
    for (host, key, version, port) in [
        (H256, &k.k256, 0u8, p1),
        (H384, &k.k384, 1, p1),
        (H256, &k.k256, 1, p2),
    ] {
        let c = Controller::connect(opts(port, host, Some(configured(key, version))))
            .await
            .unwrap_or_else(|e| panic!("{host} v{version}: {e}"));
        let bs = c.identify_namespace(1).await.unwrap().block_size().unwrap();
        // In-capsule (4 KiB), R2T (256 KiB) and C2H data (1 MiB) through TLS.
        for (slba, len) in [(0u64, 4096usize), (64, 256 * 1024), (1024, 1 << 20)] {
            let d = pattern(slba ^ version as u64, len);
            assert!(c.write(1, slba, d.clone(), bs, false).await.is_success());
            assert_eq!(c.read(1, slba, (len as u32) / bs, bs).await.data, d);
        }
        // Many commands at once on both queues.
        let mut hs = vec![];
        for q in 0..16u64 {
            let c = c.clone();
            hs.push(tokio::spawn(async move {
                let d = pattern(q, 8192);
                assert!(c
                    .write(1, 4096 + q * 16, d.clone(), bs, false)
                    .await
                    .is_success());
                assert_eq!(c.read(1, 4096 + q * 16, 8192 / bs, bs).await.data, d);
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        c.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_log_tells_treq_and_tsas() {
    let k = keys();
    let (_t, p1, p2) = start(&k).await;
    // The discovery controller on the TLS-optional port, plain TCP.
    let mut d = discovery_options("127.0.0.1", p2);
    d.host.hostnqn = H256.into();
    let entries = discover(d).await.unwrap();
    let e1 = entries
        .iter()
        .find(|e| e.trsvcid.trim() == p1.to_string())
        .unwrap();
    let e2 = entries
        .iter()
        .find(|e| e.trsvcid.trim() == p2.to_string())
        .unwrap();
    assert_eq!(e1.treq & 3, 1, "port 1: TLS required");
    assert_eq!(e2.treq & 3, 2, "port 2: TLS not required");
    assert_eq!(e1.tsas[0], 2, "SECTYPE TLS 1.3");
    assert_eq!(e2.tsas[0], 2);
    // Discovery over TLS too (the discovery NQN in the identity).
    let mut d = discovery_options("127.0.0.1", p1);
    d.host.hostnqn = H384.into();
    d.tls = Some(configured(&k.k384, 1));
    assert!(!discover(d).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_their_reason() {
    let k = keys();
    let (_t, p1, p2) = start(&k).await;
    // Wrong key (version 0: the binder does not verify).
    let wrong = ConfiguredPsk::generate(1).unwrap();
    let e = Controller::connect(opts(p1, H256, Some(configured(&wrong, 0))))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("wrong key"), "{e}");
    // Wrong key, version 1 identity (the digest gives it away).
    let e = Controller::connect(opts(p1, H256, Some(configured(&wrong, 1))))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused PSK identity"), "{e}");
    // A host the target has no key for.
    let e = Controller::connect(opts(p1, STRANGER, Some(configured(&k.k256, 0))))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("refused PSK identity") && e.contains("dead"),
        "{e}"
    );
    // Plain TCP on the TLS-required port: refused.
    let e = Controller::connect(opts(p1, H256, None)).await.unwrap_err();
    let e = e.to_string();
    assert!(e.contains("ICReq") && e.contains("requires TLS"), "{e}");
    // TLS on a plain port of another target: the handshake fails clearly.
    let plain = free_port();
    let cfg = config(plain, free_port(), &k)
        .replace(r#", "tsas": "tls1.3""#, "")
        .replace(r#""treq": "required""#, r#""treq": "not specified""#);
    let _t2 = TargetHandle::start(TargetConfig::from_json(&cfg).unwrap())
        .await
        .unwrap();
    let e = Controller::connect(opts(plain, H256, Some(configured(&k.k256, 1))))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("TLS"), "{e}");
    // A Connect naming another host than the TLS identity: Connect Invalid Host.
    let psk = k.k256.tls_psk(H256, SUB, 0, false).unwrap();
    let e = Controller::connect(opts(p1, STRANGER, Some(HostKey::Psk(psk))))
        .await
        .unwrap_err();
    assert_eq!(
        e.status().map(|s| s.code),
        Some(nvmp_wire::StatusCode::CONNECT_INVALID_HOST),
        "{e}"
    );
    // The optional port still serves plain TCP.
    let c = Controller::connect(opts(p2, STRANGER, None)).await.unwrap();
    c.disconnect().await;
}

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `openssl s_client` with nvmp's derived identity and key completes the
/// handshake with nvmp's target and gets an ICResp for its ICReq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_to_nvmp_target() {
    assert!(
        have_openssl(),
        "openssl(1) is needed (scripts/test installs it)"
    );
    let k = keys();
    let (_t, p1, _) = start(&k).await;
    let psk = k.k256.tls_psk(H256, SUB, 1, false).unwrap();
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-tls1_3",
            "-ciphersuites",
            "TLS_AES_128_GCM_SHA256",
        ])
        .args(["-connect", &format!("127.0.0.1:{p1}")])
        .args(["-psk", &psk.key_hex(), "-psk_identity", &psk.identity])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // ICReq: PDU type 00h, HLEN 128, PLEN 128, PFV 0, HPDA 0, MAXR2T 0.
    let mut icreq = [0u8; 128];
    icreq[2] = 128;
    icreq[4] = 128;
    child.stdin.as_mut().unwrap().write_all(&icreq).unwrap();
    child.stdin.as_mut().unwrap().flush().unwrap();
    let mut out = child.stdout.take().unwrap();
    let got = tokio::task::spawn_blocking(move || {
        let mut icresp = [0u8; 128];
        out.read_exact(&mut icresp).map(|_| icresp)
    });
    let icresp = tokio::time::timeout(Duration::from_secs(30), got)
        .await
        .expect("ICResp in time")
        .unwrap()
        .expect("ICResp bytes");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(icresp[0], 0x01, "ICResp PDU type");
    assert_eq!(icresp[2], 128, "HLEN");
    assert_eq!(
        u32::from_le_bytes(icresp[4..8].try_into().unwrap()),
        128,
        "PLEN"
    );
}

/// nvmp's host completes the handshake with `openssl s_server` and sends
/// its ICReq; s_server (driven by the test) answers with an ICResp, and
/// the host goes on with its Fabrics Connect capsule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nvmp_host_to_openssl_s_server() {
    assert!(
        have_openssl(),
        "openssl(1) is needed (scripts/test installs it)"
    );
    let k = keys();
    let psk = k.k256.tls_psk(H256, SUB, 1, false).unwrap();
    let port = free_port();
    let mut child = Command::new("openssl")
        .args(["s_server", "-quiet", "-nocert", "-tls1_3"])
        .args(["-ciphersuites", "TLS_AES_128_GCM_SHA256"])
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .args(["-psk", &psk.key_hex(), "-psk_identity", &psk.identity])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut inp = child.stdin.take().unwrap();
    let exchange = tokio::task::spawn_blocking(move || -> std::io::Result<([u8; 128], [u8; 8])> {
        let mut icreq = [0u8; 128];
        out.read_exact(&mut icreq)?;
        let mut icresp = [0u8; 128];
        icresp[0] = 0x01;
        icresp[2] = 128;
        icresp[4] = 128;
        icresp[12..16].copy_from_slice(&(128 * 1024u32).to_le_bytes()); // MAXH2CDATA
        inp.write_all(&icresp)?;
        inp.flush()?;
        let mut next = [0u8; 8];
        out.read_exact(&mut next)?;
        Ok((icreq, next))
    });
    // Wait for s_server to listen (up to 30 s on a loaded machine).
    for _ in 0..600 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut o = opts(port, H256, Some(configured(&k.k256, 1)));
    o.connect_timeout_ms = 5_000;
    o.admin_timeout_ms = 5_000;
    let host = tokio::spawn(Controller::connect(o));
    let (icreq, next) = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("exchange in time")
        .unwrap()
        .expect("ICReq and next PDU");
    assert_eq!(icreq[0], 0x00, "ICReq PDU type");
    assert_eq!(u32::from_le_bytes(icreq[4..8].try_into().unwrap()), 128);
    assert_eq!(
        next[0], 0x04,
        "Fabrics Connect command capsule after the ICResp"
    );
    let _ = child.kill();
    let _ = child.wait();
    host.abort();
}
