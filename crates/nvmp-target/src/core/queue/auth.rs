//! In-band authentication on one queue (DH-HMAC-CHAP, NVMe Base 2.0 8.13):
//! the Connect response's AUTHREQ, Authentication Send/Receive, the gate
//! that refuses other commands until the queue is authenticated, and the
//! transaction timeout. The protocol itself is `nvmp_auth::CtrlAuth`.
//!
//! Which hosts: a host with a `dhchap` key in the configuration must
//! authenticate on every queue of every I/O subsystem (not the discovery
//! subsystem, as nvmet). Keys changed through the control socket apply to
//! new connections and to re-authentication of existing ones.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use nvmp_auth::ctrl::{CtrlAuth, CtrlAuthConfig, Event};
use nvmp_wire::auth::AuthCmd;
use nvmp_wire::{Sqe, StatusCode};

use super::{Bound, Completion, Exec, Queue};
use crate::core::state::State;
use crate::core::tx::Sink;

/// Connect response DW0 bit 17, AUTHREQ.ATR (authentication transaction
/// required): the host authenticates the queue before other commands.
pub const CONNECT_ATR: u32 = 1 << 17;

/// One queue's authentication.
pub(super) struct QueueAuth {
    auth: CtrlAuth,
    hostnqn: String,
    subnqn: Arc<str>,
    /// The first authentication must complete by then (or, after a
    /// failure, the host must have closed the queue by then).
    deadline: Option<Instant>,
    failed: bool,
}

/// The first authentication of a queue must complete within this time
/// (nvmet expires a transaction step after KATO, or 120 s without one; a
/// slow host computing ffdhe8192 needs seconds per step).
pub const AUTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// After a failed authentication the host gets this long to read the
/// failure and close the queue itself before the controller closes it
/// (closing at once could abort the failure's delivery on the host).
const CLOSE_AFTER_FAILURE: std::time::Duration = std::time::Duration::from_secs(1);

/// The settings a host must authenticate with on a subsystem, if any.
pub fn config_for(
    st: &State,
    subnqn: &str,
    hostnqn: &str,
    discovery: bool,
) -> Option<Arc<CtrlAuthConfig>> {
    if discovery {
        return None;
    }
    let d = st.dhchap.get(hostnqn)?;
    Some(Arc::new(CtrlAuthConfig {
        host_key: d.key.clone(),
        ctrl_key: d.ctrl_key.clone(),
        hash: d.hash,
        group: d.group,
        hostnqn: hostnqn.to_string(),
        subnqn: subnqn.to_string(),
    }))
}

/// After a successful Connect: require authentication (ATR) if the host has a key.
pub(super) fn on_connect(
    st: &State,
    b: &Bound,
    c: &mut Completion,
    now: Instant,
) -> Option<QueueAuth> {
    let hostnqn = st
        .subsystems
        .get(&*b.subnqn)
        .and_then(|s| s.ctrls.get(&b.cntlid))
        .map(|c| c.hostnqn.clone())
        .unwrap_or_default();
    config_for(st, &b.subnqn, &hostnqn, b.discovery).map(|cfg| {
        c.dw0 |= CONNECT_ATR;
        QueueAuth {
            auth: CtrlAuth::new(cfg),
            hostnqn,
            subnqn: b.subnqn.clone(),
            deadline: Some(now + AUTH_TIMEOUT),
            failed: false,
        }
    })
}

impl Queue {
    /// "Authentication Required": the queue needs authentication and is
    /// not authenticated; commands other than Authentication Send/Receive
    /// (and Disconnect) are refused.
    pub(super) fn auth_gate(&self) -> Option<Completion> {
        match &self.auth {
            Some(a) if !a.auth.is_authenticated() => {
                Some(Completion::err_dnr(StatusCode::AUTH_REQUIRED))
            }
            _ => None,
        }
    }

    /// When an unauthenticated queue must have authenticated.
    pub(super) fn auth_deadline(&self) -> Option<Instant> {
        self.auth.as_ref().and_then(|a| a.deadline)
    }

