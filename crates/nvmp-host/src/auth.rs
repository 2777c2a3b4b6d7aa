//! In-band authentication (DH-HMAC-CHAP, NVMe Base 2.0 8.13) of one queue,
//! run right after its Fabrics Connect: the protocol is
//! `nvmp_auth::HostAuth`; this moves its messages with Authentication Send
//! and Authentication Receive on the queue.
//!
//! When: the controller sets AUTHREQ.ATR in the Connect response
//! ("Authentication Required"), on the admin queue and on every I/O queue,
//! at every (re)connect. Without ATR the host goes on unauthenticated, as
//! Linux does, unless it holds a controller key (`--dhchap-ctrl-secret`):
//! then it insists, since it was asked to authenticate the controller.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nvmp_auth::{HostAuth, HostAuthConfig};
use nvmp_wire::auth::AuthCmd;

use crate::command::IoRequest;
use crate::conn::Conn;
use crate::error::HostError;
use crate::options::ControllerOptions;

/// Connect response DW0 bit 17, AUTHREQ.ATR.
pub const CONNECT_ATR: u32 = 1 << 17;
/// Allocation length of each Authentication Receive (Linux: 4096); the
/// largest message (ffdhe8192 challenge) is 16 + 64 + 1024 bytes.
pub const RECEIVE_LEN: u32 = 4096;

/// Transaction IDs: distinct per transaction of this process.
static NEXT_TID: AtomicU16 = AtomicU16::new(1);

/// The host's authentication settings from the controller options.
pub fn config(opts: &ControllerOptions) -> Option<Arc<HostAuthConfig>> {
    let secret = opts.dhchap_secret.clone()?;
    let mut cfg = HostAuthConfig::new(
        secret,
        opts.dhchap_ctrl_secret.clone(),
        opts.host.hostnqn.clone(),
        opts.subnqn.clone(),
    );
    if !opts.dhchap_dhgroups.is_empty() {
        cfg.groups = opts.dhchap_dhgroups.clone();
    }
    Some(Arc::new(cfg))
}

/// After a successful Connect with response DW0 `dw0`: authenticate if asked.
pub(crate) async fn after_connect(
    q: &Conn,
    opts: &ControllerOptions,
    qid: u16,
    dw0: u32,
    timeout: Duration,
) -> Result<(), HostError> {
    if dw0 & CONNECT_ATR == 0 {
        if opts.dhchap_ctrl_secret.is_some() {
            return Err(HostError::Auth(format!(
                "qid {qid}: a controller key was given but the controller does not require authentication, so it cannot prove itself"
            )));
        }
        return Ok(());
    }
    let Some(cfg) = config(opts) else {
        return Err(HostError::Auth(format!(
            "qid {qid}: the controller requires authentication and no DH-HMAC-CHAP secret was given (--dhchap-secret)"
        )));
    };
    authenticate(q, cfg, qid, timeout).await
}

/// A failed Authentication Send/Receive: a timeout, a connection the
/// controller closed, or the command's status.
fn failed(
    cmd: &str,
    what: &str,
    status: nvmp_wire::Status,
    t: Duration,
    took: Duration,
) -> HostError {
    if status.code != nvmp_wire::StatusCode::ABORTED_BY_HOST {
        return HostError::Auth(format!("{cmd} ({what}) failed: {status}"));
    }
    if took >= t {
        return HostError::Auth(format!("{cmd} ({what}): timed out after {t:?}"));
    }
    let mut e = format!("{cmd} ({what}): the controller closed the connection after {took:?}");
    if what == "success1" {
        // Linux nvmet (nvmet_execute_auth_receive) marks the controller
        // fatal before it completes the Authentication Receive that carries
        // its AUTH_Failure1, so the teardown can overtake the message.
        e.push_str(
            " instead of answering our response: it most likely refused it (a host key it does not accept); its AUTH_Failure1, if it sent one, was lost with the connection",
        );
    }
    HostError::Auth(e)
}

