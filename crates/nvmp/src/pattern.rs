//! The verification pattern: every 512-byte sector carries a magic, its own
//! byte offset and a generation number, followed by pseudo-random words
//! derived from both. A read that returns another sector's data, stale data
//! (an older generation) or torn data is detected and described.

/// Granule of the pattern (the smallest NVMe LBA size).
pub const SECTOR: usize = 512;
const MAGIC: u64 = u64::from_le_bytes(*b"nvmppatt");

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fill_sector(s: &mut [u8], offset: u64, generation: u64) {
    s[0..8].copy_from_slice(&MAGIC.to_le_bytes());
    s[8..16].copy_from_slice(&offset.to_le_bytes());
    s[16..24].copy_from_slice(&generation.to_le_bytes());
    let mut state = offset ^ generation.rotate_left(32) ^ MAGIC;
    for w in s[24..].chunks_mut(8) {
        state = splitmix(state);
        let b = state.to_le_bytes();
        let n = w.len();
        w.copy_from_slice(&b[..n]);
    }
}

/// Fill `buf` (a multiple of 512 bytes) as the data at byte `offset`, generation `generation`.
pub fn fill(buf: &mut [u8], offset: u64, generation: u64) {
    for (i, s) in buf.chunks_mut(SECTOR).enumerate() {
        fill_sector(s, offset + (i * SECTOR) as u64, generation);
    }
}

/// A freshly allocated pattern buffer.
pub fn make(len: usize, offset: u64, generation: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill(&mut v, offset, generation);
    v
}

/// What a mismatching sector held instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Byte offset of the sector that is wrong.
    pub offset: u64,
    pub expected_generation: u64,
    /// What the sector says about itself (offset, generation), when it carries a pattern header.
    pub found: Option<(u64, u64)>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "data mismatch at byte offset {} (expected generation {}",
            self.offset, self.expected_generation
        )?;
        match self.found {
            Some((o, g)) if o != self.offset => {
                write!(f, ", found the data of offset {o} generation {g})")
            }
            Some((_, g)) if g != self.expected_generation => write!(f, ", found generation {g})"),
            Some(_) => write!(f, ", header matches but the payload is corrupt)"),
            None => write!(f, ", found no pattern: zeroes or foreign data)"),
        }
    }
}

/// Check `buf` against the pattern of `offset` / `generation`; the first bad sector is reported.
pub fn check(buf: &[u8], offset: u64, generation: u64) -> Result<(), Mismatch> {
    let mut want = [0u8; SECTOR];
    for (i, s) in buf.chunks(SECTOR).enumerate() {
        let off = offset + (i * SECTOR) as u64;
        fill_sector(&mut want[..s.len()], off, generation);
        if s != &want[..s.len()] {
            return Err(Mismatch {
                offset: off,
                expected_generation: generation,
                found: header(s),
            });
        }
    }
    Ok(())
}

/// Check data written by concurrent writers whose generations are not
/// tracked: every sector must carry its own offset and a valid payload for
/// whatever generation it claims.
pub fn check_any_generation(buf: &[u8], offset: u64) -> Result<(), Mismatch> {
    for (i, s) in buf.chunks(SECTOR).enumerate() {
        let off = offset + (i * SECTOR) as u64;
        match header(s) {
            Some((o, g)) if o == off => check(s, off, g)?,
            found => {
                return Err(Mismatch {
                    offset: off,
                    expected_generation: 0,
                    found,
                })
            }
        }
    }
    Ok(())
}

/// The (offset, generation) a sector claims, if it carries the pattern's magic.
pub fn header(s: &[u8]) -> Option<(u64, u64)> {
    if s.len() < 24 || s[0..8] != MAGIC.to_le_bytes() {
        return None;
    }
    let o = u64::from_le_bytes(s[8..16].try_into().ok()?);
    let g = u64::from_le_bytes(s[16..24].try_into().ok()?);
    Some((o, g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_detection() {
        let b = make(4096, 8192, 3);
        assert!(check(&b, 8192, 3).is_ok());
        let e = check(&b, 8192, 4).unwrap_err();
        assert_eq!(e.found, Some((8192, 3)));
        assert!(e.to_string().contains("found generation 3"));
        let e = check(&b, 4096, 3).unwrap_err();
        assert!(e.to_string().contains("offset 8192"));
        let mut t = b.clone();
        t[1000] ^= 1;
        let e = check(&t, 8192, 3).unwrap_err();
        assert_eq!(e.offset, 8192 + 512);
        assert!(e.to_string().contains("payload is corrupt"));
        let z = vec![0u8; 512];
        assert!(check(&z, 0, 1)
            .unwrap_err()
            .to_string()
            .contains("no pattern"));
    }

    #[test]
    fn any_generation() {
        let mut b = make(1024, 4096, 1);
        b[512..].copy_from_slice(&make(512, 4096 + 512, 7));
        assert!(check_any_generation(&b, 4096).is_ok());
        assert!(check_any_generation(&b, 0).is_err());
    }

    #[test]
    fn sectors_differ() {
        let b = make(1024, 0, 1);
        assert_ne!(b[..512], b[512..]);
        assert_ne!(make(512, 0, 1), make(512, 0, 2));
    }
}
