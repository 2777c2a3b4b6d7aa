//! `nvmp --poll nbd`: the export's own runtime busy-polls (the global
//! `--poll` is handed to it; the CLI's idle runtime does not spin), and a
//! polling export still does everything a sleeping one does: real clients
//! over TCP (qemu-io) and the Unix socket (fio's nbd engine with verify),
//! and it stops on SIGTERM. The same export runs with
//! `--no-structured-replies` (simple replies only, as nbdinfo sees). Never a timing: latency is shown by
//! `crates/nvmp-nbd/scripts/fio-vs-nbdkit.py`.

mod common;
use common::*;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time (user + system) of process `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which may contain spaces).
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn nbd_export_polls_serves_clients_and_stops() {
    need("qemu-io", "qemu-utils");
    need("fio", "fio");
    need("nbdinfo", "libnbd-bin");
    let t = TestTarget::start();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nbd.sock");
    let port = closed_port();
    let mut args = s(&[
        "--poll",
        "nbd",
        "--nsid",
        "1",
        "--name",
        "disk",
        "--no-structured-replies",
        "--unix",
    ]);
    args.push(sock.to_str().unwrap().into());
    args.extend(s(&["--listen", &format!("127.0.0.1:{port}")]));
    args.extend(t.portals());
    let mut export = Kill(
        Command::new(assert_cmd::cargo::cargo_bin("nvmp"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(
            export.0.try_wait().unwrap().is_none(),
            "the polling export exited"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the polling export did not come up within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let o = sh(Command::new("nbdinfo").args(["--json", &format!("nbd://127.0.0.1:{port}/disk")]));
    let v: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap();
    assert_eq!(v["structured"], false, "{v}");
    assert_eq!(v["exports"][0]["can_df"], false, "{v}");

    // qemu-io over TCP: a pattern written, read back, checked.
    sh(Command::new("qemu-io").args([
        "-f",
        "raw",
        &format!("nbd://127.0.0.1:{port}/disk"),
        "-c",
        "write -P 0x5c 1M 2M",
        "-c",
        "read -P 0x5c 1M 2M",
        "-c",
        "read -P 0 0 1M",
    ]));
    // fio over the Unix socket, 8 requests in flight, every block verified.
    let o = sh(Command::new("fio").args([
        "--name=verify",
        "--ioengine=nbd",
        &format!("--uri=nbd+unix:///disk?socket={}", sock.display()),
        "--rw=randwrite",
        "--bs=4k",
        "--size=4M",
        "--iodepth=8",
        "--verify=crc32c",
        "--do_verify=1",
        "--verify_fatal=1",
        "--verify_state_save=0",
        "--output-format=json",
    ]));
    let text = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&text[text.find('{').expect("fio json")..]).unwrap();
    let job = &v["jobs"][0];
    assert_eq!(job["error"], 0, "{job}");
    assert_eq!(job["write"]["total_ios"], 1024, "{job}");
    assert!(job["read"]["total_ios"].as_u64().unwrap() >= 1024, "{job}");

    // Idle, a sleeping export uses next to no CPU; a polling one spins.
    // Liveness only: 0.1 s of CPU within up to 30 s, on however loaded a
    // machine.
    let pid = export.0.id();
    let (c0, t0) = (cpu_ticks(pid), Instant::now());
    let tick = 100; // USER_HZ on Linux
    while cpu_ticks(pid) - c0 < tick / 10 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "an idle polling export used {} ticks of CPU in 30 s: it does not spin",
            cpu_ticks(pid) - c0
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGTERM stops it (its spinner does not hold the runtime) and removes
    // the socket.
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let t0 = Instant::now();
    loop {
        if let Some(st) = export.0.try_wait().unwrap() {
            assert!(st.success(), "export exit status {st}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the polling export did not stop on SIGTERM within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!sock.exists(), "the Unix socket is removed on exit");
}
