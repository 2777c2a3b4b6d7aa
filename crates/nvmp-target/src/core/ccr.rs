//! Cross-Controller Reset (NVMe Base 2.3, 5.4.3; TP8028 "Rapid Path
//! Failure Recovery"): a host that lost a controller asks another
//! controller of the same subsystem to reset the impacted one, which it
//! names by CNTLID, CIU and CIRN from the impacted controller's Identify
//! data. The target quiesces the impacted controller for real: once the
//! command reports the reset done, no command of that controller instance
//! reaches a backend any more.
//!
//! The mechanism is a [`Gate`] per connection: every I/O command enters it
//! right before its backend operation (RAM in line, files on the pool) and
//! leaves when the operation ended. Tearing a controller down (CCR, lost
//! admin queue, keep-alive timeout, port down) fences the gates of all its
//! queues: a command not yet in a backend is refused from then on (a file
//! operation waiting in the pool is dropped), and the reset is complete
//! when the gates are empty. A controller instance whose gates are not
//! empty yet stays known as a *zombie* so that a CCR naming it waits too.
//!
//! Choices where the specification text was not at hand (documented in
//! docs/ARCHITECTURE.md): a CCR naming no existing instance (wrong CIU or
//! CIRN, another host's controller, a CNTLID not in use) completes with
//! Immediate Reset Successful and Validated cleared, resetting nothing; a
//! CCR naming the controller that processes it is an Invalid Field; only
//! controllers of the same host NQN and subsystem can be reset.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nvmp_wire::admin::ccr::{
    CcrEntry, CcrLog, CcrResult, CcrStatus, CrossControllerResetCmd, AEC_CCR_COMPLETED,
    CCR_LSP_RMC, NOTICE_CCR_COMPLETED,
};
use nvmp_wire::admin::{AsyncEvent, LogPageId};
use nvmp_wire::{Sqe, StatusCode};

use super::queue::{Bound, Completion, Ctx, Exec};
use super::state::{ConnSignal, State, SubsysRt};

/// CCRL: Cross-Controller Resets one controller may have in progress.
pub const CCR_LIMIT: u8 = 4;
/// Entries a controller's CCR log keeps (in progress, or completed and not
/// yet removed by a read with RMC); past it: "Log Page Full".
pub const CCR_LOG_CAP: usize = 16;
/// CQT reported when the subsystem's `nvmp_cqt_ms` attribute does not set
/// one: a torn-down controller's commands are refused at once, so what is
/// left is one backend operation already running (a file `pwrite` or
/// `fdatasync`); one second bounds that on a healthy disk.
pub const DEFAULT_CQT_MS: u16 = 1000;

const FENCED: u64 = 1 << 63;

/// One connection's admission to the backends.
#[derive(Debug, Default)]
pub struct Gate {
    /// FENCED bit | commands inside.
    bits: AtomicU64,
    /// Admin connections to wake when a fenced gate empties.
    waiters: Mutex<Vec<Arc<ConnSignal>>>,
}

impl Gate {
    /// Admit one backend operation; `false` once fenced. Two uncontended
    /// atomic operations per command (the gate is this connection's own).
    #[inline]
    pub fn enter(&self) -> bool {
        if self.bits.fetch_add(1, Ordering::AcqRel) & FENCED != 0 {
            self.leave();
            return false;
        }
        true
    }
    /// The operation admitted by [`Gate::enter`] ended.
    #[inline]
    pub fn leave(&self) {
        if self.bits.fetch_sub(1, Ordering::AcqRel) == FENCED | 1 {
            let w = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
            for s in w {
                s.wake.notify_one();
            }
        }
    }
    /// Refuse every later operation.
    pub fn fence(&self) {
        self.bits.fetch_or(FENCED, Ordering::AcqRel);
    }
    pub fn is_fenced(&self) -> bool {
        self.bits.load(Ordering::Acquire) & FENCED != 0
    }
    /// Operations inside.
    pub fn inside(&self) -> u64 {
        self.bits.load(Ordering::Acquire) & !FENCED
    }
    /// Fenced and empty: nothing of this connection can reach a backend any more.
    pub fn drained(&self) -> bool {
        self.bits.load(Ordering::Acquire) == FENCED
    }
    /// Wake `s` when the gate empties (register, then check [`Gate::drained`]).
    fn notify_when_drained(&self, s: &Arc<ConnSignal>) {
        let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if !w.iter().any(|x| Arc::ptr_eq(x, s)) {
            w.push(s.clone());
        }
    }
}

