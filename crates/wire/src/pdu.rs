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

fn hdr_err(field: &'static str, offset: usize, kind: DecodeErrorKind) -> (DecodeError, Fes, u32) {
    (
        DecodeError::at(field, offset, kind),
        Fes::INVALID_HEADER_FIELD,
        offset as u32,
    )
}

/// Streaming PDU decoder: feed bytes as they arrive, take whole PDUs out.
#[derive(Debug, Clone)]
pub struct PduDecoder {
    pub config: PduConfig,
}

impl PduDecoder {
    pub fn new(config: PduConfig) -> Self {
        Self { config }
    }

    /// The largest PLEN this decoder accepts.
    pub fn max_plen(&self) -> usize {
        // header + hdgst + worst-case padding (32 dwords) + data + ddgst
        IC_LEN + DIGEST_LEN + 128 + self.config.max_data_len as usize + DIGEST_LEN
    }

    /// How many bytes are needed before the next PDU can be decoded (at least `CH_LEN`).
    /// Returns the complete PLEN once the common header is in `buf`.
    pub fn needed(&self, buf: &[u8]) -> Result<usize, PduError> {
        if buf.len() < CH_LEN {
            return Ok(CH_LEN);
        }
        let ch = self.check_common(buf)?;
        Ok(ch.plen)
    }

