//! NVMe/TCP PDUs (NVMe/TCP Transport Specification 1.0, section 3.6) and a
//! sans-IO streaming decoder and encoder for them.
//!
//! Every PDU starts with the 8-byte common header
//! `PDU-TYPE | FLAGS | HLEN | PDO | PLEN (u32 LE)`, followed by the rest of
//! its PDU-specific header, the optional header digest (HDGST), padding up
//! to PDO, data, and the optional data digest (DDGST).

use bytes::{BufMut, Bytes, BytesMut};

use crate::cqe::{Cqe, CQE_LEN};
use crate::crc::crc32c;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::reader::Reader;
use crate::sqe::{Sqe, SQE_LEN};

mod decode;
mod encode;
mod plain;
pub use decode::{DataHead, PduDecoder};
pub use encode::{data_digest, EncodeOptions};
pub use plain::Plain;

/// Common header length.
pub const CH_LEN: usize = 8;
/// Digest length (HDGST, DDGST).
pub const DIGEST_LEN: usize = 4;
/// ICReq/ICResp are exactly 128 bytes.
pub const IC_LEN: usize = 128;
/// "The maximum length of a … TermReq PDU is 152 bytes" (header 24 + at most 128 bytes of the PDU in error).
pub const TERM_REQ_MAX_LEN: usize = 152;
pub const TERM_REQ_HLEN: usize = 24;
pub const CAPSULE_CMD_HLEN: usize = CH_LEN + SQE_LEN;
pub const CAPSULE_RESP_HLEN: usize = CH_LEN + CQE_LEN;
pub const DATA_HLEN: usize = 24;
pub const R2T_HLEN: usize = 24;

/// PDU type (open newtype: unknown values are reported, not lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PduType(pub u8);

impl PduType {
    pub const IC_REQ: Self = Self(0x00);
    pub const IC_RESP: Self = Self(0x01);
    pub const H2C_TERM_REQ: Self = Self(0x02);
    pub const C2H_TERM_REQ: Self = Self(0x03);
    pub const CAPSULE_CMD: Self = Self(0x04);
    pub const CAPSULE_RESP: Self = Self(0x05);
    pub const H2C_DATA: Self = Self(0x06);
    pub const C2H_DATA: Self = Self(0x07);
    pub const R2T: Self = Self(0x09);

    /// The fixed HLEN for this type, if known.
    pub const fn hlen(self) -> Option<usize> {
        match self.0 {
            0x00 | 0x01 => Some(IC_LEN),
            0x02 | 0x03 => Some(TERM_REQ_HLEN),
            0x04 => Some(CAPSULE_CMD_HLEN),
            0x05 => Some(CAPSULE_RESP_HLEN),
            0x06 | 0x07 => Some(DATA_HLEN),
            0x09 => Some(R2T_HLEN),
            _ => None,
        }
    }
    /// Whether this PDU type carries a header digest when header digests are enabled.
    pub const fn has_hdgst(self) -> bool {
        matches!(self.0, 0x04..=0x07 | 0x09)
    }
    /// Whether this PDU type may carry data (and so a data digest).
    pub const fn may_carry_data(self) -> bool {
        matches!(self.0, 0x04 | 0x06 | 0x07)
    }
}

/// PDU header flags.
pub mod flags {
    /// "HDGSTF: … a header digest is present".
    pub const HDGSTF: u8 = 0x01;
    /// "DDGSTF: … a data digest is present".
    pub const DDGSTF: u8 = 0x02;
    /// H2CData/C2HData: last PDU of a data transfer.
    pub const LAST_PDU: u8 = 0x04;
    /// C2HData: "SUCCESS: … the command completed successfully … no CapsuleResp PDU".
    pub const SUCCESS: u8 = 0x08;
}

/// Which end of the connection a decoder serves: it accepts only the PDUs the other end may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Decodes controller-to-host PDUs.
    Host,
    /// Decodes host-to-controller PDUs.
    Controller,
}

impl Role {
    fn accepts(self, t: PduType) -> bool {
        match self {
            Role::Host => matches!(t.0, 0x01 | 0x03 | 0x05 | 0x07 | 0x09),
            Role::Controller => matches!(t.0, 0x00 | 0x02 | 0x04 | 0x06),
        }
    }
}

/// Fatal Error Status of a TermReq (NVMe/TCP Figure 23/26). Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fes(pub u16);

impl Fes {
    pub const INVALID_HEADER_FIELD: Self = Self(0x01);
    pub const PDU_SEQUENCE_ERROR: Self = Self(0x02);
    pub const HEADER_DIGEST_ERROR: Self = Self(0x03);
    pub const DATA_OUT_OF_RANGE: Self = Self(0x04);
    pub const R2T_LIMIT_EXCEEDED: Self = Self(0x05);
    /// Also "Data Transfer Limit Exceeded".
    pub const DATA_LIMIT_EXCEEDED: Self = Self(0x05);
    pub const UNSUPPORTED_PARAMETER: Self = Self(0x06);
}

/// Negotiated digests (ICReq/ICResp DGST field: bit 0 HDGST_ENABLE, bit 1 DDGST_ENABLE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Digests {
    pub header: bool,
    pub data: bool,
}