    /// The authentication deadline passed: close the queue.
    pub(super) fn auth_timer(&mut self, now: Instant, out: &mut dyn Sink) -> bool {
        let Some(a) = &self.auth else { return false };
        if a.deadline.is_some_and(|d| now >= d) {
            if a.failed {
                tracing::debug!(port = self.ctx.port, peer = ?self.ctx.peer, "closing the queue after failed authentication");
            } else {
                tracing::warn!(port = self.ctx.port, peer = ?self.ctx.peer, hostnqn = %a.hostnqn,
                    subnqn = %a.subnqn, qid = self.bound.as_ref().map_or(0, |b| b.qid),
                    "authentication failed: timed out, closing the queue");
            }
            self.close(out);
            return true;
        }
        false
    }

    /// Authentication Send / Receive.
    pub(super) fn auth_command(&mut self, sqe: &Sqe, data: &Bytes, now: Instant) -> Exec {
        let invalid = || Exec::Done(Completion::err_dnr(StatusCode::INVALID_FIELD));
        let Some(b) = self.bound.clone() else {
            return Exec::Done(Completion::err_dnr(StatusCode::COMMAND_SEQUENCE_ERROR));
        };
        let Ok(cmd) = AuthCmd::from_sqe(sqe) else {
            return invalid();
        };
        // SECP E9h, SPSP0 01h, SPSP1 01h: DH-HMAC-CHAP (else Invalid Field, as nvmet).
        if cmd.check_protocol().is_err() || cmd.len == 0 {
            return invalid();
        }
        if self.auth.is_none() {
            tracing::debug!(port = self.ctx.port, peer = ?self.ctx.peer, "authentication command but no key is configured for this host");
            return invalid();
        }
        let is_negotiate = !cmd.receive && data.len() >= 2 && data[0] == 0 && data[1] == 0;
        if is_negotiate {
            // Pick up keys changed at runtime for this transaction.
            let st = self.shared.lock();
            let a = self.auth.as_mut().expect("checked");
            if let Some(cfg) = config_for(&st, &a.subnqn, &a.hostnqn, false) {
                a.auth.set_config(cfg);
            }
        }
        let a = self.auth.as_mut().expect("checked");
        let (completion, event) = if cmd.receive {
            if cmd.len != sqe.dptr.length {
                return invalid();
            }
            match a.auth.on_receive(cmd.len) {
                Ok((msg, ev)) => (Completion::data(Bytes::from(msg)), ev),
                Err(need) => {
                    tracing::warn!(port = self.ctx.port, peer = ?self.ctx.peer, al = cmd.len, need, "Authentication Receive buffer too small");
                    return invalid();
                }
            }
        } else {
            if cmd.len as usize != data.len() {
                return invalid();
            }
            (Completion::ok(), a.auth.on_send(data))
        };
        let qid = b.qid;
        let (port, peer) = (self.ctx.port, self.ctx.peer);
        let (host, sub) = (a.hostnqn.clone(), a.subnqn.clone());
        match event {
            Event::None => Exec::Done(completion),
            Event::Authenticated => {
                a.deadline = None;
                if qid == 0 {
                    tracing::info!(port, peer = ?peer, hostnqn = %host, subnqn = %sub, cntlid = b.cntlid, "host authenticated (DH-HMAC-CHAP)");
                } else {
                    tracing::debug!(port, peer = ?peer, hostnqn = %host, qid, "queue authenticated");
                }
                if let Some(c) = self.shared.lock().ctrl_mut(&b.subnqn, b.cntlid) {
                    c.traffic.touch(now);
                }
                Exec::Done(completion)
            }
            Event::Failing { reason, detail } => {
                tracing::warn!(port, peer = ?peer, hostnqn = %host, subnqn = %sub, qid,
                    reason = %reason, "authentication failed: {detail}");
                Exec::Done(completion)
            }
            Event::Failed { reason, by_host } => {
                if by_host {
                    tracing::warn!(port, peer = ?peer, hostnqn = %host, subnqn = %sub, qid,
                        reason = %reason, "authentication failed: the host refused the controller (AUTH_Failure2)");
                }
                // The queue refuses everything but authentication from now
                // on; it closes (an admin queue with its controller) when
                // the host closes it or CLOSE_AFTER_FAILURE has passed.
                a.failed = true;
                a.deadline = Some(now + CLOSE_AFTER_FAILURE);
                Exec::Done(completion)
            }
        }
    }
}
