//! `nvmp`: native NVMe multipath in userspace, over NVMe/TCP. One binary
//! shaped like nvme-cli: host commands, `target`, `nbd`, `status`, `bench`
//! and the failover `demo`.
#![forbid(unsafe_code)]

mod bench;
mod cmd;
mod connect;
mod control;
mod demo;
mod dhchap_cli;
mod libnvme_config;
mod metrics;
mod nbd_export;
mod output;
mod paths;
mod pattern;
mod runtime;
mod signal;
mod size;
mod tls_cli;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "nvmp",
    version,
    about = "Native NVMe multipath in userspace, over NVMe/TCP",
    propagate_version = true
)]
struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(flatten)]
    runtime: runtime::RuntimeArgs,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the discovery log of a discovery controller (like `nvme discover`).
    Discover(cmd::discover::DiscoverArgs),
    /// Connect the paths through the multipath layer and show subsystems, paths and ANA states.
    ListSubsys(cmd::list_subsys::ListSubsysArgs),
    /// Print the ANA log page of each path.
    AnaLog(cmd::identify::IdArgs),
    /// Print Identify Controller.
    IdCtrl(cmd::identify::IdArgs),
    /// Print Identify Namespace.
    IdNs(cmd::identify::IdNsArgs),
    /// Read, write or verify a range of a namespace through the multipath head.
    #[command(subcommand)]
    Io(cmd::io::IoCmd),
    /// Register, unregister or replace a reservation key (like `nvme resv-register`).
    ResvRegister(cmd::resv::RegisterArgs),
    /// Acquire, preempt or preempt-and-abort a reservation (like `nvme resv-acquire`).
    ResvAcquire(cmd::resv::AcquireArgs),
    /// Release or clear a reservation (like `nvme resv-release`).
    ResvRelease(cmd::resv::ReleaseArgs),
    /// Print the reservation status (like `nvme resv-report`).
    ResvReport(cmd::resv::ReportArgs),
    /// fio-like benchmark on a namespace head (or one bare controller with --single-path).
    Bench(bench::BenchArgs),
    /// Export a namespace head over NBD.
    Nbd(nbd_export::NbdArgs),
    /// Show (and change the iopolicy of) a running `nvmp nbd` through its control socket.
    Status(cmd::status::StatusArgs),
    /// The NVMe/TCP target: run from nvmetcli JSON, and control a running one.
    #[command(subcommand)]
    Target(nvmp_target::cli::TargetCommand),
    /// Generate a TLS PSK in the PSK interchange format (like `nvme gen-tls-key`).
    GenTlsKey(cmd::tls_key::GenTlsKey),
    /// Check a TLS PSK in the PSK interchange format (like `nvme check-tls-key`).
    CheckTlsKey(cmd::tls_key::CheckTlsKey),
    /// Generate a DH-HMAC-CHAP key (like `nvme gen-dhchap-key`).
    GenDhchapKey(cmd::dhchap_key::GenDhchapKey),
    /// Check a DH-HMAC-CHAP key (like `nvme check-dhchap-key`).
    CheckDhchapKey(cmd::dhchap_key::CheckDhchapKey),
    /// In one process: a two-port target, a multipath host, verified I/O while paths fail and ANA states flip.
    Demo(demo::DemoArgs),
}

fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        // One-shot commands report their failure in one line; the demo shows
        // state changes itself (log lines would tear its live view).
        0 if quiet => "error",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Discover(a) => cmd::discover::run(a).await,
        Command::ListSubsys(a) => cmd::list_subsys::run(a).await,
        Command::AnaLog(a) => cmd::identify::ana_log(a).await,
        Command::IdCtrl(a) => cmd::identify::id_ctrl(a).await,
        Command::IdNs(a) => cmd::identify::id_ns(a).await,
        Command::Io(c) => cmd::io::run(c).await,
        Command::ResvRegister(a) => cmd::resv::register(a).await,
        Command::ResvAcquire(a) => cmd::resv::acquire(a).await,
        Command::ResvRelease(a) => cmd::resv::release(a).await,
        Command::ResvReport(a) => cmd::resv::report(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::Nbd(a) => nbd_export::run(a).await,
        Command::Status(a) => cmd::status::run(a).await,
        Command::Target(c) => nvmp_target::cli::run_command(c).await,
        Command::Demo(a) => demo::run(a).await,
        Command::GenTlsKey(a) => cmd::tls_key::gen(a),
        Command::GenDhchapKey(a) => cmd::dhchap_key::gen(a),
        Command::CheckDhchapKey(a) => cmd::dhchap_key::check(a),
        Command::CheckTlsKey(a) => cmd::tls_key::check(a),
    }
}

fn main() {
    let mut cli = Cli::parse();
    // `nvmp nbd` serves on a runtime of its own: --poll spins that one.
    if let Command::Nbd(a) = &mut cli.cmd {
        a.poll = std::mem::take(&mut cli.runtime.poll);
    }
    // Long-running services log warnings (path lost, reconnect failed); the rest stays quiet.
    init_logging(
        cli.verbose,
        !matches!(cli.cmd, Command::Nbd(_) | Command::Target(_)),
    );
    let rt = match runtime::build(&cli.runtime) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nvmp: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let r = rt.block_on(run(cli.cmd));
    // Do not wait for background tasks (reconnect loops, listeners) on exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    if let Err(e) = r {
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("nvmp: {msg}");
        std::process::exit(1);
    }
}