impl Digests {
    pub const NONE: Self = Self {
        header: false,
        data: false,
    };
    pub const fn from_byte(b: u8) -> Self {
        Self {
            header: b & 1 != 0,
            data: b & 2 != 0,
        }
    }
    pub const fn to_byte(self) -> u8 {
        self.header as u8 | ((self.data as u8) << 1)
    }
}

/// ICReq: the host's connection parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcReq {
    /// PDU Format Version; 0 for NVMe/TCP 1.0.
    pub pfv: u16,
    /// Host PDU Data Alignment (0's based dwords, 0–31).
    pub hpda: u8,
    pub digests: Digests,
    /// Maximum outstanding R2Ts per command, 0's based.
    pub maxr2t: u32,
}

/// ICResp: the controller's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcResp {
    pub pfv: u16,
    /// Controller PDU Data Alignment (0's based dwords).
    pub cpda: u8,
    pub digests: Digests,
    /// MAXH2CDATA: largest H2CData payload the controller accepts ("shall be … at least 4,096" and a multiple of 4).
    pub maxh2cdata: u32,
}

/// H2CTermReq / C2HTermReq.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TermReq {
    pub fes: Fes,
    /// Fatal Error Information (for an invalid header field: its byte offset).
    pub fei: u32,
    /// The header of the PDU in error (at most 128 bytes).
    pub data: Bytes,
}

/// Header of H2CData and C2HData PDUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataHeader {
    /// Command capsule CID.
    pub cccid: u16,
    /// Transfer tag (H2CData: from the R2T; C2HData: reserved, 0).
    pub ttag: u16,
    /// DATAO: offset of this PDU's data within the command's data.
    pub offset: u32,
    /// DATAL: length of this PDU's data.
    pub length: u32,
}

/// R2T: the controller asks for a range of a write's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct R2t {
    pub cccid: u16,
    pub ttag: u16,
    pub offset: u32,
    pub length: u32,
}

/// A data PDU (H2CData or C2HData).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataPdu {
    pub header: DataHeader,
    pub last: bool,
    /// C2HData only: SUCCESS flag, the command completed and no CapsuleResp follows.
    pub success: bool,
    pub data: Bytes,
}

/// A decoded PDU.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pdu {
    IcReq(IcReq),
    IcResp(IcResp),
    H2CTermReq(TermReq),
    C2HTermReq(TermReq),
    CapsuleCmd { sqe: Sqe, data: Bytes },
    CapsuleResp(Cqe),
    H2CData(DataPdu),
    C2HData(DataPdu),
    R2t(R2t),
}

impl Pdu {
    pub fn pdu_type(&self) -> PduType {
        match self {
            Pdu::IcReq(_) => PduType::IC_REQ,
            Pdu::IcResp(_) => PduType::IC_RESP,
            Pdu::H2CTermReq(_) => PduType::H2C_TERM_REQ,
            Pdu::C2HTermReq(_) => PduType::C2H_TERM_REQ,
            Pdu::CapsuleCmd { .. } => PduType::CAPSULE_CMD,
            Pdu::CapsuleResp(_) => PduType::CAPSULE_RESP,
            Pdu::H2CData(_) => PduType::H2C_DATA,
            Pdu::C2HData(_) => PduType::C2H_DATA,
            Pdu::R2t(_) => PduType::R2T,
        }
    }
    /// The data this PDU carries (TermReq data is not digested and counts as header).
    pub fn data(&self) -> Option<&Bytes> {
        match self {
            Pdu::CapsuleCmd { data, .. } if !data.is_empty() => Some(data),
            Pdu::H2CData(d) | Pdu::C2HData(d) => Some(&d.data),
            _ => None,
        }
    }
}

/// A PDU that cannot be accepted: the decoding error plus what to put in the
/// TermReq that answers it ("the receiver shall … send a TermReq … and close").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PduError {
    pub error: DecodeError,
    pub fes: Fes,
    /// FEI: for an invalid header field, the byte offset of the field.
    pub fei: u32,
    /// The header of the PDU in error (at most 128 bytes), for the TermReq.
    pub header: Bytes,
}

impl core::fmt::Display for PduError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "bad NVMe/TCP PDU: {} (FES {:#x})",
            self.error, self.fes.0
        )
    }
}
impl std::error::Error for PduError {}

/// Settings shared by the decoder and the encoder of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PduConfig {
    pub role: Role,
    pub digests: Digests,
    /// PDU data alignment requested by the receiver of our PDUs (0's based dwords): HPDA for C2H, CPDA for H2C.
    pub send_pda: u8,
    /// The largest data payload accepted in one received PDU (bounds memory per PDU).
    pub max_data_len: u32,
}

impl PduConfig {
    /// Before ICReq/ICResp: no digests, and only IC PDUs or TermReqs are sensible.
    pub const fn initial(role: Role, max_data_len: u32) -> Self {
        Self {
            role,
            digests: Digests::NONE,
            send_pda: 0,
            max_data_len,
        }
    }
}

#[cfg(test)]
mod tests;
