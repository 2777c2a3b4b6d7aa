//! Establishing an association: admin queue, Fabrics Connect, CAP/VS,
//! CC.EN and CSTS.RDY, Identify Controller, number of queues, async event
//! configuration, then the I/O queues. Also the orderly shutdown (CC.SHN).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nvmp_wire::admin::{Cns, FeatureId, IdentifyCmd, NumberOfQueues, SetFeaturesCmd};
use nvmp_wire::fabrics::{prop, ConnectCmd, ConnectData, PropertyGet, PropertySet};
use nvmp_wire::identify::IdentifyController;
use nvmp_wire::Digests;

use crate::command::{Completion, IoRequest};
use crate::conn::Conn;
use crate::error::HostError;
use crate::options::{ControllerOptions, ADMIN_QUEUE_SIZE};
use crate::queue::{QueueConfig, QueueError};
use crate::transport::{connect_timeout, Connector};

/// Reports a failed queue of association `gen`.
pub(crate) type FailSink = Arc<dyn Fn(u64, u16, &QueueError) + Send + Sync>;

/// CC bits (NVMe Base 2.0, Figure 78).
const CC_EN: u32 = 1;
const CC_SHN_NORMAL: u32 = 1 << 14;
const CC_IOSQES_64: u32 = 6 << 16;
const CC_IOCQES_16: u32 = 4 << 20;
/// CSTS bits.
const CSTS_RDY: u32 = 1;
const CSTS_CFS: u32 = 1 << 1;
const CSTS_SHST_MASK: u32 = 3 << 2;
const CSTS_SHST_COMPLETE: u32 = 2 << 2;
/// Async events Linux enables when advertised (NVME_AEN_SUPPORTED, minus
/// firmware activation), and the Cross-Controller Reset Completed notice (bit 20).
const AEN_SUPPORTED: u32 =
    (1 << 8) | (1 << 11) | (1 << 31) | nvmp_wire::admin::ccr::AEC_CCR_COMPLETED;

/// One live association with a controller: its queues and what Identify said.
#[derive(Debug)]
pub(crate) struct Association {
    pub gen: u64,
    pub admin: Conn,
    pub io: Vec<Conn>,
    pub cntlid: u16,
    pub id: Arc<IdentifyController>,
    pub cap: u64,
    pub vs: u32,
    /// Largest data transfer (MDTS), bytes.
    pub max_transfer: u32,
}

impl Association {
    /// Tear every queue down (commands in flight complete with 0x371).
    pub fn close(&self) {
        for q in &self.io {
            q.close();
        }
        self.admin.close();
    }
}

/// Run one admin command and insist on success.
pub(crate) async fn admin_call(
    q: &Conn,
    req: IoRequest,
    timeout: Duration,
    what: &'static str,
) -> Result<Completion, HostError> {
    let c = q.submit(req, Some(timeout)).await;
    if c.status.is_success() {
        Ok(c)
    } else if c.status.code == nvmp_wire::StatusCode::ABORTED_BY_HOST
        || c.status.code == nvmp_wire::StatusCode::HOST_PATHING_ERROR
    {
        Err(HostError::Closed(format!(
            "{what}: queue torn down ({})",
            c.status
        )))
    } else {
        Err(HostError::Status {
            what,
            status: c.status,
        })
    }
}

async fn open_queue(
    opts: &ControllerOptions,
    connector: &Arc<dyn Connector>,
    cfg: QueueConfig,
    gen: u64,
    sink: &FailSink,
) -> Result<Conn, HostError> {
    let t = Duration::from_millis(opts.connect_timeout_ms);
    let (r, w) = match &opts.tls {
        None => connect_timeout(connector, &opts.address(), t).await?,
        Some(key) => crate::tls::connect(opts, key, t).await?,
    };
    let sink = sink.clone();
    let q = Conn::start(r, w, cfg, Box::new(move |qid, e| sink(gen, qid, e)));
    q.wait_ready(t).await.map_err(|e| match (&opts.tls, e) {
        // A port that requires TLS closes a plain connection at its ICReq.
        (None, HostError::Closed(m)) => HostError::Closed(format!(
            "{m} (if the port requires TLS: connect with --tls_key or --keyring)"
        )),
        (_, e) => e,
    })?;
    Ok(q)
}

