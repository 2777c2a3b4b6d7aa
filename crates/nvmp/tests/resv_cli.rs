//! `nvmp resv-register/resv-acquire/resv-release/resv-report` against an
//! in-process nvmp target with two ports, as two hosts (different Host
//! Identifiers, two paths each), and the same commands through the control
//! socket of a running `nvmp nbd`.

mod common;
use common::*;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOST_A: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const HOST_B: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
const HOST_C: &str = "cccccccc-cccc-4ccc-8ccc-cccccccccccc";

fn as_host(id: &str, cmd: &[&str], t: &TestTarget) -> Vec<String> {
    let mut v = s(cmd);
    v.extend(s(&[
        "--hostid",
        id,
        "-q",
        &format!("nqn.2014-08.org.nvmexpress:uuid:{id}"),
    ]));
    v.extend(t.portals());
    v
}

fn report(id: &str, t: &TestTarget) -> serde_json::Value {
    let o = run(&as_host(id, &["resv-report", "--eds", "-o", "json"], t));
    assert_ok(&o);
    serde_json::from_str(&stdout(&o)).expect("json report")
}

#[test]
fn two_hosts_register_acquire_preempt_report() {
    let t = TestTarget::start();
    let o = run(&as_host(HOST_A, &["resv-register", "--nrkey", "0xa"], &t));
    assert_ok(&o);
    assert!(stdout(&o).contains("success"), "{}", stdout(&o));
    assert_ok(&run(&as_host(
        HOST_A,
        &["resv-acquire", "--crkey", "0xa", "--rtype", "1"],
        &t,
    )));
    assert_ok(&run(&as_host(
        HOST_B,
        &["resv-register", "--nrkey", "11"],
        &t,
    )));

    let v = report(HOST_B, &t);
    assert_eq!(v["rtype"], 1, "{v}");
    assert_eq!(v["regctl"], 2, "{v}");
    let regs = v["regctlext"].as_array().expect("regctlext");
    let a = regs
        .iter()
        .find(|r| r["hostid"] == HOST_A.replace('-', ""))
        .expect("A listed");
    assert_eq!(
        (a["rkey"].as_u64(), a["rcsts"].as_u64()),
        (Some(0xa), Some(1))
    );
    let b = regs
        .iter()
        .find(|r| r["hostid"] == HOST_B.replace('-', ""))
        .expect("B listed");
    assert_eq!(
        (b["rkey"].as_u64(), b["rcsts"].as_u64()),
        (Some(11), Some(0))
    );
    assert_eq!(a["cntlid"], 0xFFFF);

    // B may read but not write while A holds Write Exclusive.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("blk");
    std::fs::write(&input, vec![0x42u8; 4096]).unwrap();
    let w = [
        "io",
        "write",
        "--size",
        "4096",
        "--input",
        input.to_str().unwrap(),
    ];
    let o = run(&as_host(HOST_B, &w, &t));
    assert_clean_failure(&o, "Reservation Conflict");
    assert_ok(&run(&as_host(HOST_A, &w, &t)));
    let out = dir.path().join("out");
    let r = ["io", "read", "--size", "4096", "-O", out.to_str().unwrap()];
    assert_ok(&run(&as_host(HOST_B, &r, &t)));
    assert_eq!(std::fs::read(&out).unwrap(), vec![0x42u8; 4096]);

    // A second acquire by B conflicts: one line, non-zero exit.
    let o = run(&as_host(
        HOST_B,
        &["resv-acquire", "--crkey", "11", "--rtype", "1"],
        &t,
    ));
    assert_clean_failure(&o, "Reservation Conflict");
    // B preempts A's key: B holds, A is gone.
    assert_ok(&run(&as_host(
        HOST_B,
        &[
            "resv-acquire",
            "--crkey",
            "11",
            "--prkey",
            "0xa",
            "--rtype",
            "1",
            "--racqa",
            "1",
        ],
        &t,
    )));
    let v = report(HOST_A, &t);
    assert_eq!(v["regctl"], 1, "{v}");
    assert_eq!(v["regctlext"][0]["hostid"], HOST_B.replace('-', ""));
    assert_eq!(v["regctlext"][0]["rcsts"], 1);
    assert_clean_failure(&run(&as_host(HOST_A, &w, &t)), "Reservation Conflict");

    // The 24-byte format: fabrics Host Identifiers are 128 bits.
    let o = run(&as_host(HOST_A, &["resv-report"], &t));
    assert_clean_failure(&o, "--eds");
    // Normal output.
    let o = run(&as_host(HOST_A, &["resv-report", "--eds"], &t));
    assert_ok(&o);
    assert!(
        stdout(&o).contains("rtype     : 1 (Write Exclusive)"),
        "{}",
        stdout(&o)
    );
    // Release, then clear.
    assert_ok(&run(&as_host(
        HOST_B,
        &["resv-release", "--crkey", "11", "--rtype", "1"],
        &t,
    )));
    assert_eq!(report(HOST_A, &t)["rtype"], 0);
    assert_ok(&run(&as_host(
        HOST_B,
        &["resv-release", "--crkey", "11", "--rrela", "1"],
        &t,
    )));
    assert_eq!(report(HOST_A, &t)["regctl"], 0);
}

