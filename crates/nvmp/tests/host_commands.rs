//! The host commands against an in-process nvmp target: success and the
//! failures a user meets (bad address, unknown NQN, refused host, no route,
//! bad size suffix), each one line and a non-zero exit.

mod common;
use common::*;

#[test]
fn discover_text_and_json() {
    let t = TestTarget::start();
    let o = run(&join(&["discover"], &t.discover()));
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("Discovery Log Number of Records"), "{out}");
    assert!(
        out.contains(NQN) && out.contains(&t.port2.port().to_string()),
        "{out}"
    );
    let o = run(&join(
        &[
            "discover",
            "-o",
            "json",
            "-a",
            "127.0.0.1",
            "-s",
            &t.port2.port().to_string(),
        ],
        &[],
    ));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let recs = v["records"].as_array().expect("records");
    assert!(v["genctr"].is_u64());
    let mine: Vec<_> = recs.iter().filter(|r| r["subnqn"] == NQN).collect();
    assert_eq!(mine.len(), 2, "{v}");
    for r in &mine {
        assert_eq!(r["trtype"], "tcp");
        assert_eq!(r["adrfam"], "ipv4");
        assert_eq!(r["subtype"], "nvme subsystem");
        assert_eq!(r["traddr"], "127.0.0.1");
        for k in ["treq", "portid", "trsvcid", "eflags", "sectype"] {
            assert!(r.get(k).is_some(), "{k} missing in {r}");
        }
    }
    // Port 2's referral to another discovery service is listed (and not connected to).
    let refs: Vec<_> = recs
        .iter()
        .filter(|r| r["subtype"] == "discovery subsystem referral")
        .collect();
    assert_eq!(refs.len(), 1, "{v}");
    assert_eq!(refs[0]["subnqn"], "nqn.2014-08.org.nvmexpress.discovery");
    assert_eq!(refs[0]["traddr"], "192.0.2.7");
    assert_eq!(refs[0]["trsvcid"], "8009");
    assert_eq!(refs[0]["portid"], 9);
}

#[test]
fn connect_failures_are_one_line() {
    let closed = closed_port();
    // No route / refused: nothing listens.
    let o = run(&s(&[
        "discover",
        "--discover",
        &format!("127.0.0.1:{closed}"),
    ]));
    assert_clean_failure(&o, "connection refused");
    let o = run(&s(&[
        "list-subsys",
        "-a",
        "127.0.0.1",
        "-s",
        &closed.to_string(),
        "-n",
        "nqn.2024-01.x:y",
    ]));
    assert_clean_failure(&o, "connection refused");
    // Bad addresses.
    let o = run(&s(&[
        "id-ctrl",
        "-a",
        "999.1.2.3",
        "-s",
        "4420",
        "-n",
        "nqn.2024-01.x:y",
    ]));
    assert_clean_failure(&o, "bad address");
    let o = run(&s(&[
        "list-subsys",
        "--portal",
        "127.0.0.1",
        "-n",
        "nqn.2024-01.x:y",
    ]));
    assert_clean_failure(&o, "bad address");
    let o = run(&s(&["list-subsys", "--discover", "127.0.0.1:99999"]));
    assert_clean_failure(&o, "not a TCP port");
    // No path at all.
    let o = run(&s(&["list-subsys"]));
    assert_clean_failure(&o, "no path given");
}

#[test]
fn unknown_nqn_and_refused_host() {
    let t = TestTarget::start();
    let p1 = t.port1.to_string();
    let o = run(&s(&[
        "list-subsys",
        "--portal",
        &p1,
        "-n",
        "nqn.2024-01.io.nvmp:nope",
    ]));
    assert_clean_failure(&o, "nqn.2024-01.io.nvmp:nope");
    let o = run(&s(&[
        "list-subsys",
        "--discover",
        &p1,
        "-n",
        "nqn.2024-01.io.nvmp:nope",
    ]));
    assert_clean_failure(&o, "unknown subsystem NQN");
    let o = run(&s(&[
        "id-ctrl", "--portal", &p1, "-n", LOCKED_NQN, "-q", OTHER_HOST,
    ]));
    assert_clean_failure(&o, "Connect Invalid Host");
    // The allowed host gets in.
    let o = run(&s(&[
        "id-ctrl",
        "--portal",
        &p1,
        "-n",
        LOCKED_NQN,
        "-q",
        ALLOWED_HOST,
        "-o",
        "json",
    ]));
    assert_ok(&o);
    let o = run(&s(&[
        "id-ctrl",
        "--portal",
        &p1,
        "-n",
        NQN,
        "-I",
        "not-a-uuid",
    ]));
    assert_clean_failure(&o, "bad host ID");
}

