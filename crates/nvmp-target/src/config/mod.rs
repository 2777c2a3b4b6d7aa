//! Configuration: nvmetcli's JSON (as `nvmetcli save` writes it), validated
//! into [`TargetConfig`] before anything listens.
//!
//! # Extensions (documented, all optional; nvmetcli ignores nothing of ours
//! because it never sees these files)
//! - **RAM namespaces**: a namespace whose `device` has no `path` (or an
//!   empty one) but a `size` is backed by memory:
//!   `"device": {"size": "64M", "block_size": "512", "nguid": "…", "uuid": "…"}`.
//!   `size` takes a number of bytes or a `K`/`M`/`G`/`T` suffix (powers of
//!   two); `block_size` is 512 (default) or 4096. A `path` of the form
//!   `"ram:64M"` is the same thing in one string.
//! - **Advertised address**: `param.nvmp_advertise_traddr` on a port is the
//!   address put in discovery log entries for that port (for NAT: a QEMU guest
//!   reaches the host's 127.0.0.1 as 10.0.2.2). Without it, the configured
//!   `traddr` is advertised, and for an ANY address (`0.0.0.0`, `::`) the
//!   address the discovery connection arrived on, as Linux nvmet does.
//! - **Ephemeral ports**: `trsvcid` `"0"` binds an ephemeral port (tests);
//!   the bound port is what discovery advertises and what `status` reports.
//! - **Other transports**: ports whose `trtype` is not `tcp` (rdma, fc,
//!   loop) load, as nvmetcli accepts them, but are skipped with a warning
//!   ([`TargetConfig::skipped_ports`]).
//! - **Limits**: `param.nvmp_max_queue_size` (default 128) and
//!   `param.nvmp_max_io_queues` (default 16).
//! - **Multipath test knobs** (subsystem `attr`): `nvmp_anatt` (ANATT in
//!   seconds, default 10 as nvmet), `nvmp_ana` (`"0"`: report no ANA support
//!   in CMIC and ignore ANA states on I/O; default `"1"`), `nvmp_nmic_shared`
//!   (`"0"`: namespaces report NMIC "not shared"; default `"1"`),
//!   `nvmp_cqt_ms` (Command Quiesce Time reported in Identify Controller,
//!   0..=65535 ms; default 1000, see `core::ccr::DEFAULT_CQT_MS`).

pub mod dhchap;
pub mod raw;
mod referral;
pub mod tls;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

pub use nvmp_wire::log::AnaState;
pub use raw::RawConfig;
pub use referral::ReferralSpec;
pub use validate::validate;

/// Validate one namespace given in nvmetcli's JSON shape (run-time additions).
pub fn validate_namespace(
    raw: &raw::RawNamespace,
    field: &str,
) -> Result<NamespaceSpec, ConfigError> {
    validate::namespace(raw, field)
}

/// A configuration error: the field (as a JSON path) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Default in-capsule data size (nvmet-tcp's default `inline_data_size`).
pub const DEFAULT_INLINE_DATA_SIZE: u32 = 8192;
/// Largest in-capsule data size we accept in the configuration.
pub const MAX_INLINE_DATA_SIZE: u32 = 128 * 1024;
/// Default I/O queue size (entries), as Linux.
pub const DEFAULT_QUEUE_SIZE: u16 = 128;
/// Default maximum number of I/O queues per controller.
pub const DEFAULT_MAX_IO_QUEUES: u16 = 16;
/// Highest ANA group ID (ANAGRPMAX = NANAGRPID, as nvmet).
pub const MAX_ANA_GROUPS: u32 = 128;
/// Highest NSID (NN = MNAN, as nvmet's NVMET_MAX_NAMESPACES).
pub const MAX_NSID: u32 = 1024;

/// Address family of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddrFamily {
    Ipv4,
    Ipv6,
}

