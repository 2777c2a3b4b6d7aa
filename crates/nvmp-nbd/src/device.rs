//! The backend an export serves: [`BlockDevice`], its error type, and
//! [`MemDevice`], a RAM implementation for tests and demos.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

/// Error kinds a device can report; each maps to one NBD error value
/// (the only values the NBD protocol defines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoErrorKind {
    /// `NBD_EPERM` (1): write to a read-only medium, access denied.
    Perm,
    /// `NBD_EIO` (5): the medium failed (also: no usable path, timeout).
    Io,
    /// `NBD_ENOMEM` (12).
    NoMem,
    /// `NBD_EINVAL` (22): bad offset, length, alignment or flags.
    Inval,
    /// `NBD_ENOSPC` (28): write beyond the end, out of space.
    NoSpc,
    /// `NBD_EOVERFLOW` (75): request too large.
    Overflow,
    /// `NBD_ENOTSUP` (95): operation not supported by the device.
    NotSup,
    /// `NBD_ESHUTDOWN` (108): the server is going away.
    Shutdown,
}

impl IoErrorKind {
    /// The NBD error value sent in replies.
    pub fn nbd_errno(self) -> u32 {
        match self {
            IoErrorKind::Perm => 1,
            IoErrorKind::Io => 5,
            IoErrorKind::NoMem => 12,
            IoErrorKind::Inval => 22,
            IoErrorKind::NoSpc => 28,
            IoErrorKind::Overflow => 75,
            IoErrorKind::NotSup => 95,
            IoErrorKind::Shutdown => 108,
        }
    }

    /// Inverse of [`IoErrorKind::nbd_errno`]; unknown values map to `Io`.
    pub fn from_nbd_errno(errno: u32) -> Self {
        match errno {
            1 => IoErrorKind::Perm,
            12 => IoErrorKind::NoMem,
            22 => IoErrorKind::Inval,
            28 => IoErrorKind::NoSpc,
            75 => IoErrorKind::Overflow,
            95 => IoErrorKind::NotSup,
            108 => IoErrorKind::Shutdown,
            _ => IoErrorKind::Io,
        }
    }

    fn code(self) -> u8 {
        self.nbd_errno() as u8
    }
}

/// An I/O error: the kind sent to the NBD client and a message (sent in
/// structured error chunks, truncated to the 4096-byte string limit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct IoError {
    pub kind: IoErrorKind,
    pub message: String,
}

impl IoError {
    pub fn new(kind: IoErrorKind, message: impl Into<String>) -> Self {
        IoError {
            kind,
            message: message.into(),
        }
    }
}

/// An async block device an NBD export serves.
///
/// Offsets and lengths passed to the device are always multiples of
/// [`BlockDevice::block_size`], inside `0..size_bytes()`, and no longer than
/// [`BlockDevice::max_transfer_bytes`] (reads, writes) or
/// [`BlockDevice::max_discard_bytes`] (trim, write zeroes): the server
/// aligns and splits NBD requests before calling it. Calls may run
/// concurrently; futures may be dropped before completion (client gone).
pub trait BlockDevice: Send + Sync + 'static {
    /// Capacity in bytes: a multiple of `block_size()`.
    fn size_bytes(&self) -> u64;
    /// Logical block size: a power of two, 1..=65536 (typically 512 or 4096).
    fn block_size(&self) -> u32;
    /// Largest single read or write the device takes (at least one block).
    fn max_transfer_bytes(&self) -> u32;
    /// Largest single trim / write-zeroes; defaults to `max_transfer_bytes`.
    fn max_discard_bytes(&self) -> u32 {
        self.max_transfer_bytes()
    }
    /// Reads `len` bytes at `offset`; the result must be exactly `len` long.
    fn read(&self, offset: u64, len: u32) -> impl Future<Output = Result<Bytes, IoError>> + Send;
    /// Writes `data` at `offset`; with `fua`, completes only once durable.
    fn write(
        &self,
        offset: u64,
        data: Bytes,
        fua: bool,
    ) -> impl Future<Output = Result<(), IoError>> + Send;
    /// Makes every completed write durable, whichever connection sent it
    /// (the export advertises `NBD_FLAG_CAN_MULTI_CONN`).
    fn flush(&self) -> impl Future<Output = Result<(), IoError>> + Send;
    /// Deallocation hint: contents of the range become unspecified.
    fn trim(&self, offset: u64, len: u32) -> impl Future<Output = Result<(), IoError>> + Send;
    /// Zeroes the range; `may_trim` allows deallocating it while doing so.
    fn write_zeroes(
        &self,
        offset: u64,
        len: u32,
        may_trim: bool,
    ) -> impl Future<Output = Result<(), IoError>> + Send;
}

