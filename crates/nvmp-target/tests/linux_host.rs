//! Interop with the real Linux NVMe/TCP host (kernel 6.12 in QEMU, see
//! ../shared/linux-peer): discovery, connect-all with two paths, ANA change
//! followed by `nvme list-subsys`, fio crc32c verify, and a port cut during a
//! verify job. Skipped only with `NVMP_SKIP_LINUX_PEER=1`.

mod common;

use std::time::{Duration, Instant};

use nvmp_target::{TargetConfig, TargetHandle};
use nvmp_testkit::{skip_linux_peer, LinuxPeer, PeerMode};
use nvmp_wire::log::AnaState;

const SUB: &str = "nqn.2024-01.io.nvmp:interop";
const INSTANCE: &str = "nvmp-target-it";

/// Run a shell snippet in the guest; (rc, stdout+stderr).
fn exec(peer: &LinuxPeer, snippet: &str) -> (i32, String) {
    let (rc, mut out, err) = peer.exec(snippet);
    out.push_str(&err);
    (rc, out)
}

fn log(t0: Instant, msg: &str) {
    eprintln!("[linux_host +{:5.1}s] {msg}", t0.elapsed().as_secs_f64());
}

#[test]
fn linux_host_interop() {
    if skip_linux_peer("linux_host_interop") {
        return;
    }
    let t0 = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = common::two_port_config(SUB, r#", "nvmp_advertise_traddr": "10.0.2.2""#);
    let cfg = TargetConfig::from_json(&cfg).unwrap();
    let t = rt.block_on(TargetHandle::start(cfg)).unwrap();
    let p1 = t.local_addr(1).unwrap().port();
    let p2 = t.local_addr(2).unwrap().port();
    log(t0, &format!("target on 127.0.0.1:{p1} and :{p2}"));

    let peer = LinuxPeer::start(INSTANCE, PeerMode::Host);
    log(t0, "guest up");

    // Discovery through port 1 lists both ports.
    let (rc, out) = exec(&peer, &format!("nvme discover -t tcp -a 10.0.2.2 -s {p1}"));
    eprintln!("{out}");
    assert_eq!(rc, 0, "nvme discover failed");
    assert!(
        out.contains(&format!("trsvcid: {p1}")) && out.contains(&format!("trsvcid: {p2}")),
        "discovery must list both ports"
    );
    assert!(out.contains(SUB));
    log(t0, "discovery lists both ports");

    // connect-all: one subsystem, two live paths, one head per namespace.
    let (rc, out) = exec(&peer, &format!(
        "nvme connect-all -t tcp -a 10.0.2.2 -s {p1} --reconnect-delay=1 --ctrl-loss-tmo=60; \
         for i in $(seq 100); do [ $(ls -d /sys/block/nvme*c*n* 2>/dev/null | wc -l) -ge 4 ] && break; sleep 0.2; done; \
         nvme list-subsys -o json; peer paths"
    ));
    eprintln!("{out}");
    assert_eq!(rc, 0, "connect-all failed");
    let (_, n) = exec(&peer, "ls /sys/class/nvme-subsystem | wc -l; ls -d /sys/block/nvme*c*n* | wc -l; ls /sys/block | grep -cE '^nvme[0-9]+n[0-9]+$'");
    let n: Vec<&str> = n.split_whitespace().collect();
    assert_eq!(
        n,
        ["1", "4", "2"],
        "one subsystem, 4 paths (2 ctrls x 2 ns), 2 heads"
    );
    assert_eq!(
        out.matches("\"State\":\"live\"").count() + out.matches("\"State\" : \"live\"").count(),
        2,
        "two live paths"
    );
    log(t0, "connect-all: 1 subsystem, 2 live paths, 2 heads");

    let (_, head) = exec(&peer, &format!("peer head 1 {SUB}"));
    let head = head.trim().to_string();
    assert!(head.starts_with("/dev/nvme"), "no head for nsid 1: {head}");

    // ANA change via the handle, seen by nvme list-subsys.
    let ta = Instant::now();
    t.set_ana(1, 1, AnaState::INACCESSIBLE).unwrap();
    let (rc, out) = exec(&peer, &format!(
        "for i in $(seq 100); do nvme list-subsys {head} | grep -q 'trsvcid={p1}.* inaccessible' && exit 0; sleep 0.05; done; nvme list-subsys {head}; exit 1"
    ));
    let seen = ta.elapsed();
    eprintln!("{out}");
    assert_eq!(rc, 0, "ANA change not visible in nvme list-subsys");
    log(
        t0,
        &format!(
            "ANA inaccessible visible after {:.2}s (incl. ~exec overhead)",
            seen.as_secs_f64()
        ),
    );
    assert!(
        seen < Duration::from_secs(5),
        "ANA change took {seen:?} to show"
    );
    t.set_ana(1, 1, AnaState::OPTIMIZED).unwrap();
    let (rc, _) = exec(&peer, &format!(
        "for i in $(seq 100); do nvme list-subsys {head} | grep -q 'trsvcid={p1}.* live optimized' && exit 0; sleep 0.05; done; exit 1"
    ));
    assert_eq!(rc, 0, "ANA back to optimized not visible");

    // fio verify on the head.
    let (rc, out) = exec(&peer, &format!(
        "fio --name=v --filename={head} --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio --direct=1 --size=16M \
         --verify=crc32c --verify_fatal=1 --do_verify=1 --output-format=terse 2>&1 | tail -n 3"
    ));
    assert_eq!(rc, 0, "fio verify failed: {out}");
    log(t0, "fio crc32c verify passed");

    // Port cut during a verify job.
    exec(&peer, &format!(
        "rm -f /tmp/fv.*; (fio --name=v --filename={head} --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio --direct=1 \
         --size=16M --time_based --runtime=12 --verify=crc32c --verify_backlog=256 --verify_fatal=1 --do_verify=1 \
         > /tmp/fv.log 2>&1; echo $? > /tmp/fv.rc) >/dev/null 2>&1 &"
    ));
    std::thread::sleep(Duration::from_secs(3));
    t.port_down(1).unwrap();
    log(t0, "port 1 down");
    std::thread::sleep(Duration::from_secs(4));
    let (_, paths) = exec(&peer, "peer paths");
    eprintln!("{paths}");
    t.port_up(1).unwrap();
    log(t0, "port 1 up");
    let (_, rc) = exec(&peer, "for i in $(seq 60); do [ -e /tmp/fv.rc ] && break; sleep 1; done; cat /tmp/fv.rc; grep -E 'err=' /tmp/fv.log");
    eprintln!("{rc}");
    assert!(
        rc.trim_start().starts_with('0'),
        "fio verify during port cut failed: {rc}"
    );
    log(t0, "fio verify survived the port cut");
    let (rc, out) = exec(&peer,
        "for i in $(seq 60); do [ \"$(cat /sys/class/nvme/nvme*/state | grep -c live)\" = 2 ] && exit 0; sleep 0.5; done; peer paths; exit 1",
    );
    assert_eq!(rc, 0, "port 1 path did not come back: {out}");
    log(t0, "port 1 path reconnected");
    // Header and data digests with the kernel host (nvme connect -g -G), and I/O through them.
    let _ = exec(&peer, "nvme disconnect-all");
    let (rc, out) = exec(&peer, &format!(
        "nvme connect -t tcp -a 10.0.2.2 -s {p2} -n {SUB} -g -G && \
         for i in $(seq 50); do h=$(peer head 1 {SUB} 2>/dev/null) && break; sleep 0.2; done; \
         dd if=/dev/urandom of=/tmp/pat bs=64k count=16 2>/dev/null && dd if=/tmp/pat of=$h bs=64k oflag=direct 2>&1 | tail -n 1 && \
         dd if=$h of=/tmp/back bs=64k count=16 iflag=direct 2>/dev/null && cmp /tmp/pat /tmp/back && echo DIGEST-IO-OK"
    ));
    eprintln!("{out}");
    assert!(
        rc == 0 && out.contains("DIGEST-IO-OK"),
        "I/O with header+data digests failed"
    );
    log(t0, "I/O with header and data digests OK");
    let st = t.status();
    eprintln!(
        "target status: {}",
        serde_json::to_string(
            &st.ports
                .iter()
                .map(|p| (&p.portid, &p.counters))
                .collect::<Vec<_>>()
        )
        .unwrap()
    );
    let _ = exec(&peer, "nvme disconnect-all");
    drop(peer);
    rt.block_on(t.shutdown());
    log(t0, "done");
}
