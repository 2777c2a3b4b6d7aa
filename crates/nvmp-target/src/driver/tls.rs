//! Connections on TLS ports (NVMe/TCP transport specification, TLS): the
//! first byte tells a TLS ClientHello (a handshake record, 16h) from a
//! plain ICReq (PDU type 00h). Where TLS is required a plain connection is
//! refused; where it is optional it is served as is. After the handshake
//! the connection runs the same driver as plain TCP over the TLS halves.
//!
//! A failed handshake is logged with its reason (unknown identity, wrong
//! key, TLS required); the identity is logged, keys never are.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::tls::PortTls;
use crate::core::state::{ConnId, ConnSignal, Shared};

/// Time a host gets to send its first byte and finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn serve(
    shared: Arc<Shared>,
    portid: u16,
    stream: TcpStream,
    peer: SocketAddr,
    id: ConnId,
    signal: Arc<ConnSignal>,
    tls: PortTls,
) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await;
    match peeked {
        Ok(Ok(1)) => {}
        Ok(_) => return,
        Err(_) => {
            tracing::warn!(port = portid, %peer, "TLS port: no data from the host in time; closed");
            return;
        }
    }
    if first[0] != nvmp_tls::TLS_HANDSHAKE_BYTE {
        if tls.required {
            tracing::warn!(
                port = portid,
                %peer,
                "connection refused: TLS required on this port (treq \"required\"), the host sent plain NVMe/TCP"
            );
            return;
        }
        super::serve_conn(shared, portid, stream, peer, id, signal).await;
        return;
    }
    let local = stream.local_addr().ok();
    let r = tokio::time::timeout(HANDSHAKE_TIMEOUT, nvmp_tls::accept(stream, &tls.server)).await;
    let (s, who) = match r {
        Err(_) => {
            tracing::warn!(port = portid, %peer, "TLS handshake timed out; closed");
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(port = portid, %peer, error = %e, "TLS connection refused");
            return;
        }
        Ok(Ok(x)) => x,
    };
    tracing::info!(
        port = portid,
        %peer,
        identity = %who.identity,
        cipher = %who.cipher,
        "TLS established"
    );
    let host = nvmp_tls::PskIdentity::parse(&who.identity)
        .ok()
        .map(|i| i.hostnqn);
    let (rd, wr) = s.split();
    super::conn::serve_io(shared, portid, rd, wr, local, peer, id, signal, host).await;
}
