//! A minimal raw NVMe/TCP host for tests, built on nvmp-wire.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use nvmp_wire::fabrics::{ConnectCmd, ConnectData};
use nvmp_wire::pdu::{DataHeader, DataPdu, Digests, EncodeOptions, IcReq};
use nvmp_wire::{Cqe, FabricsType, Opcode, Pdu, PduConfig, PduDecoder, Role, Sgl, Sqe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-4333-8444-555555555555";
pub const HOSTID: [u8; 16] = [0x11; 16];

pub struct Client {
    pub stream: TcpStream,
    dec: PduDecoder,
    buf: BytesMut,
    enc: EncodeOptions,
    next_cid: u16,
    pub maxh2cdata: u32,
    pending_writes: HashMap<u16, Bytes>,
    reads: HashMap<u16, BytesMut>,
    pub inline_limit: usize,
}

pub struct Done {
    pub cid: u16,
    pub cqe: Cqe,
    pub data: Bytes,
}

impl Client {
    /// TCP connect + ICReq/ICResp.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
        Self::connect_with(addr, Digests::NONE).await
    }

    pub async fn connect_with(addr: SocketAddr, digests: Digests) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            stream,
            dec: PduDecoder::new(PduConfig::initial(Role::Host, 4 << 20)),
            buf: BytesMut::with_capacity(1 << 20),
            enc: EncodeOptions::default(),
            next_cid: 1,
            maxh2cdata: 0,
            pending_writes: HashMap::new(),
            reads: HashMap::new(),
            inline_limit: 8192,
        };
        c.send(&Pdu::IcReq(IcReq {
            pfv: 0,
            hpda: 0,
            digests,
            maxr2t: 0,
        }))
        .await?;
        match c.recv().await? {
            Pdu::IcResp(r) => {
                c.maxh2cdata = r.maxh2cdata;
                c.dec.config.digests = r.digests;
                c.enc = EncodeOptions {
                    digests: r.digests,
                    pda: r.cpda,
                };
            }
            o => anyhow::bail!("expected ICResp, got {o:?}"),
        }
        Ok(c)
    }

    pub async fn send(&mut self, pdu: &Pdu) -> anyhow::Result<()> {
        let mut b = BytesMut::new();
        pdu.encode(self.enc, &mut b);
        self.stream.write_all(&b).await?;
        Ok(())
    }

    pub async fn send_raw(&mut self, b: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(b).await?;
        Ok(())
    }

    /// Next PDU; error on EOF.
    pub async fn recv(&mut self) -> anyhow::Result<Pdu> {
        loop {
            if let Some(p) = self
                .dec
                .decode(&mut self.buf)
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                return Ok(p);
            }
            if self.buf.capacity() - self.buf.len() < 65536 {
                self.buf.reserve(1 << 20);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                anyhow::bail!("connection closed");
            }
        }
    }

    pub fn cid(&mut self) -> u16 {
        let c = self.next_cid;
        self.next_cid = self.next_cid.wrapping_add(1).max(1);
        c
    }

    /// Submit a command (data in-capsule if small, else via R2T later).
    pub async fn submit(
        &mut self,
        mut sqe: Sqe,
        write: Option<Bytes>,
        read_len: u32,
    ) -> anyhow::Result<u16> {
        if sqe.cid == 0 {
            sqe.cid = self.cid();
        }
        let cid = sqe.cid;
        let data = match write {
            Some(d) if d.len() <= self.inline_limit => {
                sqe.dptr = Sgl::in_capsule(0, d.len() as u32);
                d
            }
            Some(d) => {
                sqe.dptr = Sgl::transport(d.len() as u32);
                self.pending_writes.insert(cid, d);
                Bytes::new()
            }
            None => {
                sqe.dptr = Sgl::transport(read_len);
                Bytes::new()
            }
        };
        self.send(&Pdu::CapsuleCmd { sqe, data }).await?;
        Ok(cid)
    }

    /// Wait for the next completion (answering R2Ts, gathering C2HData).
    pub async fn next_done(&mut self) -> anyhow::Result<Done> {
        loop {
            match self.recv().await? {
                Pdu::R2t(r) => {
                    let d = self
                        .pending_writes
                        .get(&r.cccid)
                        .cloned()
                        .ok_or_else(|| anyhow::anyhow!("R2T for unknown cid"))?;
                    let mut off = r.offset as usize;
                    let end = (r.offset + r.length) as usize;
                    while off < end {
                        let n = (end - off).min(self.maxh2cdata as usize);
                        let pdu = Pdu::H2CData(DataPdu {
                            header: DataHeader {
                                cccid: r.cccid,
                                ttag: r.ttag,
                                offset: off as u32,
                                length: n as u32,
                            },
                            last: off + n == end,
                            success: false,
                            data: d.slice(off..off + n),
                        });
                        self.send(&pdu).await?;
                        off += n;
                    }
                }
                Pdu::C2HData(d) => {
                    let e = self.reads.entry(d.header.cccid).or_default();
                    e.extend_from_slice(&d.data);
                    if d.success {
                        let data = self
                            .reads
                            .remove(&d.header.cccid)
                            .unwrap_or_default()
                            .freeze();
                        let cqe = Cqe::new(d.header.cccid, nvmp_wire::Status::SUCCESS);
                        return Ok(Done {
                            cid: d.header.cccid,
                            cqe,
                            data,
                        });
                    }
                }
                Pdu::CapsuleResp(cqe) => {
                    self.pending_writes.remove(&cqe.cid);
                    let data = self.reads.remove(&cqe.cid).unwrap_or_default().freeze();
                    return Ok(Done {
                        cid: cqe.cid,
                        cqe,
                        data,
                    });
                }
                o => anyhow::bail!("unexpected PDU {o:?}"),
            }
        }
    }

    /// One command, waiting for its completion.
    pub async fn command(
        &mut self,
        sqe: Sqe,
        write: Option<Bytes>,
        read_len: u32,
    ) -> anyhow::Result<(Cqe, Bytes)> {
        let cid = self.submit(sqe, write, read_len).await?;
        loop {
            let d = self.next_done().await?;
            if d.cid == cid {
                return Ok((d.cqe, d.data));
            }
        }
    }

    /// Fabrics Connect; returns the completion.
    pub async fn fabrics_connect(
        &mut self,
        subnqn: &str,
        hostnqn: &str,
        qid: u16,
        cntlid: u16,
        sqsize: u16,
        kato_ms: u32,
    ) -> anyhow::Result<Cqe> {
        let sqe = ConnectCmd {
            recfmt: 0,
            qid,
            sqsize,
            cattr: 0,
            kato_ms,
        }
        .to_sqe();
        let data = ConnectData {
            hostid: HOSTID,
            cntlid,
            subnqn: subnqn.into(),
            hostnqn: hostnqn.into(),
        }
        .encode();
        Ok(self
            .command(sqe, Some(Bytes::copy_from_slice(&data)), 0)
            .await?
            .0)
    }

    pub async fn prop_set_cc(&mut self, value: u32) -> anyhow::Result<Cqe> {
        let mut sqe = Sqe::fabrics(FabricsType::PROPERTY_SET);
        sqe.cdw10 = 0;
        sqe.cdw11 = 0x14;
        sqe.cdw12 = value;
        Ok(self.command(sqe, None, 0).await?.0)
    }

    pub async fn prop_get(&mut self, offset: u32, size8: bool) -> anyhow::Result<Cqe> {
        let mut sqe = Sqe::fabrics(FabricsType::PROPERTY_GET);
        sqe.cdw10 = size8 as u32;
        sqe.cdw11 = offset;
        Ok(self.command(sqe, None, 0).await?.0)
    }

    /// Admin queue: Connect + CC.EN; returns the client and the CNTLID.
    pub async fn admin(
        addr: SocketAddr,
        subnqn: &str,
        hostnqn: &str,
        kato_ms: u32,
    ) -> anyhow::Result<(Client, u16)> {
        let mut c = Client::connect(addr).await?;
        let cqe = c
            .fabrics_connect(subnqn, hostnqn, 0, 0xFFFF, 31, kato_ms)
            .await?;
        anyhow::ensure!(
            cqe.status.is_success(),
            "admin connect failed: {}",
            cqe.status
        );
        let cntlid = cqe.dw0 as u16;
        // CC: EN, IOSQES 6, IOCQES 4.
        let cqe = c.prop_set_cc(1 | (6 << 16) | (4 << 20)).await?;
        anyhow::ensure!(cqe.status.is_success(), "CC.EN failed");
        Ok((c, cntlid))
    }

    /// I/O queue `qid` of controller `cntlid`.
    pub async fn io(
        addr: SocketAddr,
        subnqn: &str,
        hostnqn: &str,
        cntlid: u16,
        qid: u16,
    ) -> anyhow::Result<Client> {
        let mut c = Client::connect(addr).await?;
        let cqe = c
            .fabrics_connect(subnqn, hostnqn, qid, cntlid, 127, 0)
            .await?;
        anyhow::ensure!(cqe.status.is_success(), "io connect failed: {}", cqe.status);
        Ok(c)
    }
}

