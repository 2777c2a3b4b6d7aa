use std::sync::Arc;

use num_bigint::BigUint;

use super::*;
use crate::ctrl::Event;

const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:3a7e4f2c-1111-4e2b-9c59-000000000001";
const SUBNQN: &str = "nqn.2026-12.io.nvmp:auth";

fn key(b: u8, len: usize, hash: u8) -> Secret {
    Secret::from_raw(&vec![b; len], hash).unwrap()
}

#[test]
fn secret_reference_vector() {
    // ../shared/REFERENCE.md: `nvme gen-dhchap-key -s 000102…1f -m 0`.
    let raw: Vec<u8> = (0u8..32).collect();
    let s = Secret::gen_dhchap_key(&raw, 0, "unused").unwrap();
    assert_eq!(
        s.to_dhhc1(),
        "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:"
    );
    assert_eq!(Secret::parse(&s.to_dhhc1()).unwrap(), s);
    assert_eq!(s.crc(), 0x91267e8a);
    // nvme-cli 2.3 on this machine, -m 1 -n nqn.2014-08.org.nvmexpress:uuid:test.
    let t = Secret::gen_dhchap_key(&raw, 1, "nqn.2014-08.org.nvmexpress:uuid:test").unwrap();
    assert_eq!(
        t.to_dhhc1(),
        "DHHC-1:01:WulleCBkG4oCs0iIC3Cit9gBDCLWiZ9PNXuhqytWkBIZkvGy:"
    );
    assert_eq!(
        Secret::gen_dhchap_key(&[0; 64], 1, "x").unwrap_err(),
        SecretError::LengthForHash { len: 64, bits: 256 }
    );
}

#[test]
fn secret_parse_errors_and_redaction() {
    let bad_crc = "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaS:";
    assert!(matches!(
        Secret::parse(bad_crc),
        Err(SecretError::Crc { .. })
    ));
    assert_eq!(Secret::parse("DHHC-2:00:AA:"), Err(SecretError::Prefix));
    assert!(matches!(
        Secret::parse("DHHC-1:04:AA:"),
        Err(SecretError::Hash(_))
    ));
    assert_eq!(Secret::parse("DHHC-1:00:!!!:"), Err(SecretError::Base64));
    assert_eq!(
        Secret::parse("DHHC-1:00:AAAAAAAA:"),
        Err(SecretError::Length(2))
    );
    let s = key(0x42, 48, 2);
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("QkJC"), "{dbg}");
    assert!(dbg.contains("redacted"));
    // Transformation: none keeps the key, SHA-384 makes 48 bytes.
    assert_eq!(&key(7, 32, 0).transformed("n")[..], &[7u8; 32][..]);
    assert_eq!(s.transformed(HOSTNQN).len(), 48);
    assert_ne!(s.transformed(HOSTNQN), s.transformed(SUBNQN));
}

#[test]
fn primes_match_rfc7919_form() {
    // RFC 7919 Appendix A: p = 2^b - 2^(b-64) + {[2^(b-130) e] + X} * 2^64 - 1,
    // so the top and bottom 64 bits are all ones, p is odd and b bits long.
    let ones = BigUint::from(u64::MAX);
    for g in DhGroup::ALL.into_iter().skip(1) {
        let p = g.prime().unwrap();
        let b = g.value_len() * 8;
        assert_eq!(p.bits() as usize, b, "{g}");
        assert_eq!(p & &ones, ones, "{g}");
        assert_eq!(p >> (b - 64), ones, "{g}");
    }
    // The groups share the expansion of e: each prime's bits after the top
    // 64 start like ffdhe2048's (the first 1800 bits of [2^(b-130) e]).
    let p2 = DhGroup::Ffdhe2048.prime().unwrap();
    for g in DhGroup::ALL.into_iter().skip(2) {
        let p = g.prime().unwrap();
        let b = g.value_len() * 8;
        assert_eq!(p >> (b - 1800), p2 >> (2048 - 1800), "{g}");
    }
    // Fermat: 2^(p-1) = 1 mod p for the smallest group (a check that the
    // constant is a prime and not a typo; the others are checked against
    // OpenSSL's and interoperate with Linux in the interop tests).
    let one = BigUint::from(1u32);
    assert_eq!(BigUint::from(2u32).modpow(&(p2 - &one), p2), one);
}

