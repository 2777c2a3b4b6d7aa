//! NVM command set I/O commands (NVMe NVM Command Set 1.0): Read, Write,
//! Write Zeroes, Flush, Dataset Management.

use crate::error::{DecodeError, DecodeErrorKind};
use crate::reader::{Reader, Writer};
use crate::sqe::{Opcode, Sqe};

/// NLB is a 16-bit 0's based field: at most 65536 blocks per command.
pub const MAX_NLB: u32 = 1 << 16;
/// "up to 256 ranges" (DSM NR is 0's based in 8 bits).
pub const MAX_DSM_RANGES: usize = 256;
/// Size of one DSM range.
pub const DSM_RANGE_LEN: usize = 16;

const FUA: u32 = 1 << 30;
const DEAC: u32 = 1 << 25;
/// DSM CDW11 bit 2: Attribute – Deallocate.
const AD: u32 = 1 << 2;

fn slba(sqe: &Sqe) -> u64 {
    u64::from(sqe.cdw10) | (u64::from(sqe.cdw11) << 32)
}
fn put_lba(s: &mut Sqe, slba: u64, nlb: u32) {
    s.cdw10 = slba as u32;
    s.cdw11 = (slba >> 32) as u32;
    s.cdw12 = nlb.saturating_sub(1).min(MAX_NLB - 1);
}
fn nlb(sqe: &Sqe) -> u32 {
    (sqe.cdw12 & 0xFFFF) + 1
}

/// Read or Write: CDW10/11 SLBA, CDW12 FUA[30] | NLB[15:0] (0's based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadWrite {
    pub nsid: u32,
    pub slba: u64,
    /// Number of logical blocks, a 1-based count (1..=65536).
    pub nlb: u32,
    pub fua: bool,
}

impl ReadWrite {
    fn sqe(&self, op: Opcode) -> Sqe {
        let mut s = Sqe::new(op);
        s.nsid = self.nsid;
        put_lba(&mut s, self.slba, self.nlb);
        if self.fua {
            s.cdw12 |= FUA;
        }
        s
    }
    pub fn read_sqe(&self) -> Sqe {
        self.sqe(Opcode::READ)
    }
    pub fn write_sqe(&self) -> Sqe {
        self.sqe(Opcode::WRITE)
    }
    /// Decode a Read or a Write.
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        if sqe.opcode != Opcode::READ && sqe.opcode != Opcode::WRITE {
            return Err(DecodeError::at(
                "ReadWrite.OPC",
                0,
                DecodeErrorKind::Invalid,
            ));
        }
        Ok(Self {
            nsid: sqe.nsid,
            slba: slba(sqe),
            nlb: nlb(sqe),
            fua: sqe.cdw12 & FUA != 0,
        })
    }
    /// The transfer length for a block size.
    pub fn len_bytes(&self, block_size: u32) -> u64 {
        u64::from(self.nlb) * u64::from(block_size)
    }
}

/// Write Zeroes: like Write, with DEAC (CDW12 bit 25) and no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WriteZeroes {
    pub nsid: u32,
    pub slba: u64,
    pub nlb: u32,
    pub deallocate: bool,
}

impl WriteZeroes {
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::new(Opcode::WRITE_ZEROES);
        s.nsid = self.nsid;
        put_lba(&mut s, self.slba, self.nlb);
        if self.deallocate {
            s.cdw12 |= DEAC;
        }
        s
    }
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        if sqe.opcode != Opcode::WRITE_ZEROES {
            return Err(DecodeError::at(
                "WriteZeroes.OPC",
                0,
                DecodeErrorKind::Invalid,
            ));
        }
        Ok(Self {
            nsid: sqe.nsid,
            slba: slba(sqe),
            nlb: nlb(sqe),
            deallocate: sqe.cdw12 & DEAC != 0,
        })
    }
}

/// Flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flush {
    pub nsid: u32,
}

impl Flush {
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::new(Opcode::FLUSH);
        s.nsid = self.nsid;
        s
    }
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        if sqe.opcode != Opcode::FLUSH {
            return Err(DecodeError::at("Flush.OPC", 0, DecodeErrorKind::Invalid));
        }
        Ok(Self { nsid: sqe.nsid })
    }
}

/// Dataset Management: CDW10 NR[7:0] (0's based), CDW11 AD[2] | IDW[1] | IDR[0].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Dsm {
    pub nsid: u32,
    /// Number of ranges, a 1-based count (1..=256).
    pub ranges: u16,
    pub deallocate: bool,
}

impl Dsm {
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::new(Opcode::DATASET_MANAGEMENT);
        s.nsid = self.nsid;
        s.cdw10 = u32::from(self.ranges.saturating_sub(1).min(255));
        s.cdw11 = if self.deallocate { AD } else { 0 };
        s
    }
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        if sqe.opcode != Opcode::DATASET_MANAGEMENT {
            return Err(DecodeError::at("Dsm.OPC", 0, DecodeErrorKind::Invalid));
        }
        Ok(Self {
            nsid: sqe.nsid,
            ranges: (sqe.cdw10 & 0xFF) as u16 + 1,
            deallocate: sqe.cdw11 & AD != 0,
        })
    }
    /// Bytes of range data this command carries.
    pub fn data_len(&self) -> usize {
        usize::from(self.ranges) * DSM_RANGE_LEN
    }
}

/// One DSM range (16 bytes): CATTR u32, NLB u32 (a 1-based count), SLBA u64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DsmRange {
    pub cattr: u32,
    pub nlb: u32,
    pub slba: u64,
}

impl DsmRange {
    pub fn encode(&self, out: &mut [u8; DSM_RANGE_LEN]) {
        Writer::new(out)
            .u32(self.cattr)
            .u32(self.nlb)
            .u64(self.slba);
    }
    /// Encode up to [`MAX_DSM_RANGES`] ranges (extra ones are dropped).
    pub fn encode_list(ranges: &[DsmRange]) -> Vec<u8> {
        let n = ranges.len().min(MAX_DSM_RANGES);
        let mut v = vec![0u8; n * DSM_RANGE_LEN];
        for (r, c) in ranges.iter().zip(v.chunks_exact_mut(DSM_RANGE_LEN)) {
            let mut b = [0u8; DSM_RANGE_LEN];
            r.encode(&mut b);
            c.copy_from_slice(&b);
        }
        v
    }
    /// Decode `count` ranges (1..=256) from the command's data.
    pub fn decode_list(b: &[u8], count: usize) -> Result<Vec<DsmRange>, DecodeError> {
        if count == 0 || count > MAX_DSM_RANGES {
            return Err(DecodeError::out_of_range("DSM.NR", count as u64));
        }
        let mut r = Reader::new(b);
        let mut v = Vec::with_capacity(count);
        for _ in 0..count {
            v.push(DsmRange {
                cattr: r.u32("DSM.Range.CATTR")?,
                nlb: r.u32("DSM.Range.NLB")?,
                slba: r.u64("DSM.Range.SLBA")?,
            });
        }
        Ok(v)
    }
}

pub mod resv;

#[cfg(test)]
mod tests;
