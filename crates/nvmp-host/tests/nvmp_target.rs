//! The host against nvmp's own target (in process, real loopback TCP):
//! discovery, Identify, I/O (in-capsule and R2T), an ANA change AEN, a
//! status from fault injection passed through as data, a black-holed port
//! detected by keep-alive, port down / up → reconnect.

use std::time::{Duration, Instant};

use bytes::Bytes;
use nvmp_host::{discover, discovery_options, Controller, ControllerOptions, CtrlEvent, CtrlState};
use nvmp_target::{FailNext, Fault, TargetConfig, TargetHandle};
use nvmp_testkit::free_port;
use nvmp_wire::admin::{AsyncEventType, NOTICE_ANA_CHANGE};
use nvmp_wire::log::AnaState;
use nvmp_wire::StatusCode;

const SUB: &str = "nqn.2024-01.io.nvmp:host-it";

fn config(p1: u16, p2: u16) -> String {
    let port = |id: u16, p: u16, g1: &str, g2: &str| {
        format!(
            r#"{{"portid": {id}, "addr": {{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "{p}", "treq": "not specified"}},
      "param": {{"inline_data_size": "16384"}},
      "ana_groups": [{{"grpid": 1, "ana": {{"state": "{g1}"}}}}, {{"grpid": 2, "ana": {{"state": "{g2}"}}}}],
      "referrals": [], "subsystems": ["{SUB}"]}}"#
        )
    };
    format!(
        r#"{{"hosts": [], "ports": [{}, {}],
  "subsystems": [{{"nqn": "{SUB}", "attr": {{"allow_any_host": "1", "serial": "NVMPHOST0001", "model": "nvmp-host-it", "version": "1.3", "cntlid_min": "1", "cntlid_max": "65519"}},
      "allowed_hosts": [],
      "namespaces": [
        {{"nsid": 1, "enable": 1, "ana_grpid": 1, "device": {{"size": "16M", "nguid": "4e560000-0000-4000-8000-0000000000a1", "uuid": "4e560000-0000-4000-8000-000000000001"}}}},
        {{"nsid": 2, "enable": 1, "ana_grpid": 2, "device": {{"size": "16M", "nguid": "4e560000-0000-4000-8000-0000000000a2", "uuid": "4e560000-0000-4000-8000-000000000002"}}}}]}}]}}"#,
        port(1, p1, "optimized", "non-optimized"),
        port(2, p2, "non-optimized", "optimized")
    )
}

fn pattern(seed: u64, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    for i in (0..len).step_by(8) {
        v.extend_from_slice(&(seed << 48 | i as u64).to_le_bytes());
    }
    v.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nvmp_target_interop() {
    let (p1, p2) = (free_port(), free_port());
    let t = TargetHandle::start(TargetConfig::from_json(&config(p1, p2)).unwrap())
        .await
        .unwrap();

    let entries = discover(discovery_options("127.0.0.1", p1)).await.unwrap();
    assert!(entries.iter().any(|e| e.subnqn == SUB), "{entries:?}");

    let mut o = ControllerOptions::new("127.0.0.1", p1, SUB);
    o.kato_ms = 1000;
    o.reconnect_delay_ms = 1000;
    o.nr_io_queues = 2;
    let c = Controller::connect(o).await.unwrap();
    let id = c.id_ctrl();
    assert_eq!(id.sn, "NVMPHOST0001");
    assert_eq!(id.mn, "nvmp-host-it");
    assert!(id.nn >= 2);
    let ns = c.identify_namespace(1).await.unwrap();
    let bs = ns.block_size().unwrap();
    assert_eq!(c.active_namespaces().await.unwrap(), vec![1, 2]);

    // In-capsule (4 KiB) and R2T (256 KiB) writes, read back; 8 MiB at QD 8.
    for (slba, len) in [(0u64, 4096usize), (64, 256 * 1024)] {
        let d = pattern(slba, len);
        assert!(c.write(1, slba, d.clone(), bs, false).await.is_success());
        assert_eq!(c.read(1, slba, (len as u32) / bs, bs).await.data, d);
    }
    let t0 = Instant::now();
    let mut hs = vec![];
    for q in 0..8u64 {
        let c = c.clone();
        hs.push(tokio::spawn(async move {
            for i in 0..8u64 {
                let slba = 4096 + (q * 8 + i) * (128 * 1024 / bs as u64);
                let d = pattern(slba, 128 * 1024);
                assert!(c.write(2, slba, d.clone(), bs, false).await.is_success());
                assert_eq!(c.read(2, slba, 128 * 1024 / bs, bs).await.data, d);
            }
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    eprintln!("8 MiB written and read back in {:?}", t0.elapsed());

    // ANA change → AEN → log.
    let mut ev = c.events();
    t.set_ana(1, 1, AnaState::INACCESSIBLE).unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(CtrlEvent::AsyncEvent(e)) = ev.recv().await {
                if e.event_type == AsyncEventType::NOTICE && e.info == NOTICE_ANA_CHANGE {
                    return;
                }
            }
        }
    })
    .await
    .expect("ANA change AEN");
    let log = c.ana_log(false).await.unwrap();
    assert_eq!(
        log.groups.iter().find(|g| g.grpid == 1).unwrap().state,
        AnaState::INACCESSIBLE
    );
    let r = c.read(1, 0, 1, bs).await;
    assert_eq!(
        r.status.code,
        StatusCode::ANA_INACCESSIBLE,
        "an ANA status is data"
    );
    t.set_ana(1, 1, AnaState::OPTIMIZED).unwrap();

    // Injected failure status passes through as a completion.
    let f = Fault {
        fail_next: Some(FailNext {
            count: 1,
            status: 0x281,
            dnr: true,
        }),
        ..Default::default()
    };
    t.set_fault(1, f).unwrap();
    let r = c.read(1, 0, 1, bs).await;
    assert_eq!(r.status.code, StatusCode::UNRECOVERED_READ_ERROR);
    assert!(r.status.dnr);
    assert_eq!(c.state(), CtrlState::Live);

    // Black hole: keep-alive (KATO 1 s) detects it, the controller resets
    // and reconnects once the port answers again.
    let mut st = c.watch_state();
    t.set_fault(
        1,
        Fault {
            black_hole: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    let t0 = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(5),
        st.wait_for(|s| *s != CtrlState::Live),
    )
    .await
    .expect("keep-alive timeout detected")
    .unwrap();
    eprintln!("black hole detected after {:?}", t0.elapsed());
    t.clear_faults(1).unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        st.wait_for(|s| *s == CtrlState::Live),
    )
    .await
    .expect("reconnected after black hole")
    .unwrap();

    // Port down / up.
    t.port_down(1).unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        st.wait_for(|s| *s != CtrlState::Live),
    )
    .await
    .unwrap()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.port_up(1).unwrap();
    let t0 = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(5),
        st.wait_for(|s| *s == CtrlState::Live),
    )
    .await
    .expect("reconnected after port up")
    .unwrap();
    let dt = t0.elapsed();
    assert!(dt <= Duration::from_secs(2), "reconnect took {dt:?}");
    assert_eq!(c.read(1, 0, 8, bs).await.data, pattern(0, 4096));
    c.disconnect().await;
    t.shutdown().await;
}
