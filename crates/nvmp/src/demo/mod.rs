//! `nvmp demo`: in one process, a target with one subsystem on two
//! loopback ports (one ANA group, optimized on port 1 and non-optimized on
//! port 2, a RAM namespace), a multipath host found through discovery, and
//! verified random I/O while port 1 is cut and restored and ANA states
//! flip. Ends with a summary; data errors make the exit code non-zero.

mod io;
mod stall;
mod view;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nvmp_target::config::TargetConfig;
use nvmp_target::control::TargetHandle;
use nvmp_wire::log::AnaState;

use crate::paths::{ConnectTuning, PathArgs, PortalSpec};

pub const DEMO_NQN: &str = "nqn.2024-01.io.nvmp:demo";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seconds to run.
    #[arg(long = "duration", default_value_t = 20.0)]
    pub duration: f64,
    /// Concurrent verified I/Os (one per worker).
    #[arg(long = "iodepth", default_value_t = 8)]
    pub iodepth: usize,
    /// Size of each I/O (suffixes).
    #[arg(long = "bs", value_parser = crate::size::parse_size, default_value = "4k")]
    pub bs: u64,
    /// Size of the RAM namespace (suffixes).
    #[arg(long = "ns-size", value_parser = crate::size::parse_size, default_value = "64M")]
    pub ns_size: u64,
    /// I/O policy (numa, round-robin, queue-depth, service-time).
    #[arg(long = "iopolicy", default_value = "numa")]
    pub iopolicy: nvmp_mpath::IoPolicy,
    /// TCP ports of the two target ports (0: ephemeral).
    #[arg(long = "ports", value_delimiter = ',', default_value = "0,0")]
    pub ports: Vec<u16>,
    /// Plain lines even on a terminal.
    #[arg(long = "plain")]
    pub plain: bool,
}

fn target_config(a: &DemoArgs) -> Result<TargetConfig> {
    let port = |id: u16, svc: u16, state: &str| {
        serde_json::json!({
            "portid": id,
            "addr": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": svc.to_string(), "treq": "not specified"},
            "param": {"inline_data_size": "16384"},
            "ana_groups": [{"grpid": 1, "ana": {"state": state}}],
            "referrals": [],
            "subsystems": [DEMO_NQN],
        })
    };
    let cfg = serde_json::json!({
        "hosts": [],
        "ports": [port(1, a.ports[0], "optimized"), port(2, a.ports[1], "non-optimized")],
        "subsystems": [{
            "nqn": DEMO_NQN,
            "attr": {"allow_any_host": "1", "serial": "nvmpdemo0001", "model": "nvmp demo", "version": "1.4"},
            "allowed_hosts": [],
            "namespaces": [{"nsid": 1, "enable": 1, "ana_grpid": 1,
                "device": {"size": a.ns_size.to_string(), "nguid": "6e766d70-6465-6d6f-0000-000000000001",
                           "uuid": "6e766d70-6465-6d6f-8000-000000000001"}}],
        }],
    });
    TargetConfig::from_json(&cfg.to_string()).map_err(|e| anyhow!("demo target config: {e}"))
}

/// One step of the fault schedule, at a fraction of the run.
#[derive(Debug, Clone, Copy)]
enum Step {
    PortDown(u16),
    PortUp(u16),
    Ana(u16, AnaState),
}

fn schedule() -> Vec<(f64, Step)> {
    vec![
        (0.15, Step::PortDown(1)),
        (0.35, Step::PortUp(1)),
        (0.50, Step::Ana(1, AnaState::INACCESSIBLE)),
        (0.52, Step::Ana(2, AnaState::OPTIMIZED)),
        (0.65, Step::Ana(2, AnaState::NON_OPTIMIZED)),
        (0.67, Step::Ana(1, AnaState::OPTIMIZED)),
        (0.78, Step::PortDown(2)),
        (0.88, Step::PortUp(2)),
    ]
}

