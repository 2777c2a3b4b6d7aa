//! Cross-Controller Reset (NVMe Base 2.3, 5.4.3, from TP8028 "Rapid Path
//! Failure Recovery"): a host that lost a controller asks another
//! controller of the same NVM subsystem to reset the impacted one, naming
//! it by its Controller ID, Controller Instance Uniquifier (CIU) and
//! Controller Instance Random Number (CIRN) from its Identify Controller
//! data; and the Cross-Controller Reset log page (1Eh) that reports resets
//! which did not complete with the command.
//!
//! Layouts (as libnvme encodes them): CDW10 = CIU[23:16] | ICID[15:0],
//! CDW12 = CIRN[31:0], CDW13 = CIRN[63:32]; completion DW0 bit 0 Immediate
//! Reset Successful (IRS), bit 1 Validated (V), bit 2 Controller Level Reset
//! Initiated (CLRI), V and CLRI "undefined if IRS is cleared to '0'".

use super::{expect_opcode, LogPageId};
use crate::error::{DecodeError, DecodeErrorKind};
use crate::field::{u16_at, u8_at};
use crate::sqe::{Opcode, Sqe};

impl Opcode {
    /// Cross-Controller Reset (admin, 38h).
    pub const CROSS_CONTROLLER_RESET: Self = Self(0x38);
}

impl LogPageId {
    /// Cross-Controller Reset log page.
    pub const CROSS_CONTROLLER_RESET: Self = Self(0x1E);
}

/// CCR log LSP bit 0: "Remove Completed (RMC)": entries of completed resets
/// are removed from the log once returned.
pub const CCR_LSP_RMC: u8 = 0x01;

/// Notice event information: "Cross-Controller Reset Completed" (log page 1Eh).
pub const NOTICE_CCR_COMPLETED: u8 = 0xF4;

/// OAES / Asynchronous Event Configuration bit 20: "Cross-Controller Reset
/// Completed Notices" (CCRCN).
pub const AEC_CCR_COMPLETED: u32 = 1 << 20;

/// The Cross-Controller Reset command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CrossControllerResetCmd {
    /// Impacted Controller ID (ICID).
    pub icid: u16,
    /// CIU of the impacted controller, from its Identify Controller data.
    pub ciu: u8,
    /// CIRN of the impacted controller, from its Identify Controller data.
    pub cirn: u64,
}

impl CrossControllerResetCmd {
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::new(Opcode::CROSS_CONTROLLER_RESET);
        s.cdw10 = u32::from(self.icid) | (u32::from(self.ciu) << 16);
        s.cdw12 = self.cirn as u32;
        s.cdw13 = (self.cirn >> 32) as u32;
        s
    }
    /// Decode; bits 31:24 of CDW10 are reserved and ignored, as are CDW11
    /// and CDW14–15 (reserved fields are not checked by controllers here).
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        expect_opcode(
            sqe,
            Opcode::CROSS_CONTROLLER_RESET,
            "CrossControllerReset.OPC",
        )?;
        Ok(Self {
            icid: sqe.cdw10 as u16,
            ciu: (sqe.cdw10 >> 16) as u8,
            cirn: u64::from(sqe.cdw12) | (u64::from(sqe.cdw13) << 32),
        })
    }
}

/// Completion DW0 of a Cross-Controller Reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CcrResult {
    /// Immediate Reset Successful: the reset completed before the command
    /// did. Cleared: it completes later and is reported in the log page.
    pub irs: bool,
    /// Validated: the ICID, CIU and CIRN named an existing controller
    /// instance (meaningful only with IRS).
    pub validated: bool,
    /// Controller Level Reset Initiated (meaningful only with IRS).
    pub clri: bool,
}

impl CcrResult {
    pub const IRS: u32 = 1 << 0;
    pub const V: u32 = 1 << 1;
    pub const CLRI: u32 = 1 << 2;

    pub const fn from_dw0(dw0: u32) -> Self {
        let irs = dw0 & Self::IRS != 0;
        Self {
            irs,
            validated: irs && dw0 & Self::V != 0,
            clri: irs && dw0 & Self::CLRI != 0,
        }
    }
    pub const fn to_dw0(self) -> u32 {
        if !self.irs {
            return 0;
        }
        Self::IRS | (self.validated as u32 * Self::V) | (self.clri as u32 * Self::CLRI)
    }
}

