//! The tokio driver of one queue: a reader task and a writer task around a
//! [`QueueCore`] behind a short-held mutex.
//!
//! - Submitters take a slot permit (backpressure at queue depth: they await
//!   a free slot), queue the capsule and wake the writer.
//! - The writer drains every ready PDU in one go and coalesces them into
//!   as few writes as possible; large write payloads go out as their own
//!   `Bytes` without copying. It also checks command deadlines.
//! - The reader decodes PDUs (read data are zero-copy slices of the receive
//!   buffer) and completes commands through their completion cells.
//!
//! No allocation per command once warmed up: each command waits on a
//! reusable completion cell (result + waker) of a table allocated with the
//! queue, named by (index, generation) so that a stale completion can never
//! reach the command that reuses the cell. A submitter that goes away
//! (cancelled) abandons its cell; the cell is freed when the completion
//! arrives (or the queue is torn down), never before.
//!
//! A fatal error (malformed PDU, protocol violation, C2HTermReq, timeout,
//! EOF) fails the connection once: an H2CTermReq goes out where due, every
//! command in flight completes with 0x371, and the owner is told.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use nvmp_wire::pdu::EncodeOptions;
use nvmp_wire::{Pdu, Status, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::AbortHandle;

use crate::command::{Completion, IoRequest};
use crate::error::HostError;
use crate::queue::{QueueConfig, QueueCore, QueueError, SubmitError};
use crate::transport::{BoxRead, BoxWrite};

type OnFail = Box<dyn Fn(u16, &QueueError) + Send + Sync>;

/// Deadline check period (command timeouts are seconds; Linux's are coarse too).
const TICK: Duration = Duration::from_millis(100);
/// Payloads up to this size are copied into the coalesced write buffer.
const COPY_MAX: usize = 16 * 1024;
const READ_CHUNK: usize = 256 * 1024;
/// Time given to the last PDUs (an H2CTermReq) when a connection closes.
const CLOSE_FLUSH: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Connecting,
    Ready,
    Failed(String),
}

/// Names one use of a completion cell: its index and the cell's generation
/// when it was taken (bumped each time the cell is freed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ticket {
    idx: u32,
    gen: u32,
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
struct Cells {
    cells: Vec<Cell>,
    free: Vec<u32>,
}

impl Cells {
    fn new(n: usize) -> Self {
        let cells = (0..n)
            .map(|_| Cell {
                gen: 0,
                state: CellState::Free,
            })
            .collect();
        // Pop from the end: hand out cell 0 first.
        let mut free = Vec::with_capacity(n);
        free.extend((0..n as u32).rev());
        Self { cells, free }
    }

    fn take(&mut self) -> Ticket {
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
        Some(old)
    }
}

struct Shared {
    qid: u16,
    core: Mutex<QueueCore<Ticket>>,
    cells: Mutex<Cells>,
    slots: Semaphore,
    wake_writer: Notify,
    closed: AtomicBool,
    phase: watch::Sender<Phase>,
    on_fail: OnFail,
    reader: Mutex<Option<AbortHandle>>,
}

/// A handle on one running queue (cheap to clone).
#[derive(Clone)]
pub(crate) struct Conn {
    sh: Arc<Shared>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("qid", &self.sh.qid).finish()
    }
}

impl Conn {
    /// Start the tasks of a queue on an open stream; the ICReq goes out at once.
    pub fn start(read: BoxRead, write: BoxWrite, cfg: QueueConfig, on_fail: OnFail) -> Self {
        let sh = Arc::new(Shared {
            qid: cfg.qid,
            core: Mutex::new(QueueCore::new(cfg)),
            cells: Mutex::new(Cells::new(cfg.queue_size as usize)),
            slots: Semaphore::new(cfg.queue_size as usize),
            wake_writer: Notify::new(),
            closed: AtomicBool::new(false),
            phase: watch::channel(Phase::Connecting).0,
            on_fail,
            reader: Mutex::new(None),
        });
        let r = tokio::spawn(reader(sh.clone(), read));
        *lock_reader(&sh) = Some(r.abort_handle());
        tokio::spawn(writer(sh.clone(), write));
        tokio::spawn(ticker(sh.clone()));
        sh.wake_writer.notify_one();
        Conn { sh }
    }

