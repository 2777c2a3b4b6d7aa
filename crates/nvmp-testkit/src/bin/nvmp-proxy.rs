//! `nvmp-proxy`: the test proxy as a process, so that benchmarks
//! (`nvmp bench`, scripts/bench-policy) can give paths different speeds:
//! a token-bucket rate limit per direction and an added delay per route,
//! changed while traffic flows.
//!
//! ```text
//! nvmp-proxy --route 127.0.0.1:5420=127.0.0.1:4420 --route 127.0.0.1:5421=127.0.0.1:4421 \
//!            [--cmd 'rate all to-host 40MiB'] ...
//! ```
//!
//! Commands (from `--cmd`, applied in order at start, then one per line on
//! stdin; ROUTE is a route's index from 0, or `all`):
//! - `rate ROUTE to-host|to-target|both RATE|off` — bytes per second (K/M/G,
//!   KiB/MiB/GiB suffixes), shared by all the route's connections;
//! - `delay ROUTE DURATION|off` — hold host-to-target bytes for DURATION
//!   (`2ms`, `500us`, `1s`): every command's round trip grows by it, and
//!   the throughput is not capped (the bytes are pipelined);
//! - `blackhole ROUTE`, `pass ROUTE` (no delay, no black hole), `cut ROUTE`;
//! - `sleep DURATION` — wait before the next line; `stats` — bytes so far.
//!
//! Prints `route I: LISTEN -> UPSTREAM` per route once listening, then
//! `ready`, on stdout; each applied command on stderr with the time since
//! start. Runs until killed.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nvmp_testkit::{Direction, FaultProxy, ProxyMode, RateLimit};

fn usage() -> ! {
    eprintln!("usage: nvmp-proxy --route LISTEN=UPSTREAM [--route ...] [--cmd COMMAND ...]  (commands on stdin too; see the source's docs)");
    std::process::exit(2)
}

/// "40MiB", "10M", "512k", "1000" → bytes.
fn parse_rate(s: &str) -> Result<u64, String> {
    let s = s.trim().trim_end_matches("/s");
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("bad rate {s:?}"))?;
    let m: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("bad rate unit in {s:?}")),
    };
    let b = v * m;
    if !(1.0..=1e12).contains(&b) {
        return Err(format!("rate {s:?} out of range"));
    }
    Ok(b as u64)
}

/// "2ms", "500us", "1.5s" → duration.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "us" => v / 1e6,
        "ms" => v / 1e3,
        "s" | "" => v,
        _ => return Err(format!("bad duration unit in {s:?}")),
    };
    if !(0.0..=3600.0).contains(&secs) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn routes<'a>(proxies: &'a [FaultProxy], which: &str) -> Result<Vec<&'a FaultProxy>, String> {
    if which == "all" {
        return Ok(proxies.iter().collect());
    }
    let i: usize = which.parse().map_err(|_| format!("bad route {which:?}"))?;
    proxies
        .get(i)
        .map(|p| vec![p])
        .ok_or_else(|| format!("no route {i}"))
}

/// Apply one command; `Ok(Some(d))` asks the caller to sleep `d`.
fn apply(proxies: &[FaultProxy], line: &str) -> Result<Option<Duration>, String> {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        [] => Ok(None),
        ["sleep", d] => parse_duration(d).map(Some),
        ["stats"] => {
            for (i, p) in proxies.iter().enumerate() {
                println!(
                    "route {i}: to-target {} B, to-host {} B, connections {}",
                    p.forwarded(Direction::ToTarget),
                    p.forwarded(Direction::ToHost),
                    p.connections()
                );
            }
            Ok(None)
        }
        ["rate", r, dir, rate] => {
            let dirs: &[Direction] = match *dir {
                "to-host" => &[Direction::ToHost],
                "to-target" => &[Direction::ToTarget],
                "both" => &[Direction::ToHost, Direction::ToTarget],
                _ => return Err(format!("bad direction {dir:?}")),
            };
            let limit = match *rate {
                "off" => None,
                r => Some(RateLimit::new(parse_rate(r)?)),
            };
            for p in routes(proxies, r)? {
                for d in dirs {
                    p.set_rate_limit(*d, limit);
                }
            }
            Ok(None)
        }
        ["delay", r, d] => {
            let mode = match *d {
                "off" => ProxyMode::Pass,
                d => match parse_duration(d)? {
                    z if z.is_zero() => ProxyMode::Pass,
                    z => ProxyMode::DelayToTarget(z),
                },
            };
            routes(proxies, r)?.iter().for_each(|p| p.set_mode(mode));
            Ok(None)
        }
        ["pass", r] => {
            routes(proxies, r)?
                .iter()
                .for_each(|p| p.set_mode(ProxyMode::Pass));
            Ok(None)
        }
        ["blackhole", r] => {
            routes(proxies, r)?
                .iter()
                .for_each(|p| p.set_mode(ProxyMode::BlackHole));
            Ok(None)
        }
        ["cut", r] => {
            routes(proxies, r)?.iter().for_each(|p| p.cut_all());
            Ok(None)
        }
        _ => Err(format!("unknown command {line:?}")),
    }
}

