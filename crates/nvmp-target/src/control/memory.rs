//! In-memory connections to a running target (tests in virtual time).

use std::sync::Arc;

use super::TargetHandle;
use crate::driver::memory::serve_stream;

impl TargetHandle {
    /// A connection to `port` over an in-memory pipe of `pipe_bytes` per
    /// direction, served by the same queue state machine as TCP
    /// ([`crate::driver::memory`]). Refused (`ConnectionRefused`) while the
    /// port is down or the connection limit is reached, as a TCP connect
    /// would be; port down closes it like a TCP connection.
    pub fn connect_memory(
        &self,
        port: u16,
        pipe_bytes: usize,
    ) -> std::io::Result<tokio::io::DuplexStream> {
        let reg = self.shared.lock().register_conn_from(port, None);
        let Some((id, signal)) = reg else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("port {port} is down or has no connection slot"),
            ));
        };
        let (host_end, target_end) = tokio::io::duplex(pipe_bytes.max(4096));
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            serve_stream(shared.clone(), port, target_end, id, signal).await;
            shared.lock().unregister_conn(id);
        });
        Ok(host_end)
    }
}
