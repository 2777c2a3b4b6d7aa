//! Admin commands on a live controller: Identify, Get Log Page (with
//! offsets, split at MDTS), ANA log, features, keep-alive.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use nvmp_wire::admin::{
    Cns, FeatureId, GetFeaturesCmd, GetLogPageCmd, IdentifyCmd, LogPageId, SetFeaturesCmd,
};
use nvmp_wire::identify::{
    decode_ns_id_descriptors, decode_ns_list, IdentifyNamespace, NsIdDescriptor,
};
use nvmp_wire::log::{AnaLog, AnaLogLimits};

use super::connect::{admin_call, keep_alive_req};
use super::state::CtrlState;
use super::Controller;
use crate::command::{Completion, IoRequest};
use crate::error::HostError;

/// ANA log header and group descriptor sizes (NVMe Base 2.0, Figure 213/214).
const ANA_HDR_LEN: u32 = 16;
const ANA_DESC_LEN: u32 = 32;
/// Bound on one log page read (the largest log nvmp asks for in one call).
const MAX_LOG_LEN: u32 = 64 << 20;

impl Controller {
    fn admin_queue(&self) -> Result<crate::conn::Conn, HostError> {
        match (self.state(), self.inner.assoc()) {
            (CtrlState::Live, Some(a)) => Ok(a.admin.clone()),
            (s, _) => Err(HostError::Closed(format!("{} is {s}", self.name()))),
        }
    }
    fn admin_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.opts.admin_timeout_ms)
    }

    /// Run a raw admin command (admin timeout). 0x370 when not live.
    pub async fn admin(&self, req: IoRequest) -> Completion {
        match self.admin_queue() {
            Ok(q) => q.submit(req, Some(self.admin_timeout())).await,
            Err(_) => Completion::host_pathing_error(),
        }
    }

    /// A raw admin command whose status is data; `Err` only when not live.
    pub(super) async fn admin_submit(&self, req: IoRequest) -> Result<Completion, HostError> {
        let q = self.admin_queue()?;
        Ok(q.submit(req, Some(self.admin_timeout())).await)
    }

    async fn admin_ok(&self, req: IoRequest, what: &'static str) -> Result<Completion, HostError> {
        let q = self.admin_queue()?;
        admin_call(&q, req, self.admin_timeout(), what).await
    }

    /// Identify with any CNS; returns the 4096-byte data structure.
    pub async fn identify(&self, cns: Cns, nsid: u32) -> Result<Bytes, HostError> {
        let sqe = IdentifyCmd {
            cns,
            nsid,
            cntid: 0,
        }
        .to_sqe();
        Ok(self
            .admin_ok(IoRequest::with_read(sqe, 4096), "Identify")
            .await?
            .data)
    }

    pub async fn identify_namespace(&self, nsid: u32) -> Result<IdentifyNamespace, HostError> {
        let b = self.identify(Cns::NAMESPACE, nsid).await?;
        IdentifyNamespace::decode(&b)
            .map_err(|e| HostError::Malformed(format!("Identify Namespace {nsid}: {e}")))
    }

    pub async fn ns_id_descriptors(&self, nsid: u32) -> Result<Vec<NsIdDescriptor>, HostError> {
        let b = self.identify(Cns::NS_ID_DESCRIPTORS, nsid).await?;
        decode_ns_id_descriptors(&b)
            .map_err(|e| HostError::Malformed(format!("NS ID descriptors {nsid}: {e}")))
    }

    /// Every active NSID (CNS 02h, paged by the last NSID returned).
    pub async fn active_namespaces(&self) -> Result<Vec<u32>, HostError> {
        let mut all = Vec::new();
        let mut from = 0u32;
        // At most 2^32 / 1024 pages; in practice NN bounds it.
        for _ in 0..4096 {
            let b = self.identify(Cns::ACTIVE_NS_LIST, from).await?;
            let ids = decode_ns_list(&b)
                .map_err(|e| HostError::Malformed(format!("active NS list: {e}")))?;
            let full = ids.len() == 1024;
            match ids.last() {
                Some(&last) if full && last < 0xFFFF_FFFE => from = last,
                _ => {
                    all.extend(ids);
                    return Ok(all);
                }
            }
            all.extend(ids);
        }
        Ok(all)
    }

    /// Get Log Page: `len` bytes from `offset`, read in pieces of at most
    /// MDTS. RAE (retain asynchronous event) is clear, so reading a log
    /// named by an AEN re-arms that event.
    pub async fn get_log_page(
        &self,
        lid: LogPageId,
        lsp: u8,
        offset: u64,
        len: u32,
    ) -> Result<Bytes, HostError> {
        self.get_log_page_nsid(lid, 0xFFFF_FFFF, lsp, false, offset, len)
            .await
    }

    /// Get Log Page with every field.
    pub async fn get_log_page_nsid(
        &self,
        lid: LogPageId,
        nsid: u32,
        lsp: u8,
        rae: bool,
        offset: u64,
        len: u32,
    ) -> Result<Bytes, HostError> {
        if len == 0 || len & 3 != 0 || offset & 3 != 0 || len > MAX_LOG_LEN {
            return Err(HostError::InvalidArgument(format!(
                "log page length {len} / offset {offset}: dword aligned, 4..={MAX_LOG_LEN}"
            )));
        }
        // Pieces fit the admin queue's receive bound (1 MiB) and MDTS.
        let chunk = (self.max_transfer().min(1 << 20) & !3).max(4096);
        let mut out = BytesMut::with_capacity(len as usize);
        let mut done = 0u32;
        while done < len {
            let n = (len - done).min(chunk);
            let sqe = GetLogPageCmd {
                lid,
                nsid,
                lsp,
                // Keep the event retained until the last piece.
                rae: rae || done + n < len,
                numd: n / 4,
                lpo: offset + done as u64,
                csi: 0,
            }
            .to_sqe();
            let c = self
                .admin_ok(IoRequest::with_read(sqe, n), "Get Log Page")
                .await?;
            if len == n {
                return Ok(c.data);
            }
            out.extend_from_slice(&c.data);
            done += n;
        }
        Ok(out.freeze())
    }

    /// The ANA log page, sized as Linux sizes it (header + NANAGRPID
    /// descriptors + one NSID per namespace unless `rgo`).
    pub async fn ana_log(&self, rgo: bool) -> Result<AnaLog, HostError> {
        let id = self.id_ctrl();
        let groups = id.nanagrpid.max(1);
        let nsids = if rgo {
            0
        } else {
            id.mnan.max(id.nn).min(1 << 20)
        };
        let len = ANA_HDR_LEN + groups * ANA_DESC_LEN + nsids * 4;
        let lsp = if rgo {
            nvmp_wire::admin::ANA_LSP_RGO
        } else {
            0
        };
        let b = self.get_log_page(LogPageId::ANA, lsp, 0, len).await?;
        AnaLog::decode(
            &b,
            AnaLogLimits {
                max_groups: groups.max(id.anagrpmax),
                max_nsids: nsids.max(id.nn),
            },
        )
        .map_err(|e| HostError::Malformed(format!("ANA log: {e}")))
    }

    /// Set Features; returns the completion's DW0.
    pub async fn set_features(&self, fid: FeatureId, cdw11: u32) -> Result<u32, HostError> {
        let sqe = SetFeaturesCmd {
            fid,
            save: false,
            cdw11,
        }
        .to_sqe();
        Ok(self
            .admin_ok(IoRequest::new(sqe), "Set Features")
            .await?
            .dw0)
    }

    /// Get Features (current value); returns DW0.
    pub async fn get_features(&self, fid: FeatureId, cdw11: u32) -> Result<u32, HostError> {
        let sqe = GetFeaturesCmd { fid, sel: 0, cdw11 }.to_sqe();
        Ok(self
            .admin_ok(IoRequest::new(sqe), "Get Features")
            .await?
            .dw0)
    }

    /// Send one Keep Alive now.
    pub async fn keep_alive(&self) -> Result<(), HostError> {
        self.admin_ok(keep_alive_req(), "Keep Alive")
            .await
            .map(|_| ())
    }
}
