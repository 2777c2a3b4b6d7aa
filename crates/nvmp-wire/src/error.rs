//! Decoding errors. Every error names the field that was wrong, so a peer's
//! bad bytes can be reported precisely (and, for NVMe/TCP, mapped to the
//! fatal error status of a TermReq).

use core::fmt;

/// What was wrong with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// Fewer bytes than the structure needs.
    Truncated { needed: usize, available: usize },
    /// A value outside the range the specification allows.
    OutOfRange { value: u64 },
    /// A reserved field or bit that the specification requires to be zero was not.
    ReservedNonZero,
    /// A value that is not valid for this position (unknown type, bad length combination, …).
    Invalid,
    /// A length or offset computation overflowed.
    Overflow,
    /// Text field that is not valid (not UTF-8, not NUL padded, …).
    BadText,
    /// A digest did not match the bytes it covers.
    DigestMismatch { expected: u32, actual: u32 },
}

/// A decoding error: which field, and what was wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    /// The field, named as the specification names it (for example `"PDU.PLEN"`).
    pub field: &'static str,
    /// What was wrong.
    pub kind: DecodeErrorKind,
    /// Byte offset of the field within the structure being decoded, where known.
    pub offset: Option<usize>,
}

impl DecodeError {
    pub const fn new(field: &'static str, kind: DecodeErrorKind) -> Self {
        Self {
            field,
            kind,
            offset: None,
        }
    }
    pub const fn at(field: &'static str, offset: usize, kind: DecodeErrorKind) -> Self {
        Self {
            field,
            kind,
            offset: Some(offset),
        }
    }
    pub const fn truncated(field: &'static str, needed: usize, available: usize) -> Self {
        Self::new(field, DecodeErrorKind::Truncated { needed, available })
    }
    pub const fn invalid(field: &'static str) -> Self {
        Self::new(field, DecodeErrorKind::Invalid)
    }
    pub const fn out_of_range(field: &'static str, value: u64) -> Self {
        Self::new(field, DecodeErrorKind::OutOfRange { value })
    }
    pub const fn reserved(field: &'static str) -> Self {
        Self::new(field, DecodeErrorKind::ReservedNonZero)
    }
    pub const fn overflow(field: &'static str) -> Self {
        Self::new(field, DecodeErrorKind::Overflow)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {}", self.field)?;
        if let Some(o) = self.offset {
            write!(f, " (byte {o})")?;
        }
        match self.kind {
            DecodeErrorKind::Truncated { needed, available } => {
                write!(
                    f,
                    ": truncated, needs {needed} bytes, {available} available"
                )
            }
            DecodeErrorKind::OutOfRange { value } => write!(f, ": value {value} out of range"),
            DecodeErrorKind::ReservedNonZero => write!(f, ": reserved bits are not zero"),
            DecodeErrorKind::Invalid => write!(f, ": invalid value"),
            DecodeErrorKind::Overflow => write!(f, ": length or offset arithmetic overflows"),
            DecodeErrorKind::BadText => write!(f, ": not valid text"),
            DecodeErrorKind::DigestMismatch { expected, actual } => write!(
                f,
                ": digest mismatch (computed {expected:#010x}, received {actual:#010x})"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}
