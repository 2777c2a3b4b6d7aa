//! DH-HMAC-CHAP with the real Linux nvmet target (../shared/linux-peer in
//! target mode, `peer auth`): nvmp's host authenticates with hmac(sha384)
//! and ffdhe3072, bidirectionally, on the admin and every I/O queue; data
//! written is read back; a port cut makes it reconnect and authenticate
//! again; a wrong host key and a wrong controller key are refused with
//! the reason named. Skipped only with NVMP_SKIP_LINUX_PEER=1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nvmp_auth::Secret;
use nvmp_host::{Controller, ControllerOptions, CtrlState, HostError, HostIdentity};
use nvmp_testkit::{skip_linux_peer, LinuxPeer, PeerMode};

const NQN: &str = "nqn.2024-01.io.example:peer";
const INSTANCE: &str = "nvmp-host-auth-it";

fn opts(port: u16, host: &HostIdentity, key: &Secret, ctrl: Option<&Secret>) -> ControllerOptions {
    let mut o = ControllerOptions::new("127.0.0.1", port, NQN);
    o.host = host.clone();
    o.nr_io_queues = 2;
    o.kato_ms = 5000;
    o.reconnect_delay_ms = 1000;
    // The guest runs under TCG: DH steps take a while there.
    o.admin_timeout_ms = 60_000;
    o.dhchap_secret = Some(key.clone());
    o.dhchap_ctrl_secret = ctrl.cloned();
    o
}

async fn peer_exec(peer: &Arc<LinuxPeer>, script: String) -> (i32, String) {
    let p = peer.clone();
    tokio::task::spawn_blocking(move || {
        let (rc, out, err) = p.exec(&script);
        (rc, out + &err)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_nvmet_requires_dhchap() {
    if skip_linux_peer("linux_target_auth") {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter("nvmp_host=info")
        .with_test_writer()
        .try_init();
    let t0 = Instant::now();
    let peer = Arc::new(
        tokio::task::spawn_blocking(|| LinuxPeer::start(INSTANCE, PeerMode::Target))
            .await
            .unwrap(),
    );
    let [_, p1, _] = peer.ports;
    let host = HostIdentity::from_uuid([0x6b; 16]);
    // As `nvme gen-dhchap-key -m 1 -n HOSTNQN` makes it, and a SHA-384 controller key.
    let key = Secret::gen_dhchap_key(&nvmp_auth::random_bytes(32), 1, &host.hostnqn).unwrap();
    let ckey = Secret::generate(48, 2).unwrap();
    let (rc, out) = peer_exec(
        &peer,
        format!(
            "peer auth {} '{}' '{}' 'hmac(sha384)' ffdhe3072",
            host.hostnqn,
            key.to_dhhc1(),
            ckey.to_dhhc1()
        ),
    )
    .await;
    assert_eq!(rc, 0, "peer auth: {out}");
    eprintln!("[+{:.1}s] {}", t0.elapsed().as_secs_f64(), out.trim());

    // Wrong host key, wrong controller key: refused, reason named.
    // Linux nvmet marks the controller fatal before it completes the
    // Authentication Receive that carries its AUTH_Failure1
    // (nvmet_execute_auth_receive), so now and then the teardown overtakes
    // the message: the host then sees the connection closed instead of its
    // answer, and says so. Refused either way; the reason is named when the
    // message arrives, which it must do in one of a few attempts.
    let wrong = Secret::gen_dhchap_key(&nvmp_auth::random_bytes(32), 1, &host.hostnqn).unwrap();
    let mut named = false;
    for attempt in 1..=4 {
        match Controller::connect(opts(p1, &host, &wrong, None)).await {
            Err(e @ HostError::Auth(_)) => {
                let e = e.to_string();
                if e.contains("controller refused authentication") {
                    named = true;
                    break;
                }
                assert!(
                    e.contains("closed the connection")
                        && e.contains("instead of answering our response"),
                    "wrong key: {e}"
                );
                eprintln!("wrong host key, attempt {attempt}: refused, reason lost with the connection: {e}");
            }
            Err(e) => panic!("wrong key: not an authentication error: {e}"),
            Ok(_) => panic!("a wrong key must be refused"),
        }
    }
    assert!(
        named,
        "the controller's AUTH_Failure1 never arrived in 4 attempts"
    );
    let other = Secret::generate(48, 2).unwrap();
    match Controller::connect(opts(p1, &host, &key, Some(&other))).await {
        Err(e @ HostError::Auth(_)) => {
            let e = e.to_string();
            assert!(e.contains("wrong controller key"), "{e}");
        }
        Err(e) => panic!("wrong controller key: not an authentication error: {e}"),
        Ok(_) => panic!("a wrong controller key must be refused"),
    }
    eprintln!(
        "[+{:.1}s] wrong host key and wrong controller key refused",
        t0.elapsed().as_secs_f64()
    );

    // The right keys: admin and both I/O queues authenticated, data through them.
    let c = Controller::connect(opts(p1, &host, &key, Some(&ckey)))
        .await
        .expect("connect with DH-HMAC-CHAP to Linux nvmet");
    assert_eq!(c.io_queues(), 2);
    let bs = c.identify_namespace(1).await.unwrap().block_size().unwrap();
    let d: Bytes = (0..256 * 1024)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    assert!(c.write(1, 0, d.clone(), bs, false).await.is_success());
    assert_eq!(c.read(1, 0, d.len() as u32 / bs, bs).await.data, d);
    eprintln!(
        "[+{:.1}s] authenticated (hmac(sha384), ffdhe3072, bidirectional), I/O verified",
        t0.elapsed().as_secs_f64()
    );

    // A port cut: the controller reconnects and authenticates again.
    let (rc, _) = peer_exec(&peer, "peer port-down 1".into()).await;
    assert_eq!(rc, 0);
    let mut st = c.watch_state();
    tokio::time::timeout(
        Duration::from_secs(30),
        st.wait_for(|s| *s != CtrlState::Live),
    )
    .await
    .expect("controller noticed the port cut")
    .unwrap();
    let (rc, _) = peer_exec(&peer, "peer port-up 1".into()).await;
    assert_eq!(rc, 0);
    tokio::time::timeout(
        Duration::from_secs(120),
        st.wait_for(|s| *s == CtrlState::Live),
    )
    .await
    .expect("re-authenticated after the port came back")
    .unwrap();
    assert_eq!(c.read(1, 0, d.len() as u32 / bs, bs).await.data, d);
    eprintln!(
        "[+{:.1}s] reconnected and re-authenticated",
        t0.elapsed().as_secs_f64()
    );
    c.disconnect().await;
    let _ = peer_exec(&peer, "peer auth-off".into()).await;
}
