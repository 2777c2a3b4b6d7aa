//! DH-HMAC-CHAP with the real Linux host (kernel 6.12 nvme-tcp in QEMU, see
//! ../shared/linux-peer) against nvmp's target: `nvme connect
//! --dhchap-secret … --dhchap-ctrl-secret …` on two ports (native
//! multipath), fio crc32c verify through the head, a port cut (the path
//! reconnects and authenticates again), every DH group with the kernel,
//! and a wrong host key / wrong controller key refused.
//! Skipped only with `NVMP_SKIP_LINUX_PEER=1`.

mod common;

use std::time::Instant;

use common::two_port_config;
use nvmp_auth::{DhGroup, HashId, Secret};
use nvmp_target::{TargetConfig, TargetHandle};
use nvmp_testkit::{skip_linux_peer, LinuxPeer, PeerMode};

const SUB: &str = "nqn.2024-01.io.nvmp:auth-interop";
const INSTANCE: &str = "nvmp-auth-it";
/// The guest's host NQN (linux-peer's default).
const GUEST: &str = "nqn.2014-08.org.nvmexpress:uuid:4c504853-0000-4000-8000-000000000001";

fn exec(peer: &LinuxPeer, snippet: &str) -> (i32, String) {
    let (rc, mut out, err) = peer.exec(snippet);
    out.push_str(&err);
    (rc, out)
}

fn log(t0: Instant, msg: &str) {
    eprintln!(
        "[linux_host_auth +{:5.1}s] {msg}",
        t0.elapsed().as_secs_f64()
    );
}

fn dhchap(key: &Secret, ctrl: &Secret, hash: HashId, group: DhGroup) -> serde_json::Value {
    serde_json::json!({"key": key.to_dhhc1(), "ctrl_key": ctrl.to_dhhc1(),
                       "hash": hash.name(), "dhgroup": group.name()})
}

fn config(key: &Secret, ctrl: &Secret) -> TargetConfig {
    let mut c: serde_json::Value = serde_json::from_str(&two_port_config(
        SUB,
        r#", "nvmp_advertise_traddr": "10.0.2.2""#,
    ))
    .unwrap();
    c["hosts"] = serde_json::json!([{"nqn": GUEST,
        "dhchap": dhchap(key, ctrl, HashId::Sha384, DhGroup::Ffdhe3072)}]);
    c["subsystems"][0]["attr"]["allow_any_host"] = "0".into();
    c["subsystems"][0]["allowed_hosts"] = serde_json::json!([GUEST]);
    TargetConfig::from_json(&c.to_string()).unwrap()
}

