//! Controller options, with Linux's defaults (drivers/nvme/host/fabrics.h)
//! and nvme-cli's names.

use std::time::Duration;

use crate::ctrl::state::ReconnectPolicy;
use crate::error::HostError;
use crate::identity::HostIdentity;

/// Linux NVMF_DEF_QUEUE_SIZE.
pub const DEFAULT_QUEUE_SIZE: u16 = 128;
/// Linux NVMF_MIN_QUEUE_SIZE / NVMF_MAX_QUEUE_SIZE.
pub const MIN_QUEUE_SIZE: u16 = 16;
pub const MAX_QUEUE_SIZE: u16 = 1024;
/// Linux NVME_AQ_DEPTH.
pub const ADMIN_QUEUE_SIZE: u16 = 32;
/// Linux NVME_DEFAULT_KATO (5 s).
pub const DEFAULT_KATO_MS: u32 = 5_000;
/// Linux NVMF_DEF_RECONNECT_DELAY (10 s).
pub const DEFAULT_RECONNECT_DELAY_MS: u64 = 10_000;
/// Linux NVMF_DEF_CTRL_LOSS_TMO (600 s).
pub const DEFAULT_CTRL_LOSS_TMO_S: u64 = 600;
/// Linux NVME_IO_TIMEOUT (30 s).
pub const DEFAULT_IO_TIMEOUT_MS: u64 = 30_000;
/// Linux NVME_ADMIN_TIMEOUT (60 s).
pub const DEFAULT_ADMIN_TIMEOUT_MS: u64 = 60_000;
/// nvme-cli NVMF_DEF_DISC_TMO: the KATO of a persistent discovery controller
/// (the kernel target itself uses 120 s when a discovery host sends KATO 0).
pub const DEFAULT_DISCOVERY_KATO_MS: u32 = 30_000;
/// TCP connect timeout (Linux relies on the socket's; nvmp bounds it).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Commands held while reconnecting, at most.
pub const DEFAULT_MAX_QUEUED: usize = 4096;

/// How to reach and run one controller.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Transport address (IPv4/IPv6 literal or host name).
    pub traddr: String,
    /// Transport service ID (TCP port).
    pub trsvcid: u16,
    pub subnqn: String,
    pub host: HostIdentity,
    /// Keep Alive Timeout; 0 disables keep-alive.
    pub kato_ms: u32,
    /// I/O queues (each its own TCP connection); default: available cores.
    pub nr_io_queues: u16,
    /// Depth of each I/O queue (16..=1024).
    pub queue_size: u16,
    pub reconnect_delay_ms: u64,
    /// None: reconnect forever (nvme-cli's -1).
    pub ctrl_loss_tmo_s: Option<u64>,
    /// None: off (Linux's default).
    pub fast_io_fail_tmo_s: Option<u64>,
    pub hdr_digest: bool,
    pub data_digest: bool,
    pub io_timeout_ms: u64,
    pub admin_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Hold commands submitted while the controller is resetting or
    /// connecting until it is live again (single path); when false they
    /// complete at once with 0x370 so that a multipath layer requeues them.
    pub queue_while_reconnecting: bool,
    /// Bound of the commands held while reconnecting.
    pub max_queued: usize,
    /// Asynchronous Event Requests kept outstanding (bounded by AERL + 1).
    pub max_aers: u8,
    /// DH-HMAC-CHAP host key (`--dhchap-secret`), used when the controller
    /// requires authentication.
    pub dhchap_secret: Option<nvmp_auth::Secret>,
    /// DH-HMAC-CHAP controller key (`--dhchap-ctrl-secret`): the controller
    /// must authenticate itself too (bidirectional).
    pub dhchap_ctrl_secret: Option<nvmp_auth::Secret>,
    /// DH groups offered in AUTH_Negotiate; empty: all (as Linux).
    pub dhchap_dhgroups: Vec<nvmp_auth::DhGroup>,
    /// TLS 1.3 with this PSK on every queue (nvme-cli's `--tls`); None:
    /// plain TCP.
    pub tls: Option<nvmp_tls::HostKey>,
}

impl ControllerOptions {
    /// Options with Linux's defaults for a portal and subsystem.
    pub fn new(traddr: impl Into<String>, trsvcid: u16, subnqn: impl Into<String>) -> Self {
        Self {
            traddr: traddr.into(),
            trsvcid,
            subnqn: subnqn.into(),
            host: HostIdentity::from_system(),
            kato_ms: DEFAULT_KATO_MS,
            nr_io_queues: default_io_queues(),
            queue_size: DEFAULT_QUEUE_SIZE,
            reconnect_delay_ms: DEFAULT_RECONNECT_DELAY_MS,
            ctrl_loss_tmo_s: Some(DEFAULT_CTRL_LOSS_TMO_S),
            fast_io_fail_tmo_s: None,
            hdr_digest: false,
            data_digest: false,
            io_timeout_ms: DEFAULT_IO_TIMEOUT_MS,
            admin_timeout_ms: DEFAULT_ADMIN_TIMEOUT_MS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            queue_while_reconnecting: true,
            max_queued: DEFAULT_MAX_QUEUED,
            max_aers: 4,
            dhchap_secret: None,
            dhchap_ctrl_secret: None,
            dhchap_dhgroups: Vec::new(),
            tls: None,
        }
    }

    /// "host:port" for connecting (IPv6 literals bracketed).
    pub fn address(&self) -> String {
        if self.traddr.contains(':') && !self.traddr.starts_with('[') {
            format!("[{}]:{}", self.traddr, self.trsvcid)
        } else {
            format!("{}:{}", self.traddr, self.trsvcid)
        }
    }

    pub fn is_discovery(&self) -> bool {
        self.subnqn == nvmp_wire::nqn::DISCOVERY_NQN
    }

    pub fn reconnect_policy(&self) -> ReconnectPolicy {
        ReconnectPolicy {
            reconnect_delay: Duration::from_millis(self.reconnect_delay_ms),
            ctrl_loss_tmo: self.ctrl_loss_tmo_s.map(Duration::from_secs),
            fast_io_fail_tmo: self.fast_io_fail_tmo_s.map(Duration::from_secs),
        }
    }

    /// Check limits ("Limits on everything").
    pub fn validate(&self) -> Result<(), HostError> {
        let bad = |m: String| Err(HostError::InvalidArgument(m));
        if !(MIN_QUEUE_SIZE..=MAX_QUEUE_SIZE).contains(&self.queue_size) {
            return bad(format!(
                "queue_size {} not in {MIN_QUEUE_SIZE}..={MAX_QUEUE_SIZE}",
                self.queue_size
            ));
        }
        if self.nr_io_queues > 256 {
            return bad(format!("nr_io_queues {} > 256", self.nr_io_queues));
        }
        if self.subnqn.is_empty() || self.subnqn.len() > 223 {
            return bad("subsystem NQN must be 1..=223 bytes".into());
        }
        if self.host.hostnqn.is_empty() || self.host.hostnqn.len() > 223 {
            return bad("host NQN must be 1..=223 bytes".into());
        }
        if self.reconnect_delay_ms == 0 {
            return bad("reconnect_delay_ms must be > 0".into());
        }
        if self.io_timeout_ms == 0 || self.admin_timeout_ms == 0 {
            return bad("timeouts must be > 0".into());
        }
        Ok(())
    }
}

/// One I/O queue per available core, as Linux.
pub fn default_io_queues() -> u16 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(256) as u16)
}
