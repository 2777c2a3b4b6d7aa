//! NVMe/TCP pre-shared keys as nvme-cli and libnvme handle them.
//!
//! - The PSK interchange format `NVMeTLSkey-1:<hh>:<base64(key ‖ CRC-32)>:`
//!   (NVMe/TCP transport specification, PSK interchange format; `hh` is the hash used to
//!   make the retained PSK: 00 none, 01 SHA-256, 02 SHA-384; the key is 32
//!   or 48 bytes; the CRC-32 is zlib's, appended little endian).
//! - The retained PSK (as libnvme quotes the specification): "The method to derive a retained PSK from a
//!   configured PSK shall be using the HKDF-Extract and HKDF-Expand-Label
//!   operations: PRK = HKDF-Extract(0, Configured PSK); Retained PSK =
//!   HKDF-Expand-Label(PRK, "HostNQN", NQNh, Length(Configured PSK))".
//! - The TLS PSK (likewise): "TLS PSK = HKDF-Expand-Label(PRK,
//!   "nvme-tls-psk", PskIdentity, L)", with PRK = HKDF-Extract(0, retained
//!   PSK) and L the hash length of the cipher suite; for identity version 1
//!   the context is `"<hh> <PSK digest>"` as libnvme and Linux derive it.
//! - The PSK identity `NVMe0R<hh> <hostnqn> <subnqn>`, and the
//!   version 1 identity of TP 8018 that appends the PSK digest
//!   `base64(HMAC(retained PSK, hostnqn ‖ " " ‖ subnqn ‖ " NVMe-over-Fabrics"))`.
//!
//! All cryptography is OpenSSL's (HKDF, HMAC, random numbers); keys are
//! never printed by `Debug`. `compat` selects the derivation of older
//! nvme-cli/libnvme releases (labels without the RFC 8446 length bytes),
//! as nvme-cli's `--compat`.

use std::fmt;

use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::md::Md;
use openssl::pkey::{Id, PKey};
use openssl::pkey_ctx::PkeyCtx;
use openssl::sign::Signer;

use crate::error::KeyError;
use crate::identity::PskIdentity;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Longest key text accepted (a 48-byte key is 89 characters).
pub const MAX_KEY_TEXT: usize = 128;

/// A hash function of the NVMe PSK rules: that of a retained PSK, of a PSK
/// identity and of the TLS cipher suite that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PskHash {
    /// 01: SHA-256, TLS_AES_128_GCM_SHA256, 32-byte keys.
    Sha256,
    /// 02: SHA-384, TLS_AES_256_GCM_SHA384, 48-byte keys.
    Sha384,
}

impl PskHash {
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Sha256),
            2 => Some(Self::Sha384),
            _ => None,
        }
    }
    pub fn id(self) -> u8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha384 => 2,
        }
    }
    /// Key and digest length in bytes.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
        }
    }
    pub fn for_key_len(len: usize) -> Option<Self> {
        match len {
            32 => Some(Self::Sha256),
            48 => Some(Self::Sha384),
            _ => None,
        }
    }
    /// The TLS 1.3 cipher suite that uses this hash (OpenSSL's name).
    pub fn cipher_suite(self) -> &'static str {
        match self {
            Self::Sha256 => "TLS_AES_128_GCM_SHA256",
            Self::Sha384 => "TLS_AES_256_GCM_SHA384",
        }
    }
    pub(crate) fn md(self) -> &'static openssl::md::MdRef {
        match self {
            Self::Sha256 => Md::sha256(),
            Self::Sha384 => Md::sha384(),
        }
    }
    pub(crate) fn digest(self) -> MessageDigest {
        match self {
            Self::Sha256 => MessageDigest::sha256(),
            Self::Sha384 => MessageDigest::sha384(),
        }
    }
}

/// A key in the PSK interchange format: a configured PSK (`hmac` 0, 1 or
/// 2), or, in key files, a TLS PSK whose `hmac` is its identity's hash.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfiguredPsk {
    hmac: u8,
    key: Vec<u8>,
}

impl fmt::Debug for ConfiguredPsk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ConfiguredPsk(hmac {:02}, {} bytes)",
            self.hmac,
            self.key.len()
        )
    }
}

impl ConfiguredPsk {
    /// A key of `key` bytes (32 or 48) with the retained-PSK hash `hmac`
    /// (0 none, 1 SHA-256 with 32 bytes, 2 SHA-384 with 48 bytes).
    pub fn new(hmac: u8, key: Vec<u8>) -> Result<Self, KeyError> {
        let ok = match hmac {
            0 => key.len() == 32 || key.len() == 48,
            1 => key.len() == 32,
            2 => key.len() == 48,
            _ => return Err(KeyError::Hmac(hmac)),
        };
        if !ok {
            return Err(KeyError::Length {
                hmac,
                len: key.len(),
            });
        }
        Ok(Self { hmac, key })
    }

