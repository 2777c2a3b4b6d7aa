//! Deterministic tests of the sans-IO core with a virtual clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use nvmp_wire::fabrics::{ConnectCmd, ConnectData};
use nvmp_wire::identify::{IdentifyController, IdentifyNamespace};
use nvmp_wire::log::{AnaLog, AnaLogLimits, AnaState, DiscoveryLog};
use nvmp_wire::pdu::{DataHeader, DataPdu, Digests, EncodeOptions, Fes, IcReq};
use nvmp_wire::{Cqe, FabricsType, Opcode, Pdu, Sgl, Sqe, StatusCode};

use super::queue::{Limits, Output, Queue};
use super::state::{Shared, State};
use crate::config::TargetConfig;

mod auth;
mod ccr;
mod more;

const SUB: &str = "nqn.2024-01.io.nvmp:test";
const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001";
const OTHER: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000002";

fn config(allow_any: bool) -> TargetConfig {
    let text = format!(
        r#"{{"hosts": [{{"nqn": "{HOST}"}}],
 "ports": [
  {{"portid": 1, "addr": {{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "4420"}},
    "ana_groups": [{{"grpid": 1, "ana": {{"state": "optimized"}}}}], "subsystems": ["{SUB}"]}},
  {{"portid": 2, "addr": {{"trtype": "tcp", "adrfam": "ipv4", "traddr": "0.0.0.0", "trsvcid": "4421"}},
    "param": {{"nvmp_advertise_traddr": "10.0.2.2"}},
    "ana_groups": [{{"grpid": 1, "ana": {{"state": "non-optimized"}}}}], "subsystems": ["{SUB}"]}}],
 "subsystems": [{{"nqn": "{SUB}", "attr": {{"allow_any_host": "{}", "serial": "S1"}},
   "allowed_hosts": ["{HOST}"],
   "namespaces": [{{"nsid": 1, "enable": 1, "ana_grpid": 1, "device": {{"size": "1M"}}}},
                  {{"nsid": 2, "enable": 1, "ana_grpid": 2, "device": {{"path": "ram:1M"}}}}]}}]}}"#,
        if allow_any { "1" } else { "0" }
    );
    TargetConfig::from_json(&text).unwrap()
}

fn shared(allow_any: bool) -> Arc<Shared> {
    Shared::new(State::from_config(&config(allow_any)).unwrap())
}

struct H {
    q: Queue,
    now: Instant,
    closed: bool,
    next_cid: u16,
}

impl H {
    fn new(sh: &Arc<Shared>, port: u16, now: Instant) -> H {
        let (id, sig) = sh.lock().register_conn(port).unwrap();
        let q = Queue::new(sh.clone(), id, sig, port, None, Limits::default(), now);
        H {
            q,
            now,
            closed: false,
            next_cid: 1,
        }
    }

    fn run(&mut self, outs: Vec<Output>) -> Vec<Pdu> {
        let mut res = Vec::new();
        let mut work: std::collections::VecDeque<Output> = outs.into();
        while let Some(o) = work.pop_front() {
            match o {
                Output::Send(p) => res.push(p),
                Output::Io {
                    cid, backend, op, ..
                } => work.extend(self.q.on_io_done(cid, backend.execute(&op))),
                Output::Close => self.closed = true,
            }
        }
        res
    }

    fn feed_bytes(&mut self, b: &[u8]) -> Vec<Pdu> {
        let mut buf = BytesMut::from(b);
        let outs = self.q.on_bytes(&mut buf, self.now);
        self.run(outs)
    }

    fn feed(&mut self, p: Pdu) -> Vec<Pdu> {
        let mut b = BytesMut::new();
        p.encode(EncodeOptions::default(), &mut b);
        self.feed_bytes(&b)
    }

    /// A new connection on `port` that has done ICReq / ICResp.
    fn with_ic(sh: &Arc<Shared>, port: u16, now: Instant) -> H {
        let mut h = H::new(sh, port, now);
        h.ic();
        h
    }

    fn ic(&mut self) {
        let r = self.feed(Pdu::IcReq(IcReq {
            pfv: 0,
            hpda: 0,
            digests: Digests::NONE,
            maxr2t: 0,
        }));
        assert!(matches!(r[..], [Pdu::IcResp(_)]), "{r:?}");
    }

