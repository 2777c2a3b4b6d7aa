//! The block-device API of a namespace head: what the NBD export, the CLI
//! and the benchmarks use. Byte lengths are whole blocks; transfers larger
//! than the paths' MDTS are split (data is sliced, never copied).

use bytes::{Bytes, BytesMut};
use nvmp_host::IoRequest;
use nvmp_wire::io::{Dsm, DsmRange, Flush, ReadWrite, WriteZeroes};
use nvmp_wire::{Status, StatusCode};

use crate::head::{IoError, NamespaceHead};

/// Largest number of blocks one Write Zeroes / DSM range may name (NLB is 16 bits, 0's based).
const MAX_NLB_PER_CMD: u64 = 1 << 16;

fn invalid() -> IoError {
    IoError {
        status: Status::new(StatusCode::INVALID_FIELD).with_dnr(),
    }
}

impl NamespaceHead {
    fn check_range(&self, slba: u64, nlb: u64) -> Result<(), IoError> {
        match slba.checked_add(nlb) {
            Some(end) if end <= self.capacity_blocks() => Ok(()),
            _ => Err(IoError {
                status: Status::new(StatusCode::LBA_OUT_OF_RANGE).with_dnr(),
            }),
        }
    }

    fn max_blocks_per_cmd(&self) -> u64 {
        ((self.max_transfer_bytes() / self.block_size()) as u64).clamp(1, MAX_NLB_PER_CMD)
    }

    /// Submit `req`, its data or its error. (The submit future is awaited
    /// in the caller's own state, not wrapped in one more future: one copy
    /// of the future less per command.)
    fn result(c: nvmp_host::Completion) -> Result<Bytes, IoError> {
        if c.status.is_success() {
            Ok(c.data)
        } else {
            Err(IoError { status: c.status })
        }
    }

    /// Read `nlb` blocks from `slba`.
    pub async fn read(&self, slba: u64, nlb: u32) -> Result<Bytes, IoError> {
        self.check_range(slba, nlb as u64)?;
        let bs = self.block_size() as u64;
        let step = self.max_blocks_per_cmd();
        if (nlb as u64) <= step {
            let sqe = ReadWrite {
                nsid: self.nsid,
                slba,
                nlb,
                fua: false,
            }
            .read_sqe();
            return Self::result(
                self.submit(IoRequest {
                    sqe,
                    write: None,
                    read_len: (nlb as u64 * bs) as u32,
                })
                .await,
            );
        }
        let mut out = BytesMut::with_capacity((nlb as u64 * bs) as usize);
        let mut done = 0u64;
        while done < nlb as u64 {
            let n = step.min(nlb as u64 - done) as u32;
            let sqe = ReadWrite {
                nsid: self.nsid,
                slba: slba + done,
                nlb: n,
                fua: false,
            }
            .read_sqe();
            let d = Self::result(
                self.submit(IoRequest {
                    sqe,
                    write: None,
                    read_len: (n as u64 * bs) as u32,
                })
                .await,
            )?;
            out.extend_from_slice(&d);
            done += n as u64;
        }
        Ok(out.freeze())
    }

    /// Write whole blocks at `slba`; with `fua` the data is on stable media when this returns.
    pub async fn write(&self, slba: u64, data: Bytes, fua: bool) -> Result<(), IoError> {
        let bs = self.block_size() as u64;
        if data.is_empty() || !(data.len() as u64).is_multiple_of(bs) {
            return Err(invalid());
        }
        let nlb = data.len() as u64 / bs;
        self.check_range(slba, nlb)?;
        let step = self.max_blocks_per_cmd();
        let mut done = 0u64;
        while done < nlb {
            let n = step.min(nlb - done);
            let chunk = data.slice((done * bs) as usize..((done + n) * bs) as usize);
            let sqe = ReadWrite {
                nsid: self.nsid,
                slba: slba + done,
                nlb: n as u32,
                fua,
            }
            .write_sqe();
            Self::result(
                self.submit(IoRequest {
                    sqe,
                    write: Some(chunk),
                    read_len: 0,
                })
                .await,
            )?;
            done += n;
        }
        Ok(())
    }

    /// Flush the volatile write cache of every controller that serves this namespace.
    ///
    /// Flush goes to one path like any command: NVMe's Flush "commits data
    /// … to non-volatile storage" for the namespace, whichever controller receives it.
    pub async fn flush(&self) -> Result<(), IoError> {
        let sqe = Flush { nsid: self.nsid }.to_sqe();
        Self::result(
            self.submit(IoRequest {
                sqe,
                write: None,
                read_len: 0,
            })
            .await,
        )
        .map(|_| ())
    }

    /// Write zeroes over `nlb` blocks (with `deallocate`, the controller may unmap them).
    pub async fn write_zeroes(&self, slba: u64, nlb: u64, deallocate: bool) -> Result<(), IoError> {
        self.check_range(slba, nlb)?;
        let mut done = 0u64;
        while done < nlb {
            let n = MAX_NLB_PER_CMD.min(nlb - done);
            let sqe = WriteZeroes {
                nsid: self.nsid,
                slba: slba + done,
                nlb: n as u32,
                deallocate,
            }
            .to_sqe();
            Self::result(
                self.submit(IoRequest {
                    sqe,
                    write: None,
                    read_len: 0,
                })
                .await,
            )?;
            done += n;
        }
        Ok(())
    }

    /// Deallocate (discard / trim) `nlb` blocks with Dataset Management.
    pub async fn discard(&self, slba: u64, nlb: u64) -> Result<(), IoError> {
        self.check_range(slba, nlb)?;
        let mut ranges = Vec::new();
        let mut done = 0u64;
        while done < nlb {
            let n = (u32::MAX as u64).min(nlb - done);
            ranges.push(DsmRange {
                cattr: 0,
                nlb: n as u32,
                slba: slba + done,
            });
            done += n;
        }
        for chunk in ranges.chunks(256) {
            let data = Bytes::from(DsmRange::encode_list(chunk));
            let sqe = Dsm {
                nsid: self.nsid,
                ranges: chunk.len() as u16,
                deallocate: true,
            }
            .to_sqe();
            Self::result(
                self.submit(IoRequest {
                    sqe,
                    write: Some(data),
                    read_len: 0,
                })
                .await,
            )?;
        }
        Ok(())
    }
}