    /// A new random key (OpenSSL's random generator), as `nvme gen-tls-key`.
    pub fn generate(hmac: u8) -> Result<Self, KeyError> {
        let len = if hmac == 2 { 48 } else { 32 };
        let mut key = vec![0u8; len];
        openssl::rand::rand_bytes(&mut key).map_err(|e| KeyError::Crypto(e.to_string()))?;
        Self::new(hmac, key)
    }

    /// A key from a secret in hexadecimal (nvme-cli's `--secret`).
    pub fn from_hex(hmac: u8, hex: &str) -> Result<Self, KeyError> {
        let hex = hex.trim();
        if !hex.len().is_multiple_of(2) || hex.len() > 2 * 64 {
            return Err(KeyError::Secret(
                "odd length or longer than 64 bytes".into(),
            ));
        }
        let mut key = Vec::with_capacity(hex.len() / 2);
        for i in (0..hex.len()).step_by(2) {
            let b = u8::from_str_radix(hex.get(i..i + 2).unwrap_or("xx"), 16)
                .map_err(|_| KeyError::Secret("not hexadecimal".into()))?;
            key.push(b);
        }
        Self::new(hmac, key)
    }

    /// Parse the interchange format.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.len() > MAX_KEY_TEXT {
            return Err(KeyError::Format("longer than any NVMe TLS key".into()));
        }
        let rest = text
            .strip_prefix("NVMeTLSkey-")
            .ok_or_else(|| KeyError::Format("does not start with \"NVMeTLSkey-\"".into()))?;
        let mut parts = rest.splitn(3, ':');
        let (ver, hh, body) = (parts.next(), parts.next(), parts.next());
        if ver != Some("1") {
            return Err(KeyError::Format(format!(
                "version {:?} is not 1",
                ver.unwrap_or("")
            )));
        }
        let hh = hh.unwrap_or("");
        let hmac = match hh {
            "00" => 0,
            "01" => 1,
            "02" => 2,
            _ => return Err(KeyError::Format(format!("hash {hh:?} is not 00, 01 or 02"))),
        };
        let body = body
            .and_then(|b| b.strip_suffix(':'))
            .ok_or_else(|| KeyError::Format("does not end with ':'".into()))?;
        let raw = B64
            .decode(body)
            .map_err(|_| KeyError::Format("the key is not valid base64".into()))?;
        if raw.len() != 36 && raw.len() != 52 {
            return Err(KeyError::Length {
                hmac,
                len: raw.len().saturating_sub(4),
            });
        }
        let (key, crc) = raw.split_at(raw.len() - 4);
        let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let got = crc32fast::hash(key);
        if want != got {
            return Err(KeyError::Crc {
                key: want,
                crc: got,
            });
        }
        Self::new(hmac, key.to_vec())
    }

    /// The interchange format of this key.
    pub fn to_interchange(&self) -> String {
        let mut raw = self.key.clone();
        raw.extend_from_slice(&crc32fast::hash(&self.key).to_le_bytes());
        format!("NVMeTLSkey-1:{:02x}:{}:", self.hmac, B64.encode(raw))
    }

    pub fn hmac(&self) -> u8 {
        self.hmac
    }
    pub fn key_len(&self) -> usize {
        self.key.len()
    }
    pub(crate) fn key_bytes(&self) -> Vec<u8> {
        self.key.clone()
    }
    /// CRC-32 of the key (as `nvme check-tls-key` 2.x prints it).
    pub fn crc(&self) -> u32 {
        crc32fast::hash(&self.key)
    }
    /// The hash of identities and TLS PSKs made from this key.
    pub fn hash(&self) -> PskHash {
        PskHash::from_id(self.hmac)
            .or_else(|| PskHash::for_key_len(self.key.len()))
            .unwrap_or(PskHash::Sha256)
    }

    /// The retained PSK for `hostnqn`.
    pub fn retained(&self, hostnqn: &str, compat: bool) -> Result<Vec<u8>, KeyError> {
        let Some(h) = PskHash::from_id(self.hmac) else {
            return Ok(self.key.clone());
        };
        if compat {
            let mut info = (self.key.len() as u16).to_le_bytes().to_vec();
            info.extend_from_slice(b"tls13 HostNQN");
            info.extend_from_slice(hostnqn.as_bytes());
            hkdf(h, &self.key, &info, self.key.len())
        } else {
            expand_label(h, &self.key, "HostNQN", hostnqn.as_bytes(), self.key.len())
        }
    }

    /// The PSK identity (version 0 or 1) and TLS PSK that a host with
    /// `hostnqn` uses with subsystem `subnqn`.
    pub fn tls_psk(
        &self,
        hostnqn: &str,
        subnqn: &str,
        version: u8,
        compat: bool,
    ) -> Result<TlsPsk, KeyError> {
        if version > 1 {
            return Err(KeyError::Identity(format!(
                "identity version {version} is not 0 or 1"
            )));
        }
        let hash = self.hash();
        let retained = self.retained(hostnqn, compat)?;
        let digest = if version == 1 {
            Some(psk_digest(hash, &retained, hostnqn, subnqn)?)
        } else {
            None
        };
        let identity = PskIdentity {
            version,
            generated: false,
            hash,
            hostnqn: hostnqn.to_string(),
            subnqn: subnqn.to_string(),
            digest: digest.clone(),
        };
        identity.validate()?;
        let identity = identity.to_string();
        let context = match &digest {
            Some(d) => format!("{:02} {d}", hash.id()),
            None => identity.clone(),
        };
        let key = if compat {
            let mut info = (retained.len() as u16).to_le_bytes().to_vec();
            info.extend_from_slice(b"tls13 nvme-tls-psk");
            info.extend_from_slice(context.as_bytes());
            hkdf(hash, &retained, &info, retained.len())?
        } else {
            expand_label(
                hash,
                &retained,
                "nvme-tls-psk",
                context.as_bytes(),
                retained.len(),
            )?
        };
        Ok(TlsPsk {
            identity,
            hash,
            key,
        })
    }
}