    /// Wait for the ICResp.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), HostError> {
        let mut rx = self.sh.phase.subscribe();
        let r = tokio::time::timeout(timeout, rx.wait_for(|p| *p != Phase::Connecting)).await;
        match r {
            Err(_) => {
                let e = HostError::Timeout(format!("ICResp on queue {}", self.sh.qid));
                self.close();
                Err(e)
            }
            Ok(Err(_)) => Err(HostError::Closed("queue dropped".into())),
            Ok(Ok(p)) => match &*p {
                Phase::Ready => Ok(()),
                Phase::Failed(s) => Err(HostError::Closed(format!(
                    "queue {} failed during ICReq/ICResp: {s}",
                    self.sh.qid
                ))),
                Phase::Connecting => unreachable!(),
            },
        }
    }

    /// Commands in flight on this queue.
    #[allow(dead_code)]
    pub fn in_flight(&self) -> usize {
        lock(&self.sh).in_flight()
    }
    pub fn is_closed(&self) -> bool {
        self.sh.closed.load(Ordering::Acquire)
    }

    /// Run one command. Waits for a free slot first (backpressure).
    /// A queue that is closed before the command is sent completes it with
    /// 0x370; one torn down while it is in flight with 0x371.
    pub async fn submit(&self, req: IoRequest, timeout: Option<Duration>) -> Completion {
        match self.try_submit(req, timeout).await {
            Ok(c) => c,
            Err((_, SubmitError::Invalid)) => {
                Completion::with_status(Status::new(StatusCode::INVALID_FIELD).with_dnr())
            }
            Err(_) => Completion::host_pathing_error(),
        }
    }

    /// As [`Conn::submit`], but a command that could not be sent (queue
    /// closed, invalid) is handed back so that it can go elsewhere.
    pub async fn try_submit(
        &self,
        req: IoRequest,
        timeout: Option<Duration>,
    ) -> Result<Completion, (IoRequest, SubmitError)> {
        let Ok(permit) = self.sh.slots.acquire().await else {
            return Err((req, SubmitError::NotReady));
        };
        permit.forget();
        let ticket = lock_cells(&self.sh.cells).take();
        let deadline = timeout.map(|t| (tokio::time::Instant::now() + t).into_std());
        let r = lock(&self.sh).submit(ticket, req, deadline);
        match r {
            Ok(_) => self.sh.wake_writer.notify_one(),
            Err((t, req, e)) => {
                lock_cells(&self.sh.cells).release(t);
                self.sh.slots.add_permits(1);
                return Err((req, e));
            }
        }
        Ok(Wait {
            cells: &self.sh.cells,
            ticket,
            finished: false,
        }
        .await)
    }

    /// Tear the queue down (in-flight commands complete with 0x371).
    pub fn close(&self) {
        fail(&self.sh, QueueError::Closed);
    }
}

/// The submitter's side of a completion cell: ready when the command has
/// completed; dropped before that, it abandons the cell.
struct Wait<'a> {
    cells: &'a Mutex<Cells>,
    ticket: Ticket,
    finished: bool,
}

