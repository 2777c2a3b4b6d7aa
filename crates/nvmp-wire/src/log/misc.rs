//! Error Information (01h), SMART / Health Information (02h) and Changed
//! Namespace List (04h) log pages (NVMe Base 2.0, Figures 205, 207, 209).

use crate::error::{DecodeError, DecodeErrorKind};
use crate::field::{slice_at, u128_at, u16_at, u32_at, u64_at, u8_at};
use crate::reader::Reader;
use crate::status::Status;

/// Each Error Information log entry is 64 bytes.
pub const ERROR_LOG_ENTRY_LEN: usize = 64;
/// The SMART / Health Information log is 512 bytes.
pub const SMART_LOG_LEN: usize = 512;
/// The Changed Namespace List log is 4096 bytes.
pub const CHANGED_NS_LIST_LEN: usize = 4096;
/// "up to 1,024 … namespace IDs".
pub const CHANGED_NS_MAX: usize = 1024;

/// One Error Information log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ErrorLogEntry {
    /// Error Count: unique, incrementing; 0 = invalid entry.
    pub error_count: u64,
    pub sqid: u16,
    pub cid: u16,
    /// Status Field (bits 15:1) and phase tag (bit 0), as in a CQE.
    pub status_field: u16,
    /// Parameter Error Location: byte (7:0) and bit (10:8) of the command.
    pub pel: u16,
    pub lba: u64,
    pub nsid: u32,
    pub vsia: u8,
    pub trtype: u8,
    pub csi: u64,
    pub ttsi: u16,
}

impl ErrorLogEntry {
    pub fn status(&self) -> Status {
        Status::from_word(self.status_field)
    }
    pub fn encode(&self) -> [u8; ERROR_LOG_ENTRY_LEN] {
        let mut b = [0u8; ERROR_LOG_ENTRY_LEN];
        b[0..8].copy_from_slice(&self.error_count.to_le_bytes());
        b[8..10].copy_from_slice(&self.sqid.to_le_bytes());
        b[10..12].copy_from_slice(&self.cid.to_le_bytes());
        b[12..14].copy_from_slice(&self.status_field.to_le_bytes());
        b[14..16].copy_from_slice(&self.pel.to_le_bytes());
        b[16..24].copy_from_slice(&self.lba.to_le_bytes());
        b[24..28].copy_from_slice(&self.nsid.to_le_bytes());
        b[28] = self.vsia;
        b[29] = self.trtype;
        b[32..40].copy_from_slice(&self.csi.to_le_bytes());
        b[40..42].copy_from_slice(&self.ttsi.to_le_bytes());
        b
    }
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let b = slice_at(buf, "ErrorLog.Entry", 0, ERROR_LOG_ENTRY_LEN)?;
        Ok(Self {
            error_count: u64_at(b, "ErrorLog.ERRCNT", 0)?,
            sqid: u16_at(b, "ErrorLog.SQID", 8)?,
            cid: u16_at(b, "ErrorLog.CID", 10)?,
            status_field: u16_at(b, "ErrorLog.STATUS", 12)?,
            pel: u16_at(b, "ErrorLog.PEL", 14)?,
            lba: u64_at(b, "ErrorLog.LBA", 16)?,
            nsid: u32_at(b, "ErrorLog.NSID", 24)?,
            vsia: u8_at(b, "ErrorLog.VSIA", 28)?,
            trtype: u8_at(b, "ErrorLog.TRTYPE", 29)?,
            csi: u64_at(b, "ErrorLog.CSI", 32)?,
            ttsi: u16_at(b, "ErrorLog.TTSI", 40)?,
        })
    }
    /// Decode as many whole entries as the buffer holds.
    pub fn decode_list(b: &[u8]) -> Result<Vec<Self>, DecodeError> {
        b.chunks_exact(ERROR_LOG_ENTRY_LEN)
            .map(Self::decode)
            .collect()
    }
}

/// SMART / Health Information, the basic fields (128-bit counters as u128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SmartLog {
    pub critical_warning: u8,
    /// Composite temperature, kelvin.
    pub temperature_k: u16,
    pub available_spare: u8,
    pub available_spare_threshold: u8,
    pub percentage_used: u8,
    pub endurance_group_critical_warning: u8,
    /// In thousands of 512-byte units.
    pub data_units_read: u128,
    pub data_units_written: u128,
    pub host_read_commands: u128,
    pub host_write_commands: u128,
    pub controller_busy_time_min: u128,
    pub power_cycles: u128,
    pub power_on_hours: u128,
    pub unsafe_shutdowns: u128,
    pub media_errors: u128,
    pub num_err_log_entries: u128,
    pub warning_temp_time_min: u32,
    pub critical_temp_time_min: u32,
}

