//! Benchmark of one controller: 4 KiB random read and write at QD1 and
//! QD32, 128 KiB sequential read and write.
//!
//! Target: `NVMP_BENCH_ADDR=host:port` and `NVMP_BENCH_NQN` (and
//! `NVMP_BENCH_NSID`, default 1) for an external one; otherwise nvmp's own
//! target in process (a 256 MiB RAM namespace), or with
//! `NVMP_BENCH_TARGET=fake` the small RAM controller of the tests; both
//! over TCP loopback, sharing the process and its cores with the host. `NVMP_BENCH_SECS` per workload
//! (default 3). Run: `cargo bench -p nvmp-bench --bench controller`.

#[path = "../../nvmp-host/tests/common/fake.rs"]
mod fake;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nvmp_host::{Controller, ControllerOptions, IoRequest};
use nvmp_wire::io::ReadWrite;

struct Target {
    addr: String,
    port: u16,
    nqn: String,
    nsid: u32,
    blocks: u64,
    bs: u32,
}

async fn target() -> Target {
    if let Ok(a) = std::env::var("NVMP_BENCH_ADDR") {
        let (h, p) = a.rsplit_once(':').expect("NVMP_BENCH_ADDR=host:port");
        return Target {
            addr: h.to_string(),
            port: p.parse().unwrap(),
            nqn: std::env::var("NVMP_BENCH_NQN").expect("NVMP_BENCH_NQN"),
            nsid: std::env::var("NVMP_BENCH_NSID").map_or(1, |s| s.parse().unwrap()),
            blocks: 0,
            bs: 0,
        };
    }
    if std::env::var("NVMP_BENCH_TARGET").as_deref() != Ok("fake") {
        return nvmp_target().await;
    }
    let f = fake::Fake::new();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            s.set_nodelay(true).unwrap();
            tokio::spawn(f.clone().serve(s));
        }
    });
    Target {
        addr: "127.0.0.1".into(),
        port,
        nqn: "nqn.2024-01.io.example:fake".into(),
        nsid: 1,
        blocks: fake::NS_BLOCKS,
        bs: fake::BS as u32,
    }
}

struct Job {
    name: &'static str,
    size: u32,
    qd: usize,
    write: bool,
    random: bool,
}

/// nvmp's own target, in process, one port, a 256 MiB RAM namespace.
async fn nvmp_target() -> Target {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nqn = "nqn.2024-01.io.nvmp:bench";
    let cfg = format!(
        r#"{{"hosts": [], "ports": [{{"portid": 1, "addr": {{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "{port}", "treq": "not specified"}},
      "param": {{"inline_data_size": "16384"}}, "ana_groups": [{{"grpid": 1, "ana": {{"state": "optimized"}}}}],
      "referrals": [], "subsystems": ["{nqn}"]}}],
  "subsystems": [{{"nqn": "{nqn}", "attr": {{"allow_any_host": "1", "serial": "BENCH", "model": "nvmp-bench", "version": "1.3", "cntlid_min": "1", "cntlid_max": "65519"}},
      "allowed_hosts": [], "namespaces": [{{"nsid": 1, "enable": 1, "ana_grpid": 1, "device": {{"size": "256M"}}}}]}}]}}"#
    );
    let t = nvmp_target::TargetHandle::start(nvmp_target::TargetConfig::from_json(&cfg).unwrap())
        .await
        .unwrap();
    std::mem::forget(t);
    Target {
        addr: "127.0.0.1".into(),
        port,
        nqn: nqn.into(),
        nsid: 1,
        blocks: 0,
        bs: 0,
    }
}

