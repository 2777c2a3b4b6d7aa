//! The NVMe/TCP secure channel: TLS 1.3 with external pre-shared keys, the
//! key handling of nvme-cli and libnvme, and async TLS streams for nvmp's
//! queue drivers.
//!
//! - [`psk`]: the PSK interchange format, retained and TLS PSK derivation.
//! - [`identity`]: PSK identities (version 0 and 1).
//! - [`keyring`]: key files and per-host configured keys.
//! - [`handshake`]: client/server configurations, [`connect`], [`accept`].
//! - [`stream`]: the established connection, split into halves.
//!
//! OpenSSL does the cryptography and TLS (see docs/TLS.md for why). This is
//! nvmp's only crate with unsafe code, all of it in `ffi` (OpenSSL's TLS
//! 1.3 PSK session callbacks, which rust-openssl does not wrap).
#![deny(unsafe_code)]

pub mod error;
#[allow(unsafe_code)]
mod ffi;
pub mod handshake;
pub mod hostkey;
pub mod identity;
pub mod keyring;
pub mod psk;
pub mod stream;

pub use error::{KeyError, TlsError};
pub use handshake::{accept, connect, ClientConfig, ServerConfig, TlsPeer};
pub use hostkey::HostKey;
pub use identity::PskIdentity;
pub use keyring::{append_key_file, KeyStore, LookupError};
pub use psk::{ConfiguredPsk, PskHash, TlsPsk};
pub use stream::{TlsRead, TlsStream, TlsWrite};

/// First byte of a TLS handshake record (ContentType handshake, RFC 8446
/// 5.1); a plain NVMe/TCP connection starts with an ICReq, PDU type 00h.
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;
