//! Reusable completion cells: each command in flight waits on one, named
//! by (index, generation) so that a stale completion can never reach the
//! command that reuses the cell. A submitter that goes away (cancelled)
//! abandons its cell; the cell is freed when the completion arrives (or the
//! queue is torn down), never before.
//!
//! The cells live in the same mutex as the queue's core ([`super::State`]):
//! one lock per queue, as quinn keeps one `Mutex<State>` per connection.

use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::State;
use crate::command::Completion;

/// Names one use of a completion cell: its index and the cell's generation
/// when it was taken (bumped each time the cell is freed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub idx: u32,
    pub gen: u32,
}

#[derive(Debug)]
enum CellState {
    Free,
    /// In flight; the waker of the submitter's last poll.
    Waiting(Option<Waker>),
    /// Completed, not yet taken by the submitter.
    Done(Completion),
    /// The submitter went away: free the cell when the completion arrives.
    Abandoned,
}

#[derive(Debug)]
struct Cell {
    gen: u32,
    state: CellState,
}

/// The completion cells of one queue. There are `queue_size` of them from
/// the start; a cell is only added when every one is taken, i.e. more
/// commands completed but not yet collected by their (not yet polled)
/// submitters than the queue depth, and is kept for reuse.
#[derive(Debug)]
pub(crate) struct Cells {
    cells: Vec<Cell>,
    free: Vec<u32>,
    /// Cells in `Done`: completions not yet taken by their submitters.
    done: usize,
}

impl Cells {
    pub fn new(n: usize) -> Self {
        let cells = (0..n)
            .map(|_| Cell {
                gen: 0,
                state: CellState::Free,
            })
            .collect();
        // Pop from the end: hand out cell 0 first.
        let mut free = Vec::with_capacity(n);
        free.extend((0..n as u32).rev());
        Self {
            cells,
            free,
            done: 0,
        }
    }

    pub fn take(&mut self) -> Ticket {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.cells.push(Cell {
                    gen: 0,
                    state: CellState::Free,
                });
                self.cells.len() as u32 - 1
            }
        };
        let c = &mut self.cells[idx as usize];
        c.state = CellState::Waiting(None);
        Ticket { idx, gen: c.gen }
    }

    /// The cell of `t` if `t` is its current use.
    fn get(&mut self, t: Ticket) -> Option<&mut Cell> {
        self.cells
            .get_mut(t.idx as usize)
            .filter(|c| c.gen == t.gen && !matches!(c.state, CellState::Free))
    }

    /// Free the cell of `t` (if current) and return what it held.
    fn release(&mut self, t: Ticket) -> Option<CellState> {
        let c = self.get(t)?;
        c.gen = c.gen.wrapping_add(1);
        let old = std::mem::replace(&mut c.state, CellState::Free);
        self.free.push(t.idx);
        if matches!(old, CellState::Done(_)) {
            self.done -= 1;
        }
        Some(old)
    }

    /// Free a cell that was taken but whose command was never queued.
    pub fn cancel(&mut self, t: Ticket) {
        self.release(t);
    }

    /// Put `c` in the cell of `t`; returns the submitter's waker to wake
    /// once the lock is released (none if the submitter went away: its cell
    /// is freed here).
    pub fn complete(&mut self, t: Ticket, c: Completion) -> Option<Waker> {
        let cell = self.get(t)?;
        match std::mem::replace(&mut cell.state, CellState::Done(c)) {
            CellState::Waiting(w) => {
                self.done += 1;
                w
            }
            CellState::Abandoned => {
                self.done += 1;
                self.release(t);
                None
            }
            // A second completion for one command cannot happen (the core
            // frees its slot on the first); keep the first.
            old @ (CellState::Done(_) | CellState::Free) => {
                cell.state = old;
                None
            }
        }
    }

    /// Some command completed and its submitter has not taken the
    /// completion yet.
    #[inline]
    pub fn any_done(&self) -> bool {
        self.done > 0
    }

    #[cfg(test)]
    pub fn free_count(&self) -> usize {
        self.free.len()
    }
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.cells.len()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Poll the cell of `ticket`: ready with the completion once it arrived
/// (`finished` is then set and the cell freed), else the waker is kept.
#[inline]
pub(crate) fn poll_cell(
    state: &Mutex<State>,
    ticket: Ticket,
    finished: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Completion> {
    if *finished {
        return Poll::Ready(Completion::aborted_by_host());
    }
    let mut st = lock(state);
    let cells = &mut st.cells;
    let cell = cells.get(ticket).map(|c| &mut c.state);
    match cell {
        Some(CellState::Waiting(w)) => {
            match w {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
            Poll::Pending
        }
        Some(CellState::Done(_)) => {
            *finished = true;
            match cells.release(ticket) {
                Some(CellState::Done(c)) => Poll::Ready(c),
                _ => unreachable!("the cell was checked above"),
            }
        }
        // Not reachable: only the waiting future frees or abandons its
        // cell once it is Waiting. Fail safe rather than hang.
        _ => {
            *finished = true;
            Poll::Ready(Completion::aborted_by_host())
        }
    }
}

/// The waiting future of `ticket` is dropped: unless it `finished`, free
/// a completed cell now, or let the completion free it.
pub(crate) fn drop_cell(state: &Mutex<State>, ticket: Ticket, finished: bool) {
    if finished {
        return;
    }
    let mut st = lock(state);
    let cells = &mut st.cells;
    let Some(c) = cells.get(ticket) else {
        return;
    };
    match c.state {
        // Completed but not taken: free the cell now.
        CellState::Done(_) => {
            let done = cells.release(ticket);
            drop(st);
            drop(done);
        }
        // Still in flight: the cell is freed with its completion.
        _ => c.state = CellState::Abandoned,
    }
}
