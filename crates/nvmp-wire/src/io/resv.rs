//! Reservations (NVMe Base 2.0, 7.2–7.6 and 8.19): Reservation Register
//! (0Dh), Report (0Eh), Acquire (11h), Release (15h), their data
//! structures, and the Reservation Status data structure in both formats
//! (24-byte entries with a 64-bit Host Identifier; 64-byte extended entries
//! with the 128-bit Host Identifier that NVMe over Fabrics uses).

use crate::error::{DecodeError, DecodeErrorKind};
use crate::field::{u16_at, u32_at, u64_at, u8_at};
use crate::sqe::{Opcode, Sqe};

/// Set/Get Features: Host Identifier.
pub const FID_HOST_IDENTIFIER: u8 = 0x81;
/// Set/Get Features: Reservation Notification Mask (namespace specific).
pub const FID_RESV_NOTIFICATION_MASK: u8 = 0x82;
/// Set/Get Features: Reservation Persistence (namespace specific).
pub const FID_RESV_PERSISTENCE: u8 = 0x83;

/// Reservation Notification Mask bits (CDW11): "Mask Registration Preempted
/// Notification" (bit 1), "Mask Reservation Released Notification" (bit 2),
/// "Mask Reservation Preempted Notification" (bit 3).
pub mod mask {
    pub const REGISTRATION_PREEMPTED: u32 = 1 << 1;
    pub const RESERVATION_RELEASED: u32 = 1 << 2;
    pub const RESERVATION_PREEMPTED: u32 = 1 << 3;
    pub const ALL: u32 = REGISTRATION_PREEMPTED | RESERVATION_RELEASED | RESERVATION_PREEMPTED;
}

/// RESCAP (Identify Namespace byte 31) bits.
pub mod rescap {
    /// Persist Through Power Loss supported.
    pub const PTPL: u8 = 1 << 0;
    pub const WRITE_EXCLUSIVE: u8 = 1 << 1;
    pub const EXCLUSIVE_ACCESS: u8 = 1 << 2;
    pub const WRITE_EXCLUSIVE_REG_ONLY: u8 = 1 << 3;
    pub const EXCLUSIVE_ACCESS_REG_ONLY: u8 = 1 << 4;
    pub const WRITE_EXCLUSIVE_ALL_REGS: u8 = 1 << 5;
    pub const EXCLUSIVE_ACCESS_ALL_REGS: u8 = 1 << 6;
    /// "Ignore Existing Key … as defined in revision 1.3 or later".
    pub const IEKEY: u8 = 1 << 7;
    pub const ALL: u8 = 0xFF;
}

/// Offset of RESCAP in Identify Namespace.
pub const IDNS_RESCAP_OFFSET: usize = 31;

/// ONCS bit 5: "the controller supports reservations".
pub const ONCS_RESERVATIONS: u16 = 1 << 5;

/// Reservation type (RTYPE). Open newtype: 0 is "no reservation" in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct ResvType(pub u8);

impl ResvType {
    pub const NONE: Self = Self(0);
    pub const WRITE_EXCLUSIVE: Self = Self(1);
    pub const EXCLUSIVE_ACCESS: Self = Self(2);
    pub const WRITE_EXCLUSIVE_REG_ONLY: Self = Self(3);
    pub const EXCLUSIVE_ACCESS_REG_ONLY: Self = Self(4);
    pub const WRITE_EXCLUSIVE_ALL_REGS: Self = Self(5);
    pub const EXCLUSIVE_ACCESS_ALL_REGS: Self = Self(6);

    /// A reservation type a host may acquire (1..=6).
    pub const fn is_valid(self) -> bool {
        matches!(self.0, 1..=6)
    }
    /// "All Registrants" types: every registrant is a reservation holder.
    pub const fn all_registrants(self) -> bool {
        matches!(self.0, 5 | 6)
    }
    /// "Registrants Only" types (3, 4).
    pub const fn registrants_only(self) -> bool {
        matches!(self.0, 3 | 4)
    }
    /// Exclusive Access types: reads are restricted too.
    pub const fn exclusive_access(self) -> bool {
        matches!(self.0, 2 | 4 | 6)
    }
    /// nvme-cli's names.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "Reservation not held",
            1 => "Write Exclusive",
            2 => "Exclusive Access",
            3 => "Write Exclusive - Registrants Only",
            4 => "Exclusive Access - Registrants Only",
            5 => "Write Exclusive - All Registrants",
            6 => "Exclusive Access - All Registrants",
            _ => "Reserved",
        }
    }
}

