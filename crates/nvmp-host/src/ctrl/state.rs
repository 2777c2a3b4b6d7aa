//! The controller state machine (as Linux's `nvme_change_ctrl_state`) and
//! the pure reconnect policy (`nvmf_should_reconnect`, fast_io_fail).

use std::fmt;
use std::time::Duration;

use nvmp_wire::Status;

/// Controller states, as Linux names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtrlState {
    New,
    Connecting,
    Live,
    Resetting,
    Deleting,
    DeletingNoIo,
    Dead,
}

impl CtrlState {
    const ALL: [CtrlState; 7] = [
        CtrlState::New,
        CtrlState::Connecting,
        CtrlState::Live,
        CtrlState::Resetting,
        CtrlState::Deleting,
        CtrlState::DeletingNoIo,
        CtrlState::Dead,
    ];
    /// The state as a small number (for an atomic mirror).
    pub(crate) fn as_u8(self) -> u8 {
        self as u8
    }
    pub(crate) fn from_u8(v: u8) -> CtrlState {
        Self::ALL
            .get(v as usize)
            .copied()
            .unwrap_or(CtrlState::Dead)
    }
    /// Linux's sysfs spelling.
    pub fn name(self) -> &'static str {
        match self {
            CtrlState::New => "new",
            CtrlState::Connecting => "connecting",
            CtrlState::Live => "live",
            CtrlState::Resetting => "resetting",
            CtrlState::Deleting => "deleting",
            CtrlState::DeletingNoIo => "deleting (no IO)",
            CtrlState::Dead => "dead",
        }
    }
    /// The controller may still (again) carry I/O: live, or on its way back.
    pub fn may_come_back(self) -> bool {
        matches!(
            self,
            CtrlState::New | CtrlState::Connecting | CtrlState::Live | CtrlState::Resetting
        )
    }
    /// Whether `self → to` is a legal transition (Linux's table).
    pub fn can_become(self, to: CtrlState) -> bool {
        use CtrlState::*;
        matches!(
            (self, to),
            (New | Resetting | Connecting, Live)
                | (New | Live, Resetting)
                | (New | Resetting, Connecting)
                | (New | Live | Resetting | Connecting, Deleting)
                | (Deleting, DeletingNoIo)
                | (Deleting | DeletingNoIo, Dead)
        )
    }
}

impl fmt::Display for CtrlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A state holder that validates and traces every transition.
#[derive(Debug, Clone)]
pub struct StateMachine {
    name: String,
    state: CtrlState,
}

impl StateMachine {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state: CtrlState::New,
        }
    }
    pub fn state(&self) -> CtrlState {
        self.state
    }
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }
    /// The one place states change. Returns the previous state when the
    /// transition is legal; refuses (and traces) it otherwise.
    pub fn set_state(&mut self, to: CtrlState) -> Option<CtrlState> {
        let from = self.state;
        if !from.can_become(to) {
            tracing::debug!(ctrl = %self.name, %from, %to, "refused controller state change");
            return None;
        }
        self.state = to;
        tracing::info!(ctrl = %self.name, %from, %to, "controller state");
        Some(from)
    }
}

/// What to do after a failed (re)connect attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// Try again after this delay.
    RetryAfter(Duration),
    /// Give up: delete the controller. `dnr` carries the status of a Connect
    /// rejected with Do Not Retry.
    GiveUp { dnr: Option<Status> },
}

/// The reconnect rules, as Linux's fabrics layer: retry every
/// `reconnect_delay`, at most `ctrl_loss_tmo / reconnect_delay` times
/// (rounded up; None = forever); never retry a Connect rejected with DNR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    pub reconnect_delay: Duration,
    pub ctrl_loss_tmo: Option<Duration>,
    pub fast_io_fail_tmo: Option<Duration>,
}

impl ReconnectPolicy {
    /// Maximum number of reconnect attempts (None: unbounded).
    pub fn max_reconnects(&self) -> Option<u64> {
        let tmo = self.ctrl_loss_tmo?;
        let d = self.reconnect_delay.as_millis().max(1);
        Some(tmo.as_millis().div_ceil(d) as u64)
    }

