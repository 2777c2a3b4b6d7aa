//! What SPDK's initiator (v25.09) sends, replayed with the raw test client
//! over loopback: an all-NUL host NQN when it is given none, and, at
//! shutdown, Property Get/Set capsules reusing the CIDs of the Asynchronous
//! Event Requests it dropped locally.

mod common;

use bytes::Bytes;
use common::*;
use nvmp_target::{TargetConfig, TargetHandle};
use nvmp_wire::fabrics::{ConnectCmd, Csts};
use nvmp_wire::log::AnaState;
use nvmp_wire::{Cqe, FabricsType, Opcode, Sqe, StatusCode};

const OPEN: &str = "nqn.2024-01.io.nvmp:open";
const CLOSED: &str = "nqn.2024-01.io.nvmp:closed";

/// One port with two subsystems: OPEN (allow_any_host) and CLOSED (only HOSTNQN).
fn config() -> String {
    let ns = |n: u32| {
        format!(
            r#"[{{"nsid": 1, "enable": 1, "ana_grpid": 1, "device": {{"size": "8M", "nguid": "4e560000-0000-4000-8000-0000000000{n:02x}", "uuid": "4e560000-0000-4000-8000-0000000000{n:02x}"}}}}]"#
        )
    };
    format!(
        r#"{{
  "hosts": [{{"nqn": "{HOSTNQN}"}}],
  "ports": [
    {{"portid": 1, "addr": {{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "0", "treq": "not specified"}},
      "param": {{"inline_data_size": "16384"}},
      "ana_groups": [{{"grpid": 1, "ana": {{"state": "optimized"}}}}],
      "referrals": [], "subsystems": ["{OPEN}", "{CLOSED}"]}}
  ],
  "subsystems": [
    {{"nqn": "{OPEN}", "attr": {{"allow_any_host": "1", "serial": "NVMPSPDK0001", "version": "1.3"}},
      "allowed_hosts": [], "namespaces": {}}},
    {{"nqn": "{CLOSED}", "attr": {{"allow_any_host": "0", "serial": "NVMPSPDK0002", "version": "1.3"}},
      "allowed_hosts": ["{HOSTNQN}"], "namespaces": {}}}
  ]
}}"#,
        ns(1),
        ns(2)
    )
}

/// Connect data as SPDK builds it without `hostnqn:`: HOSTID, CNTLID and
/// SUBNQN filled, the 256 bytes of HOSTNQN (512..768) all NUL.
fn spdk_connect_data(subnqn: &str, cntlid: u16) -> Bytes {
    let mut d = vec![0u8; 1024];
    d[0..16].copy_from_slice(&HOSTID);
    d[16..18].copy_from_slice(&cntlid.to_le_bytes());
    d[256..256 + subnqn.len()].copy_from_slice(subnqn.as_bytes());
    assert!(d[512..768].iter().all(|b| *b == 0));
    Bytes::from(d)
}

async fn raw_connect(c: &mut Client, subnqn: &str, qid: u16, cntlid: u16) -> Cqe {
    let sqe = ConnectCmd {
        recfmt: 0,
        qid,
        sqsize: 31,
        cattr: 0,
        kato_ms: if qid == 0 { 10_000 } else { 0 },
    }
    .to_sqe();
    let data = spdk_connect_data(subnqn, cntlid);
    c.command(sqe, Some(data), 0).await.unwrap().0
}

fn prop_get_sqe(cid: u16, offset: u32) -> Sqe {
    let mut s = Sqe::fabrics(FabricsType::PROPERTY_GET);
    s.cid = cid;
    s.cdw11 = offset;
    s
}

fn prop_set_cc_sqe(cid: u16, value: u32) -> Sqe {
    let mut s = Sqe::fabrics(FabricsType::PROPERTY_SET);
    s.cid = cid;
    s.cdw11 = 0x14;
    s.cdw12 = value;
    s
}

