//! One task per linked controller: follows its state, its asynchronous
//! events and its ANATT timer, and keeps the paths through it current.

use std::sync::Arc;
use std::time::Duration;

use nvmp_host::{CtrlEvent, CtrlState};
use nvmp_wire::admin::{AsyncEventType, NOTICE_ANA_CHANGE, NOTICE_NS_ATTR_CHANGED};

use crate::path::CtrlEntry;
use crate::registry::WeakMultipath;
use crate::subsys::Subsystem;

fn wake_all(sub: &Subsystem) {
    for h in sub.heads().values() {
        h.changed();
    }
}

/// Ends when the controller goes away, or when the registry does (`mp`
/// is weak: the monitor must not keep the registry alive).
pub(crate) async fn run(weak: WeakMultipath, sub: Arc<Subsystem>, entry: Arc<CtrlEntry>) {
    let mut state_rx = entry.ctrl.watch_state();
    let mut events = entry.ctrl.events();
    let mut last = *state_rx.borrow();
    loop {
        let deadline = entry
            .ana
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .deadline();
        let anatt = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = state_rx.changed() => {
                let Some(mp) = weak.upgrade() else { return };
                if changed.is_err() {
                    mp.unlink(&sub, &entry);
                    wake_all(&sub);
                    return;
                }
                let now = *state_rx.borrow_and_update();
                if now == last {
                    continue;
                }
                tracing::info!(ctrl = %entry.name, from = %last, to = %now, "path controller state");
                last = now;
                match now {
                    CtrlState::Live => {
                        entry.ccr.record(crate::ccr::Instance::current(&entry.ctrl));
                        // After a reconnect: the ANA log and the namespaces may have changed.
                        entry.ana.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        if entry.ana_supported {
                            if let Err(e) = mp.reread_ana(&sub, &entry).await {
                                tracing::warn!(ctrl = %entry.name, "ANA log after reconnect: {e}");
                            }
                        }
                        if let Err(e) = mp.scan(&sub, &entry, false).await {
                            tracing::warn!(ctrl = %entry.name, "namespace scan after reconnect: {e}");
                        }
                    }
                    CtrlState::Dead | CtrlState::Deleting | CtrlState::DeletingNoIo => {
                        mp.unlink(&sub, &entry);
                        wake_all(&sub);
                        return;
                    }
                    _ => {}
                }
                wake_all(&sub);
            }
            ev = events.recv() => {
                let Some(mp) = weak.upgrade() else { return };
                match ev {
                    Ok(CtrlEvent::AsyncEvent(aen)) if aen.event_type == AsyncEventType::NOTICE => {
                        if aen.info == NOTICE_ANA_CHANGE {
                            tracing::info!(ctrl = %entry.name, "ANA change event");
                            if let Err(e) = mp.reread_ana(&sub, &entry).await {
                                tracing::warn!(ctrl = %entry.name, "ANA log: {e}");
                            }
                        } else if aen.info == NOTICE_NS_ATTR_CHANGED {
                            tracing::info!(ctrl = %entry.name, "namespace attribute changed event");
                            if let Err(e) = mp.scan(&sub, &entry, true).await {
                                tracing::warn!(ctrl = %entry.name, "namespace scan: {e}");
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(ctrl = %entry.name, "missed {n} controller events; re-reading ANA log");
                        if entry.ana_supported {
                            let _ = mp.reread_ana(&sub, &entry).await;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        // The controller is gone; state_rx reports it.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            _ = entry.ana_reread.notified() => {
                let Some(mp) = weak.upgrade() else { return };
                if entry.ana_supported && entry.ctrl.state() == CtrlState::Live {
                    if let Err(e) = mp.reread_ana(&sub, &entry).await {
                        tracing::warn!(ctrl = %entry.name, "ANA log re-read: {e}");
                    }
                }
            }
            _ = entry.ctrl.stall_changed() => {
                // Whether its paths serve changed: heads choose again
                // (their threads' service-time runs end).
                wake_all(&sub);
            }
            _ = entry.ctrl.stalled() => {
                // A queue completed nothing for the read stall bound. Its
                // reads went elsewhere; commands still outstanding (writes)
                // would wait for keep-alive to notice: have another
                // controller reset this one (CCR) so they are torn down
                // and resent now.
                if entry.ctrl.is_stalled() && entry.ctrl.state() == CtrlState::Live
                {
                    let others = sub.ctrls.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let e2 = entry.clone();
                    let bound = Duration::from_millis(u64::from(entry.ctrl.options().kato_ms.max(1_000)));
                    tokio::spawn(async move {
                        let deadline = tokio::time::Instant::now() + bound;
                        if let crate::ccr::FenceOutcome::Reset { .. } =
                            crate::ccr::fence_ctrl(&others, &e2, deadline).await
                        {
                            tracing::warn!(ctrl = %e2.name, "stalled controller with commands in flight reset through another controller");
                        }
                    });
                }
            }
            _ = anatt => {
                let expired = entry.ana.lock().unwrap_or_else(|e| e.into_inner()).poll_expired(tokio::time::Instant::now().into_std());
                if expired {
                    tracing::warn!(ctrl = %entry.name, "ANA group still in change after 2 x ANATT - resetting controller");
                    entry.ctrl.reset();
                }
            }
        }
    }
}
