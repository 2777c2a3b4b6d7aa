//! The workload engine: `jobs × iodepth` tasks issuing I/O for a while,
//! each latency into an HDR histogram, a progress line once a second.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::ValueEnum;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};

use super::report::{latency_curve, new_histogram, path_counts, Latency, Report, Sample};
use super::target::IoTarget;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rw {
    Randread,
    Randwrite,
    Read,
    Write,
    Randrw,
}

impl Rw {
    pub fn name(self) -> &'static str {
        match self {
            Rw::Randread => "randread",
            Rw::Randwrite => "randwrite",
            Rw::Read => "read",
            Rw::Write => "write",
            Rw::Randrw => "randrw",
        }
    }
    fn random(self) -> bool {
        matches!(self, Rw::Randread | Rw::Randwrite | Rw::Randrw)
    }
    pub fn reads(self) -> bool {
        matches!(self, Rw::Randread | Rw::Read | Rw::Randrw)
    }
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub rw: Rw,
    pub bs: u64,
    pub iodepth: usize,
    pub jobs: usize,
    pub runtime: Duration,
    /// Bytes of the device the workload touches (from offset 0).
    pub size: u64,
    pub rwmixread: u32,
    pub verify: bool,
    pub progress: bool,
    pub iopolicy: Option<String>,
    /// The target's process, to report its CPU and syscalls per I/O too.
    pub target_pid: Option<u32>,
    /// Count every syscall of both processes with `perf stat`.
    pub count_syscalls: bool,
    /// Interval of the timeline samples.
    pub sample: Duration,
}

#[derive(Default)]
struct Counters {
    ios: AtomicU64,
    reads: AtomicU64,
    writes: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    verify_errors: AtomicU64,
}

struct Hists {
    all: Histogram<u64>,
    read: Histogram<u64>,
    write: Histogram<u64>,
}

/// Fill the region with the verification pattern (generation 1), so reads can be checked.
pub async fn prefill<T: IoTarget>(t: &T, size: u64) -> Result<(), String> {
    let step = 1u64 << 20;
    let mut off = 0;
    while off < size {
        let n = step.min(size - off);
        t.write(off, Bytes::from(crate::pattern::make(n as usize, off, 1)))
            .await?;
        off += n;
    }
    Ok(())
}