const CC_EN: u32 = 1 | (6 << 16) | (4 << 20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_host_nqn_is_a_host_only_where_any_host_is_allowed() {
    let t = TargetHandle::start(TargetConfig::from_json(&config()).unwrap())
        .await
        .unwrap();
    let addr = t.local_addr(1).unwrap();

    // allow_any_host: admitted, and its I/O queue too (same empty name).
    let mut admin = Client::connect(addr).await.unwrap();
    let c = raw_connect(&mut admin, OPEN, 0, 0xFFFF).await;
    assert!(c.status.is_success(), "{}", c.status);
    let cntlid = c.dw0 as u16;
    assert!(admin.prop_set_cc(CC_EN).await.unwrap().status.is_success());
    let mut io = Client::connect(addr).await.unwrap();
    let c = raw_connect(&mut io, OPEN, 1, cntlid).await;
    assert!(c.status.is_success(), "{}", c.status);
    let data = Bytes::from(vec![0xA5; 4096]);
    let (c, _) = io
        .command(write_sqe(1, 8, 8, false), Some(data.clone()), 0)
        .await
        .unwrap();
    assert!(c.status.is_success(), "{}", c.status);
    let (c, d) = io.command(read_sqe(1, 8, 8), None, 4096).await.unwrap();
    assert!(c.status.is_success(), "{}", c.status);
    assert_eq!(d, data);
    let st = t.status();
    let open = st.subsystems.iter().find(|s| s.nqn == OPEN).unwrap();
    assert_eq!(open.controllers.len(), 1);
    assert_eq!(open.controllers[0].hostnqn, "");

    // An allow list: the empty name is no allowed host. Linux answers
    // "Connect Invalid Host", DNR, IATTR 1 (in the data), IPO 512 (HOSTNQN).
    let mut refused = Client::connect(addr).await.unwrap();
    let c = raw_connect(&mut refused, CLOSED, 0, 0xFFFF).await;
    assert_eq!(c.status.code, StatusCode::CONNECT_INVALID_HOST);
    assert!(c.status.dnr);
    assert_eq!(c.dw0, 512 | (1 << 16));
    // The listed host still gets in.
    let (_ok, _) = Client::admin(addr, CLOSED, HOSTNQN, 5000).await.unwrap();
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reusing_the_cids_of_dropped_aers_as_spdk_does() {
    let t = TargetHandle::start(TargetConfig::from_json(&config()).unwrap())
        .await
        .unwrap();
    let addr = t.local_addr(1).unwrap();
    let mut a = Client::connect(addr).await.unwrap();
    let c = raw_connect(&mut a, OPEN, 0, 0xFFFF).await;
    assert!(c.status.is_success(), "{}", c.status);
    assert!(a.prop_set_cc(CC_EN).await.unwrap().status.is_success());
    // Async Event Configuration: namespace attribute and ANA change notices.
    let mut s = Sqe::new(Opcode::SET_FEATURES);
    s.cdw10 = 0x0B;
    s.cdw11 = (1 << 8) | (1 << 11);
    assert!(a.command(s, None, 0).await.unwrap().0.status.is_success());
    // AERL + 1 = 4 AERs outstanding, CIDs 100..=103 (SPDK's tracker slots).
    for cid in 100..=103 {
        let mut s = Sqe::new(Opcode::ASYNC_EVENT_REQUEST);
        s.cid = cid;
        a.submit(s, None, 0).await.unwrap();
    }

    // SPDK drops the AERs and reads CC with the first one's CID: answered.
    a.submit(prop_get_sqe(100, 0x14), None, 0).await.unwrap();
    let d = a.next_done().await.unwrap();
    assert_eq!(d.cid, 100);
    assert!(d.cqe.status.is_success(), "{}", d.cqe.status);
    assert_eq!(d.cqe.dw0, CC_EN);

    // The abandoned AER is never answered: an event goes to the oldest
    // AER still outstanding (101).
    t.set_ana(1, 1, AnaState::NON_OPTIMIZED).unwrap();
    let d = a.next_done().await.unwrap();
    assert_eq!(d.cid, 101);
    assert!(d.cqe.status.is_success());
    let ev = nvmp_wire::admin::AsyncEvent::from_dw0(d.cqe.dw0);
    assert_eq!(ev.info, nvmp_wire::admin::NOTICE_ANA_CHANGE);

    // Shutdown: CC.SHN = normal (reusing 102), then CSTS (reusing 103).
    a.submit(prop_set_cc_sqe(102, CC_EN | (1 << 14)), None, 0)
        .await
        .unwrap();
    let d = a.next_done().await.unwrap();
    assert_eq!(d.cid, 102);
    assert!(d.cqe.status.is_success(), "{}", d.cqe.status);
    a.submit(prop_get_sqe(103, 0x1C), None, 0).await.unwrap();
    let d = a.next_done().await.unwrap();
    assert_eq!(d.cid, 103);
    assert!(d.cqe.status.is_success(), "{}", d.cqe.status);
    assert_eq!(Csts(d.cqe.dw0).shst(), Csts::SHST_COMPLETE);

    // The queue is healthy and nothing else (no answer for the abandoned
    // AERs 100, 102, 103) was sent: the next completion is the Keep Alive's.
    let mut ka = nvmp_wire::admin::keep_alive_sqe();
    ka.cid = 9;
    a.submit(ka, None, 0).await.unwrap();
    let d = a.next_done().await.unwrap();
    assert_eq!(d.cid, 9);
    assert!(d.cqe.status.is_success(), "{}", d.cqe.status);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_cid_reuse_is_still_a_conflict() {
    let t = TargetHandle::start(TargetConfig::from_json(&config()).unwrap())
        .await
        .unwrap();
    let addr = t.local_addr(1).unwrap();
    let (_admin, cntlid) = Client::admin(addr, OPEN, HOSTNQN, 5000).await.unwrap();
    let mut io = Client::io(addr, OPEN, HOSTNQN, cntlid, 1).await.unwrap();
    // A 64 KiB write waits for its data (R2T); a read with its CID conflicts.
    let data = Bytes::from(vec![0x3C; 65536]);
    let mut w = write_sqe(1, 0, 128, false);
    w.cid = 7;
    io.submit(w, Some(data.clone()), 0).await.unwrap();
    let mut r = read_sqe(1, 0, 8);
    r.cid = 7;
    io.submit(r, None, 4096).await.unwrap();
    let d = io.next_done().await.unwrap();
    assert_eq!(d.cid, 7);
    assert_eq!(d.cqe.status.code, StatusCode::CID_CONFLICT);
    // The write itself completes.
    let d = io.next_done().await.unwrap();
    assert_eq!(d.cid, 7);
    assert!(d.cqe.status.is_success(), "{}", d.cqe.status);
    let (c, back) = io.command(read_sqe(1, 0, 128), None, 65536).await.unwrap();
    assert!(c.status.is_success());
    assert_eq!(back, data);
    t.shutdown().await;
}
