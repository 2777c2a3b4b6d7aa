//! `nvmp target …`: run a target from an nvmetcli JSON file, and control a
//! running one through its control socket.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::config::TargetConfig;
use crate::control::socket::{self, Request};
use crate::control::{FailNext, TargetHandle};

/// Subcommands of `nvmp target`.
#[derive(Debug, Clone, Subcommand)]
pub enum TargetCommand {
    /// Run a target in the foreground (SIGINT/SIGTERM stop it cleanly).
    Run {
        /// nvmetcli JSON configuration.
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Unix control socket to serve.
        #[arg(long)]
        control: Option<PathBuf>,
        /// Serve Prometheus metrics (per-port I/O counters, ANA states, controllers) on ADDR:PORT.
        #[arg(long, value_name = "ADDR:PORT")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Change an ANA group's state on a port.
    Ana {
        #[arg(long)]
        control: PathBuf,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        group: u32,
        /// optimized, non-optimized, inaccessible, persistent-loss, change
        #[arg(long)]
        state: String,
    },
    /// Take a port down (close listener and connections) or bring it up.
    Port {
        #[arg(long)]
        control: PathBuf,
        #[arg(long)]
        port: u16,
        #[arg(long, conflicts_with = "up", required_unless_present = "up")]
        down: bool,
        #[arg(long)]
        up: bool,
    },
    /// Show ports, subsystems, controllers, namespaces, ANA states, counters.
    Status {
        #[arg(long)]
        control: PathBuf,
        #[arg(short = 'o', long = "output-format", value_enum, default_value_t = OutputFormat::Normal)]
        output: OutputFormat,
    },
    /// Fault injection on a port.
    Fault(FaultArgs),
    /// Set (or remove) a host's DH-HMAC-CHAP keys on a running target.
    Dhchap(DhchapArgs),
}

/// `nvmp target dhchap`: the `hosts[].dhchap` settings of one host.
#[derive(Debug, Clone, Args)]
pub struct DhchapArgs {
    #[arg(long)]
    pub control: PathBuf,
    /// The host NQN.
    #[arg(long)]
    pub host: String,
    /// Host key (DHHC-1:…); the host must authenticate with it.
    #[arg(long)]
    pub key: Option<String>,
    /// Controller key (DHHC-1:…) for bidirectional authentication.
    #[arg(long)]
    pub ctrl_key: Option<String>,
    /// hmac(sha256) (default), hmac(sha384), hmac(sha512).
    #[arg(long)]
    pub hash: Option<String>,
    /// null (default), ffdhe2048, ffdhe3072, ffdhe4096, ffdhe6144, ffdhe8192.
    #[arg(long)]
    pub dhgroup: Option<String>,
    /// Remove the host's keys (no authentication any more).
    #[arg(long, conflicts_with_all = ["key", "ctrl_key", "hash", "dhgroup"])]
    pub remove: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Normal,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct FaultArgs {
    #[arg(long)]
    pub control: PathBuf,
    #[arg(long)]
    pub port: u16,
    /// Delay every response by this many milliseconds (0 = off).
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// Stop answering (keep TCP open): on / off.
    #[arg(long)]
    pub black_hole: Option<bool>,
    /// Park every I/O command this many milliseconds before it runs (0 = off).
    #[arg(long)]
    pub hold_ms: Option<u64>,
    /// Slow every file-backend operation by this many milliseconds (0 = off).
    #[arg(long)]
    pub stall_ms: Option<u64>,
    /// Fail the next N I/O commands…
    #[arg(long)]
    pub fail_next: Option<u32>,
    /// …with this status (SCT<<8|SC, e.g. 0x302 or 770).
    #[arg(long, value_parser = parse_status, default_value = "0x6")]
    pub status: u16,
    /// …and set DNR.
    #[arg(long)]
    pub dnr: bool,
    /// Clear every fault on the port.
    #[arg(long)]
    pub clear: bool,
}

fn parse_status(s: &str) -> Result<u16, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u16::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a status code"))
}

async fn call(control: &std::path::Path, req: Request) -> anyhow::Result<socket::Response> {
    let r = socket::request(control, &req).await?;
    if !r.ok {
        anyhow::bail!("{}", r.error.unwrap_or_else(|| "request failed".into()));
    }
    Ok(r)
}

/// Run a `nvmp target …` subcommand.
pub async fn run_command(cmd: TargetCommand) -> anyhow::Result<()> {
    match cmd {
        TargetCommand::Run {
            config,
            control,
            metrics,
        } => run(config, control, metrics).await,
        TargetCommand::Ana {
            control,
            port,
            group,
            state,
        } => {
            call(&control, Request::Ana { port, group, state }).await?;
            Ok(())
        }
        TargetCommand::Port {
            control,
            port,
            down,
            up: _,
        } => {
            let req = if down {
                Request::PortDown { port }
            } else {
                Request::PortUp { port }
            };
            call(&control, req).await?;
            Ok(())
        }
        TargetCommand::Status { control, output } => {
            let r = call(&control, Request::Status).await?;
            let st = r.status.context("no status in response")?;
            match output {
                OutputFormat::Json => emit(&(serde_json::to_string_pretty(&st)? + "\n")),
                OutputFormat::Normal => emit(&status_text(&st)),
            }
        }
        TargetCommand::Fault(f) => {
            let req = if f.clear {
                Request::ClearFaults { port: f.port }
            } else {
                Request::Fault {
                    port: f.port,
                    delay_ms: f.delay_ms,
                    black_hole: f.black_hole,
                    hold_ms: f.hold_ms,
                    stall_ms: f.stall_ms,
                    fail_next: f.fail_next.map(|count| FailNext {
                        count,
                        status: f.status,
                        dnr: f.dnr,
                    }),
                }
            };
            call(&f.control, req).await?;
            Ok(())
        }
        TargetCommand::Dhchap(d) => {
            let dhchap = (!d.remove).then(|| {
                serde_json::json!({"key": d.key, "ctrl_key": d.ctrl_key,
                                   "hash": d.hash, "dhgroup": d.dhgroup})
            });
            call(
                &d.control,
                Request::SetDhchap {
                    host: d.host,
                    dhchap,
                },
            )
            .await?;
            Ok(())
        }
    }
}

/// The status as `nvmp target status` prints it.
fn status_text(st: &crate::control::TargetStatus) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    for p in &st.ports {
        let _ = writeln!(
            o,
            "port {} {}:{} {} listening={} subsystems={:?}",
            p.portid,
            p.traddr,
            p.trsvcid,
            if p.up { "up" } else { "down" },
            p.listening.as_deref().unwrap_or("-"),
            p.subsystems
        );
        for g in &p.ana_groups {
            let _ = writeln!(
                o,
                "  ana group {} {} (change count {})",
                g.grpid, g.state, g.change_count
            );
        }
        let c = &p.counters;
        let _ = writeln!(
            o,
            "  io: reads {} ({} B) writes {} ({} B) flushes {} other {} errors {}",
            c.reads, c.read_bytes, c.writes, c.write_bytes, c.flushes, c.other_io, c.errors
        );
    }
    for s in &st.subsystems {
        let _ = writeln!(o, "subsystem {} allow_any_host={}", s.nqn, s.allow_any_host);
        for n in &s.namespaces {
            let _ = writeln!(
                o,
                "  ns {} group {} {} bytes bs {} nguid {} {}",
                n.nsid, n.ana_grpid, n.size_bytes, n.block_size, n.nguid, n.backend
            );
        }
        for c in &s.controllers {
            let _ = writeln!(
                o,
                "  ctrl {} port {} {:?} host {} io_queues {}",
                c.cntlid, c.port, c.state, c.hostnqn, c.io_queues
            );
        }
    }
    o
}

