//! More core tests: digests, discovery-log-change events, limits.

use super::*;

fn ic_digests(h: &mut H) {
    let r = h.feed(Pdu::IcReq(IcReq {
        pfv: 0,
        hpda: 0,
        digests: Digests {
            header: true,
            data: true,
        },
        maxr2t: 0,
    }));
    assert!(matches!(r[..], [Pdu::IcResp(_)]));
}

fn encode_dg(p: &Pdu) -> BytesMut {
    let mut b = BytesMut::new();
    p.encode(
        EncodeOptions {
            digests: Digests {
                header: true,
                data: true,
            },
            pda: 0,
        },
        &mut b,
    );
    b
}

#[test]
fn header_digest_error_is_fatal_data_digest_error_is_not() {
    let sh = shared(true);
    let now = Instant::now();
    let mut h = H::new(&sh, 1, now);
    ic_digests(&mut h);
    // A Connect with a correct header digest but a corrupted data digest:
    // the command fails with a transient transport error, the connection stays.
    let sqe = {
        let mut s = connect_sqe(0, 31, 0);
        s.cid = 9;
        s.dptr = Sgl::in_capsule(0, 1024);
        s
    };
    let data = connect_data(1, 0xFFFF, SUB, HOST);
    let mut b = encode_dg(&Pdu::CapsuleCmd {
        sqe,
        data: data.clone(),
    });
    let n = b.len();
    b[n - 1] ^= 0xFF;
    let r = h.feed_bytes(&b);
    assert!(
        matches!(&r[..], [Pdu::CapsuleResp(c)] if c.cid == 9 && c.status.code == StatusCode::TRANSIENT_TRANSPORT_ERROR),
        "{r:?}"
    );
    assert!(!h.closed);
    // The same command intact works.
    let b = encode_dg(&Pdu::CapsuleCmd { sqe, data });
    let r = h.feed_bytes(&b);
    assert!(
        matches!(&r[..], [Pdu::CapsuleResp(c)] if c.status.is_success()),
        "{r:?}"
    );
    // A bad header digest: C2HTermReq with "Header Digest Error", close.
    let mut ka = Sqe::new(Opcode::KEEP_ALIVE);
    ka.cid = 10;
    let mut b = encode_dg(&Pdu::CapsuleCmd {
        sqe: ka,
        data: Bytes::new(),
    });
    b[72] ^= 0xFF;
    let r = h.feed_bytes(&b);
    assert!(
        matches!(&r[..], [Pdu::C2HTermReq(t)] if t.fes == Fes::HEADER_DIGEST_ERROR),
        "{r:?}"
    );
    assert!(h.closed);
}

#[test]
fn discovery_log_change_event_on_port_down() {
    let sh = shared(true);
    let now = Instant::now();
    let mut d = H::with_ic(&sh, 1, now);
    assert!(d
        .connect(nvmp_wire::nqn::DISCOVERY_NQN, HOST, 0, 0xFFFF, 0)
        .status
        .is_success());
    let s = set_features(0x0B, 1 << 31);
    assert!(d.cmd(s, None, 0).0.status.is_success());
    let (_, hdr) = d.cmd(get_log(0x70, 0, 0, 16), None, 16);
    let gen0 = u64::from_le_bytes(hdr[0..8].try_into().unwrap());
    assert!(d.feed(aer(900)).is_empty());
    {
        let mut st = sh.lock();
        st.ports.get_mut(&2).unwrap().up = false;
        st.close_port_conns(2);
        st.discovery_changed();
    }
    let outs = d.q.poll(now);
    let r = d.run(outs);
    match &r[..] {
        [Pdu::CapsuleResp(c)] => {
            assert_eq!(c.cid, 900);
            let ev = nvmp_wire::admin::AsyncEvent::from_dw0(c.dw0);
            assert_eq!(ev.info, nvmp_wire::admin::NOTICE_DISCOVERY_LOG_CHANGE);
        }
        o => panic!("{o:?}"),
    }
    let (_, hdr) = d.cmd(get_log(0x70, 0, 0, 16), None, 16);
    assert!(u64::from_le_bytes(hdr[0..8].try_into().unwrap()) > gen0);
    assert_eq!(
        u64::from_le_bytes(hdr[8..16].try_into().unwrap()),
        1,
        "only port 1 is listed"
    );
}

