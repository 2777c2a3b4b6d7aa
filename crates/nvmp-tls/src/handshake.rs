//! Client and server configurations and the handshakes.
//!
//! Both sides: TLS 1.3 only, external PSK only (no certificates: a server
//! without a PSK for the offered identity has nothing to authenticate with
//! and the handshake fails), no session tickets, the two NVMe/TCP cipher
//! suites (the NVMe/TCP transport specification's TLS 1.3 profile: TLS_AES_128_GCM_SHA256
//! shall be supported, TLS_AES_256_GCM_SHA384 should be). A client offers
//! the suite of its PSK's hash; a server takes either.

use std::sync::{Arc, Mutex};

use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslContextBuilder, SslMethod, SslMode, SslOptions, SslStream,
    SslVerifyMode, SslVersion,
};
use tokio::net::TcpStream;

use crate::error::TlsError;
use crate::ffi;
use crate::keyring::{KeyStore, LookupError};
use crate::psk::{PskHash, TlsPsk};
use crate::stream::{Io, TlsStream};

const BOTH_SUITES: &str = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";

fn base(method: SslMethod, suites: &str) -> Result<SslContextBuilder, TlsError> {
    let mut b = SslContextBuilder::new(method)?;
    b.set_min_proto_version(Some(SslVersion::TLS1_3))?;
    b.set_max_proto_version(Some(SslVersion::TLS1_3))?;
    b.set_ciphersuites(suites)?;
    b.set_options(SslOptions::NO_TICKET);
    b.set_mode(SslMode::ACCEPT_MOVING_WRITE_BUFFER | SslMode::ENABLE_PARTIAL_WRITE);
    // No certificate is trusted: only the PSK authenticates.
    b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    Ok(b)
}

/// What a host connects with.
#[derive(Clone)]
pub struct ClientConfig {
    psk: TlsPsk,
    ctx: SslContext,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("psk", &self.psk)
            .finish()
    }
}

impl ClientConfig {
    pub fn new(psk: TlsPsk) -> Result<Self, TlsError> {
        let mut b = base(SslMethod::tls_client(), psk.hash.cipher_suite())?;
        ffi::install_client(&mut b);
        Ok(Self {
            psk,
            ctx: b.build(),
        })
    }
    pub fn identity(&self) -> &str {
        &self.psk.identity
    }
    pub fn hash(&self) -> PskHash {
        self.psk.hash
    }
}

/// What a target accepts with: the keys it knows.
#[derive(Clone)]
pub struct ServerConfig {
    keys: Arc<KeyStore>,
    ctx: SslContext,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl ServerConfig {
    pub fn new(keys: KeyStore) -> Result<Self, TlsError> {
        let mut b = base(SslMethod::tls_server(), BOTH_SUITES)?;
        b.set_num_tickets(0)?;
        // Servers ask for no certificate; resuming the PSK "session" needs
        // a session ID context.
        b.set_verify(SslVerifyMode::NONE);
        b.set_session_id_context(b"nvmp-nvme-tcp")?;
        ffi::install_server(&mut b);
        Ok(Self {
            keys: Arc::new(keys),
            ctx: b.build(),
        })
    }
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }
}

/// Who a server connection's peer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPeer {
    pub identity: String,
    pub hash: PskHash,
    pub cipher: String,
}

