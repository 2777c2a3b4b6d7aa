//! Per-controller ANA bookkeeping: the group states last read from the ANA
//! log page, and the ANATT timer for groups in the change state.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nvmp_wire::log::{AnaLog, AnaState};

/// An ANA log page the host refuses (as Linux does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnaLogError {
    #[error("ANA log: group descriptor {index} has ANAGRPID 0")]
    ZeroGroupId { index: usize },
    #[error("ANA log: ANAGRPID {grpid} exceeds ANAGRPMAX {max}")]
    GroupIdTooLarge { grpid: u32, max: u32 },
    #[error("ANA log: ANAGRPID {grpid} has unknown state {state:#x}")]
    UnknownState { grpid: u32, state: u8 },
}

/// A namespace's ANA state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NsAnaChange {
    pub nsid: u32,
    pub grpid: u32,
    pub state: AnaState,
}

/// ANA state of one controller.
#[derive(Debug, Clone)]
pub struct AnaTracker {
    anatt: Duration,
    anagrpmax: u32,
    groups: HashMap<u32, AnaState>,
    ns_group: HashMap<u32, u32>,
    change_deadline: Option<Instant>,
    pub change_count: u64,
}

impl AnaTracker {
    /// `anatt_s` and `anagrpmax` from Identify Controller.
    pub fn new(anatt_s: u8, anagrpmax: u32) -> Self {
        Self {
            anatt: Duration::from_secs(anatt_s.max(1) as u64),
            anagrpmax,
            groups: HashMap::new(),
            ns_group: HashMap::new(),
            change_deadline: None,
            change_count: 0,
        }
    }

    /// Apply a freshly read ANA log. Returns the namespaces listed in it
    /// with their states. A log with an invalid descriptor is refused whole.
    pub fn apply(&mut self, log: &AnaLog, now: Instant) -> Result<Vec<NsAnaChange>, AnaLogError> {
        for (index, g) in log.groups.iter().enumerate() {
            if g.grpid == 0 {
                return Err(AnaLogError::ZeroGroupId { index });
            }
            if self.anagrpmax != 0 && g.grpid > self.anagrpmax {
                return Err(AnaLogError::GroupIdTooLarge {
                    grpid: g.grpid,
                    max: self.anagrpmax,
                });
            }
            if !matches!(g.state.0, 0x1..=0x4 | 0xF) {
                return Err(AnaLogError::UnknownState {
                    grpid: g.grpid,
                    state: g.state.0,
                });
            }
        }
        let mut out = Vec::new();
        for g in &log.groups {
            self.groups.insert(g.grpid, g.state);
            for &nsid in &g.nsids {
                self.ns_group.insert(nsid, g.grpid);
                out.push(NsAnaChange {
                    nsid,
                    grpid: g.grpid,
                    state: g.state,
                });
            }
        }
        self.change_count = log.change_count;
        // "ANATT: … the maximum amount of time … to transition ANA states".
        // Linux resets the controller when a group stays in change for
        // 2 × ANATT. Unlike Linux, which re-arms the timer on every log read,
        // the deadline is kept from the moment a group entered change, so
        // frequent re-reads cannot postpone the reset forever.
        let any_change = self.groups.values().any(|s| *s == AnaState::CHANGE);
        match (any_change, self.change_deadline) {
            (true, None) => self.change_deadline = Some(now + 2 * self.anatt),
            (false, _) => self.change_deadline = None,
            (true, Some(_)) => {}
        }
        Ok(out)
    }

    pub fn group_state(&self, grpid: u32) -> Option<AnaState> {
        self.groups.get(&grpid).copied()
    }

    /// The state of a namespace, by the group it was last listed in (or by `anagrpid` from Identify Namespace).
    pub fn ns_state(&self, nsid: u32, anagrpid: u32) -> Option<AnaState> {
        let g = self.ns_group.get(&nsid).copied().unwrap_or(anagrpid);
        self.group_state(g)
    }

