//! Streaming NVMe/TCP PDU decoder: common header checks, per-type header
//! validation, digests, PDO and data bounds.

use super::*;
use bytes::Buf;

fn hdr_err(field: &'static str, offset: usize, kind: DecodeErrorKind) -> (DecodeError, Fes, u32) {
    (
        DecodeError::at(field, offset, kind),
        Fes::INVALID_HEADER_FIELD,
        offset as u32,
    )
}

/// The PDU-specific header of ICReq and ICResp, which share a layout: PFV,
/// the PDU data alignment (HPDA / CPDA, at most 31), DGST (bits 7:2
/// reserved) and a 32-bit limit (MAXR2T / MAXH2CDATA). `names` are the four
/// fields' names, in that order. Returns (PFV, alignment, digests, limit).
fn ic_fields(
    r: &mut Reader<'_>,
    names: [&'static str; 4],
) -> Result<(u16, u8, Digests, u32), DecodeError> {
    let [pfv_f, pda_f, dgst_f, limit_f] = names;
    let pfv = r.u16(pfv_f)?;
    let pda = r.u8(pda_f)?;
    let dgst = r.u8(dgst_f)?;
    let limit = r.u32(limit_f)?;
    if pda > 31 {
        return Err(DecodeError::at(
            pda_f,
            10,
            DecodeErrorKind::OutOfRange { value: pda as u64 },
        ));
    }
    if dgst & !3 != 0 {
        return Err(DecodeError::at(
            dgst_f,
            11,
            DecodeErrorKind::ReservedNonZero,
        ));
    }
    Ok((pfv, pda, Digests::from_byte(dgst), limit))
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
    #[inline]
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

    /// Decode one PDU from the front of `buf` if a whole one is there and
    /// take its bytes off `buf` (data slices share its allocation).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Pdu>, PduError> {
        if buf.len() < CH_LEN {
            return Ok(None);
        }
        let ch = self.check_common(buf)?;
        if buf.len() < ch.plen {
            return Ok(None);
        }
        if ch.plen == ch.hlen + ch.hd && !is_term_req(ch.t) {
            // Nothing of a PDU without data outlives the call: decode it in
            // place and step over it (no reference to the buffer is taken,
            // so no atomic reference count per command or response).
            let r = self.decode_at(ch, &buf[..ch.plen], None);
            buf.advance(ch.plen);
            return r.map(Some);
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

    /// Header digest: "computed over the PDU header" (all HLEN bytes).
    /// `b` holds the header and its digest (check_common made sure they fit).
    #[inline(always)]
    fn check_header_digest(&self, b: &[u8], ch: &CommonHeader) -> Result<(), PduError> {
        if ch.hd == 0 {
            return Ok(());
        }
        let expected = crc32c(&b[..ch.hlen]);
        let got = u32::from_le_bytes([b[ch.hlen], b[ch.hlen + 1], b[ch.hlen + 2], b[ch.hlen + 3]]);
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
        Ok(())
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
        self.decode_at(ch, &bytes, Some(&bytes))
    }

    /// Decode the PDU in `b` (exactly PLEN bytes); data and TermReq slices
    /// are taken from `bytes` (the same bytes, shared), copied from `b` if
    /// there is none.
    fn decode_at(
        &self,
        ch: CommonHeader,
        b: &[u8],
        bytes: Option<&Bytes>,
    ) -> Result<Pdu, PduError> {
        let slice = |r: std::ops::Range<usize>| match bytes {
            Some(x) => x.slice(r),
            None => Bytes::copy_from_slice(&b[r]),
        };
        self.check_header_digest(b, &ch)?;
        let data = if ch.t.may_carry_data() && ch.plen > ch.hlen + ch.hd {
            let dd = if self.config.digests.data {
                DIGEST_LEN
            } else {
                0
            };
            let end = ch.plen - dd;
            let data = slice(ch.pdo..end);
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
                let (pfv, hpda, digests, maxr2t) = ic_fields(
                    &mut r,
                    ["ICReq.PFV", "ICReq.HPDA", "ICReq.DGST", "ICReq.MAXR2T"],
                )
                .map_err(e)?;
                Pdu::IcReq(IcReq {
                    pfv,
                    hpda,
                    digests,
                    maxr2t,
                })
            }
            PduType::IC_RESP => {
                let (pfv, cpda, digests, maxh2cdata) = ic_fields(
                    &mut r,
                    [
                        "ICResp.PFV",
                        "ICResp.CPDA",
                        "ICResp.DGST",
                        "ICResp.MAXH2CDATA",
                    ],
                )
                .map_err(e)?;
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
                    digests,
                    maxh2cdata,
                })
            }
            PduType::H2C_TERM_REQ | PduType::C2H_TERM_REQ => {
                let fes = Fes(r.u16("TermReq.FES").map_err(e)?);
                let fei = r.u32("TermReq.FEI").map_err(e)?;
                let t = TermReq {
                    fes,
                    fei,
                    data: slice(ch.hlen..ch.plen),
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
                let h2c = ch.t == PduType::H2C_DATA;
                let (header, last, success) =
                    data_fields(&mut r, ch.flags, h2c, data.len()).map_err(e)?;
                let d = DataPdu {
                    header,
                    last,
                    success,
                    data,
                };
                if h2c {
                    Pdu::H2CData(d)
                } else {
                    Pdu::C2HData(d)
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

/// The fields of an H2CData or C2HData header after the common header,
/// checked: (header, LAST_PDU, SUCCESS). `data_len` is the length of the
/// PDU's DATA field. One place for `decode` and `peek_data_head`.
#[inline(always)]
fn data_fields(
    r: &mut Reader,
    pdu_flags: u8,
    h2c: bool,
    data_len: usize,
) -> Result<(DataHeader, bool, bool), DecodeError> {
    let cccid = r.u16("DATA.CCCID")?;
    let ttag = r.u16("DATA.TTAG")?;
    let offset = r.u32("DATA.DATAO")?;
    let length = r.u32("DATA.DATAL")?;
    // "DATAL … shall be equal to the length of the PDU DATA field".
    if length as usize != data_len {
        return Err(DecodeError::at(
            "DATA.DATAL",
            16,
            DecodeErrorKind::OutOfRange {
                value: length as u64,
            },
        ));
    }
    if offset.checked_add(length).is_none() {
        return Err(DecodeError::at("DATA.DATAO", 12, DecodeErrorKind::Overflow));
    }
    let last = pdu_flags & flags::LAST_PDU != 0;
    let success = pdu_flags & flags::SUCCESS != 0;
    // H2CData never sets SUCCESS; on C2HData, "If the SUCCESS flag is set …
    // the LAST_PDU flag shall be set".
    if success && (h2c || !last) {
        return Err(DecodeError::at(
            "PDU.FLAGS.SUCCESS",
            1,
            DecodeErrorKind::Invalid,
        ));
    }
    let header = DataHeader {
        cccid,
        ttag,
        offset,
        length,
    };
    Ok((header, last, success))
}

fn is_term_req(t: PduType) -> bool {
    matches!(t, PduType::H2C_TERM_REQ | PduType::C2H_TERM_REQ)
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

/// The header of a data PDU (H2CData or C2HData) whose data may still be
/// on the way: what a receiver needs to read the data straight into a
/// buffer of its own ([`PduDecoder::peek_data_head`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHead {
    /// C2HData (else H2CData).
    pub c2h: bool,
    pub header: DataHeader,
    pub last: bool,
    pub success: bool,
    /// Where the data starts in the PDU (PDO): the bytes before it are the
    /// header, its digest and padding.
    pub pdo: usize,
    /// The PDU's length (PLEN): data, then the data digest if `ddgst`.
    pub plen: usize,
    pub ddgst: bool,
}

impl PduDecoder {
    /// The header of the data PDU at the front of `buf` once its bytes up
    /// to PDO are there, checked as [`PduDecoder::decode`] checks it (common
    /// header, header digest, DATAO/DATAL, flags; the same errors), without
    /// its data: the data and the data digest are the caller's to read and
    /// check. `None`: `buf` does not start with a data PDU, or not with all
    /// of its header yet. Nothing is taken off `buf`.
    pub fn peek_data_head(&self, buf: &[u8]) -> Result<Option<DataHead>, PduError> {
        if buf.len() < CH_LEN {
            return Ok(None);
        }
        let ch = self.check_common(buf)?;
        let c2h = ch.t == PduType::C2H_DATA;
        if !(c2h || ch.t == PduType::H2C_DATA) || buf.len() < ch.pdo {
            return Ok(None);
        }
        let b = &buf[..ch.pdo];
        self.check_header_digest(b, &ch)?;
        let ddgst = self.config.digests.data;
        // check_common made sure that data (at least a byte) and DDGST fit.
        let data_len = ch.plen - ch.pdo - if ddgst { DIGEST_LEN } else { 0 };
        let e = |x: DecodeError| {
            self.err(
                b,
                (x, Fes::INVALID_HEADER_FIELD, x.offset.unwrap_or(0) as u32),
            )
        };
        let mut r = Reader::new(&b[CH_LEN..ch.hlen]);
        let (header, last, success) = data_fields(&mut r, ch.flags, !c2h, data_len).map_err(e)?;
        Ok(Some(DataHead {
            c2h,
            header,
            last,
            success,
            pdo: ch.pdo,
            plen: ch.plen,
            ddgst,
        }))
    }
}