    /// Send a command; returns the CQE and any C2H data.
    fn cmd(&mut self, mut sqe: Sqe, data: Option<Bytes>, read_len: u32) -> (Cqe, Bytes) {
        sqe.cid = self.next_cid;
        self.next_cid += 1;
        let data = match data {
            Some(d) => {
                sqe.dptr = Sgl::in_capsule(0, d.len() as u32);
                d
            }
            None => {
                sqe.dptr = Sgl::transport(read_len);
                Bytes::new()
            }
        };
        let r = self.feed(Pdu::CapsuleCmd { sqe, data });
        let mut buf = BytesMut::new();
        for p in r {
            match p {
                Pdu::C2HData(d) => buf.extend_from_slice(&d.data),
                Pdu::CapsuleResp(c) => return (c, buf.freeze()),
                o => panic!("unexpected {o:?}"),
            }
        }
        panic!("no completion")
    }

    fn connect(&mut self, subnqn: &str, hostnqn: &str, qid: u16, cntlid: u16, kato_ms: u32) -> Cqe {
        let sqe = connect_sqe(qid, 31, kato_ms);
        self.cmd(sqe, Some(connect_data(7, cntlid, subnqn, hostnqn)), 0)
            .0
    }

    fn prop_set_cc(&mut self, v: u32) -> Cqe {
        let mut s = Sqe::fabrics(FabricsType::PROPERTY_SET);
        s.cdw11 = 0x14;
        s.cdw12 = v;
        self.cmd(s, None, 0).0
    }

    fn prop_get(&mut self, off: u32, size8: bool) -> Cqe {
        let mut s = Sqe::fabrics(FabricsType::PROPERTY_GET);
        s.cdw10 = size8 as u32;
        s.cdw11 = off;
        self.cmd(s, None, 0).0
    }

    /// IC + admin Connect + CC.EN; returns cntlid.
    fn admin(&mut self, kato_ms: u32) -> u16 {
        self.ic();
        let c = self.connect(SUB, HOST, 0, 0xFFFF, kato_ms);
        assert!(c.status.is_success(), "{:?}", c.status);
        assert!(self
            .prop_set_cc(1 | (6 << 16) | (4 << 20))
            .status
            .is_success());
        c.dw0 as u16
    }

    fn io(sh: &Arc<Shared>, port: u16, cntlid: u16, now: Instant) -> H {
        let mut h = H::with_ic(sh, port, now);
        let c = h.connect(SUB, HOST, 1, cntlid, 0);
        assert!(c.status.is_success(), "{:?}", c.status);
        h
    }

    /// An enabled admin queue ([`admin`](Self::admin)) and an I/O queue of
    /// the same controller, both on port 1; returns (admin, cntlid, io).
    fn admin_and_io(sh: &Arc<Shared>, now: Instant, kato_ms: u32) -> (H, u16, H) {
        let mut a = H::new(sh, 1, now);
        let cntlid = a.admin(kato_ms);
        let io = H::io(sh, 1, cntlid, now);
        (a, cntlid, io)
    }
}

/// A Fabrics Connect SQE (record format 0, no attributes).
fn connect_sqe(qid: u16, sqsize: u16, kato_ms: u32) -> Sqe {
    ConnectCmd {
        recfmt: 0,
        qid,
        sqsize,
        cattr: 0,
        kato_ms,
    }
    .to_sqe()
}

/// Connect data with every host ID byte `hostid`.
fn connect_data(hostid: u8, cntlid: u16, subnqn: &str, hostnqn: &str) -> Bytes {
    let d = ConnectData {
        hostid: [hostid; 16],
        cntlid,
        subnqn: subnqn.into(),
        hostnqn: hostnqn.into(),
    }
    .encode();
    Bytes::copy_from_slice(&d)
}

/// Set Features: feature `fid`, CDW11 `cdw11`.
fn set_features(fid: u32, cdw11: u32) -> Sqe {
    let mut s = Sqe::new(Opcode::SET_FEATURES);
    s.cdw10 = fid;
    s.cdw11 = cdw11;
    s
}