/// Run a handshake to its end, waiting on the socket as OpenSSL asks.
async fn drive(s: &mut SslStream<Io>, tcp: &TcpStream, server: bool) -> Result<(), String> {
    loop {
        let r = if server { s.accept() } else { s.connect() };
        // What OpenSSL wrote (a flight, or an alert on failure) goes out.
        loop {
            match s.get_mut().send() {
                Ok(true) => break,
                Ok(false) => {
                    if tcp.writable().await.is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        match r {
            Ok(()) => return Ok(()),
            Err(e) if e.code() == ErrorCode::WANT_READ && would_block(&e) => {
                if let Err(io) = tcp.readable().await {
                    return Err(io.to_string());
                }
            }
            Err(e) if e.code() == ErrorCode::WANT_WRITE && would_block(&e) => {
                if let Err(io) = tcp.writable().await {
                    return Err(io.to_string());
                }
            }
            Err(e) => return Err(reason(&e)),
        }
    }
}

fn would_block(e: &openssl::ssl::Error) -> bool {
    e.io_error()
        .is_none_or(|e| e.kind() == std::io::ErrorKind::WouldBlock)
}

/// The reason text of a failed handshake, from what OpenSSL reports.
fn reason(e: &openssl::ssl::Error) -> String {
    if let Some(io) = e.io_error() {
        return io.to_string();
    }
    if e.code() == ErrorCode::SYSCALL {
        return "the peer closed the connection".into();
    }
    match e.ssl_error() {
        Some(s) => s
            .errors()
            .iter()
            .filter_map(|x| x.reason())
            .collect::<Vec<_>>()
            .join("; "),
        None => e.to_string(),
    }
}

/// Open TLS on a connected socket as a host.
pub async fn connect(tcp: TcpStream, cfg: &ClientConfig) -> Result<TlsStream, TlsError> {
    let tcp = Arc::new(tcp);
    let mut ssl = Ssl::new(&cfg.ctx)?;
    ffi::set_client_psk(&mut ssl, cfg.psk.clone());
    let mut s = SslStream::new(ssl, Io::new(tcp.clone()))?;
    if let Err(r) = drive(&mut s, &tcp, false).await {
        // A binder that does not verify: OpenSSL answers illegal_parameter,
        // others (GnuTLS) decrypt_error.
        let why = if r.contains("decrypt error") || r.contains("illegal parameter") {
            format!(
                "the target refused PSK identity {:?}: {r} (the PSK binder does not verify: the target has another key for this identity, wrong key)",
                cfg.psk.identity
            )
        } else if r.contains("handshake failure") {
            format!(
                "the target refused PSK identity {:?}: handshake_failure alert (the target has no key for it: unknown host, or a wrong key, as a version 1 identity carries the key's digest)",
                cfg.psk.identity
            )
        } else if r.contains("wrong version number")
            || r.contains("packet length too long")
            || r.contains("closed")
        {
            format!("{r} (does the target port speak TLS?)")
        } else {
            r
        };
        return Err(TlsError::Handshake(why));
    }
    if !s.ssl().session_reused() {
        return Err(TlsError::Handshake(
            "the target did not accept the PSK".into(),
        ));
    }
    Ok(TlsStream::new(s, tcp))
}

/// Accept TLS on a connected socket as a target.
pub async fn accept(tcp: TcpStream, cfg: &ServerConfig) -> Result<(TlsStream, TlsPeer), TlsError> {
    let tcp = Arc::new(tcp);
    let mut ssl = Ssl::new(&cfg.ctx)?;
    let keys = cfg.keys.clone();
    ffi::set_server_psk(
        &mut ssl,
        ffi::ServerPsk {
            lookup: Box::new(move |id| keys.lookup(id)),
            outcome: Mutex::new(None),
        },
    );
    let mut s = SslStream::new(ssl, Io::new(tcp.clone()))?;
    let r = drive(&mut s, &tcp, true).await;
    let outcome =
        ffi::server_psk(s.ssl()).and_then(|p| p.outcome.lock().ok().and_then(|g| g.clone()));
    match (r, outcome) {
        (Ok(()), Some((identity, Ok(hash)))) if s.ssl().session_reused() => {
            let cipher = s
                .ssl()
                .current_cipher()
                .map_or_else(String::new, |c| c.name().to_string());
            Ok((
                TlsStream::new(s, tcp),
                TlsPeer {
                    identity,
                    hash,
                    cipher,
                },
            ))
        }
        (Ok(()), _) => Err(TlsError::Handshake("the host did not use a PSK".into())),
        (Err(_), Some((_, Err(e)))) => Err(TlsError::Handshake(match e {
            LookupError::Unknown(_) | LookupError::Invalid { .. } | LookupError::Digest(_) => {
                e.to_string()
            }
        })),
        (Err(r), Some((identity, Ok(_)))) => Err(TlsError::Handshake(if r.contains("binder") {
            format!("PSK identity {identity:?}: the PSK binder does not verify (the host has another key: wrong key)")
        } else {
            format!("PSK identity {identity:?}: {r}")
        })),
        (Err(r), None) => Err(TlsError::Handshake(format!(
            "{r} (the host offered no PSK)"
        ))),
    }
}