pub fn read_sqe(nsid: u32, slba: u64, nlb: u32) -> Sqe {
    let mut s = Sqe::new(Opcode::READ);
    s.nsid = nsid;
    s.cdw10 = slba as u32;
    s.cdw11 = (slba >> 32) as u32;
    s.cdw12 = nlb - 1;
    s
}

pub fn write_sqe(nsid: u32, slba: u64, nlb: u32, fua: bool) -> Sqe {
    let mut s = Sqe::new(Opcode::WRITE);
    s.nsid = nsid;
    s.cdw10 = slba as u32;
    s.cdw11 = (slba >> 32) as u32;
    s.cdw12 = (nlb - 1) | ((fua as u32) << 30);
    s
}

/// A two-port, one-subsystem, two-RAM-namespace config on 127.0.0.1 with ephemeral ports.
pub fn two_port_config(subnqn: &str, extra_param: &str) -> String {
    format!(
        r#"{{
  "hosts": [],
  "ports": [
    {{"portid": 1, "addr": {{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "0", "treq": "not specified"}},
      "param": {{"inline_data_size": "16384"{extra_param}}},
      "ana_groups": [{{"grpid": 1, "ana": {{"state": "optimized"}}}}, {{"grpid": 2, "ana": {{"state": "non-optimized"}}}}],
      "referrals": [], "subsystems": ["{subnqn}"]}},
    {{"portid": 2, "addr": {{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "0", "treq": "not specified"}},
      "param": {{"inline_data_size": "16384"{extra_param}}},
      "ana_groups": [{{"grpid": 1, "ana": {{"state": "non-optimized"}}}}, {{"grpid": 2, "ana": {{"state": "optimized"}}}}],
      "referrals": [], "subsystems": ["{subnqn}"]}}
  ],
  "subsystems": [
    {{"nqn": "{subnqn}", "attr": {{"allow_any_host": "1", "serial": "NVMPTEST0001", "model": "nvmp-test", "version": "1.3", "cntlid_min": "1", "cntlid_max": "65519"}},
      "allowed_hosts": [],
      "namespaces": [
        {{"nsid": 1, "enable": 1, "ana_grpid": 1, "device": {{"size": "64M", "nguid": "4e560000-0000-4000-8000-0000000000a1", "uuid": "4e560000-0000-4000-8000-000000000001"}}}},
        {{"nsid": 2, "enable": 1, "ana_grpid": 2, "device": {{"size": "64M", "nguid": "4e560000-0000-4000-8000-0000000000a2", "uuid": "4e560000-0000-4000-8000-000000000002"}}}}
      ]}}
  ]
}}"#
    )
}
