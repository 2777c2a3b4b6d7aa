//! NVMe Qualified Names (NVMe Base 2.0, 4.5 "NVMe Qualified Names").
//!
//! Two formats: `nqn.yyyy-mm.reverse.domain[:anything]` (the date the naming
//! authority owned the domain) and the UUID format
//! `nqn.2014-08.org.nvmexpress:uuid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.

use core::fmt;

/// "The NQN … shall not exceed 223 bytes" (NVMe Base 2.0, 4.5).
pub const NQN_MAX_LEN: usize = 223;
/// Size of an NQN field in Connect data, Identify Controller and the discovery log.
pub const NQN_FIELD_LEN: usize = 256;
/// "The well-known Discovery Service NQN" (NVMe-oF 1.1, 7.5).
pub const DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";
/// Prefix of the UUID format.
pub const UUID_PREFIX: &str = "nqn.2014-08.org.nvmexpress:uuid:";

/// Why a string is not an NQN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NqnError {
    Empty,
    TooLong {
        len: usize,
    },
    /// Does not start with `nqn.`.
    BadPrefix,
    /// The `yyyy-mm` date is malformed.
    BadDate,
    /// The reverse domain name is empty or has characters other than letters, digits, `-` and `.`.
    BadDomain,
    /// The UUID format's UUID is not `8-4-4-4-12` hex digits.
    BadUuid,
    /// A control character (or NUL) in the name.
    BadChar,
}

impl fmt::Display for NqnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NqnError::Empty => write!(f, "empty NQN"),
            NqnError::TooLong { len } => write!(f, "NQN is {len} bytes, at most {NQN_MAX_LEN}"),
            NqnError::BadPrefix => write!(f, "NQN does not start with \"nqn.\""),
            NqnError::BadDate => write!(f, "NQN date is not yyyy-mm"),
            NqnError::BadDomain => write!(f, "NQN reverse domain name is invalid"),
            NqnError::BadUuid => write!(f, "NQN UUID is not 8-4-4-4-12 hex digits"),
            NqnError::BadChar => write!(f, "NQN contains a control character"),
        }
    }
}
impl std::error::Error for NqnError {}

/// A validated NQN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nqn(String);

fn valid_uuid(u: &str) -> bool {
    let b = u.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl Nqn {
    pub fn parse(s: &str) -> Result<Nqn, NqnError> {
        if s.is_empty() {
            return Err(NqnError::Empty);
        }
        if s.len() > NQN_MAX_LEN {
            return Err(NqnError::TooLong { len: s.len() });
        }
        if s.chars().any(char::is_control) {
            return Err(NqnError::BadChar);
        }
        if let Some(u) = s.strip_prefix(UUID_PREFIX) {
            return if valid_uuid(u) {
                Ok(Nqn(s.to_owned()))
            } else {
                Err(NqnError::BadUuid)
            };
        }
        let rest = s.strip_prefix("nqn.").ok_or(NqnError::BadPrefix)?;
        // "nqn.yyyy-mm." : year 4 digits, month 01..12.
        let d = rest.as_bytes();
        if d.len() < 8 || !d[..4].iter().all(u8::is_ascii_digit) || d[4] != b'-' || d[7] != b'.' {
            return Err(NqnError::BadDate);
        }
        let month = match (d[5], d[6]) {
            (a @ b'0'..=b'9', b @ b'0'..=b'9') => (a - b'0') * 10 + (b - b'0'),
            _ => return Err(NqnError::BadDate),
        };
        if !(1..=12).contains(&month) {
            return Err(NqnError::BadDate);
        }
        let tail = &rest[8..];
        let domain = tail.split(':').next().unwrap_or("");
        if domain.is_empty()
            || domain.starts_with('.')
            || domain.ends_with('.')
            || !domain
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        {
            return Err(NqnError::BadDomain);
        }
        Ok(Nqn(s.to_owned()))
    }
    /// `nqn.2014-08.org.nvmexpress:uuid:<uuid>` (lower-case hex).
    pub fn from_uuid(u: [u8; 16]) -> Nqn {
        let h = |r: core::ops::Range<usize>| -> String {
            u[r].iter().map(|b| format!("{b:02x}")).collect()
        };
        Nqn(format!(
            "{UUID_PREFIX}{}-{}-{}-{}-{}",
            h(0..4),
            h(4..6),
            h(6..8),
            h(8..10),
            h(10..16)
        ))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
    pub fn is_discovery(&self) -> bool {
        self.0 == DISCOVERY_NQN
    }
    /// The UUID of a UUID-format NQN.
    pub fn uuid(&self) -> Option<&str> {
        self.0.strip_prefix(UUID_PREFIX)
    }
}

impl fmt::Display for Nqn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Nqn {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl core::str::FromStr for Nqn {
    type Err = NqnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Nqn::parse(s)
    }
}

impl TryFrom<String> for Nqn {
    type Error = NqnError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Nqn::parse(&s)
    }
}

impl From<Nqn> for String {
    fn from(n: Nqn) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests;
