//! How connections are made: TCP by default; tests plug in-memory streams.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;
pub type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<(BoxRead, BoxWrite)>> + Send>>;

/// Opens one byte stream to `address` ("host:port") for one queue.
pub trait Connector: Send + Sync + 'static {
    fn connect(&self, address: &str) -> ConnectFuture;
}

/// TCP with TCP_NODELAY (as Linux's nvme-tcp).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, address: &str) -> ConnectFuture {
        let address = address.to_string();
        Box::pin(async move {
            let s = TcpStream::connect(&address).await?;
            s.set_nodelay(true)?;
            let (r, w) = s.into_split();
            Ok((Box::new(r) as BoxRead, Box::new(w) as BoxWrite))
        })
    }
}

/// Any closure returning a duplex stream (tests).
impl<F, S> Connector for F
where
    F: Fn(&str) -> io::Result<S> + Send + Sync + 'static,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    fn connect(&self, address: &str) -> ConnectFuture {
        let r = self(address);
        Box::pin(async move {
            let s = r?;
            let (r, w) = tokio::io::split(s);
            Ok((Box::new(r) as BoxRead, Box::new(w) as BoxWrite))
        })
    }
}

/// Connect with a timeout.
pub async fn connect_timeout(
    c: &Arc<dyn Connector>,
    address: &str,
    timeout: Duration,
) -> io::Result<(BoxRead, BoxWrite)> {
    match tokio::time::timeout(timeout, c.connect(address)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect to {address} timed out"),
        )),
    }
}
