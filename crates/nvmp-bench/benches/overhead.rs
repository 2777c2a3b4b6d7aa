//! Multipath overhead, measured: the same 4 KiB random-read workload through
//! a namespace head with one path and on the bare controller underneath it,
//! interleaved in rounds within one run, reported as a ratio; then
//! round-robin and queue-depth over two paths against one path.
//!
//! `cargo bench -p nvmp-bench --bench overhead` (env `NVMP_BENCH_SECS` sets
//! the seconds per round, default 1; `NVMP_BENCH_ROUNDS` the rounds, default 5).
//!
//! Time on a shared 2-core machine is noisy, so there is also a count mode
//! for instruction counting: `NVMP_BENCH_COUNT_IOS=N NVMP_BENCH_MODE=bare|head|head2|head-read|head-st|head-st2`
//! sets up the same target, controller and head, runs N sequential 4 KiB
//! reads through the chosen one, and exits (`head2`, `head-st2`: numa and
//! service-time over two paths, two controllers on the target's two ports;
//! `head-st2-full`: the same with the sampler timing one command in 64, as
//! at full rate, where valgrind's slowness would make it time one in 4–8;
//! the second controller's timers and connection run in both). `NVMP_BENCH_SIZES=1` also
//! prints the sizes of the controller's and the head's submit futures. Under
//! `valgrind --tool=callgrind`, the difference of two N gives instructions
//! per I/O for each mode (scripts/overhead-instructions does this).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nvmp_host::{Controller, ControllerOptions, IoRequest};
use nvmp_mpath::{IoPolicy, MpathConfig, Multipath, NamespaceHead};
use nvmp_target::{TargetConfig, TargetHandle};
use nvmp_wire::io::ReadWrite;

const NQN: &str = "nqn.2024-11.io.nvmp:bench";

fn config(states: &[&str]) -> String {
    let ports: Vec<String> = states
        .iter()
        .enumerate()
        .map(|(i, st)| {
            format!(
                r#"{{"portid": {}, "addr": {{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "0"}},
                    "ana_groups": [{{"grpid": 1, "ana": {{"state": "{st}"}}}}], "subsystems": ["{NQN}"]}}"#,
                i + 1
            )
        })
        .collect();
    format!(
        r#"{{"hosts": [], "ports": [{}], "subsystems": [{{"nqn": "{NQN}", "attr": {{"allow_any_host": "1"}},
            "namespaces": [{{"nsid": 1, "enable": 1, "ana_grpid": 1, "device": {{"size": "256M", "nguid": "6e766d70-0000-4000-8000-0000000000b1"}}}}]}}]}}"#,
        ports.join(",")
    )
}

enum Dev {
    Bare(Controller, u64),
    /// The same SQE through the head (`NamespaceHead::submit`): the multipath layer proper.
    Head(Arc<NamespaceHead>),
    /// Through the head's block-device API (`NamespaceHead::read`: range check, split).
    HeadRead(Arc<NamespaceHead>),
}

fn read_sqe(lba: u64) -> IoRequest {
    IoRequest {
        sqe: ReadWrite {
            nsid: 1,
            slba: lba,
            nlb: 8,
            fua: false,
        }
        .read_sqe(),
        write: None,
        read_len: 4096,
    }
}

impl Dev {
    async fn read4k(&self, lba: u64) {
        match self {
            Dev::Bare(c, _) => {
                let r = c.submit(read_sqe(lba)).await;
                assert!(r.status.is_success(), "{}", r.status);
            }
            Dev::Head(h) => {
                let r = h.submit(read_sqe(lba)).await;
                assert!(r.status.is_success(), "{}", r.status);
            }
            Dev::HeadRead(h) => {
                h.read(lba, 8).await.expect("read");
            }
        }
    }
    fn blocks(&self) -> u64 {
        match self {
            Dev::Bare(_, n) => *n,
            Dev::Head(h) | Dev::HeadRead(h) => h.capacity_blocks(),
        }
    }
}

/// IOPS of 4 KiB random reads at `qd` for `secs`.
async fn run(dev: Arc<Dev>, qd: usize, secs: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut hs = vec![];
    for w in 0..qd as u64 {
        let (dev, stop, count) = (dev.clone(), stop.clone(), count.clone());
        hs.push(tokio::spawn(async move {
            let mut x = 0x2545_F491_4F6C_DD1D ^ (w + 1);
            let n = dev.blocks() / 8;
            while !stop.load(Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                dev.read4k((x % n) * 8).await;
                count.fetch_add(1, Relaxed);
            }
        }));
    }
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Relaxed);
    let n = count.load(Relaxed);
    let el = t.elapsed().as_secs_f64();
    for h in hs {
        h.await.unwrap();
    }
    n as f64 / el
}

