//! Known answers: libnvme's published vectors (test/psk.c of
//! linux-nvme/libnvme), nvme-cli's output, and round trips.

use super::*;
use proptest::prelude::*;

const KEY32: [u8; 32] = [
    0x55, 0x12, 0xDB, 0xB6, 0x73, 0x7D, 0x01, 0x06, 0xF6, 0x59, 0x75, 0xB7, 0x73, 0xDF, 0xB0, 0x11,
    0xFF, 0xC3, 0x44, 0xBC, 0xF4, 0x42, 0xE2, 0xDD, 0x6D, 0x8B, 0xC4, 0x87, 0x0B, 0x5D, 0x5B, 0x03,
];

fn key48() -> Vec<u8> {
    let mut k = KEY32.to_vec();
    k.extend_from_slice(&KEY32[16..]);
    k
}

#[test]
fn interchange_vectors() {
    let cases: [(u8, Vec<u8>, &str); 3] = [
        (0, KEY32.to_vec(), "NVMeTLSkey-1:00:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:"),
        (1, KEY32.to_vec(), "NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:"),
        (2, key48(), "NVMeTLSkey-1:02:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwP/w0S89ELi3W2LxIcLXVsDn8kXZQ==:"),
    ];
    for (hmac, key, text) in cases {
        let k = ConfiguredPsk::new(hmac, key.clone()).unwrap();
        assert_eq!(k.to_interchange(), text);
        let p = ConfiguredPsk::parse(text).unwrap();
        assert_eq!(p, k);
        assert_eq!(p.hmac(), hmac);
        assert_eq!(p.key_len(), key.len());
    }
    // nvme-cli 2.3 here prints "Key is valid (HMAC 1, length 32, CRC d9baf45f)".
    let p =
        ConfiguredPsk::parse("NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:")
            .unwrap();
    assert_eq!(p.crc(), 0xd9ba_f45f);
}

#[test]
fn identity_vectors() {
    let v1 = ConfiguredPsk::new(1, KEY32.to_vec()).unwrap();
    let v2 = ConfiguredPsk::new(2, key48()).unwrap();
    let (h, s) = ("nqn.psk-test-host", "nqn.psk-test-subsys");
    assert_eq!(
        v1.tls_psk(h, s, 1, false).unwrap().identity,
        "NVMe1R01 nqn.psk-test-host nqn.psk-test-subsys iSbjiStwJ/1TrTvDlt2fjFmzvsytOJelidNnA+X5lEU="
    );
    assert_eq!(
        v2.tls_psk(h, s, 1, false).unwrap().identity,
        "NVMe1R02 nqn.psk-test-host nqn.psk-test-subsys QhW2+Rp6RzHlNtCslyRxMnwJ11tKKhz8JCAQpQ+XUD8f9td1VeH5h53yz2wKJG1a"
    );
    // The compat (pre-RFC 8446 label) derivation.
    assert_eq!(
        v1.tls_psk(h, s, 1, true).unwrap().identity,
        "NVMe1R01 nqn.psk-test-host nqn.psk-test-subsys 66GuqV08TsAGII39teWUfwQwizjv06Jy8jOcX3NAAzM="
    );
    assert_eq!(
        v2.tls_psk(h, s, 1, true).unwrap().identity,
        "NVMe1R02 nqn.psk-test-host nqn.psk-test-subsys RsKmYJ3nAn1ApjjMloJFbAkLPivONDAX/xW327YBUsn2eGShXSjCZvBaOxscLqmz"
    );
    // Version 0: no digest.
    assert_eq!(
        v1.tls_psk(h, s, 0, false).unwrap().identity,
        "NVMe0R01 nqn.psk-test-host nqn.psk-test-subsys"
    );
    // hmac 00: the configured key is the retained key; the identity's hash
    // follows the key length.
    let none = ConfiguredPsk::new(0, key48()).unwrap();
    assert_eq!(none.retained(h, false).unwrap(), key48());
    assert!(none
        .tls_psk(h, s, 0, false)
        .unwrap()
        .identity
        .starts_with("NVMe0R02 "));
}