/// Reservation Register Action (RREGA, CDW10 bits 2:0).
pub mod rrega {
    pub const REGISTER: u8 = 0;
    pub const UNREGISTER: u8 = 1;
    pub const REPLACE: u8 = 2;
}
/// Reservation Acquire Action (RACQA, CDW10 bits 2:0).
pub mod racqa {
    pub const ACQUIRE: u8 = 0;
    pub const PREEMPT: u8 = 1;
    pub const PREEMPT_AND_ABORT: u8 = 2;
}
/// Reservation Release Action (RRELA, CDW10 bits 2:0).
pub mod rrela {
    pub const RELEASE: u8 = 0;
    pub const CLEAR: u8 = 1;
}
/// Change Persist Through Power Loss State (CPTPL, Register CDW10 bits 31:30).
pub mod cptpl {
    pub const NO_CHANGE: u8 = 0;
    /// "Reserved" (01b).
    pub const RESERVED: u8 = 1;
    /// "Set PTPL state to '0'": reservations are released and registrants cleared on a power loss.
    pub const CLEAR: u8 = 2;
    /// "Set PTPL state to '1'": reservations and registrants persist across a power loss.
    pub const SET: u8 = 3;
}

const IEKEY: u32 = 1 << 3;

/// Length of the Reservation Register and Acquire data structures.
pub const RESV_KEYS_LEN: usize = 16;
/// Length of the Reservation Release data structure.
pub const RESV_RELEASE_LEN: usize = 8;

fn keys(data: &[u8], what: &'static str) -> Result<(u64, u64), DecodeError> {
    Ok((u64_at(data, what, 0)?, u64_at(data, what, 8)?))
}

fn expect(sqe: &Sqe, op: Opcode, field: &'static str) -> Result<(), DecodeError> {
    if sqe.opcode != op {
        return Err(DecodeError::at(field, 0, DecodeErrorKind::Invalid));
    }
    Ok(())
}

/// Reservation Register: CDW10 RREGA[2:0] | IEKEY[3] | CPTPL[31:30]; data: CRKEY, NRKEY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResvRegister {
    pub nsid: u32,
    pub rrega: u8,
    pub iekey: bool,
    pub cptpl: u8,
    pub crkey: u64,
    pub nrkey: u64,
}

impl ResvRegister {
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::new(Opcode::RESERVATION_REGISTER);
        s.nsid = self.nsid;
        s.cdw10 = u32::from(self.rrega & 7)
            | if self.iekey { IEKEY } else { 0 }
            | (u32::from(self.cptpl & 3) << 30);
        s
    }
    pub fn data(&self) -> [u8; RESV_KEYS_LEN] {
        let mut b = [0u8; RESV_KEYS_LEN];
        b[..8].copy_from_slice(&self.crkey.to_le_bytes());
        b[8..].copy_from_slice(&self.nrkey.to_le_bytes());
        b
    }
    pub fn decode(sqe: &Sqe, data: &[u8]) -> Result<Self, DecodeError> {
        expect(sqe, Opcode::RESERVATION_REGISTER, "ResvRegister.OPC")?;
        let (crkey, nrkey) = keys(data, "ResvRegister.data")?;
        Ok(Self {
            nsid: sqe.nsid,
            rrega: (sqe.cdw10 & 7) as u8,
            iekey: sqe.cdw10 & IEKEY != 0,
            cptpl: (sqe.cdw10 >> 30) as u8,
            crkey,
            nrkey,
        })
    }
}

/// Reservation Acquire: CDW10 RACQA[2:0] | IEKEY[3] | RTYPE[15:8]; data: CRKEY, PRKEY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResvAcquire {
    pub nsid: u32,
    pub racqa: u8,
    pub iekey: bool,
    pub rtype: ResvType,
    pub crkey: u64,
    pub prkey: u64,
}