/// An Asynchronous Event Request capsule with command ID `cid`.
fn aer(cid: u16) -> Pdu {
    let mut sqe = Sqe::new(Opcode::ASYNC_EVENT_REQUEST);
    sqe.cid = cid;
    Pdu::CapsuleCmd {
        sqe,
        data: Bytes::new(),
    }
}

fn ana_log(d: &[u8]) -> AnaLog {
    AnaLog::decode(
        d,
        AnaLogLimits {
            max_groups: 128,
            max_nsids: 1024,
        },
    )
    .unwrap()
}

fn rw(op: Opcode, nsid: u32, slba: u64, nlb: u32) -> Sqe {
    let mut s = Sqe::new(op);
    s.nsid = nsid;
    s.cdw10 = slba as u32;
    s.cdw11 = (slba >> 32) as u32;
    s.cdw12 = nlb - 1;
    s
}

fn identify(cns: u8, nsid: u32) -> Sqe {
    let mut s = Sqe::new(Opcode::IDENTIFY);
    s.nsid = nsid;
    s.cdw10 = cns as u32;
    s
}

fn get_log(lid: u8, lsp: u8, lpo: u64, len: u32) -> Sqe {
    let mut s = Sqe::new(Opcode::GET_LOG_PAGE);
    let numd = len / 4 - 1;
    s.cdw10 = lid as u32 | ((lsp as u32) << 8) | ((numd & 0xFFFF) << 16);
    s.cdw11 = numd >> 16;
    s.cdw12 = lpo as u32;
    s.cdw13 = (lpo >> 32) as u32;
    s
}

#[test]
fn ic_negotiation_and_sequence_error() {
    let sh = shared(true);
    let now = Instant::now();
    let mut h = H::new(&sh, 1, now);
    let r = h.feed(Pdu::IcReq(IcReq {
        pfv: 0,
        hpda: 1,
        digests: Digests {
            header: true,
            data: true,
        },
        maxr2t: 0,
    }));
    match &r[..] {
        [Pdu::IcResp(ic)] => {
            assert_eq!(ic.pfv, 0);
            assert!(ic.digests.header && ic.digests.data);
            assert!(ic.maxh2cdata >= 4096 && ic.maxh2cdata % 4 == 0);
        }
        o => panic!("{o:?}"),
    }
    // A capsule before ICReq: PDU sequence error.
    let mut h2 = H::new(&sh, 1, now);
    let r = h2.feed(Pdu::CapsuleCmd {
        sqe: Sqe::new(Opcode::KEEP_ALIVE),
        data: Bytes::new(),
    });
    assert!(matches!(&r[..], [Pdu::C2HTermReq(t)] if t.fes == Fes::PDU_SEQUENCE_ERROR));
    assert!(h2.closed);
}

#[test]
fn connect_admin_enable_and_io_queue() {
    let sh = shared(true);
    let now = Instant::now();
    let mut a = H::new(&sh, 1, now);
    a.ic();
    // Commands before Connect are refused.
    let (c, _) = a.cmd(Sqe::new(Opcode::KEEP_ALIVE), None, 0);
    assert_eq!(c.status.code, StatusCode::COMMAND_SEQUENCE_ERROR);
    let c = a.connect(SUB, HOST, 0, 0xFFFF, 5000);
    assert!(c.status.is_success());
    let cntlid = c.dw0 as u16;
    assert_eq!(cntlid, 1);
    // CSTS.RDY follows CC.EN.
    assert_eq!(a.prop_get(0x1C, false).dw0 & 1, 0);
    // An I/O queue before CC.EN is refused.
    let mut early = H::with_ic(&sh, 1, now);
    assert!(!early.connect(SUB, HOST, 1, cntlid, 0).status.is_success());
    a.prop_set_cc(1 | (6 << 16) | (4 << 20));
    assert_eq!(a.prop_get(0x1C, false).dw0 & 1, 1);
    let cap = a.prop_get(0, true);
    assert_eq!(cap.dw0 & 0xFFFF, 127);
    // A second controller on port 2 gets a different CNTLID.
    let mut b = H::with_ic(&sh, 2, now);
    let c2 = b.connect(SUB, HOST, 0, 0xFFFF, 5000);
    assert!(c2.status.is_success());
    assert_ne!(c2.dw0 as u16, cntlid);
    // I/O queue with the right cntlid works; wrong cntlid / host / port do not.
    let _io = H::io(&sh, 1, cntlid, now);
    let mut bad = H::with_ic(&sh, 1, now);
    let c = bad.connect(SUB, HOST, 2, 999, 0);
    assert_eq!(c.status.code, StatusCode::CONNECT_INVALID_PARAMETERS);
    assert_eq!(c.dw0, 16 | (1 << 16));
    let c = bad.connect(SUB, OTHER, 2, cntlid, 0);
    assert_eq!(c.status.code, StatusCode::CONNECT_INVALID_PARAMETERS);
    let mut other_port = H::with_ic(&sh, 2, now);
    assert!(!other_port
        .connect(SUB, HOST, 2, cntlid, 0)
        .status
        .is_success());
    // Shutdown: CC.SHN → CSTS.SHST complete.
    a.prop_set_cc(1 | (6 << 16) | (4 << 20) | (1 << 14));
    assert_eq!((a.prop_get(0x1C, false).dw0 >> 2) & 3, 2);
}

