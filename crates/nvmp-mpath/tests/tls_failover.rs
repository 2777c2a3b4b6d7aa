//! Multipath over two TLS paths: verified I/O over both, one port goes down
//! (I/O fails over to the other TLS path), comes back (the path reconnects,
//! with a new TLS handshake, and carries I/O again), nothing lost.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use nvmp_host::nvmp_tls::{ConfiguredPsk, HostKey};
use nvmp_host::HostIdentity;
use nvmp_mpath::{MpathConfig, Multipath};
use nvmp_target::{TargetConfig, TargetHandle};

const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:7e570000-0000-4000-8000-00000000f0f0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_between_two_tls_paths() {
    init_tracing();
    let key = ConfiguredPsk::generate(2).unwrap();
    let json = config_json(&TargetDef::default())
        .replace(
            r#""treq": "not specified"}"#,
            r#""treq": "required", "tsas": "tls1.3"}"#,
        )
        .replace(
            r#""hosts": []"#,
            &format!(
                r#""hosts": [{{"nqn": "{HOST}", "psk": "{}"}}]"#,
                key.to_interchange()
            ),
        );
    let t = TargetHandle::start(TargetConfig::from_json(&json).unwrap())
        .await
        .unwrap();
    let addrs = [t.local_addr(1).unwrap(), t.local_addr(2).unwrap()];
    let mp = Multipath::new(MpathConfig::default());
    for a in addrs {
        // Plain TCP is refused on these ports.
        let plain = nvmp_host::Controller::connect(path_opts(a, NQN)).await;
        assert!(plain.is_err(), "plain TCP must be refused");
        let mut o = path_opts(a, NQN);
        o.host = HostIdentity {
            hostnqn: HOST.into(),
            hostid: [0xf0; 16],
        };
        o.tls = Some(HostKey::Configured {
            key: key.clone(),
            identity_version: 1,
            compat: false,
        });
        connect(&mp, o).await;
    }
    let head = mp.head(NQN, 1).expect("head");
    assert_eq!(head.paths().len(), 2);
    let stop = Arc::new(AtomicBool::new(false));
    let (stats, hs) = spawn_verified_load(head.clone(), 4, stop.clone());
    let p0 = head.paths()[0].clone();
    wait_until(
        "I/O on the optimized TLS path",
        Duration::from_secs(10),
        || p0.stats.ios.load(Relaxed) > 20,
    )
    .await;
    t.port_down(1).unwrap();
    wait_until("port 1 path unusable", Duration::from_secs(10), || {
        !p0.view().is_usable()
    })
    .await;
    let mid = stats.ios.load(Relaxed);
    wait_until(
        "I/O continues on the other TLS path",
        Duration::from_secs(15),
        || stats.ios.load(Relaxed) > mid + 20,
    )
    .await;
    t.port_up(1).unwrap();
    wait_until("port 1 path back over TLS", Duration::from_secs(15), || {
        p0.view().is_optimized()
    })
    .await;
    let back = p0.stats.ios.load(Relaxed);
    wait_until("I/O on the returned path", Duration::from_secs(10), || {
        p0.stats.ios.load(Relaxed) > back + 20
    })
    .await;
    stop.store(true, Relaxed);
    for h in hs {
        h.await.unwrap();
    }
    assert_eq!(stats.data_errors.load(Relaxed), 0);
    assert_eq!(stats.io_errors.load(Relaxed), 0);
    assert!(head.stats.failovers.load(Relaxed) >= 1 || mid > 0);
    mp.shutdown().await;
    t.shutdown().await;
}
