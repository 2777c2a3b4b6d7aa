//! `nvmp bench`: fio-like workloads on a namespace head, or on one bare
//! controller (`--single-path`) for comparison; `--compare` runs both on
//! the same connection, one after the other.

pub mod engine;
pub mod plot;
pub mod report;
pub mod target;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::output::OutputFormat;
use crate::paths::PathArgs;
use crate::size::parse_size;
use engine::{Rw, Workload};
use target::{CtrlTarget, HeadTarget, IoTarget};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub paths: PathArgs,
    /// Namespace ID.
    #[arg(long = "nsid", default_value_t = 1)]
    pub nsid: u32,
    /// Workload.
    #[arg(long = "rw", value_enum, default_value = "randread")]
    pub rw: Rw,
    /// Block size (suffixes).
    #[arg(long = "bs", value_parser = parse_size, default_value = "4k")]
    pub bs: u64,
    /// Commands in flight per job.
    #[arg(long = "iodepth", default_value_t = 1)]
    pub iodepth: usize,
    /// Parallel jobs.
    #[arg(long = "jobs", alias = "numjobs", default_value_t = 1)]
    pub jobs: usize,
    /// Seconds to run.
    #[arg(long = "runtime", default_value_t = 5.0)]
    pub runtime: f64,
    /// Region of the namespace to use (default: all of it, at most 1 GiB).
    #[arg(long = "size", value_parser = parse_size)]
    pub size: Option<u64>,
    /// Read percentage of randrw.
    #[arg(long = "rwmixread", default_value_t = 50)]
    pub rwmixread: u32,
    /// I/O policy of the subsystem for this run.
    #[arg(long = "iopolicy")]
    pub iopolicy: Option<nvmp_mpath::IoPolicy>,
    /// Write a pattern that encodes offset and generation, check every read.
    #[arg(long = "verify")]
    pub verify: bool,
    /// Run on one bare controller (no multipath layer) for comparison.
    #[arg(long = "single-path")]
    pub single_path: bool,
    /// Run the workload on the head and on the bare controller of its first path (the same
    /// connection) in interleaved one-second rounds, and print the ratio.
    #[arg(long = "compare", conflicts_with = "single_path")]
    pub compare: bool,
    /// Draw the latency distribution and the IOPS-per-path timeline (SVG).
    #[arg(long = "plot", value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// Interval of the timeline (IOPS per path, in the JSON report and the
    /// plot), ms (50..=10000); the progress line stays once a second.
    #[arg(long = "sample-ms", default_value_t = 1000)]
    pub sample_ms: u64,
    /// Also report the CPU and syscalls per I/O of the target's process (a
    /// local target, e.g. `nvmp target run`), read from /proc/PID.
    #[arg(long = "target-pid", value_name = "PID")]
    pub target_pid: Option<u32>,
    /// Count every syscall of this process (and of --target-pid) over the run,
    /// with `perf stat -e raw_syscalls:sys_enter` (needs perf, and root or
    /// perf_event_paranoid <= 1).
    #[arg(long = "count-syscalls")]
    pub count_syscalls: bool,
    /// Output format.
    #[arg(short = 'o', long = "output-format", value_enum, default_value_t)]
    pub output: OutputFormat,
}

fn workload(a: &BenchArgs, capacity: u64, bs_dev: u32) -> Result<Workload> {
    if a.bs == 0 || !a.bs.is_multiple_of(bs_dev as u64) {
        bail!("--bs {} is not a multiple of the block size {bs_dev}", a.bs);
    }
    if a.iodepth == 0 || a.iodepth > 1024 {
        bail!("--iodepth must be 1..=1024");
    }
    if a.jobs == 0 || a.jobs > 64 {
        bail!("--jobs must be 1..=64");
    }
    if !(a.runtime > 0.0 && a.runtime <= 86_400.0) {
        bail!("--runtime must be > 0 seconds");
    }
    if a.rwmixread > 100 {
        bail!("--rwmixread must be 0..=100");
    }
    if !(50..=10_000).contains(&a.sample_ms) {
        bail!("--sample-ms must be 50..=10000");
    }
    let size = a.size.unwrap_or(capacity.min(1 << 30)).min(capacity);
    if size < a.bs {
        bail!("--size {size} is smaller than --bs {}", a.bs);
    }
    Ok(Workload {
        rw: a.rw,
        bs: a.bs,
        iodepth: a.iodepth,
        jobs: a.jobs,
        runtime: Duration::from_secs_f64(a.runtime),
        size: size / a.bs * a.bs,
        rwmixread: a.rwmixread,
        verify: a.verify,
        progress: !a.output.is_json(),
        iopolicy: a.iopolicy.map(|p| p.to_string()),
        target_pid: a.target_pid,
        count_syscalls: a.count_syscalls,
        sample: Duration::from_millis(a.sample_ms),
    })
}

