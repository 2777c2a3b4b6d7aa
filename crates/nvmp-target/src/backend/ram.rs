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
//!   what was written.
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

/// Reads up to this size load their data once before handing it out ([`touch`]).
const TOUCH_MAX: u64 = 16 * 1024;

/// Load one byte of every cache line of `p`. The loads are independent, so
/// the processor fetches the lines from memory in parallel; the kernel's
/// copy into the socket, a moment later, then finds them in cache instead
/// of missing line after line (a random 4 KiB read of written data cost the
/// target about a microsecond more than one of a zero chunk, most of it in
/// that copy; with this, 2.28 -> 2.22 us of target CPU and 183k -> 233k
/// IOPS, median of 5 interleaved rounds). Large reads are left to the
/// hardware prefetcher: their data would not stay in cache until written.
fn touch(p: &[u8]) {
    let mut acc = 0u8;
    for i in (0..p.len()).step_by(64) {
        acc ^= p[i];
    }
    std::hint::black_box(acc);
}

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
        })
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
            if let (Some(p), true) = (&part, len <= TOUCH_MAX) {
                touch(p);
            }
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
                *g = Chunk::default(); // zeroes: drop the chunk
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
mod tests {
    use super::*;

    fn read(s: &RamStore, off: u64, len: u64) -> Vec<u8> {
        s.read(off, len).unwrap().to_vec()
    }

    #[test]
    fn chunks_straddled_zeroes_and_held_replies() {
        let c = CHUNK as u64;
        let size = 3 * c + 512;
        let s = RamStore::new(size).unwrap();
        assert_eq!(read(&s, 100, 2 * c), vec![0u8; 2 * CHUNK]);
        // 7s over [1000, 2c + 808): three chunks.
        let end7 = 2 * c + 808;
        s.write(1000, Some(&vec![7u8; (end7 - 1000) as usize]), end7 - 1000)
            .unwrap();
        let mut held = Vec::new();
        s.read_into(0, size, &mut held).unwrap();
        assert_eq!(held.len(), 4);
        // A write over a chunk a reply still holds leaves the reply intact.
        s.write(c, Some(&vec![9u8; CHUNK]), c).unwrap();
        assert!(held[1].iter().all(|b| *b == 7));
        let now = read(&s, 0, size);
        let (c, e) = (c as usize, end7 as usize);
        assert!(now[..1000].iter().all(|b| *b == 0));
        assert!(now[1000..c].iter().all(|b| *b == 7));
        assert!(now[c..2 * c].iter().all(|b| *b == 9));
        assert!(now[2 * c..e].iter().all(|b| *b == 7));
        assert!(now[e..].iter().all(|b| *b == 0));
        // A write when nobody holds the chunk (in place), zeroing part of a
        // chunk and a whole chunk, the short last chunk.
        drop(held);
        s.write(c as u64 + 5, Some(&[3u8; 5]), 5).unwrap();
        s.write(c as u64 + 10, None, 20).unwrap();
        s.write(2 * c as u64, None, c as u64).unwrap();
        s.write(3 * c as u64, Some(&[1u8; 512]), 512).unwrap();
        let now = read(&s, 0, size);
        assert_eq!(&now[c + 4..c + 11], &[9, 3, 3, 3, 3, 3, 0]);
        assert!(now[c + 10..c + 30].iter().all(|b| *b == 0));
        assert_eq!(now[c + 30], 9);
        assert!(now[2 * c..3 * c].iter().all(|b| *b == 0));
        assert!(now[3 * c..].iter().all(|b| *b == 1));
        assert!(s.read(3 * c as u64, 513).is_err());
        assert!(s.write(u64::MAX, None, 2).is_err());
        // The map of filled chunks follows: chunk 2 was zeroed whole.
        assert_eq!(
            (0..4).map(|i| s.is_filled(i)).collect::<Vec<_>>(),
            [true, true, false, true]
        );
    }

    /// The filled map over several words: a chunk is read through its
    /// mutex only while it holds data, and reads zeroes once zeroed whole
    /// or partly back to all zeroes in place.
    #[test]
    fn filled_map_follows_writes_and_zeroing() {
        let c = CHUNK as u64;
        let s = RamStore::new(130 * c).unwrap();
        assert_eq!(s.filled.len(), 3);
        for i in [0u64, 63, 64, 129] {
            s.write(i * c + 4096, Some(&[i as u8 + 1; 512]), 512)
                .unwrap();
        }
        let filled: Vec<usize> = (0..130).filter(|i| s.is_filled(*i)).collect();
        assert_eq!(filled, [0, 63, 64, 129]);
        assert_eq!(read(&s, 129 * c + 4096, 512), vec![130u8; 512]);
        assert_eq!(read(&s, 128 * c, 512), vec![0u8; 512]);
        // Zeroing the written range keeps the chunk (it is not zeroed whole).
        s.write(129 * c + 4096, None, 512).unwrap();
        assert!(s.is_filled(129));
        assert_eq!(read(&s, 129 * c, c), vec![0u8; CHUNK]);
        s.write(64 * c, None, c).unwrap();
        assert!(!s.is_filled(64));
        assert_eq!(read(&s, 64 * c + 4096, 512), vec![0u8; 512]);
        assert!(s.is_filled(63));
        // Prefetching looks only (any offset, filled or not, or past the end).
        for off in [0, 63 * c, 64 * c, 130 * c, u64::MAX] {
            s.prefetch(off);
        }
    }