/// Write `text` to standard output; a reader that went away (`| head`)
/// ends the output quietly instead of a panic on the closed pipe.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `run`: load the config (refused before anything listens if invalid),
/// serve until SIGINT/SIGTERM.
async fn run(
    config: PathBuf,
    control: Option<PathBuf>,
    metrics: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let cfg =
        TargetConfig::load(&config).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let metrics_listener = match metrics {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("--metrics {a}: cannot listen: {e}"))?,
        ),
        None => None,
    };
    let h = TargetHandle::start(cfg).await?;
    let metrics_task = metrics_listener.map(|l| {
        let h = h.clone();
        tracing::info!(addr = %metrics.unwrap_or_else(|| ([0, 0, 0, 0], 0).into()), "serving metrics");
        tokio::spawn(crate::control::metrics::serve_http(
            l,
            std::sync::Arc::new(move || crate::control::metrics::render(&h.status())),
        ))
    });
    let ctl = control.clone().map(|p| {
        let h = h.clone();
        tokio::spawn(async move {
            if let Err(e) = socket::serve(h, &p).await {
                tracing::error!(error = %e, "control socket failed");
            }
        })
    });
    tracing::info!("target running");
    wait_for_signal().await;
    tracing::info!("shutting down");
    if let Some(t) = ctl {
        t.abort();
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    if let Some(p) = control {
        let _ = std::fs::remove_file(p);
    }
    h.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
