//! DH-HMAC-CHAP between nvmp's host and nvmp's target (in process, real
//! loopback TCP): every hash × DH group, unidirectional and bidirectional,
//! on the admin queue and every I/O queue; wrong host key, wrong controller
//! key, unsupported group, missing secret refused with the reason named;
//! reconnect re-authenticates; re-authentication on request; a key changed
//! on the target makes re-authentication fail.

use std::time::Duration;

use bytes::Bytes;
use nvmp_auth::{DhGroup, HashId, Secret};
use nvmp_host::{Controller, ControllerOptions, CtrlState, HostError, HostIdentity};
use nvmp_target::{TargetConfig, TargetHandle};
use nvmp_testkit::free_port;
use serde_json::json;

const SUB: &str = "nqn.2026-12.io.nvmp:auth-it";

fn host() -> HostIdentity {
    HostIdentity::from_uuid([0x5a; 16])
}

fn secret(b: u8, len: usize, hash: u8) -> Secret {
    Secret::from_raw(&vec![b; len], hash).unwrap()
}

fn config(port: u16, dhchap: serde_json::Value) -> TargetConfig {
    let h = host().hostnqn;
    let c = json!({
        "hosts": [{"nqn": h, "dhchap": dhchap}],
        "ports": [{"portid": 1, "addr": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1",
                   "trsvcid": port.to_string(), "treq": "not specified"},
                   "param": {}, "ana_groups": [{"grpid": 1, "ana": {"state": "optimized"}}],
                   "referrals": [], "subsystems": [SUB]}],
        "subsystems": [{"nqn": SUB, "attr": {"allow_any_host": "0", "serial": "AUTH0001"},
                        "allowed_hosts": [h],
                        "namespaces": [{"nsid": 1, "enable": 1, "ana_grpid": 1,
                                        "device": {"size": "4M"}}]}]
    });
    TargetConfig::from_json(&c.to_string()).unwrap()
}

fn dhchap(key: &Secret, ctrl: Option<&Secret>, hash: HashId, group: DhGroup) -> serde_json::Value {
    json!({"key": key.to_dhhc1(), "ctrl_key": ctrl.map(|c| c.to_dhhc1()),
           "hash": hash.name(), "dhgroup": group.name()})
}

fn opts(port: u16, key: Option<&Secret>, ctrl: Option<&Secret>) -> ControllerOptions {
    let mut o = ControllerOptions::new("127.0.0.1", port, SUB);
    o.host = host();
    o.nr_io_queues = 2;
    o.kato_ms = 5000;
    o.reconnect_delay_ms = 200;
    o.admin_timeout_ms = 20_000;
    o.dhchap_secret = key.cloned();
    o.dhchap_ctrl_secret = ctrl.cloned();
    o
}

async fn write_read(c: &Controller) {
    let d = Bytes::from(vec![0xA5u8; 8192]);
    assert!(c.write(1, 8, d.clone(), 512, false).await.is_success());
    assert_eq!(c.read(1, 8, 16, 512).await.data, d);
}

