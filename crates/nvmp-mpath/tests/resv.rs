//! Reservations end to end (issue 13): two hosts with different Host
//! Identifiers, each with two paths to one shared namespace of nvmp's
//! target, fence each other with NVMe reservations through their namespace
//! heads.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use nvmp_host::{CtrlState, HostIdentity};
use nvmp_mpath::{MpathConfig, Multipath, NamespaceHead};
use nvmp_testkit::FaultProxy;
use nvmp_wire::io::resv::{racqa, rrega, ResvAcquire, ResvRegister, ResvRelease, ResvType};
use nvmp_wire::StatusCode;

const LBA: u64 = 10;
const KEY_A: u64 = 0xAAAA;
const KEY_B: u64 = 0xBBBB;

fn host(n: u8) -> HostIdentity {
    HostIdentity {
        hostnqn: format!(
            "nqn.2014-08.org.nvmexpress:uuid:0000000{n}-0000-4000-8000-00000000000{n}"
        ),
        hostid: [n; 16],
    }
}

/// A host (its own Multipath) with one path per address.
async fn host_with_paths(
    id: HostIdentity,
    addrs: &[std::net::SocketAddr],
) -> (Multipath, Arc<NamespaceHead>) {
    let mp = Multipath::new(MpathConfig::default());
    for a in addrs {
        let mut o = path_opts(*a, NQN);
        o.host = id.clone();
        connect(&mp, o).await;
    }
    let head = mp.head(NQN, 1).expect("head");
    assert_eq!(head.paths().len(), addrs.len());
    (mp, head)
}

fn register(key: u64) -> ResvRegister {
    ResvRegister {
        nsid: 1,
        rrega: rrega::REGISTER,
        nrkey: key,
        ..Default::default()
    }
}

fn acquire(act: u8, t: ResvType, crkey: u64, prkey: u64) -> ResvAcquire {
    ResvAcquire {
        nsid: 1,
        racqa: act,
        iekey: false,
        rtype: t,
        crkey,
        prkey,
    }
}

fn gen(g: u64) -> Bytes {
    Bytes::from(block_pattern(LBA, g, 512))
}

