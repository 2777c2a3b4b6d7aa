//! What to do with a completed command: a pure function of its status and
//! history, after Linux's `nvme_decide_disposition`, with a bound on
//! failovers that Linux does not have.

use nvmp_wire::{Opcode, Status, StatusCode};

/// What happens to a completed command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Return the completion to the caller (success, or an error that must not be retried).
    Complete,
    /// A path error: clear the current path and resubmit on another path after `delay_ms`.
    Failover { delay_ms: u64 },
    /// Another error without DNR: retry on a path after the controller's Command Retry Delay.
    Retry { delay_ms: u64 },
}

/// Limits on retrying one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryLimits {
    /// Retries of non-path errors (Linux `nvme_core.max_retries`, default 5).
    pub max_retries: u32,
    /// Failovers of one command before its path error is returned. Linux
    /// fails over without limit; a flapping fabric would then bounce a
    /// command forever, so nvmp bounds it (default 32, with backoff).
    pub max_failovers: u32,
}

impl Default for RetryLimits {
    fn default() -> Self {
        Self {
            max_retries: 5,
            max_failovers: 32,
        }
    }
}

/// A command's history so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attempts {
    pub retries: u32,
    pub failovers: u32,
}

/// Backoff before the n-th failover (1-based): the first two are immediate
/// (the usual case: one path died, the next one works), then 10 ms doubling
/// up to 1 s.
pub fn failover_backoff_ms(n: u32) -> u64 {
    if n <= 2 {
        0
    } else {
        (10u64 << (n - 3).min(7)).min(1000)
    }
}

/// Decide a completion's fate. `crdt_ms` is the controller's CRDT1..3 in
/// milliseconds (Identify Controller CRDT fields are in units of 100 ms).
pub fn decide(
    status: Status,
    attempts: Attempts,
    crdt_ms: [u64; 3],
    limits: RetryLimits,
) -> Disposition {
    if status.is_success() {
        return Disposition::Complete;
    }
    // DNR: "if the same command is re-submitted to any controller in the NVM
    // subsystem, then that re-submitted command is expected to fail."
    if status.dnr {
        return Disposition::Complete;
    }
    if status.is_path_error() {
        if attempts.failovers >= limits.max_failovers {
            return Disposition::Complete;
        }
        return Disposition::Failover {
            delay_ms: failover_backoff_ms(attempts.failovers + 1),
        };
    }
    if attempts.retries >= limits.max_retries {
        return Disposition::Complete;
    }
    // CRD: "Command Retry Delay … 01b … CRDT1 … 10b … CRDT2 … 11b … CRDT3", in 100 ms units.
    let delay_ms = match status.crd {
        1..=3 => crdt_ms[status.crd as usize - 1],
        _ => 0,
    };
    Disposition::Retry { delay_ms }
}

/// Holding back writes whose fate on a lost path is unknown.
///
/// A command torn down with its connection (0x371, Command Aborted By Host:
/// a timeout, a reset, a dead link) may still have reached the controller,
/// and may still execute there after the host gave up on it. Resent at once
/// on another path, a write could then be overwritten by its own stale copy
/// landing late — the data corruption users of Linux multipath report, which
/// NVMe TP8028 addresses. nvmp holds such a write for the old controller's
/// keep-alive timeout: a target tears down an association that has received
/// nothing for KATO, after which nothing sent on it can execute. A command
/// the controller answered with a path status (it did not execute) and a
/// read are resent at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteFence {
    /// Hold such writes for the controller's KATO (10 s when keep-alive is off).
    #[default]
    Kato,
    /// Resend at once, as Linux does.
    Off,
}

/// Default bound after which a queue that completes nothing while commands
/// are outstanding has its reads sent down another path (reads are
/// idempotent; writes wait for the controller's answer or its fence).
/// A stalled read waits 1 to 1.5 times this.
pub const DEFAULT_READ_STALL_MS: u64 = 500;

/// When reads leave a stalled queue ([`nvmp_host::Controller::set_read_stall`]);
/// `ReadStall(None)`: never — they wait for the I/O timeout, as with Linux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadStall(pub Option<std::time::Duration>);

impl Default for ReadStall {
    fn default() -> Self {
        Self(Some(std::time::Duration::from_millis(
            DEFAULT_READ_STALL_MS,
        )))
    }
}

/// Hold time when the controller has keep-alive disabled (nothing bounds
/// the old association's life; a long, documented guess).
pub const FENCE_WITHOUT_KATO_MS: u64 = 10_000;

/// Whether a command changes the medium (so a late copy of it can do harm).
pub fn modifies_media(opcode: Opcode) -> bool {
    matches!(
        opcode,
        Opcode::WRITE
            | Opcode::WRITE_ZEROES
            | Opcode::DATASET_MANAGEMENT
            | Opcode::WRITE_UNCORRECTABLE
    )
}

