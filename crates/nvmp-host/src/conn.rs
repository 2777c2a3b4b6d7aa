//! The tokio driver of one queue: a reader, a writer and a deadline timer
//! around one `Mutex<State>` (the sans-IO [`QueueCore`] and the completion
//! cells together, as quinn keeps one state mutex per connection).
//!
//! - Submitters take a slot permit (backpressure at queue depth: they await
//!   a free slot), queue the capsule and wake the writer (the first since
//!   it last drained the queue; it drains all): one lock.
//! - The writer lets every task that is ready run first (one
//!   `yield_now`), then drains every queued PDU and writes them with
//!   vectored writes: many PDUs per system call, payloads never copied.
//!   A command submitted to an idle queue is written by its submitter
//!   instead, without a task hop ([`write`]: run to completion). The write
//!   half has its own mutex, taken once per write (a batch of PDUs), and
//!   tried by a submitter only on an idle queue: per command, the queue's
//!   state lock stays the only one.
//! - The reader reads as much as the socket has, decodes every PDU in it
//!   (read data are zero-copy slices of the receive buffer) and completes
//!   the commands under one lock, waking their submitters after it.
//! - The timer sleeps until the earliest command deadline the core reports
//!   ([`QueueCore::poll_timeout`]); the core asks for a re-arm only when a
//!   command has an earlier deadline than the armed one (in practice: the
//!   first command after the queue was idle), so a busy queue pays nothing.
//!
//! No allocation per command once warmed up (see [`cells`]).
//!
//! A fatal error (malformed PDU, protocol violation, C2HTermReq, timeout,
//! EOF) fails the connection once: an H2CTermReq goes out where due, every
//! command in flight completes with 0x371, and the owner is told.

mod cells;
#[cfg(test)]
mod direct_tests;
mod out;
mod recv;
#[cfg(test)]
mod tests;
mod write;
#[cfg(test)]
mod write_tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use nvmp_wire::{Status, StatusCode};
use tokio::io::AsyncReadExt;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::AbortHandle;

use crate::command::{Completion, IoRequest, RequestSource};
use crate::error::HostError;
use crate::queue::{Direct, QueueConfig, QueueCore, QueueError, SubmitError};
use crate::transport::{BoxRead, BoxWrite};
use cells::Cells;
pub(crate) use cells::Ticket;
use recv::{DataPool, RecvBuf};
use write::WriteSide;

type OnFail = Box<dyn Fn(u16, &QueueError) + Send + Sync>;

/// Receive buffer of an I/O queue to begin with: one read system call
/// takes in a few hundred small PDUs.
const READ_CHUNK: usize = 256 * 1024;
/// What it grows to when large PDUs arrive, so that one read still takes in
/// several of them (128 KiB reads cost ~4 reads each with 256 KiB buffers,
/// and half the host's CPU per I/O). Only queues that move large transfers
/// pay for the larger buffers.
const READ_CHUNK_MAX: usize = 1 << 20;
/// C2HData payloads this large are read into a buffer of their own
/// ([`Direct`]).
const DIRECT_MIN: usize = 32 * 1024;
/// What is read into the receive buffer at a time while large payloads
/// arrive: the next PDU header or two, a little of their data.
const SMALL_READ: usize = 4096;
/// The admin queue's (small commands, few at a time).
const READ_CHUNK_ADMIN: usize = 64 * 1024;
/// Time given to the last PDUs (an H2CTermReq) when a connection closes.
const CLOSE_FLUSH: Duration = Duration::from_millis(200);
/// Bytes queued before the writer writes without draining more.
const WRITE_BATCH_MAX: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Connecting,
    Ready,
    Failed(String),
}

/// Everything of a queue that is shared between submitters and the driver
/// tasks, behind one mutex.
pub(crate) struct State {
    core: QueueCore<Ticket>,
    cells: Cells,
}

struct Shared {
    qid: u16,
    state: Mutex<State>,
    /// The write half of the stream (after `state` if both are taken).
    write: Mutex<WriteSide>,
    slots: Semaphore,
    wake_writer: Notify,
    /// Signalled when the queue fails: abandons a write blocked on a peer
    /// that stopped reading.
    abort_write: Notify,
    wake_timer: Notify,
    closed: AtomicBool,
    phase: watch::Sender<Phase>,
    on_fail: OnFail,
    reader: Mutex<Option<AbortHandle>>,
    /// Set by [`Conn::watch_stalls`]: where this queue reports stalls.
    stall: std::sync::OnceLock<Arc<StallWatch>>,
    /// This queue is counted in `stall.stalled_queues`.
    stalled: AtomicBool,
}