fn connect_req(
    opts: &ControllerOptions,
    qid: u16,
    sqsize: u16,
    cntlid: u16,
    kato_ms: u32,
) -> IoRequest {
    let sqe = ConnectCmd {
        recfmt: 0,
        qid,
        sqsize,
        cattr: 0,
        kato_ms,
    }
    .to_sqe();
    let data = ConnectData {
        hostid: opts.host.hostid,
        cntlid,
        subnqn: opts.subnqn.clone(),
        hostnqn: opts.host.hostnqn.clone(),
    }
    .encode();
    IoRequest::with_write(sqe, Bytes::copy_from_slice(&data))
}

/// Fabrics Connect on a queue; returns the CNTLID. A rejection is
/// [`HostError::ConnectRejected`] (with the status, DNR included).
async fn fabrics_connect(
    q: &Conn,
    req: IoRequest,
    timeout: Duration,
    opts: &ControllerOptions,
    qid: u16,
) -> Result<u16, HostError> {
    let c = q.submit(req, Some(timeout)).await;
    if c.status.is_success() {
        // In-band authentication when the controller requires it (AUTHREQ).
        crate::auth::after_connect(q, opts, qid, c.dw0, timeout).await?;
        Ok(c.dw0 as u16)
    } else if c.status.code == nvmp_wire::StatusCode::ABORTED_BY_HOST {
        Err(HostError::Closed("connection lost during Connect".into()))
    } else {
        Err(HostError::ConnectRejected { status: c.status })
    }
}

pub(crate) async fn prop_get(
    q: &Conn,
    offset: u32,
    size8: bool,
    t: Duration,
) -> Result<u64, HostError> {
    let sqe = PropertyGet { offset, size8 }.to_sqe();
    Ok(admin_call(q, IoRequest::new(sqe), t, "Property Get")
        .await?
        .result64())
}

pub(crate) async fn prop_set(
    q: &Conn,
    offset: u32,
    value: u64,
    t: Duration,
) -> Result<(), HostError> {
    let sqe = PropertySet {
        offset,
        size8: false,
        value,
    }
    .to_sqe();
    admin_call(q, IoRequest::new(sqe), t, "Property Set")
        .await
        .map(|_| ())
}

/// Bring up a whole association (admin queue, enable, identify, I/O queues).
pub(crate) async fn establish(
    opts: &ControllerOptions,
    connector: &Arc<dyn Connector>,
    gen: u64,
    sink: &FailSink,
) -> Result<Association, HostError> {
    let digests = Digests {
        header: opts.hdr_digest,
        data: opts.data_digest,
    };
    let at = Duration::from_millis(opts.admin_timeout_ms);
    let admin = open_queue(
        opts,
        connector,
        QueueConfig::admin(ADMIN_QUEUE_SIZE, digests),
        gen,
        sink,
    )
    .await?;
    match bring_up(opts, connector, gen, sink, admin.clone(), digests, at).await {
        Ok(a) => Ok(a),
        Err(e) => {
            admin.close();
            Err(e)
        }
    }
}