/// How long to hold a failed-over command before resending it, in ms.
pub fn fence_ms(status: Status, opcode: Opcode, kato_ms: u32, fence: WriteFence) -> u64 {
    if fence == WriteFence::Off
        || status.code != StatusCode::ABORTED_BY_HOST
        || !modifies_media(opcode)
    {
        return 0;
    }
    if kato_ms == 0 {
        FENCE_WITHOUT_KATO_MS
    } else {
        kato_ms as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvmp_wire::StatusCode;

    const L: RetryLimits = RetryLimits {
        max_retries: 5,
        max_failovers: 32,
    };

    #[test]
    fn only_writes_torn_down_in_flight_are_fenced() {
        let aborted = Status::new(StatusCode::ABORTED_BY_HOST);
        assert_eq!(
            fence_ms(aborted, Opcode::WRITE, 2000, WriteFence::Kato),
            2000
        );
        assert_eq!(
            fence_ms(aborted, Opcode::WRITE_ZEROES, 2000, WriteFence::Kato),
            2000
        );
        assert_eq!(
            fence_ms(aborted, Opcode::DATASET_MANAGEMENT, 0, WriteFence::Kato),
            FENCE_WITHOUT_KATO_MS
        );
        assert_eq!(
            fence_ms(aborted, Opcode::READ, 2000, WriteFence::Kato),
            0,
            "reads are harmless"
        );
        assert_eq!(fence_ms(aborted, Opcode::FLUSH, 2000, WriteFence::Kato), 0);
        assert_eq!(fence_ms(aborted, Opcode::WRITE, 2000, WriteFence::Off), 0);
        for c in [0x300, 0x302, 0x303, 0x370] {
            // Answered by the controller, or never sent: it did not execute.
            assert_eq!(
                fence_ms(
                    Status::new(StatusCode(c)),
                    Opcode::WRITE,
                    2000,
                    WriteFence::Kato
                ),
                0,
                "{c:#x}"
            );
        }
    }

    #[test]
    fn success_completes() {
        assert_eq!(
            decide(Status::SUCCESS, Attempts::default(), [0; 3], L),
            Disposition::Complete
        );
    }

    #[test]
    fn every_path_status_fails_over() {
        for c in [0x300, 0x301, 0x302, 0x303, 0x360, 0x370, 0x371] {
            let s = Status::new(StatusCode(c));
            assert_eq!(
                decide(s, Attempts::default(), [0; 3], L),
                Disposition::Failover { delay_ms: 0 },
                "{c:#x}"
            );
        }
    }

    #[test]
    fn dnr_never_retries() {
        for c in [0x302, 0x371, 0x006, 0x281] {
            let s = Status::new(StatusCode(c)).with_dnr();
            assert_eq!(
                decide(s, Attempts::default(), [0; 3], L),
                Disposition::Complete,
                "{c:#x}"
            );
        }
    }

    #[test]
    fn other_errors_retry_with_crd_up_to_five_times() {
        let mut s = Status::new(StatusCode::INTERNAL_ERROR);
        s.crd = 2;
        let crdt = [100, 200, 300];
        for r in 0..5 {
            let a = Attempts {
                retries: r,
                failovers: 0,
            };
            assert_eq!(decide(s, a, crdt, L), Disposition::Retry { delay_ms: 200 });
        }
        assert_eq!(
            decide(
                s,
                Attempts {
                    retries: 5,
                    failovers: 0
                },
                crdt,
                L
            ),
            Disposition::Complete
        );
        s.crd = 0;
        assert_eq!(
            decide(s, Attempts::default(), crdt, L),
            Disposition::Retry { delay_ms: 0 }
        );
    }

    #[test]
    fn failovers_are_bounded_with_backoff() {
        let s = Status::new(StatusCode::ANA_TRANSITION);
        assert_eq!(
            decide(
                s,
                Attempts {
                    retries: 0,
                    failovers: 2
                },
                [0; 3],
                L
            ),
            Disposition::Failover { delay_ms: 10 }
        );
        assert_eq!(
            decide(
                s,
                Attempts {
                    retries: 0,
                    failovers: 32
                },
                [0; 3],
                L
            ),
            Disposition::Complete
        );
        // Path errors do not consume the retry budget.
        assert!(matches!(
            decide(
                s,
                Attempts {
                    retries: 9,
                    failovers: 0
                },
                [0; 3],
                L
            ),
            Disposition::Failover { .. }
        ));
        let total: u64 = (1..=32).map(failover_backoff_ms).sum();
        assert!(total < 30_000, "worst-case failover backoff {total} ms");
    }
}
