//! Discovery referrals of a port (`ports[i].referrals`), as nvmetcli saves
//! them: `{"name": "r1", "portid": 2, "enable": 1, "addr": {"trtype": "tcp",
//! "adrfam": "ipv4", "traddr": "10.0.0.2", "trsvcid": "8009", "treq": "not specified"}}`.
//! Each one is listed in the discovery log of that port as a referral to
//! another discovery service (SUBTYPE 1, SUBNQN = the discovery NQN), as nvmet does.

use serde_json::Value;

use super::raw::text;
use super::ConfigError;

/// A validated referral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralSpec {
    pub portid: u16,
    /// TRTYPE code (rdma 1, fc 2, tcp 3, loop 254).
    pub trtype: u8,
    /// ADRFAM code (ipv4 1, ipv6 2, ib 3, fc 4, loop 254).
    pub adrfam: u8,
    pub treq: u8,
    pub traddr: String,
    pub trsvcid: String,
}

/// Validate `ports[i].referrals[j]`; `Ok(None)` for a disabled referral.
pub(crate) fn referral(v: &Value, base: &str) -> Result<Option<ReferralSpec>, ConfigError> {
    let f = |s: &str| format!("{base}.{s}");
    if !v.is_object() {
        return Err(ConfigError::new(base, "is not an object"));
    }
    if let Some(e) = v.get("enable") {
        match text(e).as_deref().map(str::trim) {
            Some("0") | Some("false") => return Ok(None),
            Some("1") | Some("true") | None => {}
            Some(o) => {
                return Err(ConfigError::new(
                    f("enable"),
                    format!("{o:?} is not 0 or 1"),
                ))
            }
        }
    }
    let portid = match v.get("portid").and_then(text) {
        None => 0,
        Some(p) => p.trim().parse().map_err(|_| {
            ConfigError::new(f("portid"), format!("{p:?} is not a port id (0-65535)"))
        })?,
    };
    let a = |k: &str| v.get("addr").and_then(|x| x.get(k)).and_then(text);
    let trtype = match a("trtype").as_deref() {
        Some("rdma") => 1,
        Some("fc") => 2,
        Some("tcp") => 3,
        Some("loop") => 254,
        o => {
            return Err(ConfigError::new(
                f("addr.trtype"),
                format!("{o:?} is not a transport type (tcp, rdma, fc, loop)"),
            ))
        }
    };
    let adrfam = match a("adrfam").as_deref() {
        Some("ipv4") | None => 1,
        Some("ipv6") => 2,
        Some("ib") => 3,
        Some("fc") => 4,
        Some("loop") => 254,
        Some(o) => {
            return Err(ConfigError::new(
                f("addr.adrfam"),
                format!("{o:?} is not ipv4, ipv6, ib, fc or loop"),
            ))
        }
    };
    let treq = super::validate::parse_treq(a("treq").as_deref(), &f("addr.treq"))?;
    let traddr = a("traddr").unwrap_or_default();
    // Discovery log entry: TRADDR is 256 bytes, TRSVCID 32, NUL padded.
    if traddr.is_empty() || traddr.len() > 255 || !traddr.is_ascii() {
        return Err(ConfigError::new(
            f("addr.traddr"),
            format!("{traddr:?} is not 1 to 255 ASCII characters"),
        ));
    }
    let trsvcid = a("trsvcid").unwrap_or_default();
    if trsvcid.len() > 31 || !trsvcid.is_ascii() {
        return Err(ConfigError::new(
            f("addr.trsvcid"),
            format!("{trsvcid:?} is not at most 31 ASCII characters"),
        ));
    }
    Ok(Some(ReferralSpec {
        portid,
        trtype,
        adrfam,
        treq,
        traddr,
        trsvcid,
    }))
}