#[test]
fn host_not_allowed() {
    let sh = shared(false);
    let mut h = H::with_ic(&sh, 1, Instant::now());
    let c = h.connect(SUB, OTHER, 0, 0xFFFF, 5000);
    assert_eq!(c.status.code, StatusCode::CONNECT_INVALID_HOST);
    assert!(c.status.dnr);
    assert!(h.connect(SUB, HOST, 0, 0xFFFF, 5000).status.is_success());
    // Unknown subsystem.
    let mut h = H::with_ic(&sh, 1, Instant::now());
    let c = h.connect("nqn.2024-01.io.nvmp:nope", HOST, 0, 0xFFFF, 5000);
    assert_eq!(c.status.code, StatusCode::CONNECT_INVALID_PARAMETERS);
    assert_eq!(c.dw0, 256 | (1 << 16));
}

#[test]
fn identify_contents() {
    let sh = shared(true);
    let mut a = H::new(&sh, 1, Instant::now());
    let cntlid = a.admin(5000);
    let (c, d) = a.cmd(identify(1, 0), None, 4096);
    assert!(c.status.is_success());
    let id = IdentifyController::decode(&d).unwrap();
    assert_eq!(id.cntlid, cntlid);
    assert_eq!(id.cmic, 0x0b);
    assert_eq!(id.anagrpmax, 128);
    assert_eq!(id.nanagrpid, 128);
    assert_eq!(id.anatt, 10);
    assert_eq!(id.cntrltype, 1);
    assert_eq!(id.subnqn, SUB);
    assert!(id.oaes & (1 << 11) != 0);
    assert!(id.sgls & 1 != 0);
    assert_eq!(id.sn, "S1");
    assert_eq!(id.ioccsz, (64 + 8192) / 16);
    let (_, d) = a.cmd(identify(0, 2), None, 4096);
    let ns = IdentifyNamespace::decode(&d).unwrap();
    assert_eq!(ns.nmic & 1, 1);
    assert_eq!(ns.anagrpid, 2);
    assert_eq!(ns.nsze, 2048);
    assert_eq!(ns.block_size(), Some(512));
    // Descriptors are the same through the other port.
    let (_, d1) = a.cmd(identify(3, 1), None, 4096);
    let mut b = H::new(&sh, 2, Instant::now());
    b.admin(5000);
    let (_, d2) = b.cmd(identify(3, 1), None, 4096);
    assert_eq!(d1, d2);
    let descs = nvmp_wire::identify::decode_ns_id_descriptors(&d1).unwrap();
    assert_eq!(descs.len(), 3);
    let (_, l) = a.cmd(identify(2, 0), None, 4096);
    assert_eq!(nvmp_wire::identify::decode_ns_list(&l).unwrap(), vec![1, 2]);
    let (c, _) = a.cmd(identify(0, 0), None, 4096);
    assert_eq!(c.status.code, StatusCode::INVALID_NAMESPACE);
}