async fn wait_state(c: &Controller, s: CtrlState, within: Duration) {
    let mut rx = c.watch_state();
    tokio::time::timeout(within, rx.wait_for(|x| *x == s))
        .await
        .unwrap_or_else(|_| panic!("not {s} within {within:?} (is {})", c.state()))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hash_and_group_uni_and_bidirectional() {
    let port = free_port();
    let key = secret(0x31, 32, 1);
    let ckey = secret(0x32, 48, 2);
    let t = TargetHandle::start(config(
        port,
        dhchap(&key, Some(&ckey), HashId::Sha256, DhGroup::Null),
    ))
    .await
    .unwrap();
    for hash in HashId::ALL {
        for group in DhGroup::ALL {
            t.set_dhchap_json(
                &host().hostnqn,
                Some(dhchap(&key, Some(&ckey), hash, group)),
            )
            .unwrap();
            for bidi in [false, true] {
                let o = opts(port, Some(&key), bidi.then_some(&ckey));
                let c = Controller::connect(o)
                    .await
                    .unwrap_or_else(|e| panic!("{hash} {group} bidi={bidi}: {e}"));
                assert_eq!(c.io_queues(), 2);
                write_read(&c).await;
                c.disconnect().await;
            }
        }
    }
    t.shutdown().await;
}

async fn refused(o: ControllerOptions) -> String {
    match Controller::connect(o).await {
        Ok(_) => panic!("connected"),
        Err(e @ HostError::Auth(_)) => e.to_string(),
        Err(e) => panic!("not an authentication error: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_unsupported_group_and_missing_secret_are_refused() {
    let port = free_port();
    let key = secret(0x41, 48, 2);
    let ckey = secret(0x42, 32, 0);
    let t = TargetHandle::start(config(
        port,
        dhchap(&key, Some(&ckey), HashId::Sha384, DhGroup::Ffdhe3072),
    ))
    .await
    .unwrap();
    // The right keys work, both ways.
    let c = Controller::connect(opts(port, Some(&key), Some(&ckey)))
        .await
        .unwrap();
    write_read(&c).await;
    c.disconnect().await;

    let e = refused(opts(port, Some(&secret(0x40, 48, 2)), None)).await;
    assert!(
        e.contains("controller refused authentication") && e.contains("wrong key"),
        "{e}"
    );

    let e = refused(opts(port, Some(&key), Some(&secret(0x43, 32, 0)))).await;
    assert!(e.contains("wrong controller key"), "{e}");

    let mut o = opts(port, Some(&key), None);
    o.dhchap_dhgroups = vec![DhGroup::Null, DhGroup::Ffdhe2048];
    let e = refused(o).await;
    assert!(e.contains("DH group not usable"), "{e}");

    let e = refused(opts(port, None, None)).await;
    assert!(e.contains("no DH-HMAC-CHAP secret"), "{e}");

    // A target that requires nothing cannot prove itself to a host that asks.
    t.set_dhchap_json(&host().hostnqn, None).unwrap();
    let e = refused(opts(port, Some(&key), Some(&ckey))).await;
    assert!(e.contains("does not require authentication"), "{e}");
    // ... while a host key alone is simply not used (as Linux).
    let c = Controller::connect(opts(port, Some(&key), None))
        .await
        .unwrap();
    write_read(&c).await;
    c.disconnect().await;
    // No controller from the refused attempts is left behind.
    let gone = async {
        while !t
            .status()
            .subsystems
            .iter()
            .all(|s| s.controllers.is_empty())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .expect("controllers torn down");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_and_reauthentication() {
    let port = free_port();
    let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    let key = secret(0x51, 64, 3);
    let ckey = secret(0x52, 64, 3);
    let t = TargetHandle::start(config(
        port,
        dhchap(&key, Some(&ckey), HashId::Sha512, DhGroup::Ffdhe2048),
    ))
    .await
    .unwrap();
    let c = Controller::connect(opts(port, Some(&key), Some(&ckey)))
        .await
        .unwrap();
    write_read(&c).await;
    // Re-authentication on request, every queue, while live.
    c.reauthenticate().await.unwrap();
    write_read(&c).await;
    // A reconnect authenticates every queue again.
    t.port_down(1).unwrap();
    wait_state(&c, CtrlState::Connecting, Duration::from_secs(20)).await;
    t.port_up(1).unwrap();
    wait_state(&c, CtrlState::Live, Duration::from_secs(30)).await;
    write_read(&c).await;
    // The key changes on the target: re-authentication now fails, named.
    t.set_dhchap_json(
        &host().hostnqn,
        Some(dhchap(
            &secret(0x53, 64, 3),
            Some(&ckey),
            HashId::Sha512,
            DhGroup::Ffdhe2048,
        )),
    )
    .unwrap();
    let e = c.reauthenticate().await.unwrap_err().to_string();
    assert!(e.contains("wrong key"), "{e}");
    c.disconnect().await;
    t.shutdown().await;
}