async fn run_on<T: IoTarget>(t: Arc<T>, w: Workload) -> Result<report::Report> {
    if w.verify && w.rw.reads() {
        engine::prefill(&*t, w.size)
            .await
            .map_err(|e| anyhow::anyhow!("prefilling for --verify: {e}"))?;
    }
    Ok(engine::run(t, w).await)
}

fn emit(a: &BenchArgs, reports: &[report::Report]) -> Result<()> {
    if let Some(p) = &a.plot {
        if p.extension()
            .is_some_and(|e| !e.eq_ignore_ascii_case("svg"))
        {
            bail!(
                "--plot {}: only SVG is drawn (use a .svg file name)",
                p.display()
            );
        }
        std::fs::write(p, plot::svg(&reports[0]))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if a.output.is_json() {
        let mut v: Vec<serde_json::Value> = reports
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        if reports.len() == 2 {
            let ratio = reports[0].iops / reports[1].iops.max(1e-9);
            crate::output::print_json(
                &serde_json::json!({ "head": v.remove(0), "single_path": v.remove(0), "iops_ratio": ratio }),
            )?;
        } else {
            crate::output::print_json(&v[0])?;
        }
    } else {
        for r in reports {
            print!("{}", r.to_text());
        }
        if reports.len() == 2 {
            let ratio = reports[0].iops / reports[1].iops.max(1e-9);
            println!(
                "head / single path: IOPS ratio {:.4} ({:+.2}%), p50 {:.1} vs {:.1} us",
                ratio,
                (ratio - 1.0) * 100.0,
                reports[0].latency.p50_us,
                reports[1].latency.p50_us
            );
        }
    }
    let errors: u64 = reports.iter().map(|r| r.errors + r.verify_errors).sum();
    if errors > 0 {
        bail!("{errors} I/O or verify errors");
    }
    Ok(())
}

pub async fn run(a: BenchArgs) -> Result<()> {
    if a.single_path {
        let conn = crate::connect::connect_all(&a.paths, false).await?;
        let ctrl = conn.ctrls[0].clone();
        let t = Arc::new(CtrlTarget::new(ctrl.clone(), a.nsid).await?);
        let w = workload(&a, t.capacity_bytes(), t.block_size())?;
        let r = run_on(t, w).await;
        for c in conn.ctrls {
            c.disconnect().await;
        }
        return emit(&a, &[r?]);
    }
    let (mp, head) = crate::cmd::io::open_head(&a.paths, a.nsid).await?;
    if let Some(p) = a.iopolicy {
        for s in mp.subsystems() {
            if s.head(a.nsid).is_some() {
                s.set_iopolicy(p);
            }
        }
    }
    let result = async {
        let w = workload(&a, head.capacity_bytes(), head.block_size())?;
        let head_t = Arc::new(HeadTarget(head.clone()));
        if !a.compare {
            return emit(&a, &[run_on(head_t, w).await?]);
        }
        // Interleave one-second rounds on the head and on the bare controller
        // of its first path (the same connection), so that background load
        // hits both alike.
        let ctrl = head
            .paths()
            .first()
            .map(|p| p.ctrl.ctrl.clone())
            .context("the head has no path")?;
        let bare = Arc::new(CtrlTarget::new(ctrl, a.nsid).await?);
        let rounds = (a.runtime.round() as u32).max(1);
        let mut rw = w.clone();
        rw.runtime = w.runtime / rounds;
        if w.verify && w.rw.reads() {
            engine::prefill(&*head_t, w.size)
                .await
                .map_err(|e| anyhow::anyhow!("prefilling for --verify: {e}"))?;
        }
        let (mut on_head, mut on_bare) = (vec![], vec![]);
        for i in 0..rounds {
            if i % 2 == 0 {
                on_head.push(engine::run(head_t.clone(), rw.clone()).await);
                on_bare.push(engine::run(bare.clone(), rw.clone()).await);
            } else {
                on_bare.push(engine::run(bare.clone(), rw.clone()).await);
                on_head.push(engine::run(head_t.clone(), rw.clone()).await);
            }
        }
        let reports = vec![
            report::Report::merge(on_head),
            report::Report::merge(on_bare),
        ];
        emit(&a, &reports)
    }
    .await;
    mp.shutdown().await;
    result
}
