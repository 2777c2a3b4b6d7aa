//! `service-time`'s choice, kept for a short run of commands.
//!
//! Ranking every path (its ANA word, its controller's depth, its estimate)
//! for every command cost ~100 instructions over two paths, about 1 % of a
//! whole 4 KiB read (host and target). A ranking also says how far the
//! winner stays the winner: with the other paths as they were ranked, the
//! winner keeps the lowest expected completion time while its depth is at
//! most some `limit` ([`limit`]). So each thread keeps, per head, the path
//! it chose with that limit, and sends its next commands there while
//!
//! - no timed command came since the ranking, on this thread (the run
//!   holds the thread's count of timed commands, [`Run::next`]'s `epoch`):
//!   a timed command ranks afresh (it is also when a path due a probe gets
//!   one), and one comes every [`crate::latency::SAMPLE_PERIOD_MAX`]
//!   commands at most and about every millisecond: this bounds how late a
//!   change elsewhere is seen;
//! - the head's path list keeps its version: a list replaced (a path added
//!   or removed) or [`crate::path::PathList::bump`]ed (by
//!   [`crate::NamespaceHead::changed`]: an ANA state read, an ANA error
//!   pending, a controller's state or a queue stall changed) ends the
//!   thread's runs on it ([`crate::local`]);
//! - the command has the size class of the ranking (estimates are per
//!   class), and
//! - the path's depth is at most the limit: a path that filled up to its
//!   share is never sent more on the strength of an old ranking; and a run
//!   takes its path at most `1 + depth / 8` commands deeper than it was
//!   when ranked ([`step_limit`]): the runner-up drains meanwhile, and a
//!   limit against its old rank alone would let runs on two loaded paths
//!   swing wider and wider.
//!
//! Any of these failing ranks again. At queue depth 1 a run lasts until
//! the thread's next timed command; on a loaded pair of equal paths a run
//! ends after a command or two, and the choice is close to per command as
//! before. The limit has a slack of 1/8 of itself (none below depth 8), so
//! that paths in balance do not re-rank on every command for a
//! one-command edge.
//!
//! A run reads nothing of its path but its depth. What else may make the
//! path unusable reaches the run through the list's version, as soon as
//! the head is told ([`crate::NamespaceHead::changed`]); a controller that
//! left the live state meanwhile does not queue the command (it comes back
//! not sent, and the head chooses again), and a queue that stalled
//! meanwhile fills past the run's limit within `1 + depth / 8` commands.
//! (Checking the ANA word and the controller's state and stall flags per
//! command cost ~20 of the head's ~120 instructions per command over two
//! paths.)

use std::cell::Cell;
use std::sync::Arc;

use crate::latency::{Ranked, Timing, MAX_RANK_DEPTH, NON_OPTIMIZED_RANK};
use crate::path::Path;

/// One thread's run on one head's path list, in place in the thread's
/// entry for the list ([`crate::local`]; cells: a command in a run only
/// reads it).
#[derive(Debug)]
pub struct Run {
    /// The thread's count of timed commands when the run started (0: no
    /// run): the run ends at the thread's next timed command.
    epoch: Cell<u64>,
    path: Cell<u8>,
    class: Cell<u8>,
    /// The deepest the path may be for the run to go on.
    limit: Cell<u32>,
}

impl Run {
    /// No run.
    pub const fn new() -> Run {
        Run {
            epoch: Cell::new(0),
            path: Cell::new(0),
            class: Cell::new(0),
            limit: Cell::new(0),
        }
    }

    /// The run's path for this command, if the run holds (module docs):
    /// `epoch` is the thread's count of timed commands, this one included.
    #[inline(always)]
    pub fn next(&self, paths: &[Arc<Path>], tm: &Timing, epoch: u64) -> Option<usize> {
        if self.epoch.get() != epoch {
            self.epoch.set(0);
            return None;
        }
        let i = self.path.get() as usize;
        let holds = tm.class() == self.class.get()
            && paths
                .get(i)
                .is_some_and(|p| p.depth() <= self.limit.get() as u64);
        if holds {
            Some(i)
        } else {
            self.epoch.set(0);
            None
        }
    }

