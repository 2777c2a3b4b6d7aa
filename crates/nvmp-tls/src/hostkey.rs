//! Which key a host uses, from nvme-cli's connect options:
//! - `--tls_key <interchange key>`: a configured PSK; the identity (version
//!   1, as current nvme-cli inserts keys given this way, or 0) and the TLS
//!   PSK are derived from it for each subsystem;
//! - `--tls_key` with `--tls_key_identity <identity>`: a key with hash 01
//!   or 02 is taken as the TLS PSK of that identity (libnvme does the same);
//! - `--keyring <key file>`: the entry of `--tls_key_identity`, else the
//!   best entry for this host and subsystem (SHA-384 before SHA-256).

use std::sync::Arc;

use crate::error::KeyError;
use crate::handshake::ClientConfig;
use crate::identity::PskIdentity;
use crate::keyring::KeyStore;
use crate::psk::{ConfiguredPsk, TlsPsk};

#[derive(Debug, Clone)]
pub enum HostKey {
    Configured {
        key: ConfiguredPsk,
        identity_version: u8,
        compat: bool,
    },
    Psk(TlsPsk),
    KeyFile {
        keys: Arc<KeyStore>,
        identity: Option<String>,
    },
}

impl HostKey {
    /// From nvme-cli's options (`tls_key` in interchange format, a key
    /// file already read, an identity).
    pub fn from_options(
        tls_key: Option<&str>,
        keys: Option<KeyStore>,
        identity: Option<&str>,
    ) -> Result<Option<Self>, KeyError> {
        if let Some(k) = tls_key {
            let key = ConfiguredPsk::parse(k)?;
            if let (Some(id), true) = (identity, key.hmac() != 0) {
                let p = PskIdentity::parse(id)?;
                if p.hash.len() != key.key_len() {
                    return Err(KeyError::Length {
                        hmac: p.hash.id(),
                        len: key.key_len(),
                    });
                }
                return Ok(Some(Self::Psk(TlsPsk::new(
                    id.to_string(),
                    p.hash,
                    key.key_bytes(),
                )?)));
            }
            return Ok(Some(Self::Configured {
                key,
                identity_version: 1,
                compat: false,
            }));
        }
        if let Some(keys) = keys {
            if let Some(id) = identity {
                PskIdentity::parse(id)?;
            }
            return Ok(Some(Self::KeyFile {
                keys: Arc::new(keys),
                identity: identity.map(str::to_string),
            }));
        }
        Ok(None)
    }

    /// The TLS PSK for a connection of `hostnqn` to `subnqn`.
    pub fn psk_for(&self, hostnqn: &str, subnqn: &str) -> Result<TlsPsk, KeyError> {
        match self {
            Self::Configured {
                key,
                identity_version,
                compat,
            } => key.tls_psk(hostnqn, subnqn, *identity_version, *compat),
            Self::Psk(p) => Ok(p.clone()),
            Self::KeyFile { keys, identity } => {
                let found = match identity {
                    Some(id) => keys.lookup(id).ok(),
                    None => keys.find_for(hostnqn, subnqn),
                };
                found.ok_or_else(|| {
                    KeyError::Identity(match identity {
                        Some(id) => format!("no key for identity {id:?} in the key file"),
                        None => format!(
                            "no key for host {hostnqn} and subsystem {subnqn} in the key file"
                        ),
                    })
                })
            }
        }
    }

    /// The client configuration for a connection of `hostnqn` to `subnqn`.
    pub fn client_config(
        &self,
        hostnqn: &str,
        subnqn: &str,
    ) -> Result<ClientConfig, crate::TlsError> {
        ClientConfig::new(self.psk_for(hostnqn, subnqn)?)
    }
}
