//! Reservations with the real Linux host (kernel 6.12 nvme-tcp in QEMU, see
//! ../shared/linux-peer) as one cluster node and nvmp's host as the other,
//! both with two paths to one shared namespace of nvmp's target. The kernel
//! passes `nvme resv-register/resv-acquire/resv-report` through its
//! multipath head; the target applies the same rules to both hosts.
//! Skipped only with `NVMP_SKIP_LINUX_PEER=1`.

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::*;
use nvmp_host::HostIdentity;
use nvmp_mpath::{MpathConfig, Multipath};
use nvmp_testkit::{skip_linux_peer, LinuxPeer, PeerMode};
use nvmp_wire::io::resv::{racqa, rrega, rrela, ResvAcquire, ResvRegister, ResvRelease, ResvType};
use nvmp_wire::StatusCode;

const INSTANCE: &str = "nvmp-resv-it";
/// The guest's Host Identifier (linux-peer's fixed identity), as nvme-cli prints it.
const LINUX_HOSTID: &str = "4c504853000040008000000000000001";
const LINUX_KEY: u64 = 0x1111;
const NVMP_KEY: u64 = 0x2222;

fn exec(peer: &LinuxPeer, snippet: &str) -> (i32, String) {
    let (rc, mut out, err) = peer.exec(snippet);
    out.push_str(&err);
    (rc, out)
}

fn log(t0: Instant, msg: &str) {
    eprintln!("[linux_resv +{:5.1}s] {msg}", t0.elapsed().as_secs_f64());
}