/// A RAM block device. Trimmed ranges read back as zeroes. Errors can be
/// injected with [`MemDevice::inject_error`].
#[derive(Debug)]
pub struct MemDevice {
    data: Mutex<Vec<u8>>,
    block_size: u32,
    max_transfer: u32,
    fail: AtomicU8,
    ops: AtomicU64,
    max_seen: AtomicU64,
}

impl MemDevice {
    /// `size_bytes` is rounded down to a multiple of `block_size`; the
    /// maximum transfer defaults to 1 MiB.
    ///
    /// # Panics
    /// If `block_size` is not a power of two in 1..=65536.
    pub fn new(size_bytes: u64, block_size: u32) -> Self {
        assert!(
            block_size.is_power_of_two() && block_size <= 65536,
            "block size must be a power of two <= 65536"
        );
        let size = size_bytes - size_bytes % u64::from(block_size);
        MemDevice {
            data: Mutex::new(vec![0; size as usize]),
            block_size,
            max_transfer: (1 << 20).max(block_size),
            fail: AtomicU8::new(0),
            ops: AtomicU64::new(0),
            max_seen: AtomicU64::new(0),
        }
    }

    /// Sets the largest single transfer (rounded down to whole blocks).
    pub fn with_max_transfer(mut self, bytes: u32) -> Self {
        self.max_transfer = (bytes - bytes % self.block_size).max(self.block_size);
        self
    }

    /// Makes every later call fail with `kind` (None: succeed again).
    pub fn inject_error(&self, kind: Option<IoErrorKind>) {
        self.fail
            .store(kind.map_or(0, IoErrorKind::code), Ordering::SeqCst);
    }

    /// Number of device calls so far.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    /// Largest length any single call received.
    pub fn max_len_seen(&self) -> u64 {
        self.max_seen.load(Ordering::Relaxed)
    }

    /// A copy of the contents.
    pub fn snapshot(&self) -> Vec<u8> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks the contract (aligned, in range, within limits) and counts.
    fn check(&self, offset: u64, len: u64, limit: u32) -> Result<std::ops::Range<usize>, IoError> {
        self.ops.fetch_add(1, Ordering::Relaxed);
        self.max_seen.fetch_max(len, Ordering::Relaxed);
        let code = self.fail.load(Ordering::SeqCst);
        if code != 0 {
            let kind = IoErrorKind::from_nbd_errno(u32::from(code));
            return Err(IoError::new(kind, "injected error"));
        }
        let bs = u64::from(self.block_size);
        let size = self.size_bytes();
        if !offset.is_multiple_of(bs) || !len.is_multiple_of(bs) || len > u64::from(limit) {
            return Err(IoError::new(
                IoErrorKind::Inval,
                "unaligned or oversized request",
            ));
        }
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(offset as usize..end as usize),
            _ => Err(IoError::new(
                IoErrorKind::NoSpc,
                "beyond the end of the device",
            )),
        }
    }
}

impl BlockDevice for MemDevice {
    fn size_bytes(&self) -> u64 {
        self.lock().len() as u64
    }

    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn max_transfer_bytes(&self) -> u32 {
        self.max_transfer
    }

    async fn read(&self, offset: u64, len: u32) -> Result<Bytes, IoError> {
        let r = self.check(offset, u64::from(len), self.max_transfer)?;
        Ok(Bytes::copy_from_slice(&self.lock()[r]))
    }

    async fn write(&self, offset: u64, data: Bytes, _fua: bool) -> Result<(), IoError> {
        let r = self.check(offset, data.len() as u64, self.max_transfer)?;
        self.lock()[r].copy_from_slice(&data);
        Ok(())
    }

    async fn flush(&self) -> Result<(), IoError> {
        self.check(0, 0, 0).map(|_| ())
    }

    async fn trim(&self, offset: u64, len: u32) -> Result<(), IoError> {
        let r = self.check(offset, u64::from(len), self.max_discard_bytes())?;
        self.lock()[r].fill(0);
        Ok(())
    }

    async fn write_zeroes(&self, offset: u64, len: u32, _may_trim: bool) -> Result<(), IoError> {
        let r = self.check(offset, u64::from(len), self.max_discard_bytes())?;
        self.lock()[r].fill(0);
        Ok(())
    }
}
