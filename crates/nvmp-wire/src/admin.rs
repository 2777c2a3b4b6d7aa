//! Admin commands (NVMe Base 2.0, section 5): Identify, Get Log Page,
//! Set/Get Features, Asynchronous Event Request and its completion, Keep Alive.

use crate::error::{DecodeError, DecodeErrorKind};
use crate::sqe::{Opcode, Sqe};

pub mod ccr;

fn expect_opcode(sqe: &Sqe, op: Opcode, field: &'static str) -> Result<(), DecodeError> {
    if sqe.opcode != op {
        return Err(DecodeError::at(field, 0, DecodeErrorKind::Invalid));
    }
    Ok(())
}

/// Controller or Namespace Structure (Identify CDW10 bits 7:0). Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cns(pub u8);

impl Cns {
    pub const NAMESPACE: Self = Self(0x00);
    pub const CONTROLLER: Self = Self(0x01);
    pub const ACTIVE_NS_LIST: Self = Self(0x02);
    pub const NS_ID_DESCRIPTORS: Self = Self(0x03);
}

/// Every Identify data structure is 4096 bytes.
pub const IDENTIFY_DATA_LEN: usize = 4096;

/// Identify (NVMe Base 2.0, Figure 273): CDW10 = CNTID[31:16] | CNS[7:0].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IdentifyCmd {
    pub cns: Cns,
    pub nsid: u32,
    pub cntid: u16,
}

impl IdentifyCmd {
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::new(Opcode::IDENTIFY);
        s.nsid = self.nsid;
        s.cdw10 = u32::from(self.cns.0) | (u32::from(self.cntid) << 16);
        s
    }
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        expect_opcode(sqe, Opcode::IDENTIFY, "Identify.OPC")?;
        Ok(Self {
            cns: Cns(sqe.cdw10 as u8),
            nsid: sqe.nsid,
            cntid: (sqe.cdw10 >> 16) as u16,
        })
    }
}

/// Log page identifier. Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct LogPageId(pub u8);

impl LogPageId {
    pub const ERROR: Self = Self(0x01);
    pub const SMART: Self = Self(0x02);
    pub const FW_SLOT: Self = Self(0x03);
    pub const CHANGED_NS: Self = Self(0x04);
    pub const ANA: Self = Self(0x0C);
    pub const DISCOVERY: Self = Self(0x70);
}

/// ANA log LSP bit 0: "Return Groups Only (RGO)".
pub const ANA_LSP_RGO: u8 = 0x01;

/// Get Log Page (NVMe Base 2.0, Figures 197-201).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GetLogPageCmd {
    pub lid: LogPageId,
    pub nsid: u32,
    /// Log Specific Field (7 bits).
    pub lsp: u8,
    /// Retain Asynchronous Event.
    pub rae: bool,
    /// Number of dwords to return, a 1-based count (the wire carries it 0's based).
    pub numd: u32,
    /// Log Page Offset in bytes.
    pub lpo: u64,
    /// Command Set Identifier.
    pub csi: u8,
}

impl GetLogPageCmd {
    /// A request for `len` bytes (rounded up to whole dwords) at byte offset `lpo`.
    pub fn new(lid: LogPageId, nsid: u32, len: u32, lpo: u64) -> Self {
        Self {
            lid,
            nsid,
            numd: len.div_ceil(4),
            lpo,
            ..Self::default()
        }
    }
    /// The transfer length in bytes.
    pub fn len_bytes(&self) -> u64 {
        u64::from(self.numd) * 4
    }
    pub fn to_sqe(&self) -> Sqe {
        let numd = self.numd.saturating_sub(1);
        let mut s = Sqe::new(Opcode::GET_LOG_PAGE);
        s.nsid = self.nsid;
        s.cdw10 = u32::from(self.lid.0)
            | (u32::from(self.lsp & 0x7F) << 8)
            | (u32::from(self.rae) << 15)
            | ((numd & 0xFFFF) << 16);
        s.cdw11 = numd >> 16;
        s.cdw12 = self.lpo as u32;
        s.cdw13 = (self.lpo >> 32) as u32;
        s.cdw14 = u32::from(self.csi) << 24;
        s
    }
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        expect_opcode(sqe, Opcode::GET_LOG_PAGE, "GetLogPage.OPC")?;
        let wire = (sqe.cdw10 >> 16) | ((sqe.cdw11 & 0xFFFF) << 16);
        // NUMD is 0's based: FFFFFFFFh + 1 dwords do not fit the 1-based u32.
        let numd = wire.checked_add(1).ok_or(DecodeError::at(
            "GetLogPage.NUMD",
            40,
            DecodeErrorKind::OutOfRange { value: wire.into() },
        ))?;
        Ok(Self {
            lid: LogPageId(sqe.cdw10 as u8),
            nsid: sqe.nsid,
            lsp: ((sqe.cdw10 >> 8) & 0x7F) as u8,
            rae: sqe.cdw10 & (1 << 15) != 0,
            numd,
            lpo: u64::from(sqe.cdw12) | (u64::from(sqe.cdw13) << 32),
            csi: (sqe.cdw14 >> 24) as u8,
        })
    }
}

/// Feature identifier. Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FeatureId(pub u8);

