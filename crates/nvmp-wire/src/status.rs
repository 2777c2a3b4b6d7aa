//! Completion status: Status Code Type (SCT), Status Code (SC), Command Retry
//! Delay (CRD), More and Do Not Retry (DNR).
//!
//! An NVMe status is data, not a Rust error: commands complete with a
//! [`Status`] and the layers above decide what it means.

use core::fmt;

/// Status code type (3 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusCodeType(pub u8);

impl StatusCodeType {
    pub const GENERIC: Self = Self(0);
    pub const COMMAND_SPECIFIC: Self = Self(1);
    pub const MEDIA: Self = Self(2);
    /// "Path Related Status" (NVMe Base 2.0, Figure 99).
    pub const PATH: Self = Self(3);
    pub const VENDOR: Self = Self(7);
}

/// A status code with its type: `SCT << 8 | SC`, as Linux writes them
/// (0x302 = path-related, ANA inaccessible). An open newtype: unknown
/// values are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(pub u16);

macro_rules! codes {
    ($( $(#[$m:meta])* $name:ident = $v:expr, $text:expr; )*) => {
        impl StatusCode {
            $( $(#[$m])* pub const $name: Self = Self($v); )*
            /// The specification's name of this code, if nvmp knows it.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $( $v => Some($text), )* _ => None }
            }
            /// Every code nvmp knows by name.
            pub const KNOWN: &'static [StatusCode] = &[$(Self::$name),*];
        }
    };
}

codes! {
    SUCCESS = 0x000, "Successful Completion";
    INVALID_OPCODE = 0x001, "Invalid Command Opcode";
    INVALID_FIELD = 0x002, "Invalid Field in Command";
    CID_CONFLICT = 0x003, "Command ID Conflict";
    DATA_TRANSFER_ERROR = 0x004, "Data Transfer Error";
    ABORTED_POWER_LOSS = 0x005, "Commands Aborted due to Power Loss Notification";
    INTERNAL_ERROR = 0x006, "Internal Error";
    ABORT_REQUESTED = 0x007, "Command Abort Requested";
    ABORTED_SQ_DELETED = 0x008, "Command Aborted due to SQ Deletion";
    ABORTED_FUSED_FAIL = 0x009, "Command Aborted due to Failed Fused Command";
    ABORTED_FUSED_MISSING = 0x00A, "Command Aborted due to Missing Fused Command";
    INVALID_NAMESPACE = 0x00B, "Invalid Namespace or Format";
    COMMAND_SEQUENCE_ERROR = 0x00C, "Command Sequence Error";
    INVALID_SGL_DESCRIPTOR = 0x00D, "Invalid SGL Segment Descriptor";
    INVALID_SGL_COUNT = 0x00E, "Invalid Number of SGL Descriptors";
    SGL_DATA_LENGTH_INVALID = 0x00F, "Data SGL Length Invalid";
    SGL_METADATA_LENGTH_INVALID = 0x010, "Metadata SGL Length Invalid";
    SGL_TYPE_INVALID = 0x011, "SGL Descriptor Type Invalid";
    SGL_OFFSET_INVALID = 0x016, "SGL Offset Invalid";
    HOST_ID_INCONSISTENT = 0x018, "Host Identifier Inconsistent Format";
    KEEP_ALIVE_EXPIRED = 0x019, "Keep Alive Timer Expired";
    KEEP_ALIVE_INVALID = 0x01A, "Keep Alive Timeout Invalid";
    ABORTED_PREEMPT = 0x01B, "Command Aborted due to Preempt and Abort";
    SANITIZE_FAILED = 0x01C, "Sanitize Failed";
    NAMESPACE_WRITE_PROTECTED = 0x020, "Namespace is Write Protected";
    COMMAND_INTERRUPTED = 0x021, "Command Interrupted";
    TRANSIENT_TRANSPORT_ERROR = 0x022, "Transient Transport Error";
    LBA_OUT_OF_RANGE = 0x080, "LBA Out of Range";
    CAPACITY_EXCEEDED = 0x081, "Capacity Exceeded";
    NAMESPACE_NOT_READY = 0x082, "Namespace Not Ready";
    RESERVATION_CONFLICT = 0x083, "Reservation Conflict";
    COMPLETION_QUEUE_INVALID = 0x100, "Completion Queue Invalid";
    INVALID_QUEUE_ID = 0x101, "Invalid Queue Identifier";
    INVALID_QUEUE_SIZE = 0x102, "Invalid Queue Size";
    ABORT_LIMIT_EXCEEDED = 0x103, "Abort Command Limit Exceeded";
    AER_LIMIT_EXCEEDED = 0x105, "Asynchronous Event Request Limit Exceeded";
    INVALID_FIRMWARE_SLOT = 0x106, "Invalid Firmware Slot";
    INVALID_LOG_PAGE = 0x109, "Invalid Log Page";
    INVALID_FORMAT = 0x10A, "Invalid Format";
    FEATURE_NOT_SAVEABLE = 0x10D, "Feature Identifier Not Saveable";
    FEATURE_NOT_CHANGEABLE = 0x10E, "Feature Not Changeable";
    FEATURE_NOT_NS_SPECIFIC = 0x10F, "Feature Not Namespace Specific";
    ANA_GROUP_ID_INVALID = 0x124, "ANA Group Identifier Invalid";
    ANA_ATTACH_FAILED = 0x125, "ANA Attach Failed";
    /// Cross-Controller Reset (NVMe Base 2.3, Figure 103): a reset of the impacted controller is already in progress.
    CCR_IN_PROGRESS = 0x13F, "Cross-Controller Reset in Progress";
    /// Cross-Controller Reset: no room for another entry in the log page.
    CCR_LOG_FULL = 0x140, "Cross-Controller Reset Log Page Full";
    /// Cross-Controller Reset: more resets in progress than the controller's CCRL.
    CCR_LIMIT_EXCEEDED = 0x141, "Cross-Controller Reset Limit Exceeded";
    /// Fabrics Connect: "Connect Incompatible Format" (NVMe-oF 1.1, Figure 21).
    CONNECT_INCOMPATIBLE_FORMAT = 0x180, "Connect Incompatible Format";
    CONNECT_CONTROLLER_BUSY = 0x181, "Connect Controller Busy";
    CONNECT_INVALID_PARAMETERS = 0x182, "Connect Invalid Parameters";
    CONNECT_RESTART_DISCOVERY = 0x183, "Connect Restart Discovery";
    /// "Connect Invalid Host: The host is not allowed to establish an association to any controller in the NVM subsystem or the host is not allowed to establish an association to the specified controller."
    CONNECT_INVALID_HOST = 0x184, "Connect Invalid Host";
    DISCOVERY_RESTART = 0x190, "Discovery Restart";
    AUTH_REQUIRED = 0x191, "Authentication Required";
    WRITE_FAULT = 0x280, "Write Fault";
    UNRECOVERED_READ_ERROR = 0x281, "Unrecovered Read Error";
    COMPARE_FAILURE = 0x285, "Compare Failure";
    ACCESS_DENIED = 0x286, "Access Denied";
    DEALLOCATED_OR_UNWRITTEN = 0x287, "Deallocated or Unwritten Logical Block";
    INTERNAL_PATH_ERROR = 0x300, "Internal Path Error";
    ANA_PERSISTENT_LOSS = 0x301, "Asymmetric Access Persistent Loss";
    ANA_INACCESSIBLE = 0x302, "Asymmetric Access Inaccessible";
    ANA_TRANSITION = 0x303, "Asymmetric Access Transition";
    CONTROLLER_PATHING_ERROR = 0x360, "Controller Pathing Error";
    HOST_PATHING_ERROR = 0x370, "Host Pathing Error";
    ABORTED_BY_HOST = 0x371, "Command Aborted By Host";
}

impl StatusCode {
    pub const fn sct(self) -> StatusCodeType {
        StatusCodeType(((self.0 >> 8) & 0x7) as u8)
    }
    pub const fn sc(self) -> u8 {
        self.0 as u8
    }
    pub const fn from_parts(sct: StatusCodeType, sc: u8) -> Self {
        Self(((sct.0 as u16 & 0x7) << 8) | sc as u16)
    }
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }
    /// A path-related status (Status Code Type 3h): the command may succeed on another path.
    pub const fn is_path_error(self) -> bool {
        (self.0 & 0x700) == 0x300
    }
    /// One of the three ANA statuses (0x301–0x303), after which the host re-reads the ANA log.
    pub const fn is_ana_error(self) -> bool {
        matches!(self.0, 0x301..=0x303)
    }
}

impl fmt::Debug for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{:#05x} ({n})", self.0),
            None => write!(f, "{:#05x}", self.0),
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The full status field of a completion queue entry (bits 31:17 of DW3;
/// the phase tag is not part of it and is ignored by fabrics transports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    pub code: StatusCode,
    /// Command Retry Delay index (0–3) into the controller's CRDT table.
    pub crd: u8,
    pub more: bool,
    /// Do Not Retry: "if set to '1', indicates that if the same command is re-submitted to any controller in the NVM subsystem, then that re-submitted command is expected to fail."
    pub dnr: bool,
}

impl Status {
    pub const SUCCESS: Self = Self::new(StatusCode::SUCCESS);

    pub const fn new(code: StatusCode) -> Self {
        Self {
            code,
            crd: 0,
            more: false,
            dnr: false,
        }
    }
    pub const fn with_dnr(mut self) -> Self {
        self.dnr = true;
        self
    }
    /// Decode the 16-bit status word as it sits in the CQE (bit 0 = phase tag, ignored).
    pub const fn from_word(w: u16) -> Self {
        Self {
            code: StatusCode((w >> 1) & 0x7ff),
            crd: ((w >> 12) & 0x3) as u8,
            more: (w >> 14) & 1 == 1,
            dnr: (w >> 15) & 1 == 1,
        }
    }
    /// Encode as the 16-bit CQE status word, with the given phase tag.
    pub const fn to_word(self, phase: bool) -> u16 {
        ((self.code.0 & 0x7ff) << 1)
            | ((self.crd as u16 & 0x3) << 12)
            | ((self.more as u16) << 14)
            | ((self.dnr as u16) << 15)
            | phase as u16
    }
    pub const fn is_success(self) -> bool {
        self.code.is_success()
    }
    pub const fn is_path_error(self) -> bool {
        self.code.is_path_error()
    }
    pub const fn is_ana_error(self) -> bool {
        self.code.is_ana_error()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if self.dnr {
            write!(f, " DNR")?;
        }
        if self.more {
            write!(f, " MORE")?;
        }
        if self.crd != 0 {
            write!(f, " CRD={}", self.crd)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_word() {
        // SCT=3, SC=0x02, DNR=1, phase=1: bits 15 | (3<<9) | (2<<1) | 1
        let w: u16 = 0x8000 | (3 << 9) | (2 << 1) | 1;
        let s = Status::from_word(w);
        assert_eq!(s.code, StatusCode::ANA_INACCESSIBLE);
        assert!(s.dnr && !s.more && s.crd == 0);
        assert_eq!(s.to_word(true), w);
    }

    #[test]
    fn path_classification() {
        for c in [0x300, 0x301, 0x302, 0x303, 0x360, 0x370, 0x371] {
            assert!(StatusCode(c).is_path_error(), "{c:#x}");
        }
        for c in [0x000, 0x002, 0x184, 0x281, 0x400] {
            assert!(!StatusCode(c).is_path_error(), "{c:#x}");
        }
        assert!(StatusCode::ANA_TRANSITION.is_ana_error());
        assert!(!StatusCode::INTERNAL_PATH_ERROR.is_ana_error());
        assert!(!StatusCode::HOST_PATHING_ERROR.is_ana_error());
    }

    proptest::proptest! {
        #[test]
        fn word_round_trip(w in proptest::prelude::any::<u16>()) {
            let s = Status::from_word(w);
            proptest::prop_assert_eq!(s.to_word(w & 1 == 1), w);
        }
    }
}
