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
use std::time::Duration;

use nvmp_host::{CtrlState, IoRequest};
use nvmp_wire::admin::ccr::{
    CcrLog, CcrResult, CcrStatus, CrossControllerResetCmd, CCR_ENTRY_LEN, CCR_LOG_HEADER_LEN,
};
use nvmp_wire::admin::LogPageId;
use tokio::time::Instant;

use crate::path::{CtrlEntry, Path};

/// How often the CCR log is read while a reset is in progress.
const LOG_POLL: Duration = Duration::from_millis(20);
/// Controllers asked, at most, per lost instance.
const MAX_ASKED: usize = 2;
/// Entries of the CCR log read (bounded; the log keeps few).
const LOG_ENTRIES_READ: usize = 32;

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
}

/// How a fenced write may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceOutcome {
    /// Another controller reset the lost one: resend now.
    Reset { by_cntlid: u16 },
    /// No confirmation: wait for KATO + CQT from the loss.
    Fallback,
}

fn instance_of(e: &CtrlEntry) -> Instance {
    let id = e.ctrl.id_ctrl();
    Instance {
        cntlid: e.cntlid,
        ciu: id.ciu,
        cirn: id.cirn,
    }
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
            || other.cntlid == inst.cntlid
            || other.ctrl.state() != CtrlState::Live
            || !other.ctrl.id_ctrl().supports_ccr()
        {
            continue;
        }
        if asked == MAX_ASKED || Instant::now() >= deadline {
            break;
        }
        asked += 1;
        match tokio::time::timeout_at(deadline, reset_through(other, inst)).await {
            Ok(true) => {
                tracing::info!(ctrl = %entry.name, by = %other.name, cntlid = inst.cntlid, "lost controller reset by Cross-Controller Reset");
                outcome = FenceOutcome::Reset {
                    by_cntlid: other.cntlid,
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

/// Ask `via` to reset `inst`; true once the reset is confirmed.
async fn reset_through(via: &CtrlEntry, inst: Instance) -> bool {
    let cmd = CrossControllerResetCmd {
        icid: inst.cntlid,
        ciu: inst.ciu,
        cirn: inst.cirn,
    };
    let c = via.ctrl.admin(IoRequest::new(cmd.to_sqe())).await;
    if !c.status.is_success() {
        tracing::info!(via = %via.name, status = %c.status, "Cross-Controller Reset refused");
        return false;
    }
    let r = CcrResult::from_dw0(c.dw0);
    if r.irs {
        // Reset before the command completed; not validated means no such
        // instance exists any more (it was torn down already): either way
        // nothing of it can execute now.
        return true;
    }
    // Completes later: the log page reports it.
    let len = (CCR_LOG_HEADER_LEN + LOG_ENTRIES_READ * CCR_ENTRY_LEN) as u32;
    loop {
        tokio::time::sleep(LOG_POLL).await;
        let Ok(b) = via
            .ctrl
            .get_log_page(LogPageId::CROSS_CONTROLLER_RESET, 0, 0, len)
            .await
        else {
            return false;
        };
        let Ok(log) = CcrLog::decode(&b) else {
            return false;
        };
        let e = log
            .entries
            .iter()
            .find(|e| e.icid == inst.cntlid && e.ciu == inst.ciu);
        match e.map(|e| e.status) {
            Some(CcrStatus::SUCCESS) => return true,
            Some(CcrStatus::IN_PROGRESS) => {}
            // Failed, or no entry: not confirmed.
            _ => return false,
        }
    }
}