impl FeatureId {
    pub const ARBITRATION: Self = Self(0x01);
    pub const POWER_MANAGEMENT: Self = Self(0x02);
    pub const VOLATILE_WRITE_CACHE: Self = Self(0x06);
    pub const NUMBER_OF_QUEUES: Self = Self(0x07);
    pub const ASYNC_EVENT_CONFIG: Self = Self(0x0B);
    pub const KEEP_ALIVE_TIMER: Self = Self(0x0F);
}

/// Set Features: CDW10 = SV[31] | FID[7:0]; CDW11 is feature specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SetFeaturesCmd {
    pub fid: FeatureId,
    pub save: bool,
    pub cdw11: u32,
}

impl SetFeaturesCmd {
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::new(Opcode::SET_FEATURES);
        s.cdw10 = u32::from(self.fid.0) | (u32::from(self.save) << 31);
        s.cdw11 = self.cdw11;
        s
    }
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        expect_opcode(sqe, Opcode::SET_FEATURES, "SetFeatures.OPC")?;
        Ok(Self {
            fid: FeatureId(sqe.cdw10 as u8),
            save: sqe.cdw10 & (1 << 31) != 0,
            cdw11: sqe.cdw11,
        })
    }
}

/// Get Features: CDW10 = SEL[10:8] | FID[7:0].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GetFeaturesCmd {
    pub fid: FeatureId,
    /// Select: 0 current, 1 default, 2 saved, 3 supported capabilities.
    pub sel: u8,
    pub cdw11: u32,
}

impl GetFeaturesCmd {
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::new(Opcode::GET_FEATURES);
        s.cdw10 = u32::from(self.fid.0) | (u32::from(self.sel & 0x7) << 8);
        s.cdw11 = self.cdw11;
        s
    }
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        expect_opcode(sqe, Opcode::GET_FEATURES, "GetFeatures.OPC")?;
        Ok(Self {
            fid: FeatureId(sqe.cdw10 as u8),
            sel: ((sqe.cdw10 >> 8) & 0x7) as u8,
            cdw11: sqe.cdw11,
        })
    }
}

/// Number of Queues (Feature 07h): NCQR[31:16] | NSQR[15:0], both 0's based,
/// in CDW11 of Set Features and in DW0 of its completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NumberOfQueues {
    pub nsqr: u16,
    pub ncqr: u16,
}

impl NumberOfQueues {
    pub const fn to_cdw11(self) -> u32 {
        self.nsqr as u32 | ((self.ncqr as u32) << 16)
    }
    pub const fn from_cdw11(v: u32) -> Self {
        Self {
            nsqr: v as u16,
            ncqr: (v >> 16) as u16,
        }
    }
    pub const fn to_dw0(self) -> u32 {
        self.to_cdw11()
    }
    pub const fn from_dw0(v: u32) -> Self {
        Self::from_cdw11(v)
    }
}

/// Asynchronous Event Configuration bits (Feature 0Bh, CDW11) and OAES bits.
pub mod aec {
    pub const NS_ATTR_CHANGED: u32 = 1 << 8;
    pub const FW_ACTIVATION: u32 = 1 << 9;
    pub const ANA_CHANGE: u32 = 1 << 11;
    pub const DISCOVERY_LOG_CHANGE: u32 = 1 << 31;
}

/// Asynchronous event type (completion DW0 bits 2:0). Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AsyncEventType(pub u8);

impl AsyncEventType {
    pub const ERROR: Self = Self(0);
    pub const SMART: Self = Self(1);
    pub const NOTICE: Self = Self(2);
    pub const IO_CMD_SET: Self = Self(6);
    pub const VENDOR: Self = Self(7);
}

/// Notice event information: "Namespace Attribute Changed".
pub const NOTICE_NS_ATTR_CHANGED: u8 = 0x00;
/// Notice event information: "Firmware Activation Starting".
pub const NOTICE_FW_ACTIVATION: u8 = 0x01;
/// Notice event information: "Asymmetric Namespace Access Change".
pub const NOTICE_ANA_CHANGE: u8 = 0x03;
/// Notice event information: "Discovery Log Page Change" (NVMe-oF).
pub const NOTICE_DISCOVERY_LOG_CHANGE: u8 = 0xF0;

/// An Asynchronous Event Request completion (NVMe Base 2.0, Figure 147):
/// DW0 = log page [23:16] | information [15:8] | type [2:0].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AsyncEvent {
    pub event_type: AsyncEventType,
    pub info: u8,
    pub log_page: LogPageId,
}

impl AsyncEvent {
    pub const fn from_dw0(dw0: u32) -> Self {
        Self {
            event_type: AsyncEventType((dw0 & 0x7) as u8),
            info: (dw0 >> 8) as u8,
            log_page: LogPageId((dw0 >> 16) as u8),
        }
    }
    pub const fn to_dw0(self) -> u32 {
        (self.event_type.0 as u32 & 0x7)
            | ((self.info as u32) << 8)
            | ((self.log_page.0 as u32) << 16)
    }
    /// A notice event with its log page.
    pub const fn notice(info: u8, log_page: LogPageId) -> Self {
        Self {
            event_type: AsyncEventType::NOTICE,
            info,
            log_page,
        }
    }
}

pub fn keep_alive_sqe() -> Sqe {
    Sqe::new(Opcode::KEEP_ALIVE)
}

pub fn async_event_request_sqe() -> Sqe {
    Sqe::new(Opcode::ASYNC_EVENT_REQUEST)
}

#[cfg(test)]
mod tests;
