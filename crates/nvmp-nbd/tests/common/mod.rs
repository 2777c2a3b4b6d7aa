//! Shared helpers: a server on 127.0.0.1:ephemeral and a Unix socket over a
//! MemDevice, running on its own runtime thread; client binaries run with a
//! timeout.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nvmp_nbd::{ExportConfig, MemDevice, NbdServer};

pub const NAME: &str = "disk0";

pub struct TestServer {
    pub port: u16,
    pub socket: PathBuf,
    pub dev: Arc<MemDevice>,
    pub server: NbdServer<MemDevice>,
    pub dir: tempfile::TempDir,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(dev: MemDevice) -> Self {
        let mut cfg = ExportConfig::new(NAME);
        cfg.description = "nvmp test export".into();
        Self::start_with(dev, cfg)
    }

    pub fn start_with(dev: MemDevice, cfg: ExportConfig) -> Self {
        let dev = Arc::new(dev);
        let server = NbdServer::new(dev.clone(), cfg).expect("valid config");
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("nbd.sock");
        let (tx, rx) = std::sync::mpsc::channel();
        let srv = server.clone();
        let sock = socket.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind tcp");
                let unix = tokio::net::UnixListener::bind(&sock).expect("bind unix");
                tx.send(tcp.local_addr().expect("addr").port())
                    .expect("send port");
                let (a, b) = tokio::join!(srv.serve_tcp(tcp), srv.serve_unix(unix));
                a.expect("serve tcp");
                b.expect("serve unix");
            });
        });
        let port = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server started");
        TestServer {
            port,
            socket,
            dev,
            server,
            dir,
            thread: Some(thread),
        }
    }

    pub fn uri(&self) -> String {
        format!("nbd://127.0.0.1:{}/{NAME}", self.port)
    }

    pub fn unix_uri(&self) -> String {
        format!("nbd+unix:///{NAME}?socket={}", self.socket.display())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Fails the test (never skips) when a client binary is missing.
pub fn require(bin: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{bin}` not found in PATH: install the Debian package `{package}` (apt-get install {package})"
    );
}

/// Runs a command with a timeout; panics on timeout.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{desc} timed out after {timeout:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let desc = format!("{cmd:?}");
    let out = run(cmd, Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{desc} failed with {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn write_file(path: &Path, data: &[u8]) {
    std::fs::write(path, data).expect("write file");
}

/// qemu-io on the export: `-f raw URI -c ...`; returns stdout.
pub fn qemu_io(uri: &str, cmds: &[&str]) -> String {
    require("qemu-io", "qemu-utils");
    let mut c = Command::new("qemu-io");
    c.args(["-f", "raw", uri]);
    for cmd in cmds {
        c.args(["-c", cmd]);
    }
    let out = run_ok(&mut c);
    // qemu-io reports per-command failures on stdout/stderr but may exit 0.
    for bad in ["Pattern verification failed", "failed:", "error"] {
        assert!(!out.contains(bad), "qemu-io reported {bad:?}:\n{out}");
    }
    out
}
pub mod raw;
