//! Submission queue entry (64 bytes) and SGL descriptors.

use crate::error::DecodeError;
use crate::reader::{Reader, Writer};

/// Size of a submission queue entry.
pub const SQE_LEN: usize = 64;

/// A command opcode. Admin, I/O and Fabrics commands share the byte; which
/// set applies depends on the queue (admin queue 0 or an I/O queue) and on
/// 0x7F (Fabrics). Open newtype: unknown opcodes round-trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Opcode(pub u8);

impl Opcode {
    // Admin command set (NVMe Base 2.0, Figure 138).
    pub const DELETE_IO_SQ: Self = Self(0x00);
    pub const CREATE_IO_SQ: Self = Self(0x01);
    pub const GET_LOG_PAGE: Self = Self(0x02);
    pub const DELETE_IO_CQ: Self = Self(0x04);
    pub const CREATE_IO_CQ: Self = Self(0x05);
    pub const IDENTIFY: Self = Self(0x06);
    pub const ABORT: Self = Self(0x08);
    pub const SET_FEATURES: Self = Self(0x09);
    pub const GET_FEATURES: Self = Self(0x0A);
    pub const ASYNC_EVENT_REQUEST: Self = Self(0x0C);
    pub const KEEP_ALIVE: Self = Self(0x18);
    /// Fabrics commands (Connect, Property Get/Set, Disconnect, Authentication).
    pub const FABRICS: Self = Self(0x7F);
    // NVM command set (I/O queues).
    pub const FLUSH: Self = Self(0x00);
    pub const WRITE: Self = Self(0x01);
    pub const READ: Self = Self(0x02);
    pub const WRITE_UNCORRECTABLE: Self = Self(0x04);
    pub const COMPARE: Self = Self(0x05);
    pub const WRITE_ZEROES: Self = Self(0x08);
    pub const DATASET_MANAGEMENT: Self = Self(0x09);
    pub const RESERVATION_REGISTER: Self = Self(0x0D);
    pub const RESERVATION_REPORT: Self = Self(0x0E);
    pub const RESERVATION_ACQUIRE: Self = Self(0x11);
    pub const RESERVATION_RELEASE: Self = Self(0x15);

    /// Data transfer direction encoded in bits 1:0 of the opcode
    /// ("00b no data, 01b host to controller, 10b controller to host, 11b bidirectional").
    pub const fn data_direction(self) -> DataDirection {
        match self.0 & 0x3 {
            0 => DataDirection::None,
            1 => DataDirection::HostToController,
            2 => DataDirection::ControllerToHost,
            _ => DataDirection::Bidirectional,
        }
    }
}

/// Fabrics command type (FCTYPE, byte 4 of a Fabrics SQE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FabricsType(pub u8);

impl FabricsType {
    pub const PROPERTY_SET: Self = Self(0x00);
    pub const CONNECT: Self = Self(0x01);
    pub const PROPERTY_GET: Self = Self(0x04);
    pub const AUTH_SEND: Self = Self(0x05);
    pub const AUTH_RECEIVE: Self = Self(0x06);
    pub const DISCONNECT: Self = Self(0x08);

