//! Types shared by the queue state machine and the command handlers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nvmp_wire::{Pdu, Status, StatusCode};

use super::state::ConnId;
use crate::backend::{Backend, IoOp};

/// Per-connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// MAXH2CDATA advertised in ICResp.
    pub maxh2cdata: u32,
    /// Largest data transfer of one command (MDTS), bytes.
    pub mdts_bytes: u32,
    /// In-capsule data accepted on I/O queues (IOCCSZ*16 - 64).
    pub inline_data_size: u32,
    /// Queue size (entries) accepted in Connect (CAP.MQES + 1).
    pub max_queue_size: u16,
    pub max_io_queues: u16,
    /// A started PDU must be complete within this time.
    pub pdu_stall_timeout: Duration,
    /// ICReq and Connect must arrive within this time.
    pub connect_timeout: Duration,
}

/// In-capsule data accepted on the admin queue (Linux sends up to 8 KiB).
pub const ADMIN_INLINE_DATA_SIZE: u32 = 8192;

impl Default for Limits {
    fn default() -> Self {
        Self {
            maxh2cdata: 128 * 1024,
            mdts_bytes: 1 << 20,
            inline_data_size: crate::config::DEFAULT_INLINE_DATA_SIZE,
            max_queue_size: crate::config::DEFAULT_QUEUE_SIZE,
            max_io_queues: crate::config::DEFAULT_MAX_IO_QUEUES,
            pdu_stall_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// What the driver must do.
#[derive(Debug)]
pub enum Output {
    /// Send this PDU (encode with [`Queue::encode_options`](super::queue::Queue::encode_options)).
    Send(Pdu),
    /// Run this backend operation and report with [`Queue::on_io_done`](super::queue::Queue::on_io_done).
    Io {
        cid: u16,
        backend: Arc<Backend>,
        op: IoOp,
        /// Keeps the controller's gate open until the operation ended.
        guard: super::ccr::GateGuard,
    },
    /// Close the connection (after sending what precedes).
    Close,
}

/// A command's completion, with data for controller-to-host transfers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub status: Status,
    pub dw0: u32,
    pub dw1: u32,
    pub data: Option<Bytes>,
}

impl Completion {
    pub fn ok() -> Self {
        Self::status(Status::SUCCESS)
    }
    pub fn status(status: Status) -> Self {
        Self {
            status,
            dw0: 0,
            dw1: 0,
            data: None,
        }
    }
    pub fn err(code: StatusCode) -> Self {
        Self::status(Status::new(code))
    }
    pub fn err_dnr(code: StatusCode) -> Self {
        Self::status(Status::new(code).with_dnr())
    }
    pub fn dw0(dw0: u32) -> Self {
        Self { dw0, ..Self::ok() }
    }
    pub fn data(data: Bytes) -> Self {
        Self {
            data: Some(data),
            ..Self::ok()
        }
    }
}

/// How a command proceeds.
#[derive(Debug)]
pub enum Exec {
    Done(Completion),
    /// Completed later (an AER).
    Deferred,
}

/// The queue's binding to a controller after a successful Connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// Shared, so that cloning a binding never allocates.
    pub subnqn: Arc<str>,
    pub cntlid: u16,
    pub qid: u16,
    pub discovery: bool,
    pub sqsize: u16,
}

/// Context the command handlers need.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub port: u16,
    /// The peer's address, named in per-connection warnings.
    pub peer: Option<SocketAddr>,
    pub conn: ConnId,
    pub local_addr: Option<SocketAddr>,
    pub limits: Limits,
    /// The host NQN of the TLS PSK identity the connection was set up
    /// with (TLS ports): its Connect must name the same host.
    pub tls_hostnqn: Option<String>,
}
