//! RAM namespaces whose reads copy nothing.
//!
//! Design: the data is kept in 64 KiB chunks, each a page-aligned slot of
//! the process's pool of anonymous memory ([`super::slots`]) behind
//! its own (uncontended) mutex. A read takes a view of the chunk (a
//! [`Bytes`] owning a reference to the slot, made by the first read after a
//! write) and clones a slice of it (a reference count, no copy); the reply is
//! written to the socket straight from it. A write never changes bytes a
//! reply may still hold: it drops the chunk's view and updates the slot in
//! place only when nobody else holds it (`Arc::get_mut`), and otherwise
//! copies the slot into a new one (old contents plus the written bytes) and
//! swaps that in, all under the chunk's mutex. So:
//! - a read sees each chunk wholly before or wholly after any write; every
//!   logical block lies inside one chunk (block sizes are 512 or 4096), so
//!   no block is ever seen torn;
//! - an acknowledged write is visible to every later read (the update
//!   happens before the completion is queued);
//! - a reply still queued for a slow peer keeps the old slot alive by
//!   itself, without blocking writers;
//! - never-written (or deallocated) chunks have no slot and read as a shared
//!   static chunk of zeroes, so a 1 GiB namespace costs memory only for
//!   what was written — unless it was created populated
//!   ([`RamStore::populated`]: every chunk has its slot of zeroes from the
//!   start, resident, in huge pages where the system gives them);
//! - the data of small reads is loaded into the cache by the transmit
//!   buffer, a batch of replies at a time, just before the socket write
//!   ([`warm`]), not here.
//!
//! - which chunks hold data is also kept in a bitmap (one bit per chunk,
//!   2 KiB per GiB, so it stays in cache), set and cleared under the
//!   chunk's mutex after the swap: a read of a chunk whose bit is clear
//!   returns zeroes without touching the chunk's mutex (a cache miss on a
//!   table of 16384 mutexes per GiB, and an atomic read-modify-write, was
//!   a tenth of the target's CPU per random 4 KiB read). A read racing a
//!   write of that chunk sees it before the write, as it may.
//!
//! The price: one small mutex per 64 KiB (48 bytes; small chunks would make
//! the table big enough that looking a chunk up misses the caches on every
//! random read), a 64 KiB copy for a write that races a reply holding the
//! same chunk (rare: replies leave quickly), a small allocation for the view
//! at the first read of a chunk after a write (none for writes, none for
//! further reads), and a 64 KiB slot for the first write into a chunk
//! (kept in the pool when the chunk is deallocated, see [`super::slots`]).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};

use super::slots::{Slot, SLOT};

/// Chunk size: a multiple of every supported block size.
pub const CHUNK: usize = SLOT;

static ZEROES: [u8; CHUNK] = [0; CHUNK];

/// Slices a read hands out up to this size are loaded into the cache before
/// they are written to the socket ([`warm`]).
const WARM_MAX: usize = 16 * 1024;

/// Whether a slice a read handed out is worth loading into the cache
/// before the socket write copies it ([`warm`]): small (large reads are
/// left to the hardware prefetcher: their data would not stay in cache
/// until written) and not the shared chunk of zeroes (always hot).
pub fn is_cold(p: &[u8]) -> bool {
    p.len() <= WARM_MAX && !ZEROES.as_ptr_range().contains(&p.as_ptr())
}

/// Load one byte of every cache line of `parts` (at most [`WARM_BATCH`] at
/// a time), line by line across them: the loads are independent and touch
/// every page at once, so the processor walks the page tables of all the
/// parts and fetches their lines from memory in parallel; the kernel's copy
/// into the socket, a moment later, finds them in cache instead of missing
/// line after line. Done per batch of replies, just before the write,
/// rather than per read, where each read's page walk and 64 misses came one
/// after the other. CPU per random 4 KiB read of a written 1 GiB store
/// (`read_into`, then a vectored write of the batch into loopback TCP; the
/// development VM, median of 11 interleaved rounds, load ~7), batches of 8:
/// loaded per read 2,068 / 2,173 ns, not loaded 1,847 / 2,024, loaded per
/// batch **1,445 / 1,524**; batches of 4, 16, 32 alike.
pub fn warm(parts: &[&[u8]]) {
    let longest = parts.iter().map(|p| p.len()).max().unwrap_or(0);
    let mut acc = 0u8;
    for i in (0..longest).step_by(64) {
        for p in parts {
            if let Some(b) = p.get(i) {
                acc ^= *b;
            }
        }
    }
    std::hint::black_box(acc);
}