    /// Direction of the Fabrics command's data, from bits 1:0 of FCTYPE.
    pub const fn data_direction(self) -> DataDirection {
        Opcode(self.0).data_direction()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirection {
    None,
    HostToController,
    ControllerToHost,
    Bidirectional,
}

/// SGL descriptor type and subtype byte (byte 15): `type << 4 | subtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SglId(pub u8);

impl SglId {
    /// Data Block descriptor, subtype Address (not used by NVMe/TCP).
    pub const DATA_BLOCK_ADDRESS: Self = Self(0x00);
    /// Data Block descriptor, subtype Offset: in-capsule data (NVMe/TCP 3.3: "the SGL … Data Block descriptor … with the Offset subtype").
    pub const DATA_BLOCK_OFFSET: Self = Self(0x01);
    /// Transport SGL Data Block descriptor, subtype Transport Specific: data moved by H2CData/C2HData PDUs.
    pub const TRANSPORT_DATA_BLOCK: Self = Self(0x5A);
    /// NVMe/TCP transport SGL with no data (Linux sends this for commands without data).
    pub const TRANSPORT_NULL: Self = Self(0x5A);

    pub const fn descriptor_type(self) -> u8 {
        self.0 >> 4
    }
    pub const fn subtype(self) -> u8 {
        self.0 & 0xF
    }
}

/// A 16-byte SGL descriptor (SGL1 in DPTR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Sgl {
    pub address: u64,
    pub length: u32,
    /// Bytes 12..15; reserved for Data Block descriptors (kept for round-trip).
    pub rsvd: [u8; 3],
    pub id: u8,
}

impl Sgl {
    pub const fn in_capsule(offset: u64, length: u32) -> Self {
        Self {
            address: offset,
            length,
            rsvd: [0; 3],
            id: SglId::DATA_BLOCK_OFFSET.0,
        }
    }
    pub const fn transport(length: u32) -> Self {
        Self {
            address: 0,
            length,
            rsvd: [0; 3],
            id: SglId::TRANSPORT_DATA_BLOCK.0,
        }
    }
    pub fn sgl_id(&self) -> SglId {
        SglId(self.id)
    }
    pub fn encode(&self, out: &mut [u8; 16]) {
        Writer::new(out)
            .u64(self.address)
            .u32(self.length)
            .bytes(&self.rsvd)
            .u8(self.id);
    }
    pub fn decode(b: &[u8; 16]) -> Self {
        let mut r = Reader::new(b);
        // Infallible: lengths are static.
        Self {
            address: r.u64("SGL.ADDRESS").unwrap_or(0),
            length: r.u32("SGL.LENGTH").unwrap_or(0),
            rsvd: r.array("SGL.RSVD").unwrap_or([0; 3]),
            id: r.u8("SGL.ID").unwrap_or(0),
        }
    }
}

/// PSDT (bits 7:6 of byte 1): "01b SGLs are used for this transfer … metadata pointer … contiguous".
pub const PSDT_SGL_MPTR_CONTIG: u8 = 0x40;

/// A submission queue entry. Fields are stored as they sit in the 64-byte
/// entry; typed views (Identify, Connect, Read, …) are built on top of it by
/// the command modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Sqe {
    pub opcode: Opcode,
    /// Byte 1: FUSE (bits 1:0) and PSDT (bits 7:6).
    pub flags: u8,
    pub cid: u16,
    /// Bytes 4..8: NSID, or for Fabrics commands FCTYPE in byte 4.
    pub nsid: u32,
    pub cdw2: u32,
    pub cdw3: u32,
    pub mptr: u64,
    pub dptr: Sgl,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
    pub cdw14: u32,
    pub cdw15: u32,
}

impl Sqe {
    pub const fn new(opcode: Opcode) -> Self {
        Self {
            opcode,
            flags: PSDT_SGL_MPTR_CONTIG,
            cid: 0,
            nsid: 0,
            cdw2: 0,
            cdw3: 0,
            mptr: 0,
            dptr: Sgl {
                address: 0,
                length: 0,
                rsvd: [0; 3],
                id: 0,
            },
            cdw10: 0,
            cdw11: 0,
            cdw12: 0,
            cdw13: 0,
            cdw14: 0,
            cdw15: 0,
        }
    }
    /// A Fabrics command of the given type.
    pub const fn fabrics(fctype: FabricsType) -> Self {
        let mut s = Self::new(Opcode::FABRICS);
        s.nsid = fctype.0 as u32;
        s
    }
    pub const fn is_fabrics(&self) -> bool {
        self.opcode.0 == Opcode::FABRICS.0
    }
    /// FCTYPE of a Fabrics command (byte 4).
    pub const fn fctype(&self) -> FabricsType {
        FabricsType(self.nsid as u8)
    }
    /// Direction of this command's data (Fabrics commands take it from FCTYPE).
    pub const fn data_direction(&self) -> DataDirection {
        if self.is_fabrics() {
            self.fctype().data_direction()
        } else {
            self.opcode.data_direction()
        }
    }
    /// Number of data bytes described by SGL1.
    pub const fn data_len(&self) -> u32 {
        self.dptr.length
    }
    /// CDW10..15 as an array (index 0 = CDW10).
    pub const fn cdws(&self) -> [u32; 6] {
        [
            self.cdw10, self.cdw11, self.cdw12, self.cdw13, self.cdw14, self.cdw15,
        ]
    }

