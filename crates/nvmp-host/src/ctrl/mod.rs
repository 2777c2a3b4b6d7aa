//! A controller: a cheap-to-clone handle on one association with an NVMe
//! controller (admin queue + I/O queues) that resets and reconnects itself.

mod admin;
pub mod ccr;
pub mod connect;
mod io;
pub mod state;
mod supervisor;

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwapOption;
use std::time::Duration;

use nvmp_wire::admin::AsyncEvent;
use nvmp_wire::identify::IdentifyController;
use nvmp_wire::{Status, StatusCode};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::command::{Completion, IoRequest, RequestSource};
use crate::error::HostError;
use crate::options::ControllerOptions;
use crate::transport::{Connector, TcpConnector};
use connect::{Association, FailSink};
use state::{CtrlState, StateMachine};

/// What a controller reports to the layers above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtrlEvent {
    StateChanged {
        from: CtrlState,
        to: CtrlState,
    },
    /// An Asynchronous Event Request completed (the AER is reposted).
    AsyncEvent(AsyncEvent),
    /// The Changed Namespace List read after a namespace-attribute notice.
    ChangedNamespaces(Vec<u32>),
    /// The association was torn down; `reason` says why.
    Reset {
        reason: String,
    },
    /// A reconnect attempt failed.
    ReconnectFailed {
        attempt: u64,
        error: String,
    },
    /// Given up (ctrl_loss_tmo, a Connect rejected with DNR, or disconnect).
    Deleted {
        reason: String,
        status: Option<Status>,
    },
}

/// Counters of one controller (I/O queues only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtrlStats {
    pub completed: u64,
    pub errors: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub outstanding: usize,
    pub resets: u64,
    /// Reads retired from a stalled I/O queue ([`Controller::set_read_stall`]).
    pub reads_retired: u64,
}

#[derive(Debug, Default)]
struct Counters {
    completed: AtomicU64,
    errors: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    outstanding: AtomicUsize,
    resets: AtomicU64,
}