struct Export {
    child: Child,
    control: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Export {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn export_as(id: &str, t: &TestTarget) -> Export {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("ctl.sock");
    let mut args = s(&[
        "nbd",
        "--nsid",
        "1",
        "--listen",
        &format!("127.0.0.1:{}", closed_port()),
        "--control",
        control.to_str().unwrap(),
        "--hostid",
        id,
        "-q",
        &format!("nqn.2014-08.org.nvmexpress:uuid:{id}"),
    ]);
    args.extend(t.portals());
    let child = Command::new(assert_cmd::cargo::cargo_bin("nvmp"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let e = Export {
        child,
        control,
        _dir: dir,
    };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if run(&s(&["status", "--control", e.control.to_str().unwrap()]))
            .status
            .success()
        {
            return e;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nvmp nbd did not come up");
}

#[test]
fn through_the_nbd_control_socket() {
    let t = TestTarget::start();
    let e = export_as(HOST_C, &t);
    let ctl = e.control.to_str().unwrap();
    // The exporting host registers and acquires on its own paths (its Host Identifier).
    assert_ok(&run(&s(&[
        "resv-register",
        "--control",
        ctl,
        "--nrkey",
        "0xc",
    ])));
    assert_ok(&run(&s(&[
        "resv-acquire",
        "--control",
        ctl,
        "--crkey",
        "0xc",
        "--rtype",
        "2",
    ])));
    let o = run(&s(&[
        "resv-report",
        "--control",
        ctl,
        "--eds",
        "-o",
        "json",
    ]));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["rtype"], 2, "{v}");
    assert_eq!(v["regctlext"][0]["hostid"], HOST_C.replace('-', ""));
    // Another host sees the same state and is fenced (Exclusive Access: no reads).
    let v = report(HOST_A, &t);
    assert_eq!(v["regctlext"][0]["rkey"], 0xc);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let r = ["io", "read", "--size", "512", "-O", out.to_str().unwrap()];
    assert_clean_failure(&run(&as_host(HOST_A, &r, &t)), "Reservation Conflict");
    // Errors come back as one line.
    let o = run(&s(&[
        "resv-acquire",
        "--control",
        ctl,
        "--crkey",
        "9",
        "--rtype",
        "2",
    ]));
    assert_clean_failure(&o, "Reservation Conflict");
    // Clear: every registration goes, the other host reads again.
    assert_ok(&run(&s(&[
        "resv-release",
        "--control",
        ctl,
        "--crkey",
        "0xc",
        "--rrela",
        "1",
    ])));
    assert_eq!(report(HOST_A, &t)["regctl"], 0);
    assert_ok(&run(&as_host(HOST_A, &r, &t)));
}
