//! nvme-cli's TLS connect options, on every command that connects:
//! `--tls`, `--tls_key <NVMeTLSkey-1:…>`, `--keyring <key file>`,
//! `--tls_key_identity <identity>` (nvmp has no kernel keyring: `--keyring`
//! names a key file as `nvme tls-key --export` / `gen-tls-key --keyfile`
//! write it). A discovery log entry whose TSAS says TLS 1.3 is connected
//! with TLS when its TREQ requires it or a key is given.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use nvmp_host::nvmp_tls::{HostKey, KeyStore};

#[derive(Clone, Default, Args)]
pub struct TlsArgs {
    /// Connect with TLS 1.3 (needs --tls_key or --keyring).
    #[arg(long = "tls", help_heading = "TLS")]
    pub tls: bool,
    /// TLS PSK in the PSK interchange format (NVMeTLSkey-1:…); implies --tls.
    #[arg(
        long = "tls_key",
        alias = "tls-key",
        value_name = "KEY",
        help_heading = "TLS"
    )]
    pub tls_key: Option<String>,
    /// Key file with "<identity> <key>" lines (as nvme-cli exports a keyring).
    #[arg(long = "keyring", value_name = "FILE", help_heading = "TLS")]
    pub keyring: Option<PathBuf>,
    /// TLS PSK identity to use (with --tls_key: that key is the TLS PSK).
    #[arg(
        long = "tls_key_identity",
        alias = "tls-key-identity",
        value_name = "IDENTITY",
        help_heading = "TLS"
    )]
    pub tls_key_identity: Option<String>,
}

/// The TLS choices of a portal (strings: compared and cloned freely; turned
/// into keys when connecting).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsTuning {
    pub tls: Option<bool>,
    pub tls_key: Option<String>,
    pub keyring: Option<PathBuf>,
    pub tls_key_identity: Option<String>,
}

/// Keys never show in `Debug` output (logs, error reports).
impl std::fmt::Debug for TlsTuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTuning")
            .field("tls", &self.tls)
            .field("tls_key", &self.tls_key.as_ref().map(|_| "<redacted>"))
            .field("keyring", &self.keyring)
            .field("tls_key_identity", &self.tls_key_identity)
            .finish()
    }
}

impl std::fmt::Debug for TlsArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_tuning().fmt(f)
    }
}

impl TlsArgs {
    pub fn to_tuning(&self) -> TlsTuning {
        TlsTuning {
            tls: (self.tls || self.tls_key.is_some()).then_some(true),
            tls_key: self.tls_key.clone(),
            keyring: self.keyring.clone(),
            tls_key_identity: self.tls_key_identity.clone(),
        }
    }
}

impl TlsTuning {
    pub fn or(&self, base: &TlsTuning) -> TlsTuning {
        TlsTuning {
            tls: self.tls.or(base.tls),
            tls_key: self.tls_key.clone().or_else(|| base.tls_key.clone()),
            keyring: self.keyring.clone().or_else(|| base.keyring.clone()),
            tls_key_identity: self
                .tls_key_identity
                .clone()
                .or_else(|| base.tls_key_identity.clone()),
        }
    }

    pub fn has_key(&self) -> bool {
        self.tls_key.is_some() || self.keyring.is_some()
    }

    /// The key to connect with, when TLS is on. Errors name the option,
    /// never the key.
    pub fn host_key(&self) -> Result<Option<HostKey>> {
        if self.tls != Some(true) {
            return Ok(None);
        }
        if !self.has_key() {
            bail!("--tls needs a key: --tls_key NVMeTLSkey-1:… or --keyring FILE (nvmp has no kernel keyring)");
        }
        let keys = match &self.keyring {
            Some(p) => Some(KeyStore::load_file(p).map_err(|e| anyhow!("--keyring: {e}"))?),
            None => None,
        };
        HostKey::from_options(
            self.tls_key.as_deref(),
            keys,
            self.tls_key_identity.as_deref(),
        )
        .map_err(|e| anyhow!("--tls_key: {e}"))
    }

    /// The TLS choice for a discovery log entry: TLS where the entry's TSAS
    /// says TLS 1.3 and its TREQ requires it or a key was given; a required
    /// port without a key is an error that says so.
    pub fn for_entry(&self, treq: u8, sectype: u8, what: &str) -> Result<TlsTuning> {
        let mut t = self.clone();
        if sectype == 2 {
            let required = treq & 3 == 1;
            if required && !self.has_key() {
                bail!("{what}: the port requires TLS (discovery log TREQ): give --tls_key or --keyring");
            }
            if required || self.has_key() {
                t.tls = Some(true);
            }
        }
        Ok(t)
    }
}
