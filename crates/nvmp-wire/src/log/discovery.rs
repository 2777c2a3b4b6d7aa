//! Discovery log page (NVMe-oF 1.1, 5.4, Figures 32-33).

use crate::error::{DecodeError, DecodeErrorKind};
use crate::reader::Reader;
use crate::text;

/// Header: GENCTR u64, NUMREC u64, RECFMT u16, reserved to 1024.
pub const DISCOVERY_HEADER_LEN: usize = 1024;
/// Each Discovery Log Page Entry is 1024 bytes.
pub const DISCOVERY_ENTRY_LEN: usize = 1024;

/// TRTYPE values.
pub mod trtype {
    pub const RDMA: u8 = 1;
    pub const FC: u8 = 2;
    pub const TCP: u8 = 3;
    pub const LOOP: u8 = 254;
}
/// ADRFAM values.
pub mod adrfam {
    pub const IPV4: u8 = 1;
    pub const IPV6: u8 = 2;
    pub const IB: u8 = 3;
    pub const FC: u8 = 4;
    pub const LOOP: u8 = 254;
}
/// SUBTYPE values.
pub mod subtype {
    /// "Referral to another discovery service".
    pub const REFERRAL: u8 = 1;
    /// "NVM subsystem that is not a Discovery subsystem".
    pub const NVME: u8 = 2;
    /// "Current Discovery subsystem".
    pub const CURRENT_DISCOVERY: u8 = 3;
}

/// One discovery log entry (1024 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DiscoveryEntry {
    pub trtype: u8,
    pub adrfam: u8,
    pub subtype: u8,
    pub treq: u8,
    pub portid: u16,
    /// 0xFFFF: dynamic controller model.
    pub cntlid: u16,
    /// Admin max SQ size.
    pub asqsz: u16,
    pub eflags: u16,
    /// Transport service identifier (32 bytes, ASCII): the TCP port.
    pub trsvcid: String,
    /// Subsystem NQN (256 bytes, NUL padded).
    pub subnqn: String,
    /// Transport address (256 bytes, ASCII).
    pub traddr: String,
    /// Transport specific address subtype (for TCP: SECTYPE in byte 0).
    pub tsas: [u8; 256],
}

impl Default for DiscoveryEntry {
    fn default() -> Self {
        Self {
            trtype: 0,
            adrfam: 0,
            subtype: 0,
            treq: 0,
            portid: 0,
            cntlid: 0,
            asqsz: 0,
            eflags: 0,
            trsvcid: String::new(),
            subnqn: String::new(),
            traddr: String::new(),
            tsas: [0; 256],
        }
    }
}

impl DiscoveryEntry {
    pub fn encode_into(&self, b: &mut [u8; DISCOVERY_ENTRY_LEN]) {
        b.fill(0);
        b[0] = self.trtype;
        b[1] = self.adrfam;
        b[2] = self.subtype;
        b[3] = self.treq;
        b[4..6].copy_from_slice(&self.portid.to_le_bytes());
        b[6..8].copy_from_slice(&self.cntlid.to_le_bytes());
        b[8..10].copy_from_slice(&self.asqsz.to_le_bytes());
        b[10..12].copy_from_slice(&self.eflags.to_le_bytes());
        text::put(&mut b[32..64], &self.trsvcid, 0);
        text::put(&mut b[256..512], &self.subnqn, 0);
        text::put(&mut b[512..768], &self.traddr, 0);
        b[768..1024].copy_from_slice(&self.tsas);
    }

