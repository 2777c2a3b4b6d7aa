//! What a process spends per I/O, read from procfs (no unsafe, no
//! getrusage): CPU time, read/write syscalls and context switches of every
//! thread of a process, sampled before and after the measured interval.
//!
//! Sources, per thread (`/proc/PID/task/TID/…`), summed over the threads:
//! - `schedstat`, first field: nanoseconds on a CPU (ns precision, unlike the
//!   clock ticks of `stat`);
//! - `status`: `voluntary_ctxt_switches` (the thread slept: it waited for I/O or
//!   a wake-up) and `nonvoluntary_ctxt_switches` (it was preempted).
//!
//! Syscalls are counted by `perf stat -e raw_syscalls:sys_enter -p PID` (every
//! syscall, of every thread), with `--count-syscalls`. procfs has no such
//! count: `/proc/PID/io` `syscr`/`syscw` see only VFS reads and writes, not the
//! `recv`/`send` that tokio uses on sockets (they read ~0 per I/O).
//!
//! A thread that exits during the interval takes its counts with it (the
//! figures then read low); the benchmark's threads live for the whole run.

use std::process::{Child, Command, Stdio};

use serde::Serialize;

/// Counters of one process at one instant (sums over its threads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcSample {
    pub cpu_ns: u64,
    pub vcsw: u64,
    pub ivcsw: u64,
    pub threads: u32,
}

/// Value of `key:` in a `/proc/…/status` text.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn proc_root(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_string(),
    }
}

impl ProcSample {
    /// Sample process `pid` (`None`: this process). Errors name the file.
    pub fn take(pid: Option<u32>) -> Result<ProcSample, String> {
        let root = proc_root(pid);
        let mut s = ProcSample::default();
        let tasks = std::fs::read_dir(format!("{root}/task"))
            .map_err(|e| format!("reading {root}/task: {e}"))?;
        for t in tasks.flatten() {
            let dir = t.path();
            // A thread may exit between the listing and the reads: skip it.
            let (Ok(sched), Ok(status)) = (
                std::fs::read_to_string(dir.join("schedstat")),
                std::fs::read_to_string(dir.join("status")),
            ) else {
                continue;
            };
            s.cpu_ns += sched
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("{}/schedstat: unexpected {sched:?}", dir.display()))?;
            s.vcsw += field(&status, "voluntary_ctxt_switches").unwrap_or(0);
            s.ivcsw += field(&status, "nonvoluntary_ctxt_switches").unwrap_or(0);
            s.threads += 1;
        }
        if s.threads == 0 {
            return Err(format!("{root}/task: no readable thread"));
        }
        Ok(s)
    }
}

/// `perf stat` counting every syscall of one process until `finish`.
struct PerfCount {
    child: Child,
}

/// Seconds `perf` may need to attach to a process before it counts.
pub const PERF_ATTACH_S: f64 = 0.2;

impl PerfCount {
    fn start(pid: u32) -> Result<PerfCount, String> {
        // perf counts `-p PID` while its command (`cat`) runs; `cat` ends
        // when we close its stdin.
        let child = Command::new("perf")
            .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p"])
            .arg(pid.to_string())
            .args(["--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("--count-syscalls: running perf: {e}"))?;
        Ok(PerfCount { child })
    }

    /// Whether perf already stopped: it could not attach (a thread of the
    /// process exiting while perf opens a counter per thread makes it fail).
    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn finish(mut self) -> Result<u64, String> {
        drop(self.child.stdin.take());
        let out = self
            .child
            .wait_with_output()
            .map_err(|e| format!("--count-syscalls: waiting for perf: {e}"))?;
        parse_perf(&String::from_utf8_lossy(&out.stderr))
    }
}

/// The count of `perf stat -x,` CSV output: `1153076,,raw_syscalls:sys_enter,…`.
fn parse_perf(text: &str) -> Result<u64, String> {
    let line = text
        .lines()
        .find(|l| l.contains(",raw_syscalls:sys_enter,"))
        .ok_or_else(|| format!("--count-syscalls: perf printed no count: {}", text.trim()))?;
    let v = line.split(',').next().unwrap_or_default();
    v.trim().parse().map_err(|_| {
        format!("--count-syscalls: perf could not count ({v}; root or perf_event_paranoid <= 1 needed?)")
    })
}

/// What a process spent over the measured interval, in total and per I/O.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ProcUsage {
    /// The process sampled ("self" or its pid).
    pub pid: String,
    /// CPU time of all its threads (user + system), µs per I/O.
    pub cpu_us_per_io: f64,
    /// CPU time as a share of one core over the interval (100 = one core busy).
    pub cpu_pct: f64,
    /// Syscalls (all kinds) per I/O; `null` unless `--count-syscalls`.
    pub syscalls_per_io: Option<f64>,
    /// Voluntary context switches (sleeps) per I/O.
    pub vol_ctxsw_per_io: f64,
    /// Involuntary context switches (preemptions) per I/O.
    pub invol_ctxsw_per_io: f64,
    /// Raw deltas over the interval, so rounds can be merged.
    pub cpu_ns: u64,
    pub syscalls: Option<u64>,
    pub vcsw: u64,
    pub ivcsw: u64,
    pub ios: u64,
    pub secs: f64,
}

impl ProcUsage {
    pub fn new(
        pid: String,
        a: &ProcSample,
        b: &ProcSample,
        syscalls: Option<u64>,
        ios: u64,
        secs: f64,
    ) -> ProcUsage {
        let mut u = ProcUsage {
            pid,
            // Threads that exited take their time with them: never negative.
            cpu_ns: b.cpu_ns.saturating_sub(a.cpu_ns),
            syscalls,
            vcsw: b.vcsw.saturating_sub(a.vcsw),
            ivcsw: b.ivcsw.saturating_sub(a.ivcsw),
            ios,
            secs,
            ..ProcUsage::default()
        };
        u.derive();
        u
    }

