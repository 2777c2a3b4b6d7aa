//! `--poll`: a busy-polling target and host still do everything a
//! sleeping pair does — the target accepts, verified I/O completes, both
//! stop on request. (An earlier runtime setting starved every task but the
//! spinners: the target never accepted. This catches that class of bug.)
//! Never a timing: polling's latency is shown by benchmarks.

mod common;
use common::*;

#[test]
fn polling_target_and_host_run_verified_io_and_stop_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.json");
    let port = closed_port();
    let text =
        config_json("8M").replacen("\"trsvcid\":\"0\"", &format!("\"trsvcid\":\"{port}\""), 1);
    std::fs::write(&cfg, text).unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("nvmp"))
        .args(["--poll", "--workers", "1", "target", "run", "--config"])
        .arg(&cfg)
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t0.elapsed().as_secs() >= 20 {
            let _ = child.kill();
            panic!("the polling target did not accept within 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let portal = format!("127.0.0.1:{port}");
    let o = run(&s(&[
        "--poll",
        "--workers",
        "1",
        "bench",
        "--portal",
        &portal,
        "-n",
        NQN,
        "--rw",
        "randrw",
        "--verify",
        "--size",
        "4M",
        "--iodepth",
        "4",
        "--runtime",
        "1",
        "-o",
        "json",
    ]));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert!(v["reads"].as_u64().unwrap() > 0, "{v}");
    assert!(v["writes"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["verify_errors"], 0, "{v}");
    // SIGTERM stops the polling target (its spinners do not hold it).
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let t0 = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "target exit status {st}");
            break;
        }
        if t0.elapsed().as_secs() >= 20 {
            let _ = child.kill();
            panic!("the polling target did not stop on SIGTERM within 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