#[test]
fn list_subsys_two_paths() {
    let t = TestTarget::start();
    let o = run(&join(
        &["list-subsys", "-o", "json", "-n", NQN],
        &t.discover(),
    ));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let host = &v[0];
    assert!(host["HostNQN"].as_str().unwrap().starts_with("nqn."));
    let subs = host["Subsystems"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{v}");
    assert_eq!(subs[0]["NQN"], NQN);
    assert_eq!(subs[0]["IOPolicy"], "numa");
    assert!(subs[0]["Name"].as_str().unwrap().starts_with("nvme-subsys"));
    let paths = subs[0]["Paths"].as_array().unwrap();
    assert_eq!(paths.len(), 2, "{v}");
    let mut ana: Vec<&str> = paths
        .iter()
        .map(|p| p["ANAState"].as_str().unwrap())
        .collect();
    ana.sort();
    assert_eq!(ana, ["non-optimized", "optimized"]);
    for p in paths {
        assert_eq!(p["Transport"], "tcp");
        assert_eq!(p["State"], "live");
        assert!(p["Address"]
            .as_str()
            .unwrap()
            .starts_with("traddr=127.0.0.1,trsvcid="));
        for k in ["Name", "IOs", "Bytes", "Errors", "Failovers", "Outstanding"] {
            assert!(p.get(k).is_some(), "{k} missing");
        }
    }
    let o = run(&join(
        &["list-subsys", "--iopolicy", "round-robin"],
        &t.portals(),
    ));
    assert_ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains("iopolicy=round-robin") && out.contains("optimized") && out.contains("live"),
        "{out}"
    );
}

