//! Finite field Diffie-Hellman over the RFC 7919 groups (generator 2).
//!
//! Private exponents are random with twice the group's security strength
//! in bits (RFC 7919 5.2 permits short exponents of at least 225..400 bits;
//! nvmp uses 256..512), which keeps ffdhe8192 fast. Peer values are checked
//! to lie in [2, p-2] (RFC 7919 5.1: "Peers MUST validate each other's
//! public key Y … by ensuring that 1 < Y < p-1").

use std::sync::OnceLock;

use num_bigint::BigUint;
use zeroize::Zeroizing;

use crate::primes;

/// DH group IDs of DH-HMAC-CHAP (DHGID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DhGroup {
    Null = 0,
    Ffdhe2048 = 1,
    Ffdhe3072 = 2,
    Ffdhe4096 = 3,
    Ffdhe6144 = 4,
    Ffdhe8192 = 5,
}

/// A peer DH value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhError {
    #[error("DH value of {got} bytes for {group} (at most {max})")]
    Length {
        group: &'static str,
        got: usize,
        max: usize,
    },
    #[error("DH value out of range (must be 1 < Y < p-1)")]
    Range,
    #[error("no DH computation in the NULL group")]
    Null,
}

impl DhGroup {
    pub const ALL: [DhGroup; 6] = [
        DhGroup::Null,
        DhGroup::Ffdhe2048,
        DhGroup::Ffdhe3072,
        DhGroup::Ffdhe4096,
        DhGroup::Ffdhe6144,
        DhGroup::Ffdhe8192,
    ];

    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.get(id as usize).copied()
    }
    pub fn id(self) -> u8 {
        self as u8
    }
    /// Linux's name (configfs `dhchap_dhgroup`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Ffdhe2048 => "ffdhe2048",
            Self::Ffdhe3072 => "ffdhe3072",
            Self::Ffdhe4096 => "ffdhe4096",
            Self::Ffdhe6144 => "ffdhe6144",
            Self::Ffdhe8192 => "ffdhe8192",
        }
    }
    /// Parse `ffdhe3072`, `null` (or empty), or the ID `2`.
    pub fn parse(s: &str) -> Option<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t.is_empty() || t == "none" {
            return Some(Self::Null);
        }
        Self::ALL
            .into_iter()
            .find(|g| g.name() == t || g.id().to_string() == t)
    }
    /// Bytes of the prime (and of DH values); 0 for NULL.
    pub fn value_len(self) -> usize {
        match self {
            Self::Null => 0,
            Self::Ffdhe2048 => 256,
            Self::Ffdhe3072 => 384,
            Self::Ffdhe4096 => 512,
            Self::Ffdhe6144 => 768,
            Self::Ffdhe8192 => 1024,
        }
    }
    /// Bits of the private exponent: twice the security strength.
    fn exponent_bits(self) -> usize {
        match self {
            Self::Null => 0,
            Self::Ffdhe2048 => 256,
            Self::Ffdhe3072 => 320,
            Self::Ffdhe4096 => 384,
            Self::Ffdhe6144 => 448,
            Self::Ffdhe8192 => 512,
        }
    }
    /// The prime p (None for NULL).
    pub fn prime(self) -> Option<&'static BigUint> {
        static P: [OnceLock<BigUint>; 5] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        let hex = match self {
            Self::Null => return None,
            Self::Ffdhe2048 => primes::FFDHE2048,
            Self::Ffdhe3072 => primes::FFDHE3072,
            Self::Ffdhe4096 => primes::FFDHE4096,
            Self::Ffdhe6144 => primes::FFDHE6144,
            Self::Ffdhe8192 => primes::FFDHE8192,
        };
        Some(P[self.id() as usize - 1].get_or_init(|| {
            BigUint::parse_bytes(hex.as_bytes(), 16).expect("RFC 7919 prime is valid hex")
        }))
    }
}

impl std::fmt::Display for DhGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An ephemeral key pair in one group.
pub struct DhKey {
    group: DhGroup,
    x: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

impl std::fmt::Debug for DhKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DhKey({}, private redacted)", self.group)
    }
}

fn to_fixed(v: &BigUint, len: usize) -> Vec<u8> {
    let b = v.to_bytes_be();
    let mut out = vec![0u8; len.saturating_sub(b.len())];
    out.extend_from_slice(&b);
    out
}

impl DhKey {
    /// A fresh key pair: x random, X = 2^x mod p (None for the NULL group).
    pub fn generate(group: DhGroup) -> Option<Self> {
        let p = group.prime()?;
        let mut x = Zeroizing::new(crate::random_bytes(group.exponent_bits() / 8));
        x[0] |= 0x80; // full length
        let xi = BigUint::from_bytes_be(&x);
        let public = to_fixed(&BigUint::from(2u32).modpow(&xi, p), group.value_len());
        Some(Self { group, x, public })
    }
    pub fn group(&self) -> DhGroup {
        self.group
    }
    /// g^x mod p, big endian, padded to the prime's length.
    pub fn public(&self) -> &[u8] {
        &self.public
    }
    /// The session key (g^xy mod p, padded to the prime's length) from the
    /// peer's value, after checking it.
    pub fn shared(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, DhError> {
        let p = self.group.prime().ok_or(DhError::Null)?;
        let max = self.group.value_len();
        if peer.is_empty() || peer.len() > max {
            return Err(DhError::Length {
                group: self.group.name(),
                got: peer.len(),
                max,
            });
        }
        let y = BigUint::from_bytes_be(peer);
        let one = BigUint::from(1u32);
        if y <= one || y >= p - &one {
            return Err(DhError::Range);
        }
        let xi = BigUint::from_bytes_be(&self.x);
        Ok(Zeroizing::new(to_fixed(&y.modpow(&xi, p), max)))
    }
}