#[test]
fn io_read_write_errors_and_ana_states() {
    let sh = shared(true);
    let now = Instant::now();
    let (_a, _, mut io) = H::admin_and_io(&sh, now, 5000);
    let data = Bytes::from(vec![0xAB; 1024]);
    let (c, _) = io.cmd(rw(Opcode::WRITE, 1, 8, 2), Some(data.clone()), 0);
    assert!(c.status.is_success());
    let (c, d) = io.cmd(rw(Opcode::READ, 1, 8, 2), None, 1024);
    assert!(c.status.is_success());
    assert_eq!(d, data);
    let (c, _) = io.cmd(rw(Opcode::READ, 1, 2047, 2), None, 1024);
    assert_eq!(c.status.code, StatusCode::LBA_OUT_OF_RANGE);
    assert!(c.status.dnr);
    let (c, _) = io.cmd(rw(Opcode::READ, 9, 0, 1), None, 512);
    assert_eq!(c.status.code, StatusCode::INVALID_NAMESPACE);
    assert!(c.status.dnr);
    // Namespace 2 is in group 2, not configured on port 1: inaccessible (nvmet default).
    let (c, _) = io.cmd(rw(Opcode::READ, 2, 0, 1), None, 512);
    assert_eq!(c.status.code, StatusCode::ANA_INACCESSIBLE);
    for (state, code) in [
        (AnaState::INACCESSIBLE, Some(StatusCode::ANA_INACCESSIBLE)),
        (
            AnaState::PERSISTENT_LOSS,
            Some(StatusCode::ANA_PERSISTENT_LOSS),
        ),
        (AnaState::CHANGE, Some(StatusCode::ANA_TRANSITION)),
        (AnaState::NON_OPTIMIZED, None),
        (AnaState::OPTIMIZED, None),
    ] {
        sh.lock().set_ana(1, 1, state).unwrap();
        let (c, _) = io.cmd(rw(Opcode::READ, 1, 0, 1), None, 512);
        match code {
            Some(code) => {
                assert_eq!(c.status.code, code);
                assert!(!c.status.dnr);
            }
            None => assert!(c.status.is_success()),
        }
    }
    // Flush, Write Zeroes.
    let mut f = Sqe::new(Opcode::FLUSH);
    f.nsid = 1;
    assert!(io.cmd(f, None, 0).0.status.is_success());
    let (c, _) = io.cmd(rw(Opcode::WRITE_ZEROES, 1, 8, 1), None, 0);
    assert!(c.status.is_success());
    let (_, d) = io.cmd(rw(Opcode::READ, 1, 8, 2), None, 1024);
    assert!(d[..512].iter().all(|b| *b == 0) && d[512..].iter().all(|b| *b == 0xAB));
}

#[test]
fn r2t_flow_for_large_write() {
    let sh = shared(true);
    let now = Instant::now();
    let (_a, _, mut io) = H::admin_and_io(&sh, now, 5000);
    let len = 64 * 1024u32;
    let mut sqe = rw(Opcode::WRITE, 1, 0, len / 512);
    sqe.cid = 77;
    sqe.dptr = Sgl::transport(len);
    let r = io.feed(Pdu::CapsuleCmd {
        sqe,
        data: Bytes::new(),
    });
    let r2t = match &r[..] {
        [Pdu::R2t(r)] => *r,
        o => panic!("{o:?}"),
    };
    assert_eq!((r2t.cccid, r2t.offset, r2t.length), (77, 0, len));
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let half = len / 2;
    for (i, off) in [0, half].into_iter().enumerate() {
        let r = io.feed(Pdu::H2CData(DataPdu {
            header: DataHeader {
                cccid: 77,
                ttag: r2t.ttag,
                offset: off,
                length: half,
            },
            last: i == 1,
            success: false,
            data: Bytes::copy_from_slice(&payload[off as usize..(off + half) as usize]),
        }));
        if i == 0 {
            assert!(r.is_empty());
        } else {
            assert!(
                matches!(&r[..], [Pdu::CapsuleResp(c)] if c.status.is_success() && c.cid == 77)
            );
        }
    }
    let (_, d) = io.cmd(rw(Opcode::READ, 1, 0, len / 512), None, len);
    assert_eq!(&d[..], &payload[..]);
    // H2CData with an unknown tag is fatal: TermReq, close.
    let r = io.feed(Pdu::H2CData(DataPdu {
        header: DataHeader {
            cccid: 1,
            ttag: 999,
            offset: 0,
            length: 4,
        },
        last: true,
        success: false,
        data: Bytes::from_static(&[1, 2, 3, 4]),
    }));
    assert!(matches!(&r[..], [Pdu::C2HTermReq(t)] if t.fes == Fes::INVALID_HEADER_FIELD));
    assert!(io.closed);
}

