//! The Unix control socket: one JSON request per line, one JSON response
//! per line.
//!
//! Requests (`op` selects the operation):
//! ```text
//! {"op":"status"}
//! {"op":"ana","port":1,"group":1,"state":"inaccessible"}
//! {"op":"port_down","port":1}            {"op":"port_up","port":1}
//! {"op":"fault","port":1,"delay_ms":100,"black_hole":false,"fail_next":{"count":3,"status":770,"dnr":false}}
//! {"op":"fault","port":1,"hold_ms":2000,"stall_ms":500}
//! {"op":"clear_faults","port":1}
//! {"op":"add_namespace","subsystem":"nqn…","namespace":{"nsid":3,"device":{"size":"16M"}}}
//! {"op":"remove_namespace","subsystem":"nqn…","nsid":3}
//! {"op":"link","port":2,"subsystem":"nqn…"}  {"op":"unlink","port":2,"subsystem":"nqn…"}
//! {"op":"set_dhchap","host":"nqn…","dhchap":{"key":"DHHC-1:…","ctrl_key":"…","hash":"hmac(sha384)","dhgroup":"ffdhe3072"}}
//! ```
//! Responses: `{"ok":true}` (with `"status":{…}` for `status`) or
//! `{"ok":false,"error":"…"}`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{ControlError, FailNext, Fault, TargetHandle, TargetStatus};
use crate::config::raw::RawNamespace;

/// Longest request line accepted.
const MAX_LINE: usize = 64 * 1024;

/// A control request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Status,
    Ana {
        port: u16,
        group: u32,
        state: String,
    },
    PortDown {
        port: u16,
    },
    PortUp {
        port: u16,
    },
    Fault {
        port: u16,
        #[serde(default)]
        delay_ms: Option<u64>,
        #[serde(default)]
        black_hole: Option<bool>,
        #[serde(default)]
        fail_next: Option<FailNext>,
        #[serde(default)]
        hold_ms: Option<u64>,
        #[serde(default)]
        stall_ms: Option<u64>,
    },
    ClearFaults {
        port: u16,
    },
    AddNamespace {
        subsystem: String,
        /// A namespace in nvmetcli's JSON shape.
        namespace: serde_json::Value,
    },
    RemoveNamespace {
        subsystem: String,
        nsid: u32,
    },
    Link {
        port: u16,
        subsystem: String,
    },
    Unlink {
        port: u16,
        subsystem: String,
    },
    /// Set a host's DH-HMAC-CHAP settings (`hosts[].dhchap`'s object; null removes them).
    SetDhchap {
        host: String,
        #[serde(default)]
        dhchap: Option<serde_json::Value>,
    },
}

/// A control response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TargetStatus>,
}

impl Response {
    fn from(r: Result<Option<TargetStatus>, ControlError>) -> Self {
        match r {
            Ok(status) => Response {
                ok: true,
                error: None,
                status,
            },
            Err(e) => Response {
                ok: false,
                error: Some(e.0),
                status: None,
            },
        }
    }
}

/// Apply one request to a target.
pub fn apply(h: &TargetHandle, req: Request) -> Response {
    let r = (|| -> Result<Option<TargetStatus>, ControlError> {
        match req {
            Request::Status => return Ok(Some(h.status())),
            Request::Ana { port, group, state } => {
                let s = state
                    .parse()
                    .map_err(|_| ControlError(format!("{state:?} is not an ANA state")))?;
                h.set_ana(port, group, s)?
            }
            Request::PortDown { port } => h.port_down(port)?,
            Request::PortUp { port } => h.port_up(port)?,
            Request::Fault {
                port,
                delay_ms,
                black_hole,
                fail_next,
                hold_ms,
                stall_ms,
            } => h.set_fault(
                port,
                Fault {
                    delay_ms,
                    black_hole,
                    fail_next,
                    hold_ms,
                    stall_ms,
                },
            )?,
            Request::ClearFaults { port } => h.clear_faults(port)?,
            Request::AddNamespace {
                subsystem,
                namespace,
            } => {
                let raw: RawNamespace = serde_json::from_value(namespace)
                    .map_err(|e| ControlError(format!("namespace: {e}")))?;
                let spec = crate::config::validate_namespace(&raw, "namespace")?;
                h.add_namespace(&subsystem, spec)?
            }
            Request::RemoveNamespace { subsystem, nsid } => h.remove_namespace(&subsystem, nsid)?,
            Request::Link { port, subsystem } => h.link(port, &subsystem)?,
            Request::Unlink { port, subsystem } => h.unlink(port, &subsystem)?,
            Request::SetDhchap { host, dhchap } => h.set_dhchap_json(&host, dhchap)?,
        }
        Ok(None)
    })();
    Response::from(r)
}

/// Serve the control socket at `path` until the task is dropped/aborted.
pub async fn serve(h: TargetHandle, path: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path)?;
    tracing::info!(path = %path.display(), "control socket listening");
    loop {
        let (s, _) = l.accept().await?;
        let h = h.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_one(h, s).await {
                tracing::debug!(error = %e, "control connection ended");
            }
        });
    }
}

async fn serve_one(h: TargetHandle, s: UnixStream) -> std::io::Result<()> {
    let (rd, mut wr) = s.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut rd).take(MAX_LINE as u64).read_line(&mut line).await?;
        if n == 0 {
            return Ok(());
        }
        let resp = match serde_json::from_str::<Request>(line.trim()) {
            // Off the runtime's workers: adding a populated RAM namespace
            // faults all of its memory in first (up to seconds per GiB).
            Ok(req) => {
                let h = h.clone();
                tokio::task::spawn_blocking(move || apply(&h, req))
                    .await
                    .unwrap_or_else(|e| Response {
                        ok: false,
                        error: Some(format!("request failed: {e}")),
                        status: None,
                    })
            }
            Err(e) => Response {
                ok: false,
                error: Some(format!("bad request: {e}")),
                status: None,
            },
        };
        let mut out = serde_json::to_vec(&resp).unwrap_or_default();
        out.push(b'\n');
        wr.write_all(&out).await?;
    }
}

/// Client side: send one request, read one response.
pub async fn request(path: &Path, req: &Request) -> anyhow::Result<Response> {
    let s = UnixStream::connect(path)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to control socket {}: {e}", path.display()))?;
    let (rd, mut wr) = s.into_split();
    let mut msg = serde_json::to_vec(req)?;
    msg.push(b'\n');
    wr.write_all(&msg).await?;
    let mut line = String::new();
    BufReader::new(rd).read_line(&mut line).await?;
    Ok(serde_json::from_str(line.trim())?)
}

use tokio::io::AsyncReadExt as _;