    /// Decode one entry; `base` is its offset in the log (for error reports).
    pub fn decode(b: &[u8], base: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let mut r = r.sub("Discovery.Entry", DISCOVERY_ENTRY_LEN)?;
        let trtype = r.u8("Discovery.TRTYPE")?;
        let adrfam = r.u8("Discovery.ADRFAM")?;
        let subtype = r.u8("Discovery.SUBTYPE")?;
        let treq = r.u8("Discovery.TREQ")?;
        let portid = r.u16("Discovery.PORTID")?;
        let cntlid = r.u16("Discovery.CNTLID")?;
        let asqsz = r.u16("Discovery.ASQSZ")?;
        let eflags = r.u16("Discovery.EFLAGS")?;
        r.skip("Discovery.RSVD12", 20)?;
        let trsvcid = text::ascii(
            "Discovery.TRSVCID",
            base + 32,
            r.take("Discovery.TRSVCID", 32)?,
        )?;
        r.skip("Discovery.RSVD64", 192)?;
        let subnqn = text::nul_padded(
            "Discovery.SUBNQN",
            base + 256,
            r.take("Discovery.SUBNQN", 256)?,
        )?;
        let traddr = text::ascii(
            "Discovery.TRADDR",
            base + 512,
            r.take("Discovery.TRADDR", 256)?,
        )?;
        let tsas = r.array("Discovery.TSAS")?;
        Ok(Self {
            trtype,
            adrfam,
            subtype,
            treq,
            portid,
            cntlid,
            asqsz,
            eflags,
            trsvcid,
            subnqn,
            traddr,
            tsas,
        })
    }
}

/// The discovery log page.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DiscoveryLog {
    /// Generation counter: "incremented … each time the … log page changes".
    pub genctr: u64,
    /// Number of records.
    pub numrec: u64,
    pub recfmt: u16,
    pub entries: Vec<DiscoveryEntry>,
}

impl DiscoveryLog {
    /// Encode the header and every entry (NUMREC is written as given).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; DISCOVERY_HEADER_LEN + DISCOVERY_ENTRY_LEN * self.entries.len()];
        b[0..8].copy_from_slice(&self.genctr.to_le_bytes());
        b[8..16].copy_from_slice(&self.numrec.to_le_bytes());
        b[16..18].copy_from_slice(&self.recfmt.to_le_bytes());
        for (e, c) in self
            .entries
            .iter()
            .zip(b[DISCOVERY_HEADER_LEN..].chunks_exact_mut(DISCOVERY_ENTRY_LEN))
        {
            let mut one = [0u8; DISCOVERY_ENTRY_LEN];
            e.encode_into(&mut one);
            c.copy_from_slice(&one);
        }
        b
    }

    /// (GENCTR, NUMREC, RECFMT) from the first 18 bytes.
    pub fn decode_header(b: &[u8]) -> Result<(u64, u64, u16), DecodeError> {
        let mut r = Reader::new(b);
        Ok((
            r.u64("Discovery.GENCTR")?,
            r.u64("Discovery.NUMREC")?,
            r.u16("Discovery.RECFMT")?,
        ))
    }

    /// Bytes needed for the whole log with `numrec` entries, if representable.
    pub fn len_for(numrec: u64) -> Option<usize> {
        usize::try_from(numrec)
            .ok()?
            .checked_mul(DISCOVERY_ENTRY_LEN)?
            .checked_add(DISCOVERY_HEADER_LEN)
    }

    /// Decode the header and NUMREC entries; the buffer must hold all of them.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let (genctr, numrec, recfmt) = Self::decode_header(b)?;
        let mut r = Reader::new(b);
        r.skip("Discovery.Header", DISCOVERY_HEADER_LEN)?;
        // NUMREC is peer supplied: it must be covered by the bytes we hold.
        let avail = r.remaining() / DISCOVERY_ENTRY_LEN;
        let n = usize::try_from(numrec)
            .ok()
            .filter(|n| *n <= avail)
            .ok_or(DecodeError::at(
                "Discovery.NUMREC",
                8,
                DecodeErrorKind::OutOfRange { value: numrec },
            ))?;
        let mut entries = Vec::with_capacity(n);
        for i in 0..n {
            let base = DISCOVERY_HEADER_LEN + i * DISCOVERY_ENTRY_LEN;
            let e = r.take("Discovery.Entry", DISCOVERY_ENTRY_LEN)?;
            entries.push(DiscoveryEntry::decode(e, base)?);
        }
        Ok(Self {
            genctr,
            numrec,
            recfmt,
            entries,
        })
    }
}

#[cfg(test)]
mod tests;
