//! Linking controllers into subsystems and namespaces into heads, against
//! nvmp's own target over loopback TCP.

mod common;

use common::*;
use nvmp_host::Controller;
use nvmp_mpath::{MpathConfig, MpathError, Multipath};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ports_make_one_subsystem_one_head_two_paths() {
    let (t, _addrs, mp, head) = setup_two_paths().await;
    let subs = mp.snapshot();
    assert_eq!(subs.len(), 1);
    let s = &subs[0];
    assert_eq!(s.nqn, NQN);
    assert_eq!(s.iopolicy, "numa");
    assert_eq!(s.controllers.len(), 2);
    assert_eq!(s.heads.len(), 1);
    let h = &s.heads[0];
    assert_eq!(h.nsid, 1);
    assert_eq!(h.paths.len(), 2);
    let states: Vec<&str> = h.paths.iter().map(|p| p.ana_state.as_str()).collect();
    assert_eq!(states, ["optimized", "non-optimized"]);
    assert!(h.paths.iter().all(|p| p.ctrl_state == "live"));
    assert_eq!(head.capacity_bytes(), 64 << 20);
    assert_eq!(
        head.ids.nguid,
        nvmp_target::config::parse_uuid(NGUID1).unwrap()
    );
    // Data written through the head is there.
    let data = bytes::Bytes::from(block_pattern(7, 1, 512));
    head.write(7, data.clone(), true).await.unwrap();
    assert_eq!(head.read(7, 1).await.unwrap(), data);
    // Serializes as JSON for list-subsys.
    let json = serde_json::to_string(&subs).unwrap();
    assert!(json.contains("\"ana_state\":\"optimized\""), "{json}");
    mp.shutdown().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_cntlid_is_refused() {
    init_tracing();
    // Two targets that claim the same subsystem NQN and both hand out CNTLID 1.
    let one = [PortDef {
        id: 1,
        group1: "optimized",
    }];
    let d = TargetDef {
        ports: &one,
        cntlid: (1, 1),
        ..Default::default()
    };
    let (t1, a1) = start_target(&d).await;
    let (t2, a2) = start_target(&d).await;
    let mp = Multipath::new(MpathConfig::default());
    connect(&mp, path_opts(a1[0], NQN)).await;
    let c2 = Controller::connect(path_opts(a2[0], NQN)).await.unwrap();
    assert_eq!(c2.cntlid(), 1);
    let err = mp.add_controller(c2.clone()).await.unwrap_err();
    assert!(
        matches!(err, MpathError::DuplicateCntlid { cntlid: 1, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("duplicate cntlid 1") && msg.contains(NQN),
        "{msg}"
    );
    assert_eq!(mp.head(NQN, 1).unwrap().paths().len(), 1);
    c2.disconnect().await;
    mp.shutdown().await;
    t1.shutdown().await;
    t2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifier_mismatch_is_refused_naming_the_identifier() {
    init_tracing();
    let one = [PortDef {
        id: 1,
        group1: "optimized",
    }];
    let (t1, a1) = start_target(&TargetDef {
        ports: &one,
        cntlid: (1, 10),
        ..Default::default()
    })
    .await;
    let other = "6e766d70-0000-4000-8000-0000000000ff";
    let (t2, a2) = start_target(&TargetDef {
        ports: &one,
        cntlid: (11, 20),
        nguid: other,
        ..Default::default()
    })
    .await;
    let mp = Multipath::new(MpathConfig::default());
    let l1 = connect(&mp, path_opts(a1[0], NQN)).await;
    assert_eq!(l1.paths_added.len(), 1);
    let l2 = connect(&mp, path_opts(a2[0], NQN)).await;
    assert!(l2.paths_added.is_empty(), "{l2:?}");
    assert_eq!(l2.refused.len(), 1);
    let why = &l2.refused[0].reason;
    assert!(
        why.contains("IDs don't match") && why.contains("UUID"),
        "{why}"
    );
    // The controller is linked into the subsystem, the head keeps one path.
    assert_eq!(mp.subsystem(NQN).unwrap().controllers().len(), 2);
    assert_eq!(mp.head(NQN, 1).unwrap().paths().len(), 1);
    mp.shutdown().await;
    t1.shutdown().await;
    t2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_controller_removes_its_paths() {
    let (t, _a, mp, head) = setup_two_paths().await;
    let name = head.paths()[0].ctrl.name.clone();
    assert!(mp.remove_controller(&name).await);
    assert_eq!(head.paths().len(), 1);
    // I/O still works through the remaining (non-optimized) path.
    head.write(0, bytes::Bytes::from(vec![1u8; 512]), false)
        .await
        .unwrap();
    let last = head.paths()[0].ctrl.name.clone();
    assert!(mp.remove_controller(&last).await);
    assert!(mp.head(NQN, 1).is_none(), "head removed with its last path");
    // A command on a head with no path left fails at once.
    let e = head.read(0, 1).await.unwrap_err();
    assert_eq!(e.status.code, nvmp_wire::StatusCode::HOST_PATHING_ERROR);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_come_and_go_at_run_time() {
    use nvmp_target::config::{DeviceSpec, NamespaceSpec};
    let (t, _a, mp, _head) = setup_two_paths().await;
    let nguid = nvmp_target::config::parse_uuid("6e766d70-0000-4000-8000-0000000000c2").unwrap();
    let ns = NamespaceSpec {
        nsid: 2,
        enable: true,
        ana_grpid: 1,
        device: DeviceSpec::Ram {
            size: 8 << 20,
            block_size: 4096,
        },
        nguid: Some(nguid),
        uuid: Some(nguid),
    };
    t.add_namespace(NQN, ns).unwrap();
    // The namespace-attribute-changed event makes every controller rescan.
    wait_until(
        "head for NSID 2 with two paths",
        std::time::Duration::from_secs(5),
        || mp.head(NQN, 2).is_some_and(|h| h.paths().len() == 2),
    )
    .await;
    let h2 = mp.head(NQN, 2).unwrap();
    assert_eq!(h2.block_size(), 4096);
    assert_eq!(h2.capacity_bytes(), 8 << 20);
    h2.write(1, bytes::Bytes::from(vec![7u8; 4096]), false)
        .await
        .unwrap();
    t.remove_namespace(NQN, 2).unwrap();
    wait_until(
        "head for NSID 2 gone",
        std::time::Duration::from_secs(5),
        || mp.head(NQN, 2).is_none(),
    )
    .await;
    assert_eq!(
        mp.head(NQN, 1).unwrap().paths().len(),
        2,
        "NSID 1 untouched"
    );
    mp.shutdown().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unshared_namespace_seen_twice_is_refused() {
    init_tracing();
    let d = TargetDef {
        extra_attr: r#""nvmp_nmic_shared": "0""#,
        ..Default::default()
    };
    let (t, addrs) = start_target(&d).await;
    let mp = Multipath::new(MpathConfig::default());
    let l1 = connect(&mp, path_opts(addrs[0], NQN)).await;
    assert_eq!(l1.paths_added.len(), 1);
    let l2 = connect(&mp, path_opts(addrs[1], NQN)).await;
    assert!(l2.paths_added.is_empty());
    assert!(
        l2.refused[0].reason.contains("unshared namespace 1"),
        "{:?}",
        l2.refused
    );
    assert_eq!(mp.head(NQN, 1).unwrap().paths().len(), 1);
    mp.shutdown().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_without_ana_counts_as_optimized() {
    // The target reports no ANA support; its ports' ANA groups are ignored.
    let d = TargetDef {
        ports: &[
            PortDef {
                id: 1,
                group1: "inaccessible",
            },
            PortDef {
                id: 2,
                group1: "inaccessible",
            },
        ],
        extra_attr: r#""nvmp_ana": "0""#,
        ..Default::default()
    };
    let (t, _a, mp, head) = setup_two_paths_with(&d).await;
    for p in head.paths().iter() {
        assert!(!p.ctrl.ana_supported);
        assert_eq!(p.ana_state(), nvmp_wire::log::AnaState::OPTIMIZED);
    }
    head.write(0, bytes::Bytes::from(vec![1u8; 512]), false)
        .await
        .unwrap();
    mp.shutdown().await;
    t.shutdown().await;
}

/// Dropping every `Multipath` handle (and head) without `shutdown()` lets
/// go of the controllers: the target sees them disconnect. (The monitors
/// used to hold the registry, and the registry its controllers: a cycle
/// that kept every path connected.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_registry_disconnects_its_controllers() {
    let (t, _a, mp, head) = setup_two_paths().await;
    let ctrls = |t: &nvmp_target::TargetHandle| -> usize {
        t.status()
            .subsystems
            .iter()
            .map(|s| s.controllers.len())
            .sum()
    };
    assert_eq!(ctrls(&t), 2, "two paths, two controllers");
    drop(head);
    drop(mp);
    wait_until(
        "controllers disconnected",
        std::time::Duration::from_secs(10),
        || ctrls(&t) == 0,
    )
    .await;
    t.shutdown().await;
}

/// A reconnect may bring a new CNTLID (nvmp's target, like Linux's nvmet,
/// gives each association its own): what the registry shows and checks for
/// duplicates is the controller's CNTLID now, not the one it was linked with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnected_controller_is_shown_with_its_new_cntlid() {
    let (t, addrs, mp, _head) = setup_two_paths().await;
    let c = Controller::connect(path_opts(addrs[0], NQN)).await.unwrap();
    let linked = mp.add_controller(c.clone()).await.unwrap();
    let before = c.cntlid();
    c.reset();
    wait_until(
        "a new association",
        std::time::Duration::from_secs(20),
        || c.state() == nvmp_host::CtrlState::Live && c.cntlid() != before,
    )
    .await;
    let now = c.cntlid();
    let shown: Vec<u16> = mp.snapshot()[0]
        .controllers
        .iter()
        .map(|s| s.cntlid)
        .collect();
    assert!(shown.contains(&now), "{shown:?} lacks the new CNTLID {now}");
    assert!(
        !shown.contains(&before),
        "{shown:?} still shows the old CNTLID {before}"
    );
    drop(linked);
    mp.shutdown().await;
    t.shutdown().await;
}