impl Future for Wait<'_> {
    type Output = Completion;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(Completion::aborted_by_host());
        }
        let mut cells = lock_cells(this.cells);
        let state = cells.get(this.ticket).map(|c| &mut c.state);
        match state {
            Some(CellState::Waiting(w)) => {
                match w {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Some(CellState::Done(_)) => {
                this.finished = true;
                match cells.release(this.ticket) {
                    Some(CellState::Done(c)) => Poll::Ready(c),
                    _ => unreachable!("the cell was checked above"),
                }
            }
            // Not reachable: only this future frees or abandons its cell
            // once it is Waiting. Fail safe rather than hang.
            _ => {
                this.finished = true;
                Poll::Ready(Completion::aborted_by_host())
            }
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut cells = lock_cells(self.cells);
        let Some(c) = cells.get(self.ticket) else {
            return;
        };
        match c.state {
            // Completed but not taken: free the cell now.
            CellState::Done(_) => {
                let done = cells.release(self.ticket);
                drop(cells);
                drop(done);
            }
            // Still in flight: the cell is freed with its completion.
            _ => c.state = CellState::Abandoned,
        }
    }
}

fn lock<'a>(sh: &'a Shared) -> MutexGuard<'a, QueueCore<Ticket>> {
    sh.core.lock().unwrap_or_else(|p| p.into_inner())
}
fn lock_cells(cells: &Mutex<Cells>) -> MutexGuard<'_, Cells> {
    cells.lock().unwrap_or_else(|p| p.into_inner())
}
fn lock_reader(sh: &Shared) -> MutexGuard<'_, Option<AbortHandle>> {
    sh.reader.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hand finished commands to their waiters.
fn deliver(sh: &Shared, done: &mut Vec<(Ticket, Completion)>) {
    let n = done.len();
    for (t, c) in done.drain(..) {
        complete(&sh.cells, t, c);
    }
    if n > 0 && !sh.closed.load(Ordering::Acquire) {
        sh.slots.add_permits(n);
    }
}

/// Put `c` in the cell of `t` and wake its submitter (or free the cell if
/// the submitter went away).
fn complete(cells: &Mutex<Cells>, t: Ticket, c: Completion) {
    let mut cells = lock_cells(cells);
    let Some(cell) = cells.get(t) else {
        return;
    };
    match std::mem::replace(&mut cell.state, CellState::Done(c)) {
        CellState::Waiting(w) => {
            drop(cells);
            if let Some(w) = w {
                w.wake();
            }
        }
        CellState::Abandoned => {
            let c = cells.release(t);
            drop(cells);
            drop(c);
        }
        // A second completion for one command cannot happen (the core
        // frees its slot on the first); keep the first.
        old @ (CellState::Done(_) | CellState::Free) => {
            let second = std::mem::replace(&mut cell.state, old);
            drop(cells);
            drop(second);
        }
    }
}

fn fail(sh: &Shared, e: QueueError) {
    if sh.closed.swap(true, Ordering::AcqRel) {
        return;
    }
    match &e {
        QueueError::Closed => tracing::debug!(qid = sh.qid, "queue closed"),
        e => tracing::warn!(qid = sh.qid, error = %e, "queue failed"),
    }
    sh.slots.close();
    let mut done = Vec::new();
    {
        let mut core = lock(sh);
        core.fail_all(Status::new(StatusCode::ABORTED_BY_HOST));
        while let Some(d) = core.pop_completion() {
            done.push(d);
        }
    }
    deliver(sh, &mut done);
    sh.phase.send_replace(Phase::Failed(e.to_string()));
    sh.wake_writer.notify_one();
    (sh.on_fail)(sh.qid, &e);
}

/// The receive buffer of a queue. Read data are handed out as zero-copy
/// slices of it, so a full buffer cannot be reused while some of its data
/// are still held: it is retired, and reused once they are all dropped
/// (no allocation in steady state).
struct RecvBuf {
    buf: BytesMut,
    /// Earlier buffers, oldest first, some of whose data may still be held.
    retired: VecDeque<BytesMut>,
}

/// Retired receive buffers kept per queue for reuse (so at most three
/// buffers of about `READ_CHUNK` each per queue, two of them only once data
/// were still held when the current one filled up).
const RETIRED_MAX: usize = 2;

impl RecvBuf {
    fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(READ_CHUNK),
            retired: VecDeque::with_capacity(RETIRED_MAX + 1),
        }
    }

    /// Make room for the next read: at least `READ_CHUNK / 4` bytes.
    fn make_room(&mut self) {
        let buf = &mut self.buf;
        if buf.capacity() - buf.len() >= READ_CHUNK / 4 {
            return;
        }
        // Room for a partial PDU kept at the front, and then some.
        let want = READ_CHUNK / 2;
        if buf.try_reclaim(want) {
            return;
        }
        let len = buf.len();
        let reuse = self
            .retired
            .iter_mut()
            .position(|r| r.try_reclaim(len + want));
        let mut next = match reuse {
            Some(i) => self.retired.remove(i).unwrap_or_default(),
            None => BytesMut::with_capacity(READ_CHUNK.max(len + want)),
        };
        // The partial PDU at the end of the old buffer.
        next.extend_from_slice(buf);
        let mut old = std::mem::replace(buf, next);
        old.clear();
        if self.retired.len() == RETIRED_MAX {
            self.retired.pop_front();
        }
        self.retired.push_back(old);
    }
}