impl SmartLog {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; SMART_LOG_LEN];
        b[0] = self.critical_warning;
        b[1..3].copy_from_slice(&self.temperature_k.to_le_bytes());
        b[3] = self.available_spare;
        b[4] = self.available_spare_threshold;
        b[5] = self.percentage_used;
        b[6] = self.endurance_group_critical_warning;
        let counters = [
            self.data_units_read,
            self.data_units_written,
            self.host_read_commands,
            self.host_write_commands,
            self.controller_busy_time_min,
            self.power_cycles,
            self.power_on_hours,
            self.unsafe_shutdowns,
            self.media_errors,
            self.num_err_log_entries,
        ];
        for (i, c) in counters.iter().enumerate() {
            let o = 32 + 16 * i;
            b[o..o + 16].copy_from_slice(&c.to_le_bytes());
        }
        b[192..196].copy_from_slice(&self.warning_temp_time_min.to_le_bytes());
        b[196..200].copy_from_slice(&self.critical_temp_time_min.to_le_bytes());
        b
    }
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let b = slice_at(buf, "SMART", 0, SMART_LOG_LEN)?;
        Ok(Self {
            critical_warning: u8_at(b, "SMART.CW", 0)?,
            temperature_k: u16_at(b, "SMART.CTEMP", 1)?,
            available_spare: u8_at(b, "SMART.AVSP", 3)?,
            available_spare_threshold: u8_at(b, "SMART.AVSPT", 4)?,
            percentage_used: u8_at(b, "SMART.PUSED", 5)?,
            endurance_group_critical_warning: u8_at(b, "SMART.EGCWS", 6)?,
            data_units_read: u128_at(b, "SMART.DUR", 32)?,
            data_units_written: u128_at(b, "SMART.DUW", 48)?,
            host_read_commands: u128_at(b, "SMART.HRC", 64)?,
            host_write_commands: u128_at(b, "SMART.HWC", 80)?,
            controller_busy_time_min: u128_at(b, "SMART.CBT", 96)?,
            power_cycles: u128_at(b, "SMART.PWRC", 112)?,
            power_on_hours: u128_at(b, "SMART.POH", 128)?,
            unsafe_shutdowns: u128_at(b, "SMART.UPWRC", 144)?,
            media_errors: u128_at(b, "SMART.MDIE", 160)?,
            num_err_log_entries: u128_at(b, "SMART.NEILE", 176)?,
            warning_temp_time_min: u32_at(b, "SMART.WCTT", 192)?,
            critical_temp_time_min: u32_at(b, "SMART.CCTT", 196)?,
        })
    }
}

/// Changed Namespace List: up to 1024 NSIDs; "If more than 1,024 namespaces
/// have changed … the first entry is FFFFFFFFh and the remainder … cleared to 0h".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ChangedNsList {
    /// More than 1024 namespaces changed: rescan everything.
    pub overflow: bool,
    pub nsids: Vec<u32>,
}

impl ChangedNsList {
    /// Encode; more than 1024 NSIDs encode as overflow.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; CHANGED_NS_LIST_LEN];
        if self.overflow || self.nsids.len() > CHANGED_NS_MAX {
            b[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
            return b;
        }
        for (id, c) in self.nsids.iter().zip(b.chunks_exact_mut(4)) {
            c.copy_from_slice(&id.to_le_bytes());
        }
        b
    }
    /// Decode NSIDs up to the first zero (a short buffer is a partial read).
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let mut nsids = Vec::new();
        while r.remaining() >= 4 && nsids.len() < CHANGED_NS_MAX {
            let off = r.position();
            let id = r.u32("ChangedNs.NSID")?;
            if id == 0 {
                break;
            }
            if id == u32::MAX {
                if off == 0 {
                    return Ok(Self {
                        overflow: true,
                        nsids: Vec::new(),
                    });
                }
                return Err(DecodeError::at(
                    "ChangedNs.NSID",
                    off,
                    DecodeErrorKind::Invalid,
                ));
            }
            nsids.push(id);
        }
        Ok(Self {
            overflow: false,
            nsids,
        })
    }
}

#[cfg(test)]
mod tests;