async fn all_live(head: &NamespaceHead) {
    let h = head;
    wait_until("every path live", Duration::from_secs(30), || {
        h.paths()
            .iter()
            .all(|p| p.ctrl.ctrl.state() == CtrlState::Live)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_two_hosts_two_paths_each() {
    init_tracing();
    let (t, addrs) = start_target(&TargetDef::default()).await;
    // Host A: two direct paths. Host B: two paths through proxies that can be cut.
    let (mp_a, a) = host_with_paths(host(0xA), &addrs).await;
    let proxies = [
        FaultProxy::start(addrs[0]).await,
        FaultProxy::start(addrs[1]).await,
    ];
    let b_addrs: Vec<_> = proxies.iter().map(|p| p.addr()).collect();
    let (mp_b, b) = host_with_paths(host(0xB), &b_addrs).await;

    // B registers and takes Write Exclusive; B's writes land.
    b.resv_register(register(KEY_B)).await.unwrap();
    b.resv_acquire(acquire(racqa::ACQUIRE, ResvType::WRITE_EXCLUSIVE, KEY_B, 0))
        .await
        .unwrap();
    b.write(LBA, gen(1), false).await.unwrap();

    // A registers: a registrant, not the holder. Its writes conflict (on
    // either path: the reservation is the namespace's, not the port's); its reads succeed.
    a.resv_register(register(KEY_A)).await.unwrap();
    let e = a.write(LBA, gen(99), false).await.unwrap_err();
    assert_eq!(e.status.code, StatusCode::RESERVATION_CONFLICT, "{e}");
    assert!(e.status.dnr);
    assert_eq!(a.read(LBA, 1).await.unwrap(), gen(1));
    // A conflict is no path error: nothing failed over.
    assert_eq!(
        a.stats.failovers.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // A cannot acquire while B holds it.
    let e = a
        .resv_acquire(acquire(racqa::ACQUIRE, ResvType::WRITE_EXCLUSIVE, KEY_A, 0))
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    let r = a.resv_report(0, true).await.unwrap();
    assert_eq!((r.rtype, r.regctl), (ResvType::WRITE_EXCLUSIVE, 2));
    assert!(r.find(&[0xB; 16]).unwrap().holds());
    assert!(!r.find(&[0xA; 16]).unwrap().holds());
    assert_eq!(r.find(&[0xA; 16]).unwrap().rkey, KEY_A);

    // B's node dies: both of its paths are cut and stay down.
    for p in &proxies {
        p.refuse(true);
        p.cut_all();
    }
    // A preempts and aborts B's key: A holds Write Exclusive, B is no registrant.
    a.resv_acquire(acquire(
        racqa::PREEMPT_AND_ABORT,
        ResvType::WRITE_EXCLUSIVE,
        KEY_A,
        KEY_B,
    ))
    .await
    .unwrap();
    a.write(LBA, gen(2), false).await.unwrap();
    let r = a.resv_report(0, true).await.unwrap();
    assert_eq!(r.regctl, 1);
    assert!(r.find(&[0xA; 16]).unwrap().holds());
    assert!(r.find(&[0xB; 16]).is_none());

    // B comes back: its writes are fenced, its reads see A's data.
    for p in &proxies {
        p.refuse(false);
    }
    all_live(&b).await;
    let e = b.write(LBA, gen(3), false).await.unwrap_err();
    assert_eq!(e.status.code, StatusCode::RESERVATION_CONFLICT, "{e}");
    assert_eq!(b.read(LBA, 1).await.unwrap(), gen(2));
    assert_eq!(a.read(LBA, 1).await.unwrap(), gen(2));
    // B's own key is gone: releasing with it conflicts, and B may register again.
    let rel = ResvRelease {
        nsid: 1,
        rtype: ResvType::WRITE_EXCLUSIVE,
        crkey: KEY_B,
        ..Default::default()
    };
    assert!(b.resv_release(rel).await.unwrap_err().is_conflict());

    mp_a.shutdown().await;
    mp_b.shutdown().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_keeps_the_reservation() {
    init_tracing();
    let (t, addrs) = start_target(&TargetDef::default()).await;
    let proxies = [
        FaultProxy::start(addrs[0]).await,
        FaultProxy::start(addrs[1]).await,
    ];
    let a_addrs: Vec<_> = proxies.iter().map(|p| p.addr()).collect();
    let (mp_a, a) = host_with_paths(host(0xA), &a_addrs).await;
    let (mp_c, c) = host_with_paths(host(0xC), &addrs).await;

    a.resv_register(register(KEY_A)).await.unwrap();
    a.resv_acquire(acquire(
        racqa::ACQUIRE,
        ResvType::EXCLUSIVE_ACCESS,
        KEY_A,
        0,
    ))
    .await
    .unwrap();
    a.write(LBA, gen(1), false).await.unwrap();
    // Exclusive Access: another host may neither read nor write.
    assert_eq!(
        c.read(LBA, 1).await.unwrap_err().status.code,
        StatusCode::RESERVATION_CONFLICT
    );

    // Cut the path A is using: its commands fail over to the other path and
    // still succeed there — the reservation belongs to the host, not the path.
    let cur = a.current_path().expect("a current path");
    let i = a.paths().iter().position(|p| Arc::ptr_eq(p, &cur)).unwrap();
    proxies[i].refuse(true);
    proxies[i].cut_all();
    a.write(LBA, gen(2), false).await.unwrap();
    assert_eq!(a.read(LBA, 1).await.unwrap(), gen(2));
    // Reservation commands fail over too.
    let r = a.resv_report(0, true).await.unwrap();
    assert_eq!(r.rtype, ResvType::EXCLUSIVE_ACCESS);
    assert!(r.find(&[0xA; 16]).unwrap().holds());
    a.resv_acquire(acquire(
        racqa::ACQUIRE,
        ResvType::EXCLUSIVE_ACCESS,
        KEY_A,
        0,
    ))
    .await
    .unwrap();
    assert_eq!(
        c.write(LBA, gen(9), false).await.unwrap_err().status.code,
        StatusCode::RESERVATION_CONFLICT
    );
    // Release: C reads and writes again.
    a.resv_release(ResvRelease {
        nsid: 1,
        rtype: ResvType::EXCLUSIVE_ACCESS,
        crkey: KEY_A,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(c.read(LBA, 1).await.unwrap(), gen(2));
    c.write(LBA, gen(3), false).await.unwrap();

    mp_a.shutdown().await;
    mp_c.shutdown().await;
    t.shutdown().await;
}