#[test]
fn identify_and_ana_log() {
    let t = TestTarget::start();
    let o = run(&join(&["id-ctrl", "-o", "json"], &t.portals()));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    for k in [
        "vid",
        "ssvid",
        "sn",
        "mn",
        "fr",
        "cmic",
        "mdts",
        "cntlid",
        "ver",
        "oaes",
        "anatt",
        "anacap",
        "anagrpmax",
        "nanagrpid",
        "subnqn",
    ] {
        assert!(v.get(k).is_some(), "{k} missing in {v}");
    }
    assert_eq!(v["subnqn"], NQN);
    assert_eq!(
        v["cmic"].as_u64().unwrap() & 0b1011,
        0b1011,
        "multi-port, multi-controller, ANA"
    );
    let o = run(&join(&["id-ctrl"], &t.portals()));
    assert_ok(&o);
    assert!(stdout(&o).contains("anagrpmax"));

    let o = run(&join(&["id-ns", "--nsid", "1", "-o", "json"], &t.portals()));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    for k in [
        "nsze", "ncap", "nuse", "nmic", "anagrpid", "nguid", "eui64", "lbafs", "flbas",
    ] {
        assert!(v.get(k).is_some(), "{k} missing in {v}");
    }
    assert_eq!(v["nsze"].as_u64().unwrap() * 512, 32 << 20);
    assert_eq!(
        v["nguid"],
        "6e766d7074657374000000000000000".to_string() + "1"
    );
    let o = run(&join(&["id-ns", "--nsid", "7"], &t.portals()));
    assert_clean_failure(&o, "namespace 7 not found");

    let o = run(&join(&["ana-log", "-o", "json"], &t.portals()));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let logs = v.as_array().expect("one log per path");
    assert_eq!(logs.len(), 2);
    let states: Vec<&str> = logs
        .iter()
        .map(|l| l["ANA DESC LIST "][0]["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"optimized") && states.contains(&"non-optimized"),
        "{v}"
    );
    let o = run(&join(&["ana-log"], &t.portals()));
    assert_ok(&o);
    assert!(stdout(&o).contains("ANA LOG HEADER"));
}

#[test]
fn io_read_write_verify() {
    let t = TestTarget::start();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    let data: Vec<u8> = (0..(256 * 1024)).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let mut args = s(&[
        "io",
        "write",
        "--nsid",
        "1",
        "--offset",
        "1M",
        "--input",
        input.to_str().unwrap(),
    ]);
    args.extend(t.portals());
    assert_ok(&run(&args));
    let mut args = s(&[
        "io",
        "read",
        "--nsid",
        "1",
        "--offset",
        "1M",
        "--size",
        "256k",
        "--output",
        output.to_str().unwrap(),
    ]);
    args.extend(t.portals());
    assert_ok(&run(&args));
    assert_eq!(std::fs::read(&output).unwrap(), data);
    // stdin / stdout
    let o = nvmp()
        .args(join(
            &["io", "write", "--offset", "4k", "--size", "4k"],
            &t.discover(),
        ))
        .write_stdin(vec![0x5au8; 4096])
        .output()
        .unwrap();
    assert_ok(&o);
    let o = run(&join(
        &["io", "read", "--offset", "4k", "--size", "4k"],
        &t.discover(),
    ));
    assert_ok(&o);
    assert_eq!(o.stdout, vec![0x5au8; 4096]);
    let o = run(&join(
        &[
            "io", "verify", "--offset", "8M", "--size", "2MiB", "-o", "json",
        ],
        &t.portals(),
    ));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["errors"], 0);
    // Failures.
    let o = run(&join(
        &["io", "read", "--offset", "4k", "--size", "4q"],
        &t.portals(),
    ));
    assert_eq!(o.status.code(), Some(2), "usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("unknown suffix"));
    let o = run(&join(
        &["io", "read", "--offset", "100", "--size", "4k"],
        &t.portals(),
    ));
    assert_clean_failure(&o, "multiples of the block size");
    let o = run(&join(
        &["io", "read", "--offset", "64M", "--size", "4k"],
        &t.portals(),
    ));
    assert_clean_failure(&o, "beyond the end");
    let o = run(&join(
        &["io", "read", "--nsid", "3", "--size", "4k"],
        &t.portals(),
    ));
    assert_clean_failure(&o, "namespace 3 not found");
}

#[test]
fn bench_head_single_path_and_plot() {
    let t = TestTarget::start();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("b.svg");
    let mut args = s(&[
        "bench",
        "--rw",
        "randrw",
        "--bs",
        "4k",
        "--iodepth",
        "4",
        "--runtime",
        "2",
        "--size",
        "8M",
        "--verify",
        "--iopolicy",
        "round-robin",
        "-o",
        "json",
        "--plot",
        svg.to_str().unwrap(),
        "--sample-ms",
        "250",
    ]);
    args.extend(t.portals());
    let o = run(&args);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert!(v["ios"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["errors"], 0);
    assert_eq!(v["verify_errors"], 0);
    assert_eq!(v["paths"].as_array().unwrap().len(), 2);
    for k in ["p50_us", "p99_us", "p999_us", "max_us"] {
        assert!(v["latency"][k].as_f64().unwrap() > 0.0, "{k}");
    }
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.contains("IOPS per path"));
    // The timeline every 250 ms, IOPS per path in each sample.
    let tl = v["timeline"].as_array().unwrap();
    assert!(tl.len() >= 4, "{}", v["timeline"]);
    assert!(tl.iter().all(|x| x["paths"].as_array().unwrap().len() == 2));
    let gaps: Vec<f64> = tl
        .windows(2)
        .map(|w| w[1]["t_s"].as_f64().unwrap() - w[0]["t_s"].as_f64().unwrap())
        .collect();
    assert!(gaps.iter().any(|g| *g < 0.6), "{gaps:?}");
    assert!(
        v["start_unix_ms"].as_u64().unwrap() > 1_700_000_000_000,
        "{v}"
    );

    let o = run(&join(
        &[
            "bench",
            "--single-path",
            "--runtime",
            "1",
            "--iodepth",
            "2",
            "--size",
            "4M",
        ],
        &t.portals(),
    ));
    assert_ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains("single path") && out.contains("IOPS=") && out.contains("p99.9="),
        "{out}"
    );
    assert!(stderr(&o).contains("IOPS="), "progress line on stderr");

    let o = run(&join(
        &[
            "bench",
            "--compare",
            "--runtime",
            "1",
            "--iopolicy",
            "service-time",
            "-o",
            "json",
        ],
        &t.portals(),
    ));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert!(v["iops_ratio"].as_f64().unwrap() > 0.0);

    let o = run(&join(
        &["bench", "--bs", "100", "--runtime", "1"],
        &t.portals(),
    ));
    assert_clean_failure(&o, "not a multiple of the block size");
    let o = run(&join(&["bench", "--bs", "4x"], &t.portals()));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn config_file_paths() {
    let t = TestTarget::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    let ports: Vec<serde_json::Value> = [t.port1, t.port2]
        .iter()
        .map(|a| serde_json::json!({"transport": "tcp", "traddr": "127.0.0.1", "trsvcid": a.port().to_string(), "reconnect_delay": 1}))
        .collect();
    let text = serde_json::json!([{"hostnqn": ALLOWED_HOST, "hostid": "4c504853-0000-4000-8000-0000000000aa",
        "subsystems": [{"nqn": NQN, "ports": ports}]}]);
    std::fs::write(&cfg, text.to_string()).unwrap();
    let o = run(&s(&[
        "list-subsys",
        "-o",
        "json",
        "--config",
        cfg.to_str().unwrap(),
    ]));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v[0]["HostNQN"], ALLOWED_HOST);
    assert_eq!(v[0]["Subsystems"][0]["Paths"].as_array().unwrap().len(), 2);
    std::fs::write(&cfg, "[{\"subsystems\": 3}]").unwrap();
    let o = run(&s(&["list-subsys", "--config", cfg.to_str().unwrap()]));
    assert_clean_failure(&o, "config.json");
}

