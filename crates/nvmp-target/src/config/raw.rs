//! The JSON shape `nvmetcli save` writes, deserialized leniently: attribute
//! values may be strings (as nvmetcli writes them) or numbers, unknown keys
//! are ignored (nvmetcli versions add keys such as `pi_enable`, `p2pmem`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawConfig {
    pub hosts: Vec<RawHost>,
    pub ports: Vec<RawPort>,
    pub subsystems: Vec<RawSubsystem>,
    /// nvmp extension: a TLS key file (see `config::tls`).
    pub nvmp_tls_keyring: Value,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawHost {
    pub nqn: Value,
    /// DH-HMAC-CHAP settings (nvmp's extension, see `config::dhchap`).
    pub dhchap: Option<super::dhchap::RawDhchap>,
    /// nvmp extension: the host's configured TLS PSK (see `config::tls`).
    pub psk: Value,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawPort {
    pub portid: Value,
    pub addr: BTreeMap<String, Value>,
    pub param: BTreeMap<String, Value>,
    pub ana_groups: Vec<RawAnaGroup>,
    pub referrals: Vec<Value>,
    pub subsystems: Vec<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawAnaGroup {
    pub grpid: Value,
    pub ana: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawSubsystem {
    pub nqn: Value,
    pub attr: BTreeMap<String, Value>,
    pub allowed_hosts: Vec<Value>,
    pub namespaces: Vec<RawNamespace>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawNamespace {
    pub nsid: Value,
    pub enable: Value,
    pub ana_grpid: Value,
    pub device: BTreeMap<String, Value>,
}

/// A scalar as text: nvmetcli writes attribute values as strings, some
/// tools write numbers; both are accepted. `None` for null/absent.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        _ => None,
    }
}
