//! Keep-alive schedule.
//!
//! Linux sends a Keep Alive command every KATO/2 (`nvme_keep_alive_work_period`),
//! and every KATO/4 when the controller supports Traffic Based Keep Alive
//! (TBKAS) so that a skipped keep-alive (other traffic was seen) still leaves
//! margin. nvmp implements the KATO/2 rule unconditionally (it does not skip
//! keep-alives on traffic, so the KATO/4 refinement is not needed). A Keep
//! Alive that has not completed within KATO means the controller (or the
//! path) is gone: the command's deadline is KATO and its expiry resets the
//! controller, like any command timeout.

use std::time::{Duration, Instant};

/// The keep-alive timing of one controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    kato: Duration,
}

impl KeepAlive {
    /// `kato_ms` 0 disables keep-alive.
    pub fn new(kato_ms: u32) -> Option<Self> {
        (kato_ms > 0).then(|| Self {
            kato: Duration::from_millis(kato_ms as u64),
        })
    }
    pub fn kato(&self) -> Duration {
        self.kato
    }
    /// Interval between Keep Alive commands: KATO / 2.
    pub fn interval(&self) -> Duration {
        self.kato / 2
    }
    /// When the next Keep Alive is due, the previous one sent at `last_sent`.
    pub fn next_send(&self, last_sent: Instant) -> Instant {
        last_sent + self.interval()
    }
    /// The deadline of a Keep Alive sent at `sent`: not completed by then, the controller is dead.
    pub fn deadline(&self, sent: Instant) -> Instant {
        sent + self.kato
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule() {
        assert!(KeepAlive::new(0).is_none());
        let k = KeepAlive::new(5000).unwrap();
        let t0 = Instant::now();
        assert_eq!(k.interval(), Duration::from_millis(2500));
        assert_eq!(k.next_send(t0), t0 + Duration::from_millis(2500));
        assert_eq!(k.deadline(t0), t0 + Duration::from_secs(5));
        // A keep-alive sent on schedule expires before the next-but-one is due.
        assert!(k.deadline(t0) <= k.next_send(k.next_send(t0)));
    }
}
