//! A bounded set of request futures run inside the connection task: no
//! task spawn per request, and no allocation once warmed up (each slot's
//! box and waker are reused). Only slots whose waker fired are polled. A
//! panicking future is caught here and reported as such, so the connection
//! can still answer its request.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

/// Slots whose futures were woken, and the waker of the task that owns the
/// set.
#[derive(Default)]
struct ReadyState {
    list: Vec<usize>,
    queued: Vec<bool>,
    owner: Option<Waker>,
}

#[derive(Default)]
struct Ready(Mutex<ReadyState>);

impl Ready {
    fn lock(&self) -> MutexGuard<'_, ReadyState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues slot `i` for polling; with `wake`, wakes the owner too.
    fn mark(&self, i: usize, wake: bool) {
        let mut st = self.lock();
        if !st.queued[i] {
            st.queued[i] = true;
            st.list.push(i);
        }
        if wake {
            if let Some(w) = &st.owner {
                w.wake_by_ref();
            }
        }
    }
}

struct SlotWaker {
    index: usize,
    ready: Arc<Ready>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.ready.mark(self.index, true);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.mark(self.index, true);
    }
}

struct Slot<F, M> {
    fut: Pin<Box<Option<F>>>,
    meta: Option<M>,
    waker: Waker,
}

/// How a future ended.
pub(crate) enum Finished<T> {
    Done(T),
    /// It panicked (the panic message went to the panic hook as usual).
    Panicked,
}

/// At most `capacity` futures of type `F`, each with metadata `M` handed
/// back when it finishes.
pub(crate) struct Slots<F, M> {
    slots: Vec<Slot<F, M>>,
    free: Vec<usize>,
    ready: Arc<Ready>,
    /// Reused buffer for the indices taken off the ready list.
    batch: Vec<usize>,
    capacity: usize,
    running: usize,
}

impl<F: Future, M> Slots<F, M> {
    pub(crate) fn new(capacity: usize) -> Self {
        Slots {
            slots: Vec::new(),
            free: Vec::new(),
            ready: Arc::default(),
            batch: Vec::new(),
            capacity,
            running: 0,
        }
    }

    /// Futures not yet finished.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.running
    }

    pub(crate) fn is_full(&self) -> bool {
        self.running >= self.capacity
    }

    /// Adds a future; it is polled by the next [`Slots::poll_finished`].
    /// The caller keeps `len() < capacity` (checked: a full set is a bug).
    pub(crate) fn push(&mut self, fut: F, meta: M) {
        assert!(!self.is_full(), "request set is full");
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                let index = self.slots.len();
                let waker = Waker::from(Arc::new(SlotWaker {
                    index,
                    ready: self.ready.clone(),
                }));
                self.slots.push(Slot {
                    fut: Box::pin(None),
                    meta: None,
                    waker,
                });
                self.ready.lock().queued.push(false);
                index
            }
        };
        let slot = &mut self.slots[i];
        slot.fut.set(Some(fut));
        slot.meta = Some(meta);
        self.running += 1;
        // The owner polls the set next anyway: no wake-up needed.
        self.ready.mark(i, false);
    }

    /// Polls every woken future; calls `done` for each that finished.
    /// Registers `cx` to be woken when another one makes progress.
    pub(crate) fn poll_finished(
        &mut self,
        cx: &mut Context<'_>,
        mut done: impl FnMut(M, Finished<F::Output>),
    ) {
        {
            let mut st = self.ready.lock();
            if !st.owner.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.owner = Some(cx.waker().clone());
            }
            std::mem::swap(&mut st.list, &mut self.batch);
            for &i in &self.batch {
                st.queued[i] = false;
            }
        }
        for k in 0..self.batch.len() {
            let i = self.batch[k];
            let slot = &mut self.slots[i];
            let Some(fut) = slot.fut.as_mut().as_pin_mut() else {
                continue; // a late wake-up of a finished future
            };
            let mut scx = Context::from_waker(&slot.waker);
            let out = match catch_unwind(AssertUnwindSafe(|| fut.poll(&mut scx))) {
                Ok(Poll::Pending) => continue,
                Ok(Poll::Ready(v)) => Finished::Done(v),
                Err(_) => Finished::Panicked,
            };
            slot.fut.set(None);
            let meta = slot.meta.take().expect("a running slot has its metadata");
            self.free.push(i);
            self.running -= 1;
            done(meta, out);
        }
        self.batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn runs_reuses_slots_and_catches_panics() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let mut rx = Some(rx);
        let mut set = Slots::new(2);
        let make = |n: u32, rx: Option<tokio::sync::oneshot::Receiver<u32>>| async move {
            match rx {
                Some(rx) => rx.await.expect("sent"),
                None if n == 99 => panic!("device bug"),
                None => n,
            }
        };
        set.push(make(0, rx.take()), "waits");
        set.push(make(7, None), "ready");
        assert!(set.is_full());
        let mut seen = vec![];
        poll_fn(|cx| {
            set.poll_finished(cx, |m, r| seen.push((m, matches!(r, Finished::Done(7)))));
            Poll::Ready(())
        })
        .await;
        assert_eq!(seen, vec![("ready", true)]);
        assert_eq!(set.len(), 1);
        set.push(make(99, None), "panics");
        tx.send(5).expect("receiver alive");
        let mut out = vec![];
        poll_fn(|cx| {
            set.poll_finished(cx, |m, r| {
                out.push((
                    m,
                    matches!(r, Finished::Panicked),
                    matches!(r, Finished::Done(5)),
                ))
            });
            if set.len() == 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        out.sort();
        assert_eq!(out, vec![("panics", true, false), ("waits", false, true)]);
        assert_eq!(set.slots.len(), 2, "slots are reused, not added");
    }
}
