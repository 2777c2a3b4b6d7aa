//! Chaos: verified I/O over two paths while one path at a time suffers a
//! random fault — link cut, refused reconnects, a black hole, delay, a
//! flipped bit on the wire (caught by the digests), an ANA flip, an injected
//! path status — each undone before the other path is touched. Whatever
//! happens, no data error and no error reaches the caller while a path is
//! usable. The event sequence comes from a printed seed (`NVMP_CHAOS_SEED`
//! replays one).

mod common;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use nvmp_mpath::{MpathConfig, Multipath};
use nvmp_target::{FailNext, Fault};
use nvmp_testkit::{FaultProxy, ProxyMode};
use nvmp_wire::log::AnaState;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_one_path_at_a_time_loses_nothing() {
    init_tracing();
    let seed: u64 = std::env::var("NVMP_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("chaos seed {seed} (NVMP_CHAOS_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let (t, addrs) = start_target(&TargetDef::default()).await;
    let proxies = [
        FaultProxy::start(addrs[0]).await,
        FaultProxy::start(addrs[1]).await,
    ];
    let mp = Multipath::new(MpathConfig::default());
    for p in &proxies {
        let mut o = path_opts(p.addr(), NQN);
        o.hdr_digest = true;
        o.data_digest = true;
        o.io_timeout_ms = 1_500;
        o.kato_ms = 2_000;
        connect(&mp, o).await;
    }
    let head = mp.head(NQN, 1).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (stats, hs) = spawn_verified_load(head.clone(), 4, stop.clone());
    let start = Instant::now();
    let mut events = Vec::new();
    let mut i = 0usize;
    while start.elapsed() < Duration::from_secs(12) {
        let path = head.paths()[i].clone();
        let px = &proxies[i];
        let port = (i + 1) as u16;
        let what = rng.below(7);
        let hold = Duration::from_millis(300 + rng.below(700));
        match what {
            0 => {
                px.cut_all();
                events.push(format!("cut path {i}"));
            }
            1 => {
                px.refuse(true);
                px.cut_all();
                tokio::time::sleep(hold).await;
                px.refuse(false);
                events.push(format!("refuse path {i} for {hold:?}"));
            }
            2 => {
                px.set_mode(ProxyMode::BlackHole);
                tokio::time::sleep(Duration::from_millis(1_800)).await;
                px.set_mode(ProxyMode::Pass);
                px.cut_all();
                events.push(format!("black hole on path {i}"));
            }
            3 => {
                px.set_mode(ProxyMode::Delay(Duration::from_millis(15)));
                tokio::time::sleep(hold).await;
                px.set_mode(ProxyMode::Pass);
                events.push(format!("delay 15 ms on path {i} for {hold:?}"));
            }
            4 => {
                px.corrupt_target_byte_after(rng.below(200_000));
                tokio::time::sleep(hold).await;
                events.push(format!("bit flip on path {i}"));
            }
            5 => {
                let s = [
                    AnaState::INACCESSIBLE,
                    AnaState::CHANGE,
                    AnaState::PERSISTENT_LOSS,
                ][rng.below(3) as usize];
                t.set_ana(port, 1, s).unwrap();
                tokio::time::sleep(hold).await;
                let back = if i == 0 {
                    AnaState::OPTIMIZED
                } else {
                    AnaState::NON_OPTIMIZED
                };
                t.set_ana(port, 1, back).unwrap();
                events.push(format!("ANA {} on path {i} for {hold:?}", s.name()));
            }
            _ => {
                let status = [0x300u16, 0x302, 0x303, 0x360, 0x370][rng.below(5) as usize];
                let count = 1 + rng.below(20) as u32;
                t.set_fault(
                    port,
                    Fault {
                        fail_next: Some(FailNext {
                            count,
                            status,
                            dnr: false,
                        }),
                        ..Default::default()
                    },
                )
                .unwrap();
                tokio::time::sleep(hold).await;
                t.clear_faults(port).unwrap();
                events.push(format!("{count} x status {status:#x} on path {i}"));
            }
        }
        // Undo completely before touching the other path: it must be usable again.
        wait_until(
            &format!("path {i} usable after: {}", events.last().unwrap()),
            Duration::from_secs(15),
            || path.view().is_usable(),
        )
        .await;
        i = 1 - i;
    }
    stop.store(true, Relaxed);
    for h in hs {
        h.await.unwrap();
    }
    eprintln!("{} events: {events:#?}", events.len());
    eprintln!(
        "load: {stats:?}; head failovers {}, longest wait {} us; proxy connections {} / {}, bits flipped {}",
        head.stats.failovers.load(Relaxed),
        head.stats.longest_wait_us.load(Relaxed),
        proxies[0].connections(),
        proxies[1].connections(),
        proxies[0].corrupted() + proxies[1].corrupted()
    );
    assert_eq!(
        stats.data_errors.load(Relaxed),
        0,
        "data errors (seed {seed})"
    );
    assert_eq!(
        stats.io_errors.load(Relaxed),
        0,
        "I/O errors while a path was usable (seed {seed})"
    );
    assert!(events.len() >= 5, "chaos ran: {events:?}");
    assert!(stats.ios.load(Relaxed) > 100);
    mp.shutdown().await;
    t.shutdown().await;
}
