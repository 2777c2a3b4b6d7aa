//! The only unsafe code of nvmp: OpenSSL's TLS 1.3 external-PSK callbacks,
//! which rust-openssl does not wrap.
//!
//! Why: TLS 1.3 external PSKs with both NVMe cipher suites need
//! `SSL_CTX_set_psk_use_session_callback` (client) and
//! `SSL_CTX_set_psk_find_session_callback` (server), which hand OpenSSL an
//! `SSL_SESSION` carrying the key and its cipher suite. The legacy
//! `psk_client_callback`/`psk_server_callback` that rust-openssl wraps
//! only ever yield SHA-256 PSKs in TLS 1.3 (OpenSSL fixes their hash to
//! SHA-256), so TLS_AES_256_GCM_SHA384 could not be negotiated. See
//! docs/TLS.md.
//!
//! What the callbacks read: per-connection data put into the `SSL` object
//! with rust-openssl's safe `set_ex_data` before the handshake starts, and
//! read back with its safe `ex_data`; only the conversion of the raw
//! pointers OpenSSL passes, and the `SSL_SESSION` construction, are unsafe.

use std::sync::{Mutex, OnceLock};

use foreign_types::ForeignTypeRef;
use libc::{c_int, c_uchar, size_t};
use openssl::ex_data::Index;
use openssl::hash::MessageDigest;
use openssl::ssl::{Ssl, SslContextBuilder, SslRef};
use openssl_sys::{EVP_MD, SSL, SSL_CIPHER, SSL_CTX, SSL_SESSION};

use crate::keyring::LookupError;
use crate::psk::{PskHash, TlsPsk};

extern "C" {
    fn SSL_CTX_set_psk_use_session_callback(ctx: *mut SSL_CTX, cb: Option<UseSessionCb>);
    fn SSL_CTX_set_psk_find_session_callback(ctx: *mut SSL_CTX, cb: Option<FindSessionCb>);
    fn SSL_SESSION_new() -> *mut SSL_SESSION;
    fn SSL_SESSION_set1_master_key(s: *mut SSL_SESSION, key: *const c_uchar, len: size_t) -> c_int;
    fn SSL_SESSION_set_cipher(s: *mut SSL_SESSION, cipher: *const SSL_CIPHER) -> c_int;
    fn SSL_SESSION_set_protocol_version(s: *mut SSL_SESSION, version: c_int) -> c_int;
    fn SSL_CIPHER_find(ssl: *mut SSL, ptr: *const c_uchar) -> *const SSL_CIPHER;
}

type UseSessionCb = unsafe extern "C" fn(
    ssl: *mut SSL,
    md: *const EVP_MD,
    id: *mut *const c_uchar,
    idlen: *mut size_t,
    sess: *mut *mut SSL_SESSION,
) -> c_int;
type FindSessionCb = unsafe extern "C" fn(
    ssl: *mut SSL,
    identity: *const c_uchar,
    identity_len: size_t,
    sess: *mut *mut SSL_SESSION,
) -> c_int;

/// Resolves an identity a host offered to its key.
pub(crate) type Lookup = Box<dyn Fn(&str) -> Result<TlsPsk, LookupError> + Send + Sync>;

/// What a server connection resolves identities with, and what happened.
pub(crate) struct ServerPsk {
    pub lookup: Lookup,
    /// The identity offered and the lookup's result (`Ok(hash)` when a key
    /// was found), for the error message and the connection's record.
    pub outcome: Mutex<Option<(String, Result<PskHash, LookupError>)>>,
}

fn client_index() -> Index<Ssl, TlsPsk> {
    static I: OnceLock<Index<Ssl, TlsPsk>> = OnceLock::new();
    *I.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex_data index"))
}
fn server_index() -> Index<Ssl, ServerPsk> {
    static I: OnceLock<Index<Ssl, ServerPsk>> = OnceLock::new();
    *I.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex_data index"))
}

/// Install the client callback on a context.
pub(crate) fn install_client(ctx: &mut SslContextBuilder) {
    // SAFETY: `ctx.as_ptr()` is a live SSL_CTX owned by the builder; the
    // callback is a plain function with the signature OpenSSL declares.
    unsafe { SSL_CTX_set_psk_use_session_callback(ctx.as_ptr(), Some(use_session)) }
}

/// Install the server callback on a context.
pub(crate) fn install_server(ctx: &mut SslContextBuilder) {
    // SAFETY: as in `install_client`.
    unsafe { SSL_CTX_set_psk_find_session_callback(ctx.as_ptr(), Some(find_session)) }
}