impl ResvAcquire {
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::new(Opcode::RESERVATION_ACQUIRE);
        s.nsid = self.nsid;
        s.cdw10 = u32::from(self.racqa & 7)
            | if self.iekey { IEKEY } else { 0 }
            | (u32::from(self.rtype.0) << 8);
        s
    }
    pub fn data(&self) -> [u8; RESV_KEYS_LEN] {
        let mut b = [0u8; RESV_KEYS_LEN];
        b[..8].copy_from_slice(&self.crkey.to_le_bytes());
        b[8..].copy_from_slice(&self.prkey.to_le_bytes());
        b
    }
    pub fn decode(sqe: &Sqe, data: &[u8]) -> Result<Self, DecodeError> {
        expect(sqe, Opcode::RESERVATION_ACQUIRE, "ResvAcquire.OPC")?;
        let (crkey, prkey) = keys(data, "ResvAcquire.data")?;
        Ok(Self {
            nsid: sqe.nsid,
            racqa: (sqe.cdw10 & 7) as u8,
            iekey: sqe.cdw10 & IEKEY != 0,
            rtype: ResvType((sqe.cdw10 >> 8) as u8),
            crkey,
            prkey,
        })
    }
}

/// Reservation Release: CDW10 RRELA[2:0] | IEKEY[3] | RTYPE[15:8]; data: CRKEY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResvRelease {
    pub nsid: u32,
    pub rrela: u8,
    pub iekey: bool,
    pub rtype: ResvType,
    pub crkey: u64,
}

impl ResvRelease {
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::new(Opcode::RESERVATION_RELEASE);
        s.nsid = self.nsid;
        s.cdw10 = u32::from(self.rrela & 7)
            | if self.iekey { IEKEY } else { 0 }
            | (u32::from(self.rtype.0) << 8);
        s
    }
    pub fn data(&self) -> [u8; RESV_RELEASE_LEN] {
        self.crkey.to_le_bytes()
    }
    pub fn decode(sqe: &Sqe, data: &[u8]) -> Result<Self, DecodeError> {
        expect(sqe, Opcode::RESERVATION_RELEASE, "ResvRelease.OPC")?;
        Ok(Self {
            nsid: sqe.nsid,
            rrela: (sqe.cdw10 & 7) as u8,
            iekey: sqe.cdw10 & IEKEY != 0,
            rtype: ResvType((sqe.cdw10 >> 8) as u8),
            crkey: u64_at(data, "ResvRelease.CRKEY", 0)?,
        })
    }
}

/// Reservation Report: CDW10 NUMD (0's based dwords), CDW11 EDS[0].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResvReportCmd {
    pub nsid: u32,
    /// Bytes to return: a multiple of 4, 4..=16 GiB (NUMD is 0's based in 32 bits).
    pub len: u64,
    /// Extended Data Structure: 64-byte entries with the 128-bit Host Identifier.
    pub eds: bool,
}

impl ResvReportCmd {
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::new(Opcode::RESERVATION_REPORT);
        s.nsid = self.nsid;
        s.cdw10 = ((self.len / 4).clamp(1, 1 << 32) - 1) as u32;
        s.cdw11 = u32::from(self.eds);
        s
    }
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        expect(sqe, Opcode::RESERVATION_REPORT, "ResvReport.OPC")?;
        Ok(Self {
            nsid: sqe.nsid,
            len: (u64::from(sqe.cdw10) + 1) * 4,
            eds: sqe.cdw11 & 1 != 0,
        })
    }
}

/// Reservation Status header: 24 bytes, 64 with EDS.
pub const RESV_STATUS_HEADER_LEN: usize = 24;
pub const RESV_STATUS_EXT_HEADER_LEN: usize = 64;
/// Registered Controller data structure: 24 bytes, 64 with EDS.
pub const REGISTERED_CTRL_LEN: usize = 24;
pub const REGISTERED_CTRL_EXT_LEN: usize = 64;
/// REGCTL is 16 bits: a report names at most 65535 controllers.
pub const MAX_REGCTL: usize = 0xFFFF;

/// RCSTS bit 0: "the host associated with the controller holds a reservation".
pub const RCSTS_HOLDS: u8 = 1;

/// One Registered Controller (or Registered Controller Extended) entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RegisteredCtrl {
    /// FFFFh: a dynamic controller model target reporting per host.
    pub cntlid: u16,
    pub rcsts: u8,
    /// The 128-bit Host Identifier; in the 24-byte format only the first 8 bytes travel.
    pub hostid: [u8; 16],
    pub rkey: u64,
}