#[test]
fn limits_aer_queue_depth_connections_cntlid_range() {
    let sh = shared(true);
    let now = Instant::now();
    let mut a = H::new(&sh, 1, now);
    a.admin(0);
    // AERL = 3 (0's based): the 5th AER is refused.
    for i in 0..4 {
        assert!(a.feed(aer(100 + i)).is_empty());
    }
    let (c, _) = a.cmd(Sqe::new(Opcode::ASYNC_EVENT_REQUEST), None, 0);
    assert_eq!(c.status.code, StatusCode::AER_LIMIT_EXCEEDED);
    // Number of queues is capped.
    let s = set_features(0x07, 999 | (999 << 16));
    let (c, _) = a.cmd(s, None, 0);
    assert_eq!(
        c.dw0 & 0xFFFF,
        crate::config::DEFAULT_MAX_IO_QUEUES as u32 - 1
    );
    // Unknown admin opcode.
    let (c, _) = a.cmd(Sqe::new(Opcode(0xC5)), None, 0);
    assert_eq!(c.status.code, StatusCode::INVALID_OPCODE);
    // Connection limit.
    let n = sh.lock().conns.len();
    sh.lock().max_connections = n;
    assert!(sh.lock().register_conn(1).is_none());
    // CNTLID range exhaustion → controller busy.
    sh.lock().max_connections = 100;
    {
        let mut st = sh.lock();
        let s = st.subsystems.get_mut(SUB).unwrap();
        s.spec.cntlid_min = 1;
        s.spec.cntlid_max = 1;
    }
    let mut b = H::with_ic(&sh, 1, now);
    let c = b.connect(SUB, HOST, 0, 0xFFFF, 0);
    assert_eq!(c.status.code, StatusCode::CONNECT_CONTROLLER_BUSY);
    // Admin queue too large.
    let mut q = H::with_ic(&sh, 2, now);
    let mut sqe = connect_sqe(0, 4000, 0);
    sqe.cid = 1;
    let (c, _) = q.cmd(sqe, Some(connect_data(7, 0xFFFF, SUB, HOST)), 0);
    assert_eq!(c.status.code, StatusCode::CONNECT_INVALID_PARAMETERS);
    assert_eq!(c.dw0 & 0xFFFF, 44);
}

#[test]
fn dsm_deallocate_zeroes_and_changed_ns_log() {
    let sh = shared(true);
    let now = Instant::now();
    let (mut a, _, mut io) = H::admin_and_io(&sh, now, 0);
    let (c, _) = io.cmd(
        rw(Opcode::WRITE, 1, 16, 4),
        Some(Bytes::from(vec![9u8; 2048])),
        0,
    );
    assert!(c.status.is_success());
    let mut dsm = Sqe::new(Opcode::DATASET_MANAGEMENT);
    dsm.nsid = 1;
    dsm.cdw10 = 0; // one range
    dsm.cdw11 = 1 << 2; // deallocate
    let mut range = vec![0u8; 16];
    range[4..8].copy_from_slice(&2u32.to_le_bytes());
    range[8..16].copy_from_slice(&17u64.to_le_bytes());
    assert!(io
        .cmd(dsm, Some(Bytes::from(range)), 0)
        .0
        .status
        .is_success());
    let (_, d) = io.cmd(rw(Opcode::READ, 1, 16, 4), None, 2048);
    assert!(d[..512].iter().all(|b| *b == 9));
    assert!(d[512..1536].iter().all(|b| *b == 0));
    assert!(d[1536..].iter().all(|b| *b == 9));
    // Changed namespace list after a namespace is removed.
    sh.lock().ns_changed(SUB, 2);
    let (_, l) = a.cmd(get_log(0x04, 0, 0, 4096), None, 4096);
    assert_eq!(u32::from_le_bytes(l[0..4].try_into().unwrap()), 2);
    let (_, l) = a.cmd(get_log(0x04, 0, 0, 4096), None, 4096);
    assert_eq!(
        u32::from_le_bytes(l[0..4].try_into().unwrap()),
        0,
        "cleared after a read without RAE"
    );
}

#[test]
fn stall_timer_restarts_on_progress() {
    let sh = shared(true);
    let t0 = Instant::now();
    let mut a = H::new(&sh, 1, t0);
    a.admin(0);
    let mut ka = Sqe::new(Opcode::KEEP_ALIVE);
    ka.cid = 50;
    let mut one = BytesMut::new();
    Pdu::CapsuleCmd {
        sqe: ka,
        data: Bytes::new(),
    }
    .encode(EncodeOptions::default(), &mut one);
    // Every 4 s a whole PDU plus the start of the next: never a stall.
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&one[..10]);
    for i in 1..5u64 {
        let now = t0 + Duration::from_secs(4 * i);
        buf.extend_from_slice(&one[10..]);
        buf.extend_from_slice(&one[..10]);
        let outs = a.q.on_bytes(&mut buf, now);
        assert_eq!(a.run(outs).len(), 1);
        let outs = a.q.on_timer(now + Duration::from_secs(3));
        a.run(outs);
        assert!(!a.closed);
    }
}