/// Most slices [`warm`] loads at once.
pub const WARM_BATCH: usize = 16;

/// What a read hands out: the first `len` bytes of a chunk's slot.
struct View {
    slot: Arc<Slot>,
    len: usize,
}

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        &self.slot.bytes()[..self.len]
    }
}

/// One chunk: no slot = zeroes.
#[derive(Debug, Default)]
struct Chunk {
    slot: Option<Arc<Slot>>,
    /// A view of `slot` for reads to slice, made by the first read after a
    /// write (a write drops it, so that it may find the slot unshared).
    view: Option<Bytes>,
}

/// The storage of a RAM namespace.
#[derive(Debug)]
pub struct RamStore {
    size: u64,
    chunks: Box<[Mutex<Chunk>]>,
    /// Bit `i % 64` of word `i / 64`: chunk `i` is not empty (changed only
    /// under the chunk's mutex).
    filled: Box<[AtomicU64]>,
    /// All chunks got a slot at creation ([`RamStore::populated`]); a chunk
    /// zeroed whole keeps its slot (cleared) unless a reply holds it.
    populated: bool,
}

fn lock(m: &Mutex<Chunk>) -> MutexGuard<'_, Chunk> {
    // A panic cannot leave a chunk half-written (updates of the slot are
    // block copies, swaps are whole), so a poisoned lock still guards
    // consistent data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RamStore {
    pub fn new(size: u64) -> std::io::Result<Self> {
        let n = usize::try_from(size.div_ceil(CHUNK as u64))
            .map_err(|_| std::io::Error::other("size too large"))?;
        let mut v = Vec::new();
        v.try_reserve_exact(n)
            .map_err(|_| std::io::Error::other("cannot allocate the chunk table"))?;
        v.resize_with(n, || Mutex::new(Chunk::default()));
        let filled = (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        Ok(Self {
            size,
            chunks: v.into_boxed_slice(),
            filled,
            populated: false,
        })
    }

    /// A store whose memory is all allocated and made resident now, in huge
    /// pages where the system gives them ([`super::slots::populated`]):
    /// every chunk gets its slot of zeroes at once, so no write waits for
    /// memory and random reads miss the TLB less. It reads zeroes until
    /// written, as any store (a chunk whose bit in `filled` is clear reads
    /// as zeroes; its slot, if it has one, holds zeroes).
    pub fn populated(size: u64) -> std::io::Result<Self> {
        let n = usize::try_from(size.div_ceil(CHUNK as u64))
            .map_err(|_| std::io::Error::other("size too large"))?;
        let slots = super::slots::populated(n)?;
        let mut s = Self::new(size)?;
        for (c, slot) in s.chunks.iter_mut().zip(slots) {
            c.get_mut().unwrap_or_else(|e| e.into_inner()).slot = Some(Arc::new(slot));
        }
        s.populated = true;
        Ok(s)
    }

    fn is_filled(&self, i: usize) -> bool {
        self.filled[i / 64].load(Ordering::Acquire) & (1 << (i % 64)) != 0
    }

    /// Record whether chunk `i` holds data (the caller holds its mutex).
    fn set_filled(&self, i: usize, on: bool) {
        if self.is_filled(i) != on {
            let (w, bit) = (&self.filled[i / 64], 1u64 << (i % 64));
            if on {
                w.fetch_or(bit, Ordering::Release);
            } else {
                w.fetch_and(!bit, Ordering::Release);
            }
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    fn chunk_len(&self, i: usize) -> usize {
        (self.size - (i * CHUNK) as u64).min(CHUNK as u64) as usize
    }

    fn check(&self, offset: u64, len: u64) -> std::io::Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(std::io::Error::other(
                "range beyond the end of the namespace",
            )),
        }
    }

    /// Split `offset..offset+len` into (chunk index, range inside the chunk).
    fn pieces(offset: u64, len: u64) -> impl Iterator<Item = (usize, Range<usize>)> {
        let end = offset + len;
        let mut pos = offset;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let i = (pos / CHUNK as u64) as usize;
            let start = (pos % CHUNK as u64) as usize;
            let n = (end - pos).min((CHUNK - start) as u64) as usize;
            pos += n as u64;
            Some((i, start..start + n))
        })
    }

    /// Read `len` bytes at `offset` as slices of the chunks (no copy),
    /// appended to `out` in order.
    pub fn read_into(&self, offset: u64, len: u64, out: &mut Vec<Bytes>) -> std::io::Result<()> {
        self.check(offset, len)?;
        for (i, r) in Self::pieces(offset, len) {
            let part = if self.is_filled(i) {
                let len = self.chunk_len(i);
                let mut c = lock(&self.chunks[i]);
                let c = &mut *c;
                match (&c.view, &c.slot) {
                    (Some(v), _) => Some(v.slice(r.clone())),
                    (None, Some(slot)) => {
                        let v = Bytes::from_owner(View {
                            slot: slot.clone(),
                            len,
                        });
                        let part = v.slice(r.clone());
                        c.view = Some(v);
                        Some(part)
                    }
                    (None, None) => None,
                }
            } else {
                None
            };
            out.push(part.unwrap_or_else(|| Bytes::from_static(&ZEROES[r])));
        }
        Ok(())
    }

    /// Bring the table entry of the chunk at `offset` into cache (a plain
    /// load of a field beside the chunk's lock; no lock taken).
    pub fn prefetch(&self, offset: u64) {
        let i = offset / CHUNK as u64;
        if let Some(c) = self.chunks.get(i as usize) {
            if self.is_filled(i as usize) {
                std::hint::black_box(c.is_poisoned());
            }
        }
    }

    /// Read into one contiguous buffer (copies; for callers that need one slice).
    pub fn read(&self, offset: u64, len: u64) -> std::io::Result<Bytes> {
        let mut parts = Vec::new();
        self.read_into(offset, len, &mut parts)?;
        if parts.len() == 1 {
            return Ok(parts.pop().unwrap_or_default());
        }
        let mut b = BytesMut::with_capacity(len as usize);
        for p in parts {
            b.extend_from_slice(&p);
        }
        Ok(b.freeze())
    }

    /// Write `data` at `offset` (`None` writes zeroes of length `len`).
    pub fn write(&self, offset: u64, data: Option<&[u8]>, len: u64) -> std::io::Result<()> {
        self.check(offset, len)?;
        let mut done = 0usize;
        for (i, r) in Self::pieces(offset, len) {
            let src = data.map(|d| &d[done..done + r.len()]);
            done += r.len();
            let clen = self.chunk_len(i);
            let mut g = lock(&self.chunks[i]);
            if src.is_none() && (r.len() == clen || g.slot.is_none()) {
                // Zeroes: drop the chunk; a populated store keeps its slot
                // (cleared, if it held data) unless a reply holds it.
                g.view = None;
                let filled = self.is_filled(i);
                match g.slot.as_mut().filter(|_| self.populated) {
                    Some(a) => match Arc::get_mut(a) {
                        Some(s) if filled => s.bytes_mut()[..clen].fill(0),
                        Some(_) => {}
                        None => *g = Chunk::default(),
                    },
                    None => *g = Chunk::default(),
                }
                self.set_filled(i, false);
                continue;
            }
            let apply = |m: &mut [u8]| match src {
                Some(s) => m[r.clone()].copy_from_slice(s),
                None => m[r.clone()].fill(0),
            };
            // Drop the view: if no reply holds a slice of it, the slot is
            // ours alone and is written in place.
            g.view = None;
            let new = match g.slot.as_mut() {
                Some(a) => match Arc::get_mut(a) {
                    Some(s) => {
                        apply(s.bytes_mut());
                        None
                    }
                    // A reply holds the old contents: write a copy.
                    None => {
                        let mut s = Slot::any()?;
                        s.bytes_mut()[..clen].copy_from_slice(&a.bytes()[..clen]);
                        Some(s)
                    }
                },
                None => Some(Slot::zeroed()?),
            };
            if let Some(mut s) = new {
                apply(s.bytes_mut());
                g.slot = Some(Arc::new(s));
            }
            self.set_filled(i, true);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
