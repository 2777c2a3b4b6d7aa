//! `nvmp gen-tls-key` and `nvmp check-tls-key`, with current nvme-cli's
//! options and output (nvme-cli 3 calls them `keys gen-tls`/`keys
//! check-tls`). nvmp has no kernel keyring: `--insert` appends the derived
//! TLS PSK under its identity to a key file (`--keyfile`, else `--keyring`
//! taken as a file), the format `nvme tls-key --export` writes; `--keyring`
//! of check-tls-key is a key file to look the identity up in.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use nvmp_host::nvmp_tls::{append_key_file, ConfiguredPsk, KeyStore};

#[derive(Debug, Args)]
pub struct GenTlsKey {
    /// Key file to insert the derived TLS PSK into (with --insert).
    #[arg(short = 'k', long = "keyring")]
    pub keyring: Option<PathBuf>,
    /// Key type (only "psk").
    #[arg(short = 't', long = "keytype", default_value = "psk")]
    pub keytype: String,
    /// Host NQN the retained key is derived for (default: the system's).
    #[arg(short = 'n', long = "hostnqn")]
    pub hostnqn: Option<String>,
    /// Subsystem NQN the TLS PSK and identity are derived for.
    #[arg(short = 'c', long = "subsysnqn")]
    pub subsysnqn: Option<String>,
    /// HMAC of the retained key: 1 SHA-256 (32-byte key), 2 SHA-384 (48).
    #[arg(short = 'm', long = "hmac", default_value_t = 1)]
    pub hmac: u8,
    /// Identity version: 0 (NVMe/TCP 1.0c), 1 (TP 8018, with the PSK digest).
    #[arg(short = 'I', long = "identity", default_value_t = 0)]
    pub identity: u8,
    /// Secret in hexadecimal (default: random).
    #[arg(short = 's', long = "secret")]
    pub secret: Option<String>,
    /// Insert the derived TLS PSK into the key file.
    #[arg(short = 'i', long = "insert")]
    pub insert: bool,
    /// The pre-RFC 8446 derivation of older nvme-cli releases.
    #[arg(short = 'C', long = "compat")]
    pub compat: bool,
    /// Key file to append the inserted key to.
    #[arg(short = 'f', long = "keyfile")]
    pub keyfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckTlsKey {
    /// Key file to look the identity up in.
    #[arg(short = 'k', long = "keyring")]
    pub keyring: Option<PathBuf>,
    /// Key type (only "psk").
    #[arg(short = 't', long = "keytype", default_value = "psk")]
    pub keytype: String,
    /// Host NQN (with --subsysnqn; default: the system's).
    #[arg(short = 'n', long = "hostnqn")]
    pub hostnqn: Option<String>,
    /// Subsystem NQN: also print the TLS identity and look it up.
    #[arg(short = 'c', long = "subsysnqn")]
    pub subsysnqn: Option<String>,
    /// The key (default: read from stdin); `--key` as nvme-cli 2.x.
    #[arg(short = 'd', long = "keydata", alias = "key")]
    pub keydata: Option<String>,
    /// Identity version: 0 or 1.
    #[arg(short = 'I', long = "identity", default_value_t = 0)]
    pub identity: u8,
    /// The pre-RFC 8446 derivation of older nvme-cli releases.
    #[arg(short = 'C', long = "compat")]
    pub compat: bool,
}

fn host_nqn(n: &Option<String>) -> String {
    n.clone()
        .unwrap_or_else(|| nvmp_host::HostIdentity::from_system().hostnqn)
}

pub fn gen(a: GenTlsKey) -> Result<()> {
    if a.keytype != "psk" {
        bail!("Invalid key type {:?} (only \"psk\")", a.keytype);
    }
    if !(1..=2).contains(&a.hmac) {
        bail!("Invalid HMAC identifier {}", a.hmac);
    }
    if a.identity > 1 {
        bail!("Invalid TLS identity version {}", a.identity);
    }
    if a.insert && a.subsysnqn.is_none() {
        bail!("No subsystem NQN specified");
    }
    let key = match &a.secret {
        Some(s) => ConfiguredPsk::from_hex(a.hmac, s).map_err(|e| anyhow!("{e}"))?,
        None => ConfiguredPsk::generate(a.hmac).map_err(|e| anyhow!("{e}"))?,
    };
    println!("{}", key.to_interchange());
    if a.insert {
        let file = a
            .keyfile
            .or(a.keyring)
            .ok_or_else(|| anyhow!("--insert needs --keyfile FILE (nvmp has no kernel keyring)"))?;
        let sub = a.subsysnqn.unwrap_or_default();
        let psk = key
            .tls_psk(&host_nqn(&a.hostnqn), &sub, a.identity, a.compat)
            .map_err(|e| anyhow!("Failed to insert key, {e}"))?;
        append_key_file(&file, &psk).map_err(|e| anyhow!("Failed to insert key, {e}"))?;
        println!(
            "Inserted TLS key {:?} into {}",
            psk.identity,
            file.display()
        );
    }
    Ok(())
}

pub fn check(a: CheckTlsKey) -> Result<()> {
    if a.identity > 1 {
        bail!("Invalid TLS identity version {}", a.identity);
    }
    let text = match a.keydata {
        Some(k) => k,
        None => {
            let mut s = String::new();
            std::io::stdin()
                .take(4096)
                .read_to_string(&mut s)
                .map_err(|e| anyhow!("No key data: {e}"))?;
            s
        }
    };
    let key = ConfiguredPsk::parse(text.trim()).map_err(|e| anyhow!("Key decoding failed, {e}"))?;
    println!(
        "Key is valid (HMAC {}, length {})",
        key.hmac(),
        key.key_len()
    );
    let Some(sub) = a.subsysnqn else {
        return Ok(());
    };
    let psk = key
        .tls_psk(&host_nqn(&a.hostnqn), &sub, a.identity, a.compat)
        .map_err(|e| anyhow!("Failed to generate identity, {e}"))?;
    println!("{}", psk.identity);
    let loaded = match &a.keyring {
        Some(f) if f.exists() => KeyStore::load_file(f)
            .map_err(|e| anyhow!("Failed to lookup keyring, {e}"))?
            .lookup(&psk.identity)
            .is_ok_and(|k| k == psk),
        _ => false,
    };
    println!(
        "{}",
        if loaded {
            "Key is loaded"
        } else {
            "Key is not loaded"
        }
    );
    Ok(())
}