    /// Decode one PDU from the front of `buf` if a whole one is there; the
    /// PDU's bytes are split off `buf` (data slices share its allocation).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Pdu>, PduError> {
        if buf.len() < CH_LEN {
            return Ok(None);
        }
        let ch = self.check_common(buf)?;
        if buf.len() < ch.plen {
            return Ok(None);
        }
        let bytes = buf.split_to(ch.plen).freeze();
        self.decode_whole(ch, bytes).map(Some)
    }

    /// Decode exactly one PDU that fills `bytes`.
    pub fn decode_one(&self, bytes: Bytes) -> Result<Pdu, PduError> {
        if bytes.len() < CH_LEN {
            return Err(PduError {
                error: DecodeError::truncated("PDU.CH", CH_LEN, bytes.len()),
                fes: Fes::INVALID_HEADER_FIELD,
                fei: 0,
                header: bytes,
            });
        }
        let ch = self.check_common(&bytes)?;
        if bytes.len() != ch.plen {
            return Err(self.err(
                &bytes,
                hdr_err(
                    "PDU.PLEN",
                    4,
                    DecodeErrorKind::OutOfRange {
                        value: ch.plen as u64,
                    },
                ),
            ));
        }
        self.decode_whole(ch, bytes)
    }

    fn err(&self, bytes: &[u8], (error, fes, fei): (DecodeError, Fes, u32)) -> PduError {
        let hlen = bytes.get(2).copied().unwrap_or(0) as usize;
        let n = hlen.clamp(CH_LEN.min(bytes.len()), 128).min(bytes.len());
        PduError {
            error,
            fes,
            fei,
            header: Bytes::copy_from_slice(&bytes[..n]),
        }
    }

    fn check_common(&self, b: &[u8]) -> Result<CommonHeader, PduError> {
        let t = PduType(b[0]);
        let fl = b[1];
        let hlen = b[2] as usize;
        let pdo = b[3] as usize;
        let plen = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
        let e = |x| Err(self.err(b, x));
        let Some(want_hlen) = t.hlen() else {
            return e(hdr_err("PDU.PDU-TYPE", 0, DecodeErrorKind::Invalid));
        };
        if !self.config.role.accepts(t) {
            return e(hdr_err("PDU.PDU-TYPE", 0, DecodeErrorKind::Invalid));
        }
        // "HLEN … shall be set to a fixed value for each PDU type".
        if hlen != want_hlen {
            return e(hdr_err(
                "PDU.HLEN",
                2,
                DecodeErrorKind::OutOfRange { value: hlen as u64 },
            ));
        }
        let dg = self.config.digests;
        let hd = if t.has_hdgst() && dg.header {
            DIGEST_LEN
        } else {
            0
        };
        if t.has_hdgst() && ((fl & flags::HDGSTF != 0) != dg.header) {
            return e(hdr_err("PDU.FLAGS.HDGSTF", 1, DecodeErrorKind::Invalid));
        }
        if !t.has_hdgst() && fl & (flags::HDGSTF | flags::DDGSTF) != 0 {
            return e(hdr_err("PDU.FLAGS", 1, DecodeErrorKind::Invalid));
        }
        if plen < hlen + hd {
            return e(hdr_err(
                "PDU.PLEN",
                4,
                DecodeErrorKind::OutOfRange { value: plen as u64 },
            ));
        }
        if plen > self.max_plen() {
            let (error, _, _) = hdr_err(
                "PDU.PLEN",
                4,
                DecodeErrorKind::OutOfRange { value: plen as u64 },
            );
            return Err(self.err(b, (error, Fes::DATA_LIMIT_EXCEEDED, 4)));
        }
        match t {
            PduType::IC_REQ | PduType::IC_RESP => {
                if plen != IC_LEN {
                    return e(hdr_err(
                        "PDU.PLEN",
                        4,
                        DecodeErrorKind::OutOfRange { value: plen as u64 },
                    ));
                }
                if pdo != 0 {
                    return e(hdr_err("PDU.PDO", 3, DecodeErrorKind::Invalid));
                }
            }
            PduType::H2C_TERM_REQ | PduType::C2H_TERM_REQ => {
                if plen > TERM_REQ_MAX_LEN {
                    return e(hdr_err(
                        "PDU.PLEN",
                        4,
                        DecodeErrorKind::OutOfRange { value: plen as u64 },
                    ));
                }
            }
            PduType::CAPSULE_RESP | PduType::R2T => {
                if plen != hlen + hd {
                    return e(hdr_err(
                        "PDU.PLEN",
                        4,
                        DecodeErrorKind::OutOfRange { value: plen as u64 },
                    ));
                }
                if pdo != 0 {
                    return e(hdr_err("PDU.PDO", 3, DecodeErrorKind::Invalid));
                }
            }
            _ => {
                // Data-bearing: CapsuleCmd, H2CData, C2HData.
                let has_data = plen > hlen + hd;
                if has_data {
                    let dd = if dg.data { DIGEST_LEN } else { 0 };
                    if (fl & flags::DDGSTF != 0) != dg.data {
                        return e(hdr_err("PDU.FLAGS.DDGSTF", 1, DecodeErrorKind::Invalid));
                    }
                    // "PDO … shall be … greater than or equal to HLEN (+ HDGST)", and
                    // data (at least one byte) plus DDGST must fit in PLEN.
                    if pdo < hlen + hd || pdo + dd >= plen {
                        return e(hdr_err(
                            "PDU.PDO",
                            3,
                            DecodeErrorKind::OutOfRange { value: pdo as u64 },
                        ));
                    }
                } else if t == PduType::CAPSULE_CMD {
                    if fl & flags::DDGSTF != 0 {
                        return e(hdr_err("PDU.FLAGS.DDGSTF", 1, DecodeErrorKind::Invalid));
                    }
                } else {
                    // An H2CData/C2HData PDU without data is not allowed (DATAL > 0).
                    return e(hdr_err(
                        "PDU.PLEN",
                        4,
                        DecodeErrorKind::OutOfRange { value: plen as u64 },
                    ));
                }
            }
        }
        Ok(CommonHeader {
            t,
            flags: fl,
            hlen,
            pdo,
            plen,
            hd,
        })
    }

    fn decode_whole(&self, ch: CommonHeader, bytes: Bytes) -> Result<Pdu, PduError> {
        let b = &bytes[..];
        // Header digest: "computed over the PDU header" (all HLEN bytes).
        if ch.hd > 0 {
            let expected = crc32c(&b[..ch.hlen]);
            let got =
                u32::from_le_bytes([b[ch.hlen], b[ch.hlen + 1], b[ch.hlen + 2], b[ch.hlen + 3]]);
            if expected != got {
                let error = DecodeError::at(
                    "PDU.HDGST",
                    ch.hlen,
                    DecodeErrorKind::DigestMismatch {
                        expected,
                        actual: got,
                    },
                );
                return Err(self.err(b, (error, Fes::HEADER_DIGEST_ERROR, 0)));
            }
        }
        let data = if ch.t.may_carry_data() && ch.plen > ch.hlen + ch.hd {
            let dd = if self.config.digests.data {
                DIGEST_LEN
            } else {
                0
            };
            let end = ch.plen - dd;
            let data = bytes.slice(ch.pdo..end);
            if dd > 0 {
                let expected = crc32c(&data);
                let got = u32::from_le_bytes([b[end], b[end + 1], b[end + 2], b[end + 3]]);
                if expected != got {
                    let error = DecodeError::at(
                        "PDU.DDGST",
                        end,
                        DecodeErrorKind::DigestMismatch {
                            expected,
                            actual: got,
                        },
                    );
                    // Data digest errors are not fatal to the connection: the
                    // command completes with a Transient Transport Error. The
                    // FES here is advisory.
                    return Err(self.err(b, (error, Fes::INVALID_HEADER_FIELD, 0)));
                }
            }
            data
        } else {
            Bytes::new()
        };
        let mut r = Reader::new(&b[CH_LEN..ch.hlen]);
        let e = |x: DecodeError| {
            self.err(
                b,
                (x, Fes::INVALID_HEADER_FIELD, x.offset.unwrap_or(0) as u32),
            )
        };
        let pdu = match ch.t {
            PduType::IC_REQ => {
                let pfv = r.u16("ICReq.PFV").map_err(e)?;
                let hpda = r.u8("ICReq.HPDA").map_err(e)?;
                let dgst = r.u8("ICReq.DGST").map_err(e)?;
                let maxr2t = r.u32("ICReq.MAXR2T").map_err(e)?;
                if hpda > 31 {
                    return Err(e(DecodeError::at(
                        "ICReq.HPDA",
                        10,
                        DecodeErrorKind::OutOfRange { value: hpda as u64 },
                    )));
                }
                if dgst & !3 != 0 {
                    return Err(e(DecodeError::at(
                        "ICReq.DGST",
                        11,
                        DecodeErrorKind::ReservedNonZero,
                    )));
                }
                Pdu::IcReq(IcReq {
                    pfv,
                    hpda,
                    digests: Digests::from_byte(dgst),
                    maxr2t,
                })
            }
            PduType::IC_RESP => {
                let pfv = r.u16("ICResp.PFV").map_err(e)?;
                let cpda = r.u8("ICResp.CPDA").map_err(e)?;
                let dgst = r.u8("ICResp.DGST").map_err(e)?;
                let maxh2cdata = r.u32("ICResp.MAXH2CDATA").map_err(e)?;
                if cpda > 31 {
                    return Err(e(DecodeError::at(
                        "ICResp.CPDA",
                        10,
                        DecodeErrorKind::OutOfRange { value: cpda as u64 },
                    )));
                }
                if dgst & !3 != 0 {
                    return Err(e(DecodeError::at(
                        "ICResp.DGST",
                        11,
                        DecodeErrorKind::ReservedNonZero,
                    )));
                }
                // "MAXH2CDATA … The minimum value is 4,096 bytes … shall be a multiple of 4".
                if maxh2cdata < 4096 || maxh2cdata % 4 != 0 {
                    return Err(e(DecodeError::at(
                        "ICResp.MAXH2CDATA",
                        12,
                        DecodeErrorKind::OutOfRange {
                            value: maxh2cdata as u64,
                        },
                    )));
                }
                Pdu::IcResp(IcResp {
                    pfv,
                    cpda,
                    digests: Digests::from_byte(dgst),
                    maxh2cdata,
                })
            }
            PduType::H2C_TERM_REQ | PduType::C2H_TERM_REQ => {
                let fes = Fes(r.u16("TermReq.FES").map_err(e)?);
                let fei = r.u32("TermReq.FEI").map_err(e)?;
                let t = TermReq {
                    fes,
                    fei,
                    data: bytes.slice(ch.hlen..ch.plen),
                };
                if ch.t == PduType::H2C_TERM_REQ {
                    Pdu::H2CTermReq(t)
                } else {
                    Pdu::C2HTermReq(t)
                }
            }
            PduType::CAPSULE_CMD => {
                let sqe = Sqe::decode(r.take("CapsuleCmd.SQE", SQE_LEN).map_err(e)?).map_err(e)?;
                Pdu::CapsuleCmd { sqe, data }
            }
            PduType::CAPSULE_RESP => {
                let cqe = Cqe::decode(r.take("CapsuleResp.CQE", CQE_LEN).map_err(e)?).map_err(e)?;
                Pdu::CapsuleResp(cqe)
            }
            PduType::H2C_DATA | PduType::C2H_DATA => {
                let cccid = r.u16("DATA.CCCID").map_err(e)?;
                let ttag = r.u16("DATA.TTAG").map_err(e)?;
                let offset = r.u32("DATA.DATAO").map_err(e)?;
                let length = r.u32("DATA.DATAL").map_err(e)?;
                // "DATAL … shall be equal to the length of the PDU DATA field".
                if length as usize != data.len() {
                    return Err(e(DecodeError::at(
                        "DATA.DATAL",
                        16,
                        DecodeErrorKind::OutOfRange {
                            value: length as u64,
                        },
                    )));
                }
                if offset.checked_add(length).is_none() {
                    return Err(e(DecodeError::at(
                        "DATA.DATAO",
                        12,
                        DecodeErrorKind::Overflow,
                    )));
                }
                let last = ch.flags & flags::LAST_PDU != 0;
                let success = ch.flags & flags::SUCCESS != 0;
                if ch.t == PduType::H2C_DATA {
                    if success {
                        return Err(e(DecodeError::at(
                            "PDU.FLAGS.SUCCESS",
                            1,
                            DecodeErrorKind::Invalid,
                        )));
                    }
                    Pdu::H2CData(DataPdu {
                        header: DataHeader {
                            cccid,
                            ttag,
                            offset,
                            length,
                        },
                        last,
                        success,
                        data,
                    })
                } else {
                    // "If the SUCCESS flag is set … the LAST_PDU flag shall be set".
                    if success && !last {
                        return Err(e(DecodeError::at(
                            "PDU.FLAGS.SUCCESS",
                            1,
                            DecodeErrorKind::Invalid,
                        )));
                    }
                    Pdu::C2HData(DataPdu {
                        header: DataHeader {
                            cccid,
                            ttag,
                            offset,
                            length,
                        },
                        last,
                        success,
                        data,
                    })
                }
            }
            PduType::R2T => {
                let cccid = r.u16("R2T.CCCID").map_err(e)?;
                let ttag = r.u16("R2T.TTAG").map_err(e)?;
                let offset = r.u32("R2T.R2TO").map_err(e)?;
                let length = r.u32("R2T.R2TL").map_err(e)?;
                // "R2TL … shall not be zero".
                if length == 0 {
                    return Err(e(DecodeError::at(
                        "R2T.R2TL",
                        16,
                        DecodeErrorKind::OutOfRange { value: 0 },
                    )));
                }
                if offset.checked_add(length).is_none() {
                    return Err(e(DecodeError::at(
                        "R2T.R2TO",
                        12,
                        DecodeErrorKind::Overflow,
                    )));
                }
                Pdu::R2t(R2t {
                    cccid,
                    ttag,
                    offset,
                    length,
                })
            }
            _ => {
                return Err(e(DecodeError::at(
                    "PDU.PDU-TYPE",
                    0,
                    DecodeErrorKind::Invalid,
                )))
            }
        };
        Ok(pdu)
    }
}

