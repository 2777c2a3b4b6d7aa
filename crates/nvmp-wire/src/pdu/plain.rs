//! The two PDUs a host receives per command, in their plain form, read in
//! place ([`PduDecoder::peek_plain`]): a C2HData and a CapsuleResp without
//! digests or padding. This is the per-PDU hot path of a host's receiver,
//! so it reads the 24 header bytes once and builds nothing; anything it
//! does not recognise as plain goes to [`PduDecoder::decode`], which
//! accepts the same PDUs (and more) and reports the bad ones.

use super::*;

/// A PDU at the front of a receive buffer in its plain form
/// ([`PduDecoder::peek_plain`]): all of it is in the buffer, and
/// [`PduDecoder::decode`] would decode it to the same PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plain {
    /// A C2HData PDU without digests or padding: its data are the
    /// `header.length` bytes from `pdo` (= HLEN, 24) to `plen`.
    C2HData(DataHead),
    /// A CapsuleResp PDU without header digest: PLEN = HLEN = 24.
    CapsuleResp(Cqe),
}

impl Plain {
    /// The PDU's length (PLEN): how many bytes of the buffer it occupies.
    #[inline]
    pub fn plen(&self) -> usize {
        match self {
            Plain::C2HData(h) => h.plen,
            Plain::CapsuleResp(_) => CAPSULE_RESP_HLEN,
        }
    }
}

/// The common header of a plain CapsuleResp: the type; FLAGS none (HDGSTF,
/// "… a header digest is present", is clear without header digests); HLEN
/// 24 ("HLEN … shall be set to a fixed value for each PDU type"); PDO 0 and
/// PLEN = HLEN, as a CapsuleResp carries no data.
const RESP_CH: [u8; CH_LEN] = [
    PduType::CAPSULE_RESP.0,
    0,
    CAPSULE_RESP_HLEN as u8,
    0,
    CAPSULE_RESP_HLEN as u8,
    0,
    0,
    0,
];

/// Both plain PDUs have a 24-byte header.
const PLAIN_HLEN: usize = 24;
const _: () = assert!(DATA_HLEN == PLAIN_HLEN && CAPSULE_RESP_HLEN == PLAIN_HLEN);

impl PduDecoder {
    /// The PDU at the front of `buf` if it is a plain C2HData or CapsuleResp
    /// and all of it is in `buf`; nothing is taken off `buf` (the caller
    /// steps over [`Plain::plen`] bytes).
    ///
    /// Plain means: a decoder of the host role; C2HData with no digests on
    /// the connection, FLAGS none, LAST_PDU or LAST_PDU|SUCCESS, PDO = HLEN
    /// (no padding); CapsuleResp with no header digest on the connection
    /// and FLAGS none. `Some` only for a PDU that [`PduDecoder::decode`]
    /// accepts, as the same PDU with the same data; `None` for everything
    /// else, valid or not — other types, digests, padding, unusual flags, a
    /// bad header, a PDU not all in `buf` yet — which is the decoder's.
    #[inline]
    pub fn peek_plain(&self, buf: &[u8]) -> Option<Plain> {
        let h: &[u8; PLAIN_HLEN] = buf.get(..PLAIN_HLEN)?.try_into().ok()?;
        let cfg = &self.config;
        // Both types come from a controller: a decoder of the controller
        // role rejects them. One test per PDU each, cheapest first (this
        // runs for every PDU a host receives).
        if h[0] == PduType::C2H_DATA.0 {
            if cfg.role == Role::Host && !cfg.digests.header && !cfg.digests.data {
                return self.plain_c2h(buf.len(), h).map(Plain::C2HData);
            }
        } else if h[..CH_LEN] == RESP_CH && cfg.role == Role::Host && !cfg.digests.header {
            // The CQE: 16 bytes, any value (the queue checks CID and status).
            return Cqe::decode(&h[CH_LEN..CAPSULE_RESP_HLEN])
                .ok()
                .map(Plain::CapsuleResp);
        }
        None
    }

    /// The header `h` of a plain C2HData whose PDU is all in a buffer of
    /// `have` bytes, checked as the decoder checks it.
    #[inline(always)]
    fn plain_c2h(&self, have: usize, h: &[u8; PLAIN_HLEN]) -> Option<DataHead> {
        let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        // No digests negotiated, so HDGSTF and DDGSTF ("… a header digest is
        // present", "… a data digest is present") clear, and no reserved
        // bit set; "If the SUCCESS flag is set … the LAST_PDU flag shall be
        // set".
        let (last, success) = match h[1] {
            0 => (false, false),
            flags::LAST_PDU => (true, false),
            f if f == flags::LAST_PDU | flags::SUCCESS => (true, true),
            _ => return None,
        };
        let (hlen, pdo, plen) = (h[2] as usize, h[3] as usize, u32_at(4) as usize);
        let (offset, length) = (u32_at(12), u32_at(16));
        // "HLEN … shall be set to a fixed value for each PDU type"; PDO
        // "greater than or equal to HLEN", here equal (no padding).
        if hlen != DATA_HLEN || pdo != DATA_HLEN {
            return None;
        }
        // "DATAL … shall be equal to the length of the PDU DATA field"
        // (PLEN - PDO without DDGST), and not zero: a C2HData carries data.
        if length == 0 || plen as u64 != DATA_HLEN as u64 + u64::from(length) {
            return None;
        }
        // Within the decoder's limit on PLEN, all in the buffer, and DATAO +
        // DATAL within the 32-bit data offset space.
        if plen > self.max_plen() || have < plen || offset.checked_add(length).is_none() {
            return None;
        }
        Some(DataHead {
            c2h: true,
            header: DataHeader {
                cccid: u16_at(8),
                ttag: u16_at(10),
                offset,
                length,
            },
            last,
            success,
            pdo: DATA_HLEN,
            plen,
            ddgst: false,
        })
    }
}

#[cfg(test)]
#[path = "plain_tests.rs"]
mod tests;
