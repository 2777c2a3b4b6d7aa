//! NBD end to end with real clients (qemu-io, qemu-img, nbdcopy, nbdinfo,
//! fio's nbd engine) against `nvmp nbd` over an nvmp target with two ports,
//! also while a path is taken down and restored; plus `nvmp status` and the
//! Prometheus endpoint.

mod common;
use common::*;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Export {
    child: Child,
    uri: String,
    unix_uri: String,
    control: std::path::PathBuf,
    metrics: String,
    _dir: tempfile::TempDir,
}

impl Drop for Export {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_export(t: &TestTarget) -> Export {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("ctl.sock");
    let unix = dir.path().join("nbd.sock");
    let port = closed_port();
    let metrics = format!("127.0.0.1:{}", closed_port());
    let bin = assert_cmd::cargo::cargo_bin("nvmp");
    let mut args = vec![
        "nbd".to_string(),
        "--nsid".into(),
        "1".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
    ];
    args.extend(s(&[
        "--name",
        "disk",
        "--unix",
        unix.to_str().unwrap(),
        "--control",
        control.to_str().unwrap(),
        "--metrics",
        &metrics,
        "-c",
        "1",
    ]));
    args.extend(t.portals());
    let child = Command::new(bin)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let e = Export {
        child,
        uri: format!("nbd://127.0.0.1:{port}/disk"),
        unix_uri: format!("nbd+unix:///disk?socket={}", unix.display()),
        control,
        metrics,
        _dir: dir,
    };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if run(&s(&["status", "--control", e.control.to_str().unwrap()]))
            .status
            .success()
            && std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok()
        {
            return e;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nvmp nbd did not come up");
}

fn check_clients() {
    need("qemu-io", "qemu-utils");
    need("qemu-img", "qemu-utils");
    need("nbdinfo", "libnbd-bin");
    need("nbdcopy", "libnbd-bin");
    need("fio", "fio");
    let o = Command::new("fio").arg("--enghelp=nbd").output().unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("uri"),
        "fio lacks the nbd engine (Debian package fio)"
    );
}

fn qemu_io_pattern(uri: &str, pattern: &str, off: &str, len: &str) {
    sh(Command::new("qemu-io").args([
        "-f",
        "raw",
        uri,
        "-c",
        &format!("write -P {pattern} {off} {len}"),
        "-c",
        &format!("read -P {pattern} {off} {len}"),
    ]));
}

fn fio_verify(uri: &str, runtime: u32) -> std::process::Output {
    Command::new("fio")
        .args([
            "--name=verify",
            "--ioengine=nbd",
            &format!("--uri={uri}"),
            "--rw=randwrite",
            "--bs=4k",
            "--size=8M",
            "--iodepth=8",
            "--verify=crc32c",
            "--do_verify=1",
            "--verify_fatal=1",
            "--verify_state_save=0",
            &format!("--runtime={runtime}"),
            "--time_based=0",
            "--loops=50",
            "--output-format=json",
        ])
        .output()
        .unwrap()
}

#[test]
fn nbd_clients_and_failover() {
    check_clients();
    let t = TestTarget::start();
    let e = start_export(&t);
    let dir = tempfile::tempdir().unwrap();

    // qemu-io pattern write / read-verify.
    qemu_io_pattern(&e.uri, "0x5a", "0", "4M");

    // nbdinfo --json: size and block sizes.
    let o = sh(Command::new("nbdinfo").args(["--json", &e.uri]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ex = &v["exports"][0];
    assert_eq!(ex["export-size"].as_u64(), Some(32 << 20), "{v}");
    assert!(
        ex["block_size_minimum"].as_u64().is_some()
            && ex["block_size_maximum"].as_u64().unwrap() >= 4096,
        "{v}"
    );

    // The same export on the Unix socket.
    let o = sh(Command::new("nbdinfo").args(["--json", &e.unix_uri]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["exports"][0]["export-size"].as_u64(),
        Some(32 << 20),
        "{v}"
    );

    // nbdcopy round trip, qemu-img compare against the local copy, cmp.
    let local = dir.path().join("local.img");
    let back = dir.path().join("back.img");
    let mut f = std::fs::File::create(&local).unwrap();
    let mut x = 0x1234_5678u32;
    let data: Vec<u8> = (0..(32 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    f.write_all(&data).unwrap();
    drop(f);
    sh(Command::new("nbdcopy").args([local.to_str().unwrap(), &e.uri]));
    sh(Command::new("qemu-img").args([
        "compare",
        "-f",
        "raw",
        "-F",
        "raw",
        local.to_str().unwrap(),
        &e.uri,
    ]));
    sh(Command::new("nbdcopy").args([&e.uri, back.to_str().unwrap()]));
    sh(Command::new("cmp").args([local.to_str().unwrap(), back.to_str().unwrap()]));

    // fio's nbd engine with crc32c verify.
    let o = fio_verify(&e.uri, 3);
    assert!(
        o.status.success(),
        "fio: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );

    // The same while port 1 is taken down and restored.
    let handle = t.handle.clone();
    let flipper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        handle.port_down(1).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        handle.port_up(1).unwrap();
    });
    let uri = e.uri.clone();
    let q = std::thread::spawn(move || {
        for i in 0..6 {
            qemu_io_pattern(&uri, &format!("0x{:02x}", 0x30 + i), "8M", "2M");
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let o = fio_verify(&e.uri, 5);
    assert!(
        o.status.success(),
        "fio during failover: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&text[text.find('{').expect("fio json")..]).unwrap();
    assert_eq!(v["jobs"][0]["error"], 0, "{v}");
    q.join().expect("qemu-io during failover");
    flipper.join().unwrap();
    // Data outside what fio and qemu-io rewrote is still the local copy's.
    sh(Command::new("nbdcopy").args([&e.uri, back.to_str().unwrap()]));
    let got = std::fs::read(&back).unwrap();
    assert!(
        got[10 << 20..] == data[10 << 20..],
        "data beyond 10 MiB changed"
    );

    // nvmp status: two paths, counters, failovers; live iopolicy change.
    let ctl = e.control.to_str().unwrap();
    // Wait for port 1's path to be live again.
    let t0 = Instant::now();
    let v = loop {
        let o = run(&s(&["status", "--control", ctl, "-o", "json"]));
        assert_ok(&o);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let live = v[0]["Subsystems"][0]["Paths"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["State"] == "live");
        if live || t0.elapsed() > Duration::from_secs(10) {
            break v;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let paths = v[0]["Subsystems"][0]["Paths"].as_array().unwrap();
    assert_eq!(paths.len(), 2, "{v}");
    assert!(paths.iter().all(|p| p["State"] == "live"), "path back: {v}");
    let ios: u64 = paths.iter().map(|p| p["IOs"].as_u64().unwrap()).sum();
    assert!(ios > 1000, "{v}");
    assert!(v[0]["NBD"]["requests"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v[0]["NBD"]["errors"], 0, "no NBD client saw an error: {v}");
    let o = run(&s(&[
        "status",
        "--control",
        ctl,
        "--set-iopolicy",
        "round-robin",
    ]));
    assert_ok(&o);
    assert!(
        stdout(&o).contains("iopolicy=round-robin"),
        "{}",
        stdout(&o)
    );
    // service-time measures each path's latency: status and metrics show it.
    let o = run(&s(&[
        "status",
        "--control",
        ctl,
        "--set-iopolicy",
        "service-time",
    ]));
    assert_ok(&o);
    assert!(
        stdout(&o).contains("iopolicy=service-time"),
        "{}",
        stdout(&o)
    );
    qemu_io_pattern(&e.uri, "0x5a", "1M", "4M");
    let o = run(&s(&["status", "--control", ctl, "-o", "json"]));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let paths = v[0]["Subsystems"][0]["Namespaces"][0]["Paths"]
        .as_array()
        .unwrap();
    assert!(
        paths.iter().any(|p| p["LatencyUs"].as_u64().unwrap() > 0),
        "{v}"
    );

    // Prometheus metrics.
    let mut c = std::net::TcpStream::connect(&e.metrics).unwrap();
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    c.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
    for k in [
        "nvmp_path_ios_total{",
        "nvmp_path_bytes_total{",
        "nvmp_path_errors_total{",
        "nvmp_path_failovers_total{",
        "nvmp_path_ana_state{",
        "nvmp_controller_state{",
        "nvmp_nbd_requests_total",
        "nvmp_path_latency_seconds{",
    ] {
        assert!(body.contains(k), "{k} missing:\n{body}");
    }
    assert!(body.contains("state=\"optimized\"} 1"), "{body}");
}

#[test]
fn nbd_argument_failures() {
    let o = run(&s(&[
        "nbd",
        "--portal",
        "127.0.0.1:1",
        "-n",
        "nqn.2024-01.x:y",
    ]));
    assert_clean_failure(&o, "nothing to serve on");
    let closed = closed_port();
    let o = run(&s(&[
        "nbd",
        "--listen",
        "127.0.0.1:0",
        "--portal",
        &format!("127.0.0.1:{closed}"),
        "-n",
        "nqn.2024-01.x:y",
    ]));
    assert_clean_failure(&o, "connection refused");
    let o = run(&s(&[
        "nbd",
        "--listen",
        "999.0.0.1:1",
        "--portal",
        "127.0.0.1:1",
        "-n",
        "nqn.2024-01.x:y",
    ]));
    assert_clean_failure(&o, "cannot listen");
}
