//! Host errors, by blame. An NVMe completion status of an ordinary command
//! is data (`Completion::status`), not one of these; only the connect
//! sequence and the admin helpers turn a failed status into
//! [`HostError::Status`] because they cannot go on without the result.

use nvmp_wire::Status;

use crate::queue::QueueError;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The controller's bytes could not be decoded.
    #[error("malformed data from the controller: {0}")]
    Malformed(String),
    /// The controller violated the protocol.
    #[error("protocol violation by the controller: {0}")]
    Protocol(String),
    /// The controller wants something nvmp does not support.
    #[error("incompatible controller: {0}")]
    Incompatible(String),
    /// A local timer expired.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Closed locally (disconnect, shutdown) or the controller is dead.
    #[error("closed: {0}")]
    Closed(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The Fabrics Connect was rejected. With DNR it will not be retried.
    #[error("connect rejected by the controller: {status}")]
    ConnectRejected { status: Status },
    /// A command the host needs failed.
    #[error("{what} failed: {status}")]
    Status { what: &'static str, status: Status },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// In-band authentication (DH-HMAC-CHAP) failed; the text names the reason.
    #[error("authentication failed: {0}")]
    Auth(String),
}

impl HostError {
    /// The completion status behind this error, if any.
    pub fn status(&self) -> Option<Status> {
        match self {
            HostError::ConnectRejected { status } | HostError::Status { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

impl From<QueueError> for HostError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Malformed(p) => HostError::Malformed(p.to_string()),
            e @ (QueueError::Protocol { .. } | QueueError::TermReq { .. }) => {
                HostError::Protocol(e.to_string())
            }
            QueueError::Incompatible(s) => HostError::Incompatible(s),
            e @ QueueError::Timeout { .. } => HostError::Timeout(e.to_string()),
            QueueError::Closed => HostError::Closed("connection closed".into()),
        }
    }
}
