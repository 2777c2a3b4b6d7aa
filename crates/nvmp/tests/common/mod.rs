//! Shared test helpers: an in-process nvmp target on two loopback ports,
//! the `nvmp` binary, and checks that failures are one clean line.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Output;

use nvmp_target::config::TargetConfig;
use nvmp_target::control::TargetHandle;

pub const NQN: &str = "nqn.2024-01.io.nvmp:test";
pub const LOCKED_NQN: &str = "nqn.2024-01.io.nvmp:locked";
pub const ALLOWED_HOST: &str =
    "nqn.2014-08.org.nvmexpress:uuid:4c504853-0000-4000-8000-0000000000aa";
pub const OTHER_HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:4c504853-0000-4000-8000-0000000000bb";

/// A target running on its own tokio runtime for the duration of a test.
pub struct TestTarget {
    pub rt: tokio::runtime::Runtime,
    pub handle: TargetHandle,
    pub port1: SocketAddr,
    pub port2: SocketAddr,
}

pub fn config_json(ns_size: &str) -> String {
    let port = |id: u16, state: &str| {
        // Port 2 refers hosts to another discovery service (listed, never contacted).
        let referrals = if id == 2 {
            serde_json::json!([{"name": "r1", "portid": 9, "enable": 1,
                "addr": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "192.0.2.7", "trsvcid": "8009", "treq": "not specified"}}])
        } else {
            serde_json::json!([])
        };
        serde_json::json!({
            "portid": id,
            "addr": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "0", "treq": "not specified"},
            "param": {"inline_data_size": "16384"},
            "ana_groups": [{"grpid": 1, "ana": {"state": state}}],
            "referrals": referrals,
            "subsystems": [NQN, LOCKED_NQN],
        })
    };
    serde_json::json!({
        "hosts": [{"nqn": ALLOWED_HOST}],
        "ports": [port(1, "optimized"), port(2, "non-optimized")],
        "subsystems": [
            {"nqn": NQN, "attr": {"allow_any_host": "1", "serial": "nvmptest01", "model": "nvmp test"},
             "allowed_hosts": [],
             "namespaces": [{"nsid": 1, "enable": 1, "ana_grpid": 1,
                 "device": {"size": ns_size, "nguid": "6e766d70-7465-7374-0000-000000000001", "uuid": "6e766d70-7465-7374-8000-000000000001"}}]},
            {"nqn": LOCKED_NQN, "attr": {"allow_any_host": "0", "serial": "nvmptest02", "model": "nvmp locked"},
             "allowed_hosts": [ALLOWED_HOST],
             "namespaces": [{"nsid": 1, "enable": 1, "ana_grpid": 1,
                 "device": {"size": "4M", "nguid": "6e766d70-7465-7374-0000-000000000002", "uuid": "6e766d70-7465-7374-8000-000000000002"}}]},
        ],
    })
    .to_string()
}

impl TestTarget {
    pub fn start() -> Self {
        Self::with_size("32M")
    }
    pub fn with_size(ns_size: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let cfg = TargetConfig::from_json(&config_json(ns_size)).expect("test config");
        let handle = rt
            .block_on(TargetHandle::start(cfg))
            .expect("target starts");
        let port1 = handle.local_addr(1).expect("port 1 listens");
        let port2 = handle.local_addr(2).expect("port 2 listens");
        Self {
            rt,
            handle,
            port1,
            port2,
        }
    }
    /// `--portal A --portal B -n NQN`
    pub fn portals(&self) -> Vec<String> {
        vec![
            "--portal".into(),
            self.port1.to_string(),
            "--portal".into(),
            self.port2.to_string(),
            "-n".into(),
            NQN.into(),
        ]
    }
    pub fn discover(&self) -> Vec<String> {
        vec!["--discover".into(), self.port1.to_string()]
    }
}

impl Drop for TestTarget {
    fn drop(&mut self) {
        let h = self.handle.clone();
        self.rt.block_on(async move { h.shutdown().await });
    }
}

pub fn nvmp() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("nvmp").expect("nvmp binary");
    c.timeout(std::time::Duration::from_secs(60));
    c.env_remove("RUST_LOG");
    c
}

pub fn run(args: &[String]) -> Output {
    nvmp().args(args).output().expect("runs")
}

pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

pub fn join(a: &[&str], b: &[String]) -> Vec<String> {
    let mut v = s(a);
    v.extend_from_slice(b);
    v
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command failed with exit code 1, and one line on stderr that contains `needle`.
pub fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(!err.contains("stack backtrace"), "backtrace: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {err}");
    assert!(lines[0].starts_with("nvmp: "), "{err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "{needle:?} not in: {err}"
    );
}

pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "failed: {}\nstdout: {}",
        stderr(o),
        stdout(o)
    );
}

/// A TCP port on 127.0.0.1 where nothing listens.
pub fn closed_port() -> u16 {
    nvmp_testkit::free_port()
}

/// A binary a test needs, or a failure that names the Debian package.
pub fn need(bin: &str, package: &str) {
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "{bin} not found: install the Debian package {package}");
}

/// Run an external program (qemu-io, nbdinfo, fio, …); panic with its output unless it succeeds.
pub fn sh(cmd: &mut std::process::Command) -> std::process::Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    o
}