#[test]
fn linux_host_dhchap() {
    if skip_linux_peer("linux_host_dhchap") {
        return;
    }
    let t0 = Instant::now();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("nvmp_target=info")
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A host key as `nvme gen-dhchap-key -m 1 -n GUEST` makes it, and a
    // SHA-384-transformed controller key.
    let key = Secret::gen_dhchap_key(&nvmp_auth::random_bytes(32), 1, GUEST).unwrap();
    let ckey = Secret::generate(48, 2).unwrap();
    let t = rt
        .block_on(TargetHandle::start(config(&key, &ckey)))
        .unwrap();
    let p1 = t.local_addr(1).unwrap().port();
    let p2 = t.local_addr(2).unwrap().port();
    log(t0, &format!("target on 127.0.0.1:{p1} and :{p2}"));
    let peer = LinuxPeer::start(INSTANCE, PeerMode::Host);
    log(t0, "guest up");
    let (k, ck) = (key.to_dhhc1(), ckey.to_dhhc1());
    let connect = |port: u16, secret: &str, ctrl: &str| {
        let c = if ctrl.is_empty() {
            String::new()
        } else {
            format!(" --dhchap-ctrl-secret={ctrl}")
        };
        exec(
            &peer,
            &format!(
                "nvme connect -t tcp -a 10.0.2.2 -s {port} -n {SUB} -q {GUEST} --reconnect-delay=1 --ctrl-loss-tmo=60 --dhchap-secret={secret}{c}"
            ),
        )
    };

    // Wrong host key, wrong controller key: refused, nothing connected.
    let wrong = Secret::gen_dhchap_key(&nvmp_auth::random_bytes(32), 1, GUEST).unwrap();
    let (rc, out) = connect(p1, &wrong.to_dhhc1(), "");
    eprintln!("{out}");
    assert_ne!(rc, 0, "a wrong host key must be refused");
    let (rc, out) = connect(p1, &k, &Secret::generate(48, 2).unwrap().to_dhhc1());
    eprintln!("{out}");
    assert_ne!(rc, 0, "a wrong controller key must be refused");
    let (_, n) = exec(&peer, "ls /sys/class/nvme 2>/dev/null | wc -l");
    assert_eq!(n.trim(), "0", "no controller after refused authentication");
    log(t0, "wrong host key and wrong controller key refused");

    // Both ports, bidirectional: two live paths, one head per namespace.
    for p in [p1, p2] {
        let (rc, out) = connect(p, &k, &ck);
        eprintln!("{out}");
        assert_eq!(rc, 0, "nvme connect with DH-HMAC-CHAP to port {p} failed");
    }
    let (rc, out) = exec(&peer,
        "for i in $(seq 100); do [ $(ls -d /sys/block/nvme*c*n* 2>/dev/null | wc -l) -ge 4 ] && break; sleep 0.2; done; \
         cat /sys/class/nvme/nvme*/state; ls -d /sys/block/nvme*c*n* | wc -l");
    eprintln!("{out}");
    assert_eq!(rc, 0);
    assert_eq!(
        out.matches("live").count(),
        2,
        "two live authenticated paths"
    );
    let (_, head) = exec(&peer, &format!("peer head 1 {SUB}"));
    let head = head.trim().to_string();
    assert!(head.starts_with("/dev/nvme"), "no head for nsid 1: {head}");
    log(
        t0,
        "two authenticated paths (hmac(sha384), ffdhe3072, bidirectional)",
    );

    // fio verify through the head, with a port cut in the middle: the
    // path reconnects and authenticates again.
    exec(&peer, &format!(
        "rm -f /tmp/fv.*; (fio --name=v --filename={head} --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio --direct=1 \
         --size=16M --time_based --runtime=10 --verify=crc32c --verify_backlog=256 --verify_fatal=1 --do_verify=1 \
         > /tmp/fv.log 2>&1; echo $? > /tmp/fv.rc) >/dev/null 2>&1 &"
    ));
    std::thread::sleep(std::time::Duration::from_secs(3));
    t.port_down(1).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    t.port_up(1).unwrap();
    log(t0, "port 1 cut and restored during fio verify");
    let (_, rc) = exec(&peer, "for i in $(seq 60); do [ -e /tmp/fv.rc ] && break; sleep 1; done; cat /tmp/fv.rc; grep -E 'err=' /tmp/fv.log");
    eprintln!("{rc}");
    assert!(rc.trim_start().starts_with('0'), "fio verify failed: {rc}");
    let (rc, out) = exec(&peer,
        "for i in $(seq 60); do [ \"$(cat /sys/class/nvme/nvme*/state | grep -c live)\" = 2 ] && exit 0; sleep 0.5; done; cat /sys/class/nvme/nvme*/state; exit 1");
    assert_eq!(rc, 0, "port 1 path did not re-authenticate: {out}");
    log(t0, "fio crc32c verify passed; port 1 path re-authenticated");
    let _ = exec(&peer, "nvme disconnect-all");

    // Every DH group (and every hash) with the kernel's implementation.
    let hashes = [HashId::Sha256, HashId::Sha384, HashId::Sha512];
    for (i, group) in DhGroup::ALL.into_iter().enumerate() {
        let hash = hashes[i % 3];
        t.set_dhchap(
            GUEST,
            Some(nvmp_target::config::dhchap::DhchapSpec {
                key: key.clone(),
                ctrl_key: Some(ckey.clone()),
                hash,
                group,
            }),
        )
        .unwrap();
        let (rc, out) = connect(p2, &k, &ck);
        if rc != 0 {
            let (_, dmesg) = exec(&peer, "dmesg | tail -n 30");
            panic!("{hash} {group}: {out}\n{dmesg}");
        }
        let (rc, out) = exec(&peer, &format!(
            "for i in $(seq 50); do h=$(peer head 1 {SUB} 2>/dev/null) && break; sleep 0.2; done; \
             dd if=$h of=/dev/null bs=4k count=16 iflag=direct 2>&1 | tail -n 1; nvme disconnect-all"
        ));
        assert_eq!(rc, 0, "{hash} {group}: {out}");
        log(
            t0,
            &format!("Linux host authenticated with {hash} / {group}"),
        );
    }
    drop(peer);
    rt.block_on(t.shutdown());
    log(t0, "done");
}