fn opts(addr: std::net::SocketAddr) -> ControllerOptions {
    let mut o = ControllerOptions::new(addr.ip().to_string(), addr.port(), NQN);
    o.nr_io_queues = 2;
    o.queue_while_reconnecting = false;
    o
}

/// Interleave A and B in `rounds` rounds; return the median IOPS of each.
async fn compare(a: Arc<Dev>, b: Arc<Dev>, qd: usize, secs: f64, rounds: usize) -> (f64, f64) {
    let (mut ra, mut rb) = (vec![], vec![]);
    run(a.clone(), qd, 0.3).await; // warm up
    run(b.clone(), qd, 0.3).await;
    for r in 0..rounds {
        if r % 2 == 0 {
            ra.push(run(a.clone(), qd, secs).await);
            rb.push(run(b.clone(), qd, secs).await);
        } else {
            rb.push(run(b.clone(), qd, secs).await);
            ra.push(run(a.clone(), qd, secs).await);
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|x, y| x.partial_cmp(y).unwrap());
        v[v.len() / 2]
    };
    (med(&mut ra), med(&mut rb))
}

/// `n` sequential 4 KiB reads, each `submit(lba)`'s future polled through
/// [`poll_apart`]. A loop of its own per kind of future (generic: compiled
/// apart), so that how the compiler treats one (inlines its poll into the
/// loop, or not) does not depend on the code of the others, which moved the
/// controller's count per read by ~35 instructions when only the head's
/// code changed.
async fn count_reads<F, S>(n: u64, blocks: u64, submit: S)
where
    S: Fn(u64) -> F,
    F: std::future::Future<Output = nvmp_host::Completion>,
{
    for i in 0..n {
        let mut f = std::pin::pin!(submit((i * 8) % blocks));
        let r = std::future::poll_fn(|cx| poll_apart(f.as_mut(), cx)).await;
        assert!(r.status.is_success(), "{}", r.status);
    }
}

