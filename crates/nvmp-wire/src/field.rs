//! Checked reads at fixed offsets of fixed-layout structures (Identify,
//! log pages). Every read is bounds-checked and names its field.

use crate::error::DecodeError;

/// Read `N` bytes at `off` of an Identify structure (checked: never panics).
pub(crate) fn at<const N: usize>(
    b: &[u8],
    field: &'static str,
    off: usize,
) -> Result<[u8; N], DecodeError> {
    let s = off
        .checked_add(N)
        .and_then(|end| b.get(off..end))
        .ok_or(DecodeError::at(
            field,
            off,
            crate::error::DecodeErrorKind::Truncated {
                needed: N,
                available: b.len().saturating_sub(off),
            },
        ))?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    Ok(a)
}
pub(crate) fn u8_at(b: &[u8], f: &'static str, off: usize) -> Result<u8, DecodeError> {
    Ok(at::<1>(b, f, off)?[0])
}
pub(crate) fn u16_at(b: &[u8], f: &'static str, off: usize) -> Result<u16, DecodeError> {
    Ok(u16::from_le_bytes(at(b, f, off)?))
}
pub(crate) fn u32_at(b: &[u8], f: &'static str, off: usize) -> Result<u32, DecodeError> {
    Ok(u32::from_le_bytes(at(b, f, off)?))
}
pub(crate) fn u64_at(b: &[u8], f: &'static str, off: usize) -> Result<u64, DecodeError> {
    Ok(u64::from_le_bytes(at(b, f, off)?))
}
pub(crate) fn u128_at(b: &[u8], f: &'static str, off: usize) -> Result<u128, DecodeError> {
    Ok(u128::from_le_bytes(at(b, f, off)?))
}
pub(crate) fn slice_at<'a>(
    b: &'a [u8],
    f: &'static str,
    off: usize,
    n: usize,
) -> Result<&'a [u8], DecodeError> {
    off.checked_add(n)
        .and_then(|end| b.get(off..end))
        .ok_or(DecodeError::at(
            f,
            off,
            crate::error::DecodeErrorKind::Truncated {
                needed: n,
                available: b.len().saturating_sub(off),
            },
        ))
}

/// Encoder helper: put little-endian bytes at a fixed offset.
pub(crate) fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}