/// What goes into the TLS handshake: the identity and the key.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsPsk {
    pub identity: String,
    pub hash: PskHash,
    key: Vec<u8>,
}

impl fmt::Debug for TlsPsk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TlsPsk({:?}, {:?}, key redacted)",
            self.identity, self.hash
        )
    }
}

impl TlsPsk {
    /// A TLS PSK given as is (a key file entry, or `--tls_key` with
    /// `--tls_key_identity`): its length must be the identity's hash length.
    pub fn new(identity: String, hash: PskHash, key: Vec<u8>) -> Result<Self, KeyError> {
        if key.len() != hash.len() {
            return Err(KeyError::Length {
                hmac: hash.id(),
                len: key.len(),
            });
        }
        if identity.is_empty() || identity.len() > crate::identity::MAX_IDENTITY {
            return Err(KeyError::Identity("empty or too long".into()));
        }
        Ok(Self {
            identity,
            hash,
            key,
        })
    }
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }
    /// The key in interchange format (as `nvme tls-key --export` writes key
    /// files: the identity's hash as `hh`).
    pub fn to_interchange(&self) -> String {
        ConfiguredPsk {
            hmac: self.hash.id(),
            key: self.key.clone(),
        }
        .to_interchange()
    }
    /// The key as hexadecimal (for `openssl s_client -psk`, tests).
    pub fn key_hex(&self) -> String {
        self.key.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The PSK digest of a version 1 identity.
pub fn psk_digest(
    hash: PskHash,
    retained: &[u8],
    hostnqn: &str,
    subnqn: &str,
) -> Result<String, KeyError> {
    let c = |e: openssl::error::ErrorStack| KeyError::Crypto(e.to_string());
    let pkey = PKey::hmac(retained).map_err(c)?;
    let mut s = Signer::new(hash.digest(), &pkey).map_err(c)?;
    for part in [
        hostnqn.as_bytes(),
        b" ",
        subnqn.as_bytes(),
        b" ",
        b"NVMe-over-Fabrics",
    ] {
        s.update(part).map_err(c)?;
    }
    Ok(B64.encode(s.sign_to_vec().map_err(c)?))
}

/// HKDF-Expand-Label of RFC 8446 7.1 after HKDF-Extract with a zero salt.
fn expand_label(
    h: PskHash,
    secret: &[u8],
    label: &str,
    context: &[u8],
    len: usize,
) -> Result<Vec<u8>, KeyError> {
    let full = format!("tls13 {label}");
    if full.len() > 255 || context.len() > 255 || len > u16::MAX as usize {
        return Err(KeyError::Identity(
            "HKDF label or context longer than 255 bytes".into(),
        ));
    }
    let mut info = Vec::with_capacity(4 + full.len() + context.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(context.len() as u8);
    info.extend_from_slice(context);
    hkdf(h, secret, &info, len)
}

fn hkdf(h: PskHash, secret: &[u8], info: &[u8], len: usize) -> Result<Vec<u8>, KeyError> {
    let c = |e: openssl::error::ErrorStack| KeyError::Crypto(e.to_string());
    let mut ctx = PkeyCtx::new_id(Id::HKDF).map_err(c)?;
    ctx.derive_init().map_err(c)?;
    ctx.set_hkdf_md(h.md()).map_err(c)?;
    ctx.set_hkdf_key(secret).map_err(c)?;
    ctx.add_hkdf_info(info).map_err(c)?;
    let mut out = vec![0u8; len];
    let n = ctx.derive(Some(&mut out)).map_err(c)?;
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests;