async fn reader(sh: Arc<Shared>, mut read: BoxRead) {
    let mut rb = RecvBuf::new();
    let mut done = Vec::with_capacity(64);
    loop {
        rb.make_room();
        let buf = &mut rb.buf;
        match read.read_buf(buf).await {
            Ok(0) | Err(_) => {
                fail(&sh, QueueError::Closed);
                return;
            }
            Ok(_) => {}
        }
        let (r, wake, ready) = {
            let mut core = lock(&sh);
            let was_ready = core.is_ready();
            let r = core.receive(buf);
            while let Some(d) = core.pop_completion() {
                done.push(d);
            }
            (r, core.has_outbound(), !was_ready && core.is_ready())
        };
        deliver(&sh, &mut done);
        if ready {
            sh.phase.send_replace(Phase::Ready);
        }
        if wake {
            sh.wake_writer.notify_one();
        }
        if let Err(e) = r {
            fail(&sh, e);
            return;
        }
    }
}

/// Checks command deadlines (its own task: a writer blocked on a peer that
/// stopped reading must not stop timeouts from firing).
async fn ticker(sh: Arc<Shared>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if sh.closed.load(Ordering::Acquire) {
            return;
        }
        let r = lock(&sh).poll_timeout(tokio::time::Instant::now().into_std());
        if let Err(e) = r {
            fail(&sh, e);
            return;
        }
    }
}

