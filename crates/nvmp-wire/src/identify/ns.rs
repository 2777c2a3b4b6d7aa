//! Identify Namespace data structure (NVMe NVM Command Set 1.0, Figure 97).

use super::IDENTIFY_LEN;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::field::{at, put, slice_at, u16_at, u32_at, u64_at, u8_at};

/// NMIC bits.
pub mod nmic {
    /// "the namespace may be attached to two or more controllers in the NVM subsystem concurrently".
    pub const SHARED: u8 = 1;
}

/// At most 64 LBA formats (NLBAF is 0's based, "maximum of 64").
pub const MAX_LBAF: usize = 64;
const LBAF_OFF: usize = 128;

/// An LBA format descriptor (4 bytes): MS u16, LBADS u8, RP bits 1:0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LbaFormat {
    /// Metadata size in bytes.
    pub ms: u16,
    /// LBA data size, log2 of bytes ("smallest value is 9, i.e. 512 bytes").
    pub lbads: u8,
    /// Relative performance (bits 1:0).
    pub rp: u8,
}

/// Identify Namespace, the fields nvmp uses (the rest are encoded as zero).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct IdentifyNamespace {
    /// Namespace size in logical blocks.
    pub nsze: u64,
    pub ncap: u64,
    pub nuse: u64,
    pub nsfeat: u8,
    /// Number of LBA formats, 0's based.
    pub nlbaf: u8,
    /// Formatted LBA size: bits 3:0 low index, bits 6:5 high index.
    pub flbas: u8,
    pub dlfeat: u8,
    pub nmic: u8,
    pub anagrpid: u32,
    pub nsattr: u8,
    pub nguid: [u8; 16],
    pub eui64: [u8; 8],
    /// LBA formats 0..=NLBAF.
    pub lbaf: Vec<LbaFormat>,
}

impl IdentifyNamespace {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; IDENTIFY_LEN];
        put(&mut b, 0, &self.nsze.to_le_bytes());
        put(&mut b, 8, &self.ncap.to_le_bytes());
        put(&mut b, 16, &self.nuse.to_le_bytes());
        b[24] = self.nsfeat;
        b[25] = self.nlbaf;
        b[26] = self.flbas;
        b[30] = self.nmic;
        b[33] = self.dlfeat;
        put(&mut b, 92, &self.anagrpid.to_le_bytes());
        b[99] = self.nsattr;
        put(&mut b, 104, &self.nguid);
        put(&mut b, 120, &self.eui64);
        for (i, f) in self.lbaf.iter().take(MAX_LBAF).enumerate() {
            let o = LBAF_OFF + 4 * i;
            put(&mut b, o, &f.ms.to_le_bytes());
            b[o + 2] = f.lbads;
            b[o + 3] = f.rp & 0x3;
        }
        b
    }

    /// Decode from at least 4096 bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let b = slice_at(buf, "IdentifyNamespace", 0, IDENTIFY_LEN)?;
        let nlbaf = u8_at(b, "IdNs.NLBAF", 25)?;
        // "NLBAF … This is a 0's based value. The maximum number of LBA formats … is 64."
        if usize::from(nlbaf) >= MAX_LBAF {
            return Err(DecodeError::at(
                "IdNs.NLBAF",
                25,
                DecodeErrorKind::OutOfRange {
                    value: nlbaf.into(),
                },
            ));
        }
        let mut lbaf = Vec::with_capacity(usize::from(nlbaf) + 1);
        for i in 0..=usize::from(nlbaf) {
            let o = LBAF_OFF + 4 * i;
            lbaf.push(LbaFormat {
                ms: u16_at(b, "IdNs.LBAF.MS", o)?,
                lbads: u8_at(b, "IdNs.LBAF.LBADS", o + 2)?,
                rp: u8_at(b, "IdNs.LBAF.RP", o + 3)? & 0x3,
            });
        }
        Ok(Self {
            nsze: u64_at(b, "IdNs.NSZE", 0)?,
            ncap: u64_at(b, "IdNs.NCAP", 8)?,
            nuse: u64_at(b, "IdNs.NUSE", 16)?,
            nsfeat: u8_at(b, "IdNs.NSFEAT", 24)?,
            nlbaf,
            flbas: u8_at(b, "IdNs.FLBAS", 26)?,
            nmic: u8_at(b, "IdNs.NMIC", 30)?,
            dlfeat: u8_at(b, "IdNs.DLFEAT", 33)?,
            anagrpid: u32_at(b, "IdNs.ANAGRPID", 92)?,
            nsattr: u8_at(b, "IdNs.NSATTR", 99)?,
            nguid: at(b, "IdNs.NGUID", 104)?,
            eui64: at(b, "IdNs.EUI64", 120)?,
            lbaf,
        })
    }

    /// Index of the formatted LBA format: FLBAS bits 3:0, and bits 6:5 as the
    /// high bits when more than 16 formats exist.
    pub fn lba_format_index(&self) -> usize {
        let lo = usize::from(self.flbas & 0xF);
        if self.nlbaf >= 16 {
            lo | (usize::from((self.flbas >> 5) & 0x3) << 4)
        } else {
            lo
        }
    }
    /// The current LBA format.
    pub fn lba_format(&self) -> Option<LbaFormat> {
        self.lbaf.get(self.lba_format_index()).copied()
    }
    /// Block size in bytes, if the current format's LBADS is sane (9..=16: 512 B to 64 KiB).
    pub fn block_size(&self) -> Option<u32> {
        let f = self.lba_format()?;
        (9..=16).contains(&f.lbads).then(|| 1u32 << f.lbads)
    }
    pub fn is_shared(&self) -> bool {
        self.nmic & nmic::SHARED != 0
    }
}

#[cfg(test)]
mod tests;