#[test]
fn primes_match_openssl_when_present() {
    for g in DhGroup::ALL.into_iter().skip(1) {
        let out = std::process::Command::new("openssl")
            .args(["genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt"])
            .arg(format!("group:{}", g.name()))
            .output();
        let Ok(out) = out else { return };
        if !out.status.success() {
            return;
        }
        let parsed = std::process::Command::new("openssl")
            .args(["asn1parse"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(&out.stdout)?;
                c.wait_with_output()
            })
            .unwrap();
        let text = String::from_utf8_lossy(&parsed.stdout);
        let hex = text
            .lines()
            .nth(1)
            .and_then(|l| l.rsplit(':').next())
            .unwrap();
        let p = BigUint::parse_bytes(hex.trim().as_bytes(), 16).unwrap();
        assert_eq!(&p, g.prime().unwrap(), "{g}");
    }
}

#[test]
fn dh_agreement_and_peer_checks() {
    for g in DhGroup::ALL.into_iter().skip(1) {
        let a = DhKey::generate(g).unwrap();
        let b = DhKey::generate(g).unwrap();
        assert_eq!(a.public().len(), g.value_len());
        assert_eq!(
            a.shared(b.public()).unwrap(),
            b.shared(a.public()).unwrap(),
            "{g}"
        );
    }
    let a = DhKey::generate(DhGroup::Ffdhe2048).unwrap();
    assert_eq!(a.shared(&[1]), Err(DhError::Range));
    assert_eq!(a.shared(&[0; 256]), Err(DhError::Range));
    let p = DhGroup::Ffdhe2048.prime().unwrap();
    let pm1 = (p - BigUint::from(1u32)).to_bytes_be();
    assert_eq!(a.shared(&pm1), Err(DhError::Range));
    assert!(matches!(a.shared(&[1; 257]), Err(DhError::Length { .. })));
    assert!(DhKey::generate(DhGroup::Null).is_none());
}

/// Run host and controller against each other, as the drivers would.
fn run(
    host: HostAuthConfig,
    ctrl: CtrlAuthConfig,
) -> (Result<host::Negotiated, AuthError>, CtrlAuth, Vec<Event>) {
    let mut h = HostAuth::new(Arc::new(host), 9);
    let mut c = CtrlAuth::new(Arc::new(ctrl));
    let mut events = Vec::new();
    let result = (|| {
        events.push(c.on_send(&h.negotiate()));
        let (ch, ev) = c.on_receive(4096).unwrap();
        events.push(ev);
        let reply = h.on_challenge(&ch).inspect_err(|e| {
            if let Some(f2) = e.failure2() {
                events.push(c.on_send(f2));
            }
        })?;
        events.push(c.on_send(&reply));
        let (s1, ev) = c.on_receive(4096).unwrap();
        events.push(ev);
        match h.on_success1(&s1) {
            Ok(Some(s2)) => events.push(c.on_send(&s2)),
            Ok(None) => {}
            Err(e) => {
                if let Some(f2) = e.failure2() {
                    events.push(c.on_send(f2));
                }
                return Err(e);
            }
        }
        Ok(h.negotiated())
    })();
    (result, c, events)
}

fn cfgs(hash: HashId, group: DhGroup, bidi: bool) -> (HostAuthConfig, CtrlAuthConfig) {
    let hk = key(0x11, hash.len(), hash.id());
    let ck = key(0x22, 32, 0);
    let host = HostAuthConfig::new(hk.clone(), bidi.then(|| ck.clone()), HOSTNQN, SUBNQN);
    let ctrl = CtrlAuthConfig {
        host_key: hk,
        ctrl_key: Some(ck),
        hash,
        group,
        hostnqn: HOSTNQN.into(),
        subnqn: SUBNQN.into(),
    };
    (host, ctrl)
}

#[test]
fn every_hash_and_group_uni_and_bidirectional() {
    for hash in HashId::ALL {
        for group in DhGroup::ALL {
            for bidi in [false, true] {
                let (h, c) = cfgs(hash, group, bidi);
                let (r, ctrl, events) = run(h, c);
                let n = r.unwrap_or_else(|e| panic!("{hash} {group} bidi={bidi}: {e}"));
                assert_eq!((n.hash, n.group, n.bidirectional), (hash, group, bidi));
                assert!(ctrl.is_authenticated(), "{hash} {group} {bidi}");
                assert_eq!(events.last(), Some(&Event::Authenticated));
            }
        }
    }
}

#[test]
fn wrong_host_key_is_refused() {
    let (mut h, c) = cfgs(HashId::Sha384, DhGroup::Ffdhe2048, false);
    h.secret = key(0x12, 48, 2);
    let (r, ctrl, events) = run(h, c);
    assert_eq!(
        r.unwrap_err(),
        AuthError::Refused {
            reason: FailureReason::FAILED
        }
    );
    assert!(!ctrl.is_authenticated());
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Failing { detail, .. } if detail.contains("wrong host key"))));
    assert_eq!(
        events.last(),
        Some(&Event::Failed {
            reason: FailureReason::FAILED,
            by_host: false
        })
    );
}

