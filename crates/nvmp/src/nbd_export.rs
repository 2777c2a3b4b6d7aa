//! `nvmp nbd`: serve a namespace head over NBD (crates/nvmp-nbd), with a control
//! socket for `nvmp status` and Prometheus metrics.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use nvmp_mpath::NamespaceHead;
use nvmp_nbd::{BlockDevice, ExportConfig, IoError, IoErrorKind, NbdServer};
use nvmp_wire::StatusCode;

use crate::paths::PathArgs;

/// The block-device adapter: a namespace head as an NBD export's backend.
pub struct HeadDevice(pub Arc<NamespaceHead>);

fn nbd_err(e: nvmp_mpath::IoError) -> IoError {
    let kind = match e.status.code {
        StatusCode::LBA_OUT_OF_RANGE | StatusCode::CAPACITY_EXCEEDED => IoErrorKind::NoSpc,
        StatusCode::INVALID_FIELD => IoErrorKind::Inval,
        StatusCode::NAMESPACE_WRITE_PROTECTED | StatusCode::ACCESS_DENIED => IoErrorKind::Perm,
        StatusCode::INVALID_OPCODE => IoErrorKind::NotSup,
        _ => IoErrorKind::Io,
    };
    IoError::new(kind, e.to_string())
}

impl BlockDevice for HeadDevice {
    fn size_bytes(&self) -> u64 {
        self.0.capacity_bytes()
    }
    fn block_size(&self) -> u32 {
        self.0.block_size()
    }
    /// Read per request by the NBD executor, the one place requests are
    /// split: the head's own read/write then always get a single command's
    /// worth (their split is only a fallback for other callers).
    fn max_transfer_bytes(&self) -> u32 {
        self.0.max_transfer_bytes().max(self.0.block_size())
    }
    fn max_discard_bytes(&self) -> u32 {
        // The head splits Write Zeroes and DSM itself.
        let bs = self.0.block_size();
        (1u32 << 30) / bs * bs
    }
    async fn read(&self, offset: u64, len: u32) -> Result<Bytes, IoError> {
        let bs = self.0.block_size() as u64;
        self.0
            .read(offset / bs, (len as u64 / bs) as u32)
            .await
            .map_err(nbd_err)
    }
    async fn write(&self, offset: u64, data: Bytes, fua: bool) -> Result<(), IoError> {
        let bs = self.0.block_size() as u64;
        self.0.write(offset / bs, data, fua).await.map_err(nbd_err)
    }
    async fn flush(&self) -> Result<(), IoError> {
        self.0.flush().await.map_err(nbd_err)
    }
    async fn trim(&self, offset: u64, len: u32) -> Result<(), IoError> {
        let bs = self.0.block_size() as u64;
        self.0
            .discard(offset / bs, len as u64 / bs)
            .await
            .map_err(nbd_err)
    }
    async fn write_zeroes(&self, offset: u64, len: u32, may_trim: bool) -> Result<(), IoError> {
        let bs = self.0.block_size() as u64;
        self.0
            .write_zeroes(offset / bs, len as u64 / bs, may_trim)
            .await
            .map_err(nbd_err)
    }
}

#[derive(Debug, Args)]
pub struct NbdArgs {
    #[command(flatten)]
    pub paths: PathArgs,
    /// Namespace ID to export.
    #[arg(long = "nsid", default_value_t = 1)]
    pub nsid: u32,
    /// TCP address to serve NBD on.
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Unix socket to serve NBD on.
    #[arg(long = "unix", value_name = "PATH")]
    pub unix: Option<PathBuf>,
    /// Export name (default: the head's name, e.g. nvme0n1).
    #[arg(long = "name")]
    pub name: Option<String>,
    /// Control socket for `nvmp status` (and live iopolicy changes).
    #[arg(long = "control", value_name = "SOCKET")]
    pub control: Option<PathBuf>,
    /// Serve Prometheus metrics on ADDR:PORT (/metrics).
    #[arg(long = "metrics", value_name = "ADDR:PORT")]
    pub metrics: Option<String>,
    /// I/O policy (numa, round-robin, queue-depth, service-time).
    #[arg(long = "iopolicy")]
    pub iopolicy: Option<nvmp_mpath::IoPolicy>,
    /// Export read-only.
    #[arg(long = "read-only", short = 'r')]
    pub read_only: bool,
    /// Refuse structured replies: every reply is simple (libnbd clients
    /// such as fio read a reply in two recv calls instead of four), but
    /// clients get no error messages and no DF flag.
    #[arg(long = "no-structured-replies")]
    pub no_structured_replies: bool,
    /// Runtime threads serving the export and its paths (1: one thread,
    /// fewest cross-thread wake-ups per request; raise for many busy paths
    /// or clients). With the global `--poll` each of them busy-polls.
    #[arg(long = "threads", default_value_t = 1)]
    pub threads: usize,
    /// Busy-poll the export's runtime (the global `--poll`, which main hands
    /// over here instead of spinning its own idle runtime).
    #[arg(skip)]
    pub poll: bool,
}

