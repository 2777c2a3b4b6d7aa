//! Reservation Notification log page (80h, NVMe Base 2.0, 5.16.1.24): one
//! 64-byte entry per read; reading it consumes the oldest notification.

use crate::error::DecodeError;
use crate::field::{u32_at, u64_at, u8_at};

/// The log page identifier.
pub const LID_RESERVATION_NOTIFICATION: u8 = 0x80;
/// The page is 64 bytes.
pub const RESV_NOTIFICATION_LEN: usize = 64;
/// Asynchronous Event Information for "Reservation Log Page Available"
/// (event type I/O Command specific status, 6h).
pub const AEN_RESERVATION_LOG_AVAILABLE: u8 = 0x00;

/// Reservation Notification Log Page Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResvNotificationType(pub u8);

impl ResvNotificationType {
    /// "Empty Log Page: no more notifications".
    pub const EMPTY: Self = Self(0);
    pub const REGISTRATION_PREEMPTED: Self = Self(1);
    pub const RESERVATION_RELEASED: Self = Self(2);
    pub const RESERVATION_PREEMPTED: Self = Self(3);

    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "empty",
            1 => "registration preempted",
            2 => "reservation released",
            3 => "reservation preempted",
            _ => "reserved",
        }
    }
}

/// One Reservation Notification log page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResvNotification {
    /// Log Page Count: "a 64-bit incrementing … count" of notifications
    /// (0 for an empty page); a gap means notifications were lost.
    pub count: u64,
    pub log_type: ResvNotificationType,
    /// Number of Available Log Pages after this one (saturating at 255).
    pub available: u8,
    pub nsid: u32,
}

impl ResvNotification {
    pub fn encode(&self) -> [u8; RESV_NOTIFICATION_LEN] {
        let mut b = [0u8; RESV_NOTIFICATION_LEN];
        b[0..8].copy_from_slice(&self.count.to_le_bytes());
        b[8] = self.log_type.0;
        b[9] = self.available;
        b[12..16].copy_from_slice(&self.nsid.to_le_bytes());
        b
    }
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self {
            count: u64_at(b, "ResvLog.COUNT", 0)?,
            log_type: ResvNotificationType(u8_at(b, "ResvLog.RNLPT", 8)?),
            available: u8_at(b, "ResvLog.NALP", 9)?,
            nsid: u32_at(b, "ResvLog.NSID", 12)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_bytes() {
        let mut b = [0u8; 64];
        b[0] = 5;
        b[8] = 3;
        b[9] = 2;
        b[12] = 1;
        let l = ResvNotification::decode(&b).unwrap();
        assert_eq!(
            l,
            ResvNotification {
                count: 5,
                log_type: ResvNotificationType::RESERVATION_PREEMPTED,
                available: 2,
                nsid: 1
            }
        );
        assert_eq!(l.encode(), b);
        assert!(ResvNotification::decode(&b[..15]).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(count in any::<u64>(), t in any::<u8>(), a in any::<u8>(), nsid in any::<u32>()) {
            let l = ResvNotification { count, log_type: ResvNotificationType(t), available: a, nsid };
            prop_assert_eq!(ResvNotification::decode(&l.encode()).unwrap(), l);
        }
    }
}
