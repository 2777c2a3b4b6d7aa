//! The tokio driver of one queue: a reader task and a writer task around a
//! [`QueueCore`] behind a short-held mutex.
//!
//! - Submitters take a slot permit (backpressure at queue depth: they await
//!   a free slot), queue the capsule and wake the writer.
//! - The writer drains every ready PDU in one go and coalesces them into
//!   as few writes as possible; large write payloads go out as their own
//!   `Bytes` without copying. It also checks command deadlines.
//! - The reader decodes PDUs (read data are zero-copy slices of the receive
//!   buffer) and completes commands through a oneshot each.
//!
//! A fatal error (malformed PDU, protocol violation, C2HTermReq, timeout,
//! EOF) fails the connection once: an H2CTermReq goes out where due, every
//! command in flight completes with 0x371, and the owner is told.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use nvmp_wire::pdu::EncodeOptions;
use nvmp_wire::{Pdu, Status, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, watch, Notify, Semaphore};
use tokio::task::AbortHandle;

use crate::command::{Completion, IoRequest};
use crate::error::HostError;
use crate::queue::{QueueConfig, QueueCore, QueueError, SubmitError};
use crate::transport::{BoxRead, BoxWrite};

type Waiter = oneshot::Sender<Completion>;
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

struct Shared {
    qid: u16,
    core: Mutex<QueueCore<Waiter>>,
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
        let (tx, rx) = oneshot::channel();
        let deadline = timeout.map(|t| (tokio::time::Instant::now() + t).into_std());
        let r = lock(&self.sh).submit(tx, req, deadline);
        match r {
            Ok(_) => self.sh.wake_writer.notify_one(),
            Err((_, req, e)) => {
                self.sh.slots.add_permits(1);
                return Err((req, e));
            }
        }
        Ok(rx.await.unwrap_or_else(|_| Completion::aborted_by_host()))
    }

    /// Tear the queue down (in-flight commands complete with 0x371).
    pub fn close(&self) {
        fail(&self.sh, QueueError::Closed);
    }
}

fn lock<'a>(sh: &'a Shared) -> MutexGuard<'a, QueueCore<Waiter>> {
    sh.core.lock().unwrap_or_else(|p| p.into_inner())
}
fn lock_reader(sh: &Shared) -> MutexGuard<'_, Option<AbortHandle>> {
    sh.reader.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hand finished commands to their waiters.
fn deliver(sh: &Shared, done: &mut Vec<(Waiter, Completion)>) {
    let n = done.len();
    for (tx, c) in done.drain(..) {
        let _ = tx.send(c);
    }
    if n > 0 && !sh.closed.load(Ordering::Acquire) {
        sh.slots.add_permits(n);
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

async fn reader(sh: Arc<Shared>, mut read: BoxRead) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut done = Vec::with_capacity(64);
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                fail(&sh, QueueError::Closed);
                return;
            }
            Ok(_) => {}
        }
        let (r, wake, ready) = {
            let mut core = lock(&sh);
            let was_ready = core.is_ready();
            let r = core.receive(&mut buf);
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
