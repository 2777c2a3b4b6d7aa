//! Where RAM namespaces keep their data: 64 KiB page-aligned slots cut
//! from large anonymous mappings, one pool for every RAM namespace of the
//! process.
//!
//! Why not the heap: a 64 KiB heap allocation starts 16 bytes past a page
//! boundary (the allocator's header), so every 4 KiB block of it spans two
//! pages, and a random read of a 1 GiB namespace took two TLB misses (in a
//! VM, two nested page walks) before the kernel could copy it into the
//! socket. A random 4 KiB copy out of 1 GiB on the development VM: 1,490 ns
//! from heap chunks, 1,160 from page-aligned memory, 870 with huge pages, 90
//! from a hot buffer.
//!
//! Huge pages: the mappings are aligned to 2 MiB, so with transparent huge
//! pages set to `always` they get them, but they are not advised
//! `MADV_HUGEPAGE`: the first write into each 2 MiB stretch would then make
//! the kernel clear all of it, and on the development VM the first touch of
//! a fresh GiB took 2.2 s with huge pages against 0.7 s with 4 KiB pages
//! (0.23 and 0.52 s for memory just freed by the same process) — random writes into a fresh namespace
//! fell from 87k-170k to 5k-18k IOPS for the seconds it took, a stall of
//! milliseconds for the write that met a fresh stretch. Worth it only where
//! huge pages are cheap to fault: there, set them to `always`. A namespace
//! configured with `"populate": "1"` pays that cost once, at creation: its
//! slots come from a mapping of its own, advised `MADV_HUGEPAGE` and faulted
//! in at once ([`populated`]).
//!
//! Without `unsafe`: a mapping, once made, is never unmapped. It is leaked
//! (`Box::leak`) into one `&'static mut [u8]` and split into disjoint
//! `&'static mut [u8]` slots, so the borrow checker itself proves that no
//! two owners ever reach the same bytes. A [`Slot`] has one owner at a time;
//! dropped, it goes back to the pool for the next chunk that needs one.
//!
//! Memory: nothing is resident until written, page by page (a fresh slot is
//! zeroes from the kernel; a reused one is cleared when a chunk needs
//! zeroes). The pool holds at most as many slots as were ever in use at
//! once (chunks holding data in all RAM namespaces, plus old chunks that a
//! queued reply kept while a write copied them); slots of deallocated chunks
//! and removed namespaces stay in the pool for reuse and are not given back
//! to the system, as memory a heap allocator keeps. A mapping that cannot be
//! made is an error for the write that needed it, not an abort.

use std::sync::{Mutex, MutexGuard};

use memmap2::{Advice, MmapOptions};

/// Size of a slot: a chunk of a RAM namespace.
pub const SLOT: usize = 64 * 1024;

/// Mappings are aligned to this (the huge page size of x86-64, and of arm64
/// with 4 KiB pages), so that huge pages can back them when the system
/// gives them to every mapping.
const HUGE: usize = 2 << 20;

/// Bytes per mapping: 512 slots.
const SEGMENT: usize = 32 << 20;

struct Pool {
    /// Slots given back (their contents are stale).
    free: Vec<&'static mut [u8]>,
    /// The never-used rest of the newest mapping (zeroes, maybe not resident).
    fresh: &'static mut [u8],
    /// Bytes mapped so far.
    mapped: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: Vec::new(),
    fresh: &mut [],
    mapped: 0,
});

fn pool() -> MutexGuard<'static, Pool> {
    // Every update of the pool is a single push, pop or split: a panic
    // elsewhere cannot leave it inconsistent.
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One 64 KiB slot of the pool, owned alone.
pub struct Slot {
    mem: &'static mut [u8],
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slot({:p})", self.mem.as_ptr())
    }
}

impl Slot {
    /// A slot of zeroes.
    pub fn zeroed() -> std::io::Result<Slot> {
        let (s, stale) = Self::take()?;
        if stale {
            s.mem.fill(0);
        }
        Ok(s)
    }

    /// A slot with any contents (for a caller that overwrites all of it).
    pub fn any() -> std::io::Result<Slot> {
        Self::take().map(|(s, _)| s)
    }

    /// A slot, and whether it holds stale data (else zeroes).
    fn take() -> std::io::Result<(Slot, bool)> {
        let mut p = pool();
        if let Some(mem) = p.free.pop() {
            return Ok((Slot { mem }, true));
        }
        if p.fresh.is_empty() {
            p.fresh = map_segment()?;
            p.mapped += SEGMENT;
        }
        let rest = std::mem::take(&mut p.fresh);
        let (mem, rest) = rest.split_at_mut(SLOT);
        p.fresh = rest;
        Ok((Slot { mem }, false))
    }