fn main() {
    let mut route_args = vec![];
    let mut cmds = vec![];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--route" => route_args.push(args.next().unwrap_or_else(|| usage())),
            "--cmd" => cmds.push(args.next().unwrap_or_else(|| usage())),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if route_args.is_empty() {
        usage();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut proxies = vec![];
        for (i, r) in route_args.iter().enumerate() {
            let parsed = r.split_once('=').and_then(|(l, u)| {
                Some((l.parse::<SocketAddr>().ok()?, u.parse::<SocketAddr>().ok()?))
            });
            let Some((listen, up)) = parsed else {
                eprintln!("nvmp-proxy: bad --route {r:?} (LISTEN=UPSTREAM, both ip:port)");
                std::process::exit(2)
            };
            match FaultProxy::start_on(listen, up).await {
                Ok(p) => {
                    println!("route {i}: {} -> {up}", p.addr());
                    proxies.push(p);
                }
                Err(e) => {
                    eprintln!("nvmp-proxy: listen on {listen}: {e}");
                    std::process::exit(1)
                }
            }
        }
        let t0 = Instant::now();
        let run = |proxies: &[FaultProxy], line: &str| match apply(proxies, line) {
            Ok(d) => {
                if !line.trim().is_empty() {
                    eprintln!("[{:8.3} s] {}", t0.elapsed().as_secs_f64(), line.trim());
                }
                d
            }
            Err(e) => {
                eprintln!("nvmp-proxy: {e}");
                None
            }
        };
        for c in &cmds {
            if let Some(d) = run(&proxies, c) {
                tokio::time::sleep(d).await;
            }
        }
        println!("ready");
        let _ = std::io::stdout().flush();
        // Stdin lines through a thread (blocking reads), applied in order.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = rx.recv().await {
            if let Some(d) = run(&proxies, &line) {
                tokio::time::sleep(d).await;
            }
        }
        // Stdin closed: keep proxying until killed.
        std::future::pending::<()>().await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations() {
        assert_eq!(parse_rate("40MiB").unwrap(), 40 << 20);
        assert_eq!(parse_rate("10M/s").unwrap(), 10_000_000);
        assert_eq!(parse_rate("512k").unwrap(), 512_000);
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("5 furlongs").is_err());
        assert_eq!(parse_duration("2ms").unwrap(), Duration::from_millis(2));
        assert_eq!(parse_duration("500us").unwrap(), Duration::from_micros(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("-1ms").is_err());
        assert!(parse_duration("2h").is_err());
    }

    #[tokio::test]
    async fn commands_set_limits_and_modes() {
        let up: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let ps = vec![FaultProxy::start(up).await, FaultProxy::start(up).await];
        assert_eq!(apply(&ps, "rate all both 40MiB"), Ok(None));
        for p in &ps {
            assert_eq!(
                p.rate_limit(Direction::ToHost),
                Some(RateLimit::new(40 << 20))
            );
            assert_eq!(
                p.rate_limit(Direction::ToTarget),
                Some(RateLimit::new(40 << 20))
            );
        }
        assert_eq!(apply(&ps, "rate 1 to-target off"), Ok(None));
        assert_eq!(ps[1].rate_limit(Direction::ToTarget), None);
        assert!(ps[1].rate_limit(Direction::ToHost).is_some());
        assert_eq!(apply(&ps, "delay 1 2ms"), Ok(None));
        assert_eq!(
            ps[1].mode(),
            ProxyMode::DelayToTarget(Duration::from_millis(2))
        );
        assert_eq!(ps[0].mode(), ProxyMode::Pass);
        assert_eq!(apply(&ps, "delay all off"), Ok(None));
        assert_eq!(ps[1].mode(), ProxyMode::Pass);
        assert_eq!(apply(&ps, "sleep 5ms"), Ok(Some(Duration::from_millis(5))));
        assert!(apply(&ps, "delay 2 2ms").is_err(), "no route 2");
        assert!(apply(&ps, "rate 0 sideways 1M").is_err());
        assert!(apply(&ps, "teleport 0").is_err());
        assert_eq!(apply(&ps, "  "), Ok(None));
    }
}