/// Random and mutated input never panics; the queue either answers or closes.
#[test]
fn random_input_never_panics() {
    let sh = shared(true);
    let now = Instant::now();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // A valid connected I/O queue's worth of PDUs to mutate.
    let mut base = BytesMut::new();
    let mut w = rw(Opcode::WRITE, 1, 0, 1);
    w.cid = 3;
    w.dptr = Sgl::in_capsule(0, 512);
    Pdu::CapsuleCmd {
        sqe: w,
        data: Bytes::from(vec![1u8; 512]),
    }
    .encode(EncodeOptions::default(), &mut base);
    let mut r = rw(Opcode::READ, 1, 0, 8);
    r.cid = 4;
    r.dptr = Sgl::transport(4096);
    Pdu::CapsuleCmd {
        sqe: r,
        data: Bytes::new(),
    }
    .encode(EncodeOptions::default(), &mut base);
    for i in 0..3000 {
        let (_a, cntlid, mut io) = H::admin_and_io(&sh, now, 0);
        let mut b = base.to_vec();
        let flips = 1 + rnd() % 8;
        for _ in 0..flips {
            let at = (rnd() as usize) % b.len();
            b[at] = rnd() as u8;
        }
        if i % 7 == 0 {
            b = (0..(rnd() % 300)).map(|_| rnd() as u8).collect();
        }
        let cut = (rnd() as usize) % (b.len() + 1);
        io.feed_bytes(&b[..cut]);
        io.feed_bytes(&b[cut..]);
        let outs = io.q.on_timer(now + Duration::from_secs(60));
        io.run(outs);
        assert!(io.closed || io.q.bound().is_some());
        sh.lock().teardown_ctrl(SUB, cntlid, "test");
        sh.lock().conns.clear();
    }
}

#[test]
fn connect_data_must_be_1024_bytes() {
    let sh = shared(true);
    let now = Instant::now();
    for len in [512usize, 1023, 1025, 2048] {
        let mut q = H::with_ic(&sh, 1, now);
        let mut sqe = connect_sqe(0, 31, 0);
        sqe.cid = 1;
        let full = connect_data(7, 0xFFFF, SUB, HOST);
        let mut d = bytes::BytesMut::from(&full[..len.min(1024)]);
        d.resize(len, 0);
        let (c, _) = q.cmd(sqe, Some(d.freeze()), 0);
        assert_eq!(c.status.code, StatusCode::SGL_DATA_LENGTH_INVALID, "{len}");
        assert!(c.status.dnr);
        assert!(q.q.bound().is_none());
    }
    let mut q = H::with_ic(&sh, 1, now);
    assert!(q.connect(SUB, HOST, 0, 0xFFFF, 0).status.is_success());
}

/// An I/O queue resolves namespaces once, yet sees removals, additions and
/// its controller's teardown on its very next command.
#[test]
fn io_queue_view_follows_namespace_changes_and_teardown() {
    let sh = shared(true);
    let now = Instant::now();
    let (_a, cntlid, mut io) = H::admin_and_io(&sh, now, 5000);
    let data = Bytes::from(vec![0x5A; 512]);
    let (c, _) = io.cmd(rw(Opcode::WRITE, 1, 0, 1), Some(data.clone()), 0);
    assert!(c.status.is_success());
    let spec = {
        let mut st = sh.lock();
        let ns = st.subsystems.get_mut(SUB).unwrap().namespaces.remove(&1);
        st.ns_changed(SUB, 1);
        ns.unwrap().spec.clone()
    };
    let (c, _) = io.cmd(rw(Opcode::READ, 1, 0, 1), None, 512);
    assert_eq!(c.status.code, StatusCode::INVALID_NAMESPACE);
    {
        let mut st = sh.lock();
        let ns = crate::core::state::open_namespace(SUB, &spec).unwrap();
        let sub = st.subsystems.get_mut(SUB).unwrap();
        sub.namespaces.insert(1, Arc::new(ns));
        st.ns_changed(SUB, 1);
    }
    // The new namespace (a fresh RAM backend) reads zeroes.
    let (c, d) = io.cmd(rw(Opcode::READ, 1, 0, 1), None, 512);
    assert!(c.status.is_success());
    assert!(d.iter().all(|b| *b == 0));
    sh.lock().teardown_ctrl(SUB, cntlid, "test");
    let r = io.feed(Pdu::CapsuleCmd {
        sqe: {
            let mut s = rw(Opcode::READ, 1, 0, 1);
            s.cid = 999;
            s.dptr = Sgl::transport(512);
            s
        },
        data: Bytes::new(),
    });
    assert!(r.is_empty() && io.closed, "{r:?}");
}
