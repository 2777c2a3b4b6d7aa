//! Reservations through a namespace head: Register, Acquire, Release and
//! Report go down one usable path like any command and are failed over on
//! a path error ([`NamespaceHead::submit`]). The Host Identifier — the same
//! on every path of this host — makes all paths one registrant, so the
//! head adds nothing: the keys and types are the caller's, sent as they are.
//!
//! A Reservation Conflict (83h) is not a path error: it comes back to the
//! caller ([`ResvError::is_conflict`]). After a failover a command may reach
//! the target twice; Register (same key), Acquire (same type) and Release
//! are idempotent there, an Unregister or a Preempt repeated after it took
//! effect reports a conflict.
//!
//! The request builders are public so that a single controller
//! (`nvmp_host::Controller::submit`) can send the same commands.

use bytes::Bytes;
use nvmp_host::{Completion, IoRequest};
use nvmp_wire::io::resv::{ResvAcquire, ResvRegister, ResvRelease, ResvReportCmd, ResvStatus};
use nvmp_wire::{DecodeError, Status, StatusCode};

use crate::head::NamespaceHead;

/// Bytes asked for by a report when the caller does not say: the header
/// and 63 extended entries.
pub const DEFAULT_REPORT_BYTES: u32 = 4096;
/// Most bytes a report may ask for (256 registrants in extended format fit in 16.1 KiB).
pub const MAX_REPORT_BYTES: u32 = 1 << 20;

/// A reservation command that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResvError {
    #[error("reservation command failed: {0}")]
    Status(Status),
    #[error("reservation report does not decode: {0}")]
    Decode(#[from] DecodeError),
}

impl ResvError {
    /// The command was refused with Reservation Conflict (83h).
    pub fn is_conflict(&self) -> bool {
        matches!(self, ResvError::Status(s) if s.code == StatusCode::RESERVATION_CONFLICT)
    }
    pub fn status(&self) -> Option<Status> {
        match self {
            ResvError::Status(s) => Some(*s),
            ResvError::Decode(_) => None,
        }
    }
}

/// The request for a Reservation Register.
pub fn register_request(r: &ResvRegister) -> IoRequest {
    IoRequest::with_write(r.to_sqe(), Bytes::copy_from_slice(&r.data()))
}
/// The request for a Reservation Acquire.
pub fn acquire_request(a: &ResvAcquire) -> IoRequest {
    IoRequest::with_write(a.to_sqe(), Bytes::copy_from_slice(&a.data()))
}
/// The request for a Reservation Release.
pub fn release_request(r: &ResvRelease) -> IoRequest {
    IoRequest::with_write(r.to_sqe(), Bytes::copy_from_slice(&r.data()))
}
/// The request for a Reservation Report of `len` bytes (rounded up to dwords, at most [`MAX_REPORT_BYTES`]).
pub fn report_request(nsid: u32, len: u32, eds: bool) -> IoRequest {
    let len = len.clamp(4, MAX_REPORT_BYTES).next_multiple_of(4);
    let cmd = ResvReportCmd {
        nsid,
        len: len.into(),
        eds,
    };
    IoRequest::with_read(cmd.to_sqe(), len)
}

/// Map a completion to `Ok` or the status.
pub fn check(c: &Completion) -> Result<(), ResvError> {
    if c.status.is_success() {
        Ok(())
    } else {
        Err(ResvError::Status(c.status))
    }
}

/// Decode a Reservation Report's completion.
pub fn report_from(c: &Completion, eds: bool) -> Result<ResvStatus, ResvError> {
    check(c)?;
    Ok(ResvStatus::decode(&c.data, eds)?)
}

impl NamespaceHead {
    /// Reservation Register (register, unregister or replace a key; CPTPL).
    pub async fn resv_register(&self, r: ResvRegister) -> Result<(), ResvError> {
        check(&self.submit(register_request(&r)).await)
    }

    /// Reservation Acquire (acquire, preempt, preempt and abort).
    pub async fn resv_acquire(&self, a: ResvAcquire) -> Result<(), ResvError> {
        check(&self.submit(acquire_request(&a)).await)
    }

    /// Reservation Release (release, clear).
    pub async fn resv_release(&self, r: ResvRelease) -> Result<(), ResvError> {
        check(&self.submit(release_request(&r)).await)
    }

    /// Reservation Report: `len` bytes (0: [`DEFAULT_REPORT_BYTES`]), extended format with `eds`.
    pub async fn resv_report(&self, len: u32, eds: bool) -> Result<ResvStatus, ResvError> {
        let len = if len == 0 { DEFAULT_REPORT_BYTES } else { len };
        report_from(&self.submit(report_request(self.nsid, len, eds)).await, eds)
    }
}
