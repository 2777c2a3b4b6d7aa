//! DH-HMAC-CHAP secrets in the representation nvme-cli and Linux use:
//! `DHHC-1:<hh>:<base64 of key || CRC-32 (little endian)>:`, where `hh` is
//! the hash of the secret transformation (00 none, 01 SHA-256, 02 SHA-384,
//! 03 SHA-512) and the key is 32, 48 or 64 bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use crate::HashId;

/// A secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret does not start with \"DHHC-1:\"")]
    Prefix,
    #[error("secret transformation hash {0:?} is not 00, 01, 02 or 03")]
    Hash(String),
    #[error("secret is not valid base64")]
    Base64,
    #[error("secret key is {0} bytes; 32, 48 or 64 are allowed")]
    Length(usize),
    #[error("secret CRC mismatch (key {key:08x}, crc {crc:08x})")]
    Crc { key: u32, crc: u32 },
    #[error("key length {len} does not suit transformation hash SHA({bits})")]
    LengthForHash { len: usize, bits: usize },
}

/// A DH-HMAC-CHAP secret (host key or controller key). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Zeroizing<Vec<u8>>,
    /// Transformation hash (0: none).
    hash: u8,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secret(DHHC-1:{:02x}, {} bytes, redacted)",
            self.hash,
            self.key.len()
        )
    }
}

/// CRC-32 as Linux and nvme-cli append it (the IEEE CRC, little endian).
pub fn crc32(b: &[u8]) -> u32 {
    crc32fast::hash(b)
}

impl Secret {
    /// A secret from raw key bytes (32, 48 or 64) and a transformation hash (0..=3).
    pub fn from_raw(key: &[u8], hash: u8) -> Result<Self, SecretError> {
        if hash > 3 {
            return Err(SecretError::Hash(format!("{hash:02x}")));
        }
        if ![32, 48, 64].contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self {
            key: Zeroizing::new(key.to_vec()),
            hash,
        })
    }

    /// Parse `DHHC-1:hh:base64:` (the trailing colon may be missing).
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let s = s.trim();
        let rest = s.strip_prefix("DHHC-1:").ok_or(SecretError::Prefix)?;
        let (hh, b64) = rest.split_once(':').ok_or(SecretError::Prefix)?;
        let hash = match hh {
            "00" | "0" => 0,
            "01" | "1" => 1,
            "02" | "2" => 2,
            "03" | "3" => 3,
            other => return Err(SecretError::Hash(other.chars().take(8).collect())),
        };
        let b64 = b64.strip_suffix(':').unwrap_or(b64);
        let raw = Zeroizing::new(STANDARD.decode(b64).map_err(|_| SecretError::Base64)?);
        if ![36, 52, 68].contains(&raw.len()) {
            return Err(SecretError::Length(raw.len().saturating_sub(4)));
        }
        let (key, tail) = raw.split_at(raw.len() - 4);
        let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let crc = crc32(key);
        if stored != crc {
            return Err(SecretError::Crc { key: stored, crc });
        }
        Self::from_raw(key, hash)
    }

    /// The `DHHC-1:hh:…:` text.
    pub fn to_dhhc1(&self) -> String {
        let mut raw = Zeroizing::new(self.key.to_vec());
        raw.extend_from_slice(&crc32(&self.key).to_le_bytes());
        format!("DHHC-1:{:02x}:{}:", self.hash, STANDARD.encode(&raw[..]))
    }

    /// A new random secret.
    pub fn generate(len: usize, hash: u8) -> Result<Self, SecretError> {
        let key = Zeroizing::new(crate::random_bytes(len));
        Self::from_raw(&key, hash)
    }

    /// What `nvme gen-dhchap-key` prints: with a transformation hash, the
    /// stored key is HMAC(H, secret, NQN || "NVMe-over-Fabrics") (its
    /// length must then be the hash's).
    pub fn gen_dhchap_key(secret: &[u8], hash: u8, nqn: &str) -> Result<Self, SecretError> {
        Self::from_raw(secret, hash)?;
        match HashId::from_id(hash) {
            None => Self::from_raw(secret, 0),
            Some(h) => {
                if secret.len() != h.len() {
                    return Err(SecretError::LengthForHash {
                        len: secret.len(),
                        bits: h.len() * 8,
                    });
                }
                let k = Zeroizing::new(h.hmac(secret, &[nqn.as_bytes(), b"NVMe-over-Fabrics"]));
                Self::from_raw(&k, hash)
            }
        }
    }

    pub fn hash(&self) -> u8 {
        self.hash
    }
    pub fn len(&self) -> usize {
        self.key.len()
    }
    pub fn is_empty(&self) -> bool {
        self.key.is_empty()
    }
    pub fn crc(&self) -> u32 {
        crc32(&self.key)
    }

    /// The key used in responses: for a transformed secret (hh 01..03)
    /// HMAC(H, secret, NQN || "NVMe-over-Fabrics") — the host NQN for the
    /// host key, the subsystem NQN for the controller key; else the secret.
    pub fn transformed(&self, nqn: &str) -> Zeroizing<Vec<u8>> {
        match HashId::from_id(self.hash) {
            None => Zeroizing::new(self.key.to_vec()),
            Some(h) => Zeroizing::new(h.hmac(&self.key, &[nqn.as_bytes(), b"NVMe-over-Fabrics"])),
        }
    }
}

impl std::str::FromStr for Secret {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
