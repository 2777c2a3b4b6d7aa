use super::*;

const SAMPLE: &str = r#"{
  "hosts": [{"nqn": "nqn.2014-08.org.nvmexpress:uuid:4c504853-0000-4000-8000-000000000001"}],
  "ports": [
    {"addr": {"adrfam": "ipv4", "traddr": "10.0.0.1", "treq": "not specified", "trsvcid": "4420", "trtype": "tcp", "tsas": "none"},
     "ana_groups": [{"ana": {"state": "optimized"}, "grpid": 1}, {"ana": {"state": "non-optimized"}, "grpid": 2}],
     "param": {"inline_data_size": "16384", "pi_enable": "0", "max_queue_size": "-1"},
     "portid": 1, "referrals": [], "subsystems": ["nqn.2024-01.io.example:a"]}
  ],
  "subsystems": [
    {"allowed_hosts": ["nqn.2014-08.org.nvmexpress:uuid:4c504853-0000-4000-8000-000000000001"],
     "attr": {"allow_any_host": "0", "cntlid_max": "65519", "cntlid_min": "1", "firmware": "6.12", "ieee_oui": "0x000000",
              "model": "Linux", "pi_enable": "0", "qid_max": "128", "serial": "9a2b9d5b4f3d6a01", "version": "1.3"},
     "namespaces": [
       {"ana_grpid": 1, "device": {"nguid": "4c500000-0000-4000-8000-0000000000a1", "path": "/dev/null", "uuid": "4c500000-0000-4000-8000-000000000001"}, "enable": 1, "nsid": 1},
       {"ana_grpid": 2, "device": {"size": "64M", "block_size": "4096"}, "enable": 0, "nsid": 2}
     ],
     "nqn": "nqn.2024-01.io.example:a"}
  ]
}"#;

#[test]
fn nvmetcli_save_output_loads() {
    let c = TargetConfig::from_json(SAMPLE).unwrap();
    assert_eq!(c.ports.len(), 1);
    let p = &c.ports[0];
    assert_eq!(p.trsvcid, 4420);
    assert_eq!(p.inline_data_size, 16384);
    assert_eq!(p.ana_groups[&2], AnaState::NON_OPTIMIZED);
    let s = &c.subsystems[0];
    assert!(!s.allow_any_host);
    assert_eq!(s.version, 0x0001_0300);
    assert_eq!(s.namespaces[0].nguid.unwrap()[15], 0xa1);
    assert_eq!(
        s.namespaces[1].device,
        DeviceSpec::Ram {
            size: 64 << 20,
            block_size: 4096
        }
    );
    assert!(!s.namespaces[1].enable);
}

fn err(json: &str) -> String {
    TargetConfig::from_json(json).unwrap_err().to_string()
}