async fn run(c: &Controller, t: &Target, job: Job, secs: f64) {
    let Job {
        name,
        size,
        qd,
        write,
        random,
    } = job;
    let nlb = size / t.bs;
    let span = t.blocks / nlb as u64;
    let ops = Arc::new(AtomicU64::new(0));
    let lat_ns = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let data = Bytes::from(vec![0xA5u8; size as usize]);
    let mut hs = vec![];
    for w in 0..qd {
        let (c, ops, lat_ns, data) = (c.clone(), ops.clone(), lat_ns.clone(), data.clone());
        let nsid = t.nsid;
        hs.push(tokio::spawn(async move {
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1);
            let mut seq = w as u64;
            while Instant::now() < until {
                let i = if random {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x % span
                } else {
                    seq = (seq + qd as u64) % span;
                    seq
                };
                let rw = ReadWrite {
                    nsid,
                    slba: i * nlb as u64,
                    nlb,
                    fua: false,
                };
                let req = if write {
                    IoRequest::with_write(rw.write_sqe(), data.clone())
                } else {
                    IoRequest::with_read(rw.read_sqe(), size)
                };
                let t0 = Instant::now();
                let r = c.submit(req).await;
                lat_ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                assert!(r.is_success(), "{}", r.status);
                ops.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    let n = ops.load(Ordering::Relaxed);
    let iops = n as f64 / secs;
    println!(
        "{name:<28} {iops:>10.0} IOPS {:>9.1} MiB/s   mean latency {:>7.1} µs",
        iops * size as f64 / (1 << 20) as f64,
        lat_ns.load(Ordering::Relaxed) as f64 / n.max(1) as f64 / 1000.0
    );
}

/// Count mode (for callgrind, as the multipath crate's `overhead` bench):
/// `NVMP_BENCH_COUNT_IOS=N` runs N 4 KiB random reads (`NVMP_BENCH_RW=write`:
/// writes) at `NVMP_BENCH_QD` (default 32) on one I/O queue against nvmp's
/// own target, all on a one-thread runtime, and exits. Two N under
/// `valgrind --tool=callgrind` give instructions per I/O at depth (host and
/// target, the batching of both included).
fn count_mode(n: u64) {
    let qd: u64 = std::env::var("NVMP_BENCH_QD").map_or(32, |s| s.parse().unwrap());
    let write = std::env::var("NVMP_BENCH_RW").as_deref() == Ok("write");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = nvmp_target().await;
        let mut o = ControllerOptions::new(t.addr.clone(), t.port, t.nqn.clone());
        o.nr_io_queues = 1;
        o.queue_size = 128;
        let c = Controller::connect(o).await.expect("connect");
        let span = (256u64 << 20) / 4096;
        let data = Bytes::from(vec![0xA5u8; 4096]);
        let mut hs = vec![];
        for w in 0..qd {
            let (c, data) = (c.clone(), data.clone());
            hs.push(tokio::spawn(async move {
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (w + 1);
                for _ in 0..n / qd {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let rw = ReadWrite {
                        nsid: 1,
                        slba: (x % span) * 8,
                        nlb: 8,
                        fua: false,
                    };
                    let req = if write {
                        IoRequest::with_write(rw.write_sqe(), data.clone())
                    } else {
                        IoRequest::with_read(rw.read_sqe(), 4096)
                    };
                    let r = c.submit(req).await;
                    assert!(r.is_success(), "{}", r.status);
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        c.disconnect().await;
    });
}

fn main() {
    if let Ok(n) = std::env::var("NVMP_BENCH_COUNT_IOS") {
        count_mode(n.parse().expect("NVMP_BENCH_COUNT_IOS"));
        return;
    }
    let secs: f64 = std::env::var("NVMP_BENCH_SECS").map_or(3.0, |s| s.parse().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut t = target().await;
        let mut o = ControllerOptions::new(t.addr.clone(), t.port, t.nqn.clone());
        o.nr_io_queues = 2;
        o.queue_size = 128;
        let c = Controller::connect(o).await.expect("connect");
        if t.blocks == 0 {
            let ns = c
                .identify_namespace(t.nsid)
                .await
                .expect("identify namespace");
            t.bs = ns.block_size().unwrap();
            t.blocks = ns.nsze.min((1 << 30) / t.bs as u64);
        }
        println!(
            "target {}:{} {} nsid {} ({} blocks of {} B), {} I/O queues, {secs} s each",
            t.addr,
            t.port,
            t.nqn,
            t.nsid,
            t.blocks,
            t.bs,
            c.io_queues()
        );
        // (name, size, QD, write, random), run in this order.
        for (name, size, qd, write, random) in [
            ("4k randread  QD1", 4096, 1, false, true),
            ("4k randread  QD32", 4096, 32, false, true),
            ("4k randwrite QD1", 4096, 1, true, true),
            ("4k randwrite QD32", 4096, 32, true, true),
            ("128k seqread  QD8", 128 * 1024, 8, false, false),
            ("128k seqwrite QD8", 128 * 1024, 8, true, false),
        ] {
            let job = Job {
                name,
                size,
                qd,
                write,
                random,
            };
            run(&c, &t, job, secs).await;
        }
        c.disconnect().await;
    });
}
