//! Fencing a lost controller with Cross-Controller Reset (NVMe 2.3, TP8028
//! "Rapid Path Failure Recovery").
//!
//! A write torn down in flight may still execute on the controller that
//! lost its host ([`crate::disposition::WriteFence`]). Instead of waiting
//! for that controller's keep-alive timeout, the host asks another live
//! controller of the subsystem to reset it: "the controller processing the
//! command … shall ensure that … the impacted controller … does not
//! process any further commands" (Cross-Controller Reset). Once that is
//! confirmed — at once (IRS set in the completion) or later through the
//! Cross-Controller Reset log page — the write is resent safely.
//!
//! Where no controller offers CCR (CCRL 0, as Linux 6.12's nvmet) or the
//! reset cannot be confirmed, the write waits for the lost controller's
//! KATO plus its Command Quiesce Time (CQT): "the expected worst-case time
//! … for the controller to quiesce all outstanding commands after a Keep
//! Alive Timeout".
//!
//! One reset per lost controller instance (Controller ID, CIU, CIRN):
//! every write fenced on the same loss waits for the same attempt.
//!
//! A controller whose I/O queue stalled (completed nothing for the read
//! stall bound) with commands still in flight is reset the same way at
//! once ([`crate::monitor`]): its reads already went elsewhere, and its
//! writes are then torn down and resent without waiting for keep-alive to
//! notice a silent path.

use std::sync::Arc;

use nvmp_host::CtrlState;
use tokio::time::Instant;

use crate::path::{CtrlEntry, Path};

/// Controllers asked, at most, per lost instance.
const MAX_ASKED: usize = 2;

/// A controller instance as Identify Controller names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    pub cntlid: u16,
    pub ciu: u8,
    pub cirn: u64,
}

/// The fence state of one controller: the last instance reset for it.
#[derive(Debug, Default)]
pub struct CcrFence {
    /// The last instance a reset was confirmed for.
    last: tokio::sync::Mutex<Option<(Instance, bool)>>,
    /// The instance of the controller's last live association.
    live: std::sync::Mutex<Option<Instance>>,
}

impl CcrFence {
    /// The controller is live on a (new) association: remember its instance.
    pub fn record(&self, inst: Instance) {
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(inst);
    }
}

/// How a fenced write may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceOutcome {
    /// Another controller reset the lost one: resend now.
    Reset { by_cntlid: u16 },
    /// No confirmation: wait for KATO + CQT from the loss.
    Fallback,
}

impl Instance {
    /// The controller's current association, as its Identify data and the
    /// Connect response name it.
    pub fn current(ctrl: &nvmp_host::Controller) -> Self {
        let id = ctrl.id_ctrl();
        Instance {
            cntlid: ctrl.cntlid(),
            ciu: id.ciu,
            cirn: id.cirn,
        }
    }
}

/// The instance a fence names: the one recorded when the controller was
/// last seen live ([`CcrFence::record`], by the monitor). A write torn down
/// in flight belongs to that association even if the controller has since
/// reconnected (then the old instance is gone: the target answers "not
/// validated", which is the truth, and the new one is left alone).
fn instance_of(e: &CtrlEntry) -> Instance {
    let g = e.ccr.live.lock().unwrap_or_else(|p| p.into_inner());
    g.unwrap_or_else(|| Instance::current(&e.ctrl))
}

/// KATO + CQT of a lost controller: how long a write torn down on it is
/// held when no reset can be confirmed.
pub fn fallback_ms(e: &CtrlEntry, kato_fence_ms: u64) -> u64 {
    kato_fence_ms + u64::from(e.ctrl.id_ctrl().cqt)
}

/// Fence the controller of `lost` through another controller among those
/// of `paths`; returns by `deadline` at the latest.
pub async fn fence(paths: &[Arc<Path>], lost: &Arc<Path>, deadline: Instant) -> FenceOutcome {
    let others: Vec<Arc<CtrlEntry>> = paths.iter().map(|p| p.ctrl.clone()).collect();
    fence_ctrl(&others, &lost.ctrl, deadline).await
}

/// Fence `entry` through another controller among `others`.
pub async fn fence_ctrl(
    others: &[Arc<CtrlEntry>],
    entry: &Arc<CtrlEntry>,
    deadline: Instant,
) -> FenceOutcome {
    let inst = instance_of(entry);
    let mut g = entry.ccr.last.lock().await;
    // A reset already confirmed for this instance covers every later write
    // (an attempt that failed is tried again: another controller may be
    // live by now).
    if let Some((done, true)) = *g {
        if done == inst {
            return FenceOutcome::Reset {
                by_cntlid: u16::MAX,
            };
        }
    }
    let mut asked = 0;
    let mut outcome = FenceOutcome::Fallback;
    for other in others {
        if Arc::ptr_eq(other, entry)
            || other.ctrl.cntlid() == inst.cntlid
            || other.ctrl.state() != CtrlState::Live
            || !other.ctrl.id_ctrl().supports_ccr()
        {
            continue;
        }
        if asked == MAX_ASKED || Instant::now() >= deadline {
            break;
        }
        asked += 1;
        match tokio::time::timeout_at(deadline, reset_through(other, inst, deadline)).await {
            Ok(true) => {
                tracing::info!(ctrl = %entry.name, by = %other.name, cntlid = inst.cntlid, "lost controller reset by Cross-Controller Reset");
                outcome = FenceOutcome::Reset {
                    by_cntlid: other.cntlid(),
                };
                break;
            }
            Ok(false) => continue,
            Err(_) => break,
        }
    }
    if matches!(outcome, FenceOutcome::Reset { .. }) {
        *g = Some((inst, true));
    }
    outcome
}

/// Ask `via` to reset `inst`; true once the reset is confirmed
/// ([`nvmp_host::Controller::reset_instance`]: at once, or through the CCR
/// log and its notice; completed entries are removed from the log).
async fn reset_through(via: &CtrlEntry, inst: Instance, deadline: Instant) -> bool {
    let id = nvmp_host::ctrl::ccr::CcrIdentity {
        cntlid: inst.cntlid,
        ciu: inst.ciu,
        cirn: inst.cirn,
        ..Default::default()
    };
    let limit = deadline.saturating_duration_since(Instant::now());
    match via.ctrl.reset_instance(id, limit).await {
        Ok(w) if w.quiesced() => true,
        Ok(w) => {
            tracing::info!(via = %via.name, outcome = ?w, "Cross-Controller Reset not confirmed");
            false
        }
        Err(e) => {
            tracing::info!(via = %via.name, error = %e, "Cross-Controller Reset not sent");
            false
        }
    }
}
