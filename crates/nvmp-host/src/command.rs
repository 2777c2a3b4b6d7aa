//! Commands as submitted by users of a controller, and their completions.

use bytes::Bytes;
use nvmp_wire::{Sqe, Status, StatusCode};

/// A command to run: the SQE (CID and DPTR are filled in by the queue), the
/// data to write (host to controller) or the number of bytes to read.
#[derive(Debug, Clone, Default)]
pub struct IoRequest {
    pub sqe: Sqe,
    /// Data sent to the controller (a write). Zero-copy: the bytes are sent as they are.
    pub write: Option<Bytes>,
    /// Bytes expected from the controller (a read); 0 for none.
    pub read_len: u32,
}

impl IoRequest {
    pub fn new(sqe: Sqe) -> Self {
        Self {
            sqe,
            write: None,
            read_len: 0,
        }
    }
    pub fn with_write(sqe: Sqe, data: Bytes) -> Self {
        Self {
            sqe,
            write: Some(data),
            read_len: 0,
        }
    }
    pub fn with_read(sqe: Sqe, len: u32) -> Self {
        Self {
            sqe,
            write: None,
            read_len: len,
        }
    }
    /// Bytes moved by this command in either direction.
    pub fn data_len(&self) -> u32 {
        self.write
            .as_ref()
            .map_or(self.read_len, |w| w.len() as u32)
    }
}

/// A request as handed to a queue: by value, or borrowed and cloned
/// where the queue takes it (no intermediate copy: a caller that keeps its
/// request for a retry pays one clone, made in place).
pub(crate) trait RequestSource {
    fn request(&self) -> &IoRequest;
    fn into_request(self) -> IoRequest;
}

impl RequestSource for IoRequest {
    #[inline(always)]
    fn request(&self) -> &IoRequest {
        self
    }
    #[inline(always)]
    fn into_request(self) -> IoRequest {
        self
    }
}

impl RequestSource for &IoRequest {
    #[inline(always)]
    fn request(&self) -> &IoRequest {
        self
    }
    #[inline(always)]
    fn into_request(self) -> IoRequest {
        // The data's reference count first, then the fields straight into
        // place (`clone()` copies the SQE twice around its branch).
        let write = self.write.clone();
        IoRequest {
            sqe: self.sqe,
            write,
            read_len: self.read_len,
        }
    }
}

/// A command's completion. Failures of the transport, timeouts and "not
/// live" are statuses too (0x370 host pathing error, 0x371 aborted by host),
/// never Rust errors: the layer above decides whether to retry elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub status: Status,
    pub dw0: u32,
    pub dw1: u32,
    /// Data read (zero-copy slice of the received PDU when it came in one piece).
    pub data: Bytes,
}

impl Completion {
    pub fn with_status(status: Status) -> Self {
        Self {
            status,
            dw0: 0,
            dw1: 0,
            data: Bytes::new(),
        }
    }
    /// 0x371 "Command Aborted By Host": torn down with its connection (timeout, reset, disconnect).
    pub fn aborted_by_host() -> Self {
        Self::with_status(Status::new(StatusCode::ABORTED_BY_HOST))
    }
    /// 0x370 "Host Pathing Error": not sent, the controller is not live (or fast_io_fail expired).
    pub fn host_pathing_error() -> Self {
        Self::with_status(Status::new(StatusCode::HOST_PATHING_ERROR))
    }
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }
    /// The 64-bit result (DW1:DW0), e.g. an 8-byte Property Get.
    pub fn result64(&self) -> u64 {
        self.dw0 as u64 | ((self.dw1 as u64) << 32)
    }
}