    /// Decide after attempt number `attempts` (1-based) failed with `status`
    /// (the Connect completion status, if the controller answered).
    pub fn after_failure(&self, attempts: u64, status: Option<Status>) -> Reconnect {
        // "DNR: … if the same command is re-submitted … expected to fail".
        if let Some(s) = status.filter(|s| s.dnr) {
            return Reconnect::GiveUp { dnr: Some(s) };
        }
        match self.max_reconnects() {
            Some(max) if attempts >= max => Reconnect::GiveUp { dnr: None },
            _ => Reconnect::RetryAfter(self.reconnect_delay),
        }
    }

    /// Whether queued and new commands fail fast, `since_loss` after the
    /// connection was lost.
    pub fn fast_io_failed(&self, since_loss: Duration) -> bool {
        self.fast_io_fail_tmo.is_some_and(|t| since_loss >= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvmp_wire::StatusCode;
    use CtrlState::*;

    #[test]
    fn transitions_as_linux() {
        let all = [
            New,
            Connecting,
            Live,
            Resetting,
            Deleting,
            DeletingNoIo,
            Dead,
        ];
        let legal: Vec<_> = all
            .iter()
            .flat_map(|a| all.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_become(*b))
            .collect();
        assert_eq!(legal.len(), 14);
        assert!(Live.can_become(Resetting));
        assert!(!Live.can_become(Connecting), "must reset first");
        assert!(!Dead.can_become(Live));
        assert!(!Connecting.can_become(Resetting));
        let mut m = StateMachine::new("t");
        assert_eq!(m.set_state(Connecting), Some(New));
        assert_eq!(m.set_state(Live), Some(Connecting));
        assert_eq!(m.set_state(Dead), None);
        assert_eq!(m.state(), Live);
    }

    #[test]
    fn reconnect_until_ctrl_loss_tmo() {
        let p = ReconnectPolicy {
            reconnect_delay: Duration::from_secs(10),
            ctrl_loss_tmo: Some(Duration::from_secs(600)),
            fast_io_fail_tmo: None,
        };
        assert_eq!(p.max_reconnects(), Some(60));
        assert_eq!(
            p.after_failure(59, None),
            Reconnect::RetryAfter(Duration::from_secs(10))
        );
        assert_eq!(p.after_failure(60, None), Reconnect::GiveUp { dnr: None });
        let forever = ReconnectPolicy {
            ctrl_loss_tmo: None,
            ..p
        };
        assert!(matches!(
            forever.after_failure(1_000_000, None),
            Reconnect::RetryAfter(_)
        ));
    }

    #[test]
    fn dnr_is_not_retried() {
        let p = ReconnectPolicy {
            reconnect_delay: Duration::from_secs(1),
            ctrl_loss_tmo: None,
            fast_io_fail_tmo: None,
        };
        let s = Status::new(StatusCode::CONNECT_INVALID_HOST).with_dnr();
        assert_eq!(
            p.after_failure(1, Some(s)),
            Reconnect::GiveUp { dnr: Some(s) }
        );
        let busy = Status::new(StatusCode::CONNECT_CONTROLLER_BUSY);
        assert!(matches!(
            p.after_failure(1, Some(busy)),
            Reconnect::RetryAfter(_)
        ));
    }

    #[test]
    fn fast_io_fail() {
        let p = ReconnectPolicy {
            reconnect_delay: Duration::from_secs(1),
            ctrl_loss_tmo: None,
            fast_io_fail_tmo: Some(Duration::from_secs(5)),
        };
        assert!(!p.fast_io_failed(Duration::from_secs(4)));
        assert!(p.fast_io_failed(Duration::from_secs(5)));
        let off = ReconnectPolicy {
            fast_io_fail_tmo: None,
            ..p
        };
        assert!(!off.fast_io_failed(Duration::from_secs(100_000)));
    }
}