    /// When the ANATT timer fires, if armed.
    pub fn deadline(&self) -> Option<Instant> {
        self.change_deadline
    }

    /// Has the ANATT timer expired? If so it is disarmed and the caller resets the controller.
    pub fn poll_expired(&mut self, now: Instant) -> bool {
        match self.change_deadline {
            Some(d) if now >= d => {
                self.change_deadline = None;
                true
            }
            _ => false,
        }
    }

    /// Forget everything (controller reset: the log is re-read on reconnect).
    pub fn clear(&mut self) {
        self.groups.clear();
        self.ns_group.clear();
        self.change_deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvmp_wire::log::AnaGroupDesc;

    fn log(groups: &[(u32, AnaState, &[u32])]) -> AnaLog {
        AnaLog {
            change_count: 1,
            groups: groups
                .iter()
                .map(|(g, s, ns)| AnaGroupDesc {
                    grpid: *g,
                    change_count: 1,
                    state: *s,
                    nsids: ns.to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn states_per_namespace() {
        let mut t = AnaTracker::new(10, 128);
        let now = Instant::now();
        let ch = t
            .apply(
                &log(&[
                    (1, AnaState::OPTIMIZED, &[1]),
                    (2, AnaState::INACCESSIBLE, &[2, 3]),
                ]),
                now,
            )
            .unwrap();
        assert_eq!(ch.len(), 3);
        assert_eq!(t.ns_state(1, 0), Some(AnaState::OPTIMIZED));
        assert_eq!(t.ns_state(3, 0), Some(AnaState::INACCESSIBLE));
        // RGO-style log without NSIDs: fall back to the namespace's ANAGRPID.
        t.apply(&log(&[(2, AnaState::OPTIMIZED, &[])]), now)
            .unwrap();
        assert_eq!(t.ns_state(2, 2), Some(AnaState::OPTIMIZED));
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn invalid_logs_refused() {
        let mut t = AnaTracker::new(10, 4);
        let now = Instant::now();
        assert_eq!(
            t.apply(&log(&[(0, AnaState::OPTIMIZED, &[1])]), now),
            Err(AnaLogError::ZeroGroupId { index: 0 })
        );
        assert_eq!(
            t.apply(&log(&[(5, AnaState::OPTIMIZED, &[1])]), now),
            Err(AnaLogError::GroupIdTooLarge { grpid: 5, max: 4 })
        );
        assert_eq!(
            t.apply(&log(&[(1, AnaState(7), &[1])]), now),
            Err(AnaLogError::UnknownState { grpid: 1, state: 7 })
        );
        assert_eq!(t.group_state(1), None, "a refused log changes nothing");
    }

    #[test]
    fn anatt_timer_arms_holds_and_expires() {
        let mut t = AnaTracker::new(10, 128);
        let t0 = Instant::now();
        t.apply(&log(&[(1, AnaState::CHANGE, &[1])]), t0).unwrap();
        assert_eq!(t.deadline(), Some(t0 + Duration::from_secs(20)));
        // A re-read while still in change does not postpone the deadline.
        t.apply(
            &log(&[(1, AnaState::CHANGE, &[1])]),
            t0 + Duration::from_secs(15),
        )
        .unwrap();
        assert_eq!(t.deadline(), Some(t0 + Duration::from_secs(20)));
        assert!(!t.poll_expired(t0 + Duration::from_secs(19)));
        assert!(t.poll_expired(t0 + Duration::from_secs(20)));
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn leaving_change_disarms() {
        let mut t = AnaTracker::new(3, 128);
        let t0 = Instant::now();
        t.apply(&log(&[(1, AnaState::CHANGE, &[1])]), t0).unwrap();
        t.apply(
            &log(&[(1, AnaState::OPTIMIZED, &[1])]),
            t0 + Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(t.deadline(), None);
        assert!(!t.poll_expired(t0 + Duration::from_secs(100)));
    }
}
