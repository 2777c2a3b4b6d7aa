//! Fixed-width text fields.
//!
//! NVMe Base 2.0, 1.5 "ASCII string": Identify's SN, MN and FR are ASCII
//! "padded with spaces (20h)" on the right. NQN fields are UTF-8 and
//! NUL terminated ("… padded with NUL (00h) characters"). Discovery log
//! TRADDR/TRSVCID are ASCII strings; Linux pads them with NUL, SPDK with
//! spaces, so the decoder accepts both.

use crate::error::{DecodeError, DecodeErrorKind};

/// Copy `s` into `out`, truncated at a character boundary to fit, padded with `pad`.
pub(crate) fn put(out: &mut [u8], s: &str, pad: u8) {
    let mut n = s.len().min(out.len());
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out[n..].fill(pad);
}

fn bad(field: &'static str, offset: usize) -> DecodeError {
    DecodeError::at(field, offset, DecodeErrorKind::BadText)
}

/// An ASCII field padded on the right with spaces (trailing NULs are tolerated too).
pub(crate) fn ascii(field: &'static str, offset: usize, b: &[u8]) -> Result<String, DecodeError> {
    let end = b
        .iter()
        .rposition(|c| *c != b' ' && *c != 0)
        .map_or(0, |p| p + 1);
    let t = &b[..end];
    // "ASCII … characters 20h through 7Eh".
    if t.iter().any(|c| !(0x20..=0x7E).contains(c)) {
        return Err(bad(field, offset));
    }
    Ok(t.iter().map(|c| *c as char).collect())
}

/// A NUL terminated UTF-8 field whose bytes after the first NUL are ignored
/// (a field with no NUL at all is refused).
pub(crate) fn nul_terminated(
    field: &'static str,
    offset: usize,
    b: &[u8],
) -> Result<String, DecodeError> {
    let end = b
        .iter()
        .position(|c| *c == 0)
        .ok_or_else(|| bad(field, offset))?;
    utf8_text(field, offset, &b[..end])
}

fn utf8_text(field: &'static str, offset: usize, b: &[u8]) -> Result<String, DecodeError> {
    let s = core::str::from_utf8(b).map_err(|_| bad(field, offset))?;
    if s.chars().any(char::is_control) {
        return Err(bad(field, offset));
    }
    Ok(s.to_owned())
}

/// A NUL terminated UTF-8 field: text up to the first NUL, which must be
/// followed only by NULs ("padded with NUL").
pub(crate) fn nul_padded(
    field: &'static str,
    offset: usize,
    b: &[u8],
) -> Result<String, DecodeError> {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    if b[end..].iter().any(|c| *c != 0) {
        return Err(bad(field, offset));
    }
    utf8_text(field, offset, &b[..end])
}