/// A validated port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub portid: u16,
    pub adrfam: AddrFamily,
    pub traddr: IpAddr,
    /// 0 = ephemeral (extension, for tests).
    pub trsvcid: u16,
    /// TREQ byte of discovery entries: 0 not specified, 1 required, 2 not required.
    pub treq: u8,
    pub inline_data_size: u32,
    pub advertise_traddr: Option<String>,
    pub max_queue_size: u16,
    pub max_io_queues: u16,
    /// Configured ANA groups and their states on this port.
    pub ana_groups: BTreeMap<u32, AnaState>,
    /// Linked subsystem NQNs.
    /// Referrals to other discovery services, listed in this port's discovery log.
    pub referrals: Vec<ReferralSpec>,
    pub subsystems: Vec<String>,
    /// TLS 1.3 on this port (`addr.tsas` `tls1.3`), see [`tls`].
    pub tls: Option<tls::PortTls>,
}

/// Backing store of a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// A regular file or block device.
    File { path: PathBuf },
    /// Memory (extension).
    Ram { size: u64, block_size: u32 },
    /// Memory allocated and made resident at creation, in huge pages where
    /// the system gives them (extension: `"populate": "1"` in `device`).
    RamPopulated { size: u64, block_size: u32 },
}

/// A validated namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceSpec {
    pub nsid: u32,
    pub enable: bool,
    pub ana_grpid: u32,
    pub device: DeviceSpec,
    pub nguid: Option<[u8; 16]>,
    pub uuid: Option<[u8; 16]>,
}

/// A validated subsystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsystemSpec {
    pub nqn: String,
    pub allow_any_host: bool,
    pub allowed_hosts: BTreeSet<String>,
    pub serial: String,
    pub model: String,
    /// VER as encoded in Identify Controller (major << 16 | minor << 8 | tertiary).
    pub version: u32,
    pub cntlid_min: u16,
    pub cntlid_max: u16,
    pub namespaces: Vec<NamespaceSpec>,
    /// Extensions for multipath testing (attr keys `nvmp_anatt`, `nvmp_ana`,
    /// `nvmp_nmic_shared`; see the crate docs).
    pub ext: SubsystemExt,
}

/// nvmp's own subsystem attributes, for exercising multipath hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubsystemExt {
    /// ANATT reported in Identify Controller, seconds (attr `nvmp_anatt`, 1..=255; nvmet: 10).
    pub anatt_s: u8,
    /// Report ANA (CMIC bit 3) and check ANA states on I/O (attr `nvmp_ana`, default "1").
    pub ana: bool,
    /// Namespaces report NMIC "shared" (attr `nvmp_nmic_shared`, default "1").
    pub nmic_shared: bool,
    /// CQT in Identify Controller, ms (attr `nvmp_cqt_ms`, default 1000).
    pub cqt_ms: u16,
}

impl Default for SubsystemExt {
    fn default() -> Self {
        Self {
            anatt_s: 10,
            ana: true,
            nmic_shared: true,
            cqt_ms: crate::core::ccr::DEFAULT_CQT_MS,
        }
    }
}

/// A whole validated configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetConfig {
    pub hosts: BTreeSet<String>,
    /// DH-HMAC-CHAP settings of hosts that have a key (`hosts[].dhchap`).
    pub dhchap: dhchap::DhchapMap,
    pub ports: Vec<PortSpec>,
    pub subsystems: Vec<SubsystemSpec>,
    /// Ports nvmetcli accepts but this target cannot serve (RDMA, FC,
    /// loop): loaded, reported here and in the log, not served.
    pub skipped_ports: Vec<(u16, String)>,
}

impl TargetConfig {
    /// Parse and validate nvmetcli JSON text.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("(file)", format!("not valid nvmetcli JSON: {e}")))?;
        validate(&raw)
    }

    /// Read, parse and validate a config file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        Self::from_json(&text)
    }
}

/// Parse a UUID / NGUID written as 32 hex digits with optional dashes.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let t = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(t, 16).ok()?;
    }
    Some(out)
}

/// Format 16 bytes as a dashed UUID.
pub fn format_uuid(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parse a size: bytes, or with a K/M/G/T suffix (powers of two; an optional
/// trailing `B`/`iB`).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s
        .strip_suffix("iB")
        .or_else(|| s.strip_suffix('B'))
        .unwrap_or(s);
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        't' | 'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests;