async fn bring_up(
    opts: &ControllerOptions,
    connector: &Arc<dyn Connector>,
    gen: u64,
    sink: &FailSink,
    admin: Conn,
    digests: Digests,
    at: Duration,
) -> Result<Association, HostError> {
    // Admin Connect: dynamic controller model (CNTLID FFFFh), KATO.
    let kato = opts.kato_ms;
    let req = connect_req(opts, 0, ADMIN_QUEUE_SIZE - 1, 0xFFFF, kato);
    let cntlid = fabrics_connect(&admin, req, at, opts, 0).await?;
    let cap = prop_get(&admin, prop::CAP, true, at).await?;
    let vs = prop_get(&admin, prop::VS, false, at).await? as u32;
    // Enable: CC.EN = 1, I/O SQ entry 2^6, CQ entry 2^4; wait CSTS.RDY within CAP.TO.
    prop_set(
        &admin,
        prop::CC,
        (CC_EN | CC_IOSQES_64 | CC_IOCQES_16) as u64,
        at,
    )
    .await?;
    let to_500ms = (cap >> 24) & 0xFF;
    let ready_by = tokio::time::Instant::now() + Duration::from_millis((to_500ms + 1) * 500);
    loop {
        let csts = prop_get(&admin, prop::CSTS, false, at).await? as u32;
        if csts & CSTS_CFS != 0 {
            return Err(HostError::Protocol("CSTS.CFS set while enabling".into()));
        }
        if csts & CSTS_RDY != 0 {
            break;
        }
        if tokio::time::Instant::now() >= ready_by {
            return Err(HostError::Timeout(format!(
                "CSTS.RDY within CAP.TO ({to_500ms} × 500 ms)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let c = admin_call(
        &admin,
        IoRequest::with_read(
            IdentifyCmd {
                cns: Cns::CONTROLLER,
                nsid: 0,
                cntid: 0,
            }
            .to_sqe(),
            4096,
        ),
        at,
        "Identify Controller",
    )
    .await?;
    let id = IdentifyController::decode(&c.data)
        .map_err(|e| HostError::Malformed(format!("Identify Controller: {e}")))?;
    // MDTS is in units of the minimum page size (CAP.MPSMIN); 0 = no limit.
    let page = 4096u64 << ((cap >> 48) & 0xF);
    let max_transfer = match id.mdts {
        0 => 1 << 20,
        m => (page << m.min(20)).min(8 << 20),
    } as u32;
    let max_transfer = max_transfer.max(4096);

    // Async event configuration: the notices the controller advertises.
    let aen = id.oaes & AEN_SUPPORTED;
    if aen != 0 {
        let sqe = SetFeaturesCmd {
            fid: FeatureId::ASYNC_EVENT_CONFIG,
            save: false,
            cdw11: aen,
        }
        .to_sqe();
        if let Err(e) = admin_call(&admin, IoRequest::new(sqe), at, "Set Features (AEC)").await {
            tracing::warn!(error = %e, "async event configuration failed");
        }
    }

    let mut io = Vec::new();
    let want = if opts.is_discovery() {
        0
    } else {
        opts.nr_io_queues
    };
    if want > 0 {
        let sqe = SetFeaturesCmd {
            fid: FeatureId::NUMBER_OF_QUEUES,
            save: false,
            cdw11: NumberOfQueues {
                nsqr: want - 1,
                ncqr: want - 1,
            }
            .to_cdw11(),
        }
        .to_sqe();
        let c = admin_call(
            &admin,
            IoRequest::new(sqe),
            at,
            "Set Features (Number of Queues)",
        )
        .await?;
        let got = NumberOfQueues::from_dw0(c.dw0);
        let n = want.min(got.nsqr.min(got.ncqr).saturating_add(1));
        // sqsize ≤ CAP.MQES (0's based), and ≤ MAXCMD when set.
        let mqes = (cap & 0xFFFF) as u16;
        let mut qs = opts.queue_size.min(mqes.saturating_add(1));
        if id.maxcmd > 0 {
            qs = qs.min(id.maxcmd);
        }
        if qs != opts.queue_size {
            tracing::info!(
                queue_size = opts.queue_size,
                clamped = qs,
                "queue size clamped to the controller's limits"
            );
        }
        // In-capsule data on I/O queues: IOCCSZ × 16 − 64 (the SQE).
        let inline_max = (id.ioccsz.saturating_mul(16)).saturating_sub(64);
        for qid in 1..=n {
            let cfg = QueueConfig {
                qid,
                queue_size: qs,
                digests,
                inline_max,
                max_data_len: max_transfer,
            };
            let q = match open_queue(opts, connector, cfg, gen, sink).await {
                Ok(q) => q,
                Err(e) => {
                    io.iter().for_each(Conn::close);
                    return Err(e);
                }
            };
            io.push(q.clone());
            let req = connect_req(opts, qid, qs - 1, cntlid, 0);
            if let Err(e) = fabrics_connect(&q, req, at, opts, qid).await {
                io.iter().for_each(Conn::close);
                return Err(e);
            }
        }
    }
    Ok(Association {
        gen,
        admin,
        io,
        cntlid,
        id: Arc::new(id),
        cap,
        vs,
        max_transfer,
    })
}

/// Orderly shutdown: CC.SHN = normal, wait for CSTS.SHST complete (bounded), close.
pub(crate) async fn shutdown(a: &Association, timeout: Duration) {
    let at = timeout.min(Duration::from_secs(5));
    let cc = (CC_EN | CC_IOSQES_64 | CC_IOCQES_16 | CC_SHN_NORMAL) as u64;
    if prop_set(&a.admin, prop::CC, cc, at).await.is_ok() {
        let until = tokio::time::Instant::now() + at;
        while tokio::time::Instant::now() < until {
            match prop_get(&a.admin, prop::CSTS, false, at).await {
                Ok(v) if v as u32 & CSTS_SHST_MASK == CSTS_SHST_COMPLETE => break,
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(_) => break,
            }
        }
    }
    a.close();
}

/// A Keep Alive command.
pub(crate) fn keep_alive_req() -> IoRequest {
    IoRequest::new(nvmp_wire::admin::keep_alive_sqe())
}

/// An Asynchronous Event Request.
pub(crate) fn aer_req() -> IoRequest {
    IoRequest::new(nvmp_wire::admin::async_event_request_sqe())
}
