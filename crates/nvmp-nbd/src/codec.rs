//! Sans-IO transmission codec: request decoding and validation, reply
//! encoding (simple and structured).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::device::{IoError, IoErrorKind};
use crate::handshake::Negotiated;
use crate::proto::*;

/// A request header as sent by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub flags: u16,
    pub command: u16,
    pub cookie: u64,
    pub offset: u64,
    pub length: u32,
}

impl RequestHeader {
    /// Encodes the header (used by tests and clients).
    pub fn encode(&self) -> [u8; REQUEST_HEADER_LEN] {
        let mut b = [0u8; REQUEST_HEADER_LEN];
        let mut w = &mut b[..];
        w.put_u32(REQUEST_MAGIC);
        w.put_u16(self.flags);
        w.put_u16(self.command);
        w.put_u64(self.cookie);
        w.put_u64(self.offset);
        w.put_u32(self.length);
        b
    }
}

/// A complete request: header plus write payload (empty for other commands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub header: RequestHeader,
    pub payload: Bytes,
}

/// Violations that end the connection (hard disconnect).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransmissionError {
    #[error("bad request magic {0:#010x}")]
    BadMagic(u32),
    #[error("write payload of {len} bytes exceeds the {max}-byte limit")]
    PayloadTooLarge { len: u32, max: u32 },
}

/// Splits the client byte stream into requests.
#[derive(Debug, Clone, Copy)]
pub struct RequestDecoder {
    max_payload: u32,
}

impl RequestDecoder {
    pub fn new(max_payload: u32) -> Self {
        RequestDecoder { max_payload }
    }

    /// Takes one complete request off `buf`; `Ok(None)` if incomplete (see
    /// [`RequestDecoder::needed`]).
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Request>, TransmissionError> {
        let Some(header) = self.peek(buf)? else {
            return Ok(None);
        };
        let payload_len = payload_len(&header);
        if buf.len() < REQUEST_HEADER_LEN + payload_len {
            return Ok(None);
        }
        buf.advance(REQUEST_HEADER_LEN);
        let payload = buf.split_to(payload_len).freeze();
        Ok(Some(Request { header, payload }))
    }

    /// Total bytes the next request needs in `buf` (header, then payload).
    pub fn needed(&self, buf: &BytesMut) -> Result<usize, TransmissionError> {
        Ok(match self.peek(buf)? {
            None => REQUEST_HEADER_LEN,
            Some(h) => REQUEST_HEADER_LEN + payload_len(&h),
        })
    }

    fn peek(&self, buf: &BytesMut) -> Result<Option<RequestHeader>, TransmissionError> {
        if buf.len() < REQUEST_HEADER_LEN {
            return Ok(None);
        }
        let mut b = &buf[..REQUEST_HEADER_LEN];
        let magic = b.get_u32();
        if magic != REQUEST_MAGIC {
            return Err(TransmissionError::BadMagic(magic));
        }
        let header = RequestHeader {
            flags: b.get_u16(),
            command: b.get_u16(),
            cookie: b.get_u64(),
            offset: b.get_u64(),
            length: b.get_u32(),
        };
        // "either the server or the client MAY initiate a hard disconnect
        // if the payload of an NBD_CMD_WRITE request ... would be large
        // enough to be deemed a denial of service attack".
        if header.command == CMD_WRITE && header.length > self.max_payload {
            return Err(TransmissionError::PayloadTooLarge {
                len: header.length,
                max: self.max_payload,
            });
        }
        Ok(Some(header))
    }
}

fn payload_len(h: &RequestHeader) -> usize {
    if h.command == CMD_WRITE {
        h.length as usize
    } else {
        0
    }
}

/// A validated operation, ready for the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Read {
        offset: u64,
        len: u32,
    },
    Write {
        offset: u64,
        data: Bytes,
        fua: bool,
    },
    Flush,
    Trim {
        offset: u64,
        len: u32,
        fua: bool,
    },
    WriteZeroes {
        offset: u64,
        len: u32,
        fua: bool,
        may_trim: bool,
    },
    Disconnect,
}

/// Limits and facts validation needs.
#[derive(Debug, Clone, Copy)]
pub struct ValidateParams {
    pub size_bytes: u64,
    pub read_only: bool,
    pub max_payload: u32,
}