/// Poll `f`, never inlined into the caller: each way of submitting is
/// measured as one function (`scripts/overhead-instructions` takes its
/// inclusive cost), whatever the loop around it.
#[inline(never)]
fn poll_apart<F: std::future::Future>(
    f: std::pin::Pin<&mut F>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<F::Output> {
    f.poll(cx)
}

/// Count mode: N sequential reads through `mode`, nothing printed but the mode.
async fn count_mode(n: u64, mode: &str) {
    let t =
        TargetHandle::start(TargetConfig::from_json(&config(&["optimized", "optimized"])).unwrap())
            .await
            .unwrap();
    let c = Controller::connect(opts(t.local_addr(1).unwrap()))
        .await
        .unwrap();
    let mp = Multipath::new(MpathConfig::default());
    mp.add_controller(c.clone()).await.unwrap();
    if mode.ends_with('2') || mode.ends_with("2-full") {
        // A second path (the target's second port): the choice is real.
        let c2 = Controller::connect(opts(t.local_addr(2).unwrap()))
            .await
            .unwrap();
        mp.add_controller(c2).await.unwrap();
    }
    let head = mp.head(NQN, 1).unwrap();
    let dev = match mode {
        "bare" => Dev::Bare(c.clone(), head.capacity_blocks()),
        "head" | "head2" => Dev::Head(head.clone()),
        "head-read" => Dev::HeadRead(head.clone()),
        "head-st" | "head-st2" | "head-st2-full" => {
            if mode.ends_with("-full") {
                nvmp_mpath::latency::sample_as_at_full_rate(true);
            }
            // The same through the service-time policy: timed, latency-weighted choice.
            mp.subsystem(NQN)
                .unwrap()
                .set_iopolicy(IoPolicy::ServiceTime);
            Dev::Head(head.clone())
        }
        other => {
            panic!("NVMP_BENCH_MODE={other}: expected bare, head, head2, head-read, head-st, head-st2 or head-st2-full")
        }
    };
    if std::env::var("NVMP_BENCH_SIZES").is_ok() {
        eprintln!(
            "sizes: ctrl submit {} head submit {} IoRequest {} Completion {}",
            std::mem::size_of_val(&c.submit(read_sqe(0))),
            std::mem::size_of_val(&head.submit(read_sqe(0))),
            std::mem::size_of::<IoRequest>(),
            std::mem::size_of::<nvmp_host::Completion>()
        );
    }
    let blocks = dev.blocks();
    match &dev {
        Dev::Bare(c, _) => count_reads(n, blocks, |lba| c.submit(read_sqe(lba))).await,
        Dev::Head(h) => count_reads(n, blocks, |lba| h.submit(read_sqe(lba))).await,
        Dev::HeadRead(h) => {
            for i in 0..n {
                h.read((i * 8) % blocks, 8).await.expect("read");
            }
        }
    }
    eprintln!("count mode: {n} reads through {mode}");
    mp.shutdown().await;
    t.shutdown().await;
}

fn main() {
    if let Ok(n) = std::env::var("NVMP_BENCH_COUNT_IOS") {
        let n: u64 = n.parse().expect("NVMP_BENCH_COUNT_IOS");
        let mode = std::env::var("NVMP_BENCH_MODE").unwrap_or_else(|_| "head".into());
        // One thread: host and target tasks then run in the same order every
        // time, so the count per read repeats to a few instructions. (On a
        // multi-thread runtime how often workers park, wake and steal depends
        // on the machine's load: the same binary gave 18,300-19,200 per read
        // from run to run, too much to see a 1 % difference.)
        // NVMP_BENCH_RUNTIME=multi counts on the 2-worker runtime instead.
        let rt = match std::env::var("NVMP_BENCH_RUNTIME").as_deref() {
            Ok("multi") => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build(),
            _ => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
        .unwrap();
        rt.block_on(count_mode(n, &mode));
        return;
    }
    let secs: f64 = std::env::var("NVMP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let rounds: usize = std::env::var("NVMP_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let t = TargetHandle::start(
            TargetConfig::from_json(&config(&["optimized", "optimized"])).unwrap(),
        )
        .await
        .unwrap();
        let (a1, a2) = (t.local_addr(1).unwrap(), t.local_addr(2).unwrap());

        // One controller, used bare and as the single path of a head.
        let c1 = Controller::connect(opts(a1)).await.unwrap();
        let mp1 = Multipath::new(MpathConfig::default());
        mp1.add_controller(c1.clone()).await.unwrap();
        let head1 = mp1.head(NQN, 1).unwrap();
        let bare = Arc::new(Dev::Bare(c1.clone(), head1.capacity_blocks()));
        let one = Arc::new(Dev::Head(head1.clone()));
        println!("4 KiB random read, {rounds} interleaved rounds of {secs} s, median IOPS");
        println!(
            "{:<34} {:>12} {:>12} {:>8}",
            "workload", "A IOPS", "B IOPS", "B/A"
        );
        for qd in [1usize, 32] {
            let (a, b) = compare(bare.clone(), one.clone(), qd, secs, rounds).await;
            println!(
                "{:<34} {:>12.0} {:>12.0} {:>8.4}",
                format!("QD{qd}: A=bare ctrl, B=head(1 path)"),
                a,
                b,
                b / a
            );
        }

        // Two paths (two controllers, both optimized) against one path.
        let c2 = Controller::connect(opts(a2)).await.unwrap();
        let c1b = Controller::connect(opts(a1)).await.unwrap();
        let mp2 = Multipath::new(MpathConfig::default());
        mp2.add_controller(c1b).await.unwrap();
        mp2.add_controller(c2).await.unwrap();
        let head2 = mp2.head(NQN, 1).unwrap();
        let two = Arc::new(Dev::Head(head2.clone()));
        for policy in [IoPolicy::RoundRobin, IoPolicy::QueueDepth] {
            mp2.subsystem(NQN).unwrap().set_iopolicy(policy);
            for qd in [1usize, 32] {
                let (a, b) = compare(one.clone(), two.clone(), qd, secs, rounds).await;
                println!(
                    "{:<34} {:>12.0} {:>12.0} {:>8.4}",
                    format!("QD{qd}: A=1 path, B=2 paths {policy}"),
                    a,
                    b,
                    b / a
                );
            }
        }
        mp1.shutdown().await;
        mp2.shutdown().await;
        t.shutdown().await;
    });
}
