//! What a benchmark runs against: a namespace head (multipath) or one bare
//! controller (for comparison).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use nvmp_host::{Controller, IoRequest};
use nvmp_mpath::NamespaceHead;
use nvmp_wire::io::ReadWrite;

pub trait IoTarget: Send + Sync + 'static {
    fn name(&self) -> String;
    fn block_size(&self) -> u32;
    fn capacity_bytes(&self) -> u64;
    fn read(&self, off: u64, len: u32) -> impl Future<Output = Result<Bytes, String>> + Send;
    fn write(&self, off: u64, data: Bytes) -> impl Future<Output = Result<(), String>> + Send;
    /// Completed I/Os per path so far.
    fn path_ios(&self) -> Vec<(String, u64)>;
    fn failovers(&self) -> u64;
}

pub struct HeadTarget(pub Arc<NamespaceHead>);

impl IoTarget for HeadTarget {
    fn name(&self) -> String {
        self.0.name.clone()
    }
    fn block_size(&self) -> u32 {
        self.0.block_size()
    }
    fn capacity_bytes(&self) -> u64 {
        self.0.capacity_bytes()
    }
    async fn read(&self, off: u64, len: u32) -> Result<Bytes, String> {
        let bs = self.0.block_size() as u64;
        self.0
            .read(off / bs, (len as u64 / bs) as u32)
            .await
            .map_err(|e| e.to_string())
    }
    async fn write(&self, off: u64, data: Bytes) -> Result<(), String> {
        let bs = self.0.block_size() as u64;
        self.0
            .write(off / bs, data, false)
            .await
            .map_err(|e| e.to_string())
    }
    fn path_ios(&self) -> Vec<(String, u64)> {
        self.0
            .paths()
            .iter()
            .map(|p| (p.name.clone(), p.stats.ios.load(Relaxed)))
            .collect()
    }
    fn failovers(&self) -> u64 {
        self.0.stats.failovers.load(Relaxed)
    }
}

/// One namespace through one bare controller: no multipath layer at all.
pub struct CtrlTarget {
    pub ctrl: Controller,
    pub nsid: u32,
    pub block_size: u32,
    pub capacity_blocks: u64,
    pub ios: AtomicU64,
}

impl CtrlTarget {
    pub async fn new(ctrl: Controller, nsid: u32) -> anyhow::Result<Self> {
        let ns = ctrl
            .identify_namespace(nsid)
            .await
            .map_err(|e| anyhow::anyhow!("{}: Identify Namespace {nsid}: {e}", ctrl.address()))?;
        if ns.nsze == 0 {
            anyhow::bail!("namespace {nsid} not found on {}", ctrl.address());
        }
        let block_size = ns
            .block_size()
            .ok_or_else(|| anyhow::anyhow!("namespace {nsid}: unsupported LBA format"))?;
        Ok(Self {
            ctrl,
            nsid,
            block_size,
            capacity_blocks: ns.nsze,
            ios: AtomicU64::new(0),
        })
    }
}

impl IoTarget for CtrlTarget {
    fn name(&self) -> String {
        format!("{} nsid {} (single path)", self.ctrl.address(), self.nsid)
    }
    fn block_size(&self) -> u32 {
        self.block_size
    }
    fn capacity_bytes(&self) -> u64 {
        self.capacity_blocks * self.block_size as u64
    }
    async fn read(&self, off: u64, len: u32) -> Result<Bytes, String> {
        let bs = self.block_size as u64;
        let sqe = ReadWrite {
            nsid: self.nsid,
            slba: off / bs,
            nlb: (len as u64 / bs) as u32,
            fua: false,
        }
        .read_sqe();
        let c = self
            .ctrl
            .submit(IoRequest {
                sqe,
                write: None,
                read_len: len,
            })
            .await;
        if c.status.is_success() {
            self.ios.fetch_add(1, Relaxed);
            Ok(c.data)
        } else {
            Err(format!("I/O error: {}", c.status))
        }
    }
    async fn write(&self, off: u64, data: Bytes) -> Result<(), String> {
        let bs = self.block_size as u64;
        let nlb = (data.len() as u64 / bs) as u32;
        let sqe = ReadWrite {
            nsid: self.nsid,
            slba: off / bs,
            nlb,
            fua: false,
        }
        .write_sqe();
        let c = self
            .ctrl
            .submit(IoRequest {
                sqe,
                write: Some(data),
                read_len: 0,
            })
            .await;
        if c.status.is_success() {
            self.ios.fetch_add(1, Relaxed);
            Ok(())
        } else {
            Err(format!("I/O error: {}", c.status))
        }
    }
    fn path_ios(&self) -> Vec<(String, u64)> {
        vec![(self.ctrl.address(), self.ios.load(Relaxed))]
    }
    fn failovers(&self) -> u64 {
        0
    }
}