    /// Start a run on `r`'s winner (chosen by a full ranking for a
    /// command of class `tm.class()`, with the thread's count of timed
    /// commands at `epoch`, never 0); a probe starts none.
    #[inline]
    pub fn start(&self, paths: &[Arc<Path>], r: &Ranked, tm: &Timing, epoch: u64) {
        if r.best_probe || r.best >= paths.len() || r.best > u8::MAX as usize {
            self.epoch.set(0);
            return;
        }
        self.epoch.set(epoch);
        self.path.set(r.best as u8);
        self.class.set(tm.class());
        let p = &paths[r.best];
        let step = step_limit(p.depth());
        self.limit
            .set(limit(r.best_rank, r.second_rank, r.best_estimate_ns).min(step));
    }

    /// End the run (the next command ranks).
    #[inline]
    pub fn reset(&self) {
        self.epoch.set(0);
    }

    /// Whether a run is on.
    pub fn is_on(&self) -> bool {
        self.epoch.get() != 0
    }
}

impl Default for Run {
    fn default() -> Run {
        Run::new()
    }
}

/// The deepest the winner of a ranking may get and still rank first
/// against the runner-up's rank as it was, plus a slack of 1/8: its rank
/// is `class | estimate × (depth + 1)`, or `class | depth` without an
/// estimate ([`crate::latency`]'s `rank`); `second_rank` is `u64::MAX`
/// when no other path was usable.
pub fn limit(best_rank: u64, second_rank: u64, estimate_ns: u64) -> u32 {
    if second_rank == u64::MAX {
        return MAX_RANK_DEPTH as u32;
    }
    // The winner's class (optimized 0, non-optimized NON_OPTIMIZED_RANK):
    // what is left of the runner-up's rank above it is the winner's room.
    let class = best_rank & NON_OPTIMIZED_RANK;
    let room = second_rank.saturating_sub(class);
    let depth = match estimate_ns {
        0 => room,
        e => (room / e).saturating_sub(1),
    };
    let depth = depth.min(MAX_RANK_DEPTH);
    (depth + depth / 8).min(MAX_RANK_DEPTH) as u32
}

/// The deepest a run may take its path from `depth`, where it was when
/// ranked: `1 + depth / 8` commands more. The runner-up's rank falls as its
/// commands complete; against its old rank alone a run would overfill its
/// path, and runs on two loaded paths would swing wider each time.
pub fn step_limit(depth: u64) -> u32 {
    let d = depth.min(MAX_RANK_DEPTH);
    (d + 1 + d / 8).min(MAX_RANK_DEPTH) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_where_the_winner_stops_ranking_first() {
        // Equal estimates, runner-up at depth 3: rank e*4; the winner stays
        // first up to depth 3.
        assert_eq!(limit(1000, 4000, 1000), 3);
        // A winner twice as fast stays first to depth 7 against e*4.
        assert_eq!(limit(500, 4000, 500), 7);
        // Slack of 1/8 from depth 8 on: 15 -> 16.
        assert_eq!(limit(1000, 16_000, 1000), 16);
        // No estimate: the rank is the depth.
        assert_eq!(limit(2, 5, 0), 5);
        // No runner-up: any depth.
        assert_eq!(limit(1000, u64::MAX, 1000), MAX_RANK_DEPTH as u32);
        // A non-optimized runner-up: far away.
        assert_eq!(
            limit(1000, NON_OPTIMIZED_RANK | 1000, 1000),
            MAX_RANK_DEPTH as u32
        );
        // A non-optimized winner against a non-optimized runner-up.
        assert_eq!(
            limit(NON_OPTIMIZED_RANK | 1000, NON_OPTIMIZED_RANK | 3000, 1000),
            2
        );
        // The winner's rank equals the runner-up's (a tie): its own depth.
        assert_eq!(limit(3000, 3000, 1000), 2);
    }

    #[test]
    fn a_run_takes_its_path_a_few_commands_deeper_at_most() {
        assert_eq!(step_limit(0), 1);
        assert_eq!(step_limit(7), 8);
        assert_eq!(step_limit(16), 19);
        assert_eq!(step_limit(u64::MAX), MAX_RANK_DEPTH as u32);
    }
}
