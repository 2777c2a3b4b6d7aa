use super::*;
use proptest::prelude::*;

#[test]
fn accepts_spec_examples() {
    for s in [
        "nqn.2014-08.com.example:nvme:nvm-subsystem-sn-d78432",
        "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        DISCOVERY_NQN,
        "nqn.2019-10.io.nvmp:subsys1",
    ] {
        assert_eq!(Nqn::parse(s).unwrap().as_str(), s);
    }
    assert!(Nqn::parse(DISCOVERY_NQN).unwrap().is_discovery());
    assert!(!Nqn::parse("nqn.2019-10.io.nvmp:x").unwrap().is_discovery());
}

#[test]
fn rejects_bad_names() {
    assert_eq!(Nqn::parse(""), Err(NqnError::Empty));
    assert_eq!(Nqn::parse("iqn.2014-08.org.x:y"), Err(NqnError::BadPrefix));
    assert_eq!(Nqn::parse("nqn.14-08.org.x:y"), Err(NqnError::BadDate));
    assert_eq!(Nqn::parse("nqn.2014-13.org.x:y"), Err(NqnError::BadDate));
    assert_eq!(Nqn::parse("nqn.2014-00.org.x:y"), Err(NqnError::BadDate));
    assert_eq!(Nqn::parse("nqn.2014-08.:y"), Err(NqnError::BadDomain));
    assert_eq!(Nqn::parse("nqn.2014-08.org_x:y"), Err(NqnError::BadDomain));
    assert_eq!(
        Nqn::parse("nqn.2014-08.org.nvmexpress:uuid:not-a-uuid"),
        Err(NqnError::BadUuid)
    );
    assert_eq!(Nqn::parse("nqn.2014-08.org.x:a\0b"), Err(NqnError::BadChar));
    assert_eq!(Nqn::parse("testnqn"), Err(NqnError::BadPrefix));
}

#[test]
fn length_limit_is_223_bytes() {
    let base = "nqn.2014-08.org.example:";
    let ok = format!("{base}{}", "a".repeat(NQN_MAX_LEN - base.len()));
    assert_eq!(ok.len(), 223);
    assert!(Nqn::parse(&ok).is_ok());
    let long = format!("{ok}a");
    assert_eq!(Nqn::parse(&long), Err(NqnError::TooLong { len: 224 }));
}

#[test]
fn from_uuid_known() {
    let u = [
        0xf8, 0x1d, 0x4f, 0xae, 0x7d, 0xec, 0x11, 0xd0, 0xa7, 0x65, 0x00, 0xa0, 0xc9, 0x1e, 0x6b,
        0xf6,
    ];
    let n = Nqn::from_uuid(u);
    assert_eq!(
        n.to_string(),
        "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    );
    assert_eq!(n.uuid(), Some("f81d4fae-7dec-11d0-a765-00a0c91e6bf6"));
    assert_eq!(Nqn::parse(n.as_str()).unwrap(), n);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn uuid_round_trip(u in any::<[u8; 16]>()) {
        let n = Nqn::from_uuid(u);
        prop_assert_eq!(Nqn::parse(n.as_str()).unwrap(), n);
    }
    #[test]
    fn generated_names_parse(y in 1970u32..2100, m in 1u32..=12, d in "[a-z][a-z0-9-]{0,20}(\\.[a-z0-9]{1,10}){0,3}", tail in "[ -~]{0,100}") {
        let s = format!("nqn.{y:04}-{m:02}.{d}:{tail}");
        let n = Nqn::parse(&s).unwrap();
        prop_assert_eq!(n.as_str(), s.as_str());
    }
    #[test]
    fn no_panic(s in "\\PC{0,300}") {
        let _ = Nqn::parse(&s);
    }
}