impl Counters {
    /// One command completed (`write`/`read`: its data lengths).
    #[inline]
    fn finish(&self, done: &Completion, write: u64, read: u64) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        if done.status.is_success() {
            self.bytes_written.fetch_add(write, Ordering::Relaxed);
            self.bytes_read.fetch_add(read, Ordering::Relaxed);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub(crate) enum SupMsg {
    Failed { gen: u64, reason: String },
    Disconnect(oneshot::Sender<()>),
}

pub(crate) struct Inner {
    pub opts: ControllerOptions,
    pub connector: Arc<dyn Connector>,
    sm: Mutex<StateMachine>,
    state_tx: watch::Sender<CtrlState>,
    /// Set when fast_io_fail_tmo expired during this loss.
    failfast_tx: watch::Sender<bool>,
    /// Mirrors of `state_tx` and `failfast_tx` for the I/O path: a load
    /// instead of the watch channel's lock per command.
    state_now: AtomicU8,
    failfast_now: AtomicBool,
    pub events: broadcast::Sender<CtrlEvent>,
    /// Read per command without a lock or a shared reference count.
    assoc: ArcSwapOption<Association>,
    /// Identify data of the last association (kept while reconnecting).
    id: RwLock<Arc<IdentifyController>>,
    cntlid: AtomicU16,
    max_transfer: AtomicU64,
    rr: AtomicUsize,
    queued: AtomicUsize,
    counters: Counters,
    /// Read stall bound in ms (0: off), applied to every association's I/O queues.
    read_stall_ms: AtomicU64,
    stall: Arc<crate::conn::StallWatch>,
    pub sup: mpsc::UnboundedSender<SupMsg>,
    pub dead_status: Mutex<Option<Status>>,
}

impl Inner {
    /// The one place controller states change: validated, traced, published.
    pub fn set_state(&self, to: CtrlState) -> bool {
        let from = {
            let mut sm = self.sm.lock().unwrap_or_else(|p| p.into_inner());
            let from = sm.set_state(to);
            if from.is_some() {
                // Under the state machine's lock: mirrors follow its order.
                self.state_now.store(to.as_u8(), Ordering::Release);
            }
            from
        };
        match from {
            Some(from) => {
                self.state_tx.send_replace(to);
                let _ = self.events.send(CtrlEvent::StateChanged { from, to });
                true
            }
            None => false,
        }
    }
    pub fn state(&self) -> CtrlState {
        CtrlState::from_u8(self.state_now.load(Ordering::Acquire))
    }
    pub fn set_failfast(&self, v: bool) {
        self.failfast_now.store(v, Ordering::Release);
        self.failfast_tx.send_replace(v);
    }
    pub fn failfast(&self) -> bool {
        self.failfast_now.load(Ordering::Acquire)
    }
    fn name(&self) -> String {
        format!(
            "ctrl-{}@{}",
            self.cntlid.load(Ordering::Relaxed),
            self.opts.address()
        )
    }
    pub fn install(&self, a: Arc<Association>) {
        self.cntlid.store(a.cntlid, Ordering::Relaxed);
        self.max_transfer
            .store(a.max_transfer as u64, Ordering::Relaxed);
        *self.id.write().unwrap_or_else(|p| p.into_inner()) = a.id.clone();
        self.sm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_name(format!("ctrl-{}@{}", a.cntlid, self.opts.address()));
        self.apply_read_stall(&a);
        self.assoc.store(Some(a));
    }
    fn apply_read_stall(&self, a: &Association) {
        let ms = self.read_stall_ms.load(Ordering::Relaxed);
        let after = (ms > 0).then(|| Duration::from_millis(ms));
        for q in &a.io {
            q.watch_stalls(after, &self.stall);
        }
    }
    pub fn take_assoc(&self) -> Option<Arc<Association>> {
        self.assoc.swap(None)
    }
    pub fn assoc(&self) -> Option<Arc<Association>> {
        self.assoc.load_full()
    }
    pub fn fail_sink(self: &Arc<Self>) -> FailSink {
        let tx = self.sup.clone();
        Arc::new(move |gen, qid, e| {
            let _ = tx.send(SupMsg::Failed {
                gen,
                reason: format!("queue {qid}: {e}"),
            });
        })
    }
}

/// A handle on one NVMe controller (cheap to clone).
#[derive(Clone)]
pub struct Controller {
    pub(crate) inner: Arc<Inner>,
    /// Dropped with the last handle: the controller is then deleted.
    _owner: Arc<Owner>,
}

/// When every [`Controller`] handle is gone, delete the controller (the
/// supervisor and its tasks would otherwise live on).
struct Owner(mpsc::UnboundedSender<SupMsg>);

impl Drop for Owner {
    fn drop(&mut self) {
        let (tx, _) = oneshot::channel();
        let _ = self.0.send(SupMsg::Disconnect(tx));
    }
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("name", &self.name())
            .field("state", &self.state())
            .finish()
    }
}

impl Controller {
    /// Connect over TCP. The first connect must succeed; later losses reconnect.
    pub async fn connect(opts: ControllerOptions) -> Result<Controller, HostError> {
        Self::connect_with(opts, Arc::new(TcpConnector)).await
    }

