//! Discovery: read a discovery controller's log page, honouring the
//! generation counter; persistent discovery connections.
//!
//! KATO: a one-shot [`discover`] connects with KATO 0 (no keep-alive; the
//! Linux target then applies its own discovery default of 120 s) and
//! disconnects as soon as the log is read. A [`PersistentDiscovery`] uses
//! nvme-cli's NVMF_DEF_DISC_TMO of 30 s ([`DEFAULT_DISCOVERY_KATO_MS`]) and
//! surfaces discovery-log-change AENs.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use nvmp_wire::admin::{AsyncEventType, LogPageId, NOTICE_DISCOVERY_LOG_CHANGE};
use nvmp_wire::log::{DiscoveryEntry, DiscoveryLog};
use nvmp_wire::nqn::DISCOVERY_NQN;
use tokio::sync::broadcast;

use crate::ctrl::{Controller, CtrlEvent};
use crate::error::HostError;
use crate::options::{ControllerOptions, DEFAULT_DISCOVERY_KATO_MS};
use crate::transport::{Connector, TcpConnector};

/// Header and entry sizes of the discovery log page (NVMe-oF, Figure 38/39).
pub const DISC_HDR_LEN: u32 = 1024;
pub const DISC_ENTRY_LEN: u32 = 1024;
/// Entries read at most ("limits on everything").
pub const MAX_DISC_ENTRIES: u64 = 4096;
/// Re-reads when GENCTR changes during a read, at most.
pub const MAX_GENCTR_RETRIES: usize = 10;

/// Options for a discovery controller at `traddr:trsvcid` (well-known discovery NQN, no I/O queues).
pub fn discovery_options(traddr: impl Into<String>, trsvcid: u16) -> ControllerOptions {
    let mut o = ControllerOptions::new(traddr, trsvcid, DISCOVERY_NQN);
    o.kato_ms = 0;
    o.nr_io_queues = 0;
    o
}

/// Connect to the discovery controller named by `opts` (its subnqn is
/// forced to the discovery NQN), read the whole log, disconnect.
pub async fn discover(opts: ControllerOptions) -> Result<Vec<DiscoveryEntry>, HostError> {
    discover_with(opts, Arc::new(TcpConnector)).await
}

pub async fn discover_with(
    mut opts: ControllerOptions,
    connector: Arc<dyn Connector>,
) -> Result<Vec<DiscoveryEntry>, HostError> {
    opts.subnqn = DISCOVERY_NQN.to_string();
    opts.nr_io_queues = 0;
    opts.ctrl_loss_tmo_s = Some(0);
    let c = Controller::connect_with(opts, connector).await?;
    let r = read_discovery_log(&c).await;
    c.disconnect().await;
    Ok(r?.entries)
}

fn header(b: &[u8]) -> Result<(u64, u64), HostError> {
    if b.len() < 16 {
        return Err(HostError::Malformed(
            "discovery log header truncated".into(),
        ));
    }
    let genctr = u64::from_le_bytes(b[0..8].try_into().unwrap_or_default());
    let numrec = u64::from_le_bytes(b[8..16].try_into().unwrap_or_default());
    Ok((genctr, numrec))
}

/// Read the complete discovery log of a (discovery) controller: header,
/// then all entries by offset, then the header again; when GENCTR moved,
/// start over (bounded).
pub async fn read_discovery_log(c: &Controller) -> Result<DiscoveryLog, HostError> {
    for attempt in 0..MAX_GENCTR_RETRIES {
        let h = c
            .get_log_page_nsid(LogPageId::DISCOVERY, 0, 0, true, 0, DISC_HDR_LEN)
            .await?;
        let (genctr, numrec) = header(&h)?;
        if numrec > MAX_DISC_ENTRIES {
            return Err(HostError::Protocol(format!(
                "discovery log NUMREC {numrec} > {MAX_DISC_ENTRIES}"
            )));
        }
        let mut whole = BytesMut::from(&h[..]);
        if numrec > 0 {
            let body = c
                .get_log_page_nsid(
                    LogPageId::DISCOVERY,
                    0,
                    0,
                    true,
                    DISC_HDR_LEN as u64,
                    numrec as u32 * DISC_ENTRY_LEN,
                )
                .await?;
            whole.extend_from_slice(&body);
        }
        // The last read clears RAE so that the next change is reported again.
        let h2 = c
            .get_log_page_nsid(LogPageId::DISCOVERY, 0, 0, false, 0, DISC_HDR_LEN)
            .await?;
        let (genctr2, _) = header(&h2)?;
        if genctr2 != genctr {
            tracing::debug!(
                attempt,
                genctr,
                genctr2,
                "discovery log changed during the read"
            );
            continue;
        }
        let whole: Bytes = whole.freeze();
        let mut log = DiscoveryLog::decode(&whole)
            .map_err(|e| HostError::Malformed(format!("discovery log: {e}")))?;
        log.entries.truncate(numrec as usize);
        return Ok(log);
    }
    Err(HostError::Protocol(format!(
        "discovery log generation kept changing ({MAX_GENCTR_RETRIES} reads)"
    )))
}

/// A persistent discovery connection: stays connected (keep-alive), and
/// reports discovery-log-change events.
#[derive(Debug, Clone)]
pub struct PersistentDiscovery {
    ctrl: Controller,
}

impl PersistentDiscovery {
    pub async fn connect(opts: ControllerOptions) -> Result<Self, HostError> {
        Self::connect_with(opts, Arc::new(TcpConnector)).await
    }
    pub async fn connect_with(
        mut opts: ControllerOptions,
        connector: Arc<dyn Connector>,
    ) -> Result<Self, HostError> {
        opts.subnqn = DISCOVERY_NQN.to_string();
        opts.nr_io_queues = 0;
        if opts.kato_ms == 0 {
            opts.kato_ms = DEFAULT_DISCOVERY_KATO_MS;
        }
        Ok(Self {
            ctrl: Controller::connect_with(opts, connector).await?,
        })
    }
    pub fn controller(&self) -> &Controller {
        &self.ctrl
    }
    pub async fn log(&self) -> Result<DiscoveryLog, HostError> {
        read_discovery_log(&self.ctrl).await
    }
    /// Wait for the next discovery log change notice.
    pub async fn changed(&self, rx: &mut broadcast::Receiver<CtrlEvent>) -> Result<(), HostError> {
        loop {
            match rx.recv().await {
                Ok(CtrlEvent::AsyncEvent(ev))
                    if ev.event_type == AsyncEventType::NOTICE
                        && ev.info == NOTICE_DISCOVERY_LOG_CHANGE =>
                {
                    return Ok(())
                }
                Ok(CtrlEvent::Deleted { reason, .. }) => return Err(HostError::Closed(reason)),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(HostError::Closed("controller gone".into()))
                }
            }
        }
    }
    pub async fn disconnect(&self) {
        self.ctrl.disconnect().await
    }
}