/// Checks a request against the negotiated flags and the export; errors
/// are replied to the client, the connection goes on.
pub fn validate(req: Request, neg: &Negotiated, p: &ValidateParams) -> Result<Op, IoError> {
    let h = req.header;
    let inval = |msg: &str| Err(IoError::new(IoErrorKind::Inval, msg));
    // FUA "is valid for all commands, provided NBD_FLAG_SEND_FUA has been
    // negotiated, in which case the server MUST accept all commands with
    // this bit set".
    let allowed = CMD_FLAG_FUA
        | match h.command {
            CMD_READ if neg.structured_replies => CMD_FLAG_DF,
            CMD_WRITE_ZEROES => CMD_FLAG_NO_HOLE,
            CMD_DISC => u16::MAX,
            _ => 0,
        };
    // "The server SHOULD return EINVAL if it receives an unknown command
    // flag" or "a flag not explicitly documented as applicable".
    if h.flags & !allowed != 0 {
        return inval("command flag not valid for this command");
    }
    let fua = h.flags & CMD_FLAG_FUA != 0;
    let writes = matches!(h.command, CMD_WRITE | CMD_TRIM | CMD_WRITE_ZEROES);
    if writes && p.read_only {
        // "it SHOULD return EPERM if it receives a write or trim request on
        // a read-only export".
        return Err(IoError::new(IoErrorKind::Perm, "export is read-only"));
    }
    let in_range = h
        .offset
        .checked_add(u64::from(h.length))
        .is_some_and(|e| e <= p.size_bytes);
    if !in_range
        && matches!(
            h.command,
            CMD_READ | CMD_WRITE | CMD_TRIM | CMD_WRITE_ZEROES
        )
    {
        // "The server SHOULD return ENOSPC if it receives a write request
        // including one or more sectors beyond the size of the device."
        return if matches!(h.command, CMD_WRITE | CMD_WRITE_ZEROES) {
            Err(IoError::new(
                IoErrorKind::NoSpc,
                "request beyond the end of the export",
            ))
        } else {
            inval("request beyond the end of the export")
        };
    }
    match h.command {
        CMD_READ if h.length > p.max_payload => {
            // "The server SHOULD report an NBD_EINVAL error if ... larger
            // than the advertised maximum block size."
            inval("read longer than the maximum block size")
        }
        CMD_READ => Ok(Op::Read {
            offset: h.offset,
            len: h.length,
        }),
        CMD_WRITE => Ok(Op::Write {
            offset: h.offset,
            data: req.payload,
            fua,
        }),
        CMD_FLUSH => Ok(Op::Flush),
        CMD_TRIM => Ok(Op::Trim {
            offset: h.offset,
            len: h.length,
            fua,
        }),
        CMD_WRITE_ZEROES => Ok(Op::WriteZeroes {
            offset: h.offset,
            len: h.length,
            fua,
            may_trim: h.flags & CMD_FLAG_NO_HOLE == 0,
        }),
        CMD_DISC => Ok(Op::Disconnect),
        // CACHE and BLOCK_STATUS are not advertised / negotiated; "The
        // server SHOULD return EINVAL if it receives an unknown command."
        _ => inval("unsupported command"),
    }
}

/// One simple reply header.
pub fn encode_simple_reply(cookie: u64, errno: u32) -> [u8; SIMPLE_REPLY_LEN] {
    let mut b = [0u8; SIMPLE_REPLY_LEN];
    let mut w = &mut b[..];
    w.put_u32(SIMPLE_REPLY_MAGIC);
    w.put_u32(errno);
    w.put_u64(cookie);
    b
}

fn structured_header(w: &mut Vec<u8>, flags: u16, kind: u16, cookie: u64, len: u32) {
    w.put_u32(STRUCTURED_REPLY_MAGIC);
    w.put_u16(flags);
    w.put_u16(kind);
    w.put_u64(cookie);
    w.put_u32(len);
}

/// The outcome of one request, as the reply encoder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// Success without data (everything but reads).
    Done,
    /// Read data starting at the request's offset.
    Data {
        offset: u64,
        data: Bytes,
    },
    Error(IoError),
}

/// Encodes the complete reply to one request as a list of buffers to write
/// in order (data is not copied).
pub fn encode_reply(structured: bool, cookie: u64, body: ReplyBody) -> Vec<Bytes> {
    match (structured, body) {
        (_, ReplyBody::Done) => vec![Bytes::copy_from_slice(&encode_simple_reply(cookie, 0))],
        (false, ReplyBody::Data { data, .. }) => {
            vec![
                Bytes::copy_from_slice(&encode_simple_reply(cookie, 0)),
                data,
            ]
        }
        (false, ReplyBody::Error(e)) => {
            vec![Bytes::copy_from_slice(&encode_simple_reply(
                cookie,
                e.kind.nbd_errno(),
            ))]
        }
        (true, ReplyBody::Data { data, .. }) if data.is_empty() => {
            let mut h = Vec::with_capacity(STRUCTURED_HEADER_LEN);
            structured_header(&mut h, REPLY_FLAG_DONE, REPLY_TYPE_NONE, cookie, 0);
            vec![h.into()]
        }
        (true, ReplyBody::Data { offset, data }) => {
            // One content chunk, final: all data is in hand, so no error can
            // be detected while it is sent (and DF is honoured trivially).
            let mut h = Vec::with_capacity(STRUCTURED_HEADER_LEN + 8);
            let len = 8 + data.len() as u32;
            structured_header(&mut h, REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, cookie, len);
            h.put_u64(offset);
            vec![h.into(), data]
        }
        (true, ReplyBody::Error(e)) => {
            let msg = truncate(&e.message, MAX_STRING_LEN);
            let mut h = Vec::with_capacity(STRUCTURED_HEADER_LEN + 6 + msg.len());
            let len = 6 + msg.len() as u32;
            structured_header(&mut h, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, cookie, len);
            h.put_u32(e.kind.nbd_errno());
            h.put_u16(msg.len() as u16);
            h.put_slice(msg.as_bytes());
            vec![h.into()]
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