/// Stall reporting shared by the I/O queues of one controller
/// ([`QueueCore::set_read_stall`]).
#[derive(Debug, Default)]
pub(crate) struct StallWatch {
    /// I/O queues of the controller that are stalled now.
    pub stalled_queues: std::sync::atomic::AtomicUsize,
    /// Reads retired from stalled queues (and sent down another path).
    pub reads_retired: std::sync::atomic::AtomicU64,
    /// Signalled (one permit) while a stalled queue still holds commands
    /// that were not retired (at every stall check: each half bound).
    pub stalled_event: Notify,
    /// Signalled (one permit) when a queue becomes stalled or answers
    /// again: whether the controller serves I/O changed.
    pub stall_changed: Notify,
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
            state: Mutex::new(State {
                core: QueueCore::new(cfg),
                cells: Cells::new(cfg.queue_size as usize),
            }),
            write: WriteSide::new(write),
            slots: Semaphore::new(cfg.queue_size as usize),
            wake_writer: Notify::new(),
            abort_write: Notify::new(),
            wake_timer: Notify::new(),
            closed: AtomicBool::new(false),
            phase: watch::channel(Phase::Connecting).0,
            on_fail,
            reader: Mutex::new(None),
            stall: std::sync::OnceLock::new(),
            stalled: AtomicBool::new(false),
        });
        let r = tokio::spawn(reader(sh.clone(), read));
        *lock_reader(&sh) = Some(r.abort_handle());
        tokio::spawn(write::writer(sh.clone()));
        tokio::spawn(timer(sh.clone()));
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
        lock(&self.sh).core.in_flight()
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
        // A free slot: queued at once (the usual case), else wait for one.
        let ticket = match self.send_now(req, timeout) {
            Ok(t) => t,
            Err((req, SubmitError::Full)) => {
                let Ok(permit) = self.sh.slots.acquire().await else {
                    return Err((req, SubmitError::NotReady));
                };
                permit.forget();
                self.queue(req, timeout)?
            }
            Err(e) => return Err(e),
        };
        Ok(self.clone().queued(ticket).await)
    }

    /// Queue one command now if a slot is free, without waiting:
    /// [`SubmitError::Full`] hands it back when every slot is taken. The
    /// completion is then awaited with [`Queued`].
    #[inline]
    pub fn send_now<R: RequestSource>(
        &self,
        req: R,
        timeout: Option<Duration>,
    ) -> Result<Ticket, (IoRequest, SubmitError)> {
        match self.sh.slots.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::Closed) => {
                return Err((req.into_request(), SubmitError::NotReady));
            }
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                return Err((req.into_request(), SubmitError::Full));
            }
        }
        self.queue(req, timeout)
    }

    /// Queue a command whose slot permit was taken (given back on failure).
    #[inline]
    fn queue<R: RequestSource>(
        &self,
        req: R,
        timeout: Option<Duration>,
    ) -> Result<Ticket, (IoRequest, SubmitError)> {
        let deadline = timeout.map(|t| (tokio::time::Instant::now() + t).into_std());
        let (ticket, rearm, inline, wake) = {
            let mut st = lock(&self.sh);
            let ticket = st.cells.take();
            // The writer drains everything queued when it runs: only the
            // first PDU queued since it last did needs to wake it.
            let wake = !st.core.has_outbound();
            match st.core.submit(ticket, req.into_request(), deadline) {
                Ok(_) => (
                    ticket,
                    st.core.take_rearm(),
                    write::try_inline(&self.sh, &mut st),
                    wake,
                ),
                Err((t, req, e)) => {
                    st.cells.cancel(t);
                    drop(st);
                    self.sh.slots.add_permits(1);
                    return Err((req, e));
                }
            }
        };
        match inline {
            Some(i) => write::write_inline(&self.sh, i),
            None if wake => self.sh.wake_writer.notify_one(),
            None => {}
        }
        if rearm {
            self.sh.wake_timer.notify_one();
        }
        Ok(ticket)
    }

    /// The completion of a command queued by [`Conn::send_now`], as a future
    /// that owns its queue handle (dropped before completion, it abandons
    /// the command's cell).
    pub fn queued(self, ticket: Ticket) -> Queued {
        Queued {
            conn: self,
            ticket,
            finished: false,
        }
    }

    /// Retire reads when this queue completes nothing for `after` while
    /// commands are outstanding ([`QueueCore::set_read_stall`]); report
    /// stalls to `watch` (the first watch given stays).
    pub fn watch_stalls(&self, after: Option<Duration>, watch: &Arc<StallWatch>) {
        let _ = self.sh.stall.set(watch.clone());
        lock(&self.sh).core.set_read_stall(after);
        self.sh.wake_timer.notify_one();
    }

    /// Tear the queue down (in-flight commands complete with 0x371).
    pub fn close(&self) {
        fail(&self.sh, QueueError::Closed);
    }
}

