//! Reservations (NVMe Base 2.0, 8.19): one state per namespace, shared by
//! every controller of the subsystem on every port, keyed by the Host
//! Identifier of the Connect data ("a host … is identified by its Host
//! Identifier": all controllers of one host act as one registrant).
//!
//! The I/O hot path pays one atomic load per command while no reservation
//! is held ([`NsResv::check`]); only with a reservation does a command take
//! the namespace's reservation lock to look its host up.
//!
//! Persist Through Power Loss: for namespaces on regular files, with PTPL
//! set the registrants and the reservation are written (atomically, with a
//! rename) to `<file>.nvmp-resv.json` after every change and read back when
//! the namespace is opened, so they survive a target restart.
//!
//! Not done: Preempt and Abort does not abort commands already running in
//! the backend (a file write admitted before the preempt still completes);
//! every command submitted after it is checked against the new state.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use nvmp_wire::io::resv::{
    cptpl, racqa, rrega, rrela, RegisteredCtrl, ResvAcquire, ResvRegister, ResvRelease, ResvStatus,
    ResvType, RCSTS_HOLDS,
};
use nvmp_wire::log::resv::ResvNotificationType as Note;
use nvmp_wire::{Opcode, StatusCode};

use crate::config::{DeviceSpec, NamespaceSpec};

mod glue;
mod persist;

pub use glue::{ctrl_log_page, execute, get_feature, set_feature, CtrlResv};

/// Registrants per namespace; a Register beyond it fails with Internal
/// Error (bounds the report and the per-command lookup).
pub const MAX_REGISTRANTS: usize = 256;

pub type HostId = [u8; 16];

/// One registrant: a host and its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registrant {
    pub hostid: HostId,
    pub rkey: u64,
}

/// The reservation state of a namespace (behind [`NsResv`]'s lock).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResvState {
    pub gen: u32,
    /// In registration order.
    pub regs: Vec<Registrant>,
    /// 0: no reservation.
    pub rtype: u8,
    /// The holder (for All Registrants types every registrant holds; this
    /// is the one that acquired).
    pub holder: Option<HostId>,
    pub ptpl: bool,
}

/// A notification to deliver: (host, type). The glue finds the host's controllers.
pub type Notice = (HostId, Note);

/// The outcome of a reservation command: a status and the notifications it causes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub status: Option<StatusCode>,
    pub notices: Vec<Notice>,
}

impl Outcome {
    fn fail(code: StatusCode) -> Self {
        Self {
            status: Some(code),
            notices: Vec::new(),
        }
    }
}

/// Per-namespace reservations.
#[derive(Debug)]
pub struct NsResv {
    /// The reservation type held (0 = none), mirrored out of the lock for the hot path.
    held: AtomicU8,
    state: Mutex<ResvState>,
    /// Where PTPL state lives (regular files only; `None`: PTPL not supported).
    ptpl_path: Option<PathBuf>,
}

/// The four reservation commands (executed by [`execute`], not the backend).
pub fn is_resv_command(op: Opcode) -> bool {
    matches!(
        op,
        Opcode::RESERVATION_REGISTER
            | Opcode::RESERVATION_REPORT
            | Opcode::RESERVATION_ACQUIRE
            | Opcode::RESERVATION_RELEASE
    )
}

/// Command groups of "Command Behavior in the Presence of a Reservation".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Read,
    Write,
    Other,
}

/// "Read Command Group: Compare, Read, Verify"; "Write Command Group:
/// Dataset Management, Flush, Write, Write Uncorrectable, Write Zeroes"
/// (NVMe 1.4, Figure 383, as Linux's target also groups them).
pub fn group(op: Opcode) -> Group {
    match op.0 {
        0x02 | 0x05 | 0x0C => Group::Read,
        0x00 | 0x01 | 0x04 | 0x08 | 0x09 => Group::Write,
        _ => Group::Other,
    }
}

/// The access table: may a host with this standing run a command of `g`
/// under reservation `rtype`? (Holders may always; for All Registrants
/// types every registrant is a holder.)
pub fn allowed(rtype: ResvType, g: Group, holder: bool, registrant: bool) -> bool {
    if g == Group::Other || rtype == ResvType::NONE || holder {
        return true;
    }
    if rtype.all_registrants() && registrant {
        return true;
    }
    match (rtype.0, g) {
        // Write Exclusive: reads by anyone, writes by the holder only.
        (1, Group::Read) => true,
        (1, _) | (2, _) => false,
        // Registrants Only / All Registrants: registrants may; non-registrants
        // may read under the Write Exclusive variants only.
        (3 | 5, Group::Read) => true,
        (3..=6, _) => registrant,
        _ => true,
    }
}

