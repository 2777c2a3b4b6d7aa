//! A small scripted NVMe/TCP controller for tests and benchmarks: it speaks
//! the wire protocol (built from nvmp-wire) over any byte stream, keeps a
//! RAM namespace, and has knobs to misbehave (drop keep-alives, hold I/O,
//! reject Connect with DNR, refuse connections, send garbage, post AENs).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use nvmp_wire::admin::{
    AsyncEvent, AsyncEventType, Cns, FeatureId, IdentifyCmd, LogPageId, NumberOfQueues,
};
use nvmp_wire::fabrics::{prop, ConnectCmd, ConnectData, PropertyGet, PropertySet};
use nvmp_wire::identify::{cmic, IdentifyController, IdentifyNamespace, LbaFormat};
use nvmp_wire::pdu::{DataHeader, DataPdu, EncodeOptions, IcResp, R2t};
use nvmp_wire::{Cqe, Opcode, Pdu, PduConfig, PduDecoder, Role, Sqe, Status, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

pub const NS_BLOCKS: u64 = 2048; // 1 MiB of 512-byte blocks
pub const BS: usize = 512;
pub const MAXH2CDATA: u32 = 8192;
/// R2T size the fake asks for (several R2Ts per large write).
pub const R2T_LEN: u32 = 32 * 1024;

#[derive(Default)]
pub struct Knobs {
    pub refuse_connections: AtomicBool,
    pub reject_connect_dnr: AtomicBool,
    pub reject_connect_busy: AtomicBool,
    pub drop_keepalive: AtomicBool,
    pub hold_io: AtomicBool,
    pub garbage_on_read: AtomicBool,
    pub c2h_out_of_range: AtomicBool,
    pub reverse_completions: AtomicBool,
    /// Stop reading and answering (the TCP-level buffers fill up).
    pub black_hole: AtomicBool,
    /// Size of the in-memory pipe of new connections (default 1 MiB).
    pub pipe_size: std::sync::atomic::AtomicUsize,
}

pub struct Fake {
    pub knobs: Knobs,
    pub ram: Mutex<Vec<u8>>,
    pub connects: AtomicU32,
    pub admin_connects: AtomicU32,
    pub keepalives: AtomicU64,
    pub io_cmds: AtomicU64,
    pub aens: Mutex<VecDeque<u32>>,
    pub aen_notify: Notify,
    pub kill: Notify,
    pub cntlid: AtomicU32,
    /// Discovery log served for LID 70h.
    pub disc: Mutex<nvmp_wire::log::DiscoveryLog>,
    /// Bump GENCTR once while the entries are being read.
    pub bump_genctr_once: AtomicBool,
    pub disc_header_reads: AtomicU32,
    /// H2CTermReqs received (FES of the last one).
    pub termreqs: AtomicU32,
    pub last_fes: AtomicU32,
}

impl Fake {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            knobs: Knobs::default(),
            ram: Mutex::new(vec![0; NS_BLOCKS as usize * BS]),
            connects: AtomicU32::new(0),
            admin_connects: AtomicU32::new(0),
            keepalives: AtomicU64::new(0),
            io_cmds: AtomicU64::new(0),
            aens: Mutex::new(VecDeque::new()),
            aen_notify: Notify::new(),
            kill: Notify::new(),
            cntlid: AtomicU32::new(1),
            disc: Mutex::new(nvmp_wire::log::DiscoveryLog {
                genctr: 1,
                numrec: 0,
                recfmt: 0,
                entries: vec![],
            }),
            bump_genctr_once: AtomicBool::new(false),
            disc_header_reads: AtomicU32::new(0),
            termreqs: AtomicU32::new(0),
            last_fes: AtomicU32::new(0),
        })
    }

    /// Post an asynchronous event (completes a held AER).
    pub fn post_aen(&self, ev: AsyncEvent) {
        self.aens.lock().unwrap().push_back(ev.to_dw0());
        self.aen_notify.notify_waiters();
    }

    /// A connector that serves each new connection from this fake over an in-memory duplex.
    pub fn connector(self: &Arc<Self>) -> Arc<dyn nvmp_host::Connector> {
        let me = self.clone();
        Arc::new(move |_addr: &str| -> io::Result<tokio::io::DuplexStream> {
            if me.knobs.refuse_connections.load(Ordering::SeqCst) {
                return Err(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
            }
            let size = match me.knobs.pipe_size.load(Ordering::SeqCst) {
                0 => 1 << 20,
                n => n,
            };
            let (a, b) = tokio::io::duplex(size);
            tokio::spawn(me.clone().serve(b));
            Ok(a)
        })
    }

    /// Serve one connection until EOF.
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(self: Arc<Self>, s: S) {
        let (mut r, mut w) = tokio::io::split(s);
        let mut dec = PduDecoder::new(PduConfig::initial(Role::Controller, 4 << 20));
        let mut buf = BytesMut::with_capacity(1 << 20);
        let mut st = ConnState::default();
        loop {
            let mut out = BytesMut::new();
            if self.knobs.black_hole.load(Ordering::SeqCst) {
                self.kill.notified().await;
                return;
            }
            tokio::select! {
                n = r.read_buf(&mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                _ = self.aen_notify.notified(), if st.qid == Some(0) => {}
                _ = self.kill.notified() => return,
            }
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(p)) => {
                        if !self.handle(&mut st, &mut dec, p, &mut out) {
                            let _ = w.write_all(&out).await;
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            self.flush_aens(&mut st, &mut out);
            if !out.is_empty() && w.write_all(&out).await.is_err() {
                return;
            }
        }
    }

    fn flush_aens(&self, st: &mut ConnState, out: &mut BytesMut) {
        while !st.aers.is_empty() {
            let Some(dw0) = self.aens.lock().unwrap().pop_front() else {
                break;
            };
            let cid = st.aers.pop_front().unwrap();
            let mut c = Cqe::new(cid, Status::SUCCESS);
            c.dw0 = dw0;
            send(st, Pdu::CapsuleResp(c), out);
        }
    }

    fn handle(&self, st: &mut ConnState, dec: &mut PduDecoder, p: Pdu, out: &mut BytesMut) -> bool {
        match p {
            Pdu::IcReq(r) => {
                st.enc.digests = r.digests;
                dec.config.digests = r.digests;
                send(
                    st,
                    Pdu::IcResp(IcResp {
                        pfv: 0,
                        cpda: 0,
                        digests: r.digests,
                        maxh2cdata: MAXH2CDATA,
                    }),
                    out,
                );
            }
            Pdu::CapsuleCmd { sqe, data } => return self.command(st, sqe, data, out),
            Pdu::H2CData(d) => {
                let Some(w) = st.writes.iter_mut().find(|w| w.cid == d.header.cccid) else {
                    return false;
                };
                w.data.extend_from_slice(&d.data);
                w.outstanding -= d.header.length;
                let cid = w.cid;
                if w.outstanding == 0 {
                    let got = w.data.len() as u32;
                    if got < w.len {
                        let n = (w.len - got).min(R2T_LEN);
                        w.outstanding = n;
                        let r = R2t {
                            cccid: cid,
                            ttag: 1,
                            offset: got,
                            length: n,
                        };
                        send(st, Pdu::R2t(r), out);
                    } else {
                        let i = st.writes.iter().position(|w| w.cid == cid).unwrap();
                        let w = st.writes.remove(i);
                        let off = w.slba as usize * BS;
                        self.ram.lock().unwrap()[off..off + w.data.len()].copy_from_slice(&w.data);
                        send(st, resp(cid, Status::SUCCESS, 0), out);
                    }
                }
            }
            Pdu::H2CTermReq(t) => {
                self.termreqs.fetch_add(1, Ordering::SeqCst);
                self.last_fes.store(t.fes.0 as u32, Ordering::SeqCst);
                return false;
            }
            _ => return false,
        }
        true
    }

    fn command(&self, st: &mut ConnState, sqe: Sqe, data: Bytes, out: &mut BytesMut) -> bool {
        let cid = sqe.cid;
        if sqe.is_fabrics() {
            let ft = sqe.fctype();
            if ft == nvmp_wire::FabricsType::CONNECT {
                let cmd = ConnectCmd::from_sqe(&sqe).unwrap();
                let cd = ConnectData::decode(&data).unwrap();
                self.connects.fetch_add(1, Ordering::SeqCst);
                if self.knobs.reject_connect_dnr.load(Ordering::SeqCst) {
                    let s = Status::new(StatusCode::CONNECT_INVALID_HOST).with_dnr();
                    send(st, resp(cid, s, 0), out);
                    return true;
                }
                if self.knobs.reject_connect_busy.load(Ordering::SeqCst) {
                    send(
                        st,
                        resp(cid, Status::new(StatusCode::CONNECT_CONTROLLER_BUSY), 0),
                        out,
                    );
                    return true;
                }
                st.qid = Some(cmd.qid);
                let cntlid = if cmd.qid == 0 {
                    assert_eq!(cd.cntlid, 0xFFFF);
                    self.admin_connects.fetch_add(1, Ordering::SeqCst);
                    self.cntlid.fetch_add(1, Ordering::SeqCst) as u16
                } else {
                    cd.cntlid
                };
                send(st, resp(cid, Status::SUCCESS, cntlid as u32), out);
            } else if ft == nvmp_wire::FabricsType::PROPERTY_GET {
                let g = PropertyGet::from_sqe(&sqe).unwrap();
                let v: u64 = match g.offset {
                    prop::CAP => 127 | (1 << 24), // MQES 127, TO 500 ms
                    prop::VS => 0x0001_0400,
                    prop::CC => st.cc as u64,
                    prop::CSTS => {
                        let mut v = st.cc as u64 & 1;
                        if (st.cc >> 14) & 3 != 0 {
                            v |= 2 << 2;
                        }
                        v
                    }
                    _ => 0,
                };
                let mut c = Cqe::new(cid, Status::SUCCESS);
                c.dw0 = v as u32;
                c.dw1 = (v >> 32) as u32;
                send(st, Pdu::CapsuleResp(c), out);
            } else if ft == nvmp_wire::FabricsType::PROPERTY_SET {
                let s = PropertySet::from_sqe(&sqe).unwrap();
                if s.offset == prop::CC {
                    st.cc = s.value as u32;
                }
                send(st, resp(cid, Status::SUCCESS, 0), out);
            } else {
                send(
                    st,
                    resp(cid, Status::new(StatusCode::INVALID_OPCODE), 0),
                    out,
                );
            }
            return true;
        }
        if st.qid == Some(0) {
            match sqe.opcode {
                Opcode::IDENTIFY => {
                    let id = IdentifyCmd::from_sqe(&sqe).unwrap();
                    let b = if id.cns == Cns::CONTROLLER {
                        identify_ctrl(self.cntlid.load(Ordering::SeqCst) as u16)
                    } else if id.cns == Cns::NAMESPACE {
                        identify_ns()
                    } else {
                        vec![0; 4096]
                    };
                    send_read(st, cid, Bytes::from(b), out);
                }
                Opcode::SET_FEATURES => {
                    let dw0 = if sqe.cdw10 as u8 == FeatureId::NUMBER_OF_QUEUES.0 {
                        let n = NumberOfQueues::from_dw0(sqe.cdw11);
                        NumberOfQueues {
                            nsqr: n.nsqr.min(3),
                            ncqr: n.ncqr.min(3),
                        }
                        .to_cdw11()
                    } else {
                        0
                    };
                    send(st, resp(cid, Status::SUCCESS, dw0), out);
                }
                Opcode::KEEP_ALIVE => {
                    self.keepalives.fetch_add(1, Ordering::SeqCst);
                    if !self.knobs.drop_keepalive.load(Ordering::SeqCst) {
                        send(st, resp(cid, Status::SUCCESS, 0), out);
                    }
                }
                Opcode::ASYNC_EVENT_REQUEST => st.aers.push_back(cid),
                Opcode::GET_LOG_PAGE => {
                    let len = sqe.data_len();
                    let mut b = vec![0u8; len as usize];
                    if sqe.cdw10 as u8 == LogPageId::CHANGED_NS.0 && len >= 4 {
                        b[0] = 1;
                    }
                    if sqe.cdw10 as u8 == LogPageId::DISCOVERY.0 {
                        let lpo = sqe.cdw12 as usize | ((sqe.cdw13 as usize) << 32);
                        if lpo == 0 {
                            self.disc_header_reads.fetch_add(1, Ordering::SeqCst);
                        } else if self.bump_genctr_once.swap(false, Ordering::SeqCst) {
                            self.disc.lock().unwrap().genctr += 1;
                        }
                        let log = self.disc.lock().unwrap().encode();
                        for (i, x) in b.iter_mut().enumerate() {
                            *x = log.get(lpo + i).copied().unwrap_or(0);
                        }
                    }
                    send_read(st, cid, Bytes::from(b), out);
                }
                _ => send(
                    st,
                    resp(cid, Status::new(StatusCode::INVALID_OPCODE), 0),
                    out,
                ),
            }
            return true;
        }
        // I/O queue.
        self.io_cmds.fetch_add(1, Ordering::SeqCst);
        if self.knobs.hold_io.load(Ordering::SeqCst) {
            return true;
        }
        if self.knobs.garbage_on_read.load(Ordering::SeqCst) {
            out.extend_from_slice(b"\xffGARBAGE-GARBAGE-GARBAGE");
            return true;
        }
        let slba = sqe.cdw10 as u64 | ((sqe.cdw11 as u64) << 32);
        let nlb = (sqe.cdw12 & 0xFFFF) + 1;
        let len = nlb as usize * BS;
        if slba + nlb as u64 > NS_BLOCKS {
            send(
                st,
                resp(cid, Status::new(StatusCode::LBA_OUT_OF_RANGE), 0),
                out,
            );
            return true;
        }
        match sqe.opcode {
            Opcode::READ => {
                let off = slba as usize * BS;
                let b = Bytes::copy_from_slice(&self.ram.lock().unwrap()[off..off + len]);
                if self.knobs.c2h_out_of_range.load(Ordering::SeqCst) {
                    let d = DataPdu {
                        header: DataHeader {
                            cccid: cid,
                            ttag: 0,
                            offset: len as u32,
                            length: 512,
                        },
                        last: true,
                        success: true,
                        data: b.slice(..512),
                    };
                    send(st, Pdu::C2HData(d), out);
                } else if self.knobs.reverse_completions.load(Ordering::SeqCst) {
                    st.held.push((cid, b));
                    if st.held.len() >= 4 {
                        while let Some((c, b)) = st.held.pop() {
                            send_read(st, c, b, out);
                        }
                    }
                } else {
                    send_read(st, cid, b, out);
                }
            }
            Opcode::WRITE => {
                if !data.is_empty() {
                    let off = slba as usize * BS;
                    self.ram.lock().unwrap()[off..off + data.len()].copy_from_slice(&data);
                    send(st, resp(cid, Status::SUCCESS, 0), out);
                } else {
                    let n = (len as u32).min(R2T_LEN);
                    st.writes.push(PendingWrite {
                        cid,
                        slba,
                        len: len as u32,
                        data: BytesMut::with_capacity(len),
                        outstanding: n,
                    });
                    send(
                        st,
                        Pdu::R2t(R2t {
                            cccid: cid,
                            ttag: 1,
                            offset: 0,
                            length: n,
                        }),
                        out,
                    );
                }
            }
            _ => send(st, resp(cid, Status::SUCCESS, 0), out),
        }
        true
    }
}

#[derive(Default)]
struct ConnState {
    qid: Option<u16>,
    enc: EncodeOptions,
    cc: u32,
    aers: VecDeque<u16>,
    writes: Vec<PendingWrite>,
    held: Vec<(u16, Bytes)>,
}

struct PendingWrite {
    cid: u16,
    slba: u64,
    len: u32,
    data: BytesMut,
    outstanding: u32,
}

fn send(st: &ConnState, p: Pdu, out: &mut BytesMut) {
    p.encode(st.enc, out);
}
fn resp(cid: u16, s: Status, dw0: u32) -> Pdu {
    let mut c = Cqe::new(cid, s);
    c.dw0 = dw0;
    Pdu::CapsuleResp(c)
}
/// C2HData with the SUCCESS flag (no CapsuleResp), as Linux's target does.
fn send_read(st: &ConnState, cid: u16, b: Bytes, out: &mut BytesMut) {
    let d = DataPdu {
        header: DataHeader {
            cccid: cid,
            ttag: 0,
            offset: 0,
            length: b.len() as u32,
        },
        last: true,
        success: true,
        data: b,
    };
    send(st, Pdu::C2HData(d), out);
}

pub fn identify_ctrl(cntlid: u16) -> Vec<u8> {
    let id = IdentifyController {
        sn: "FAKE0001".into(),
        mn: "nvmp-host-fake".into(),
        fr: "1.0".into(),
        cmic: cmic::MULTI_PORT | cmic::MULTI_CTRL | cmic::ANA,
        mdts: 5,
        cntlid,
        ver: 0x0001_0400,
        oaes: nvmp_wire::admin::aec::ANA_CHANGE | nvmp_wire::admin::aec::NS_ATTR_CHANGED,
        aerl: 3,
        kas: 1,
        sqes: 0x66,
        cqes: 0x44,
        maxcmd: 128,
        nn: 1,
        subnqn: "nqn.2024-01.io.example:fake".into(),
        ioccsz: (8192 + 64) / 16,
        iorcsz: 1,
        nanagrpid: 1,
        anagrpmax: 1,
        ..Default::default()
    };
    id.encode()
}

pub fn identify_ns() -> Vec<u8> {
    IdentifyNamespace {
        nsze: NS_BLOCKS,
        ncap: NS_BLOCKS,
        nuse: NS_BLOCKS,
        nsfeat: 0,
        nlbaf: 0,
        flbas: 0,
        dlfeat: 0,
        nmic: 1,
        anagrpid: 1,
        nsattr: 0,
        nguid: [7; 16],
        eui64: [0; 8],
        lbaf: vec![LbaFormat {
            ms: 0,
            lbads: 9,
            rp: 0,
        }],
    }
    .encode()
}

pub fn ana_event() -> AsyncEvent {
    AsyncEvent {
        event_type: AsyncEventType::NOTICE,
        info: nvmp_wire::admin::NOTICE_ANA_CHANGE,
        log_page: LogPageId::ANA,
    }
}

/// Connect a controller to the fake `f` with options `o`.
pub async fn connect(
    f: &std::sync::Arc<Fake>,
    o: nvmp_host::ControllerOptions,
) -> nvmp_host::Controller {
    nvmp_host::Controller::connect_with(o, f.connector())
        .await
        .expect("connect")
}

/// A read of `blocks` blocks of NSID 1 at `slba`.
pub fn read(slba: u64, blocks: u32) -> nvmp_host::IoRequest {
    let sqe = nvmp_wire::io::ReadWrite {
        nsid: 1,
        slba,
        nlb: blocks,
        fua: false,
    }
    .read_sqe();
    nvmp_host::IoRequest::with_read(sqe, blocks * BS as u32)
}

/// A write of `data` (whole blocks) to NSID 1 at `slba`.
pub fn write(slba: u64, data: bytes::Bytes) -> nvmp_host::IoRequest {
    let sqe = nvmp_wire::io::ReadWrite {
        nsid: 1,
        slba,
        nlb: (data.len() / BS) as u32,
        fua: false,
    }
    .write_sqe();
    nvmp_host::IoRequest::with_write(sqe, data)
}
