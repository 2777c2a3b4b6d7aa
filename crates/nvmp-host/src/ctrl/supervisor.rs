//! The controller's life after the first connect: keep-alive and AER tasks
//! per association, and the reset → reconnect → (live | deleted) loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use nvmp_wire::admin::{AsyncEvent, AsyncEventType, GetLogPageCmd, LogPageId};
use nvmp_wire::StatusCode;
use tokio::sync::mpsc;

use super::connect::{self, aer_req, keep_alive_req, Association};
use super::state::{CtrlState, Reconnect};
use super::{Controller, CtrlEvent, Inner, SupMsg};
use crate::command::IoRequest;
use crate::keepalive::KeepAlive;

/// Spawn the keep-alive task and post the AERs of a fresh association.
pub(crate) fn start_tasks(inner: &Arc<Inner>, a: &Arc<Association>) {
    if let Some(ka) = KeepAlive::new(inner.opts.kato_ms) {
        tokio::spawn(keep_alive_loop(Arc::downgrade(inner), a.clone(), ka));
    }
    // Keep min(AERL + 1, max_aers) Asynchronous Event Requests outstanding.
    let n = (a.id.aerl as u16 + 1).min(inner.opts.max_aers as u16);
    for _ in 0..n {
        tokio::spawn(aer_loop(Arc::downgrade(inner), a.clone()));
    }
}

async fn keep_alive_loop(inner: Weak<Inner>, a: Arc<Association>, ka: KeepAlive) {
    let mut next = tokio::time::Instant::now() + ka.interval();
    loop {
        tokio::time::sleep_until(next).await;
        if a.admin.is_closed() {
            return;
        }
        let sent = tokio::time::Instant::now();
        next = sent + ka.interval();
        // The Keep Alive's deadline is KATO: its expiry fails the admin
        // queue, which resets the controller.
        let c = a.admin.submit(keep_alive_req(), Some(ka.kato())).await;
        if a.admin.is_closed() {
            return;
        }
        if !c.status.is_success() {
            let Some(inner) = inner.upgrade() else { return };
            let _ = inner.sup.send(SupMsg::Failed {
                gen: a.gen,
                reason: format!("keep-alive failed: {}", c.status),
            });
            return;
        }
        tracing::trace!(cntlid = a.cntlid, rtt = ?sent.elapsed(), "keep-alive");
    }
}

async fn aer_loop(inner: Weak<Inner>, a: Arc<Association>) {
    loop {
        // No deadline: an AER completes only when an event happens.
        let c = a.admin.submit(aer_req(), None).await;
        if !c.status.is_success() {
            if c.status.code != StatusCode::ABORTED_BY_HOST
                && c.status.code != StatusCode::HOST_PATHING_ERROR
            {
                tracing::warn!(cntlid = a.cntlid, status = %c.status, "AER failed, not reposted");
            }
            return;
        }
        let ev = AsyncEvent::from_dw0(c.dw0);
        let Some(inner) = inner.upgrade() else { return };
        tracing::info!(ctrl = %inner.name(), event = ?ev, "asynchronous event");
        let _ = inner.events.send(CtrlEvent::AsyncEvent(ev));
        if ev.event_type == AsyncEventType::NOTICE
            && ev.info == nvmp_wire::admin::NOTICE_NS_ATTR_CHANGED
        {
            // Read (and so clear) the Changed Namespace List.
            let sqe = GetLogPageCmd {
                lid: LogPageId::CHANGED_NS,
                nsid: 0xFFFF_FFFF,
                lsp: 0,
                rae: false,
                numd: 1024,
                lpo: 0,
                csi: 0,
            }
            .to_sqe();
            let t = Duration::from_millis(inner.opts.admin_timeout_ms);
            let r = a
                .admin
                .submit(IoRequest::with_read(sqe, 4096), Some(t))
                .await;
            if r.status.is_success() {
                let ids: Vec<u32> = r
                    .data
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .take_while(|&n| n != 0)
                    .collect();
                let _ = inner.events.send(CtrlEvent::ChangedNamespaces(ids));
            }
        }
    }
}