/// A backend operation admitted through a [`Gate`], released on drop (a
/// file operation carries it to the pool thread and drops it there).
#[derive(Debug)]
pub struct GateGuard(Arc<Gate>);

impl GateGuard {
    pub fn acquire(g: &Arc<Gate>) -> Option<Self> {
        g.enter().then(|| Self(g.clone()))
    }
    /// Take over an admission the caller made with [`Gate::enter`].
    pub fn entered(g: Arc<Gate>) -> Self {
        Self(g)
    }
    /// The gate was fenced after admission: a pool thread drops the
    /// operation instead of starting it.
    pub fn fenced(&self) -> bool {
        self.0.is_fenced()
    }
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// Per controller: its instance identity, the gates of its queues, its log.
#[derive(Debug, Default)]
pub struct CtrlCcr {
    /// Controller Instance Uniquifier (Identify byte 135).
    pub ciu: u8,
    /// Controller Instance Random Number (Identify bytes 143:136).
    pub cirn: u64,
    /// Gates of every queue bound to the controller (pruned when idle and
    /// their connection is gone).
    pub gates: Vec<Arc<Gate>>,
    /// Resets this controller processed that did not complete with the command.
    pub log: Vec<(CcrEntry, u64)>,
}

/// A torn-down controller instance with operations still in a backend.
#[derive(Debug)]
pub struct Zombie {
    pub cntlid: u16,
    pub ciu: u8,
    pub cirn: u64,
    pub hostnqn: String,
    pub gates: Vec<Arc<Gate>>,
}

impl Zombie {
    fn drained(&self) -> bool {
        self.gates.iter().all(|g| g.drained())
    }
}

/// Per subsystem: the last CIU handed out and the zombies.
#[derive(Debug, Default)]
pub struct SubsysCcr {
    last_ciu: u8,
    pub zombies: Vec<Zombie>,
}

/// A random 64-bit number (std's randomly keyed SipHash over a counter and
/// the clock: no dependency, different for every call and every process).
fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::collections::hash_map::RandomState::new().hash_one((n, std::time::SystemTime::now()))
}

/// The identity of a new controller instance: a CIU that differs from the
/// previous instance's (a subsystem-wide counter, 1..=255, so a CNTLID
/// reused at once never gets its predecessor's CIU) and a random CIRN.
pub fn new_instance(sub: &mut SubsysRt) -> CtrlCcr {
    let s = &mut sub.ccr;
    s.last_ciu = if s.last_ciu == u8::MAX {
        1
    } else {
        s.last_ciu + 1
    };
    s.zombies.retain(|z| !z.drained());
    CtrlCcr {
        ciu: s.last_ciu,
        cirn: random_u64() | 1,
        ..Default::default()
    }
}

/// A queue bound to a controller: its gate joins the controller's.
pub fn bind(st: &mut State, b: &Bound, gate: &Arc<Gate>) {
    if let Some(c) = st.ctrl_mut(&b.subnqn, b.cntlid) {
        // Gates of closed, idle connections are no longer needed.
        c.ccr
            .gates
            .retain(|g| Arc::strong_count(g) > 1 || g.inside() > 0);
        c.ccr.gates.push(gate.clone());
    }
}