    pub fn encode(&self, out: &mut [u8; SQE_LEN]) {
        let mut sgl = [0u8; 16];
        self.dptr.encode(&mut sgl);
        Writer::new(out)
            .u8(self.opcode.0)
            .u8(self.flags)
            .u16(self.cid)
            .u32(self.nsid)
            .u32(self.cdw2)
            .u32(self.cdw3)
            .u64(self.mptr)
            .bytes(&sgl)
            .u32(self.cdw10)
            .u32(self.cdw11)
            .u32(self.cdw12)
            .u32(self.cdw13)
            .u32(self.cdw14)
            .u32(self.cdw15);
    }

    pub fn to_bytes(&self) -> [u8; SQE_LEN] {
        let mut b = [0u8; SQE_LEN];
        self.encode(&mut b);
        b
    }

    /// Decode an SQE. Every 64-byte pattern is a syntactically valid SQE;
    /// semantic checks belong to the command's handler.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let opcode = Opcode(r.u8("SQE.OPC")?);
        let flags = r.u8("SQE.FLAGS")?;
        let cid = r.u16("SQE.CID")?;
        let nsid = r.u32("SQE.NSID")?;
        let cdw2 = r.u32("SQE.CDW2")?;
        let cdw3 = r.u32("SQE.CDW3")?;
        let mptr = r.u64("SQE.MPTR")?;
        let dptr = Sgl::decode(&r.array::<16>("SQE.DPTR")?);
        Ok(Self {
            opcode,
            flags,
            cid,
            nsid,
            cdw2,
            cdw3,
            mptr,
            dptr,
            cdw10: r.u32("SQE.CDW10")?,
            cdw11: r.u32("SQE.CDW11")?,
            cdw12: r.u32("SQE.CDW12")?,
            cdw13: r.u32("SQE.CDW13")?,
            cdw14: r.u32("SQE.CDW14")?,
            cdw15: r.u32("SQE.CDW15")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_bytes_read() {
        // Read, CID 0x1234, NSID 1, transport SGL of 4096 bytes, SLBA 0x10, NLB 7 (0's based).
        let mut b = [0u8; 64];
        b[0] = 0x02;
        b[1] = 0x40;
        b[2] = 0x34;
        b[3] = 0x12;
        b[4] = 1;
        b[32..36].copy_from_slice(&4096u32.to_le_bytes());
        b[39] = 0x5A;
        b[40] = 0x10;
        b[48] = 7;
        let s = Sqe::decode(&b).unwrap();
        assert_eq!(s.opcode, Opcode::READ);
        assert_eq!(s.cid, 0x1234);
        assert_eq!(s.nsid, 1);
        assert_eq!(s.dptr, Sgl::transport(4096));
        assert_eq!(s.cdw10, 0x10);
        assert_eq!(s.cdw12, 7);
        assert_eq!(s.to_bytes(), b);
        assert_eq!(s.data_direction(), DataDirection::ControllerToHost);
    }

    #[test]
    fn fabrics_type_in_byte_4() {
        let mut b = [0u8; 64];
        b[0] = 0x7F;
        b[4] = 0x01;
        let s = Sqe::decode(&b).unwrap();
        assert!(s.is_fabrics());
        assert_eq!(s.fctype(), FabricsType::CONNECT);
        assert_eq!(s.data_direction(), DataDirection::HostToController);
    }

    #[test]
    fn short_input_names_field() {
        let e = Sqe::decode(&[0u8; 10]).unwrap_err();
        assert_eq!(e.field, "SQE.CDW2");
    }

    proptest! {
        #[test]
        fn round_trip(b in proptest::collection::vec(any::<u8>(), 64)) {
            let s = Sqe::decode(&b).unwrap();
            prop_assert_eq!(&s.to_bytes()[..], &b[..]);
        }
        #[test]
        fn no_panic(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = Sqe::decode(&b);
        }
    }
}