    fn derive(&mut self) {
        let ios = self.ios.max(1) as f64;
        self.cpu_us_per_io = self.cpu_ns as f64 / ios / 1000.0;
        self.cpu_pct = if self.secs > 0.0 {
            self.cpu_ns as f64 / 1e9 / self.secs * 100.0
        } else {
            0.0
        };
        self.syscalls_per_io = self.syscalls.map(|n| n as f64 / ios);
        self.vol_ctxsw_per_io = self.vcsw as f64 / ios;
        self.invol_ctxsw_per_io = self.ivcsw as f64 / ios;
    }

    /// Sum of two intervals of the same process (rounds of `--compare`).
    pub fn add(&mut self, o: &ProcUsage) {
        self.cpu_ns += o.cpu_ns;
        self.syscalls = self.syscalls.zip(o.syscalls).map(|(a, b)| a + b);
        self.vcsw += o.vcsw;
        self.ivcsw += o.ivcsw;
        self.ios += o.ios;
        self.secs += o.secs;
        self.derive();
    }

    /// One line of text: `cpu=12.30us/io (85% of a core) syscalls=0.400/io vcsw=0.300/io ivcsw=0.010/io`.
    pub fn line(&self) -> String {
        format!(
            "cpu={:.2}us/io ({:.0}% of a core) syscalls={} vcsw={:.3}/io ivcsw={:.3}/io",
            self.cpu_us_per_io,
            self.cpu_pct,
            self.syscalls_per_io
                .map_or("-".to_string(), |v| format!("{v:.3}/io")),
            self.vol_ctxsw_per_io,
            self.invol_ctxsw_per_io
        )
    }
}

/// One process being measured: its first sample and its syscall counter.
struct Probe {
    pid: Option<u32>,
    start: Result<ProcSample, String>,
    perf: Option<Result<PerfCount, String>>,
}

impl Probe {
    fn new(pid: Option<u32>, count_syscalls: bool) -> Probe {
        let perf = count_syscalls.then(|| PerfCount::start(pid.unwrap_or_else(std::process::id)));
        Probe {
            pid,
            start: Err("not started".into()),
            perf,
        }
    }

    /// Start `perf` again if it already stopped; true if it did.
    fn restart_exited_perf(&mut self) -> bool {
        let Some(Ok(p)) = &mut self.perf else {
            return false;
        };
        if !p.exited() {
            return false;
        }
        self.perf = Some(PerfCount::start(self.pid.unwrap_or_else(std::process::id)));
        true
    }

    fn finish(self, ios: u64, secs: f64, errors: &mut Vec<String>) -> Option<ProcUsage> {
        let end = ProcSample::take(self.pid);
        let syscalls = match self.perf.map(|p| p.and_then(PerfCount::finish)) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                errors.push(e);
                None
            }
        };
        let name = self.pid.map_or("self".to_string(), |p| p.to_string());
        match self.start.and_then(|a| end.map(|b| (a, b))) {
            Ok((a, b)) => Some(ProcUsage::new(name, &a, &b, syscalls, ios, secs)),
            Err(e) => {
                errors.push(e);
                None
            }
        }
    }
}

/// Samples of the bench process and (optionally) of the target's process,
/// taken at the start of the measured interval.
pub struct Meter {
    host: Probe,
    target: Option<Probe>,
}