/// The TLS PSK differs by identity version, subsystem and compat mode,
/// and has the hash's length.
#[test]
fn tls_psk_depends_on_every_input() {
    let k = ConfiguredPsk::new(2, key48()).unwrap();
    let a = k.tls_psk("nqn.h", "nqn.s", 0, false).unwrap();
    let b = k.tls_psk("nqn.h", "nqn.s", 1, false).unwrap();
    let c = k.tls_psk("nqn.h", "nqn.t", 0, false).unwrap();
    let d = k.tls_psk("nqn.h", "nqn.s", 0, true).unwrap();
    assert_eq!(a.key().len(), 48);
    assert_eq!(a.hash, PskHash::Sha384);
    for x in [&b, &c, &d] {
        assert_ne!(a.key(), x.key());
    }
    assert!(format!("{a:?}").contains("redacted"));
    assert!(!format!("{a:?}").contains(&a.key_hex()));
}

#[test]
fn malformed_keys_have_reasons() {
    let good = "NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:";
    let bad_crc = "NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9Lra:";
    assert!(matches!(
        ConfiguredPsk::parse(bad_crc),
        Err(KeyError::Crc { .. })
    ));
    assert!(matches!(
        ConfiguredPsk::parse(&good.replace(":01:", ":02:")),
        Err(KeyError::Length { hmac: 2, len: 32 })
    ));
    assert!(matches!(
        ConfiguredPsk::parse(&good.replace(":01:", ":03:")),
        Err(KeyError::Format(_))
    ));
    assert!(matches!(
        ConfiguredPsk::parse(&good.replace("-1:", "-2:")),
        Err(KeyError::Format(_))
    ));
    assert!(matches!(
        ConfiguredPsk::parse(good.trim_end_matches(':')),
        Err(KeyError::Format(_))
    ));
    assert!(matches!(
        ConfiguredPsk::parse("DHHC-1:00:abc:"),
        Err(KeyError::Format(_))
    ));
    assert!(ConfiguredPsk::parse(&"A".repeat(10_000)).is_err());
    assert_eq!(
        ConfiguredPsk::from_hex(
            1,
            "5512DBB6737D0106F65975B773DFB011FFC344BCF442E2DD6D8BC4870B5D5B03"
        )
        .unwrap(),
        ConfiguredPsk::parse(good).unwrap()
    );
    assert!(ConfiguredPsk::from_hex(1, "55").is_err());
    assert!(ConfiguredPsk::from_hex(1, "zz").is_err());
}

#[test]
fn identities_parse_and_print() {
    let s = "NVMe1R01 nqn.psk-test-host nqn.psk-test-subsys iSbjiStwJ/1TrTvDlt2fjFmzvsytOJelidNnA+X5lEU=";
    let id = PskIdentity::parse(s).unwrap();
    assert_eq!(id.version, 1);
    assert_eq!(id.hash, PskHash::Sha256);
    assert_eq!(id.hostnqn, "nqn.psk-test-host");
    assert_eq!(id.to_string(), s);
    for bad in [
        "",
        "NVMe",
        "NVMe2R01 a b",
        "NVMe0X01 a b",
        "NVMe0R03 a b",
        "NVMe0R01 a",
        "NVMe0R01 a b c",
        "NVMe1R01 a b",
        "NVMe1R01 a b c d",
    ] {
        assert!(PskIdentity::parse(bad).is_err(), "{bad:?}");
    }
    assert!(PskIdentity::parse(&format!("NVMe0R01 {} b", "x".repeat(600))).is_err());
}

proptest! {
    #[test]
    fn interchange_round_trip(hmac in 0u8..3, long in any::<bool>(), key in proptest::collection::vec(any::<u8>(), 48)) {
        let len = match hmac { 1 => 32, 2 => 48, _ => if long { 48 } else { 32 } };
        let k = ConfiguredPsk::new(hmac, key[..len].to_vec()).unwrap();
        prop_assert_eq!(ConfiguredPsk::parse(&k.to_interchange()).unwrap(), k);
    }

    #[test]
    fn parse_never_panics(s in "\\PC{0,120}") {
        let _ = ConfiguredPsk::parse(&s);
        let _ = PskIdentity::parse(&s);
    }

    #[test]
    fn identity_round_trip(v in 0u8..2, h in 1u8..3, host in "[a-z0-9.:-]{1,60}", sub in "[a-z0-9.:-]{1,60}", dg in "[A-Za-z0-9+/=]{4,64}") {
        let id = PskIdentity { version: v, generated: false, hash: PskHash::from_id(h).unwrap(),
            hostnqn: host, subnqn: sub, digest: (v == 1).then_some(dg) };
        prop_assert_eq!(PskIdentity::parse(&id.to_string()).unwrap(), id);
    }
}