/// The completion of one queued command ([`Conn::queued`], also awaited by
/// [`Conn::submit`]): ready when the command has completed; dropped before
/// that, it abandons the command's cell. It owns its queue handle (one
/// `Arc` clone), so callers keep no borrow of the queue.
pub(crate) struct Queued {
    conn: Conn,
    ticket: Ticket,
    finished: bool,
}

impl std::future::Future for Queued {
    type Output = Completion;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Completion> {
        let this = self.get_mut();
        cells::poll_cell(&this.conn.sh.state, this.ticket, &mut this.finished, cx)
    }
}

impl Drop for Queued {
    #[inline]
    fn drop(&mut self) {
        if !self.finished {
            cells::drop_cell(&self.conn.sh.state, self.ticket, false);
        }
    }
}

#[inline]
fn lock(sh: &Shared) -> MutexGuard<'_, State> {
    sh.state.lock().unwrap_or_else(|p| p.into_inner())
}
fn lock_reader(sh: &Shared) -> MutexGuard<'_, Option<AbortHandle>> {
    sh.reader.lock().unwrap_or_else(|p| p.into_inner())
}

/// Move every finished command of the core into its cell; the wakers of
/// their submitters go to `wake` (woken once the lock is released).
/// Returns how many commands finished.
/// Hand finished commands to their cells; returns the slots freed (the
/// permits to give back): completions, less retired reads whose slots stay
/// taken, plus retired reads' slots freed by their late response.
fn collect(st: &mut State, wake: &mut Vec<Waker>) -> usize {
    let mut n = 0;
    while let Some((t, c)) = st.core.pop_completion() {
        n += 1;
        if let Some(w) = st.cells.complete(t, c) {
            wake.push(w);
        }
    }
    let (freed, retired) = st.core.take_slot_delta();
    (n + freed).saturating_sub(retired)
}

/// Publish this queue's stall state to its controller (only when it
/// changed); `escalate`: commands that were not retired wait on it (the
/// controller's owner is told, see [`StallWatch::stalled_event`]).
fn report_stall(sh: &Shared, stalled: bool, retired: u64, escalate: bool) {
    let Some(w) = sh.stall.get() else { return };
    if stalled && escalate {
        w.stalled_event.notify_one();
    }
    if sh.stalled.load(Ordering::Relaxed) != stalled
        && sh.stalled.swap(stalled, Ordering::AcqRel) != stalled
    {
        stall_changed(w, stalled);
    }
    if retired > 0 {
        w.reads_retired.fetch_add(retired, Ordering::Relaxed);
    }
}

/// A queue became stalled or answers again: count it, tell the owner.
#[cold]
#[inline(never)]
fn stall_changed(w: &StallWatch, stalled: bool) {
    if stalled {
        w.stalled_queues.fetch_add(1, Ordering::AcqRel);
    } else {
        w.stalled_queues.fetch_sub(1, Ordering::AcqRel);
    }
    w.stall_changed.notify_one();
}