#[test]
fn status_and_target_failures() {
    let o = run(&s(&["status", "--control", "/nonexistent/nvmp.sock"]));
    assert_clean_failure(&o, "control socket");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.json");
    std::fs::write(&cfg, r#"{"ports": [{"portid": "x"}]}"#).unwrap();
    let o = run(&s(&["target", "run", "--config", cfg.to_str().unwrap()]));
    assert_clean_failure(&o, "portid");
    let o = run(&s(&["bogus-command"]));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn target_subcommands_mounted() {
    // `nvmp target run` as a child, controlled through `nvmp target port/ana`,
    // and seen by `nvmp ana-log`.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.json");
    let ctl = dir.path().join("t.sock");
    let port = closed_port();
    let metrics_port = closed_port();
    let text =
        config_json("4M").replacen("\"trsvcid\":\"0\"", &format!("\"trsvcid\":\"{port}\""), 1);
    std::fs::write(&cfg, text).unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("nvmp"))
        .args([
            "target",
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--control",
            ctl.to_str().unwrap(),
            "--metrics",
            &format!("127.0.0.1:{metrics_port}"),
        ])
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed().as_secs() < 20, "target did not come up");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let portal = format!("127.0.0.1:{port}");
    let ctl_s = ctl.to_str().unwrap();
    assert_ok(&run(&s(&[
        "target",
        "ana",
        "--control",
        ctl_s,
        "--port",
        "1",
        "--group",
        "1",
        "--state",
        "inaccessible",
    ])));
    let o = run(&s(&[
        "ana-log", "--portal", &portal, "-n", NQN, "-o", "json",
    ]));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["ANA DESC LIST "][0]["state"], "inaccessible", "{v}");
    // A reader that went away (`| head`): the status ends quietly, no panic
    // on the closed pipe (its read end is closed before the command runs).
    for fmt in ["json", "normal"] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = std::process::Command::new(assert_cmd::cargo::cargo_bin("nvmp"))
            .args(["target", "status", "--control", ctl_s, "-o", fmt])
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{fmt}: {} {err}", o.status);
        assert!(!err.contains("panicked"), "{fmt}: {err}");
    }
    // Prometheus metrics of the running target.
    let metrics = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
        c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    };
    assert!(
        metrics.contains("nvmp_target_ana_state{port=\"1\",group=\"1\",state=\"inaccessible\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nvmp_target_connections_total{port=\"1\"}"),
        "{metrics}"
    );
    assert_ok(&run(&s(&[
        "target",
        "port",
        "--control",
        ctl_s,
        "--port",
        "1",
        "--down",
    ])));
    let o = run(&s(&["id-ctrl", "--portal", &portal, "-n", NQN]));
    assert_clean_failure(&o, "connection refused");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn ana_log_without_ana_says_so() {
    // The test subsystem with the target's knob for a subsystem without ANA
    // (Identify Controller CMIC.ANA clear, no ANA log page).
    let mut cfg: serde_json::Value = serde_json::from_str(&config_json("4M")).unwrap();
    cfg["subsystems"][0]["attr"]["nvmp_ana"] = "0".into();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cfg = nvmp_target::config::TargetConfig::from_json(&cfg.to_string()).unwrap();
    let h = rt
        .block_on(nvmp_target::control::TargetHandle::start(cfg))
        .unwrap();
    let p1 = h.local_addr(1).unwrap().to_string();

    let o = run(&s(&["ana-log", "--portal", &p1, "-n", NQN]));
    assert_clean_failure(
        &o,
        "does not report ANA (Identify Controller CMIC.ANA is clear)",
    );
    assert!(!stderr(&o).contains("Invalid Field"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&p1),
        "names the controller: {}",
        stderr(&o)
    );

    let o = run(&s(&["ana-log", "--portal", &p1, "-n", NQN, "-o", "json"]));
    assert_clean_failure(&o, "does not report ANA");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json on stdout");
    assert!(
        v["error"].as_str().unwrap().contains("does not report ANA"),
        "{v}"
    );
    assert_eq!(v["cmic"].as_u64().unwrap() & 0b1000, 0, "{v}");
    assert!(v.get("ANA DESC LIST ").is_none(), "{v}");
    rt.block_on(h.shutdown());
}
