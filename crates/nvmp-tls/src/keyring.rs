//! Where keys come from: key files as nvme-cli exports the kernel keyring
//! (`nvme tls-key --export`, `nvme gen-tls-key --insert --keyfile`: one
//! line per key, `<identity> <TLS PSK in interchange format>`), and, on a
//! target, configured PSKs per host NQN (the `"psk"` of `hosts[]`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::error::KeyError;
use crate::identity::PskIdentity;
use crate::psk::{ConfiguredPsk, PskHash, TlsPsk};

/// Largest key file read.
pub const MAX_KEY_FILE: u64 = 1 << 20;
/// Most keys kept.
pub const MAX_KEYS: usize = 4096;

/// Why a target found no key for an identity a host offered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("unknown PSK identity {0:?}")]
    Unknown(String),
    #[error("PSK identity {identity:?}: {reason}")]
    Invalid { identity: String, reason: String },
    #[error("PSK identity {0:?}: its PSK digest does not match the key configured for the host (wrong key)")]
    Digest(String),
}

/// Keys by identity and configured keys by host NQN.
#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    by_identity: BTreeMap<String, TlsPsk>,
    by_host: BTreeMap<String, ConfiguredPsk>,
}

impl KeyStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.by_identity.is_empty() && self.by_host.is_empty()
    }
    pub fn len(&self) -> usize {
        self.by_identity.len() + self.by_host.len()
    }

    /// Read a key file.
    pub fn load_file(path: &Path) -> Result<Self, KeyError> {
        let mut s = Self::new();
        s.add_file(path)?;
        Ok(s)
    }

    /// Add the keys of a key file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), KeyError> {
        let p = path.display().to_string();
        let io = |e: std::io::Error| KeyError::KeyFileIo {
            path: p.clone(),
            reason: e.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > MAX_KEY_FILE {
            return Err(KeyError::KeyFileIo {
                path: p,
                reason: format!("larger than {MAX_KEY_FILE} bytes"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        self.add_text(&text, &p)
    }

    /// Add the keys of key file text (`path` names it in errors).
    pub fn add_text(&mut self, text: &str, path: &str) -> Result<(), KeyError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: String| KeyError::KeyFile {
                path: path.to_string(),
                line: i + 1,
                reason,
            };
            let (id, key) = line
                .rsplit_once(' ')
                .ok_or_else(|| err("expected \"<identity> <key>\"".into()))?;
            let ident = PskIdentity::parse(id).map_err(|e| err(e.to_string()))?;
            let k = ConfiguredPsk::parse(key).map_err(|e| err(e.to_string()))?;
            if k.key_len() != ident.hash.len() {
                return Err(err(format!(
                    "a {}-byte key for a hash {:02} identity",
                    k.key_len(),
                    ident.hash.id()
                )));
            }
            let psk = TlsPsk::new(id.to_string(), ident.hash, k.key_bytes())
                .map_err(|e| err(e.to_string()))?;
            self.insert(psk).map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    }

    /// Add a TLS PSK under its identity.
    pub fn insert(&mut self, psk: TlsPsk) -> Result<(), KeyError> {
        if self.len() >= MAX_KEYS && !self.by_identity.contains_key(&psk.identity) {
            return Err(KeyError::Format(format!("more than {MAX_KEYS} keys")));
        }
        self.by_identity.insert(psk.identity.clone(), psk);
        Ok(())
    }

    /// Add the configured PSK of a host (target side).
    pub fn insert_host(&mut self, hostnqn: &str, key: ConfiguredPsk) -> Result<(), KeyError> {
        if self.len() >= MAX_KEYS && !self.by_host.contains_key(hostnqn) {
            return Err(KeyError::Format(format!("more than {MAX_KEYS} keys")));
        }
        self.by_host.insert(hostnqn.to_string(), key);
        Ok(())
    }

    /// The key for an identity a host offered (target side): a key file
    /// entry with exactly that identity, else one derived from the
    /// configured PSK of the identity's host NQN.
    pub fn lookup(&self, identity: &str) -> Result<TlsPsk, LookupError> {
        if let Some(k) = self.by_identity.get(identity) {
            return Ok(k.clone());
        }
        let id = PskIdentity::parse(identity).map_err(|e| LookupError::Invalid {
            identity: identity.to_string(),
            reason: e.to_string(),
        })?;
        if id.generated {
            return Err(LookupError::Invalid {
                identity: identity.to_string(),
                reason: "generated PSKs (secure channel concatenation) are not supported".into(),
            });
        }
        let Some(cfg) = self.by_host.get(&id.hostnqn) else {
            return Err(LookupError::Unknown(identity.to_string()));
        };
        if cfg.hash() != id.hash {
            return Err(LookupError::Invalid {
                identity: identity.to_string(),
                reason: format!(
                    "hash {:02} but the host's configured key makes hash {:02} identities",
                    id.hash.id(),
                    cfg.hash().id()
                ),
            });
        }
        let derived = cfg
            .tls_psk(&id.hostnqn, &id.subnqn, id.version, false)
            .map_err(|e| LookupError::Invalid {
                identity: identity.to_string(),
                reason: e.to_string(),
            })?;
        if derived.identity != identity {
            return Err(LookupError::Digest(identity.to_string()));
        }
        Ok(derived)
    }

    /// The key a host uses with a subsystem from a key file, as Linux
    /// looks one up: an identity for this host and subsystem, SHA-384
    /// before SHA-256, version 1 before version 0.
    pub fn find_for(&self, hostnqn: &str, subnqn: &str) -> Option<TlsPsk> {
        let mut best: Option<(u8, PskHash, &TlsPsk)> = None;
        for (id, k) in &self.by_identity {
            let Ok(p) = PskIdentity::parse(id) else {
                continue;
            };
            if p.generated || p.hostnqn != hostnqn || p.subnqn != subnqn {
                continue;
            }
            let better = best
                .as_ref()
                .is_none_or(|(v, h, _)| (p.hash, p.version) > (*h, *v));
            if better {
                best = Some((p.version, p.hash, k));
            }
        }
        best.map(|(_, _, k)| k.clone())
    }
}

/// Append a key to a key file (created with mode 0600), as nvme-cli's
/// `--keyfile` does.
pub fn append_key_file(path: &Path, psk: &TlsPsk) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| KeyError::KeyFileIo {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    writeln!(f, "{} {}", psk.identity, psk.to_interchange()).map_err(io)
}
