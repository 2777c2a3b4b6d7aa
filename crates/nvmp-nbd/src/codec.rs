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
        // A write payload is a slice of the receive buffer (no copy); the
        // other commands take no reference to it.
        let payload = if payload_len == 0 {
            Bytes::new()
        } else {
            buf.split_to(payload_len).freeze()
        };
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

/// Read data (or an error message): one or more buffers sent in order,
/// never copied. `Many` comes from reads split by the transfer limit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Payload {
    #[default]
    Empty,
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Payload {
    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.parts().iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffers, in order.
    pub fn parts(&self) -> &[Bytes] {
        match self {
            Payload::Empty => &[],
            Payload::One(b) => std::slice::from_ref(b),
            Payload::Many(v) => v,
        }
    }

    /// The payload as one contiguous buffer (copies only for `Many`).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Payload::Empty => Bytes::new(),
            Payload::One(b) => b.clone(),
            Payload::Many(v) => Bytes::from(v.concat()),
        }
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload::One(b)
    }
}

/// The outcome of one request, as the reply encoder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// Success without data (everything but reads).
    Done,
    /// Read data starting at the request's offset.
    Data {
        offset: u64,
        data: Payload,
    },
    Error(IoError),
}

/// Longest reply header: a structured chunk header plus the 8-byte offset
/// of `NBD_REPLY_TYPE_OFFSET_DATA` (the error chunk's fixed part, 6 bytes,
/// fits too).
const REPLY_HEAD_MAX: usize = STRUCTURED_HEADER_LEN + 8;

/// One encoded reply: header bytes held inline (no allocation) and the
/// payload buffers, written with one vectored write (the payload is never
/// copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    head: [u8; REPLY_HEAD_MAX],
    head_len: u8,
    payload: Payload,
}

impl Reply {
    /// The header bytes (sent first).
    pub fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }

    /// The payload buffers (sent after the header).
    pub fn payload(&self) -> &[Bytes] {
        self.payload.parts()
    }

    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        usize::from(self.head_len) + self.payload.len()
    }

    /// The whole reply as one buffer (tests, debugging).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.wire_len());
        v.extend_from_slice(self.head());
        for p in self.payload() {
            v.extend_from_slice(p);
        }
        v
    }

    fn new(head: &[u8], payload: Payload) -> Self {
        let mut r = Reply {
            head: [0; REPLY_HEAD_MAX],
            head_len: head.len() as u8,
            payload,
        };
        r.head[..head.len()].copy_from_slice(head);
        r
    }

    fn structured(flags: u16, kind: u16, cookie: u64, extra: &[u8], payload: Payload) -> Self {
        let mut h = [0u8; REPLY_HEAD_MAX];
        let mut w = &mut h[..];
        let len = extra.len() + payload.len();
        w.put_u32(STRUCTURED_REPLY_MAGIC);
        w.put_u16(flags);
        w.put_u16(kind);
        w.put_u64(cookie);
        w.put_u32(len as u32);
        w.put_slice(extra);
        Reply::new(&h[..STRUCTURED_HEADER_LEN + extra.len()], payload)
    }
}

/// Encodes the complete reply to one request.
pub fn encode_reply(structured: bool, cookie: u64, body: ReplyBody) -> Reply {
    match (structured, body) {
        (_, ReplyBody::Done) => Reply::new(&encode_simple_reply(cookie, 0), Payload::Empty),
        (false, ReplyBody::Data { data, .. }) => Reply::new(&encode_simple_reply(cookie, 0), data),
        (false, ReplyBody::Error(e)) => Reply::new(
            &encode_simple_reply(cookie, e.kind.nbd_errno()),
            Payload::Empty,
        ),
        (true, ReplyBody::Data { data, .. }) if data.is_empty() => Reply::structured(
            REPLY_FLAG_DONE,
            REPLY_TYPE_NONE,
            cookie,
            &[],
            Payload::Empty,
        ),
        (true, ReplyBody::Data { offset, data }) => {
            // One content chunk, final: all data is in hand, so no error can
            // be detected while it is sent (and DF is honoured trivially).
            let kind = REPLY_TYPE_OFFSET_DATA;
            Reply::structured(REPLY_FLAG_DONE, kind, cookie, &offset.to_be_bytes(), data)
        }
        (true, ReplyBody::Error(e)) => {
            let mut msg = e.message;
            msg.truncate(truncated_len(&msg, MAX_STRING_LEN));
            let mut extra = [0u8; 6];
            extra[..4].copy_from_slice(&e.kind.nbd_errno().to_be_bytes());
            extra[4..].copy_from_slice(&(msg.len() as u16).to_be_bytes());
            let msg = Payload::One(Bytes::from(msg));
            Reply::structured(REPLY_FLAG_DONE, REPLY_TYPE_ERROR, cookie, &extra, msg)
        }
    }
}

/// Length of the longest prefix of `s` of at most `max` bytes that ends on
/// a character boundary.
fn truncated_len(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}
