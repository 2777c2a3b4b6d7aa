//! What the registry tells controllers: ANA changes, asynchronous events
//! (queued per controller, taken by its admin queue) and keep-alive expiry.

use std::time::Instant;

use nvmp_wire::admin::{aec, AsyncEvent, AsyncEventType, LogPageId};
use nvmp_wire::log::AnaState;

use super::{Ctrl, GroupState, State};

impl State {
    /// Change an ANA group's state on a port; AENs go to that port's controllers.
    pub fn set_ana(&mut self, port: u16, grpid: u32, state: AnaState) -> Result<(), String> {
        if grpid == 0 || grpid > crate::config::MAX_ANA_GROUPS {
            return Err(format!(
                "group {grpid} is not in 1..={}",
                crate::config::MAX_ANA_GROUPS
            ));
        }
        let p = self.ports.get_mut(&port).ok_or(format!("no port {port}"))?;
        p.ana_change_count += 1;
        let cc = p.ana_change_count;
        p.ana.insert(
            grpid,
            GroupState {
                state,
                change_count: cc,
            },
        );
        self.bump_io_epoch();
        tracing::info!(port, grpid, state = state.name(), "ANA state changed");
        let ev = AsyncEvent {
            event_type: AsyncEventType::NOTICE,
            info: nvmp_wire::admin::NOTICE_ANA_CHANGE,
            log_page: LogPageId::ANA,
        };
        self.post_to_ctrls(|disc, c| !disc && c.port == port, aec::ANA_CHANGE, ev);
        Ok(())
    }

    fn post_to_ctrls(&mut self, pick: impl Fn(bool, &Ctrl) -> bool, bit: u32, ev: AsyncEvent) {
        let mut wake = Vec::new();
        for s in self.subsystems.values_mut() {
            let disc = s.discovery;
            for c in s.ctrls.values_mut() {
                if pick(disc, c) && c.post_event(bit, ev) {
                    wake.push(c.admin_conn);
                }
            }
        }
        for id in wake {
            if let Some(ci) = self.conns.get(&id) {
                ci.signal.wake.notify_one();
            }
        }
    }

    /// Ports or links changed: bump the discovery generation and notify discovery controllers.
    pub fn discovery_changed(&mut self) {
        self.genctr += 1;
        self.bump_io_epoch();
        let ev = AsyncEvent {
            event_type: AsyncEventType::NOTICE,
            info: nvmp_wire::admin::NOTICE_DISCOVERY_LOG_CHANGE,
            log_page: LogPageId::DISCOVERY,
        };
        self.post_to_ctrls(|disc, _| disc, aec::DISCOVERY_LOG_CHANGE, ev);
    }

    /// A namespace was added/removed: changed-namespace list + NS attribute AEN.
    pub fn ns_changed(&mut self, nqn: &str, nsid: u32) {
        let ev = AsyncEvent {
            event_type: AsyncEventType::NOTICE,
            info: nvmp_wire::admin::NOTICE_NS_ATTR_CHANGED,
            log_page: LogPageId::CHANGED_NS,
        };
        self.bump_io_epoch();
        let mut wake = Vec::new();
        if let Some(s) = self.subsystems.get_mut(nqn) {
            for c in s.ctrls.values_mut() {
                c.changed_ns.insert(nsid);
                if c.post_event(aec::NS_ATTR_CHANGED, ev) {
                    wake.push(c.admin_conn);
                }
            }
        }
        for id in wake {
            if let Some(ci) = self.conns.get(&id) {
                ci.signal.wake.notify_one();
            }
        }
    }

    /// Pair pending events with outstanding AERs: (cid, dw0) completions to send.
    pub fn take_aens(&mut self, nqn: &str, cntlid: u16) -> Vec<(u16, u32)> {
        let mut out = Vec::new();
        if let Some(c) = self.ctrl_mut(nqn, cntlid) {
            while !c.aer_cids.is_empty() && !c.events.is_empty() {
                let (Some(cid), Some(dw0)) = (c.aer_cids.pop_front(), c.events.pop_front()) else {
                    break;
                };
                out.push((cid, dw0));
            }
        }
        out
    }

    /// Keep-alive: returns the deadline of a controller, or tears it down if
    /// it passed. `None` = no deadline (KATO 0 or controller gone).
    pub fn check_kato(&mut self, nqn: &str, cntlid: u16, now: Instant) -> Option<Instant> {
        let c = self.subsystems.get(nqn)?.ctrls.get(&cntlid)?;
        if c.kato_ms == 0 {
            return None;
        }
        let deadline = c.traffic.get() + std::time::Duration::from_millis(c.kato_ms as u64);
        if now >= deadline {
            tracing::warn!(subnqn = nqn, cntlid, hostnqn = %c.hostnqn, kato_ms = c.kato_ms, "keep-alive timeout");
            self.teardown_ctrl(nqn, cntlid, "keep-alive timeout");
            return None;
        }
        Some(deadline)
    }
}
