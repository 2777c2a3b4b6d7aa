//! The completion cells under the queue's one lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use nvmp_wire::pdu::IcResp;
use nvmp_wire::{Digests, Pdu, Status};

use super::cells::{self, Cells, Ticket};
use super::State;
use crate::command::Completion;
use crate::queue::{QueueConfig, QueueCore};

/// What the test controllers of this module's tests answer an ICReq with
/// (no digests, MAXH2CDATA 1 MiB).
pub(super) fn ic_resp() -> Pdu {
    Pdu::IcResp(IcResp {
        pfv: 0,
        cpda: 0,
        digests: Digests::NONE,
        maxh2cdata: 1 << 20,
    })
}

/// A queue over `stream` (the host's end of an in-memory pipe to a test
/// controller): queue size 32, no digests, ready.
pub(super) async fn conn_over(stream: tokio::io::DuplexStream) -> super::Conn {
    let (r, w) = tokio::io::split(stream);
    let cfg = QueueConfig {
        qid: 1,
        queue_size: 32,
        digests: Digests::NONE,
        inline_max: 8192,
        max_data_len: 1 << 20,
    };
    let (r, w): (crate::transport::BoxRead, crate::transport::BoxWrite) =
        (Box::new(r), Box::new(w));
    let q = super::Conn::start(r, w, cfg, Box::new(|_, _| {}));
    q.wait_ready(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    q
}

/// Counts its wake-ups.
struct Count(AtomicUsize);
impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn waker() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

fn state(n: usize) -> Mutex<State> {
    Mutex::new(State {
        core: QueueCore::new(QueueConfig::admin(16, Digests::default())),
        cells: Cells::new(n),
    })
}

fn status(n: u16) -> Completion {
    Completion {
        dw0: n as u32,
        ..Completion::with_status(Status::SUCCESS)
    }
}

/// A submitter's side of a cell, as [`super::Queued`] is without its queue
/// handle: polled with [`poll`], abandons the cell when dropped unfinished.
struct Wait<'a> {
    state: &'a Mutex<State>,
    ticket: Ticket,
    finished: bool,
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        cells::drop_cell(self.state, self.ticket, self.finished);
    }
}

fn wait(st: &Mutex<State>) -> Wait<'_> {
    let ticket = st.lock().unwrap().cells.take();
    Wait {
        state: st,
        ticket,
        finished: false,
    }
}

fn poll(w: &mut Wait<'_>, waker: &Waker) -> Poll<Completion> {
    cells::poll_cell(
        w.state,
        w.ticket,
        &mut w.finished,
        &mut Context::from_waker(waker),
    )
}

/// Complete as the reader does: under the lock, wake after it.
fn complete(st: &Mutex<State>, t: Ticket, c: Completion) {
    let w = st.lock().unwrap().cells.complete(t, c);
    if let Some(w) = w {
        w.wake();
    }
}

fn free(st: &Mutex<State>) -> usize {
    st.lock().unwrap().cells.free_count()
}

#[test]
fn completion_wakes_and_frees_the_cell() {
    let st = state(2);
    let (n, wk) = waker();
    let mut w = wait(&st);
    assert!(poll(&mut w, &wk).is_pending());
    assert!(poll(&mut w, &wk).is_pending(), "polled again: no new waker");
    complete(&st, w.ticket, status(7));
    assert_eq!(n.0.load(Ordering::SeqCst), 1);
    assert_eq!(free(&st), 1, "held until taken");
    assert_eq!(poll(&mut w, &wk), Poll::Ready(status(7)));
    assert_eq!(free(&st), 2);
    drop(w);
    assert_eq!(free(&st), 2);
}

#[test]
fn cancelled_in_flight_cell_is_freed_by_its_completion_only() {
    let st = state(1);
    let (_, wk) = waker();
    let mut a = wait(&st);
    let old = a.ticket;
    assert!(poll(&mut a, &wk).is_pending());
    drop(a);
    assert_eq!(
        free(&st),
        0,
        "abandoned, not free: its command is in flight"
    );
    // A new command gets another cell meanwhile (the table grows).
    let mut b = wait(&st);
    assert_ne!(b.ticket.idx, old.idx);
    // The old completion frees the abandoned cell and reaches nobody else.
    complete(&st, old, status(1));
    assert_eq!(free(&st), 1);
    assert!(poll(&mut b, &wk).is_pending());
    // The freed cell is reused under a new generation; a stale (second)
    // completion for the old use does not complete the new one.
    let mut c = wait(&st);
    assert_eq!(c.ticket.idx, old.idx);
    assert_ne!(c.ticket.gen, old.gen);
    complete(&st, old, status(1));
    assert!(poll(&mut c, &wk).is_pending());
    complete(&st, c.ticket, status(3));
    complete(&st, b.ticket, status(2));
    assert_eq!(poll(&mut c, &wk), Poll::Ready(status(3)));
    assert_eq!(poll(&mut b, &wk), Poll::Ready(status(2)));
    assert_eq!(free(&st), 2);
}

#[test]
fn cancelled_after_completion_frees_at_once() {
    let st = state(1);
    let (n, wk) = waker();
    let mut a = wait(&st);
    assert!(poll(&mut a, &wk).is_pending());
    complete(&st, a.ticket, status(1));
    assert_eq!(n.0.load(Ordering::SeqCst), 1);
    drop(a);
    assert_eq!(free(&st), 1);
    // Never polled at all, then cancelled, then completed.
    let a = wait(&st);
    let t = a.ticket;
    drop(a);
    complete(&st, t, status(1));
    assert_eq!(free(&st), 1);
    assert_eq!(st.lock().unwrap().cells.len(), 1, "no growth");
}

/// `any_done` counts completions not yet taken: set by a completion, clear
/// once it is taken, or dropped, or when it frees an abandoned cell.
#[test]
fn done_cells_are_counted_until_taken() {
    let st = state(2);
    let (_, wk) = waker();
    let any = |st: &Mutex<State>| st.lock().unwrap().cells.any_done();
    let mut a = wait(&st);
    assert!(poll(&mut a, &wk).is_pending());
    assert!(!any(&st));
    complete(&st, a.ticket, status(1));
    assert!(any(&st));
    assert_eq!(poll(&mut a, &wk), Poll::Ready(status(1)));
    assert!(!any(&st), "taken");
    // Completed, then dropped before it was taken.
    let mut b = wait(&st);
    assert!(poll(&mut b, &wk).is_pending());
    complete(&st, b.ticket, status(2));
    assert!(any(&st));
    drop(b);
    assert!(!any(&st), "dropped");
    // Abandoned, then completed: freed at once, nothing waits.
    let c = wait(&st);
    let t = c.ticket;
    drop(c);
    complete(&st, t, status(3));
    assert!(!any(&st), "abandoned");
    assert_eq!(free(&st), 2);
}
