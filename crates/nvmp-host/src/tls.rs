//! NVMe/TCP over TLS 1.3 (NVMe/TCP transport specification, TLS): the
//! queue's TCP connection is opened, the TLS handshake runs with the PSK
//! [`ControllerOptions::tls`] selects, and the queue driver gets the TLS
//! halves instead of the socket's. Plain TCP never comes here: its
//! driver path is unchanged.

use std::io;
use std::time::Duration;

use nvmp_tls::HostKey;
use tokio::net::TcpStream;

use crate::error::HostError;
use crate::options::ControllerOptions;
use crate::transport::{BoxRead, BoxWrite};

fn denied(m: String) -> HostError {
    HostError::Io(io::Error::new(io::ErrorKind::PermissionDenied, m))
}

/// Open one queue's connection with TLS.
pub(crate) async fn connect(
    opts: &ControllerOptions,
    key: &HostKey,
    timeout: Duration,
) -> Result<(BoxRead, BoxWrite), HostError> {
    let cfg = key
        .client_config(&opts.host.hostnqn, &opts.subnqn)
        .map_err(|e| denied(format!("TLS key: {e}")))?;
    let address = opts.address();
    let r = tokio::time::timeout(timeout, async {
        let s = TcpStream::connect(&address).await?;
        s.set_nodelay(true)?;
        Ok::<_, io::Error>(s)
    })
    .await;
    let tcp = match r {
        Ok(r) => r?,
        Err(_) => {
            return Err(HostError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {address} timed out"),
            )))
        }
    };
    match tokio::time::timeout(timeout, nvmp_tls::connect(tcp, &cfg)).await {
        Err(_) => Err(HostError::Timeout(format!(
            "TLS handshake with {address} (identity {:?})",
            cfg.identity()
        ))),
        Ok(Err(e)) => Err(denied(e.to_string())),
        Ok(Ok(s)) => {
            tracing::debug!(%address, identity = cfg.identity(), cipher = %s.cipher(), "TLS established");
            let (r, w) = s.split();
            Ok((Box::new(r), Box::new(w)))
        }
    }
}