/// Attach the key a client connection offers.
pub(crate) fn set_client_psk(ssl: &mut Ssl, psk: TlsPsk) {
    ssl.set_ex_data(client_index(), psk);
}
/// Attach the key resolver of a server connection.
pub(crate) fn set_server_psk(ssl: &mut Ssl, s: ServerPsk) {
    ssl.set_ex_data(server_index(), s);
}
/// The resolver of a server connection (its outcome after the handshake).
pub(crate) fn server_psk(ssl: &SslRef) -> Option<&ServerPsk> {
    ssl.ex_data(server_index())
}

/// A TLS 1.3 session that carries an external PSK for `psk.hash`'s cipher
/// suite, or null.
fn session_for(ssl: *mut SSL, psk: &TlsPsk) -> *mut SSL_SESSION {
    let suite: [u8; 2] = match psk.hash {
        PskHash::Sha256 => [0x13, 0x01],
        PskHash::Sha384 => [0x13, 0x02],
    };
    // SAFETY: `ssl` is the live SSL OpenSSL passed to the callback; `suite`
    // is the two-byte cipher suite identifier SSL_CIPHER_find reads.
    let cipher = unsafe { SSL_CIPHER_find(ssl, suite.as_ptr()) };
    if cipher.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: SSL_SESSION_new has no preconditions; the setters get the
    // new, non-null session, a key slice valid for the call (OpenSSL
    // copies it) and a cipher pointer OpenSSL owns. On failure the session
    // is freed and not used again.
    unsafe {
        let s = SSL_SESSION_new();
        if s.is_null() {
            return s;
        }
        let k = psk.key();
        if SSL_SESSION_set1_master_key(s, k.as_ptr(), k.len()) != 1
            || SSL_SESSION_set_cipher(s, cipher) != 1
            || SSL_SESSION_set_protocol_version(s, openssl_sys::TLS1_3_VERSION) != 1
        {
            openssl_sys::SSL_SESSION_free(s);
            return std::ptr::null_mut();
        }
        s
    }
}

/// Client: offer the connection's PSK. OpenSSL calls this with `md` null
/// first, and with the handshake digest after a HelloRetryRequest; a key
/// whose hash is not that digest is not offered then.
unsafe extern "C" fn use_session(
    ssl: *mut SSL,
    md: *const EVP_MD,
    id: *mut *const c_uchar,
    idlen: *mut size_t,
    sess: *mut *mut SSL_SESSION,
) -> c_int {
    // SAFETY: OpenSSL passes valid out-pointers and the live SSL of the
    // handshake; `SslRef::from_ptr` borrows it for this call only.
    unsafe {
        *sess = std::ptr::null_mut();
        *id = std::ptr::null();
        *idlen = 0;
        let ssl_ref = SslRef::from_ptr(ssl);
        let Some(psk) = ssl_ref.ex_data(client_index()) else {
            return 0;
        };
        if !md.is_null() && MessageDigest::from_ptr(md).type_() != psk.hash.digest().type_() {
            return 1;
        }
        let s = session_for(ssl, psk);
        if s.is_null() {
            return 0;
        }
        // The identity lives in the ex_data, as long as the SSL object.
        *id = psk.identity.as_ptr();
        *idlen = psk.identity.len();
        *sess = s;
        1
    }
}

/// Server: find the key of the identity the client offered. An unknown
/// identity leaves `*sess` null: OpenSSL then goes on without the PSK and
/// the handshake fails (the target has no certificate); the outcome says
/// why.
unsafe extern "C" fn find_session(
    ssl: *mut SSL,
    identity: *const c_uchar,
    identity_len: size_t,
    sess: *mut *mut SSL_SESSION,
) -> c_int {
    // SAFETY: OpenSSL passes the live SSL, a valid out-pointer and the
    // identity bytes from the ClientHello, valid for `identity_len` bytes
    // for the duration of the call.
    unsafe {
        *sess = std::ptr::null_mut();
        let ssl_ref = SslRef::from_ptr(ssl);
        let Some(st) = ssl_ref.ex_data(server_index()) else {
            return 0;
        };
        let bytes = if identity.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(identity, identity_len)
        };
        let id = String::from_utf8_lossy(&bytes[..bytes.len().min(crate::identity::MAX_IDENTITY)])
            .into_owned();
        let r = (st.lookup)(&id);
        let out = match &r {
            Ok(psk) => {
                let s = session_for(ssl, psk);
                if s.is_null() {
                    return 0;
                }
                *sess = s;
                Ok(psk.hash)
            }
            Err(e) => Err(e.clone()),
        };
        if let Ok(mut g) = st.outcome.lock() {
            *g = Some((id, out));
        }
        1
    }
}