/// A controller was removed from its subsystem (any teardown): fence its
/// queues; keep it as a zombie while operations are still in a backend.
pub fn retire(sub: &mut SubsysRt, cntlid: u16, hostnqn: &str, ccr: &CtrlCcr) {
    for g in &ccr.gates {
        g.fence();
    }
    sub.ccr.zombies.retain(|z| !z.drained());
    let z = Zombie {
        cntlid,
        ciu: ccr.ciu,
        cirn: ccr.cirn,
        hostnqn: hostnqn.to_string(),
        gates: ccr.gates.clone(),
    };
    if !z.drained() {
        tracing::debug!(
            cntlid,
            inside = z.gates.iter().map(|g| g.inside()).sum::<u64>(),
            "controller quiescing"
        );
        sub.ccr.zombies.push(z);
    }
}

fn done(r: CcrResult) -> Exec {
    Exec::Done(Completion::dw0(r.to_dw0()))
}

fn dnr(code: StatusCode) -> Exec {
    Exec::Done(Completion::err_dnr(code))
}

/// The Cross-Controller Reset command on controller `b`.
pub fn execute(st: &mut State, ctx: &Ctx, b: &Bound, sqe: &Sqe) -> Exec {
    if b.discovery {
        return dnr(StatusCode::INVALID_OPCODE);
    }
    let Ok(cmd) = CrossControllerResetCmd::from_sqe(sqe) else {
        return dnr(StatusCode::INVALID_FIELD);
    };
    // The impacted controller is another controller than this one.
    if cmd.icid == b.cntlid {
        return dnr(StatusCode::INVALID_FIELD);
    }
    let Some(signal) = st.conns.get(&ctx.conn).map(|c| c.signal.clone()) else {
        return dnr(StatusCode::INTERNAL_ERROR);
    };
    let Some(sub) = st.subsystems.get_mut(&*b.subnqn) else {
        return dnr(StatusCode::INTERNAL_ERROR);
    };
    let Some(me) = sub.ctrls.get(&b.cntlid) else {
        return dnr(StatusCode::INTERNAL_ERROR);
    };
    let hostnqn = me.hostnqn.clone();
    let same = |e: &CcrEntry, cirn: u64| {
        e.status == CcrStatus::IN_PROGRESS
            && e.icid == cmd.icid
            && e.ciu == cmd.ciu
            && cirn == cmd.cirn
    };
    if sub
        .ctrls
        .values()
        .any(|c| c.ccr.log.iter().any(|(e, cirn)| same(e, *cirn)))
    {
        return dnr(StatusCode::CCR_IN_PROGRESS);
    }
    let in_progress = me
        .ccr
        .log
        .iter()
        .filter(|(e, _)| e.status == CcrStatus::IN_PROGRESS)
        .count();
    if in_progress >= CCR_LIMIT as usize {
        return dnr(StatusCode::CCR_LIMIT_EXCEEDED);
    }
    let log_full = me.ccr.log.len() >= CCR_LOG_CAP;
    let names = |cntlid: u16, ciu: u8, cirn: u64, host: &str| {
        cntlid == cmd.icid && ciu == cmd.ciu && cirn == cmd.cirn && host == hostnqn
    };
    let live = sub
        .ctrls
        .get(&cmd.icid)
        .is_some_and(|c| names(c.cntlid, c.ccr.ciu, c.ccr.cirn, &c.hostnqn));
    let zombie = sub
        .ccr
        .zombies
        .iter()
        .position(|z| names(z.cntlid, z.ciu, z.cirn, &z.hostnqn) && !z.drained());
    if !live && zombie.is_none() {
        // No such controller instance (any more): nothing to reset.
        tracing::info!(subnqn = %b.subnqn, cntlid = b.cntlid, icid = cmd.icid, ciu = cmd.ciu, "cross-controller reset: no such controller instance");
        return done(CcrResult {
            irs: true,
            validated: false,
            clri: false,
        });
    }
    if log_full {
        return dnr(StatusCode::CCR_LOG_FULL);
    }
    if live {
        tracing::warn!(subnqn = %b.subnqn, cntlid = b.cntlid, icid = cmd.icid, "cross-controller reset");
        st.teardown_ctrl(&b.subnqn, cmd.icid, "cross-controller reset");
    }
    let Some(sub) = st.subsystems.get_mut(&*b.subnqn) else {
        return dnr(StatusCode::INTERNAL_ERROR);
    };
    let pos = sub
        .ccr
        .zombies
        .iter()
        .position(|z| names(z.cntlid, z.ciu, z.cirn, &z.hostnqn));
    let pending = pos.is_some_and(|i| {
        let z = &sub.ccr.zombies[i];
        z.gates.iter().for_each(|g| g.notify_when_drained(&signal));
        !z.drained()
    });
    if !pending {
        if let Some(i) = pos {
            sub.ccr.zombies.swap_remove(i);
        }
        return done(CcrResult {
            irs: true,
            validated: true,
            clri: live,
        });
    }
    // Still quiescing: "an entry is recorded in the Cross-Controller Reset
    // log page" and a notice follows when it completes.
    let entry = CcrEntry {
        icid: cmd.icid,
        ciu: cmd.ciu,
        acid: b.cntlid,
        status: CcrStatus::IN_PROGRESS,
        validated: true,
        clri: live,
        retry: 0,
    };
    if let Some(me) = sub.ctrls.get_mut(&b.cntlid) {
        me.ccr.log.push((entry, cmd.cirn));
    }
    done(CcrResult::default())
}

