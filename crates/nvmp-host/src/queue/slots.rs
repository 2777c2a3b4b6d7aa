//! The bounded table of in-flight commands of one queue.
//!
//! A command identifier (CID) encodes the slot index in its low
//! [`SLOT_BITS`] bits and a generation counter in the high bits. The
//! generation is bumped every time a slot is freed, so a late or duplicated
//! completion for a command that already finished cannot complete the
//! command that now occupies the same slot: its CID no longer matches.

/// Bits of a CID that select the slot (queue sizes are at most 1024).
pub const SLOT_BITS: u32 = 10;
const SLOT_MASK: u16 = (1 << SLOT_BITS) - 1;
/// Generations wrap at 2^(16 - SLOT_BITS) = 64.
const GEN_MAX: u16 = 1 << (16 - SLOT_BITS);

/// A fixed-size slot table. `T` is the in-flight command state.
#[derive(Debug)]
pub struct Slots<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u16>,
}

#[derive(Debug)]
struct Entry<T> {
    gen: u16,
    value: Option<T>,
}

impl<T> Slots<T> {
    /// A table of `n` slots (1..=1024).
    pub fn new(n: u16) -> Self {
        let n = n.clamp(1, 1 << SLOT_BITS);
        let entries = (0..n)
            .map(|_| Entry {
                gen: 0,
                value: None,
            })
            .collect();
        // Pop from the end: hand out slot 0 first.
        let free = (0..n).rev().collect();
        Self { entries, free }
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }
    pub fn in_use(&self) -> usize {
        self.entries.len() - self.free.len()
    }
    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Store `value` in a free slot and return its CID, or give it back when full.
    pub fn insert(&mut self, value: T) -> Result<u16, T> {
        let Some(idx) = self.free.pop() else {
            return Err(value);
        };
        let e = &mut self.entries[idx as usize];
        e.value = Some(value);
        Ok((e.gen << SLOT_BITS) | idx)
    }

    fn index(&self, cid: u16) -> Option<usize> {
        let idx = (cid & SLOT_MASK) as usize;
        let e = self.entries.get(idx)?;
        (e.value.is_some() && e.gen == cid >> SLOT_BITS).then_some(idx)
    }

    pub fn get_mut(&mut self, cid: u16) -> Option<&mut T> {
        let idx = self.index(cid)?;
        self.entries[idx].value.as_mut()
    }

    /// Free the slot of `cid` (if it is current) and return its value.
    pub fn remove(&mut self, cid: u16) -> Option<T> {
        let idx = self.index(cid)?;
        let e = &mut self.entries[idx];
        e.gen = (e.gen + 1) % GEN_MAX;
        self.free.push(idx as u16);
        e.value.take()
    }

    /// CIDs of all occupied slots.
    pub fn cids(&self) -> impl Iterator<Item = u16> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.value.is_some())
            .map(|(i, e)| (e.gen << SLOT_BITS) | i as u16)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u16, &T)> + '_ {
        self.entries.iter().enumerate().filter_map(|(i, e)| {
            e.value
                .as_ref()
                .map(|v| ((e.gen << SLOT_BITS) | i as u16, v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_cid_does_not_match_reused_slot() {
        let mut s = Slots::new(2);
        let a = s.insert("a").unwrap();
        let b = s.insert("b").unwrap();
        assert!(s.insert("c").is_err());
        assert_eq!(s.remove(a), Some("a"));
        let c = s.insert("c").unwrap();
        assert_eq!(c & SLOT_MASK, a & SLOT_MASK, "slot reused");
        assert_ne!(c, a, "generation differs");
        assert_eq!(s.remove(a), None, "stale CID");
        assert_eq!(s.get_mut(c).copied(), Some("c"));
        assert_eq!(s.in_use(), 2);
        assert_eq!(s.remove(b), Some("b"));
        assert_eq!(s.cids().collect::<Vec<_>>(), vec![c]);
    }

    #[test]
    fn generation_wraps() {
        let mut s = Slots::new(1);
        let mut last = None;
        for _ in 0..200 {
            let c = s.insert(()).unwrap();
            assert_ne!(Some(c), last);
            last = Some(c);
            s.remove(c).unwrap();
        }
    }
}