/// Encode and write a batch, coalescing small PDUs into one buffer and
/// sending large payloads as they are (no copy).
async fn write_batch(
    write: &mut BoxWrite,
    batch: &mut Vec<Pdu>,
    out: &mut BytesMut,
    enc: EncodeOptions,
) -> std::io::Result<()> {
    for p in batch.drain(..) {
        let ddgst = p.encode_head(enc, out);
        if let Some(d) = p.data() {
            if d.len() <= COPY_MAX {
                out.extend_from_slice(d);
            } else {
                write.write_all(out).await?;
                out.clear();
                write.write_all(d).await?;
            }
        }
        if let Some(dd) = ddgst {
            out.extend_from_slice(&dd);
        }
        if out.len() >= 64 * 1024 {
            write.write_all(out).await?;
            out.clear();
        }
    }
    if !out.is_empty() {
        write.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

async fn writer(sh: Arc<Shared>, mut write: BoxWrite) {
    let mut batch: Vec<Pdu> = Vec::with_capacity(64);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut phase = sh.phase.subscribe();
    let failed = |p: &Phase| matches!(p, Phase::Failed(_));
    // Whether the stream is at a PDU boundary (a TermReq may still be sent).
    let mut clean = true;
    loop {
        tokio::select! {
            _ = sh.wake_writer.notified() => {}
            _ = phase.wait_for(failed) => {}
        }
        if sh.closed.load(Ordering::Acquire) {
            break;
        }
        let enc = {
            let mut core = lock(&sh);
            while let Some(p) = core.pop_outbound() {
                batch.push(p);
            }
            core.encode_options()
        };
        // A failure (timeout, reset) abandons a write blocked on a peer
        // that stopped reading.
        let r = tokio::select! {
            r = write_batch(&mut write, &mut batch, &mut out, enc) => r,
            _ = phase.wait_for(failed) => {
                clean = false;
                break;
            }
        };
        if r.is_err() {
            clean = false;
            fail(&sh, QueueError::Closed);
            break;
        }
    }
    // Closing: send what is due (an H2CTermReq), briefly, then close.
    batch.clear();
    out.clear();
    let enc = {
        let mut core = lock(&sh);
        while let Some(p) = core.pop_outbound() {
            batch.push(p);
        }
        core.encode_options()
    };
    if clean && !batch.is_empty() {
        let w = write_batch(&mut write, &mut batch, &mut out, enc);
        let _ = tokio::time::timeout(CLOSE_FLUSH, w).await;
    }
    let _ = tokio::time::timeout(CLOSE_FLUSH, write.shutdown()).await;
    if let Some(r) = lock_reader(&sh).take() {
        r.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

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

    fn status(n: u16) -> Completion {
        Completion {
            dw0: n as u32,
            ..Completion::with_status(Status::SUCCESS)
        }
    }

    fn wait(cells: &Mutex<Cells>) -> Wait<'_> {
        let ticket = lock_cells(cells).take();
        Wait {
            cells,
            ticket,
            finished: false,
        }
    }

    fn poll(w: &mut Wait<'_>, waker: &Waker) -> Poll<Completion> {
        Pin::new(w).poll(&mut Context::from_waker(waker))
    }

    fn free(cells: &Mutex<Cells>) -> usize {
        lock_cells(cells).free.len()
    }

    #[test]
    fn completion_wakes_and_frees_the_cell() {
        let cells = Mutex::new(Cells::new(2));
        let (n, wk) = waker();
        let mut w = wait(&cells);
        assert!(poll(&mut w, &wk).is_pending());
        assert!(poll(&mut w, &wk).is_pending(), "polled again: no new waker");
        complete(&cells, w.ticket, status(7));
        assert_eq!(n.0.load(Ordering::SeqCst), 1);
        assert_eq!(free(&cells), 1, "held until taken");
        assert_eq!(poll(&mut w, &wk), Poll::Ready(status(7)));
        assert_eq!(free(&cells), 2);
        drop(w);
        assert_eq!(free(&cells), 2);
    }

    #[test]
    fn cancelled_in_flight_cell_is_freed_by_its_completion_only() {
        let cells = Mutex::new(Cells::new(1));
        let (_, wk) = waker();
        let mut a = wait(&cells);
        let old = a.ticket;
        assert!(poll(&mut a, &wk).is_pending());
        drop(a);
        assert_eq!(
            free(&cells),
            0,
            "abandoned, not free: its command is in flight"
        );
        // A new command gets another cell meanwhile (the table grows).
        let mut b = wait(&cells);
        assert_ne!(b.ticket.idx, old.idx);
        // The old completion frees the abandoned cell and reaches nobody else.
        complete(&cells, old, status(1));
        assert_eq!(free(&cells), 1);
        assert!(poll(&mut b, &wk).is_pending());
        // The freed cell is reused under a new generation; a stale (second)
        // completion for the old use does not complete the new one.
        let mut c = wait(&cells);
        assert_eq!(c.ticket.idx, old.idx);
        assert_ne!(c.ticket.gen, old.gen);
        complete(&cells, old, status(1));
        assert!(poll(&mut c, &wk).is_pending());
        complete(&cells, c.ticket, status(3));
        complete(&cells, b.ticket, status(2));
        assert_eq!(poll(&mut c, &wk), Poll::Ready(status(3)));
        assert_eq!(poll(&mut b, &wk), Poll::Ready(status(2)));
        assert_eq!(free(&cells), 2);
    }

    #[test]
    fn cancelled_after_completion_frees_at_once() {
        let cells = Mutex::new(Cells::new(1));
        let (n, wk) = waker();
        let mut a = wait(&cells);
        assert!(poll(&mut a, &wk).is_pending());
        complete(&cells, a.ticket, status(1));
        assert_eq!(n.0.load(Ordering::SeqCst), 1);
        drop(a);
        assert_eq!(free(&cells), 1);
        // Never polled at all, then cancelled, then completed.
        let a = wait(&cells);
        let t = a.ticket;
        drop(a);
        complete(&cells, t, status(1));
        assert_eq!(free(&cells), 1);
        assert_eq!(lock_cells(&cells).cells.len(), 1, "no growth");
    }
}
