//! TLS on ports, as nvmetcli writes it (configfs `addr_tsas`, `addr_treq`):
//! `"addr": {"tsas": "tls1.3", "treq": "required" | "not required", …}`.
//! With `tsas` `tls1.3` a port requires TLS unless `treq` is `"not
//! required"` (then plain TCP and TLS are both served), as Linux nvmet.
//!
//! Keys (Linux keeps them in the kernel keyring, which nvmetcli does not
//! save; these are nvmp's extensions):
//! - `"psk": "NVMeTLSkey-1:…"` on a `hosts[]` entry: that host's configured
//!   PSK; identities (version 0 or 1) and TLS PSKs are derived from it for
//!   whatever subsystem the host names;
//! - top-level `"nvmp_tls_keyring": "/path"`: a key file as nvme-cli exports
//!   the keyring (`<identity> <key>` per line), keys used as they are.
//!
//! Errors name the field, never the key.

use nvmp_tls::{ConfiguredPsk, KeyStore, ServerConfig};

use super::raw::{text, RawConfig};
use super::ConfigError;

/// TSAS SECTYPE of an NVMe/TCP discovery log entry for TLS 1.3 (NVMe/TCP
/// transport specification, "TCP Security Type (SECTYPE): 02h TLS 1.3").
pub const SECTYPE_TLS13: u8 = 2;

/// A port's TLS.
#[derive(Debug, Clone)]
pub struct PortTls {
    /// Plain TCP connections are refused.
    pub required: bool,
    /// The keys (the same for every port of a configuration).
    pub server: ServerConfig,
}

impl PartialEq for PortTls {
    fn eq(&self, o: &Self) -> bool {
        self.required == o.required && self.server.keys().len() == o.server.keys().len()
    }
}
impl Eq for PortTls {}

/// The keys of a configuration, if any.
pub(super) fn server_keys(raw: &RawConfig) -> Result<Option<ServerConfig>, ConfigError> {
    let mut keys = KeyStore::new();
    for (i, h) in raw.hosts.iter().enumerate() {
        let Some(k) = text(&h.psk) else { continue };
        let f = format!("hosts[{i}].psk");
        let nqn = text(&h.nqn).unwrap_or_default();
        let key = ConfiguredPsk::parse(&k).map_err(|e| ConfigError::new(&f, e.to_string()))?;
        keys.insert_host(&nqn, key)
            .map_err(|e| ConfigError::new(&f, e.to_string()))?;
    }
    if let Some(path) = text(&raw.nvmp_tls_keyring) {
        keys.add_file(std::path::Path::new(&path))
            .map_err(|e| ConfigError::new("nvmp_tls_keyring", e.to_string()))?;
    }
    if keys.is_empty() {
        return Ok(None);
    }
    ServerConfig::new(keys)
        .map(Some)
        .map_err(|e| ConfigError::new("hosts", format!("TLS setup: {e}")))
}

/// A port's TLS from `addr.tsas` and the TREQ byte; returns the TREQ the
/// discovery log advertises (a TLS port whose treq is "not specified"
/// advertises "required", as nvmet).
pub(super) fn port_tls(
    tsas: Option<&str>,
    treq: u8,
    keys: Option<&ServerConfig>,
    field: &dyn Fn(&str) -> String,
) -> Result<(Option<PortTls>, u8), ConfigError> {
    let tls = match tsas {
        None | Some("none") => false,
        Some("tls1.3") => true,
        Some(o) => {
            return Err(ConfigError::new(
                field("addr.tsas"),
                format!("{o:?} is not \"none\" or \"tls1.3\""),
            ))
        }
    };
    if !tls {
        if treq == 1 {
            return Err(ConfigError::new(
                field("addr.treq"),
                "\"required\" needs \"tsas\": \"tls1.3\" (the only secure channel of NVMe/TCP)",
            ));
        }
        return Ok((None, treq));
    }
    let Some(server) = keys else {
        return Err(ConfigError::new(
            field("addr.tsas"),
            "TLS port but no key: give hosts[].psk or nvmp_tls_keyring",
        ));
    };
    let required = treq != 2;
    Ok((
        Some(PortTls {
            required,
            server: server.clone(),
        }),
        if required { 1 } else { 2 },
    ))
}

#[cfg(test)]
mod tests {
    use super::super::TargetConfig;

    const KEY: &str = "NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:";

    fn cfg(host_psk: &str, addr_extra: &str) -> String {
        format!(
            r#"{{"hosts": [{{"nqn": "nqn.2024-01.io.nvmp:h1"{host_psk}}}],
  "ports": [{{"portid": 1, "addr": {{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "4420"{addr_extra}}}, "subsystems": ["nqn.2024-01.io.nvmp:s"]}}],
  "subsystems": [{{"nqn": "nqn.2024-01.io.nvmp:s", "attr": {{"allow_any_host": "1"}}, "namespaces": []}}]}}"#
        )
    }

    #[test]
    fn tsas_and_treq_as_nvmetcli_writes_them() {
        let psk = format!(r#", "psk": "{KEY}""#);
        let c = TargetConfig::from_json(&cfg(&psk, r#", "treq": "required", "tsas": "tls1.3""#))
            .unwrap();
        let t = c.ports[0].tls.as_ref().unwrap();
        assert!(t.required);
        assert_eq!(c.ports[0].treq, 1);
        // nvmet: a TLS port whose treq is "not specified" requires TLS.
        let c =
            TargetConfig::from_json(&cfg(&psk, r#", "treq": "not specified", "tsas": "tls1.3""#))
                .unwrap();
        assert!(c.ports[0].tls.as_ref().unwrap().required);
        assert_eq!(c.ports[0].treq, 1);
        let c =
            TargetConfig::from_json(&cfg(&psk, r#", "treq": "not required", "tsas": "tls1.3""#))
                .unwrap();
        assert!(!c.ports[0].tls.as_ref().unwrap().required);
        assert_eq!(c.ports[0].treq, 2);
        let c = TargetConfig::from_json(&cfg(&psk, r#", "tsas": "none""#)).unwrap();
        assert!(c.ports[0].tls.is_none());
    }

    #[test]
    fn errors_name_the_field_not_the_key() {
        let e = TargetConfig::from_json(&cfg("", r#", "treq": "required""#)).unwrap_err();
        assert_eq!(e.field, "ports[0].addr.treq");
        let e = TargetConfig::from_json(&cfg("", r#", "tsas": "tls1.2""#)).unwrap_err();
        assert_eq!(e.field, "ports[0].addr.tsas");
        let e = TargetConfig::from_json(&cfg("", r#", "tsas": "tls1.3""#)).unwrap_err();
        assert!(e.reason.contains("no key"), "{e}");
        let bad = KEY.replace("LrZ:", "Lra:");
        let e = TargetConfig::from_json(&cfg(&format!(r#", "psk": "{bad}""#), "")).unwrap_err();
        assert_eq!(e.field, "hosts[0].psk");
        assert!(e.reason.contains("CRC"), "{e}");
        assert!(!e.to_string().contains("VRLbtn"), "{e}");
        let e = TargetConfig::from_json(&cfg("", "").replace(
            r#""hosts""#,
            r#""nvmp_tls_keyring": "/nonexistent/keys", "hosts""#,
        ))
        .unwrap_err();
        assert_eq!(e.field, "nvmp_tls_keyring");
    }
}
