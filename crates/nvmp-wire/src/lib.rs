//! The NVMe and NVMe/TCP wire format, sans I/O.
//!
//! This crate has no sockets, no async runtime and no clock: it turns bytes
//! into validated values and back. Everything that crosses the wire between
//! nvmp's host and target (and the Linux kernel's) is defined here.
//!
//! Decoding is strict: every peer-supplied length and offset is checked with
//! bounded readers and checked arithmetic, and every error names the field.
//! No input panics.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod cqe;
pub mod crc;
pub mod error;
pub mod fabrics;
mod field;
pub mod identify;
pub mod io;
pub mod log;
pub mod nqn;
pub mod pdu;
pub mod reader;
pub mod sqe;
pub mod status;
mod text;

pub use cqe::{Cqe, CQE_LEN};
pub use error::{DecodeError, DecodeErrorKind};
pub use nqn::{Nqn, NqnError, DISCOVERY_NQN};
pub use pdu::{Digests, Pdu, PduConfig, PduDecoder, PduError, Role};
pub use sqe::{FabricsType, Opcode, Sgl, Sqe, SQE_LEN};
pub use status::{Status, StatusCode, StatusCodeType};

const _: () = assert!(SQE_LEN == 64, "an SQE is 64 bytes");
const _: () = assert!(CQE_LEN == 16, "a CQE is 16 bytes");