impl NsResv {
    /// The reservation state of a namespace, read back from its PTPL file when one exists.
    pub fn open(spec: &NamespaceSpec) -> Self {
        let ptpl_path = match &spec.device {
            DeviceSpec::File { path } if path.metadata().map(|m| m.is_file()).unwrap_or(false) => {
                let mut p = path.clone().into_os_string();
                p.push(".nvmp-resv.json");
                Some(PathBuf::from(p))
            }
            _ => None,
        };
        let state = ptpl_path
            .as_deref()
            .and_then(persist::load)
            .unwrap_or_default();
        Self {
            held: AtomicU8::new(state.rtype),
            state: Mutex::new(state),
            ptpl_path,
        }
    }

    /// Whether PTPL is supported (RESCAP bit 0).
    pub fn ptpl_capable(&self) -> bool {
        self.ptpl_path.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ResvState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the state (reports, tests, status).
    pub fn snapshot(&self) -> ResvState {
        self.lock().clone()
    }

    /// The per-command check: `None` when the command may run. One atomic
    /// load while no reservation is held.
    #[inline]
    pub fn check(&self, hostid: &HostId, op: Opcode) -> Option<StatusCode> {
        if self.held.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.check_held(hostid, op)
    }

    #[cold]
    fn check_held(&self, hostid: &HostId, op: Opcode) -> Option<StatusCode> {
        let g = group(op);
        if g == Group::Other {
            return None;
        }
        let st = self.lock();
        let registrant = st.regs.iter().any(|r| &r.hostid == hostid);
        let holder = st.holder.as_ref() == Some(hostid);
        // "the controller shall abort the command with a status of Reservation Conflict".
        (!allowed(ResvType(st.rtype), g, holder, registrant))
            .then_some(StatusCode::RESERVATION_CONFLICT)
    }

    /// Apply a change under the lock: publish the held type, persist with PTPL.
    fn commit(&self, st: &ResvState, was_ptpl: bool) {
        self.held.store(st.rtype, Ordering::Release);
        if let Some(p) = &self.ptpl_path {
            if st.ptpl {
                persist::store(p, st);
            } else if was_ptpl {
                persist::remove(p);
            }
        }
    }

    /// Reservation Register.
    pub fn register(&self, host: &HostId, c: &ResvRegister) -> Outcome {
        if c.cptpl == cptpl::RESERVED || (c.cptpl == cptpl::SET && !self.ptpl_capable()) {
            return Outcome::fail(StatusCode::INVALID_FIELD);
        }
        let mut st = self.lock();
        let was_ptpl = st.ptpl;
        let mine = st.regs.iter().position(|r| &r.hostid == host);
        let mut out = Outcome::default();
        match (c.rrega, mine) {
            (rrega::REGISTER, Some(i)) => {
                // Registering again with the same key succeeds; another key conflicts.
                if st.regs[i].rkey != c.nrkey {
                    return Outcome::fail(StatusCode::RESERVATION_CONFLICT);
                }
            }
            (rrega::REGISTER, None) => {
                if st.regs.len() >= MAX_REGISTRANTS {
                    return Outcome::fail(StatusCode::INTERNAL_ERROR);
                }
                st.regs.push(Registrant {
                    hostid: *host,
                    rkey: c.nrkey,
                });
            }
            (rrega::UNREGISTER | rrega::REPLACE, None) => {
                return Outcome::fail(StatusCode::RESERVATION_CONFLICT)
            }
            (rrega::UNREGISTER | rrega::REPLACE, Some(i)) => {
                // "If … IEKEY … is cleared to '0' and the CRKEY … does not match … Reservation Conflict".
                if !c.iekey && st.regs[i].rkey != c.crkey {
                    return Outcome::fail(StatusCode::RESERVATION_CONFLICT);
                }
                if c.rrega == rrega::REPLACE {
                    st.regs[i].rkey = c.nrkey;
                } else {
                    st.regs.remove(i);
                    out.notices = unregistered(&mut st, host);
                }
            }
            _ => return Outcome::fail(StatusCode::INVALID_FIELD),
        }
        match c.cptpl {
            cptpl::SET => st.ptpl = true,
            cptpl::CLEAR => st.ptpl = false,
            _ => {}
        }
        st.gen = st.gen.wrapping_add(1);
        self.commit(&st, was_ptpl);
        out
    }

    /// Reservation Acquire (Acquire, Preempt, Preempt and Abort).
    pub fn acquire(&self, host: &HostId, c: &ResvAcquire) -> Outcome {
        // IEKEY is not used by Acquire (Linux's target refuses it too).
        if c.iekey || !c.rtype.is_valid() {
            return Outcome::fail(StatusCode::INVALID_FIELD);
        }
        let mut st = self.lock();
        let was_ptpl = st.ptpl;
        if !st
            .regs
            .iter()
            .any(|r| &r.hostid == host && r.rkey == c.crkey)
        {
            // Acquire by a non-registrant, or with a key that is not its own.
            return Outcome::fail(StatusCode::RESERVATION_CONFLICT);
        }
        let cur = ResvType(st.rtype);
        let holds = cur != ResvType::NONE && (cur.all_registrants() || st.holder == Some(*host));
        let mut out = Outcome::default();
        match c.racqa {
            racqa::ACQUIRE => {
                if cur == ResvType::NONE {
                    st.rtype = c.rtype.0;
                    st.holder = Some(*host);
                } else if !(holds && cur == c.rtype) {
                    return Outcome::fail(StatusCode::RESERVATION_CONFLICT);
                }
                self.commit(&st, was_ptpl);
                return out;
            }
            racqa::PREEMPT | racqa::PREEMPT_AND_ABORT => {
                let holder_key = st
                    .holder
                    .and_then(|h| st.regs.iter().find(|r| r.hostid == h))
                    .map(|r| r.rkey);
                if cur == ResvType::NONE {
                    // No reservation: remove the registrants holding PRKEY.
                    if !remove_by_key(&mut st, c.prkey, host, &mut out) {
                        return Outcome::fail(StatusCode::RESERVATION_CONFLICT);
                    }
                } else if cur.all_registrants() {
                    if c.prkey == 0 {
                        // "If the PRKEY field is cleared to 0h": the preempting host becomes
                        // the holder of the new reservation, all other registrants are removed.
                        st.rtype = c.rtype.0;
                        st.holder = Some(*host);
                        let others: Vec<HostId> = st
                            .regs
                            .iter()
                            .filter(|r| &r.hostid != host)
                            .map(|r| r.hostid)
                            .collect();
                        st.regs.retain(|r| &r.hostid == host);
                        out.notices.extend(
                            others
                                .into_iter()
                                .map(|h| (h, Note::REGISTRATION_PREEMPTED)),
                        );
                    } else if !remove_by_key(&mut st, c.prkey, host, &mut out) {
                        return Outcome::fail(StatusCode::RESERVATION_CONFLICT);
                    }
                } else if Some(c.prkey) == holder_key {
                    // PRKEY is the holder's key: the issuer becomes the holder of a
                    // reservation of the new type (the holder itself may so change the
                    // type), every other registrant with PRKEY is removed. Another key
                    // only removes its registrants, the reservation stays.
                    st.rtype = c.rtype.0;
                    st.holder = Some(*host);
                    let victims: Vec<HostId> = st
                        .regs
                        .iter()
                        .filter(|r| r.rkey == c.prkey && &r.hostid != host)
                        .map(|r| r.hostid)
                        .collect();
                    st.regs
                        .retain(|r| !(r.rkey == c.prkey && &r.hostid != host));
                    out.notices.extend(
                        victims
                            .into_iter()
                            .map(|h| (h, Note::REGISTRATION_PREEMPTED)),
                    );
                    if cur != c.rtype {
                        out.notices.extend(released_to_others(&st, host));
                    }
                } else if c.prkey != 0 {
                    if !remove_by_key(&mut st, c.prkey, host, &mut out) {
                        return Outcome::fail(StatusCode::RESERVATION_CONFLICT);
                    }
                } else {
                    return Outcome::fail(StatusCode::INVALID_FIELD);
                }
            }
            _ => return Outcome::fail(StatusCode::INVALID_FIELD),
        }
        st.gen = st.gen.wrapping_add(1);
        self.commit(&st, was_ptpl);
        out
    }

    /// Reservation Release (Release, Clear).
    pub fn release(&self, host: &HostId, c: &ResvRelease) -> Outcome {
        if c.iekey {
            return Outcome::fail(StatusCode::INVALID_FIELD);
        }
        let mut st = self.lock();
        let was_ptpl = st.ptpl;
        if !st
            .regs
            .iter()
            .any(|r| &r.hostid == host && r.rkey == c.crkey)
        {
            return Outcome::fail(StatusCode::RESERVATION_CONFLICT);
        }
        let cur = ResvType(st.rtype);
        let mut out = Outcome::default();
        match c.rrela {
            rrela::RELEASE => {
                let holds =
                    cur != ResvType::NONE && (cur.all_registrants() || st.holder == Some(*host));
                if !holds {
                    // "… the reservation is not held by the host: … completes successfully".
                    return out;
                }
                if cur != c.rtype {
                    // "… a reservation type that does not match … Invalid Field in Command".
                    return Outcome::fail(StatusCode::INVALID_FIELD);
                }
                st.rtype = 0;
                st.holder = None;
                // Released notices go to the other registrants for the
                // Registrants Only and All Registrants types.
                if cur.registrants_only() || cur.all_registrants() {
                    out.notices.extend(released_to_others(&st, host));
                }
                self.commit(&st, was_ptpl);
                return out;
            }
            rrela::CLEAR => {
                let others: Vec<HostId> = st
                    .regs
                    .iter()
                    .filter(|r| &r.hostid != host)
                    .map(|r| r.hostid)
                    .collect();
                st.regs.clear();
                st.rtype = 0;
                st.holder = None;
                out.notices
                    .extend(others.into_iter().map(|h| (h, Note::RESERVATION_PREEMPTED)));
            }
            _ => return Outcome::fail(StatusCode::INVALID_FIELD),
        }
        st.gen = st.gen.wrapping_add(1);
        self.commit(&st, was_ptpl);
        out
    }

    /// The Reservation Status data (extended entries; CNTLID FFFFh: "dynamic
    /// controller model" targets report per host, not per controller).
    pub fn report(&self) -> ResvStatus {
        let st = self.lock();
        let rtype = ResvType(st.rtype);
        ResvStatus {
            gen: st.gen,
            rtype,
            regctl: st.regs.len() as u16,
            ptpls: st.ptpl,
            ctrls: st
                .regs
                .iter()
                .map(|r| RegisteredCtrl {
                    cntlid: 0xFFFF,
                    rcsts: if rtype != ResvType::NONE
                        && (rtype.all_registrants() || st.holder == Some(r.hostid))
                    {
                        RCSTS_HOLDS
                    } else {
                        0
                    },
                    hostid: r.hostid,
                    rkey: r.rkey,
                })
                .collect(),
        }
    }

    /// Set Features Reservation Persistence: PTPL on or off.
    pub fn set_ptpl(&self, on: bool) -> Result<(), StatusCode> {
        if on && !self.ptpl_capable() {
            return Err(StatusCode::INVALID_FIELD);
        }
        let mut st = self.lock();
        let was = st.ptpl;
        st.ptpl = on;
        self.commit(&st, was);
        Ok(())
    }
    pub fn ptpl(&self) -> bool {
        self.lock().ptpl
    }
}

/// After `host` unregistered: what happens to the reservation, and who is told.
fn unregistered(st: &mut ResvState, host: &HostId) -> Vec<Notice> {
    let cur = ResvType(st.rtype);
    if cur == ResvType::NONE {
        return Vec::new();
    }
    if cur.all_registrants() {
        // An All Registrants reservation lasts while any registrant remains.
        if st.regs.is_empty() {
            st.rtype = 0;
            st.holder = None;
        } else if st.holder == Some(*host) {
            st.holder = st.regs.first().map(|r| r.hostid);
        }
        return Vec::new();
    }
    if st.holder != Some(*host) {
        return Vec::new();
    }
    // "If the registrant is the reservation holder, the reservation is released".
    st.rtype = 0;
    st.holder = None;
    if cur.registrants_only() {
        released_to_others(st, host)
    } else {
        Vec::new()
    }
}

fn released_to_others(st: &ResvState, host: &HostId) -> Vec<Notice> {
    st.regs
        .iter()
        .filter(|r| &r.hostid != host)
        .map(|r| (r.hostid, Note::RESERVATION_RELEASED))
        .collect()
}

/// Remove the registrants with `key` (told "registration preempted" unless
/// it is the preempting host itself); false when none had it.
fn remove_by_key(st: &mut ResvState, key: u64, host: &HostId, out: &mut Outcome) -> bool {
    let victims: Vec<HostId> = st
        .regs
        .iter()
        .filter(|r| r.rkey == key)
        .map(|r| r.hostid)
        .collect();
    if victims.is_empty() {
        return false;
    }
    for v in &victims {
        st.regs.retain(|r| &r.hostid != v);
        out.notices.extend(unregistered(st, v));
        if v != host {
            out.notices.push((*v, Note::REGISTRATION_PREEMPTED));
        }
    }
    true
}

#[cfg(test)]
mod tests;