/// The JSON object in a command's output (nvme-cli prints it alone, but be lenient).
fn json_of(out: &str) -> serde_json::Value {
    let start = out.find('{').unwrap_or_else(|| panic!("no JSON in: {out}"));
    let end = out.rfind('}').expect("JSON end");
    serde_json::from_str(&out[start..=end]).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn linux_host_and_nvmp_host_fence_each_other() {
    if skip_linux_peer("linux_host_and_nvmp_host_fence_each_other") {
        return;
    }
    let t0 = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    init_tracing();
    let (t, addrs) = rt.block_on(start_target(&TargetDef::default()));
    let (p1, p2) = (addrs[0].port(), addrs[1].port());
    let peer = LinuxPeer::start(INSTANCE, PeerMode::Host);
    log(t0, "guest up");
    let (rc, out) = exec(
        &peer,
        &format!(
            "nvme connect -t tcp -a 10.0.2.2 -s {p1} -n {NQN} && nvme connect -t tcp -a 10.0.2.2 -s {p2} -n {NQN} && \
             for i in $(seq 100); do h=$(peer head 1 {NQN} 2>/dev/null) && [ $(ls -d /sys/block/nvme*c*n* | wc -l) -ge 2 ] && break; sleep 0.2; done; \
             peer head 1 {NQN}"
        ),
    );
    assert_eq!(rc, 0, "connect failed: {out}");
    let head = out.lines().last().unwrap_or_default().trim().to_string();
    assert!(head.starts_with("/dev/nvme"), "no head: {out}");
    log(t0, &format!("Linux host connected, two paths, head {head}"));

    // nvmp's host: two paths, its own Host Identifier.
    let mp = Multipath::new(MpathConfig::default());
    let id = HostIdentity {
        hostnqn: "nqn.2014-08.org.nvmexpress:uuid:5a5a5a5a-5a5a-4a5a-8a5a-5a5a5a5a5a5a".into(),
        hostid: [0x5A; 16],
    };
    let nvmp = rt.block_on(async {
        for a in &addrs {
            let mut o = path_opts(*a, NQN);
            o.host = id.clone();
            connect(&mp, o).await;
        }
        mp.head(NQN, 1).unwrap()
    });
    rt.block_on(nvmp.resv_register(ResvRegister {
        nsid: 1,
        rrega: rrega::REGISTER,
        nrkey: NVMP_KEY,
        ..Default::default()
    }))
    .unwrap();

    // Linux registers and takes Write Exclusive through its head; nvme resv-report sees both.
    let (rc, out) = exec(
        &peer,
        &format!(
            "nvme resv-register {head} -n 1 --nrkey={LINUX_KEY:#x} --rrega=0 && \
             nvme resv-acquire {head} -n 1 --crkey={LINUX_KEY:#x} --rtype=1 --racqa=0"
        ),
    );
    assert_eq!(rc, 0, "nvme resv-register/acquire failed: {out}");
    let (rc, out) = exec(
        &peer,
        &format!("nvme resv-report {head} -n 1 --eds -o json"),
    );
    assert_eq!(rc, 0, "nvme resv-report failed: {out}");
    let v = json_of(&out);
    assert_eq!(v["rtype"], 1, "{v}");
    assert_eq!(v["regctl"], 2, "{v}");
    let regs = v["regctlext"].as_array().expect("regctlext");
    let lx = regs
        .iter()
        .find(|r| r["hostid"] == LINUX_HOSTID)
        .expect("Linux listed");
    assert_eq!(
        (lx["rkey"].as_u64(), lx["rcsts"].as_u64()),
        (Some(LINUX_KEY), Some(1))
    );
    let nv = regs
        .iter()
        .find(|r| r["hostid"] == "5a".repeat(16))
        .expect("nvmp listed");
    assert_eq!(
        (nv["rkey"].as_u64(), nv["rcsts"].as_u64()),
        (Some(NVMP_KEY), Some(0))
    );
    // The 24-byte report format is refused (128-bit Host Identifiers).
    let (rc, _) = exec(&peer, &format!("nvme resv-report {head} -n 1"));
    assert_ne!(rc, 0, "a report without --eds must fail on fabrics");
    log(t0, "Linux holds Write Exclusive; both registrants reported");

    // Linux writes; nvmp's writes conflict, its reads see Linux's data.
    let (rc, out) = exec(
        &peer,
        &format!("head -c 4096 /dev/zero | tr '\\0' L > /tmp/l && dd if=/tmp/l of={head} bs=4096 count=1 oflag=direct"),
    );
    assert_eq!(rc, 0, "Linux write failed: {out}");
    let e = rt
        .block_on(nvmp.write(0, Bytes::from(vec![b'N'; 4096]), false))
        .unwrap_err();
    assert_eq!(e.status.code, StatusCode::RESERVATION_CONFLICT, "{e}");
    assert_eq!(rt.block_on(nvmp.read(0, 8)).unwrap(), vec![b'L'; 4096]);
    log(t0, "nvmp's write conflicts, its read sees Linux's data");

    // nvmp preempts and aborts Linux's key: now nvmp writes and Linux is fenced.
    rt.block_on(nvmp.resv_acquire(ResvAcquire {
        nsid: 1,
        racqa: racqa::PREEMPT_AND_ABORT,
        iekey: false,
        rtype: ResvType::WRITE_EXCLUSIVE,
        crkey: NVMP_KEY,
        prkey: LINUX_KEY,
    }))
    .unwrap();
    rt.block_on(nvmp.write(0, Bytes::from(vec![b'N'; 4096]), false))
        .unwrap();
    let (rc, out) = exec(
        &peer,
        &format!("dd if=/tmp/l of={head} bs=4096 count=1 oflag=direct"),
    );
    assert_ne!(
        rc, 0,
        "Linux's write must be refused after the preempt: {out}"
    );
    let (rc, out) = exec(
        &peer,
        &format!(
            "head -c 4096 /dev/zero | tr '\\0' N > /tmp/n && dd if={head} of=/tmp/back bs=4096 count=1 iflag=direct 2>/dev/null && cmp /tmp/n /tmp/back && echo SAME"
        ),
    );
    assert!(
        rc == 0 && out.contains("SAME"),
        "Linux must read nvmp's data: {out}"
    );
    let (rc, out) = exec(
        &peer,
        &format!("nvme resv-report {head} -n 1 --eds -o json"),
    );
    assert_eq!(rc, 0, "{out}");
    let v = json_of(&out);
    assert_eq!(v["regctl"], 1, "{v}");
    assert_eq!(v["regctlext"][0]["hostid"], "5a".repeat(16));
    assert_eq!(v["regctlext"][0]["rcsts"], 1);
    // Linux registers again but cannot take the reservation.
    let (rc, out) = exec(
        &peer,
        &format!(
            "nvme resv-register {head} -n 1 --nrkey={LINUX_KEY:#x} && nvme resv-acquire {head} -n 1 --crkey={LINUX_KEY:#x} --rtype=1"
        ),
    );
    assert_ne!(rc, 0, "Linux's acquire must conflict: {out}");
    assert!(
        out.to_lowercase().contains("conflict"),
        "a reservation conflict expected: {out}"
    );
    log(
        t0,
        "nvmp preempted Linux: Linux fenced, reads nvmp's data, its acquire conflicts",
    );

    rt.block_on(nvmp.resv_release(ResvRelease {
        nsid: 1,
        rrela: rrela::CLEAR,
        crkey: NVMP_KEY,
        ..Default::default()
    }))
    .unwrap();
    let (rc, out) = exec(
        &peer,
        &format!("dd if=/tmp/l of={head} bs=4096 count=1 oflag=direct"),
    );
    assert_eq!(rc, 0, "after Clear Linux writes again: {out}");
    let _ = exec(&peer, "nvme disconnect-all");
    drop(peer);
    rt.block_on(async {
        mp.shutdown().await;
        t.shutdown().await;
    });
    log(t0, "done");
}