impl RegisteredCtrl {
    pub fn holds(&self) -> bool {
        self.rcsts & RCSTS_HOLDS != 0
    }
}

/// The Reservation Status data structure (Report's data), either format.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ResvStatus {
    /// Generation: bumped by Register, Preempt (and Abort) and Clear.
    pub gen: u32,
    pub rtype: ResvType,
    /// REGCTL: how many registrants exist (the entries present may be fewer
    /// when the host asked for fewer bytes).
    pub regctl: u16,
    /// PTPLS: Persist Through Power Loss State.
    pub ptpls: bool,
    pub ctrls: Vec<RegisteredCtrl>,
}

impl ResvStatus {
    fn lens(eds: bool) -> (usize, usize) {
        if eds {
            (RESV_STATUS_EXT_HEADER_LEN, REGISTERED_CTRL_EXT_LEN)
        } else {
            (RESV_STATUS_HEADER_LEN, REGISTERED_CTRL_LEN)
        }
    }

    /// Encode in the chosen format (`ctrls` beyond [`MAX_REGCTL`] are dropped).
    pub fn encode(&self, eds: bool) -> Vec<u8> {
        let (hl, el) = Self::lens(eds);
        let n = self.ctrls.len().min(MAX_REGCTL);
        let mut b = vec![0u8; hl + n * el];
        b[0..4].copy_from_slice(&self.gen.to_le_bytes());
        b[4] = self.rtype.0;
        b[5..7].copy_from_slice(&self.regctl.to_le_bytes());
        b[9] = u8::from(self.ptpls);
        for (c, e) in self.ctrls.iter().take(n).zip(b[hl..].chunks_exact_mut(el)) {
            e[0..2].copy_from_slice(&c.cntlid.to_le_bytes());
            e[2] = c.rcsts;
            if eds {
                e[8..16].copy_from_slice(&c.rkey.to_le_bytes());
                e[16..32].copy_from_slice(&c.hostid);
            } else {
                e[8..16].copy_from_slice(&c.hostid[..8]);
                e[16..24].copy_from_slice(&c.rkey.to_le_bytes());
            }
        }
        b
    }

    /// Decode a report as returned: the entries that fit in `b` (at most
    /// REGCTL of them; a shorter buffer holds fewer).
    pub fn decode(b: &[u8], eds: bool) -> Result<Self, DecodeError> {
        let (hl, el) = Self::lens(eds);
        if b.len() < hl {
            return Err(DecodeError::truncated("ResvStatus", hl, b.len()));
        }
        let regctl = u16_at(b, "ResvStatus.REGCTL", 5)?;
        let fit = (b.len() - hl) / el;
        let n = usize::from(regctl).min(fit);
        let mut ctrls = Vec::with_capacity(n);
        for i in 0..n {
            let o = hl + i * el;
            let mut hostid = [0u8; 16];
            let (rkey, hid_off, hid_len) = if eds {
                (u64_at(b, "RegCtrlExt.RKEY", o + 8)?, o + 16, 16)
            } else {
                (u64_at(b, "RegCtrl.RKEY", o + 16)?, o + 8, 8)
            };
            hostid[..hid_len].copy_from_slice(&b[hid_off..hid_off + hid_len]);
            ctrls.push(RegisteredCtrl {
                cntlid: u16_at(b, "RegCtrl.CNTLID", o)?,
                rcsts: u8_at(b, "RegCtrl.RCSTS", o + 2)?,
                hostid,
                rkey,
            });
        }
        Ok(Self {
            gen: u32_at(b, "ResvStatus.GEN", 0)?,
            rtype: ResvType(u8_at(b, "ResvStatus.RTYPE", 4)?),
            regctl,
            ptpls: u8_at(b, "ResvStatus.PTPLS", 9)? & 1 != 0,
            ctrls,
        })
    }

    /// The registrant entry of a host, if present.
    pub fn find(&self, hostid: &[u8; 16]) -> Option<&RegisteredCtrl> {
        self.ctrls.iter().find(|c| &c.hostid == hostid)
    }
}

#[cfg(test)]
mod tests;
