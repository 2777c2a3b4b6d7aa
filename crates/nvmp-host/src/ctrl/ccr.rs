//! Cross-Controller Reset (NVMe Base 2.3, TP8028 "Rapid Path Failure
//! Recovery"), the host's half: what a controller's Identify data says
//! (its instance identity, CCR support, CQT), the command itself sent to a
//! live controller of the same subsystem, and the CCR log page.
//!
//! The multipath fence uses it so: when controller A is lost with writes in
//! flight, take `A.ccr_identity()` (captured at the loss: a reconnect
//! replaces A's Identify data), pick a live controller B of the subsystem
//! whose `ccr_identity().supported()`, and call
//! `B.cross_controller_reset(a.cntlid, a.ciu, a.cirn)`:
//! - [`CcrOutcome::quiesced`]: A's instance is quiesced, its writes will
//!   never land: resend them at once;
//! - [`CcrOutcome::pending`]: the reset completes later; B sends the notice
//!   (`CtrlEvent::AsyncEvent` with [`NOTICE_CCR_COMPLETED`]) and
//!   [`Controller::ccr_log`] shows the entry (ICID, CIU) as Success;
//! - anything else (an error status, `Err`, a controller without CCR, as
//!   Linux 6.12's nvmet): fall back to waiting KATO + CQT.
//!
//! [`Controller::reset_instance`] does all of that and waits for a pending
//! reset (the notice, else polling the log), answering with [`CcrWait`].
//!
//! A reported "no such instance" (IRS with Validated clear: wrong CIU/CIRN,
//! the CNTLID gone or reused) means the instance named no longer exists;
//! nvmp's target reports it only once that instance has quiesced.

use std::time::Duration;

use nvmp_wire::admin::ccr::{CcrLog, CcrResult, CrossControllerResetCmd, CCR_LSP_RMC};
use nvmp_wire::admin::LogPageId;
use nvmp_wire::Status;

pub use nvmp_wire::admin::ccr::{CcrEntry, CcrStatus, AEC_CCR_COMPLETED, NOTICE_CCR_COMPLETED};

use super::{Controller, CtrlEvent};
use crate::command::IoRequest;
use crate::error::HostError;

/// A controller instance as Identify Controller describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CcrIdentity {
    pub cntlid: u16,
    /// Controller Instance Uniquifier.
    pub ciu: u8,
    /// Controller Instance Random Number.
    pub cirn: u64,
    /// Command Quiesce Time, ms (0 = not reported): how long the controller
    /// may take to quiesce its commands after a keep-alive timeout or other
    /// communication loss.
    pub cqt_ms: u16,
    /// CCRL: Cross-Controller Resets the controller runs at once (0 = none).
    pub ccr_limit: u8,
}

impl CcrIdentity {
    /// Whether the controller takes Cross-Controller Reset commands.
    pub fn supported(&self) -> bool {
        self.ccr_limit > 0
    }
}

/// The answer to a Cross-Controller Reset: an NVMe status is data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CcrOutcome {
    /// The completion status. Host-side statuses keep their meaning: 0x371
    /// (the admin connection was lost: the reset's fate is unknown).
    pub status: Status,
    /// Completion DW0 (meaningful on success).
    pub result: CcrResult,
}

impl CcrOutcome {
    /// Done: the impacted instance is quiesced (reset now, or — Validated
    /// clear — it no longer exists).
    pub fn quiesced(&self) -> bool {
        self.status.is_success() && self.result.irs
    }
    /// Accepted, completes later (log entry and notice).
    pub fn pending(&self) -> bool {
        self.status.is_success() && !self.result.irs
    }
}

/// How a Cross-Controller Reset ended, for a fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcrWait {
    /// The impacted instance is quiesced: none of its commands will land.
    /// `validated` clear: the instance named no longer existed.
    Quiesced { validated: bool },
    /// The controller refused the command (Invalid Opcode where CCR is not
    /// supported, CCR Limit Exceeded, …) or could not run it (0x371).
    Refused(Status),
    /// The log reported the reset Failed.
    Failed,
    /// The entry was gone before it was seen completed (another reader
    /// removed completed entries): fate unknown.
    Unknown,
    /// Not completed within the limit.
    TimedOut,
}