    /// Connect through another transport (tests, in-memory links).
    pub async fn connect_with(
        opts: ControllerOptions,
        connector: Arc<dyn Connector>,
    ) -> Result<Controller, HostError> {
        opts.validate()?;
        let (sup_tx, sup_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            sm: Mutex::new(StateMachine::new(format!("ctrl@{}", opts.address()))),
            state_tx: watch::channel(CtrlState::New).0,
            failfast_tx: watch::channel(false).0,
            state_now: AtomicU8::new(CtrlState::New.as_u8()),
            failfast_now: AtomicBool::new(false),
            events: broadcast::channel(256).0,
            assoc: ArcSwapOption::empty(),
            id: RwLock::new(Arc::new(IdentifyController::default())),
            cntlid: AtomicU16::new(0xFFFF),
            max_transfer: AtomicU64::new(1 << 20),
            rr: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            counters: Counters::default(),
            read_stall_ms: AtomicU64::new(0),
            stall: Arc::default(),
            sup: sup_tx,
            dead_status: Mutex::new(None),
            opts,
            connector,
        });
        inner.set_state(CtrlState::Connecting);
        match connect::establish(&inner.opts, &inner.connector, 1, &inner.fail_sink()).await {
            Ok(a) => {
                let a = Arc::new(a);
                inner.install(a.clone());
                inner.set_state(CtrlState::Live);
                supervisor::start_tasks(&inner, &a);
                tokio::spawn(supervisor::supervise(inner.clone(), sup_rx, 1));
                let owner = Arc::new(Owner(inner.sup.clone()));
                Ok(Controller {
                    inner,
                    _owner: owner,
                })
            }
            Err(e) => {
                *inner.dead_status.lock().unwrap_or_else(|p| p.into_inner()) = e.status();
                inner.set_state(CtrlState::Deleting);
                inner.set_state(CtrlState::Dead);
                Err(e)
            }
        }
    }

