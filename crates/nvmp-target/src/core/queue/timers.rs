//! The queue's timers and wake-ups: keep-alive (admin queue), the stalled
//! PDU and connect deadlines, held replies, pending AENs, and closing when
//! the controller is torn down elsewhere.

use std::time::Instant;

use super::{Completion, Output, Queue};
use crate::core::tx::Sink;

impl Queue {
    /// Add this queue's counts to its port's counters.
    pub fn flush_counters(&mut self) {
        self.local.flush(&self.counters);
    }

    pub(super) fn poll_aens(&mut self, out: &mut dyn Sink) {
        let Some(b) = self.bound.clone() else { return };
        if b.qid != 0 {
            return;
        }
        let aens = {
            let mut st = self.shared.lock();
            crate::core::ccr::poll(&mut st, &b);
            st.take_aens(&b.subnqn, b.cntlid)
        };
        for (cid, dw0) in aens {
            self.complete(cid, Completion::dw0(dw0), out);
        }
    }

    /// The driver was woken (AEN pending, or the connection must close).
    pub fn poll(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        self.poll_into(now, &mut out);
        self.local.flush(&self.counters);
        out
    }

    /// [`Queue::poll`] into a sink.
    pub fn poll_into(&mut self, _now: Instant, out: &mut dyn Sink) {
        if self.signal.is_closed() {
            return self.close(out);
        }
        self.poll_aens(out);
    }

    /// The next time [`Queue::on_timer`] must run.
    pub fn next_deadline(&mut self, now: Instant) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        let mut min = |t: Instant| d = Some(d.map_or(t, |x| x.min(t)));
        if let Some(p) = self.partial_since {
            min(p + self.ctx.limits.pdu_stall_timeout);
        }
        if let Some(h) = self.held.front() {
            min(h.at);
        }
        if let Some(a) = self.auth_deadline() {
            min(a);
        }
        match &self.bound {
            None => min(self.created + self.ctx.limits.connect_timeout),
            // Keep-alive runs once the admin queue is authenticated (until
            // then the authentication deadline bounds it).
            Some(b) if b.qid == 0 && self.auth_gate().is_none() => {
                let mut st = self.shared.lock();
                if let Some(k) = st.check_kato(&b.subnqn, b.cntlid, now) {
                    min(k);
                } else if st.ctrl_mut(&b.subnqn, b.cntlid).is_none() {
                    min(now);
                }
            }
            Some(_) => {}
        }
        d
    }

    /// Timers: stalled PDU, connect timeout, keep-alive.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        self.on_timer_into(now, &mut out);
        out
    }

    /// [`Queue::on_timer`] into a sink.
    pub fn on_timer_into(&mut self, now: Instant, out: &mut dyn Sink) {
        if self.signal.is_closed() {
            return self.close(out);
        }
        self.release_held(now, out);
        if self.auth_timer(now, out) {
            return;
        }
        if let Some(p) = self.partial_since {
            if now >= p + self.ctx.limits.pdu_stall_timeout {
                tracing::warn!(
                    port = self.ctx.port,
                    peer = ?self.ctx.peer,
                    "peer stalled in the middle of a PDU, closing"
                );
                return self.close(out);
            }
        }
        match self.bound.clone() {
            None if now >= self.created + self.ctx.limits.connect_timeout => {
                tracing::warn!(port = self.ctx.port, peer = ?self.ctx.peer, "no ICReq/Connect in time, closing");
                self.close(out);
            }
            Some(b) if b.qid == 0 && self.auth_gate().is_none() => {
                let mut st = self.shared.lock();
                if st.check_kato(&b.subnqn, b.cntlid, now).is_none()
                    && st.ctrl_mut(&b.subnqn, b.cntlid).is_none()
                {
                    drop(st);
                    self.close(out);
                }
            }
            _ => {}
        }
    }
}
