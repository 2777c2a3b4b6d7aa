//! Namespace backing stores: memory and files / block devices.
//!
//! Durability of the file backend: Flush calls `fdatasync` (`File::sync_data`),
//! and a write with FUA is followed by `fdatasync` before it completes, so
//! both really reach stable storage. Positional I/O (`FileExt::read_at` /
//! `write_at`) lets concurrent commands share one `File`; the driver runs it
//! on a bounded pool of threads ([`pool`]) with a limit per connection.
//!
//! RAM namespaces ([`ram`]) keep their data in chunks that reads hand out
//! without copying.
//!
//! Deallocate (Dataset Management, Write Zeroes with DEAC): the RAM backend
//! zeroes the range; the file backend writes zeroes (no `fallocate` punch
//! hole, which would need `unsafe` libc calls), so deallocated blocks read
//! back as zeroes on both (DLFEAT reports "reads return zeroes").

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;

use crate::config::DeviceSpec;

pub mod pool;
pub mod ram;
pub mod slots;

use ram::RamStore;

/// One backend operation, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoOp {
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
    /// Write zeroes (also deallocate).
    Zero {
        offset: u64,
        len: u64,
    },
    /// Deallocate several ranges (Dataset Management): zeroed, see above.
    Deallocate {
        ranges: Vec<(u64, u64)>,
    },
}

/// The outcome of an operation: data for reads.
pub type IoResult = std::io::Result<Bytes>;

/// A namespace's storage.
#[derive(Debug)]
pub enum Backend {
    Ram(RamStore),
    File { file: File, size: u64 },
}

/// Chunk of zeroes used to zero-fill ranges in files.
const ZERO_CHUNK: usize = 1 << 20;

impl Backend {
    /// Open the backend for a device spec; returns it with its block size.
    pub fn open(spec: &DeviceSpec) -> std::io::Result<(Backend, u32)> {
        match spec {
            DeviceSpec::Ram { size, block_size } => {
                Ok((Backend::Ram(RamStore::new(*size)?), *block_size))
            }
            DeviceSpec::RamPopulated { size, block_size } => {
                Ok((Backend::Ram(RamStore::populated(*size)?), *block_size))
            }
            DeviceSpec::File { path } => Self::open_file(path).map(|b| (b, 512)),
        }
    }

    fn open_file(path: &Path) -> std::io::Result<Backend> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        // Works for regular files and block devices (seek to end).
        let size = {
            use std::io::Seek;
            let mut f = &file;
            f.seek(std::io::SeekFrom::End(0))?
        };
        if size < 512 {
            return Err(std::io::Error::other(format!(
                "{} is smaller than one block",
                path.display()
            )));
        }
        Ok(Backend::File {
            file,
            size: size / 512 * 512,
        })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Backend::Ram(r) => r.size(),
            Backend::File { size, .. } => *size,
        }
    }

    /// Whether operations complete without blocking (run in line).
    pub fn is_inline(&self) -> bool {
        matches!(self, Backend::Ram(_))
    }

    /// Perform an operation (blocking for files). Ranges are checked by the caller.
    pub fn execute(&self, op: &IoOp) -> IoResult {
        match self {
            Backend::Ram(r) => ram_execute(r, op),
            Backend::File { file, .. } => file_execute(file, op),
        }
    }
}

fn ram_execute(r: &RamStore, op: &IoOp) -> IoResult {
    match op {
        IoOp::Read { offset, len } => r.read(*offset, *len as u64),
        IoOp::Write { offset, data, .. } => {
            r.write(*offset, Some(data), data.len() as u64)?;
            Ok(Bytes::new())
        }
        IoOp::Flush => Ok(Bytes::new()),
        IoOp::Zero { offset, len } => {
            r.write(*offset, None, *len)?;
            Ok(Bytes::new())
        }
        IoOp::Deallocate { ranges } => {
            for (offset, len) in ranges {
                r.write(*offset, None, *len)?;
            }
            Ok(Bytes::new())
        }
    }
}

fn file_execute(file: &File, op: &IoOp) -> IoResult {
    match op {
        IoOp::Read { offset, len } => {
            let mut buf = vec![0u8; *len as usize];
            file.read_exact_at(&mut buf, *offset)?;
            Ok(Bytes::from(buf))
        }
        IoOp::Write { offset, data, fua } => {
            file.write_all_at(data, *offset)?;
            if *fua {
                // FUA: "the controller shall write the data … to non-volatile media before indicating command completion".
                file.sync_data()?;
            }
            Ok(Bytes::new())
        }
        IoOp::Flush => {
            file.sync_data()?;
            Ok(Bytes::new())
        }
        IoOp::Zero { offset, len } => {
            let zeros = vec![0u8; ZERO_CHUNK.min(*len as usize)];
            let mut done = 0u64;
            while done < *len {
                let n = (*len - done).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], offset + done)?;
                done += n as u64;
            }
            Ok(Bytes::new())
        }
        IoOp::Deallocate { ranges } => {
            for (offset, len) in ranges {
                file_execute(
                    file,
                    &IoOp::Zero {
                        offset: *offset,
                        len: *len,
                    },
                )?;
            }
            Ok(Bytes::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(b: &Backend, offset: u64, data: Vec<u8>) {
        b.execute(&IoOp::Write {
            offset,
            data: Bytes::from(data),
            fua: true,
        })
        .unwrap();
    }

    fn zero(b: &Backend, offset: u64, len: u64) {
        b.execute(&IoOp::Zero { offset, len }).unwrap();
    }

    fn read(b: &Backend, offset: u64, len: u32) -> Bytes {
        b.execute(&IoOp::Read { offset, len }).unwrap()
    }

    #[test]
    fn ram_round_trip_and_zero() {
        let (b, bs) = Backend::open(&DeviceSpec::Ram {
            size: 8192,
            block_size: 512,
        })
        .unwrap();
        assert_eq!(bs, 512);
        write(&b, 512, vec![7u8; 1024]);
        let r = read(&b, 512, 1024);
        assert!(r.iter().all(|x| *x == 7));
        zero(&b, 512, 512);
        let r = read(&b, 512, 1024);
        assert!(r[..512].iter().all(|x| *x == 0) && r[512..].iter().all(|x| *x == 7));
        assert!(b
            .execute(&IoOp::Read {
                offset: 8192,
                len: 1
            })
            .is_err());
    }

    #[test]
    fn file_round_trip_flush_fua() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(1 << 20).unwrap();
        let (b, _) = Backend::open(&DeviceSpec::File {
            path: f.path().to_path_buf(),
        })
        .unwrap();
        assert_eq!(b.size(), 1 << 20);
        write(&b, 4096, vec![9u8; 4096]);
        b.execute(&IoOp::Flush).unwrap();
        let r = read(&b, 4096, 4096);
        assert!(r.iter().all(|x| *x == 9));
        zero(&b, 4096, 4096);
        let r = read(&b, 4096, 8);
        assert_eq!(&r[..], &[0u8; 8]);
    }
}