    pub fn options(&self) -> &ControllerOptions {
        &self.inner.opts
    }
    pub fn state(&self) -> CtrlState {
        self.inner.state()
    }
    pub fn watch_state(&self) -> watch::Receiver<CtrlState> {
        self.inner.state_tx.subscribe()
    }
    pub fn events(&self) -> broadcast::Receiver<CtrlEvent> {
        self.inner.events.subscribe()
    }
    /// Identify Controller data of the current (or last) association.
    pub fn id_ctrl(&self) -> Arc<IdentifyController> {
        self.inner
            .id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    pub fn cntlid(&self) -> u16 {
        self.inner.cntlid.load(Ordering::Relaxed)
    }
    /// "ctrl-<cntlid>@<addr>:<port>".
    pub fn name(&self) -> String {
        self.inner.name()
    }
    /// "traddr:trsvcid".
    pub fn address(&self) -> String {
        self.inner.opts.address()
    }
    pub fn subnqn(&self) -> &str {
        &self.inner.opts.subnqn
    }
    /// Largest data transfer of one command (from MDTS), bytes.
    pub fn max_transfer(&self) -> u32 {
        self.inner.max_transfer.load(Ordering::Relaxed) as u32
    }
    /// Whether fast_io_fail_tmo expired during the current connection loss
    /// (queued and new commands fail fast; multipath stops counting this
    /// controller as one that may come back).
    pub fn fast_fail_expired(&self) -> bool {
        self.inner.failfast()
    }
    /// Complete reads at once with a path error (Command Aborted By Host,
    /// 00h/71h) when an I/O queue has had commands outstanding and completed
    /// nothing for `after` (None or zero: off, the default). Only for a
    /// caller that sends such reads elsewhere: the multipath layer does, on
    /// every controller it links (`MpathConfig::read_stall`). Writes are
    /// never retired. Applies to the current and later associations.
    pub fn set_read_stall(&self, after: Option<Duration>) {
        let ms = after
            .filter(|d| !d.is_zero())
            .map_or(0, |d| d.as_millis().clamp(1, u64::MAX as u128) as u64);
        self.inner.read_stall_ms.store(ms, Ordering::Relaxed);
        if let Some(a) = self.inner.assoc() {
            self.inner.apply_read_stall(&a);
        }
    }
    /// An I/O queue completed nothing for the read stall bound while
    /// commands were outstanding, and has not completed anything since.
    pub fn is_stalled(&self) -> bool {
        self.inner.stall.stalled_queues.load(Ordering::Relaxed) > 0
    }
    /// Resolves when an I/O queue is stalled with commands that were not
    /// retired (writes, flushes) still waiting on it, checked each half
    /// stall bound: one waiter, such as the multipath layer's monitor of
    /// this controller.
    pub async fn stalled(&self) {
        self.inner.stall.stalled_event.notified().await
    }
    /// Resolves when an I/O queue becomes stalled or answers again
    /// ([`Controller::is_stalled`] may have changed): one waiter, such as
    /// the multipath layer's monitor of this controller.
    pub async fn stall_changed(&self) {
        self.inner.stall.stall_changed.notified().await
    }
    /// Number of I/O queues of the current association.
    pub fn io_queues(&self) -> usize {
        self.inner.assoc().map_or(0, |a| a.io.len())
    }
    /// The status of the Connect that made this controller give up, if any.
    pub fn dead_status(&self) -> Option<Status> {
        *self
            .inner
            .dead_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
    /// Commands in flight on the I/O queues (and held while reconnecting).
    pub fn outstanding(&self) -> usize {
        self.inner.counters.outstanding.load(Ordering::Relaxed)
    }
    pub fn stats(&self) -> CtrlStats {
        let c = &self.inner.counters;
        CtrlStats {
            completed: c.completed.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            outstanding: c.outstanding.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            reads_retired: self.inner.stall.reads_retired.load(Ordering::Relaxed),
        }
    }
    pub(crate) fn count_reset(inner: &Inner) {
        inner.counters.resets.fetch_add(1, Ordering::Relaxed);
    }

    /// Run an I/O command on an I/O queue (round robin). Never a Rust
    /// error: transport failures, timeouts and "not live" are statuses
    /// (0x371 torn down in flight, 0x370 not sent).
    ///
    /// [`Controller::start`], then its [`Pending`] completion; a command
    /// that could not be queued at once waits here for a slot, or for the
    /// controller to be live again when it queues while reconnecting.
    pub async fn submit(&self, req: IoRequest) -> Completion {
        match self.start(req) {
            Started::Queued(p) => p.await,
            Started::Done(c) => c,
            Started::NotSent(req) => self.submit_waiting(req).await,
        }
    }

    /// Queue an I/O command now, without waiting: the poll-based half of
    /// [`Controller::submit`] for layers above (the multipath head) that
    /// await the completion in their own future. Counted in
    /// [`Controller::stats`] as by `submit`, except a command handed back
    /// [`Started::NotSent`]: that is counted once it is submitted again.
    #[inline]
    pub fn start(&self, req: IoRequest) -> Started<'_> {
        self.start_from(req)
    }

    /// [`Controller::start`] with a copy of `req`, made where the queue
    /// takes it: for a caller that keeps the request (to resend it
    /// elsewhere if it fails). [`Started::NotSent`] holds a copy.
    #[inline]
    pub fn start_copy(&self, req: &IoRequest) -> Started<'_> {
        self.start_from(req)
    }