    pub fn bytes(&self) -> &[u8] {
        self.mem
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.mem
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mem = std::mem::take(&mut self.mem);
        if !mem.is_empty() {
            pool().free.push(mem);
        }
    }
}

/// Map one segment: `SEGMENT` bytes aligned to `HUGE`, leaked.
fn map_segment() -> std::io::Result<&'static mut [u8]> {
    let m = MmapOptions::new().len(SEGMENT + HUGE).map_anon()?;
    let m = Box::leak(Box::new(m));
    let off = (HUGE - (m.as_ptr() as usize) % HUGE) % HUGE;
    Ok(&mut m[off..off + SEGMENT])
}

/// Bytes mapped for slots so far (virtual; resident only where written),
/// populated slots included.
pub fn mapped_bytes() -> usize {
    pool().mapped
}

/// `n` slots of zeroes made resident now, for a namespace that asked for
/// all its memory up front (`populate`): one mapping of its own, aligned to
/// 2 MiB, advised `MADV_HUGEPAGE` and faulted in at once
/// (`MADV_POPULATE_WRITE`; on kernels older than 5.14, by writing to every
/// page), so that reads walk one level of page table less and miss the TLB
/// less (on the development VM no read gain was resolvable once reads are
/// warmed per batch: docs/PERFORMANCE.md), and first writes fault nothing
/// in (a fresh huge page costs milliseconds here, which made huge pages on
/// demand a loss).
/// Refused when the system's available memory (`MemAvailable`) cannot hold
/// it. Dropped slots go back to the process's pool like any other.
pub fn populated(n: usize) -> std::io::Result<Vec<Slot>> {
    let len = n
        .checked_mul(SLOT)
        .map(|l| l.div_ceil(HUGE) * HUGE)
        .ok_or_else(|| std::io::Error::other("size too large"))?;
    if let Some(avail) = mem_available() {
        if len as u64 > avail {
            return Err(std::io::Error::other(format!(
                "populating {len} bytes needs more than the {avail} bytes of memory available"
            )));
        }
    }
    let m = MmapOptions::new().len(len + HUGE).map_anon()?;
    let off = (HUGE - (m.as_ptr() as usize) % HUGE) % HUGE;
    // Advice only: without transparent huge pages the slots are 4 KiB
    // pages, still all resident.
    let _ = m.advise_range(Advice::HugePage, off, len);
    // EINVAL: a kernel without MADV_POPULATE_WRITE (before 5.14), so the
    // pages are written below; any other error (no memory) is the caller's,
    // and the mapping is unmapped.
    const EINVAL: i32 = 22;
    let faulted = match m.advise_range(Advice::PopulateWrite, off, len) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(EINVAL) => false,
        Err(e) => return Err(e),
    };
    let m = Box::leak(Box::new(m));
    let mem = &mut m[off..off + len];
    if !faulted {
        for page in mem.chunks_mut(4096) {
            page[0] = 0;
        }
    }
    pool().mapped += len;
    Ok(mem
        .chunks_mut(SLOT)
        .take(n)
        .map(|mem| Slot { mem })
        .collect())
}

/// `MemAvailable` of /proc/meminfo, in bytes (None where there is none).
fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_disjoint_and_reused_zeroed() {
        let mut a = Slot::zeroed().unwrap();
        let b = Slot::zeroed().unwrap();
        assert_eq!(a.bytes().len(), SLOT);
        for s in [&a, &b] {
            assert_eq!(s.bytes().as_ptr() as usize % 4096, 0, "page-aligned");
            assert!(s.bytes().iter().all(|x| *x == 0));
        }
        let (pa, pb) = (a.bytes().as_ptr() as usize, b.bytes().as_ptr() as usize);
        assert!(pa + SLOT <= pb || pb + SLOT <= pa, "disjoint");
        a.bytes_mut().fill(0xa5);
        drop(a);
        // Stale slots come back zeroed when zeroes are asked for (other
        // tests share the pool, so take slots until one is stale or fresh).
        let held: Vec<Slot> = (0..4).map(|_| Slot::zeroed().unwrap()).collect();
        for s in &held {
            assert!(s.bytes().iter().all(|x| *x == 0));
        }
        assert!(mapped_bytes() >= SEGMENT);
    }
}