/// Cross-Controller Reset Status (CCRS) of a log entry. Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CcrStatus(pub u8);

impl CcrStatus {
    pub const IN_PROGRESS: Self = Self(0x00);
    pub const SUCCESS: Self = Self(0x01);
    pub const FAILED: Self = Self(0x02);
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "in progress",
            1 => "success",
            2 => "failed",
            _ => "unknown",
        }
    }
}

/// Header of the Cross-Controller Reset log page: NE (u16) and 6 reserved bytes.
pub const CCR_LOG_HEADER_LEN: usize = 8;
/// Each Cross-Controller Reset entry is 8 bytes.
pub const CCR_ENTRY_LEN: usize = 8;
/// The most entries a log page holds (one 4 KiB page: 8 + 511 × 8 bytes).
pub const CCR_LOG_MAX_ENTRIES: usize = 511;

/// One Cross-Controller Reset entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CcrEntry {
    /// Impacted Controller ID.
    pub icid: u16,
    /// CIU of the impacted controller.
    pub ciu: u8,
    /// Alternate Controller ID: the controller that processed the command.
    pub acid: u16,
    pub status: CcrStatus,
    /// CCRF bit 0: Validated.
    pub validated: bool,
    /// CCRF bit 1: Controller Level Reset Initiated.
    pub clri: bool,
    /// CCRF bits 3:2: Retry.
    pub retry: u8,
}

impl CcrEntry {
    pub fn encode(&self) -> [u8; CCR_ENTRY_LEN] {
        let mut b = [0u8; CCR_ENTRY_LEN];
        b[0..2].copy_from_slice(&self.icid.to_le_bytes());
        b[2] = self.ciu;
        b[4..6].copy_from_slice(&self.acid.to_le_bytes());
        b[6] = self.status.0;
        b[7] = u8::from(self.validated) | (u8::from(self.clri) << 1) | ((self.retry & 0x3) << 2);
        b
    }
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let ccrf = u8_at(b, "CcrLog.CCRF", 7)?;
        Ok(Self {
            icid: u16_at(b, "CcrLog.ICID", 0)?,
            ciu: u8_at(b, "CcrLog.CIU", 2)?,
            acid: u16_at(b, "CcrLog.ACID", 4)?,
            status: CcrStatus(u8_at(b, "CcrLog.CCRS", 6)?),
            validated: ccrf & 1 != 0,
            clri: ccrf & 2 != 0,
            retry: (ccrf >> 2) & 0x3,
        })
    }
}

/// The Cross-Controller Reset log page (1Eh).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CcrLog {
    pub entries: Vec<CcrEntry>,
}