/// Complete the in-progress resets of controller `b` whose impacted
/// controller has quiesced: log entry to Success, the notice to the host.
pub fn poll(st: &mut State, b: &Bound) {
    let Some(sub) = st.subsystems.get_mut(&*b.subnqn) else {
        return;
    };
    let Some(me) = sub.ctrls.get_mut(&b.cntlid) else {
        return;
    };
    let zombies = &mut sub.ccr.zombies;
    let mut completed = false;
    for (e, cirn) in me.ccr.log.iter_mut() {
        if e.status != CcrStatus::IN_PROGRESS {
            continue;
        }
        let quiet = match zombies
            .iter()
            .position(|z| z.cntlid == e.icid && z.ciu == e.ciu && z.cirn == *cirn)
        {
            Some(i) if !zombies[i].drained() => false,
            Some(i) => {
                zombies.swap_remove(i);
                true
            }
            None => true,
        };
        if quiet {
            e.status = CcrStatus::SUCCESS;
            completed = true;
        }
    }
    if completed {
        tracing::info!(subnqn = %b.subnqn, cntlid = b.cntlid, "cross-controller reset completed");
        let ev = AsyncEvent::notice(NOTICE_CCR_COMPLETED, LogPageId::CROSS_CONTROLLER_RESET);
        me.post_event(AEC_CCR_COMPLETED, ev);
    }
}

/// The Cross-Controller Reset log page of controller `b`; LSP bit 0 (RMC)
/// removes the completed entries returned.
pub fn log_page(st: &mut State, b: &Bound, lsp: u8) -> Option<Vec<u8>> {
    poll(st, b);
    let me = st.ctrl_mut(&b.subnqn, b.cntlid)?;
    let log = CcrLog {
        entries: me.ccr.log.iter().map(|(e, _)| *e).collect(),
    };
    if lsp & CCR_LSP_RMC != 0 {
        me.ccr
            .log
            .retain(|(e, _)| e.status == CcrStatus::IN_PROGRESS);
    }
    Some(log.encode())
}

/// Identify Controller fields of controller `b`: (CIU, CIRN).
pub fn identity(st: &State, b: &Bound) -> (u8, u64) {
    st.subsystems
        .get(&*b.subnqn)
        .and_then(|s| s.ctrls.get(&b.cntlid))
        .map_or((0, 0), |c| (c.ccr.ciu, c.ccr.cirn))
}