#[derive(Debug, Clone, Copy)]
struct CommonHeader {
    t: PduType,
    flags: u8,
    hlen: usize,
    pdo: usize,
    plen: usize,
    hd: usize,
}

/// Encoding options for PDUs sent on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodeOptions {
    pub digests: Digests,
    /// The receiver's requested data alignment (0's based dwords).
    pub pda: u8,
}

impl From<PduConfig> for EncodeOptions {
    fn from(c: PduConfig) -> Self {
        Self {
            digests: c.digests,
            pda: c.send_pda,
        }
    }
}

impl Pdu {
    /// Encode the PDU into `out` contiguously (header, digest, padding, data, digest).
    pub fn encode(&self, opts: EncodeOptions, out: &mut BytesMut) {
        let ddgst = self.encode_head(opts, out);
        if let Some(d) = self.data() {
            out.extend_from_slice(d);
        }
        if let Some(dd) = ddgst {
            out.extend_from_slice(&dd);
        }
    }

    /// Encode everything up to the data (header, header digest, padding) into
    /// `out`, and return the data digest to send after [`Pdu::data`], so that
    /// data can be written without copying (vectored write).
    pub fn encode_head(&self, opts: EncodeOptions, out: &mut BytesMut) -> Option<[u8; 4]> {
        let t = self.pdu_type();
        let hlen = t.hlen().unwrap_or(CH_LEN);
        let hd = if t.has_hdgst() && opts.digests.header {
            DIGEST_LEN
        } else {
            0
        };
        let data_len = self.data().map_or(0, |d| d.len());
        let tr_data_len = match self {
            Pdu::H2CTermReq(t) | Pdu::C2HTermReq(t) => {
                t.data.len().min(TERM_REQ_MAX_LEN - TERM_REQ_HLEN)
            }
            _ => 0,
        };
        let dd = if data_len > 0 && opts.digests.data {
            DIGEST_LEN
        } else {
            0
        };
        let (pdo, plen) = if data_len > 0 {
            let align = (opts.pda as usize + 1) * 4;
            let pdo = (hlen + hd).div_ceil(align) * align;
            (pdo, pdo + data_len + dd)
        } else {
            (0, hlen + hd + tr_data_len)
        };
        let mut fl = 0u8;
        if hd > 0 {
            fl |= flags::HDGSTF;
        }
        if dd > 0 {
            fl |= flags::DDGSTF;
        }
        match self {
            Pdu::H2CData(d) | Pdu::C2HData(d) => {
                if d.last {
                    fl |= flags::LAST_PDU;
                }
                if d.success {
                    fl |= flags::SUCCESS;
                }
            }
            _ => {}
        }
        let start = out.len();
        out.reserve(pdo.max(hlen + hd + tr_data_len));
        out.put_u8(t.0);
        out.put_u8(fl);
        out.put_u8(hlen as u8);
        out.put_u8(pdo as u8);
        out.put_u32_le(plen as u32);
        match self {
            Pdu::IcReq(ic) => {
                out.put_u16_le(ic.pfv);
                out.put_u8(ic.hpda);
                out.put_u8(ic.digests.to_byte());
                out.put_u32_le(ic.maxr2t);
                out.put_bytes(0, IC_LEN - 16);
            }
            Pdu::IcResp(ic) => {
                out.put_u16_le(ic.pfv);
                out.put_u8(ic.cpda);
                out.put_u8(ic.digests.to_byte());
                out.put_u32_le(ic.maxh2cdata);
                out.put_bytes(0, IC_LEN - 16);
            }
            Pdu::H2CTermReq(t) | Pdu::C2HTermReq(t) => {
                out.put_u16_le(t.fes.0);
                out.put_u32_le(t.fei);
                out.put_bytes(0, TERM_REQ_HLEN - 14);
            }
            Pdu::CapsuleCmd { sqe, .. } => out.put_slice(&sqe.to_bytes()),
            Pdu::CapsuleResp(cqe) => out.put_slice(&cqe.to_bytes()),
            Pdu::H2CData(d) | Pdu::C2HData(d) => {
                out.put_u16_le(d.header.cccid);
                out.put_u16_le(d.header.ttag);
                out.put_u32_le(d.header.offset);
                out.put_u32_le(d.header.length);
                out.put_u32_le(0);
            }
            Pdu::R2t(r) => {
                out.put_u16_le(r.cccid);
                out.put_u16_le(r.ttag);
                out.put_u32_le(r.offset);
                out.put_u32_le(r.length);
                out.put_u32_le(0);
            }
        }
        if hd > 0 {
            let c = crc32c(&out[start..start + hlen]);
            out.put_u32_le(c);
        }
        if let Pdu::H2CTermReq(t) | Pdu::C2HTermReq(t) = self {
            out.put_slice(&t.data[..tr_data_len]);
        }
        if data_len > 0 {
            let pad = pdo - (hlen + hd);
            out.put_bytes(0, pad);
        }
        if dd > 0 {
            self.data().map(|d| crc32c(d).to_le_bytes())
        } else {
            None
        }
    }
}

/// Compute the data digest over data scattered in several buffers.
pub fn data_digest<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u32 {
    parts.into_iter().fold(0, crate::crc::crc32c_append)
}

#[cfg(test)]
mod tests;
