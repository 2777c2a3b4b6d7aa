//! Tests of the RAM store (moved out of ram.rs to keep it short).

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

/// A populated store: every chunk has its slot from the start, reads
/// zeroes until written and what was written after, keeps a chunk's
/// slot (cleared) when it is zeroed whole, and gives a held reply its
/// own copy as any store.
#[test]
fn a_populated_store_reads_back_writes_and_zeroes_elsewhere() {
    let c = CHUNK as u64;
    let s = RamStore::populated(8 * c + 4096).unwrap();
    assert!(s.populated);
    let slots: Vec<*const u8> = (0..9)
        .map(|i| lock(&s.chunks[i]).slot.as_ref().unwrap().bytes().as_ptr())
        .collect();
    assert!(slots.iter().all(|p| (*p as usize).is_multiple_of(4096)));
    // Resident before anything was written: the whole mapping.
    let rss = mapping_rss_bytes(slots[0] as usize);
    assert!(rss >= 9 * CHUNK as u64, "resident: {rss} bytes");
    assert_eq!(read(&s, 0, 8 * c + 4096), vec![0u8; 8 * CHUNK + 4096]);
    assert!((0..9).all(|i| !s.is_filled(i)));
    // Written across a chunk boundary and into the short last chunk.
    s.write(c - 512, Some(&[5; 1024]), 1024).unwrap();
    s.write(8 * c + 512, Some(&[6; 512]), 512).unwrap();
    let d = read(&s, 0, 8 * c + 4096);
    assert!(d[..CHUNK - 512].iter().all(|b| *b == 0));
    assert!(d[CHUNK - 512..CHUNK + 512].iter().all(|b| *b == 5));
    assert!(d[CHUNK + 512..8 * CHUNK + 512].iter().all(|b| *b == 0));
    assert!(d[8 * CHUNK + 512..8 * CHUNK + 1024].iter().all(|b| *b == 6));
    assert!(d[8 * CHUNK + 1024..].iter().all(|b| *b == 0));
    // Written in place: the chunks kept the slots they were made with.
    let p = s.read(c, 512).unwrap().as_ptr();
    assert_eq!(p, slots[1]);
    // Zeroed whole: the chunk keeps its slot, cleared, and reads zeroes
    // (also once written again in part).
    s.write(c, None, c).unwrap();
    assert!(!s.is_filled(1));
    assert_eq!(read(&s, c, c), vec![0u8; CHUNK]);
    s.write(c + 4096, Some(&[7; 512]), 512).unwrap();
    let d = read(&s, c, c);
    assert_eq!(s.read(c, 512).unwrap().as_ptr(), slots[1]);
    assert!(d[..4096].iter().all(|b| *b == 0));
    assert!(d[4096..4608].iter().all(|b| *b == 7));
    assert!(d[4608..].iter().all(|b| *b == 0));
    // Zeroed whole while a reply holds it: the reply keeps its bytes,
    // the chunk reads zeroes, and a later write starts from zeroes.
    let held = s.read(0, 2 * c).unwrap();
    s.write(0, None, 2 * c).unwrap();
    assert!(held[CHUNK - 512..CHUNK].iter().all(|b| *b == 5));
    assert_eq!(held[CHUNK + 4096], 7);
    assert_eq!(read(&s, 0, 2 * c), vec![0u8; 2 * CHUNK]);
    s.write(100, Some(&[9; 3]), 3).unwrap();
    let d = read(&s, 0, c);
    assert!(d[..100].iter().all(|b| *b == 0) && d[103..].iter().all(|b| *b == 0));
    assert_eq!(&d[100..103], &[9, 9, 9]);
    drop(held);
}

/// Resident bytes of the mapping that holds `addr` (/proc/self/smaps).
fn mapping_rss_bytes(addr: usize) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                inside = (a..b).contains(&addr);
                continue;
            }
        }
        if inside && first == "Rss:" {
            let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            return kib * 1024;
        }
    }
    panic!("no mapping holds {addr:#x}")
}

/// Populating more than the system has is refused before anything is
/// mapped.
#[test]
fn populating_more_than_available_memory_is_refused() {
    let e = RamStore::populated(1 << 50).unwrap_err().to_string();
    assert!(e.contains("available"), "{e}");
}

/// Only small slices of written data are warmed: not the shared
/// chunk of zeroes, not large reads; warming reads only.
#[test]
fn warm_takes_small_slices_of_written_data() {
    let s = RamStore::new(4 * CHUNK as u64).unwrap();
    s.write(0, Some(&[3; CHUNK]), CHUNK as u64).unwrap();
    let written = s.read(4096, 4096).unwrap();
    let zeroes = s.read(CHUNK as u64 + 4096, 4096).unwrap();
    let large = s.read(0, 32768).unwrap();
    assert!(is_cold(&written));
    assert!(!is_cold(&zeroes) && !is_cold(&large));
    warm(&[&written, &zeroes, &large[..100], &[]]);
    warm(&[]);
    assert!(written.iter().all(|b| *b == 3));
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
