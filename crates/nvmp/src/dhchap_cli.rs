//! DH-HMAC-CHAP options of every command that connects, with nvme-cli's
//! names: `-S/--dhchap-secret` (the host key) and `-C/--dhchap-ctrl-secret`
//! (the controller key: bidirectional authentication), in the `DHHC-1:…`
//! form `nvme gen-dhchap-key` prints. libnvme config.json's `dhchap_key`
//! (host or port) and `dhchap_ctrl_key` (port) mean the same.

use anyhow::{anyhow, Result};
use nvmp_auth::Secret;

/// Command-line flags.
#[derive(Clone, Default, clap::Args)]
pub struct DhchapArgs {
    /// DH-HMAC-CHAP host key (DHHC-1:…), used when the controller requires authentication.
    #[arg(
        short = 'S',
        long = "dhchap-secret",
        alias = "dhchap_secret",
        value_name = "KEY",
        help_heading = "Authentication"
    )]
    pub dhchap_secret: Option<String>,
    /// DH-HMAC-CHAP controller key (DHHC-1:…): the controller must authenticate too.
    #[arg(
        short = 'C',
        long = "dhchap-ctrl-secret",
        alias = "dhchap_ctrl_secret",
        value_name = "KEY",
        help_heading = "Authentication"
    )]
    pub dhchap_ctrl_secret: Option<String>,
}

/// The keys of a portal, as text (checked by [`DhchapTuning::secrets`]).
/// `Debug` says whether a key is set, never the key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DhchapTuning {
    pub secret: Option<String>,
    pub ctrl_secret: Option<String>,
}

impl std::fmt::Debug for DhchapTuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhchapTuning")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field(
                "ctrl_secret",
                &self.ctrl_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl std::fmt::Debug for DhchapArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_tuning().fmt(f)
    }
}

impl DhchapArgs {
    pub fn to_tuning(&self) -> DhchapTuning {
        DhchapTuning {
            secret: self.dhchap_secret.clone(),
            ctrl_secret: self.dhchap_ctrl_secret.clone(),
        }
    }
}

impl DhchapTuning {
    /// `self`'s keys where set, else `base`'s.
    pub fn or(&self, base: &DhchapTuning) -> DhchapTuning {
        DhchapTuning {
            secret: self.secret.clone().or_else(|| base.secret.clone()),
            ctrl_secret: self
                .ctrl_secret
                .clone()
                .or_else(|| base.ctrl_secret.clone()),
        }
    }

    /// The parsed keys; an error names the flag and the problem (never the key).
    pub fn secrets(&self) -> Result<(Option<Secret>, Option<Secret>)> {
        let parse = |flag: &str, s: &Option<String>| {
            s.as_deref()
                .map(|k| Secret::parse(k).map_err(|e| anyhow!("{flag}: {e}")))
                .transpose()
        };
        let secret = parse("--dhchap-secret", &self.secret)?;
        let ctrl = parse("--dhchap-ctrl-secret", &self.ctrl_secret)?;
        if ctrl.is_some() && secret.is_none() {
            return Err(anyhow!("--dhchap-ctrl-secret needs --dhchap-secret"));
        }
        Ok((secret, ctrl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:";

    #[test]
    fn secrets_are_checked_and_never_echoed() {
        let t = DhchapTuning {
            secret: Some(KEY.into()),
            ctrl_secret: None,
        };
        let (s, c) = t.secrets().unwrap();
        assert_eq!(s.unwrap().to_dhhc1(), KEY);
        assert!(c.is_none());
        let bad = DhchapTuning {
            secret: Some(KEY.replace("KfiaR", "KfiaS")),
            ctrl_secret: None,
        };
        let e = bad.secrets().unwrap_err().to_string();
        assert!(e.contains("--dhchap-secret") && e.contains("CRC"), "{e}");
        assert!(!e.contains("AAECAw"), "{e}");
        let only_ctrl = DhchapTuning {
            secret: None,
            ctrl_secret: Some(KEY.into()),
        };
        assert!(only_ctrl.secrets().is_err());
        assert_eq!(only_ctrl.or(&t).secret.as_deref(), Some(KEY));
        assert!(!format!("{t:?}").contains("AAECAw"));
    }
}