/// Runs the export on its own runtime of `--threads` threads (the CLI's
/// default runtime stays idle meanwhile). With one thread, the NBD
/// connections and the paths' queues run on a current-thread runtime: a
/// request's wake-ups (NBD socket, the queue's writer and reader) stay on
/// one thread instead of crossing threads, which measured ~20-35% less CPU
/// per request (docs/PERFORMANCE.md, "NBD export").
///
/// With `--poll` every thread of that runtime busy-polls (a task that only
/// yields keeps it from sleeping in epoll): no wake-up between a request's
/// arrival, its NVMe completion and its reply, at the price of a whole core
/// per thread, idle or not.
pub async fn run(a: NbdArgs) -> Result<()> {
    let threads = a.threads;
    if threads == 0 || threads > MAX_THREADS {
        bail!("--threads must be 1..={MAX_THREADS}");
    }
    let poll = a.poll;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("nvmp-nbd".into())
        .spawn(move || {
            let r = match build_runtime(threads, poll) {
                Ok(rt) => {
                    let r = rt.block_on(serve(a));
                    // Do not wait for background tasks (reconnect loops).
                    rt.shutdown_timeout(std::time::Duration::from_millis(200));
                    r
                }
                Err(e) => Err(anyhow!("cannot start the NBD runtime: {e}")),
            };
            let _ = tx.send(r);
        })
        .context("cannot start the NBD thread")?;
    rx.await
        .unwrap_or_else(|_| Err(anyhow!("the NBD runtime thread panicked")))
}

/// Upper bound of `--threads`.
const MAX_THREADS: usize = 256;

/// The export's runtime: one thread (current-thread scheduler) or a pool,
/// busy-polling with `poll`.
fn build_runtime(threads: usize, poll: bool) -> std::io::Result<tokio::runtime::Runtime> {
    if threads > 1 {
        let args = crate::runtime::RuntimeArgs {
            poll,
            workers: Some(threads as u16),
        };
        return crate::runtime::build(&args);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if poll {
        // A yielding task is deferred, not re-queued: with nothing else to
        // run, the current-thread scheduler then checks the I/O driver with
        // a zero timeout and runs it again, so the thread never sleeps and
        // readiness is seen within one spin.
        rt.spawn(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
    }
    Ok(rt)
}

async fn serve(a: NbdArgs) -> Result<()> {
    if a.listen.is_none() && a.unix.is_none() {
        bail!("nothing to serve on: give --listen ADDR:PORT and/or --unix PATH");
    }
    // Bind everything first so that a bad address fails before connecting.
    let tcp = match &a.listen {
        Some(l) => Some(
            tokio::net::TcpListener::bind(l)
                .await
                .map_err(|e| anyhow!("cannot listen on {l}: {e}"))?,
        ),
        None => None,
    };
    let unix = match &a.unix {
        Some(p) => {
            let _ = std::fs::remove_file(p);
            Some(
                tokio::net::UnixListener::bind(p)
                    .map_err(|e| anyhow!("cannot listen on {}: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let metrics = match &a.metrics {
        Some(m) => Some(
            tokio::net::TcpListener::bind(m)
                .await
                .map_err(|e| anyhow!("cannot serve metrics on {m}: {e}"))?,
        ),
        None => None,
    };
    let control = match &a.control {
        Some(p) => {
            let _ = std::fs::remove_file(p);
            Some(
                tokio::net::UnixListener::bind(p)
                    .map_err(|e| anyhow!("control socket {}: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let (mp, head) = crate::cmd::io::open_head(&a.paths, a.nsid).await?;
    let host = crate::connect::identity(&a.paths)?;
    if let Some(p) = a.iopolicy {
        for s in mp.subsystems() {
            s.set_iopolicy(p);
        }
    }
    let name = a.name.clone().unwrap_or_else(|| head.name.clone());
    let mut cfg = ExportConfig::new(name.clone());
    cfg.description = format!(
        "nvmp multipath namespace {} (nsid {})",
        head.name, head.nsid
    );
    cfg.read_only = a.read_only;
    cfg.structured_replies = !a.no_structured_replies;
    let server =
        NbdServer::new(Arc::new(HeadDevice(head.clone())), cfg).map_err(|e| anyhow!("{e}"))?;
    let stats = {
        let s = server.clone();
        Arc::new(move || s.stats())
    };
    let state = crate::control::State {
        mp: mp.clone(),
        hostnqn: host.hostnqn.clone(),
        hostid: host.hostid_string(),
        nbd: stats,
    };
    if let Some(l) = control {
        tokio::spawn(crate::control::serve(l, state.clone()));
    }
    if let Some(l) = metrics {
        tokio::spawn(crate::metrics::serve(l, state.clone()));
    }
    let mut where_ = vec![];
    if let Some(l) = &tcp {
        where_.push(format!("nbd://{}/{name}", l.local_addr()?));
    }
    if let Some(p) = &a.unix {
        where_.push(format!("nbd+unix:///{name}?socket={}", p.display()));
    }
    eprintln!(
        "nvmp: exporting {} ({} bytes, {} paths) at {}",
        head.name,
        head.capacity_bytes(),
        head.paths().len(),
        where_.join(" and ")
    );
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(l) = tcp {
        let s = server.clone();
        tasks.spawn(async move { s.serve_tcp(l).await });
    }
    if let Some(l) = unix {
        let s = server.clone();
        tasks.spawn(async move { s.serve_unix(l).await });
    }
    let r = tokio::select! {
        _ = crate::signal::terminated() => {
            eprintln!("nvmp: shutting down");
            server.shutdown();
            while tasks.join_next().await.is_some() {}
            Ok(())
        }
        r = tasks.join_next() => match r {
            Some(Ok(Err(e))) => Err(anyhow!("NBD server: {e}")),
            _ => Ok(()),
        },
    };
    mp.shutdown().await;
    for p in [&a.unix, &a.control].into_iter().flatten() {
        let _ = std::fs::remove_file(p);
    }
    r.context("nbd")
}
