//! nvmp's NVMe/TCP host (initiator): controllers with an admin queue and
//! I/O queues over TCP, keep-alive, asynchronous events, command timeouts,
//! the Linux reset/reconnect state machine, and discovery.
//!
//! Layout: [`queue`] is the sans-IO core of one connection; `conn` its tokio
//! driver; [`ctrl`] the controller (connect sequence, state machine,
//! supervisor, admin helpers); [`discovery`]; [`keepalive`]; [`options`];
//! [`identity`].
#![forbid(unsafe_code)]

pub mod auth;
pub mod command;
mod conn;
pub mod ctrl;
pub mod discovery;
pub mod error;
pub mod identity;
pub mod keepalive;
pub mod options;
pub mod queue;
mod tls;
pub mod transport;

pub use command::{Completion, IoRequest};
pub use ctrl::state::{CtrlState, Reconnect, ReconnectPolicy};
pub use ctrl::{Controller, CtrlEvent, CtrlStats, Pending, Started};
pub use discovery::{
    discover, discover_with, discovery_options, read_discovery_log, PersistentDiscovery,
};
pub use error::HostError;
pub use identity::HostIdentity;
/// The TLS keys and configurations of [`ControllerOptions::tls`].
pub use nvmp_tls;
pub use options::ControllerOptions;
pub use transport::{Connector, TcpConnector};
