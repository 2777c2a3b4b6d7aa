//! Errors of key handling and of the TLS handshake. None of them carries
//! key material.

/// A key, identity or key file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid key: {0}")]
    Format(String),
    #[error("invalid HMAC identifier {0} (0 none, 1 SHA-256, 2 SHA-384)")]
    Hmac(u8),
    #[error(
        "invalid key length {len} for hash {hmac:02} (32 bytes for 01, 48 for 02, either for 00)"
    )]
    Length { hmac: u8, len: usize },
    #[error("CRC mismatch (key {key:08x}, crc {crc:08x})")]
    Crc { key: u32, crc: u32 },
    #[error("invalid secret: {0}")]
    Secret(String),
    #[error("invalid PSK identity: {0}")]
    Identity(String),
    #[error("key file {path}: line {line}: {reason}")]
    KeyFile {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("key file {path}: {reason}")]
    KeyFileIo { path: String, reason: String },
    #[error("crypto: {0}")]
    Crypto(String),
}

/// Why a TLS connection could not be set up; the text names the reason.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    #[error("TLS: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS setup: {0}")]
    Setup(String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl From<openssl::error::ErrorStack> for TlsError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        TlsError::Setup(e.to_string())
    }
}

impl From<TlsError> for std::io::Error {
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::Io(e) => e,
            e => std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()),
        }
    }
}