    #[inline(always)]
    fn start_from<R: RequestSource>(&self, req: R) -> Started<'_> {
        let r = req.request();
        let (write, read) = (
            r.write.as_ref().map_or(0, |w| w.len() as u64),
            r.read_len as u64,
        );
        if r.data_len() > self.max_transfer() {
            let c = self.mdts_refused(r);
            return Started::Done(self.count(c, write, read));
        }
        if self.inner.state() != CtrlState::Live {
            return Started::NotSent(req.into_request());
        }
        let conn = {
            let a = self.inner.assoc.load();
            match a.as_ref() {
                Some(a) if !a.io.is_empty() => a.io[pick_queue(&self.inner.rr, a.io.len())].clone(),
                // Live without I/O queues (a discovery controller).
                Some(_) => {
                    let c = Completion::host_pathing_error();
                    return Started::Done(self.count(c, write, read));
                }
                None => return Started::NotSent(req.into_request()),
            }
        };
        let timeout = Duration::from_millis(self.inner.opts.io_timeout_ms);
        match conn.send_now(req, Some(timeout)) {
            Ok(ticket) => {
                self.inner
                    .counters
                    .outstanding
                    .fetch_add(1, Ordering::Relaxed);
                Started::Queued(Pending {
                    counters: &self.inner.counters,
                    wait: conn.queued(ticket),
                    write,
                    read,
                    done: false,
                })
            }
            Err((_, crate::queue::SubmitError::Invalid)) => {
                let c = Completion::with_status(Status::new(StatusCode::INVALID_FIELD).with_dnr());
                Started::Done(self.count(c, write, read))
            }
            Err((req, _)) => Started::NotSent(req),
        }
    }

    /// Count a command that completed without a [`Pending`].
    fn count(&self, done: Completion, write: u64, read: u64) -> Completion {
        self.inner.counters.finish(&done, write, read);
        done
    }

    #[cold]
    fn mdts_refused(&self, req: &IoRequest) -> Completion {
        tracing::warn!(
            ctrl = %self.name(),
            len = req.data_len(),
            max = self.max_transfer(),
            "transfer larger than MDTS refused"
        );
        Completion::with_status(Status::new(StatusCode::INVALID_FIELD).with_dnr())
    }

    /// [`Controller::submit`] of a command that could not be queued at once.
    async fn submit_waiting(&self, req: IoRequest) -> Completion {
        let c = &self.inner.counters;
        // Counted until this future completes or is dropped (a caller that
        // gives up on a command must not leave the count high forever).
        let guard = OutstandingGuard::new(&c.outstanding);
        let (write, read) = (
            req.write.as_ref().map_or(0, |w| w.len() as u64),
            req.read_len as u64,
        );
        let done = self.submit_inner(req).await;
        drop(guard);
        c.finish(&done, write, read);
        done
    }

    async fn submit_inner(&self, mut req: IoRequest) -> Completion {
        if req.data_len() > self.max_transfer() {
            tracing::warn!(
                ctrl = %self.name(),
                len = req.data_len(),
                max = self.max_transfer(),
                "transfer larger than MDTS refused"
            );
            return Completion::with_status(Status::new(StatusCode::INVALID_FIELD).with_dnr());
        }
        let timeout = Duration::from_millis(self.inner.opts.io_timeout_ms);
        loop {
            if self.inner.state() == CtrlState::Live {
                let conn = {
                    let a = self.inner.assoc.load();
                    match a.as_ref() {
                        Some(a) if !a.io.is_empty() => {
                            Some(a.io[pick_queue(&self.inner.rr, a.io.len())].clone())
                        }
                        Some(_) => {
                            // Live without I/O queues (a discovery controller).
                            return Completion::host_pathing_error();
                        }
                        None => None,
                    }
                };
                if let Some(conn) = conn {
                    match conn.try_submit(req, Some(timeout)).await {
                        Ok(c) => return c,
                        Err((r, crate::queue::SubmitError::Invalid)) => {
                            let _ = r;
                            return Completion::with_status(
                                Status::new(StatusCode::INVALID_FIELD).with_dnr(),
                            );
                        }
                        Err((r, _)) => req = r,
                    }
                }
            }
            if !self.wait_live().await {
                return Completion::host_pathing_error();
            }
        }
    }

    /// Wait until the controller is live again. False when commands must
    /// fail now: not queueing (multipath), fast_io_fail expired, the
    /// controller cannot come back, or too many are held already.
    async fn wait_live(&self) -> bool {
        let inner = &self.inner;
        if !inner.opts.queue_while_reconnecting {
            return false;
        }
        let mut st = inner.state_tx.subscribe();
        let mut ff = inner.failfast_tx.subscribe();
        if inner.queued.fetch_add(1, Ordering::AcqRel) >= inner.opts.max_queued {
            inner.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        let r = loop {
            let s = *st.borrow_and_update();
            if *ff.borrow_and_update() || !s.may_come_back() {
                break false;
            }
            if s == CtrlState::Live {
                // Live but the queue we picked was closed: let the reset start.
                let _ = tokio::time::timeout(Duration::from_millis(20), st.changed()).await;
                break true;
            }
            tokio::select! {
                r = st.changed() => if r.is_err() { break false },
                r = ff.changed() => if r.is_err() { break false },
            }
        };
        inner.queued.fetch_sub(1, Ordering::AcqRel);
        r
    }

    /// Delete the controller: normal shutdown (CC.SHN), close the queues.
    /// Commands held or submitted afterwards complete with 0x370.
    pub async fn disconnect(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.sup.send(SupMsg::Disconnect(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Reset the controller now (tear down and reconnect), as `nvme reset`.
    pub fn reset(&self) {
        if let Some(a) = self.inner.assoc() {
            let _ = self.inner.sup.send(SupMsg::Failed {
                gen: a.gen,
                reason: "reset requested".into(),
            });
        }
    }

    /// CAP of the current association (None while not connected).
    pub fn cap(&self) -> Option<u64> {
        self.inner.assoc().map(|a| a.cap)
    }
    /// VS (NVMe version) of the current association.
    pub fn vs(&self) -> Option<u32> {
        self.inner.assoc().map(|a| a.vs)
    }
}

/// What [`Controller::start`] did with a command.
pub enum Started<'a> {
    /// Queued on an I/O queue: await its completion.
    Queued(Pending<'a>),
    /// Not sent, handed back: no free slot on the queue now, or the
    /// controller is not live. [`Controller::submit`] waits for a slot, and
    /// for the controller where it queues while reconnecting (else 0x370).
    NotSent(IoRequest),
    /// Completed without being sent (larger than MDTS, an invalid request,
    /// a controller without I/O queues).
    Done(Completion),
}

/// The completion of a command [`Controller::start`] queued. Dropped
/// before it completes, the command is no longer counted as outstanding
/// (its queue slot stays taken until the controller answers or the queue
/// is torn down).
pub struct Pending<'a> {
    counters: &'a Counters,
    wait: crate::conn::Queued,
    write: u64,
    read: u64,
    done: bool,
}

impl std::fmt::Debug for Pending<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("done", &self.done).finish()
    }
}