/// Give back `n` slots, then wake the submitters of finished commands.
fn deliver(sh: &Shared, n: usize, wake: &mut Vec<Waker>) {
    if n > 0 && !sh.closed.load(Ordering::Acquire) {
        sh.slots.add_permits(n);
    }
    for w in wake.drain(..) {
        w.wake();
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
    let mut wake = Vec::new();
    let n = {
        let mut st = lock(sh);
        st.core.fail_all(Status::new(StatusCode::ABORTED_BY_HOST));
        report_stall(sh, false, 0, false);
        collect(&mut st, &mut wake)
    };
    deliver(sh, n, &mut wake);
    sh.phase.send_replace(Phase::Failed(e.to_string()));
    sh.abort_write.notify_one();
    sh.wake_writer.notify_one();
    sh.wake_timer.notify_one();
    (sh.on_fail)(sh.qid, &e);
}

async fn reader(sh: Arc<Shared>, mut read: BoxRead) {
    let mut rb = if sh.qid == 0 {
        RecvBuf::new(READ_CHUNK_ADMIN, READ_CHUNK_ADMIN)
    } else {
        RecvBuf::new(READ_CHUNK, READ_CHUNK_MAX)
    };
    let mut pool = DataPool::new();
    // A large C2HData whose data are being read into a buffer of their own.
    let mut direct: Option<(Direct, BytesMut)> = None;
    // Large payloads are arriving: read a little at a time into the receive
    // buffer (the next header, not much of its data), the data directly.
    let mut small = false;
    let mut wake = Vec::with_capacity(64);
    loop {
        let r = match &mut direct {
            Some((d, b)) => {
                let want = d.data_len() - b.len();
                read.read_buf(&mut b.limit(want)).await
            }
            None => {
                rb.make_room();
                if small {
                    read.read_buf(&mut (&mut rb.buf).limit(SMALL_READ)).await
                } else {
                    read.read_buf(&mut rb.buf).await
                }
            }
        };
        let got = match r {
            Ok(0) | Err(_) => {
                fail(&sh, QueueError::Closed);
                return;
            }
            Ok(n) => n,
        };
        let arrived = match direct.take() {
            Some((d, b)) if b.len() == d.data_len() => Some((d, pool.freeze(b))),
            Some(part) => {
                direct = Some(part);
                continue;
            }
            None => None,
        };
        let buf = &mut rb.buf;
        let (r, n, out, ready, begin) = {
            let mut st = lock(&sh);
            let was_ready = st.core.is_ready();
            let mut r = match arrived {
                Some((d, data)) => st.core.direct_done(d, data),
                None => Ok(()),
            };
            if r.is_ok() {
                r = st.core.receive(buf);
            }
            let begin = match r {
                Ok(()) => st.core.direct_begin(buf, DIRECT_MIN),
                Err(_) => None,
            };
            let n = collect(&mut st, &mut wake);
            if sh.stalled.load(Ordering::Relaxed) && !st.core.is_stalled() {
                report_stall(&sh, false, 0, false);
            }
            (
                r,
                n,
                st.core.has_outbound(),
                !was_ready && st.core.is_ready(),
                begin,
            )
        };
        deliver(&sh, n, &mut wake);
        if ready {
            sh.phase.send_replace(Phase::Ready);
        }
        if out {
            sh.wake_writer.notify_one();
        }
        if let Err(e) = r {
            fail(&sh, e);
            return;
        }
        // Small reads while large payloads come (the direct reads take
        // them); back to full reads once a small read came back full of
        // other PDUs.
        small = match begin {
            Some(d) => {
                let mut b = pool.take(d.data_len());
                // The start of the data, read with the header.
                let have = buf.len().min(d.data_len());
                b.extend_from_slice(&buf[..have]);
                buf.advance(have);
                direct = Some((d, b));
                true
            }
            None => small && got < SMALL_READ,
        };
        // Large payloads: let the submitters just woken take their data
        // before reading more (they drop it, and its buffer is reused),
        // rather than hold up to a queue's depth of them at once.
        if small && n > 0 {
            tokio::task::yield_now().await;
        }
    }
}

/// Fires command deadlines (its own task: a writer blocked on a peer that
/// stopped reading must not stop timeouts from firing).
async fn timer(sh: Arc<Shared>) {
    let mut wake = Vec::new();
    loop {
        let (next, n) = {
            let mut st = lock(&sh);
            if sh.closed.load(Ordering::Acquire) {
                return;
            }
            let before = st.core.reads_retired();
            let next = st.core.poll_timeout(tokio::time::Instant::now().into_std());
            // Reads retired from a stalled queue complete now.
            let n = collect(&mut st, &mut wake);
            let retired = st.core.reads_retired() - before;
            // Under the lock: a failing queue (`fail` sets `closed`, then
            // takes the lock, then clears the report) never stays counted.
            if next.is_ok() && !sh.closed.load(Ordering::Acquire) {
                let escalate = st.core.stalled_with_unretired();
                report_stall(&sh, st.core.is_stalled(), retired, escalate);
            }
            (next, n)
        };
        deliver(&sh, n, &mut wake);
        match next {
            Err(e) => {
                fail(&sh, e);
                return;
            }
            Ok(Some(d)) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(d.into()) => {}
                    _ = sh.wake_timer.notified() => {}
                }
            }
            Ok(None) => sh.wake_timer.notified().await,
        }
    }
}
