//! Completion queue entry (16 bytes).

use crate::error::DecodeError;
use crate::reader::{Reader, Writer};
use crate::status::Status;

/// Size of a completion queue entry.
pub const CQE_LEN: usize = 16;

/// A completion queue entry. On fabrics, SQHD is advisory and the phase tag unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cqe {
    /// Command specific DW0 (for example the CNTLID of a Connect response, or a property value's low half).
    pub dw0: u32,
    pub dw1: u32,
    pub sqhd: u16,
    pub sqid: u16,
    pub cid: u16,
    pub status: Status,
    /// The phase tag bit as received (kept so a CQE round-trips).
    pub phase: bool,
}

impl Cqe {
    pub const fn new(cid: u16, status: Status) -> Self {
        Self {
            dw0: 0,
            dw1: 0,
            sqhd: 0,
            sqid: 0,
            cid,
            status,
            phase: false,
        }
    }
    /// DW0 and DW1 as one 64-bit result (Property Get of an 8-byte property).
    pub const fn result64(&self) -> u64 {
        self.dw0 as u64 | ((self.dw1 as u64) << 32)
    }
    pub fn encode(&self, out: &mut [u8; CQE_LEN]) {
        Writer::new(out)
            .u32(self.dw0)
            .u32(self.dw1)
            .u16(self.sqhd)
            .u16(self.sqid)
            .u16(self.cid)
            .u16(self.status.to_word(self.phase));
    }
    pub fn to_bytes(&self) -> [u8; CQE_LEN] {
        let mut b = [0u8; CQE_LEN];
        self.encode(&mut b);
        b
    }
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let dw0 = r.u32("CQE.DW0")?;
        let dw1 = r.u32("CQE.DW1")?;
        let sqhd = r.u16("CQE.SQHD")?;
        let sqid = r.u16("CQE.SQID")?;
        let cid = r.u16("CQE.CID")?;
        let w = r.u16("CQE.STATUS")?;
        Ok(Self {
            dw0,
            dw1,
            sqhd,
            sqid,
            cid,
            status: Status::from_word(w),
            phase: w & 1 == 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::StatusCode;
    use proptest::prelude::*;

    #[test]
    fn known_bytes() {
        // Connect response: CNTLID 5 in DW0, SQHD 1, CID 0x0A0B, status Connect Invalid Host with DNR.
        let b: [u8; 16] = [5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x0B, 0x0A, 0x08, 0x83];
        let c = Cqe::decode(&b).unwrap();
        assert_eq!(c.dw0, 5);
        assert_eq!(c.sqhd, 1);
        assert_eq!(c.cid, 0x0A0B);
        assert_eq!(c.status.code, StatusCode::CONNECT_INVALID_HOST);
        assert!(c.status.dnr);
        assert_eq!(c.to_bytes(), b);
    }

    proptest! {
        #[test]
        fn round_trip(b in proptest::collection::vec(any::<u8>(), 16)) {
            let c = Cqe::decode(&b).unwrap();
            prop_assert_eq!(&c.to_bytes()[..], &b[..]);
        }
        #[test]
        fn no_panic(b in proptest::collection::vec(any::<u8>(), 0..20)) {
            let _ = Cqe::decode(&b);
        }
    }
}