pub async fn run<T: IoTarget>(t: Arc<T>, w: Workload) -> Report {
    let c = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let generation = Arc::new(AtomicU64::new(2));
    let hists = Arc::new(Mutex::new(Hists {
        all: new_histogram(),
        read: new_histogram(),
        write: new_histogram(),
    }));
    let blocks = (w.size / w.bs).max(1);
    let seq_cursor: Arc<Vec<AtomicU64>> =
        Arc::new((0..w.jobs).map(|_| AtomicU64::new(0)).collect());
    let base_paths = t.path_ios();
    // CPU, syscalls and context switches from here to the last completion.
    let mut meter = super::usage::Meter::new(w.target_pid, w.count_syscalls);
    if w.count_syscalls {
        let attach = Duration::from_secs_f64(super::usage::PERF_ATTACH_S);
        tokio::time::sleep(attach).await;
        // A perf that could not attach (a thread of the process exited
        // while it opened its counters) gets two more tries.
        for _ in 0..2 {
            if !meter.restart_exited_counters() {
                break;
            }
            tokio::time::sleep(attach).await;
        }
    }
    meter.begin();
    let t0 = Instant::now();
    let start_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut tasks = Vec::new();
    // The data of unverified writes: one buffer shared by every task (none
    // for a read-only workload).
    let template = if w.rw == Rw::Randread || w.rw == Rw::Read {
        Bytes::new()
    } else {
        Bytes::from(vec![0xa5u8; w.bs as usize])
    };
    for job in 0..w.jobs {
        for qi in 0..w.iodepth {
            let template = template.clone();
            let (t, c, stop, hists, w, seq, generation) = (
                t.clone(),
                c.clone(),
                stop.clone(),
                hists.clone(),
                w.clone(),
                seq_cursor.clone(),
                generation.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut rng =
                    rand::rngs::StdRng::seed_from_u64((job * 1000 + qi) as u64 ^ 0x6e76_6d70);
                // Read and write latencies apart only for a mixed workload
                // (a histogram is ~30 KB, and there is one per task: 23 MB
                // of the RSS at iodepth 128 x 2 jobs).
                let side = || match w.rw {
                    Rw::Randrw => new_histogram(),
                    _ => Histogram::new(1).expect("static bounds are valid"),
                };
                let mut h = Hists {
                    all: new_histogram(),
                    read: side(),
                    write: side(),
                };
                while !stop.load(Relaxed) {
                    let blk = if w.rw.random() {
                        rng.gen_range(0..blocks)
                    } else {
                        seq[job].fetch_add(1, Relaxed) % blocks
                    };
                    let off = blk * w.bs;
                    let is_read = match w.rw {
                        Rw::Randread | Rw::Read => true,
                        Rw::Randwrite | Rw::Write => false,
                        Rw::Randrw => rng.gen_range(0..100) < w.rwmixread,
                    };
                    let start = Instant::now();
                    let ok = if is_read {
                        match t.read(off, w.bs as u32).await {
                            Ok(d) => {
                                if w.verify {
                                    if let Err(m) = crate::pattern::check_any_generation(&d, off) {
                                        if c.verify_errors.fetch_add(1, Relaxed) == 0 {
                                            eprintln!("\nnvmp: verify: {m}");
                                        }
                                    }
                                }
                                true
                            }
                            Err(_) => false,
                        }
                    } else {
                        let data = if w.verify {
                            let g = generation.fetch_add(1, Relaxed);
                            Bytes::from(crate::pattern::make(w.bs as usize, off, g))
                        } else {
                            template.clone()
                        };
                        t.write(off, data).await.is_ok()
                    };
                    let ns = start.elapsed().as_nanos().max(1) as u64;
                    if !ok {
                        c.errors.fetch_add(1, Relaxed);
                        continue;
                    }
                    h.all.saturating_record(ns);
                    // Separate read and write latencies are reported for mixed workloads only.
                    let mixed = w.rw == Rw::Randrw;
                    if is_read {
                        if mixed {
                            h.read.saturating_record(ns);
                        }
                        c.reads.fetch_add(1, Relaxed);
                    } else {
                        if mixed {
                            h.write.saturating_record(ns);
                        }
                        c.writes.fetch_add(1, Relaxed);
                    }
                    c.ios.fetch_add(1, Relaxed);
                    c.bytes.fetch_add(w.bs, Relaxed);
                }
                let mut g = hists.lock().unwrap_or_else(|e| e.into_inner());
                let _ = g.all.add(&h.all);
                let _ = g.read.add(&h.read);
                let _ = g.write.add(&h.write);
            }));
        }
    }
    // Timeline every `w.sample`, progress about once a second.
    let mut timeline = Vec::new();
    let (mut last_ios, mut last_bytes) = (0u64, 0u64);
    let mut last_paths = t.path_ios();
    let mut last_t = Instant::now();
    let mut last_progress = last_t;
    let mut tick = tokio::time::interval(w.sample);
    tick.tick().await;
    let deadline = t0 + w.runtime;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
        let dt = last_t.elapsed().as_secs_f64().max(1e-6);
        last_t = Instant::now();
        let ios = c.ios.load(Relaxed);
        let bytes = c.bytes.load(Relaxed);
        let paths = t.path_ios();
        let per_path: Vec<(String, f64)> = paths
            .iter()
            .map(|(n, v)| {
                let before = last_paths.iter().find(|(m, _)| m == n).map_or(0, |x| x.1);
                (n.clone(), v.saturating_sub(before) as f64 / dt)
            })
            .collect();
        let s = Sample {
            t_s: t0.elapsed().as_secs_f64(),
            iops: (ios - last_ios) as f64 / dt,
            mib_s: (bytes - last_bytes) as f64 / dt / (1 << 20) as f64,
            paths: per_path,
        };
        if w.progress && last_progress.elapsed() >= Duration::from_millis(950) {
            last_progress = Instant::now();
            let total: f64 = s.paths.iter().map(|p| p.1).sum::<f64>().max(1e-9);
            let shares: Vec<String> = s
                .paths
                .iter()
                .map(|(n, v)| format!("{n} {:.0}%", v * 100.0 / total))
                .collect();
            eprint!(
                "\r[{:>4.0}s] IOPS={:.0} BW={:.1}MiB/s errors={} paths: {}   ",
                s.t_s,
                s.iops,
                s.mib_s,
                c.errors.load(Relaxed),
                shares.join(", ")
            );
            let _ = std::io::stderr().flush();
        }
        timeline.push(s);
        last_ios = ios;
        last_bytes = bytes;
        last_paths = paths;
    }
    stop.store(true, Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    if w.progress {
        eprintln!();
    }
    let secs = t0.elapsed().as_secs_f64();
    let ios = c.ios.load(Relaxed);
    let usage = meter.finish(ios, secs);
    let h = hists.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = c.bytes.load(Relaxed);
    let mixed = c.reads.load(Relaxed) > 0 && c.writes.load(Relaxed) > 0;
    Report {
        start_unix_ms,
        target: t.name(),
        rw: w.rw.name().into(),
        bs: w.bs,
        iodepth: w.iodepth,
        jobs: w.jobs,
        iopolicy: w.iopolicy.clone(),
        runtime_s: secs,
        ios,
        reads: c.reads.load(Relaxed),
        writes: c.writes.load(Relaxed),
        bytes,
        iops: ios as f64 / secs,
        bw_mib_s: bytes as f64 / secs / (1 << 20) as f64,
        latency: Latency::from_histogram(&h.all),
        read_latency: mixed.then(|| Latency::from_histogram(&h.read)),
        write_latency: mixed.then(|| Latency::from_histogram(&h.write)),
        paths: path_counts(&diff(&t.path_ios(), &base_paths)),
        failovers: t.failovers(),
        errors: c.errors.load(Relaxed),
        verify_errors: c.verify_errors.load(Relaxed),
        curve: latency_curve(&h.all),
        hist: h.all.clone(),
        timeline,
        usage,
    }
}

fn diff(now: &[(String, u64)], base: &[(String, u64)]) -> Vec<(String, u64)> {
    now.iter()
        .map(|(n, v)| {
            (
                n.clone(),
                v.saturating_sub(base.iter().find(|(m, _)| m == n).map_or(0, |x| x.1)),
            )
        })
        .collect()
}