#[test]
fn wrong_ctrl_key_is_refused_by_the_host() {
    let (mut h, c) = cfgs(HashId::Sha256, DhGroup::Ffdhe3072, true);
    h.ctrl_secret = Some(key(0x23, 32, 0));
    let (r, ctrl, events) = run(h, c);
    let e = r.unwrap_err();
    assert!(e.to_string().contains("wrong controller key"), "{e}");
    assert!(!ctrl.is_authenticated());
    assert_eq!(
        events.last(),
        Some(&Event::Failed {
            reason: FailureReason::FAILED,
            by_host: true
        })
    );
}

#[test]
fn unsupported_group_and_hash_are_refused() {
    let (mut h, c) = cfgs(HashId::Sha256, DhGroup::Ffdhe4096, false);
    h.groups = vec![DhGroup::Null, DhGroup::Ffdhe2048];
    let (r, _, _) = run(h, c);
    assert_eq!(r.unwrap_err().reason(), FailureReason::DHGROUP_UNUSABLE);
    let (mut h, c) = cfgs(HashId::Sha512, DhGroup::Null, false);
    h.hashes = vec![HashId::Sha256];
    let (r, _, _) = run(h, c);
    assert_eq!(r.unwrap_err().reason(), FailureReason::HASH_UNUSABLE);
}

#[test]
fn bidirectional_without_ctrl_key_is_refused() {
    let (h, mut c) = cfgs(HashId::Sha256, DhGroup::Null, true);
    c.ctrl_key = None;
    let (r, _, _) = run(h, c);
    assert_eq!(
        r.unwrap_err(),
        AuthError::Refused {
            reason: FailureReason::FAILED
        }
    );
}

#[test]
fn host_refuses_a_group_it_did_not_offer() {
    let (mut h, _) = cfgs(HashId::Sha256, DhGroup::Null, false);
    h.groups = vec![DhGroup::Null];
    let mut host = HostAuth::new(Arc::new(h), 1);
    host.negotiate();
    let ch = nvmp_wire::auth::AuthMsg::Challenge(nvmp_wire::auth::Challenge {
        t_id: 1,
        hash_id: 1,
        dh_id: 1,
        seqnum: 5,
        c1: vec![0; 32],
        dhv: vec![2; 256],
    });
    let e = host.on_challenge(&ch.encode()).unwrap_err();
    assert_eq!(e.reason(), FailureReason::DHGROUP_UNUSABLE);
    let f2 = nvmp_wire::auth::AuthMsg::decode(e.failure2().unwrap()).unwrap();
    assert!(matches!(f2, nvmp_wire::auth::AuthMsg::Failure2(f) if f.t_id == 1));
}

#[test]
fn controller_rejects_out_of_order_and_small_buffers() {
    let (h, c) = cfgs(HashId::Sha256, DhGroup::Ffdhe2048, false);
    let mut ctrl = CtrlAuth::new(Arc::new(c));
    let mut host = HostAuth::new(Arc::new(h), 3);
    host.negotiate();
    // Success2 before anything: protocol error, Failure1 on the next receive.
    let s2 = nvmp_wire::auth::AuthMsg::Success2 { t_id: 3 }.encode();
    assert!(matches!(ctrl.on_send(&s2), Event::Failing { .. }));
    let (f1, ev) = ctrl.on_receive(64).unwrap();
    assert!(matches!(ev, Event::Failed { by_host: false, .. }));
    assert!(matches!(
        host.on_challenge(&f1),
        Err(AuthError::Refused { .. })
    ));
    // A fresh Negotiate restarts; a too-small AL changes nothing.
    let mut host = HostAuth::new(host_cfg_again(), 4);
    assert_eq!(ctrl.on_send(&host.negotiate()), Event::None);
    assert_eq!(ctrl.on_receive(100), Err(16 + 32 + 256));
    let (ch, _) = ctrl.on_receive(4096).unwrap();
    assert!(host.on_challenge(&ch).is_ok());
}

fn host_cfg_again() -> Arc<HostAuthConfig> {
    Arc::new(cfgs(HashId::Sha256, DhGroup::Ffdhe2048, false).0)
}

#[test]
fn names_parse() {
    assert_eq!(HashId::parse("hmac(sha384)"), Some(HashId::Sha384));
    assert_eq!(HashId::parse("SHA-512"), Some(HashId::Sha512));
    assert_eq!(HashId::parse("md5"), None);
    assert_eq!(DhGroup::parse("ffdhe6144"), Some(DhGroup::Ffdhe6144));
    assert_eq!(DhGroup::parse("null"), Some(DhGroup::Null));
    assert_eq!(DhGroup::parse("ffdhe1024"), None);
}