#[test]
fn aer_completed_by_ana_change() {
    let sh = shared(true);
    let now = Instant::now();
    let mut a = H::new(&sh, 1, now);
    a.admin(5000);
    let s = set_features(0x0B, (1 << 11) | (1 << 8));
    assert!(a.cmd(s, None, 0).0.status.is_success());
    let r = a.feed(aer(500));
    assert!(r.is_empty());
    // A change on the other port does not concern this controller.
    sh.lock().set_ana(2, 1, AnaState::INACCESSIBLE).unwrap();
    let outs = a.q.poll(now);
    assert!(a.run(outs).is_empty());
    sh.lock().set_ana(1, 1, AnaState::NON_OPTIMIZED).unwrap();
    let outs = a.q.poll(now);
    let r = a.run(outs);
    match &r[..] {
        [Pdu::CapsuleResp(c)] => {
            assert_eq!(c.cid, 500);
            let ev = nvmp_wire::admin::AsyncEvent::from_dw0(c.dw0);
            assert_eq!(ev.info, nvmp_wire::admin::NOTICE_ANA_CHANGE);
            assert_eq!(ev.log_page, nvmp_wire::admin::LogPageId::ANA);
        }
        o => panic!("{o:?}"),
    }
    // ANA log, full and RGO.
    let (c, d) = a.cmd(get_log(0x0C, 0, 0, 4096), None, 4096);
    assert!(c.status.is_success());
    let log = ana_log(&d);
    assert_eq!(log.change_count, 1);
    let g1 = log.groups.iter().find(|g| g.grpid == 1).unwrap();
    assert_eq!(g1.state, AnaState::NON_OPTIMIZED);
    assert_eq!(g1.nsids, vec![1]);
    let g2 = log.groups.iter().find(|g| g.grpid == 2).unwrap();
    assert_eq!(g2.state, AnaState::INACCESSIBLE);
    let (_, d) = a.cmd(get_log(0x0C, 1, 0, 4096), None, 4096);
    let log = ana_log(&d);
    assert!(log.groups.iter().all(|g| g.nsids.is_empty()));
}

#[test]
fn keep_alive_expiry_tears_down() {
    let sh = shared(true);
    let t0 = Instant::now();
    let (mut a, _, mut io) = H::admin_and_io(&sh, t0, 1000);
    // Traffic on the I/O queue counts.
    io.now = t0 + Duration::from_millis(800);
    assert!(io
        .cmd(rw(Opcode::READ, 1, 0, 1), None, 512)
        .0
        .status
        .is_success());
    let d = a.q.next_deadline(t0 + Duration::from_millis(900)).unwrap();
    assert_eq!(d, t0 + Duration::from_millis(1800));
    let outs = a.q.on_timer(t0 + Duration::from_millis(1900));
    a.run(outs);
    assert!(a.closed);
    assert!(sh.lock().subsystems[SUB].ctrls.is_empty());
    let outs = io.q.poll(t0 + Duration::from_millis(1900));
    io.run(outs);
    assert!(io.closed);
}

