//! Convenience I/O commands on top of [`Controller::submit`]. Each returns
//! the [`Completion`] (an NVMe status is data, not an error).

use bytes::Bytes;
use nvmp_wire::io::{Dsm, DsmRange, Flush, ReadWrite, WriteZeroes, MAX_DSM_RANGES};
use nvmp_wire::{Status, StatusCode};

use super::Controller;
use crate::command::{Completion, IoRequest};

fn invalid() -> Completion {
    Completion::with_status(Status::new(StatusCode::INVALID_FIELD).with_dnr())
}

impl Controller {
    /// Read `nlb` blocks (1-based count) of `block_size` bytes from `slba`.
    pub async fn read(&self, nsid: u32, slba: u64, nlb: u32, block_size: u32) -> Completion {
        let Some(len) = nlb.checked_mul(block_size) else {
            return invalid();
        };
        let rw = ReadWrite {
            nsid,
            slba,
            nlb,
            fua: false,
        };
        self.submit(IoRequest::with_read(rw.read_sqe(), len)).await
    }

    /// Write `data` (a whole number of `block_size` blocks) at `slba`.
    pub async fn write(
        &self,
        nsid: u32,
        slba: u64,
        data: Bytes,
        block_size: u32,
        fua: bool,
    ) -> Completion {
        if data.is_empty() || data.len().checked_rem(block_size as usize) != Some(0) {
            return invalid();
        }
        let rw = ReadWrite {
            nsid,
            slba,
            nlb: (data.len() / block_size as usize) as u32,
            fua,
        };
        self.submit(IoRequest::with_write(rw.write_sqe(), data))
            .await
    }

    pub async fn flush(&self, nsid: u32) -> Completion {
        self.submit(IoRequest::new(Flush { nsid }.to_sqe())).await
    }

    pub async fn write_zeroes(
        &self,
        nsid: u32,
        slba: u64,
        nlb: u32,
        deallocate: bool,
    ) -> Completion {
        let sqe = WriteZeroes {
            nsid,
            slba,
            nlb,
            deallocate,
        }
        .to_sqe();
        self.submit(IoRequest::new(sqe)).await
    }

    /// Dataset Management, deallocate (discard) the ranges (1..=256).
    pub async fn deallocate(&self, nsid: u32, ranges: &[DsmRange]) -> Completion {
        if ranges.is_empty() || ranges.len() > MAX_DSM_RANGES {
            return invalid();
        }
        let sqe = Dsm {
            nsid,
            ranges: ranges.len() as u16,
            deallocate: true,
        }
        .to_sqe();
        let data = Bytes::from(DsmRange::encode_list(ranges));
        self.submit(IoRequest::with_write(sqe, data)).await
    }
}