impl std::future::Future for Pending<'_> {
    type Output = Completion;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Completion> {
        let this = self.get_mut();
        let c = std::task::ready!(std::pin::Pin::new(&mut this.wait).poll(cx));
        if !this.done {
            this.done = true;
            let n = this.counters;
            n.outstanding.fetch_sub(1, Ordering::Relaxed);
            n.finish(&c, this.write, this.read);
        }
        std::task::Poll::Ready(c)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.counters.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Holds one unit of the `outstanding` counter.
struct OutstandingGuard<'a>(&'a AtomicUsize);

impl<'a> OutstandingGuard<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Self(n)
    }
}

impl Drop for OutstandingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The I/O queue for a command. With one queue per core (the default,
/// as Linux maps a CPU to its hardware queue) the queue of the submitting
/// thread: each runtime worker keeps to its own queue, so a queue's state
/// stays in one core's cache and no counter is shared between cores.
/// Otherwise (fewer or more queues than cores) round robin.
#[inline]
fn pick_queue(rr: &AtomicUsize, n: usize) -> usize {
    use std::cell::Cell;
    use std::sync::OnceLock;
    static CORES: OnceLock<usize> = OnceLock::new();
    static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static THREAD_NO: Cell<Option<usize>> = const { Cell::new(None) };
    }
    if n == *CORES.get_or_init(|| crate::options::default_io_queues() as usize) {
        THREAD_NO.with(|c| {
            let t = c.get().unwrap_or_else(|| {
                let t = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
                c.set(Some(t));
                t
            });
            t % n
        })
    } else {
        rr.fetch_add(1, Ordering::Relaxed) % n
    }
}