async fn send(q: &Conn, data: Vec<u8>, t: Duration, what: &str) -> Result<(), HostError> {
    let sqe = AuthCmd::send(data.len() as u32).to_sqe();
    let start = tokio::time::Instant::now();
    let c = q
        .submit(IoRequest::with_write(sqe, Bytes::from(data)), Some(t))
        .await;
    if c.status.is_success() {
        Ok(())
    } else {
        Err(failed(
            "Authentication Send",
            what,
            c.status,
            t,
            start.elapsed(),
        ))
    }
}

async fn receive(q: &Conn, t: Duration, what: &str) -> Result<Bytes, HostError> {
    let sqe = AuthCmd::receive(RECEIVE_LEN).to_sqe();
    let start = tokio::time::Instant::now();
    let c = q
        .submit(IoRequest::with_read(sqe, RECEIVE_LEN), Some(t))
        .await;
    if c.status.is_success() {
        Ok(c.data)
    } else {
        Err(failed(
            "Authentication Receive",
            what,
            c.status,
            t,
            start.elapsed(),
        ))
    }
}

/// Run one DH-HMAC-CHAP transaction on queue `qid` (also re-authentication).
pub(crate) async fn authenticate(
    q: &Conn,
    cfg: Arc<HostAuthConfig>,
    qid: u16,
    t: Duration,
) -> Result<(), HostError> {
    let tid = NEXT_TID.fetch_add(1, Ordering::Relaxed);
    let mut a = HostAuth::new(cfg, tid);
    send(q, a.negotiate(), t, "negotiate").await?;
    let challenge = receive(q, t, "challenge").await?;
    let reply = match a.on_challenge(&challenge) {
        Ok(r) => r,
        Err(e) => return Err(refuse(q, e, t, qid).await),
    };
    send(q, reply, t, "reply").await?;
    let s1 = receive(q, t, "success1").await?;
    match a.on_success1(&s1) {
        Ok(Some(s2)) => send(q, s2, t, "success2").await?,
        Ok(None) => {}
        Err(e) => return Err(refuse(q, e, t, qid).await),
    }
    let n = a.negotiated();
    if qid == 0 {
        tracing::info!(qid, hash = %n.hash, dhgroup = %n.group, bidirectional = n.bidirectional,
            "authenticated (DH-HMAC-CHAP)");
    } else {
        tracing::debug!(qid, hash = %n.hash, dhgroup = %n.group, "queue authenticated");
    }
    Ok(())
}

/// Tell the controller why (AUTH_Failure2) when the host is the one refusing.
async fn refuse(q: &Conn, e: nvmp_auth::AuthError, t: Duration, qid: u16) -> HostError {
    if let Some(f2) = e.failure2() {
        let _ = send(q, f2.to_vec(), t, "failure2").await;
    }
    tracing::warn!(qid, error = %e, "authentication failed");
    HostError::Auth(format!("qid {qid}: {e}"))
}

impl crate::Controller {
    /// Re-authenticate every queue of the live association ("re-authentication
    /// on request"): one new DH-HMAC-CHAP transaction per queue, while
    /// commands keep flowing. A failure is returned (and the controller's
    /// queues go on; the target decides whether to drop them).
    pub async fn reauthenticate(&self) -> Result<(), HostError> {
        let opts = self.options();
        let cfg = config(opts).ok_or_else(|| {
            HostError::InvalidArgument("no DH-HMAC-CHAP secret configured".into())
        })?;
        let a = self
            .inner
            .assoc()
            .ok_or_else(|| HostError::Closed("controller is not live".into()))?;
        let t = Duration::from_millis(opts.admin_timeout_ms);
        authenticate(&a.admin, cfg.clone(), 0, t).await?;
        for (i, q) in a.io.iter().enumerate() {
            authenticate(q, cfg.clone(), i as u16 + 1, t).await?;
        }
        Ok(())
    }
}
