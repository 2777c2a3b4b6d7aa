//! NVMe in-band authentication with DH-HMAC-CHAP (NVMe Base 2.0, 8.13;
//! TP8006), sans I/O: secrets in nvme-cli's `DHHC-1` form, the hash
//! functions and FFDHE groups, the response computations, and the host and
//! controller state machines that turn one authentication message into the
//! next. The drivers (nvmp-host, nvmp-target) move the bytes with
//! Authentication Send / Receive.
//!
//! Crypto comes from well-kept crates: RustCrypto `sha2`/`hmac` for the
//! hashes, `num-bigint` for the FFDHE modular exponentiation (RFC 7919
//! primes), `subtle` for constant-time comparison of responses, `zeroize`
//! for key material. Secrets never appear in `Debug` output or logs.
#![forbid(unsafe_code)]

pub mod ctrl;
pub mod dh;
pub mod host;
mod primes;
pub mod secret;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha384, Sha512};

pub use ctrl::{CtrlAuth, CtrlAuthConfig};
pub use dh::{DhError, DhGroup, DhKey};
pub use host::{AuthError, HostAuth, HostAuthConfig};
pub use nvmp_wire::auth::FailureReason;
pub use secret::{Secret, SecretError};

/// The hash functions of DH-HMAC-CHAP (HASHID values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashId {
    Sha256 = 1,
    Sha384 = 2,
    Sha512 = 3,
}

#[allow(clippy::len_without_is_empty)]
impl HashId {
    pub const ALL: [HashId; 3] = [HashId::Sha256, HashId::Sha384, HashId::Sha512];

    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Sha256),
            2 => Some(Self::Sha384),
            3 => Some(Self::Sha512),
            _ => None,
        }
    }
    pub fn id(self) -> u8 {
        self as u8
    }
    /// Digest length, bytes.
    pub fn len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
    /// Linux's name (configfs `dhchap_hash`): `hmac(sha256)` …
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "hmac(sha256)",
            Self::Sha384 => "hmac(sha384)",
            Self::Sha512 => "hmac(sha512)",
        }
    }
    /// Parse `hmac(sha384)`, `sha384`, `SHA-384` or the ID `2`.
    pub fn parse(s: &str) -> Option<Self> {
        let t = s.trim().to_ascii_lowercase().replace('-', "");
        let t = t
            .strip_prefix("hmac(")
            .and_then(|x| x.strip_suffix(')'))
            .unwrap_or(&t);
        match t {
            "sha256" | "1" => Some(Self::Sha256),
            "sha384" | "2" => Some(Self::Sha384),
            "sha512" | "3" => Some(Self::Sha512),
            _ => None,
        }
    }
    /// H(data).
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha384 => Sha384::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
    /// HMAC(key, parts[0] || parts[1] || …).
    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut m = <M as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Sha256 => run::<Hmac<Sha256>>(key, parts),
            Self::Sha384 => run::<Hmac<Sha384>>(key, parts),
            Self::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }
}

impl std::fmt::Display for HashId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The augmented challenge Ca = HMAC(H(g^xy mod p), C) used when a DH group
/// is negotiated (the session key is hashed, then keys an HMAC of the challenge).
pub fn augmented_challenge(hash: HashId, session_key: &[u8], c: &[u8]) -> Vec<u8> {
    let hk = zeroize::Zeroizing::new(hash.digest(session_key));
    hash.hmac(&hk, &[c])
}

/// The host's response R1 = HMAC(Kh, C1 || SEQNUM || T_ID || SC_C ||
/// "HostHost" || NQNh || 00h || NQNc), with Kh the transformed host key and
/// C1 the (augmented) challenge.
#[allow(clippy::too_many_arguments)]
pub fn host_response(
    hash: HashId,
    key: &[u8],
    c1: &[u8],
    seqnum: u32,
    t_id: u16,
    sc_c: u8,
    hostnqn: &str,
    subnqn: &str,
) -> Vec<u8> {
    hash.hmac(
        key,
        &[
            c1,
            &seqnum.to_le_bytes(),
            &t_id.to_le_bytes(),
            &[sc_c],
            b"HostHost",
            hostnqn.as_bytes(),
            &[0],
            subnqn.as_bytes(),
        ],
    )
}

/// The controller's response R2 = HMAC(Kc, C2 || SEQNUM2 || T_ID || SC_C ||
/// "Controller" || NQNc || 00h || NQNh), with Kc the transformed controller key.
#[allow(clippy::too_many_arguments)]
pub fn ctrl_response(
    hash: HashId,
    key: &[u8],
    c2: &[u8],
    seqnum: u32,
    t_id: u16,
    sc_c: u8,
    subnqn: &str,
    hostnqn: &str,
) -> Vec<u8> {
    hash.hmac(
        key,
        &[
            c2,
            &seqnum.to_le_bytes(),
            &t_id.to_le_bytes(),
            &[sc_c],
            b"Controller",
            subnqn.as_bytes(),
            &[0],
            hostnqn.as_bytes(),
        ],
    )
}

/// Random bytes from the operating system.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut v);
    v
}

/// A random non-zero sequence number.
pub fn random_seqnum() -> u32 {
    loop {
        let b = random_bytes(4);
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if v != 0 {
            return v;
        }
    }
}

/// Constant-time equality of two responses.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests;
