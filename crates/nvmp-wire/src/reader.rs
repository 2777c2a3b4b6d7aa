//! A bounded little-endian reader and writer over byte slices. Every read is
//! bounds-checked and names the field it reads, so no peer input can panic.

use crate::error::DecodeError;

/// A cursor over a byte slice that can never read past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// The next `n` bytes, as a slice.
    pub fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::overflow(field))?;
        if end > self.buf.len() {
            return Err(DecodeError::at(
                field,
                self.pos,
                crate::error::DecodeErrorKind::Truncated {
                    needed: n,
                    available: self.remaining(),
                },
            ));
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    /// A sub-reader bounded to the next `n` bytes.
    pub fn sub(&mut self, field: &'static str, n: usize) -> Result<Reader<'a>, DecodeError> {
        Ok(Reader::new(self.take(field, n)?))
    }
    pub fn skip(&mut self, field: &'static str, n: usize) -> Result<(), DecodeError> {
        self.take(field, n).map(|_| ())
    }
    /// Skip `n` reserved bytes, which must be zero.
    pub fn reserved(&mut self, field: &'static str, n: usize) -> Result<(), DecodeError> {
        let at = self.pos;
        if self.take(field, n)?.iter().any(|b| *b != 0) {
            return Err(DecodeError::at(
                field,
                at,
                crate::error::DecodeErrorKind::ReservedNonZero,
            ));
        }
        Ok(())
    }
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let s = self.take(field, N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }
}

/// Little-endian field writer into a fixed buffer (used by encoders, whose
/// sizes are known statically; out-of-bounds writes are programming errors).
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
        self
    }
    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.buf[self.pos..self.pos + n].fill(0);
        self.pos += n;
        self
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes(&[v])
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
}
