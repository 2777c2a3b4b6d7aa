//! In-band authentication in the sans-IO core: AUTHREQ.ATR on Connect,
//! "Authentication Required" for every other command until the queue is
//! authenticated (admin and I/O queues), a failed authentication leaves the
//! queue refused and closes it, an unauthenticated queue closes at the
//! authentication deadline, and keep-alive waits for authentication.

use std::sync::Arc;
use std::time::Duration;

use nvmp_auth::{DhGroup, HashId, HostAuth, HostAuthConfig, Secret};
use nvmp_wire::auth::AuthCmd;

use super::*;
use crate::config::dhchap::DhchapSpec;
use crate::core::queue::auth::{AUTH_TIMEOUT, CONNECT_ATR};

fn key(b: u8) -> Secret {
    Secret::from_raw(&[b; 32], 1).unwrap()
}

fn auth_shared() -> Arc<Shared> {
    let sh = shared(true);
    sh.lock().dhchap.insert(
        HOST.into(),
        Arc::new(DhchapSpec {
            key: key(1),
            ctrl_key: None,
            hash: HashId::Sha256,
            group: DhGroup::Ffdhe2048,
        }),
    );
    sh
}

/// Run one DH-HMAC-CHAP transaction as the host; the host's result.
fn authenticate(h: &mut H, secret: Secret) -> Result<(), nvmp_auth::AuthError> {
    let mut a = HostAuth::new(Arc::new(HostAuthConfig::new(secret, None, HOST, SUB)), 7);
    let send = |h: &mut H, m: Vec<u8>| {
        let (c, _) = h.cmd(AuthCmd::send(m.len() as u32).to_sqe(), Some(m.into()), 0);
        assert!(c.status.is_success(), "{:?}", c.status);
    };
    let recv = |h: &mut H| {
        let (c, d) = h.cmd(AuthCmd::receive(4096).to_sqe(), None, 4096);
        assert!(c.status.is_success(), "{:?}", c.status);
        d
    };
    send(h, a.negotiate());
    let ch = recv(h);
    send(h, a.on_challenge(&ch)?);
    let s1 = recv(h);
    assert!(a.on_success1(&s1)?.is_none());
    Ok(())
}

#[test]
fn commands_wait_for_authentication() {
    let sh = auth_shared();
    let mut a = H::with_ic(&sh, 1, Instant::now());
    let c = a.connect(SUB, HOST, 0, 0xFFFF, 5000);
    assert!(c.status.is_success());
    assert_eq!(c.dw0 & CONNECT_ATR, CONNECT_ATR, "AUTHREQ.ATR");
    let cntlid = c.dw0 as u16;
    // "Authentication Required" (DNR) for everything else, Property Get/Set included.
    let (c, _) = a.cmd(Sqe::new(Opcode::KEEP_ALIVE), None, 0);
    assert_eq!(c.status.code, StatusCode::AUTH_REQUIRED);
    assert!(c.status.dnr);
    assert_eq!(a.prop_get(0, true).status.code, StatusCode::AUTH_REQUIRED);
    assert_eq!(
        a.prop_set_cc(1 | (6 << 16) | (4 << 20)).status.code,
        StatusCode::AUTH_REQUIRED
    );
    authenticate(&mut a, key(1)).unwrap();
    assert!(a.prop_set_cc(1 | (6 << 16) | (4 << 20)).status.is_success());
    assert_eq!(a.prop_get(0x1C, false).dw0 & 1, 1);
    // An I/O queue must authenticate too.
    let mut io = H::with_ic(&sh, 1, a.now);
    let c = io.connect(SUB, HOST, 1, cntlid, 0);
    assert_eq!(c.dw0 & CONNECT_ATR, CONNECT_ATR);
    let (c, _) = io.cmd(rw(Opcode::READ, 1, 0, 1), None, 512);
    assert_eq!(c.status.code, StatusCode::AUTH_REQUIRED);
    authenticate(&mut io, key(1)).unwrap();
    assert!(io
        .cmd(rw(Opcode::READ, 1, 0, 1), None, 512)
        .0
        .status
        .is_success());
    // Re-authentication of a live queue: commands keep working.
    authenticate(&mut io, key(1)).unwrap();
    assert!(io
        .cmd(rw(Opcode::READ, 1, 0, 1), None, 512)
        .0
        .status
        .is_success());
}

#[test]
fn failed_authentication_refuses_and_closes() {
    let sh = auth_shared();
    let t0 = Instant::now();
    let mut a = H::with_ic(&sh, 1, t0);
    assert!(a.connect(SUB, HOST, 0, 0xFFFF, 5000).status.is_success());
    let e = authenticate(&mut a, key(2)).unwrap_err();
    assert_eq!(e.reason(), nvmp_wire::auth::FailureReason::FAILED);
    assert_eq!(a.prop_get(0, true).status.code, StatusCode::AUTH_REQUIRED);
    let d = a.q.next_deadline(t0).unwrap();
    assert!(d <= t0 + Duration::from_secs(1));
    let outs = a.q.on_timer(d);
    a.run(outs);
    assert!(a.closed);
}

#[test]
fn authentication_deadline_and_keep_alive() {
    let sh = auth_shared();
    let t0 = Instant::now();
    let mut a = H::with_ic(&sh, 1, t0);
    assert!(a.connect(SUB, HOST, 0, 0xFFFF, 1000).status.is_success());
    // KATO (1 s) does not run while authenticating; the deadline does.
    let outs = a.q.on_timer(t0 + Duration::from_secs(5));
    a.run(outs);
    assert!(!a.closed, "keep-alive must wait for authentication");
    assert_eq!(
        a.q.next_deadline(t0 + Duration::from_secs(5)),
        Some(t0 + AUTH_TIMEOUT)
    );
    let outs = a.q.on_timer(t0 + AUTH_TIMEOUT);
    a.run(outs);
    assert!(a.closed);
    // A host without a key connects as before (no ATR).
    let mut b = H::with_ic(&sh, 1, t0);
    let c = b.connect(SUB, OTHER, 0, 0xFFFF, 1000);
    assert!(c.status.is_success());
    assert_eq!(c.dw0 & CONNECT_ATR, 0);
    assert!(b.prop_get(0, true).status.is_success());
    // ... and its Authentication Send is an Invalid Field.
    let (c, _) = b.cmd(AuthCmd::send(8).to_sqe(), Some(vec![0u8; 8].into()), 0);
    assert_eq!(c.status.code, StatusCode::INVALID_FIELD);
}