impl CcrLog {
    /// Header plus entries (at most [`CCR_LOG_MAX_ENTRIES`]; more are cut).
    pub fn encode(&self) -> Vec<u8> {
        let n = self.entries.len().min(CCR_LOG_MAX_ENTRIES);
        let mut b = vec![0u8; CCR_LOG_HEADER_LEN + n * CCR_ENTRY_LEN];
        b[0..2].copy_from_slice(&(n as u16).to_le_bytes());
        for (i, e) in self.entries.iter().take(n).enumerate() {
            let off = CCR_LOG_HEADER_LEN + i * CCR_ENTRY_LEN;
            b[off..off + CCR_ENTRY_LEN].copy_from_slice(&e.encode());
        }
        b
    }
    /// Decode; NE is bounded by [`CCR_LOG_MAX_ENTRIES`] and by the bytes
    /// present (a host reads the whole page, zero padded).
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let ne = u16_at(b, "CcrLog.NE", 0)? as usize;
        if ne > CCR_LOG_MAX_ENTRIES {
            return Err(DecodeError::at(
                "CcrLog.NE",
                0,
                DecodeErrorKind::OutOfRange { value: ne as u64 },
            ));
        }
        let need = CCR_LOG_HEADER_LEN + ne * CCR_ENTRY_LEN;
        if b.len() < need {
            return Err(DecodeError::at(
                "CcrLog.Entries",
                CCR_LOG_HEADER_LEN,
                DecodeErrorKind::Truncated {
                    needed: need,
                    available: b.len(),
                },
            ));
        }
        let entries = b[CCR_LOG_HEADER_LEN..need]
            .chunks_exact(CCR_ENTRY_LEN)
            .map(CcrEntry::decode)
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn command_known_bytes() {
        // OPC 38h; CDW10 (bytes 40..44) = CIU 0x5A << 16 | ICID 0x0102;
        // CDW12/13 (bytes 48..56) = CIRN 0x1122334455667788, low dword first.
        let mut b = [0u8; 64];
        b[0] = 0x38;
        b[1] = 0x40; // PSDT: SGL (as Sqe::new sets it)
        b[40..44].copy_from_slice(&[0x02, 0x01, 0x5A, 0x00]);
        b[48..56].copy_from_slice(&[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
        let c = CrossControllerResetCmd::from_sqe(&Sqe::decode(&b).unwrap()).unwrap();
        assert_eq!(
            c,
            CrossControllerResetCmd {
                icid: 0x0102,
                ciu: 0x5A,
                cirn: 0x1122_3344_5566_7788
            }
        );
        assert_eq!(c.to_sqe().to_bytes(), b);
        let other = crate::admin::keep_alive_sqe();
        assert_eq!(
            CrossControllerResetCmd::from_sqe(&other).unwrap_err().field,
            "CrossControllerReset.OPC"
        );
    }

    #[test]
    fn result_bits() {
        assert_eq!(
            CcrResult::from_dw0(0b111),
            CcrResult {
                irs: true,
                validated: true,
                clri: true
            }
        );
        // "Undefined if IRS is cleared to '0'": ignored.
        assert_eq!(CcrResult::from_dw0(0b110), CcrResult::default());
        assert_eq!(CcrResult::from_dw0(0b001).to_dw0(), 1);
    }

    #[test]
    fn log_known_bytes() {
        // NE = 2, 6 reserved; entry: ICID 3, CIU 7, rsvd, ACID 4, CCRS 1 (success), CCRF V|CLRI|RETRY=2.
        let mut b = vec![2, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[3, 0, 7, 0, 4, 0, 1, 0b1011]);
        b.extend_from_slice(&[9, 0, 1, 0, 4, 0, 0, 0]);
        let log = CcrLog::decode(&b).unwrap();
        assert_eq!(
            log.entries,
            vec![
                CcrEntry {
                    icid: 3,
                    ciu: 7,
                    acid: 4,
                    status: CcrStatus::SUCCESS,
                    validated: true,
                    clri: true,
                    retry: 2
                },
                CcrEntry {
                    icid: 9,
                    ciu: 1,
                    acid: 4,
                    status: CcrStatus::IN_PROGRESS,
                    ..Default::default()
                }
            ]
        );
        assert_eq!(log.encode(), b);
        // Zero padding after the entries (a whole page read) is fine.
        let mut padded = b.clone();
        padded.resize(4096, 0);
        assert_eq!(CcrLog::decode(&padded).unwrap(), log);
    }

    #[test]
    fn log_strict() {
        let e = CcrLog::decode(&[3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]).unwrap_err();
        assert_eq!(e.field, "CcrLog.Entries");
        let e = CcrLog::decode(&[0x00, 0x02, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(
            (e.field, e.kind),
            ("CcrLog.NE", DecodeErrorKind::OutOfRange { value: 511 + 1 })
        );
        assert_eq!(CcrLog::decode(&[1]).unwrap_err().field, "CcrLog.NE");
    }

    fn entry() -> impl Strategy<Value = CcrEntry> {
        (any::<(u16, u8, u16, u8, bool, bool)>(), 0u8..4).prop_map(
            |((icid, ciu, acid, s, validated, clri), retry)| CcrEntry {
                icid,
                ciu,
                acid,
                status: CcrStatus(s),
                validated,
                clri,
                retry,
            },
        )
    }

    proptest! {
        #[test]
        fn command_round_trip(icid in any::<u16>(), ciu in any::<u8>(), cirn in any::<u64>()) {
            let c = CrossControllerResetCmd { icid, ciu, cirn };
            let back = Sqe::decode(&c.to_sqe().to_bytes()).unwrap();
            prop_assert_eq!(CrossControllerResetCmd::from_sqe(&back).unwrap(), c);
        }

        #[test]
        fn log_round_trip(entries in proptest::collection::vec(entry(), 0..40)) {
            let log = CcrLog { entries };
            prop_assert_eq!(CcrLog::decode(&log.encode()).unwrap(), log);
        }

        #[test]
        fn log_decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = CcrLog::decode(&b);
        }
    }
}