fn apply(t: &TargetHandle, s: Step) -> Result<String> {
    match s {
        Step::PortDown(p) => {
            t.port_down(p).map_err(|e| anyhow!("{e}"))?;
            Ok(format!(
                "target: port {p} DOWN (listener and connections closed)"
            ))
        }
        Step::PortUp(p) => {
            t.port_up(p).map_err(|e| anyhow!("{e}"))?;
            Ok(format!("target: port {p} up"))
        }
        Step::Ana(p, st) => {
            t.set_ana(p, 1, st).map_err(|e| anyhow!("{e}"))?;
            Ok(format!("target: port {p} ANA group 1 -> {}", st.name()))
        }
    }
}

pub async fn run(a: DemoArgs) -> Result<()> {
    if !(a.duration >= 2.0 && a.duration <= 86_400.0) {
        bail!("--duration must be at least 2 seconds");
    }
    if a.ports.len() != 2 {
        bail!("--ports takes two TCP ports (0 for ephemeral)");
    }
    if a.iodepth == 0 || a.iodepth > 256 {
        bail!("--iodepth must be 1..=256");
    }
    let duration = Duration::from_secs_f64(a.duration);
    let target = TargetHandle::start(target_config(&a)?)
        .await
        .context("starting the demo target")?;
    let addr1 = target.local_addr(1).context("port 1 does not listen")?;
    let addr2 = target.local_addr(2).context("port 2 does not listen")?;
    let tty = std::io::stdout().is_terminal() && !a.plain;
    println!("nvmp demo: target {DEMO_NQN} on {addr1} (port 1, ANA optimized) and {addr2} (port 2, ANA non-optimized)");

    // The host: discovery through port 1, then every entry through the multipath layer.
    let tuning = ConnectTuning {
        reconnect_delay: Some(1),
        keep_alive_tmo: Some(5),
        ctrl_loss_tmo: Some(-1),
        ..Default::default()
    };
    let args = PathArgs {
        transport: "tcp".into(),
        discover: Some(addr1.to_string()),
        ..Default::default()
    };
    let host = crate::connect::identity(&args)?;
    let (_, entries) =
        crate::connect::discovery_log(&addr1.ip().to_string(), addr1.port(), &host, &tuning)
            .await?;
    println!("discovery at {addr1}: {} entries", entries.len());
    let mp = nvmp_mpath::Multipath::new(nvmp_mpath::MpathConfig {
        default_policy: a.iopolicy,
        ..Default::default()
    });
    for e in entries
        .iter()
        .filter(|e| e.subtype == nvmp_wire::log::subtype::NVME)
    {
        let p = PortalSpec {
            traddr: e.traddr.trim_end_matches(['\0', ' ']).to_string(),
            trsvcid: e
                .trsvcid
                .trim_end_matches(['\0', ' '])
                .parse()
                .context("discovery entry trsvcid")?,
            subnqn: e.subnqn.clone(),
            tuning: tuning.clone(),
        };
        let mut o = crate::connect::options(&p, &host, true);
        o.nr_io_queues = 2;
        let c = crate::connect::connect_one(o).await?;
        let l = mp.add_controller(c).await.map_err(|e| anyhow!("{e}"))?;
        println!(
            "connected {} at {}:{} -> {} paths {:?}",
            l.ctrl_name, p.traddr, p.trsvcid, l.subsystem, l.paths_added
        );
    }
    let head = mp
        .head(DEMO_NQN, 1)
        .context("no namespace head for nsid 1")?;
    if head.paths().len() != 2 {
        bail!(
            "expected 2 paths to {}, found {}",
            head.name,
            head.paths().len()
        );
    }
    let bs = head.block_size() as u64;
    if a.bs == 0 || !a.bs.is_multiple_of(bs) || !a.bs.is_multiple_of(512) {
        bail!("--bs must be a multiple of the block size {bs}");
    }
    // A working set small enough that most I/Os after the first seconds are
    // reads of blocks whose generation is known, spread over the namespace.
    let n_blocks = head.capacity_bytes() / a.bs;
    let ws = n_blocks.min(2048);
    let stride = n_blocks / ws;
    println!(
        "head {}: {} bytes, block size {bs}, {} paths, iopolicy {}; running {:.0}s of verified random I/O (bs {}, {} in flight)\n",
        head.name,
        head.capacity_bytes(),
        head.paths().len(),
        a.iopolicy,
        a.duration,
        crate::size::human(a.bs),
        a.iodepth
    );

    let stats = Arc::new(io::IoStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (i, blocks) in io::partition(ws, a.iodepth).into_iter().enumerate() {
        let blocks = blocks.into_iter().map(|b| b * stride).collect();
        workers.push(tokio::spawn(io::worker(
            head.clone(),
            i,
            blocks,
            a.bs,
            stats.clone(),
            stop.clone(),
        )));
    }

    let mut v = view::View::new(tty, duration);
    let mut steps = schedule().into_iter().peekable();
    let mut tick = tokio::time::interval(Duration::from_millis(if tty { 250 } else { 200 }));
    let mut interrupted = false;
    let sig = crate::signal::terminated();
    tokio::pin!(sig);
    while v.t() < a.duration {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut sig => { interrupted = true; break; }
        }
        while let Some((at, s)) = steps.peek().copied() {
            if v.t() < at * a.duration {
                break;
            }
            steps.next();
            match apply(&target, s) {
                Ok(msg) => v.cause(msg),
                Err(e) => v.event(format!("schedule step failed: {e:#}")),
            }
        }
        v.tick(&mp.snapshot(), &stats);
    }
    stop.store(true, Relaxed);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(35), w).await;
    }
    v.tick(&mp.snapshot(), &stats);
    v.finish();
    let snap = mp.snapshot();
    mp.shutdown().await;
    target.shutdown().await;

    if tty {
        println!("\nevents:");
        for e in &v.events {
            println!("  {e}");
        }
    }
    let (ios, reads, writes, bytes) = (
        stats.ios.load(Relaxed),
        stats.reads.load(Relaxed),
        stats.writes.load(Relaxed),
        stats.bytes.load(Relaxed),
    );
    let (data_errors, io_errors) = (
        stats.data_errors.load(Relaxed),
        stats.io_errors.load(Relaxed),
    );
    let head_snap = snap.iter().flat_map(|s| s.heads.iter()).next();
    let failovers = head_snap.map_or(v.failovers, |h| h.failovers);
    let longest_no_path = head_snap.map_or(0, |h| h.longest_wait_ms);
    println!();
    println!("summary:");
    for h in snap.iter().flat_map(|s| s.heads.iter()) {
        for p in &h.paths {
            println!(
                "  path {} ({}): {} I/Os, {} bytes, {} errors, {} failovers",
                p.name, p.address, p.ios, p.bytes, p.errors, p.failovers
            );
        }
    }
    println!(
        "  I/Os: {ios} ({reads} verified reads, {writes} writes), {} in {:.1}s",
        crate::size::human(bytes),
        v.t()
    );
    let fenced = head_snap.map_or(0, |h| h.fenced);
    println!("  failovers: {failovers}, longest stall: {:.1} ms (longest wait with no usable path: {longest_no_path} ms)", v.longest_stall_us as f64 / 1000.0);
    if fenced > 0 {
        println!(
            "  writes held for KATO before resending (torn down in flight on a lost path; \
             a late copy must not overwrite newer data): {fenced}"
        );
    }
    println!("  data errors: {data_errors}, I/O errors: {io_errors}");
    println!(
        "RESULT ios={ios} bytes={bytes} failovers={failovers} fenced_writes={fenced} longest_stall_ms={:.1} data_errors={data_errors} io_errors={io_errors}",
        v.longest_stall_us as f64 / 1000.0
    );
    if let Some(e) = stats
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        println!("  first error: {e}");
    }
    if interrupted {
        bail!("interrupted");
    }
    if data_errors > 0 {
        bail!("{data_errors} data errors");
    }
    if io_errors > 0 {
        bail!("{io_errors} I/O errors returned while a path was usable");
    }
    if ios == 0 {
        bail!("no I/O completed");
    }
    Ok(())
}
