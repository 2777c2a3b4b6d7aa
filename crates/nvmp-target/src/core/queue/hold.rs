//! The *hold* fault (`Fault::hold_ms`): I/O commands of the port are
//! parked on arrival, before anything checks or runs them, and go on
//! `hold_ms` later as if they had just arrived — a command stuck in the
//! network or in the target. Released into a controller that was reset
//! meanwhile, they are refused at its fenced gate ([`crate::core::ccr`]):
//! that is what the Cross-Controller Reset tests prove. Parked commands
//! keep their queue slot, so the queue depth bounds them.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nvmp_wire::Sqe;

use super::Queue;
use crate::core::tx::Sink;

/// One parked command.
#[derive(Debug)]
pub(super) struct Held {
    pub at: Instant,
    sqe: Sqe,
    data: Bytes,
}

impl Queue {
    /// An I/O command: parked while the port holds I/O, else run.
    pub(super) fn execute_or_park(
        &mut self,
        sqe: Sqe,
        data: Bytes,
        now: Instant,
        out: &mut dyn Sink,
    ) {
        let hold_ms = self.faults.hold_ms.load(Ordering::Relaxed);
        if hold_ms > 0 || !self.held.is_empty() {
            // Behind parked commands too, so that order is kept.
            let at =
                (now + Duration::from_millis(hold_ms)).max(self.held.back().map_or(now, |h| h.at));
            self.held.push_back(Held { at, sqe, data });
            return;
        }
        self.execute_io(sqe, data, now, out);
    }

    /// Run the parked commands whose time came.
    pub(super) fn release_held(&mut self, now: Instant, out: &mut dyn Sink) {
        while self.held.front().is_some_and(|h| h.at <= now) {
            let Some(h) = self.held.pop_front() else {
                break;
            };
            self.execute_io(h.sqe, h.data, now, out);
            if self.is_closed() {
                self.held.clear();
                return;
            }
        }
    }
}