#[test]
fn errors_name_field_and_reason() {
    let bad_port = SAMPLE.replace(r#""trsvcid": "4420""#, r#""trsvcid": "x""#);
    assert_eq!(
        err(&bad_port),
        r#"ports[0].addr.trsvcid: "x" is not a port number"#
    );
    let bad_state = SAMPLE.replace(r#""non-optimized""#, r#""sideways""#);
    assert!(err(&bad_state).starts_with("ports[0].ana_groups[1].ana.state:"));
    let bad_sub = SAMPLE.replace(
        r#""subsystems": ["nqn.2024-01.io.example:a"]"#,
        r#""subsystems": ["nqn.2024-01.io.example:b"]"#,
    );
    assert!(err(&bad_sub).starts_with("ports[0].subsystems[0]:"));
    let bad_host = SAMPLE.replace(r#""hosts": [{"nqn": "nqn.2014-08.org.nvmexpress:uuid:4c504853-0000-4000-8000-000000000001"}],"#, r#""hosts": [],"#);
    assert!(err(&bad_host).starts_with("subsystems[0].allowed_hosts[0]:"));
    let bad_uuid = SAMPLE.replace("4c500000-0000-4000-8000-000000000001\"", "zz\"");
    assert!(err(&bad_uuid).starts_with("subsystems[0].namespaces[0].device.uuid:"));
    let bad_cntlid = SAMPLE.replace(r#""cntlid_min": "1""#, r#""cntlid_min": "0""#);
    assert!(err(&bad_cntlid).starts_with("subsystems[0].attr.cntlid_min:"));
    let bad = SAMPLE.replace(r#""trtype": "tcp""#, r#""trtype": "carrier-pigeon""#);
    assert!(err(&bad).starts_with("ports[0].addr.trtype:"));
    // nvmetcli accepts RDMA ports: they load, and are skipped.
    let rdma = SAMPLE.replace(r#""trtype": "tcp""#, r#""trtype": "rdma""#);
    let c = TargetConfig::from_json(&rdma).unwrap();
    assert!(c.ports.is_empty());
    assert_eq!(c.skipped_ports, vec![(1, "rdma".to_string())]);
    let no_dev = SAMPLE.replace(r#""size": "64M", "#, "");
    assert!(err(&no_dev).starts_with("subsystems[0].namespaces[1].device.path:"));
    assert!(err("{").starts_with("(file):"));
}

#[test]
fn sizes_and_ids() {
    assert_eq!(parse_size("64M"), Some(64 << 20));
    assert_eq!(parse_size("1GiB"), Some(1 << 30));
    assert_eq!(parse_size("4096"), Some(4096));
    assert_eq!(parse_size("x"), None);
    let u = parse_uuid("4c500000-0000-4000-8000-0000000000a1").unwrap();
    assert_eq!(format_uuid(&u), "4c500000-0000-4000-8000-0000000000a1");
    assert!(parse_uuid("4c50").is_none());
}

#[test]
fn multipath_test_extensions() {
    let c = TargetConfig::from_json(SAMPLE).unwrap();
    assert_eq!(c.subsystems[0].ext, SubsystemExt::default());
    let ext = SAMPLE.replace(
        r#""version": "1.3"}"#,
        r#""version": "1.3", "nvmp_anatt": "2", "nvmp_ana": "0", "nvmp_nmic_shared": "0", "nvmp_cqt_ms": "250"}"#,
    );
    let c = TargetConfig::from_json(&ext).unwrap();
    assert_eq!(
        c.subsystems[0].ext,
        SubsystemExt {
            anatt_s: 2,
            ana: false,
            nmic_shared: false,
            cqt_ms: 250,
        }
    );
    let zero = SAMPLE.replace(
        r#""version": "1.3"}"#,
        r#""version": "1.3", "nvmp_anatt": "0"}"#,
    );
    assert_eq!(
        err(&zero),
        "subsystems[0].attr.nvmp_anatt: 0 is not in 1..=255"
    );
    let bad = SAMPLE.replace(
        r#""version": "1.3"}"#,
        r#""version": "1.3", "nvmp_ana": "maybe"}"#,
    );
    assert!(
        err(&bad).starts_with("subsystems[0].attr.nvmp_ana:"),
        "{}",
        err(&bad)
    );
}

#[test]
fn referrals_load_and_bad_ones_are_named() {
    let with = SAMPLE.replace(
        r#""referrals": []"#,
        r#""referrals": [{"name": "r1", "portid": 7, "enable": 1, "addr": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "10.0.0.9", "trsvcid": "8009", "treq": "not specified"}},
                         {"name": "off", "portid": 8, "enable": 0, "addr": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "10.0.0.8", "trsvcid": "8009"}}]"#,
    );
    let c = TargetConfig::from_json(&with).unwrap();
    assert_eq!(
        c.ports[0].referrals,
        vec![ReferralSpec {
            portid: 7,
            trtype: 3,
            adrfam: 1,
            treq: 0,
            traddr: "10.0.0.9".into(),
            trsvcid: "8009".into()
        }]
    );
    let bad = with.replace(
        r#""trtype": "tcp", "adrfam": "ipv4", "traddr": "10.0.0.9""#,
        r#""trtype": "carrier-pigeon", "adrfam": "ipv4", "traddr": "10.0.0.9""#,
    );
    assert!(
        err(&bad).starts_with("ports[0].referrals[0].addr.trtype:"),
        "{}",
        err(&bad)
    );
}

/// `"populate"` in a RAM namespace's device: all of its memory up front
/// (off by default; RAM only; "0"/"1" like the other flags).
#[test]
fn populate_makes_a_ram_namespace_resident_up_front() {
    let ns = |device: &str| SAMPLE.replace(r#""size": "64M", "block_size": "4096""#, device);
    let dev = |device: &str| {
        TargetConfig::from_json(&ns(device)).unwrap().subsystems[0].namespaces[1]
            .device
            .clone()
    };
    assert_eq!(
        dev(r#""size": "64M", "block_size": "4096", "populate": "1""#),
        DeviceSpec::RamPopulated {
            size: 64 << 20,
            block_size: 4096
        }
    );
    assert_eq!(
        dev(r#""path": "ram:1G", "populate": "true""#),
        DeviceSpec::RamPopulated {
            size: 1 << 30,
            block_size: 512
        }
    );
    assert_eq!(
        dev(r#""size": "64M", "populate": "0""#),
        DeviceSpec::Ram {
            size: 64 << 20,
            block_size: 512
        }
    );
    assert_eq!(
        err(&ns(r#""size": "64M", "populate": "yes please""#)),
        r#"subsystems[0].namespaces[1].device.populate: "yes please" is not "0" or "1""#
    );
    assert!(
        err(&ns(r#""path": "/dev/null", "populate": "1""#)).starts_with(
            "subsystems[0].namespaces[1].device.populate: applies to RAM namespaces only"
        )
    );
}