/// Runs until the controller is deleted.
pub(crate) async fn supervise(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<SupMsg>,
    gen: u64,
) {
    let gen = AtomicU64::new(gen);
    loop {
        let reason = match rx.recv().await {
            None => return,
            Some(SupMsg::Disconnect(done)) => {
                delete(&inner, "disconnect", None, true).await;
                let _ = done.send(());
                return;
            }
            Some(SupMsg::Failed { gen: g, reason }) => {
                if g != gen.load(Ordering::Relaxed) {
                    continue; // a queue of an association already gone
                }
                reason
            }
        };
        if !reset_and_reconnect(&inner, &mut rx, &gen, reason).await {
            return;
        }
    }
}

async fn delete(
    inner: &Arc<Inner>,
    reason: &str,
    status: Option<nvmp_wire::Status>,
    orderly: bool,
) {
    inner.set_state(CtrlState::Deleting);
    if let Some(a) = inner.take_assoc() {
        if orderly {
            connect::shutdown(&a, Duration::from_millis(inner.opts.admin_timeout_ms)).await;
        } else {
            a.close();
        }
    }
    *inner.dead_status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    inner.set_state(CtrlState::Dead);
    let _ = inner.events.send(CtrlEvent::Deleted {
        reason: reason.to_string(),
        status,
    });
}

/// Reset, then reconnect every reconnect_delay until success (true) or
/// until the policy gives up or a disconnect arrives (false).
async fn reset_and_reconnect(
    inner: &Arc<Inner>,
    rx: &mut mpsc::UnboundedReceiver<SupMsg>,
    gen: &AtomicU64,
    reason: String,
) -> bool {
    tracing::warn!(ctrl = %inner.name(), %reason, "resetting controller");
    inner.set_state(CtrlState::Resetting);
    Controller::count_reset(inner);
    if let Some(a) = inner.take_assoc() {
        a.close(); // in-flight commands complete with 0x371
    }
    let _ = inner.events.send(CtrlEvent::Reset { reason });
    inner.set_state(CtrlState::Connecting);
    let policy = inner.opts.reconnect_policy();
    if policy.max_reconnects() == Some(0) {
        // ctrl_loss_tmo 0: no reconnect at all.
        delete(inner, "connection lost and ctrl_loss_tmo is 0", None, false).await;
        return false;
    }
    let lost = tokio::time::Instant::now();
    let failfast_at = policy.fast_io_fail_tmo.map(|t| lost + t);
    let mut attempts = 0u64;
    let mut next = lost + policy.reconnect_delay;
    loop {
        // Wait for the next attempt; fast_io_fail may expire meanwhile.
        loop {
            let wake = match failfast_at {
                Some(f) if f < next && !inner.failfast() => f,
                _ => next,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {
                    if wake == next { break; }
                    tracing::warn!(ctrl = %inner.name(), "fast_io_fail_tmo expired: failing queued I/O");
                    inner.set_failfast(true);
                }
                m = rx.recv() => match m {
                    Some(SupMsg::Disconnect(done)) => {
                        delete(inner, "disconnect", None, false).await;
                        let _ = done.send(());
                        return false;
                    }
                    Some(SupMsg::Failed { .. }) => {}
                    None => return false,
                }
            }
        }
        attempts += 1;
        let g = gen.fetch_add(1, Ordering::Relaxed) + 1;
        match connect::establish(&inner.opts, &inner.connector, g, &inner.fail_sink()).await {
            Ok(a) => {
                let a = Arc::new(a);
                inner.install(a.clone());
                inner.set_failfast(false);
                inner.set_state(CtrlState::Live);
                tracing::info!(ctrl = %inner.name(), attempts, after = ?lost.elapsed(), "reconnected");
                start_tasks(inner, &a);
                return true;
            }
            Err(e) => {
                tracing::warn!(ctrl = %inner.name(), attempt = attempts, error = %e, "reconnect failed");
                let _ = inner.events.send(CtrlEvent::ReconnectFailed {
                    attempt: attempts,
                    error: e.to_string(),
                });
                if failfast_at.is_some_and(|f| tokio::time::Instant::now() >= f) {
                    inner.set_failfast(true);
                }
                match policy.after_failure(attempts, e.status()) {
                    Reconnect::RetryAfter(d) => next = tokio::time::Instant::now() + d,
                    Reconnect::GiveUp { dnr } => {
                        let why = match dnr {
                            Some(s) => format!("Connect rejected with DNR: {s}"),
                            None => format!("ctrl_loss_tmo: gave up after {attempts} attempts"),
                        };
                        tracing::error!(ctrl = %inner.name(), %why, "removing controller");
                        delete(inner, &why, dnr, false).await;
                        return false;
                    }
                }
            }
        }
    }
}
