//! No heap allocation per command on the target's I/O path once warmed up:
//! capsules in, RAM reads and writes, C2HData and CapsuleResp out through
//! the driver's transmit buffer ([`TxBuf`]), as the connection task runs
//! them (the queue core and sink are driven directly, on this thread).
//!
//! The counting allocator is `nvmp_testkit::alloc` (the one `unsafe impl`);
//! `TRACE_ALLOC=1` prints a backtrace per allocation counted.
//!
//! Before this work each read allocated at least twice (a copy of the data
//! out of the backend, a String clone of the binding) and each batch once
//! more (the writer's buffer).

mod common;

use std::io::IoSlice;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use common::*;
use nvmp_target::core::queue::{Limits, Queue};
use nvmp_target::core::state::{Shared, State};
use nvmp_target::core::tx::{TxBuf, MAX_IOV};
use nvmp_target::TargetConfig;
use nvmp_testkit::alloc::{self, Counting};
use nvmp_wire::fabrics::{ConnectCmd, ConnectData};
use nvmp_wire::pdu::{Digests, EncodeOptions, IcReq};
use nvmp_wire::{FabricsType, Pdu, PduConfig, PduDecoder, Role, Sgl, Sqe};

#[global_allocator]
static GLOBAL: Counting = Counting;

const SUB: &str = "nqn.2024-01.io.nvmp:alloc";
const QD: u16 = 32;

/// One connection's queue with its transmit buffer, as the driver has them.
struct Conn {
    q: Queue,
    tx: TxBuf,
    rx: BytesMut,
    dec: PduDecoder,
    /// Received bytes (what the socket would carry to the host).
    wire: BytesMut,
}

impl Conn {
    fn new(sh: &std::sync::Arc<Shared>) -> Conn {
        let (id, sig) = sh.lock().register_conn(1).unwrap();
        let q = Queue::new(
            sh.clone(),
            id,
            sig,
            1,
            None,
            Limits::default(),
            Instant::now(),
        );
        Conn {
            q,
            tx: TxBuf::default(),
            rx: BytesMut::with_capacity(256 << 10),
            dec: PduDecoder::new(PduConfig::initial(Role::Host, 1 << 20)),
            wire: BytesMut::with_capacity(4 << 20),
        }
    }

    /// Feed encoded PDUs; "send" every reply (into `wire`, as a socket would copy them).
    fn feed(&mut self, b: &[u8]) {
        self.rx.extend_from_slice(b);
        self.q
            .on_bytes_into(&mut self.rx, Instant::now(), &mut self.tx);
        while !self.tx.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = self.tx.iovecs(&mut iov);
            let mut w = 0;
            for s in &iov[..n] {
                self.wire.extend_from_slice(s);
                w += s.len();
            }
            self.tx.advance(w);
        }
    }

    /// Decode every reply received; returns (completions, data bytes).
    fn replies(&mut self) -> (usize, usize) {
        let (mut c, mut d) = (0, 0);
        while let Some(p) = self.dec.decode(&mut self.wire).unwrap() {
            match p {
                Pdu::CapsuleResp(cqe) => {
                    assert!(cqe.status.is_success(), "{}", cqe.status);
                    c += 1;
                }
                Pdu::C2HData(x) => d += x.data.len(),
                Pdu::IcResp(_) => {}
                o => panic!("unexpected {o:?}"),
            }
        }
        (c, d)
    }

    fn pdu(&mut self, p: Pdu) {
        let mut b = BytesMut::new();
        p.encode(EncodeOptions::default(), &mut b);
        self.feed(&b);
    }

    fn connect(&mut self, qid: u16, cntlid: u16) -> u16 {
        self.pdu(Pdu::IcReq(IcReq {
            pfv: 0,
            hpda: 0,
            digests: Digests::NONE,
            maxr2t: 0,
        }));
        let mut sqe = ConnectCmd {
            recfmt: 0,
            qid,
            sqsize: 127,
            cattr: 0,
            kato_ms: 0,
        }
        .to_sqe();
        sqe.cid = 1;
        let data = ConnectData {
            hostid: HOSTID,
            cntlid,
            subnqn: SUB.into(),
            hostnqn: HOSTNQN.into(),
        }
        .encode();
        sqe.dptr = Sgl::in_capsule(0, data.len() as u32);
        let data = Bytes::copy_from_slice(&data);
        self.pdu(Pdu::CapsuleCmd { sqe, data });
        let mut cntlid = 0;
        while let Some(p) = self.dec.decode(&mut self.wire).unwrap() {
            if let Pdu::CapsuleResp(c) = p {
                assert!(c.status.is_success());
                cntlid = c.dw0 as u16;
            }
        }
        cntlid
    }
}

/// A batch of QD commands, encoded once (reads, or 4 KiB in-capsule writes).
fn batch(write: bool, round: u64) -> BytesMut {
    let mut b = BytesMut::new();
    for i in 0..QD {
        let lba = ((round * QD as u64 + i as u64) * 8 * 7919) % (64 << 11);
        let mut sqe = if write {
            write_sqe(1, lba, 8, false)
        } else {
            read_sqe(1, lba, 8)
        };
        sqe.cid = i + 1;
        let data = if write {
            sqe.dptr = Sgl::in_capsule(0, 4096);
            Bytes::from_static(&[0x6b; 4096])
        } else {
            sqe.dptr = Sgl::transport(4096);
            Bytes::new()
        };
        Pdu::CapsuleCmd { sqe, data }.encode(EncodeOptions::default(), &mut b);
    }
    b
}

#[test]
fn no_allocation_per_command_once_warm() {
    let cfg = TargetConfig::from_json(&two_port_config(SUB, "")).unwrap();
    let sh = Shared::new(State::from_config(&cfg).unwrap());
    let mut admin = Conn::new(&sh);
    let cntlid = admin.connect(0, 0xFFFF);
    let mut cc = Sqe::fabrics(FabricsType::PROPERTY_SET);
    cc.cid = 2;
    cc.cdw11 = 0x14;
    cc.cdw12 = 1 | (6 << 16) | (4 << 20);
    admin.pdu(Pdu::CapsuleCmd {
        sqe: cc,
        data: Bytes::new(),
    });
    let mut io = Conn::new(&sh);
    io.connect(1, cntlid);
    const ROUNDS: u64 = 400;
    for write in [true, false] {
        let batches: Vec<BytesMut> = (0..ROUNDS).map(|r| batch(write, r)).collect();
        // Warm up: buffers grow, chunks get written.
        for b in &batches {
            io.feed(b);
            io.replies();
        }
        alloc::start();
        drop(std::hint::black_box(Vec::<u8>::with_capacity(1)));
        assert_eq!(alloc::stop(), 1, "the counting allocator is in use");
        alloc::start();
        let mut done = 0;
        for b in &batches {
            io.feed(b);
            alloc::pause(); // decoding replies is the host's work
            done += io.replies().0;
            alloc::resume();
        }
        let allocs = alloc::stop();
        assert_eq!(done, (ROUNDS * QD as u64) as usize);
        // Only the transmit buffer's header space grows now and then (32 KiB
        // of headers, ~700 completions per growth).
        assert!(
            allocs * 100 <= done as u64,
            "{} allocations for {done} {}",
            allocs,
            if write { "writes" } else { "reads" }
        );
        eprintln!(
            "{} allocations for {done} commands (write: {write})",
            allocs
        );
    }
}
