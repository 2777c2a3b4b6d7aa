//! The tokio driver: one listener task per port (listening only while the
//! port is up and has a subsystem linked), one task per connection
//! ([`conn`]) that moves bytes between the socket and the sans-IO
//! [`Queue`](crate::core::Queue) and runs backend operations (RAM in line,
//! files on a bounded pool).

mod conn;
pub mod memory;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::core::queue::Limits;
use crate::core::state::Shared;

/// Bind a port's listening socket.
pub async fn bind(shared: &Shared, portid: u16) -> std::io::Result<TcpListener> {
    let addr = {
        let st = shared.lock();
        let p = st
            .ports
            .get(&portid)
            .ok_or_else(|| std::io::Error::other(format!("no port {portid}")))?;
        SocketAddr::new(p.spec.traddr, p.spec.trsvcid)
    };
    let l = TcpListener::bind(addr).await?;
    let local = l.local_addr()?;
    {
        let mut st = shared.lock();
        if let Some(p) = st.ports.get_mut(&portid) {
            // Keep an ephemeral port stable across port down/up.
            if p.spec.trsvcid == 0 {
                p.spec.trsvcid = local.port();
            }
            p.bound = Some(local);
        }
    }
    tracing::info!(port = portid, %local, "listening");
    Ok(l)
}

pub(crate) fn limits_of(shared: &Shared, portid: u16) -> Limits {
    let st = shared.lock();
    let mut l = Limits::default();
    if let Some(p) = st.ports.get(&portid) {
        l.inline_data_size = p.spec.inline_data_size;
        l.max_queue_size = p.spec.max_queue_size;
        l.max_io_queues = p.spec.max_io_queues;
    }
    l
}

fn should_listen(shared: &Shared, portid: u16) -> bool {
    shared
        .lock()
        .ports
        .get(&portid)
        .is_some_and(|p| p.should_listen())
}

fn set_unbound(shared: &Shared, portid: u16) {
    if let Some(p) = shared.lock().ports.get_mut(&portid) {
        p.bound = None;
    }
}

/// The task that owns a port's listener.
pub async fn port_task(
    shared: Arc<Shared>,
    portid: u16,
    mut listener: Option<TcpListener>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changed = shared.ports_changed.subscribe();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let want = should_listen(&shared, portid);
        if want && listener.is_none() {
            match bind(&shared, portid).await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::error!(port = portid, error = %e, "cannot listen; retrying in 1 s");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            }
        } else if !want && listener.is_some() {
            listener = None;
            set_unbound(&shared, portid);
            tracing::info!(port = portid, "listener closed");
        }
        match &listener {
            Some(l) => {
                tokio::select! {
                    r = l.accept() => match r {
                        Ok((stream, peer)) => accept(&shared, portid, stream, peer),
                        Err(e) => {
                            tracing::warn!(port = portid, error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    _ = changed.changed() => {}
                    _ = shutdown.changed() => {}
                }
            }
            None => {
                tokio::select! {
                    _ = changed.changed() => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
    set_unbound(&shared, portid);
}

fn accept(shared: &Arc<Shared>, portid: u16, stream: TcpStream, peer: SocketAddr) {
    let reg = shared.lock().register_conn_from(portid, Some(peer));
    let Some((id, signal)) = reg else {
        tracing::warn!(port = portid, %peer, "connection refused (limit reached or port down)");
        return; // dropping the stream closes it
    };
    tracing::debug!(port = portid, %peer, conn = id, "connection accepted");
    let port_tls = shared
        .lock()
        .ports
        .get(&portid)
        .and_then(|p| p.spec.tls.clone());
    let shared = shared.clone();
    tokio::spawn(async move {
        match port_tls {
            None => serve_conn(shared.clone(), portid, stream, peer, id, signal).await,
            Some(t) => tls::serve(shared.clone(), portid, stream, peer, id, signal, t).await,
        }
        shared.lock().unregister_conn(id);
        tracing::debug!(port = portid, %peer, conn = id, "connection closed");
    });
}

pub use conn::serve_conn;
