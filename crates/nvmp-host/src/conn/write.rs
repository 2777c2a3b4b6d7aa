//! The sending side of a queue: the write half of the stream and the batch
//! being written, behind their own mutex ([`WriteSide`]), written by the
//! writer task or, when the queue is idle, by the submitter itself.
//!
//! - The writer task lets every task that is ready run first (one
//!   `yield_now`), then drains every queued PDU and writes them with
//!   vectored writes: many PDUs per system call, payloads never copied.
//! - Run to completion: a command submitted to an idle queue (nothing else
//!   in flight, no completion waiting for its submitter, nothing being
//!   written) is written by its submitter at once, as Linux's nvme-tcp
//!   does: no wake-up of the writer task, no task hop. Where commands
//!   come in bursts (queue depth > 1) they still go through the writer, so
//!   that one write carries many of them.
//!
//! Locks: the submitter holds the state lock and only *tries* the write
//! lock; the writer task takes the write lock, then the state lock (to
//! drain). Nobody waits for the write lock while holding the state lock,
//! so the two cannot deadlock; PDUs leave the core in order under the
//! state lock and reach the socket in that order under the write lock.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use nvmp_wire::pdu::EncodeOptions;
use nvmp_wire::Pdu;
use tokio::io::AsyncWrite;

use super::out::OutBatch;
use super::{fail, lock, Shared, State, CLOSE_FLUSH, WRITE_BATCH_MAX};
use crate::queue::QueueError;
use crate::transport::BoxWrite;

/// The write half of a queue's stream and what is being written to it.
pub(super) struct WriteSide {
    w: BoxWrite,
    /// PDUs encoded and not yet (all) written. Not empty between polls
    /// only while a write waits for the socket.
    out: OutBatch,
    /// PDUs were left queued in the core when `out` was filled (the batch
    /// reached `WRITE_BATCH_MAX`).
    more: bool,
    /// The stream is at a PDU boundary (a TermReq may still be sent).
    clean: bool,
}

impl WriteSide {
    pub fn new(w: BoxWrite) -> Mutex<Self> {
        Mutex::new(Self {
            w,
            out: OutBatch::new(),
            more: false,
            clean: true,
        })
    }
}

fn lock_write(sh: &Shared) -> MutexGuard<'_, WriteSide> {
    sh.write.lock().unwrap_or_else(|p| p.into_inner())
}

/// Move the core's queued PDUs into `out` (up to `WRITE_BATCH_MAX` bytes).
/// Returns whether PDUs are left queued (the batch is full).
fn drain(sh: &Shared, out: &mut OutBatch) -> bool {
    let mut st = lock(sh);
    let enc = st.core.encode_options();
    while out.len() < WRITE_BATCH_MAX {
        match st.core.pop_outbound() {
            Some(p) => out.push(&p, enc),
            None => return false,
        }
    }
    st.core.has_outbound()
}

/// Write what the core has queued (the batch left half-written first).
/// Ready(Ok(more)): all written, `more` when the batch was full.
fn poll_write_queued(sh: &Shared, cx: &mut Context<'_>) -> Poll<std::io::Result<bool>> {
    let mut ws = lock_write(sh);
    let ws = &mut *ws;
    if ws.out.is_empty() {
        ws.more = drain(sh, &mut ws.out);
        if ws.out.is_empty() {
            return Poll::Ready(Ok(false));
        }
    }
    std::task::ready!(ws.out.poll_flush(&mut ws.w, cx))?;
    Poll::Ready(Ok(std::mem::take(&mut ws.more)))
}

/// A PDU the submitter writes itself ([`try_inline`]), with the write lock.
pub(super) struct Inline<'a> {
    ws: MutexGuard<'a, WriteSide>,
    pdu: Pdu,
    enc: EncodeOptions,
}