    /// A write goes into the chunk's slot in place when no reply holds it,
    /// and into a copy when one does; the reply keeps what it read.
    #[test]
    fn writes_in_place_unless_a_reply_holds_the_chunk() {
        let c = CHUNK as u64;
        let s = RamStore::new(2 * c).unwrap();
        s.write(0, Some(&[1; 4096]), 4096).unwrap();
        let first = s.read(0, 4096).unwrap().as_ptr();
        assert_eq!(first as usize % 4096, 0, "blocks are page-aligned");
        s.write(4096, Some(&[2; 4096]), 4096).unwrap();
        let held = s.read(0, 8192).unwrap();
        assert_eq!(held.as_ptr(), first, "written in place");
        s.write(0, Some(&[3; 512]), 512).unwrap();
        assert!(held[..4096].iter().all(|b| *b == 1));
        assert!(held[4096..].iter().all(|b| *b == 2));
        let now = s.read(0, 8192).unwrap();
        assert_ne!(now.as_ptr(), first, "copied: a reply held the slot");
        assert!(now[..512].iter().all(|b| *b == 3));
        assert!(now[512..4096].iter().all(|b| *b == 1));
        assert!(now[4096..].iter().all(|b| *b == 2));
        drop((held, now));
        // Nobody holds the new slot now: in place again.
        let p = s.read(0, 512).unwrap().as_ptr();
        s.write(8192, Some(&[4; 512]), 512).unwrap();
        assert_eq!(s.read(0, 512).unwrap().as_ptr(), p);
    }

    /// Slots of deallocated chunks go back to the pool with their old data;
    /// a chunk written for the first time reads zeroes around the write
    /// whichever slot it gets.
    #[test]
    fn reused_slots_read_as_zeroes() {
        let c = CHUNK as u64;
        let s = RamStore::new(64 * c).unwrap();
        for k in 0..32 {
            s.write(k * c, Some(&[0xee; CHUNK]), c).unwrap();
        }
        s.write(0, None, 32 * c).unwrap();
        assert!((0..32).all(|i| !s.is_filled(i)));
        assert_eq!(read(&s, 0, 32 * c), vec![0u8; 32 * CHUNK]);
        for k in 32..64 {
            s.write(k * c + 512, Some(&[7; 512]), 512).unwrap();
        }
        for k in 32..64 {
            let d = read(&s, k * c, c);
            assert!(d[..512].iter().all(|b| *b == 0), "chunk {k}");
            assert!(d[512..1024].iter().all(|b| *b == 7), "chunk {k}");
            assert!(d[1024..].iter().all(|b| *b == 0), "chunk {k}");
        }
    }

    fn rss_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    /// Memory only for what was written: 64 blocks spread over 1 GiB take
    /// 64 slots (4 MiB, or the few huge pages they share), not the GiB.
    #[test]
    fn a_gib_written_in_few_places_costs_little_memory() {
        let before = rss_bytes();
        let s = RamStore::new(1 << 30).unwrap();
        let stride = 16u64 << 20;
        for k in 0..64u64 {
            s.write(k * stride + 4096, Some(&[k as u8 + 1; 4096]), 4096)
                .unwrap();
        }
        let grown = rss_bytes().saturating_sub(before);
        // The chunk table (48 B x 16384) plus 64 slots, with room for other
        // tests of this process allocating meanwhile.
        assert!(grown < 48 << 20, "RSS grew by {grown} bytes");
        for k in [0u64, 31, 63] {
            assert_eq!(
                read(&s, k * stride, 8192)[4096..],
                vec![k as u8 + 1; 4096][..]
            );
        }
        assert_eq!(read(&s, 8 << 20, 4096), vec![0u8; 4096]);
    }

    /// Reads racing writes: every 512-byte block of every reply is wholly
    /// one write's (or zeroes), and a reply held across later writes keeps
    /// the bytes it had when read.
    #[test]
    fn reads_during_writes_see_whole_blocks() {
        use std::sync::atomic::AtomicBool;
        let c = CHUNK as u64;
        let s = Arc::new(RamStore::new(4 * c).unwrap());
        let done = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ w;
                    for n in 0..3000u64 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // 1..16 blocks of 512 at any block of the namespace,
                        // crossing chunk boundaries too; one value each.
                        let blocks = 1 + x % 16;
                        let off = (x >> 8) % (4 * c / 512 - blocks) * 512;
                        let v = (2 * n + w) as u8 | 1;
                        let data = vec![v; (blocks * 512) as usize];
                        s.write(off, Some(&data), blocks * 512).unwrap();
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..2u64)
            .map(|r| {
                let (s, done) = (s.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut held: std::collections::VecDeque<(Bytes, Vec<u8>)> = Default::default();
                    let mut reads = 0u64;
                    let mut off = r * 4096;
                    while !done.load(Ordering::Acquire) || reads < 100 {
                        off = (off + 7 * 4096 + 512) % (4 * c - 16384);
                        let mut parts = Vec::new();
                        s.read_into(off, 16384, &mut parts).unwrap();
                        for p in &parts {
                            for b in p.chunks(512) {
                                assert!(b.iter().all(|x| *x == b[0]), "torn block");
                            }
                            held.push_back((p.clone(), p.to_vec()));
                        }
                        while held.len() > 8 {
                            let (b, copy) = held.pop_front().unwrap();
                            assert_eq!(&b[..], &copy[..], "a held reply changed");
                        }
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
        for r in readers {
            assert!(r.join().unwrap() >= 100);
        }
    }
}
