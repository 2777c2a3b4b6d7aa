//! Per-host DH-HMAC-CHAP settings. Linux nvmet keeps them in configfs as the
//! host's `dhchap_key`, `dhchap_ctrl_key`, `dhchap_hash`, `dhchap_dhgroup`;
//! nvmetcli has no JSON field for them yet, so nvmp follows nvmetcli's rule
//! for attribute groups (file `<group>_<name>` → `"<group>": {"<name>": …}`):
//!
//! ```json
//! "hosts": [{"nqn": "nqn.…", "dhchap": {"key": "DHHC-1:00:…:", "ctrl_key": "DHHC-1:…",
//!            "hash": "hmac(sha384)", "dhgroup": "ffdhe3072"}}]
//! ```
//!
//! A host that has a key must authenticate on every I/O subsystem it
//! connects to, also one that admits it through `allow_any_host` (nvmet
//! only authenticates hosts linked in `allowed_hosts`; nvmp does not let a
//! keyed host skip authentication); the discovery subsystem is not
//! authenticated, as in nvmet. Defaults as nvmet: `hmac(sha256)`, `null`.

use std::collections::BTreeMap;

use nvmp_auth::{DhGroup, HashId, Secret};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::raw::text;
use super::ConfigError;

/// The raw `dhchap` object of a host (`Debug` never shows the keys).
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawDhchap {
    pub key: Value,
    pub ctrl_key: Value,
    pub hash: Value,
    pub dhgroup: Value,
}

impl std::fmt::Debug for RawDhchap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDhchap")
            .field("key", &(!self.key.is_null()).then_some("<redacted>"))
            .field(
                "ctrl_key",
                &(!self.ctrl_key.is_null()).then_some("<redacted>"),
            )
            .field("hash", &self.hash)
            .field("dhgroup", &self.dhgroup)
            .finish()
    }
}

/// Validated settings of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhchapSpec {
    pub key: Secret,
    pub ctrl_key: Option<Secret>,
    pub hash: HashId,
    pub group: DhGroup,
}

fn opt(v: &Value) -> Option<String> {
    text(v).filter(|s| !s.trim().is_empty())
}

/// Validate `hosts[i].dhchap` (`field` names it in errors). No key: None.
pub fn validate(raw: &RawDhchap, field: &str) -> Result<Option<DhchapSpec>, ConfigError> {
    let f = |k: &str| format!("{field}.{k}");
    let secret = |k: &str, v: &Value| -> Result<Option<Secret>, ConfigError> {
        opt(v)
            .map(|s| Secret::parse(&s).map_err(|e| ConfigError::new(f(k), e.to_string())))
            .transpose()
    };
    let key = secret("key", &raw.key)?;
    let ctrl_key = secret("ctrl_key", &raw.ctrl_key)?;
    let hash = match opt(&raw.hash) {
        None => HashId::Sha256,
        Some(h) => HashId::parse(&h).ok_or_else(|| {
            ConfigError::new(
                f("hash"),
                format!("{h:?} is not hmac(sha256), hmac(sha384) or hmac(sha512)"),
            )
        })?,
    };
    let group = match opt(&raw.dhgroup) {
        None => DhGroup::Null,
        Some(g) => DhGroup::parse(&g).ok_or_else(|| {
            ConfigError::new(
                f("dhgroup"),
                format!("{g:?} is not null or ffdhe2048/3072/4096/6144/8192"),
            )
        })?,
    };
    match key {
        None if ctrl_key.is_some() => Err(ConfigError::new(
            f("ctrl_key"),
            "a controller key needs a host key",
        )),
        None => Ok(None),
        Some(key) => Ok(Some(DhchapSpec {
            key,
            ctrl_key,
            hash,
            group,
        })),
    }
}

/// Settings of every host that has a key, by host NQN.
pub type DhchapMap = BTreeMap<String, DhchapSpec>;

#[cfg(test)]
mod tests {
    use crate::config::TargetConfig;
    use nvmp_auth::{DhGroup, HashId};

    const H: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000d1";
    const KEY: &str = "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:";

    fn cfg(dhchap: &str) -> Result<TargetConfig, String> {
        let text = format!(
            r#"{{"hosts": [{{"nqn": "{H}", "dhchap": {dhchap}}}], "ports": [], "subsystems": []}}"#
        );
        TargetConfig::from_json(&text).map_err(|e| e.to_string())
    }

    #[test]
    fn hosts_dhchap_parsed_with_nvmet_defaults() {
        let c = cfg(&format!(r#"{{"key": "{KEY}"}}"#)).unwrap();
        let d = &c.dhchap[H];
        assert_eq!(
            (d.hash, d.group, d.ctrl_key.is_none()),
            (HashId::Sha256, DhGroup::Null, true)
        );
        let c = cfg(&format!(
            r#"{{"key": "{KEY}", "ctrl_key": "{KEY}", "hash": "hmac(sha512)", "dhgroup": "ffdhe8192"}}"#
        ))
        .unwrap();
        let d = &c.dhchap[H];
        assert_eq!(
            (d.hash, d.group, d.ctrl_key.is_some()),
            (HashId::Sha512, DhGroup::Ffdhe8192, true)
        );
        // No key: nothing required.
        assert!(cfg(r#"{"key": ""}"#).unwrap().dhchap.is_empty());
    }

    #[test]
    fn errors_name_the_field_and_never_the_key() {
        let bad = KEY.replace("KfiaR", "KfiaS");
        let e = cfg(&format!(r#"{{"key": "{bad}"}}"#)).unwrap_err();
        assert!(
            e.starts_with("hosts[0].dhchap.key:") && e.contains("CRC"),
            "{e}"
        );
        assert!(!e.contains("AAECAw"), "{e}");
        let e = cfg(&format!(r#"{{"key": "{KEY}", "hash": "md5"}}"#)).unwrap_err();
        assert!(e.starts_with("hosts[0].dhchap.hash:"), "{e}");
        let e = cfg(&format!(r#"{{"key": "{KEY}", "dhgroup": "ffdhe1024"}}"#)).unwrap_err();
        assert!(e.starts_with("hosts[0].dhchap.dhgroup:"), "{e}");
        let e = cfg(&format!(r#"{{"ctrl_key": "{KEY}"}}"#)).unwrap_err();
        assert!(e.starts_with("hosts[0].dhchap.ctrl_key:"), "{e}");
    }
}