/// The usage of both processes over the interval; error strings for what
/// could not be measured (reported, not fatal: the I/O figures stand).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Usage {
    pub host: Option<ProcUsage>,
    pub target: Option<ProcUsage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Meter {
    /// With `count_syscalls`, start `perf` now: give it [`PERF_ATTACH_S`] to
    /// attach before [`Meter::begin`].
    pub fn new(target_pid: Option<u32>, count_syscalls: bool) -> Meter {
        Meter {
            host: Probe::new(None, count_syscalls),
            target: target_pid.map(|p| Probe::new(Some(p), count_syscalls)),
        }
    }

    /// Start again the `perf` counters that already stopped because they
    /// could not attach (see [`PerfCount::exited`]); true if any was: give
    /// them [`PERF_ATTACH_S`] again before [`Meter::begin`].
    pub fn restart_exited_counters(&mut self) -> bool {
        let mut any = false;
        for p in std::iter::once(&mut self.host).chain(self.target.as_mut()) {
            any |= p.restart_exited_perf();
        }
        any
    }

    /// The start of the measured interval: the first samples.
    pub fn begin(&mut self) {
        for p in std::iter::once(&mut self.host).chain(self.target.as_mut()) {
            p.start = ProcSample::take(p.pid);
        }
    }

    pub fn finish(self, ios: u64, secs: f64) -> Usage {
        let mut u = Usage::default();
        u.host = self.host.finish(ios, secs, &mut u.errors);
        u.target = self.target.and_then(|t| t.finish(ios, secs, &mut u.errors));
        u
    }
}

impl Usage {
    pub fn add(&mut self, o: &Usage) {
        fn add(a: &mut Option<ProcUsage>, b: &Option<ProcUsage>) {
            match (a.as_mut(), b) {
                (Some(x), Some(y)) => x.add(y),
                _ => *a = None,
            }
        }
        add(&mut self.host, &o.host);
        add(&mut self.target, &o.target);
        self.errors.extend(o.errors.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_status() {
        let t = "Name:\tx\nvoluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(field(t, "voluntary_ctxt_switches"), Some(17));
        assert_eq!(field(t, "nonvoluntary_ctxt_switches"), Some(3));
        assert_eq!(field("x: y\n", "x"), None);
    }

    #[test]
    fn perf_output() {
        assert_eq!(
            parse_perf("1153076,,raw_syscalls:sys_enter,966126850,100.00,,\n"),
            Ok(1153076)
        );
        let e = parse_perf("<not counted>,,raw_syscalls:sys_enter,0,100.00,,").unwrap_err();
        assert!(e.contains("could not count"), "{e}");
        assert!(parse_perf("perf: command not found").is_err());
    }

    #[test]
    fn own_process_spends_cpu() {
        let a = ProcSample::take(None).unwrap();
        let mut x = 0u64;
        for i in 0..3_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = ProcSample::take(None).unwrap();
        assert!(b.threads >= 1);
        let u = ProcUsage::new("self".into(), &a, &b, Some(30), 10, 1.0);
        assert!(u.cpu_ns > 0, "{u:?}");
        assert_eq!(u.cpu_us_per_io, u.cpu_ns as f64 / 10.0 / 1000.0);
        assert_eq!(u.syscalls_per_io, Some(3.0));
        let mut m = u.clone();
        m.add(&u);
        assert_eq!((m.ios, m.cpu_ns, m.syscalls), (20, 2 * u.cpu_ns, Some(60)));
        assert_eq!(m.cpu_us_per_io, u.cpu_us_per_io);
        m.add(&ProcUsage::new("self".into(), &a, &b, None, 10, 1.0));
        assert_eq!(m.syscalls_per_io, None);
    }

    #[test]
    fn missing_process_is_an_error() {
        // pid_max is at most 2^22: this pid cannot exist.
        let e = ProcSample::take(Some(u32::MAX)).unwrap_err();
        assert!(e.contains("/proc/4294967295/task"), "{e}");
        let mut m = Meter::new(Some(u32::MAX), false);
        m.begin();
        let u = m.finish(1, 1.0);
        assert!(u.host.is_some() && u.target.is_none(), "{u:?}");
        assert_eq!(u.errors.len(), 1);
    }

    #[test]
    fn a_perf_that_could_not_attach_is_started_again() {
        if !Command::new("perf")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return; // no perf here: nothing to restart (--count-syscalls reports the error)
        }
        // perf cannot attach to a process that does not exist: it stops at
        // once, and is started again (and stops again) each time it is asked.
        let mut m = Meter::new(Some(u32::MAX), true);
        let t0 = std::time::Instant::now();
        while !m.restart_exited_counters() {
            assert!(
                t0.elapsed().as_secs() < 30,
                "perf on a missing pid never stopped"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let t0 = std::time::Instant::now();
        while !m.restart_exited_counters() {
            assert!(
                t0.elapsed().as_secs() < 30,
                "the restarted perf never stopped"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The host's own counter attached and runs on.
        assert!(!m.restart_exited_counters());
        m.begin();
        let u = m.finish(1, 1.0);
        assert!(u.host.is_some(), "{u:?}");
        assert!(u.errors.iter().any(|e| e.contains("perf")), "{u:?}");
    }
}
