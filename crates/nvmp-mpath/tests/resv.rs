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

fn feature_sqe(set: bool, fid: u8, nsid: u32, cdw11: u32) -> nvmp_wire::Sqe {
    let mut s = if set {
        nvmp_wire::admin::SetFeaturesCmd {
            fid: nvmp_wire::admin::FeatureId(fid),
            save: false,
            cdw11,
        }
        .to_sqe()
    } else {
        nvmp_wire::admin::GetFeaturesCmd {
            fid: nvmp_wire::admin::FeatureId(fid),
            sel: 0,
            cdw11,
        }
        .to_sqe()
    };
    s.nsid = nsid;
    s
}

async fn feature(head: &NamespaceHead, set: bool, fid: u8, cdw11: u32) -> (StatusCode, u32) {
    let c = head.paths()[0]
        .ctrl
        .ctrl
        .admin(nvmp_host::IoRequest::new(feature_sqe(set, fid, 1, cdw11)))
        .await;
    (c.status.code, c.dw0)
}

/// (ONCS, NMIC, RESCAP) as the target reports them on `head`'s first path.
async fn identify_fields(head: &NamespaceHead) -> (u16, u8, u8) {
    let c = &head.paths()[0].ctrl.ctrl;
    let ns = c
        .identify(nvmp_wire::admin::Cns::NAMESPACE, 1)
        .await
        .unwrap();
    (
        c.id_ctrl().oncs,
        ns[30],
        ns[nvmp_wire::io::resv::IDNS_RESCAP_OFFSET],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptpl_keeps_registrations_over_a_target_restart() {
    init_tracing();
    let dir = std::env::temp_dir().join(format!("nvmp-resv-ptpl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("shared.img");
    std::fs::write(&img, vec![0u8; 4 << 20]).unwrap();
    let json = config_json(&TargetDef {
        size: "4M",
        ..Default::default()
    })
    .replace(
        r#""size": "4M""#,
        &format!(r#""path": "{}""#, img.display()),
    );
    let start = || async {
        let t =
            nvmp_target::TargetHandle::start(nvmp_target::TargetConfig::from_json(&json).unwrap())
                .await
                .unwrap();
        let addrs = vec![t.local_addr(1).unwrap(), t.local_addr(2).unwrap()];
        (t, addrs)
    };

    let (t, addrs) = start().await;
    let (mp_a, a) = host_with_paths(host(0xA), &addrs).await;
    let (mp_b, b) = host_with_paths(host(0xB), &addrs).await;
    // ONCS bit 5, NMIC shared, RESCAP: every type, IEKEY and PTPL on a file
    // namespace. The feature reads 0 until set.
    let (oncs, nmic, rescap) = identify_fields(&a).await;
    assert_eq!((oncs & (1 << 5), nmic & 1, rescap), (1 << 5, 1, 0xFF));
    assert_eq!(feature(&a, false, 0x83, 0).await, (StatusCode::SUCCESS, 0));
    a.resv_register(ResvRegister {
        cptpl: nvmp_wire::io::resv::cptpl::SET,
        ..register(KEY_A)
    })
    .await
    .unwrap();
    b.resv_register(register(KEY_B)).await.unwrap();
    a.resv_acquire(acquire(racqa::ACQUIRE, ResvType::WRITE_EXCLUSIVE, KEY_A, 0))
        .await
        .unwrap();
    a.write(LBA, gen(1), true).await.unwrap();
    let before = a.resv_report(0, true).await.unwrap();
    assert!(before.ptpls);
    assert_eq!(feature(&a, false, 0x83, 0).await, (StatusCode::SUCCESS, 1));
    mp_a.shutdown().await;
    mp_b.shutdown().await;
    t.shutdown().await;

    // A new target process state from the same config: registrations and the reservation are back.
    let (t, addrs) = start().await;
    let (mp_a, a) = host_with_paths(host(0xA), &addrs).await;
    let (mp_b, b) = host_with_paths(host(0xB), &addrs).await;
    let after = b.resv_report(0, true).await.unwrap();
    assert_eq!(after, before);
    assert_eq!(
        b.write(LBA, gen(2), false).await.unwrap_err().status.code,
        StatusCode::RESERVATION_CONFLICT
    );
    assert_eq!(b.read(LBA, 1).await.unwrap(), gen(1));
    a.write(LBA, gen(3), false).await.unwrap();

    // PTPL cleared with Set Features (Reservation Persistence): the next restart forgets.
    assert_eq!(feature(&a, true, 0x83, 0).await.0, StatusCode::SUCCESS);
    mp_a.shutdown().await;
    mp_b.shutdown().await;
    t.shutdown().await;
    let (t, addrs) = start().await;
    let (mp_b, b) = host_with_paths(host(0xB), &addrs).await;
    let r = b.resv_report(0, true).await.unwrap();
    assert_eq!((r.rtype, r.regctl, r.ptpls), (ResvType::NONE, 0, false));
    b.write(LBA, gen(4), false).await.unwrap();
    mp_b.shutdown().await;
    t.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The oldest Reservation Notification of a controller (consumed), via Get Log Page 80h.
async fn notification(head: &NamespaceHead) -> nvmp_wire::log::resv::ResvNotification {
    let d = head.paths()[0]
        .ctrl
        .ctrl
        .get_log_page_nsid(
            nvmp_wire::admin::LogPageId(0x80),
            0xFFFF_FFFF,
            0,
            false,
            0,
            64,
        )
        .await
        .unwrap();
    nvmp_wire::log::resv::ResvNotification::decode(&d).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_aen_log_page_and_mask() {
    use nvmp_wire::log::resv::ResvNotificationType as Note;
    init_tracing();
    let (t, addrs) = start_target(&TargetDef::default()).await;
    let (mp_a, a) = host_with_paths(host(0xA), &addrs[..1]).await;
    let (mp_b, b) = host_with_paths(host(0xB), &addrs[..1]).await;
    let mut events = a.paths()[0].ctrl.ctrl.events();
    // A RAM namespace: every type and IEKEY, no PTPL (RESCAP bit 0 clear); PTPL refused.
    let (oncs, nmic, rescap) = identify_fields(&a).await;
    assert_eq!((oncs & (1 << 5), nmic & 1, rescap), (1 << 5, 1, 0xFE));
    assert_eq!(
        feature(&a, true, 0x83, 1).await.0,
        StatusCode::INVALID_FIELD
    );
    a.resv_register(register(KEY_A)).await.unwrap();
    b.resv_register(register(KEY_B)).await.unwrap();
    b.resv_acquire(acquire(
        racqa::ACQUIRE,
        ResvType::WRITE_EXCLUSIVE_REG_ONLY,
        KEY_B,
        0,
    ))
    .await
    .unwrap();
    let release = ResvRelease {
        nsid: 1,
        rtype: ResvType::WRITE_EXCLUSIVE_REG_ONLY,
        crkey: KEY_B,
        ..Default::default()
    };
    b.resv_release(release).await.unwrap();
    // A, the other registrant, gets "Reservation Log Page Available" (I/O command set event, log 80h).
    let ev = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(nvmp_host::CtrlEvent::AsyncEvent(ev)) = events.recv().await {
                if ev.log_page.0 == 0x80 {
                    return ev;
                }
            }
        }
    })
    .await
    .expect("a reservation AEN");
    assert_eq!(ev.event_type, nvmp_wire::admin::AsyncEventType::IO_CMD_SET);
    let n = notification(&a).await;
    assert_eq!(
        (n.log_type, n.nsid, n.available),
        (Note::RESERVATION_RELEASED, 1, 0)
    );
    assert!(n.count >= 1);
    // Read: consumed; the next read is an empty page.
    assert_eq!(notification(&a).await.log_type, Note::EMPTY);
    // B (the releaser) is not told.
    assert_eq!(notification(&b).await.log_type, Note::EMPTY);

    // Mask "reservation released" for NSID 1 on A's controller: no entry next time.
    let released = nvmp_wire::io::resv::mask::RESERVATION_RELEASED;
    assert_eq!(
        feature(&a, true, 0x82, released).await.0,
        StatusCode::SUCCESS
    );
    assert_eq!(
        feature(&a, false, 0x82, 0).await,
        (StatusCode::SUCCESS, released)
    );
    assert_eq!(
        feature(&a, true, 0x82, 1).await.0,
        StatusCode::INVALID_FIELD
    );
    b.resv_acquire(acquire(
        racqa::ACQUIRE,
        ResvType::WRITE_EXCLUSIVE_REG_ONLY,
        KEY_B,
        0,
    ))
    .await
    .unwrap();
    b.resv_release(release).await.unwrap();
    assert_eq!(notification(&a).await.log_type, Note::EMPTY);

    // B takes a reservation; A preempts B's registration: B is told, with a higher count.
    b.resv_acquire(acquire(racqa::ACQUIRE, ResvType::WRITE_EXCLUSIVE, KEY_B, 0))
        .await
        .unwrap();
    a.resv_acquire(acquire(
        racqa::PREEMPT,
        ResvType::WRITE_EXCLUSIVE,
        KEY_A,
        KEY_B,
    ))
    .await
    .unwrap();
    let n = notification(&b).await;
    assert_eq!((n.log_type, n.nsid), (Note::REGISTRATION_PREEMPTED, 1));
    // Clear by A: nobody else is registered any more, nothing to tell.
    a.resv_release(ResvRelease {
        nsid: 1,
        rrela: nvmp_wire::io::resv::rrela::CLEAR,
        crkey: KEY_A,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(notification(&b).await.log_type, Note::EMPTY);
    mp_a.shutdown().await;
    mp_b.shutdown().await;
    t.shutdown().await;
}