/// Run to completion: when `st`'s queue is idle — the command just queued
/// is the only one in flight and the only PDU queued, no completion waits
/// for its submitter (who would submit again soon: let the writer batch
/// them), nothing is being written — take its PDU out of the core for the
/// submitter to write ([`write_inline`], after releasing the state lock).
#[inline]
pub(super) fn try_inline<'a>(sh: &'a Shared, st: &mut State) -> Option<Inline<'a>> {
    if st.core.in_flight() != 1 || st.cells.any_done() {
        return None;
    }
    let ws = sh.write.try_lock().ok()?;
    if !ws.out.is_empty() {
        return None;
    }
    let pdu = st.core.pop_sole_outbound()?;
    Some(Inline {
        ws,
        pdu,
        enc: st.core.encode_options(),
    })
}

/// Write an [`Inline`] PDU now, without waiting: what the socket does not
/// take at once is left to the writer task (woken), and a failed write
/// fails the queue.
pub(super) fn write_inline(sh: &Shared, inline: Inline<'_>) {
    let Inline { mut ws, pdu, enc } = inline;
    ws.out.push(&pdu, enc);
    drop(pdu);
    let ws_ref = &mut *ws;
    let mut cx = Context::from_waker(Waker::noop());
    match ws_ref.out.poll_flush(&mut ws_ref.w, &mut cx) {
        Poll::Ready(Ok(())) => {}
        // The rest goes when the socket has room: the writer waits for it.
        Poll::Pending => {
            drop(ws);
            sh.wake_writer.notify_one();
        }
        Poll::Ready(Err(_)) => {
            ws.clean = false;
            drop(ws);
            fail(sh, QueueError::Closed);
        }
    }
}

pub(super) async fn writer(sh: std::sync::Arc<Shared>) {
    loop {
        // A failing queue sets `closed`, then wakes the writer.
        sh.wake_writer.notified().await;
        // Let the tasks that are ready now (submitters woken by the same
        // batch of completions) queue their commands first, so that they
        // go out in one write. Without this, tokio's LIFO slot runs the
        // writer right after the first submitter: one write per command.
        // Only when other commands are in flight: a lone command (QD1) has
        // nobody to wait for, and the yield would cost it a trip through
        // the runtime's I/O driver.
        if lock(&sh).core.in_flight() > 1 {
            tokio::task::yield_now().await;
        }
        loop {
            if sh.closed.load(Ordering::Acquire) {
                break;
            }
            // A failure (timeout, reset) abandons a write blocked on a peer
            // that stopped reading.
            let r = tokio::select! {
                biased;
                r = poll_fn(|cx| poll_write_queued(&sh, cx)) => r,
                _ = sh.abort_write.notified() => {
                    lock_write(&sh).clean = false;
                    break;
                }
            };
            match r {
                // PDUs queued during the write left a wake-up (a Notify
                // permit): no need to look again now, unless the batch
                // was full.
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => {
                    lock_write(&sh).clean = false;
                    fail(&sh, QueueError::Closed);
                    break;
                }
            }
        }
        if sh.closed.load(Ordering::Acquire) {
            break;
        }
    }
    // Closing: send what is due (an H2CTermReq), briefly, then close.
    let send = {
        let mut ws = lock_write(&sh);
        ws.out.clear();
        drain(&sh, &mut ws.out);
        ws.clean && !ws.out.is_empty()
    };
    if send {
        let _ = tokio::time::timeout(
            CLOSE_FLUSH,
            poll_fn(|cx| {
                let mut ws = lock_write(&sh);
                let ws = &mut *ws;
                ws.out.poll_flush(&mut ws.w, cx)
            }),
        )
        .await;
    }
    let _ = tokio::time::timeout(
        CLOSE_FLUSH,
        poll_fn(|cx| Pin::new(&mut lock_write(&sh).w).poll_shutdown(cx)),
    )
    .await;
    if let Some(r) = super::lock_reader(&sh).take() {
        r.abort();
    }
}