#[test]
fn discovery_log_in_chunks() {
    let sh = shared(false);
    let mut d = H::with_ic(&sh, 2, Instant::now());
    let c = d.connect(nvmp_wire::nqn::DISCOVERY_NQN, HOST, 0, 0xFFFF, 0);
    assert!(c.status.is_success());
    let (_, id) = d.cmd(identify(1, 0), None, 4096);
    assert_eq!(IdentifyController::decode(&id).unwrap().cntrltype, 2);
    let (_, hdr) = d.cmd(get_log(0x70, 0, 0, 16), None, 16);
    let numrec = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
    assert_eq!(numrec, 2);
    let total = 1024 + 1024 * numrec as u32;
    let mut all = BytesMut::new();
    let mut off = 0;
    while off < total {
        let (c, part) = d.cmd(get_log(0x70, 0, off as u64, 512), None, 512);
        assert!(c.status.is_success());
        all.extend_from_slice(&part);
        off += 512;
    }
    let log = DiscoveryLog::decode(&all).unwrap();
    assert_eq!(log.entries.len(), 2);
    assert_eq!(log.entries[0].traddr, "127.0.0.1");
    assert_eq!(log.entries[0].trsvcid, "4420");
    assert_eq!(log.entries[1].traddr, "10.0.2.2");
    assert_eq!(log.entries[1].subnqn, SUB);
    // A host not allowed sees no entries.
    let mut o = H::with_ic(&sh, 1, Instant::now());
    assert!(o
        .connect(nvmp_wire::nqn::DISCOVERY_NQN, OTHER, 0, 0xFFFF, 0)
        .status
        .is_success());
    let (_, hdr) = o.cmd(get_log(0x70, 0, 0, 16), None, 16);
    assert_eq!(u64::from_le_bytes(hdr[8..16].try_into().unwrap()), 0);
    // Misaligned offset.
    let (c, _) = d.cmd(get_log(0x70, 0, 2, 16), None, 16);
    assert_eq!(c.status.code, StatusCode::INVALID_FIELD);
}

#[test]
fn hostile_inputs() {
    let sh = shared(true);
    let now = Instant::now();
    // Garbage: unknown PDU type.
    let mut h = H::new(&sh, 1, now);
    let r = h.feed_bytes(&[0xEE, 0, 8, 0, 8, 0, 0, 0]);
    assert!(matches!(&r[..], [Pdu::C2HTermReq(t)] if t.fes == Fes::INVALID_HEADER_FIELD));
    assert!(h.closed);
    // Oversized PLEN after IC.
    let mut h = H::with_ic(&sh, 1, now);
    let r = h.feed_bytes(&[0x04, 0, 72, 72, 0xFF, 0xFF, 0xFF, 0x7F]);
    assert!(
        matches!(&r[..], [Pdu::C2HTermReq(t)] if t.fes == Fes::DATA_LIMIT_EXCEEDED),
        "{r:?}"
    );
    // Second ICReq: sequence error.
    let mut h = H::with_ic(&sh, 1, now);
    let r = h.feed(Pdu::IcReq(IcReq {
        pfv: 0,
        hpda: 0,
        digests: Digests::NONE,
        maxr2t: 0,
    }));
    assert!(matches!(&r[..], [Pdu::C2HTermReq(t)] if t.fes == Fes::PDU_SEQUENCE_ERROR));
    // Connect with garbage data.
    let mut h = H::with_ic(&sh, 1, now);
    let sqe = connect_sqe(0, 31, 0);
    let (c, _) = h.cmd(sqe, Some(Bytes::from(vec![0xFF; 1024])), 0);
    assert_eq!(c.status.code, StatusCode::CONNECT_INVALID_PARAMETERS);
    assert!(!h.closed);
    // A stalled partial PDU is closed after the stall timeout.
    let mut h = H::with_ic(&sh, 1, now);
    let r = h.feed_bytes(&[0x04, 0, 72, 0, 72, 0, 0, 0, 1, 2]);
    assert!(r.is_empty());
    let dl = h.q.next_deadline(now).unwrap();
    assert!(dl <= now + Duration::from_secs(5));
    let outs = h.q.on_timer(now + Duration::from_secs(6));
    h.run(outs);
    assert!(h.closed);
    // No ICReq at all: connect timeout.
    let mut h = H::new(&sh, 1, now);
    let outs = h.q.on_timer(now + Duration::from_secs(11));
    h.run(outs);
    assert!(h.closed);
}

#[test]
fn fail_next_fault() {
    let sh = shared(true);
    let now = Instant::now();
    let (_a, _, mut io) = H::admin_and_io(&sh, now, 5000);
    {
        let st = sh.lock();
        let f = &st.ports[&1].faults;
        f.set_fail_next(2, nvmp_wire::Status::new(StatusCode::INTERNAL_PATH_ERROR));
    }
    for _ in 0..2 {
        assert_eq!(
            io.cmd(rw(Opcode::READ, 1, 0, 1), None, 512).0.status.code,
            StatusCode::INTERNAL_PATH_ERROR
        );
    }
    assert!(io
        .cmd(rw(Opcode::READ, 1, 0, 1), None, 512)
        .0
        .status
        .is_success());
}
