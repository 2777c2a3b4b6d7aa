//! Test support shared by nvmp's crates: a guard around `../shared/linux-peer`,
//! the real Linux kernel NVMe/TCP stack in a QEMU VM, and a TCP fault proxy
//! ([`proxy::FaultProxy`]).
//!
//! The interop tests run in the normal suite. They are skipped only when
//! `NVMP_SKIP_LINUX_PEER=1` (documented in the README; CI never sets it);
//! otherwise a missing or broken VM fails the test.
// `deny`, not `forbid`: the counting allocator (`alloc`) is the one
// audited exception, for the tests that count allocations.
#![deny(unsafe_code)]

pub mod alloc;
pub mod bucket;
pub mod proxy;
pub use bucket::RateLimit;
pub use proxy::{Direction, FaultProxy, ProxyMode};

use std::path::PathBuf;
use std::process::{Command, Output};

/// Whether the Linux interop tests are to be skipped (and say so).
pub fn skip_linux_peer(test: &str) -> bool {
    if std::env::var("NVMP_SKIP_LINUX_PEER").as_deref() == Ok("1") {
        eprintln!("{test}: SKIPPED (NVMP_SKIP_LINUX_PEER=1)");
        true
    } else {
        false
    }
}

/// The linux-peer script: `$NVMP_LINUX_PEER`, else `../shared/linux-peer/linux-peer` beside the checkout.
pub fn linux_peer_bin() -> PathBuf {
    if let Ok(p) = std::env::var("NVMP_LINUX_PEER") {
        return p.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/linux-peer/linux-peer")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// How the VM is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerMode {
    /// Kernel nvmet target (subsystem `nqn.2024-01.io.example:peer`, NSID 1 and 2, ports 4420/4421).
    Target,
    /// Kernel nvme-tcp host with native multipath.
    Host,
}

/// A running linux-peer instance; stopped when dropped.
#[derive(Debug)]
pub struct LinuxPeer {
    bin: PathBuf,
    instance: String,
    /// Host-side ports: control agent, port 1 (guest 4420), port 2 (guest 4421).
    pub ports: [u16; 3],
}

impl LinuxPeer {
    /// Boot a VM, on free ports. `instance` names the test binary; the VM's
    /// instance is `instance-PID`, so that two runs of one test at the same
    /// time (a CI run beside a developer's) each have their own VM: with one
    /// name, the second run's start stopped the first one's VM mid-test
    /// (its connections closed, then refused). VMs left by test processes
    /// that died without dropping theirs are stopped here.
    pub fn start(instance: &str, mode: PeerMode) -> LinuxPeer {
        let bin = linux_peer_bin();
        assert!(
            bin.exists(),
            "linux-peer not found at {} (set NVMP_LINUX_PEER, or NVMP_SKIP_LINUX_PEER=1 to skip)",
            bin.display()
        );
        let p = LinuxPeer {
            bin,
            instance: format!("{instance}-{}", std::process::id()),
            ports: [free_port(), free_port(), free_port()],
        };
        p.stop_orphans(instance);
        let flag = match mode {
            PeerMode::Target => "--target",
            PeerMode::Host => "--host",
        };
        // The guest kernel under QEMU's software emulation (TCG) now and then
        // dies during early boot (seen: a fatal exception in sched_clock_cpu
        // before any NVMe code runs). That is the emulator, not the code under
        // test: boot again, at most BOOT_ATTEMPTS times, and say so.
        const BOOT_ATTEMPTS: usize = 3;
        for attempt in 1..=BOOT_ATTEMPTS {
            let _ = p.cmd(&["stop"]);
            let o = p.cmd(&["start", flag]);
            if o.status.success() {
                return p;
            }
            let why = format!(
                "linux-peer start {flag} failed ({}), attempt {attempt} of {BOOT_ATTEMPTS}:\n{}\n{}",
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(attempt < BOOT_ATTEMPTS, "{why}");
            eprintln!("{why}\nbooting again");
        }
        unreachable!("the loop returns or panics")
    }

    /// Run `linux-peer -n INSTANCE ARGS…` with this instance's ports.
    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(["-n", &self.instance])
            .args(args)
            .env("LINUX_PEER_CTL_PORT", self.ports[0].to_string())
            .env("LINUX_PEER_PORT1", self.ports[1].to_string())
            .env("LINUX_PEER_PORT2", self.ports[2].to_string())
            .output()
            .expect("run linux-peer")
    }

    /// Like [`cmd`](Self::cmd), panicking (with its output) if it fails; returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert!(
            o.status.success(),
            "linux-peer {args:?} failed ({}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Run a shell snippet in the guest; returns (exit code, stdout, stderr).
    pub fn exec(&self, script: &str) -> (i32, String, String) {
        let o = self.cmd(&["exec", "--", script]);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Stop the VMs of instances `prefix-PID` whose test process is gone,
    /// and forget them.
    fn stop_orphans(&self, prefix: &str) {
        let Some(runs) = self.run_dir().parent().map(|d| d.to_path_buf()) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&runs) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('-'))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if PathBuf::from(format!("/proc/{pid}")).exists() {
                continue;
            }
            let _ = Command::new(&self.bin).args(["-n", &name, "stop"]).output();
            let _ = std::fs::remove_dir_all(e.path());
        }
    }

    /// The instance's state directory (as linux-peer computes it).
    fn run_dir(&self) -> PathBuf {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(r) = env("LINUX_PEER_RUN") {
            return r;
        }
        let cache = env("LINUX_PEER_CACHE").unwrap_or_else(|| {
            env("XDG_CACHE_HOME")
                .or_else(|| env("HOME").map(|h| h.join(".cache")))
                .unwrap_or_default()
                .join("linux-peer")
        });
        cache.join("run").join(&self.instance)
    }

    /// The serial console log (for failure reports).
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["console"]).stdout).into_owned()
    }
}

impl Drop for LinuxPeer {
    fn drop(&mut self) {
        // A failing test shows what the guest kernel said (nvmet logs why it
        // drops a controller; a guest panic ends QEMU, see `-no-reboot`).
        if std::thread::panicking() {
            let log = self.console();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!(
                "--- linux-peer '{}' console (last {} lines) ---",
                self.instance,
                tail.len()
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
            eprintln!("--- end of console ---");
            // Is QEMU still running (a dead guest refuses connections)? Did
            // QEMU itself say why it stopped?
            let st = self.cmd(&["status"]);
            eprintln!(
                "linux-peer status: {} ({})",
                String::from_utf8_lossy(&st.stdout)
                    .lines()
                    .next()
                    .unwrap_or(""),
                st.status
            );
            if let Ok(q) = std::fs::read_to_string(self.run_dir().join("qemu.log")) {
                if !q.trim().is_empty() {
                    eprintln!("--- qemu.log ---\n{q}--- end of qemu.log ---");
                }
            }
        }
        let _ = self.cmd(&["stop"]);
        // The name is this process's: nobody runs it again.
        let _ = std::fs::remove_dir_all(self.run_dir());
    }
}
