//! The control socket of a running `nvmp nbd`: one JSON request per line,
//! one JSON response per line.
//!
//! Requests: `{"cmd":"status"}`, `{"cmd":"set-iopolicy","iopolicy":"round-robin"}`
//! (optionally `"subsystem": NQN`), and the reservation commands on the
//! exporting host's own paths: `{"cmd":"resv-register","nrkey":1}`,
//! `resv-acquire`, `resv-release`, `resv-report` (fields as the CLI flags,
//! see [`crate::cmd::resv::ResvRequest`]; a report comes back in `resv`). Responses: `{"ok":true, …}` or
//! `{"ok":false,"error":"…"}`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use nvmp_mpath::stats::SubsysSnapshot;
use nvmp_mpath::{IoPolicy, Multipath};
use nvmp_nbd::ExportStats;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::cmd::resv::{ResvOp, ResvRequest};

/// What the control socket and the metrics endpoint read.
#[derive(Clone)]
pub struct State {
    pub mp: Multipath,
    pub hostnqn: String,
    pub hostid: String,
    pub nbd: Arc<dyn Fn() -> ExportStats + Send + Sync>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    SetIopolicy {
        iopolicy: String,
        #[serde(default)]
        subsystem: Option<String>,
    },
    ResvRegister(crate::cmd::resv::ResvRequest),
    ResvAcquire(crate::cmd::resv::ResvRequest),
    ResvRelease(crate::cmd::resv::ResvRequest),
    ResvReport(crate::cmd::resv::ResvRequest),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NbdCounters {
    pub connections_active: u64,
    pub connections_total: u64,
    pub requests: u64,
    pub reads: u64,
    pub writes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub errors: u64,
}

impl From<ExportStats> for NbdCounters {
    fn from(s: ExportStats) -> Self {
        Self {
            connections_active: s.connections_active,
            connections_total: s.connections_total,
            requests: s.requests,
            reads: s.reads,
            writes: s.writes,
            bytes_read: s.bytes_read,
            bytes_written: s.bytes_written,
            errors: s.errors,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub hostnqn: String,
    #[serde(default)]
    pub hostid: String,
    #[serde(default)]
    pub subsystems: Vec<SubsysSnapshot>,
    #[serde(default)]
    pub nbd: Option<NbdCounters>,
    /// A reservation report (nvme-cli's JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resv: Option<serde_json::Value>,
}

fn apply(st: &State, req: Request) -> Response {
    let mut r = Response {
        ok: true,
        error: None,
        hostnqn: st.hostnqn.clone(),
        hostid: st.hostid.clone(),
        subsystems: vec![],
        nbd: None,
        resv: None,
    };
    if let Request::SetIopolicy {
        iopolicy,
        subsystem,
    } = req
    {
        let p: IoPolicy = match iopolicy.parse() {
            Ok(p) => p,
            Err(e) => {
                return Response {
                    ok: false,
                    error: Some(format!("{e}")),
                    ..r
                }
            }
        };
        let mut n = 0;
        for s in st.mp.subsystems() {
            if subsystem
                .as_ref()
                .is_none_or(|x| *x == s.nqn || *x == s.name)
            {
                s.set_iopolicy(p);
                n += 1;
            }
        }
        if n == 0 {
            return Response {
                ok: false,
                error: Some(format!("no subsystem {}", subsystem.unwrap_or_default())),
                ..r
            };
        }
    }
    r.subsystems = st.mp.snapshot();
    r.nbd = Some((st.nbd)().into());
    r
}

async fn client(s: UnixStream, st: State) -> std::io::Result<()> {
    let (rd, mut wr) = s.into_split();
    let mut lines = BufReader::new(rd.take(1 << 20)).lines();
    while let Some(line) = lines.next_line().await? {
        let resp = match serde_json::from_str::<Request>(&line) {
            Ok(req) => match resv_op(&req) {
                Some((op, r)) => resv_apply(&st, op, r).await,
                None => apply(&st, req),
            },
            Err(e) => Response {
                ok: false,
                error: Some(format!("bad request: {e}")),
                hostnqn: String::new(),
                hostid: String::new(),
                subsystems: vec![],
                nbd: None,
                resv: None,
            },
        };
        let mut out = serde_json::to_vec(&resp).unwrap_or_default();
        out.push(b'\n');
        wr.write_all(&out).await?;
    }
    Ok(())
}

fn resv_op(req: &Request) -> Option<(ResvOp, &ResvRequest)> {
    match req {
        Request::ResvRegister(r) => Some((ResvOp::Register, r)),
        Request::ResvAcquire(r) => Some((ResvOp::Acquire, r)),
        Request::ResvRelease(r) => Some((ResvOp::Release, r)),
        Request::ResvReport(r) => Some((ResvOp::Report, r)),
        _ => None,
    }
}

async fn resv_apply(st: &State, op: ResvOp, r: &ResvRequest) -> Response {
    let (ok, error, resv) = match crate::cmd::resv::control(&st.mp, op, r).await {
        Ok(v) => (true, None, v),
        Err(e) => (false, Some(e), None),
    };
    Response {
        ok,
        error,
        hostnqn: st.hostnqn.clone(),
        hostid: st.hostid.clone(),
        subsystems: vec![],
        nbd: None,
        resv,
    }
}

pub async fn serve(l: UnixListener, st: State) {
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                tokio::spawn(client(s, st.clone()));
            }
            Err(e) => {
                tracing::warn!("control socket: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Send one request to a control socket.
pub async fn request(path: &Path, req: &Request) -> Result<Response> {
    let s = UnixStream::connect(path)
        .await
        .map_err(|e| anyhow!("control socket {}: {e}", path.display()))?;
    let (rd, mut wr) = s.into_split();
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    wr.write_all(&line).await?;
    let mut lines = BufReader::new(rd).lines();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
        .await
        .map_err(|_| anyhow!("control socket {}: no answer", path.display()))??
        .with_context(|| {
            format!(
                "control socket {}: closed without an answer",
                path.display()
            )
        })?;
    let r: Response = serde_json::from_str(&resp)
        .map_err(|e| anyhow!("control socket {}: bad answer: {e}", path.display()))?;
    if !r.ok {
        bail!("{}", r.error.unwrap_or_else(|| "request failed".into()));
    }
    Ok(r)
}
