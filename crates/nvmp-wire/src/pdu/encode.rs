//! NVMe/TCP PDU encoder: header, header digest, PDO padding, data, data digest.

use super::*;

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
