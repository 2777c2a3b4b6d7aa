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
//! in the receive buffer takes a short way too, and so does a plain
//! CapsuleResp ([`QueueCore::receive_short`]).

use bytes::{Buf, Bytes, BytesMut};
use nvmp_wire::pdu::{DataHead, DataPdu, PduType, Plain, CAPSULE_RESP_HLEN, CH_LEN};
use nvmp_wire::Pdu;

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
        // (Most reads leave the buffer empty: no call into the decoder then.)
        if self.phase != Phase::Ready || buf.len() < CH_LEN {
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
    /// The short ways, on a ready queue: a PDU that the decoder reads in
    /// place as plain ([`PduDecoder::peek_plain`]: a C2HData or CapsuleResp
    /// without digests or padding) is handled straight from `buf`, and so
    /// is a C2HData with header digest but no data digest once it is all in
    /// `buf` (its header checked by [`PduDecoder::peek_data_head`]). A
    /// C2HData's data are split off `buf` as they are (one reference taken),
    /// a CapsuleResp's CQE is read in place; no PDU is built. `None`:
    /// anything else, left to the decoder (which reports a bad header with
    /// the same error).
    ///
    /// [`PduDecoder::peek_plain`]: nvmp_wire::PduDecoder::peek_plain
    /// [`PduDecoder::peek_data_head`]: nvmp_wire::PduDecoder::peek_data_head
    #[inline]
    pub(super) fn receive_short(&mut self, buf: &mut BytesMut) -> Option<Result<(), QueueError>> {
        let ready = self.phase == Phase::Ready;
        let h = match self.decoder.peek_plain(buf) {
            Some(Plain::C2HData(h)) if ready => h,
            Some(Plain::CapsuleResp(cqe)) if ready => {
                buf.advance(CAPSULE_RESP_HLEN);
                return Some(self.on_resp(cqe));
            }
            None if buf.first() == Some(&PduType::C2H_DATA.0) && ready => {
                match self.decoder.peek_data_head(buf) {
                    Ok(Some(h)) if !h.ddgst && buf.len() >= h.plen => h,
                    _ => return None,
                }
            }
            _ => return None,
        };
        buf.advance(h.pdo);
        let data = buf.split_to(h.header.length as usize).freeze();
        Some(self.on_c2h(DataPdu {
            header: h.header,
            last: h.last,
            success: h.success,
            data,
        }))
    }
}
