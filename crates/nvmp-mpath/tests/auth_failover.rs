//! Multipath over two DH-HMAC-CHAP paths (nvmp's target requires
//! authentication): verified I/O; port 1 goes down and up — its path
//! reconnects, authenticates again and carries I/O; then the host's key is
//! changed on the target and port 1 bounces again — the path cannot
//! authenticate, I/O fails over to port 2 with nothing lost, and the
//! path's reconnect failures say why (the controller refused: wrong key).

mod common;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use nvmp_auth::{DhGroup, HashId, Secret};
use nvmp_host::{CtrlEvent, HostIdentity};
use nvmp_mpath::{MpathConfig, Multipath};
use nvmp_target::config::dhchap::DhchapSpec;
use nvmp_target::{TargetConfig, TargetHandle};

const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:7e570000-0000-4000-8000-00000000a0a0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_when_a_path_cannot_authenticate() {
    init_tracing();
    let key = Secret::generate(48, 2).unwrap();
    let ckey = Secret::generate(32, 1).unwrap();
    let json = config_json(&TargetDef::default()).replace(
        r#""hosts": []"#,
        &format!(
            r#""hosts": [{{"nqn": "{HOST}", "dhchap": {{"key": "{}", "ctrl_key": "{}", "hash": "hmac(sha384)", "dhgroup": "ffdhe2048"}}}}]"#,
            key.to_dhhc1(),
            ckey.to_dhhc1()
        ),
    );
    let t = TargetHandle::start(TargetConfig::from_json(&json).unwrap())
        .await
        .unwrap();
    let addrs = [t.local_addr(1).unwrap(), t.local_addr(2).unwrap()];
    let mp = Multipath::new(MpathConfig::default());
    for a in addrs {
        let mut o = path_opts(a, NQN);
        o.host = HostIdentity {
            hostnqn: HOST.into(),
            hostid: [0xa0; 16],
        };
        // Without a secret the target refuses.
        assert!(nvmp_host::Controller::connect(o.clone()).await.is_err());
        o.dhchap_secret = Some(key.clone());
        o.dhchap_ctrl_secret = Some(ckey.clone());
        connect(&mp, o).await;
    }
    let head = mp.head(NQN, 1).expect("head");
    assert_eq!(head.paths().len(), 2);
    let stop = Arc::new(AtomicBool::new(false));
    let (stats, hs) = spawn_verified_load(head.clone(), 4, stop.clone());
    let p0 = head.paths()[0].clone();
    wait_until("I/O on path 1", Duration::from_secs(10), || {
        p0.stats.ios.load(Relaxed) > 20
    })
    .await;

    // A reconnect authenticates again.
    t.port_down(1).unwrap();
    wait_until("port 1 path unusable", Duration::from_secs(10), || {
        !p0.view().is_usable()
    })
    .await;
    t.port_up(1).unwrap();
    wait_until(
        "port 1 path re-authenticated",
        Duration::from_secs(20),
        || p0.view().is_optimized(),
    )
    .await;
    let back = p0.stats.ios.load(Relaxed);
    wait_until(
        "I/O on the re-authenticated path",
        Duration::from_secs(10),
        || p0.stats.ios.load(Relaxed) > back + 20,
    )
    .await;

    // The key changes on the target; port 1 bounces: that path cannot
    // authenticate any more, and says so; I/O goes on through port 2.
    let mut events = p0.ctrl.ctrl.events();
    t.set_dhchap(
        HOST,
        Some(DhchapSpec {
            key: Secret::generate(48, 2).unwrap(),
            ctrl_key: Some(ckey.clone()),
            hash: HashId::Sha384,
            group: DhGroup::Ffdhe2048,
        }),
    )
    .unwrap();
    t.port_down(1).unwrap();
    t.port_up(1).unwrap();
    let why = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                // (An attempt while the port was still down fails otherwise.)
                Ok(CtrlEvent::ReconnectFailed { error, .. })
                    if error.contains("authentication failed") =>
                {
                    return error
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events: {e}"),
            }
        }
    })
    .await
    .expect("a reconnect failure of path 1");
    assert!(
        why.contains("authentication failed") && why.contains("wrong key"),
        "{why}"
    );
    assert!(!p0.view().is_usable());
    let mid = stats.ios.load(Relaxed);
    wait_until("I/O continues on port 2", Duration::from_secs(15), || {
        stats.ios.load(Relaxed) > mid + 50
    })
    .await;
    stop.store(true, Relaxed);
    for h in hs {
        h.await.unwrap();
    }
    assert_eq!(stats.data_errors.load(Relaxed), 0);
    assert_eq!(stats.io_errors.load(Relaxed), 0);
    mp.shutdown().await;
    t.shutdown().await;
}
