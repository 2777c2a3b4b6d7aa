//! Stalled queues: reads are not left on a connection that stopped
//! completing commands.
//!
//! A path can swallow commands without failing: the TCP connection stays
//! up (a black hole, a target stuck behind a dead backend) and only the
//! 30 s I/O timeout or keep-alive would notice. A read is idempotent, so
//! it need not wait for that: when a queue has had commands outstanding
//! and completed nothing for [`QueueCore::set_read_stall`]'s bound, its
//! reads are completed at once with Command Aborted By Host (00h/71h, a
//! path error: the multipath layer sends them down another path) and the
//! queue reports itself stalled until a response arrives.
//!
//! The retired commands keep their slots (so their CIDs are not reused
//! while the controller may still answer them) and their deadlines (so
//! a queue that never answers still times out and resets the
//! controller); a late response frees the slot and is dropped. Writes
//! are never retired: whether a write took effect is not known until the
//! controller answers or is fenced.
//!
//! Progress is sampled, not timed per command: the driver's timer checks
//! every half bound while commands are outstanding, so a stalled read
//! waits between one and one and a half bounds, and a busy queue costs
//! two timer wake-ups per bound, nothing per command.

use std::time::{Duration, Instant};

use nvmp_wire::{Status, StatusCode};

use super::QueueCore;
use crate::command::Completion;

/// The Read opcode (NVM command set): the only command retired.
const READ: u8 = 0x02;

#[derive(Debug, Default)]
pub(super) struct Stall {
    /// None: never retire.
    after: Option<Duration>,
    /// Responses received (any command, retired ones included).
    pub(super) responses: u64,
    /// When `responses` was last seen to change (or the queue became busy),
    /// and its value then.
    mark: Option<(Instant, u64)>,
    /// The last check found no progress for the whole bound.
    stalled: bool,
    /// Slots of retired reads freed by their late response since the
    /// driver last asked.
    pub(super) zombies_freed: usize,
    /// Reads retired since the driver last asked.
    retired_new: usize,
    /// Reads retired in all.
    retired_total: u64,
}

impl<T> QueueCore<T> {
    /// Retire reads from this queue when it completes nothing for `after`
    /// while commands are outstanding (None: never, the default).
    pub fn set_read_stall(&mut self, after: Option<Duration>) {
        self.stall.after = after.filter(|d| !d.is_zero());
        self.stall.mark = None;
        self.stall.stalled = false;
        // Make the driver poll soon, so that the bound applies to commands
        // already in flight.
        self.rearm = true;
    }

    /// The queue completed nothing for the bound and has not since.
    pub fn is_stalled(&self) -> bool {
        self.stall.stalled
            && self
                .stall
                .mark
                .is_some_and(|(_, seen)| seen == self.stall.responses)
    }

    /// Stalled with commands still waiting that were not retired (writes,
    /// flushes …): only resetting the controller frees them early.
    pub fn stalled_with_unretired(&self) -> bool {
        self.is_stalled()
            && self
                .slots
                .iter()
                .any(|(_, f)| f.deadline.is_some() && f.token.is_some())
    }

    /// Reads retired on this queue so far.
    pub fn reads_retired(&self) -> u64 {
        self.stall.retired_total
    }

    /// Slot accounting for the driver, since it last asked: (slots freed
    /// without a completion — late responses to retired reads; completions
    /// handed out that did not free a slot — the retired reads).
    pub fn take_slot_delta(&mut self) -> (usize, usize) {
        (
            std::mem::take(&mut self.stall.zombies_freed),
            std::mem::take(&mut self.stall.retired_new),
        )
    }

    /// Called by `poll_timeout`: sample progress, retire reads of a stalled
    /// queue; returns when to check again.
    pub(super) fn check_stall(&mut self, now: Instant) -> Option<Instant> {
        let after = self.stall.after?;
        if self.phase != super::Phase::Ready {
            return None;
        }
        // Commands that can make progress: with a deadline (not AERs) and
        // not already retired.
        let busy = self
            .slots
            .iter()
            .any(|(_, f)| f.deadline.is_some() && f.token.is_some());
        if !busy {
            self.stall.mark = None;
            self.stall.stalled = false;
            return None;
        }
        let half = after / 2;
        match self.stall.mark {
            Some((since, seen)) if seen == self.stall.responses => {
                if now.saturating_duration_since(since) >= after {
                    self.stall.stalled = true;
                    self.retire_reads();
                }
            }
            _ => {
                self.stall.mark = Some((now, self.stall.responses));
                self.stall.stalled = false;
            }
        }
        Some(now + half.max(Duration::from_millis(1)))
    }

    fn retire_reads(&mut self) {
        let cids: Vec<u16> = self
            .slots
            .iter()
            .filter(|(_, f)| f.opcode == READ && f.token.is_some())
            .map(|(cid, _)| cid)
            .collect();
        for cid in cids {
            let Some(f) = self.slots.get_mut(cid) else {
                continue;
            };
            let Some(token) = f.token.take() else {
                continue;
            };
            // Data already received is dropped with the command.
            f.single = None;
            f.assembled = None;
            self.done.push_back((
                token,
                Completion::with_status(Status::new(StatusCode::ABORTED_BY_HOST)),
            ));
            self.stall.retired_new += 1;
            self.stall.retired_total += 1;
        }
        if self.stall.retired_new > 0 {
            tracing::warn!(
                qid = self.cfg.qid,
                reads = self.stall.retired_new,
                "queue completed nothing for {:?}: its reads go down another path",
                self.stall.after.unwrap_or_default()
            );
        }
    }
}
