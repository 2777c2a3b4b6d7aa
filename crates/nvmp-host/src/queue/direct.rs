//! Large C2HData payloads read straight into a buffer of their own.
//!
//! A read's data normally arrives in the queue's receive buffer and is
//! handed out as a zero-copy slice of it, which pins the whole buffer while
//! the caller holds the data. For large transfers (128 KiB reads) that
//! meant a fresh receive buffer, page-faulted anew, every few commands. So
//! when the header of a large C2HData that carries all of a read's data is
//! in and its data is not, the core takes the header off the receive
//! buffer and the driver reads the data into a buffer of the command's
//! size (recycled once the caller drops it), then hands it back here: the
//! PDU is handled as if it had been received whole. A C2HData that is all
//! in the receive buffer takes a short way too ([`QueueCore::receive_c2h`]),
//! and so does a plain CapsuleResp ([`QueueCore::receive_resp`]).

use bytes::{Buf, Bytes, BytesMut};
use nvmp_wire::pdu::{
    flags, DataHead, DataHeader, DataPdu, PduType, CAPSULE_RESP_HLEN, CH_LEN, DATA_HLEN,
};
use nvmp_wire::{Cqe, Pdu};

use super::{Phase, QueueCore, QueueError};

/// A C2HData PDU whose header was taken off the receive buffer; its data
/// (`data_len()` bytes, the first of them possibly still in the receive buffer)
/// go to [`QueueCore::direct_done`].
#[derive(Debug)]
pub struct Direct {
    head: DataHead,
}

impl Direct {
    /// Bytes of data to read.
    pub fn data_len(&self) -> usize {
        self.head.header.length as usize
    }
}

impl<T> QueueCore<T> {
    /// Take the header of the C2HData at the front of `buf` off it if the
    /// PDU carries at least `min` bytes, the whole of one read's data, no
    /// data digest, and is not all in `buf` yet. Anything else (a PDU that
    /// is small, whole, malformed, or for an unknown command) is left to
    /// [`QueueCore::receive`], which decodes and checks it when it is whole.
    pub fn direct_begin(&mut self, buf: &mut BytesMut, min: usize) -> Option<Direct> {
        if self.phase != Phase::Ready {
            return None;
        }
        let head = self.decoder.peek_data_head(buf).ok()??;
        let h = head.header;
        if !head.c2h || head.ddgst || (h.length as usize) < min || buf.len() >= head.plen {
            return None;
        }
        let f = self.slots.get_mut(h.cccid)?;
        if h.offset != 0 || f.received != 0 || h.length != f.read_len {
            return None;
        }
        buf.advance(head.pdo);
        Some(Direct { head })
    }

    /// The data of `d` (exactly `d.data_len()` bytes) arrived: handle the PDU as
    /// if it had been received whole.
    pub fn direct_done(&mut self, d: Direct, data: Bytes) -> Result<(), QueueError> {
        if self.phase == Phase::Failed {
            return Err(QueueError::Closed);
        }
        let pdu = Pdu::C2HData(DataPdu {
            header: d.head.header,
            last: d.head.last,
            success: d.head.success,
            data,
        });
        self.handle(pdu).map_err(|e| self.fatal(e))
    }
}

impl<T> QueueCore<T> {
    /// A C2HData that is all in `buf`, without data digest, on a ready
    /// queue: its data split off `buf` as they are (one reference taken)
    /// and handled without building a PDU. `None`: anything else, left to
    /// the decoder (which reports a bad header with the same error).
    pub(super) fn receive_c2h(&mut self, buf: &mut BytesMut) -> Option<Result<(), QueueError>> {
        if buf.first() != Some(&PduType::C2H_DATA.0) || self.phase != Phase::Ready {
            return None;
        }
        if let Some((h, last, success)) = self.plain_c2h_head(buf) {
            buf.advance(DATA_HLEN);
            let data = buf.split_to(h.length as usize).freeze();
            return Some(self.on_c2h(DataPdu {
                header: h,
                last,
                success,
                data,
            }));
        }
        match self.decoder.peek_data_head(buf) {
            Ok(Some(h)) if !h.ddgst && buf.len() >= h.plen => {
                buf.advance(h.pdo);
                let data = buf.split_to(h.header.length as usize).freeze();
                Some(self.on_c2h(DataPdu {
                    header: h.header,
                    last: h.last,
                    success: h.success,
                    data,
                }))
            }
            _ => None,
        }
    }

    /// The header of a C2HData all in `buf` when nothing about it needs
    /// the decoder's general checks: no digests on the connection, flags
    /// none, LAST_PDU, or LAST_PDU with SUCCESS, HLEN and PDO 24, DATAL the
    /// rest of PLEN and not zero, PLEN within the decoder's limit, DATAO +
    /// DATAL without overflow. Everything else (valid or not) is left to
    /// the decoder, which accepts the same PDUs and reports the others.
    #[inline]
    fn plain_c2h_head(&self, buf: &[u8]) -> Option<(DataHeader, bool, bool)> {
        let cfg = &self.decoder.config;
        if buf.len() < DATA_HLEN || cfg.digests.header || cfg.digests.data {
            return None;
        }
        let u16_at = |i: usize| u16::from_le_bytes([buf[i], buf[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let (fl, hlen, pdo, plen) = (buf[1], buf[2] as usize, buf[3] as usize, u32_at(4) as usize);
        let (last, success) = match fl {
            0 => (false, false),
            flags::LAST_PDU => (true, false),
            f if f == flags::LAST_PDU | flags::SUCCESS => (true, true),
            _ => return None,
        };
        let (offset, length) = (u32_at(12), u32_at(16));
        if hlen != DATA_HLEN
            || pdo != DATA_HLEN
            || length == 0
            || plen != DATA_HLEN + length as usize
            || plen > self.decoder.max_plen()
            || buf.len() < plen
            || offset.checked_add(length).is_none()
        {
            return None;
        }
        let h = DataHeader {
            cccid: u16_at(8),
            ttag: u16_at(10),
            offset,
            length,
        };
        Some((h, last, success))
    }
}

/// The common header of a CapsuleResp without header digest: type, no
/// flags, HLEN 24, PDO 0, PLEN 24.
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

impl<T> QueueCore<T> {
    /// A CapsuleResp that is all in `buf`, with exactly the common header
    /// the decoder accepts when header digests are off ([`RESP_CH`]), on a
    /// ready queue: its CQE read in place and taken off `buf`. `None`:
    /// anything else, left to the decoder (which checks and reports it).
    #[inline]
    pub(super) fn receive_resp(&mut self, buf: &mut BytesMut) -> Option<Cqe> {
        if buf.len() < CAPSULE_RESP_HLEN
            || buf[..CH_LEN] != RESP_CH
            || self.decoder.config.digests.header
            || self.phase != Phase::Ready
        {
            return None;
        }
        let cqe = Cqe::decode(&buf[CH_LEN..CAPSULE_RESP_HLEN]).ok()?;
        buf.advance(CAPSULE_RESP_HLEN);
        Some(cqe)
    }
}