impl CcrWait {
    /// Whether the impacted controller's commands can be resent at once.
    pub fn quiesced(&self) -> bool {
        matches!(self, CcrWait::Quiesced { .. })
    }
}

/// Log poll interval while a reset is pending (in case a notice is missed).
const CCR_POLL: Duration = Duration::from_millis(50);

impl Controller {
    /// Reset `impacted` (captured when it was lost) through this controller
    /// and wait up to `limit` for the reset to complete. Only
    /// [`CcrWait::Quiesced`] allows resending the impacted controller's
    /// writes at once; every other answer means: fall back to KATO + CQT.
    /// A completed entry is removed from the log (RMC) once seen, which may
    /// remove another waiter's completed entry too: that waiter then gets
    /// [`CcrWait::Unknown`] (a fallback, never a wrong "quiesced").
    pub async fn reset_instance(
        &self,
        impacted: CcrIdentity,
        limit: Duration,
    ) -> Result<CcrWait, HostError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut events = self.events();
        let out = self
            .cross_controller_reset(impacted.cntlid, impacted.ciu, impacted.cirn)
            .await?;
        if out.quiesced() {
            return Ok(CcrWait::Quiesced {
                validated: out.result.validated,
            });
        }
        if !out.pending() {
            return Ok(CcrWait::Refused(out.status));
        }
        loop {
            let log = self.ccr_log(false).await?;
            let mine = log
                .entries
                .iter()
                .find(|e| e.icid == impacted.cntlid && e.ciu == impacted.ciu);
            let done = match mine {
                None => return Ok(CcrWait::Unknown),
                Some(e) if e.status == CcrStatus::SUCCESS => CcrWait::Quiesced {
                    validated: e.validated,
                },
                Some(e) if e.status == CcrStatus::IN_PROGRESS => {
                    // The notice, or the next poll.
                    let wait = tokio::time::timeout_at(
                        deadline.min(tokio::time::Instant::now() + CCR_POLL),
                        async {
                            loop {
                                match events.recv().await {
                                    Ok(CtrlEvent::AsyncEvent(ev))
                                        if ev.info == NOTICE_CCR_COMPLETED =>
                                    {
                                        return
                                    }
                                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                        std::future::pending::<()>().await
                                    }
                                    _ => {}
                                }
                            }
                        },
                    );
                    let _ = wait.await;
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(CcrWait::TimedOut);
                    }
                    continue;
                }
                Some(_) => CcrWait::Failed,
            };
            let _ = self.ccr_log(true).await;
            return Ok(done);
        }
    }

    /// This controller's instance identity and CCR capabilities, from the
    /// Identify data of the current (or last) association.
    pub fn ccr_identity(&self) -> CcrIdentity {
        let id = self.id_ctrl();
        CcrIdentity {
            cntlid: id.cntlid,
            ciu: id.ciu,
            cirn: id.cirn,
            cqt_ms: id.cqt,
            ccr_limit: id.ccrl,
        }
    }

    /// Ask this controller to reset controller `impacted_cntlid` of the same
    /// subsystem, named by its CIU and CIRN. `Err` only when the command
    /// could not be sent (not live); every completion is returned as data.
    pub async fn cross_controller_reset(
        &self,
        impacted_cntlid: u16,
        ciu: u8,
        cirn: u64,
    ) -> Result<CcrOutcome, HostError> {
        let sqe = CrossControllerResetCmd {
            icid: impacted_cntlid,
            ciu,
            cirn,
        }
        .to_sqe();
        let c = self.admin_submit(IoRequest::new(sqe)).await?;
        tracing::info!(ctrl = %self.name(), impacted_cntlid, status = %c.status, dw0 = c.dw0, "cross-controller reset");
        Ok(CcrOutcome {
            status: c.status,
            result: CcrResult::from_dw0(c.dw0),
        })
    }

    /// The Cross-Controller Reset log page (1Eh) of this controller;
    /// `remove_completed` (RMC) drops the completed entries once returned.
    pub async fn ccr_log(&self, remove_completed: bool) -> Result<CcrLog, HostError> {
        let lsp = if remove_completed { CCR_LSP_RMC } else { 0 };
        let b = self
            .get_log_page(LogPageId::CROSS_CONTROLLER_RESET, lsp, 0, 4096)
            .await?;
        CcrLog::decode(&b).map_err(|e| HostError::Malformed(format!("CCR log: {e}")))
    }
}
