//! The benchmark's result: counters, latency percentiles from an HDR
//! histogram, per-path counts and the per-second timeline; printed like fio
//! or as JSON.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency summary in microseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// Histogram of latencies in nanoseconds (1 ns .. 60 s, 3 significant digits).
/// Latencies in ns, 1 ns to 60 s, two significant digits (1 %, as fio's
/// bins): 30 KiB of counters. Three digits made 440 KiB per histogram, and
/// with a histogram per job slot the benchmark's own recording missed the
/// cache on every I/O (~9 % of the host's CPU at QD32).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 2).expect("static bounds are valid")
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// The latency curve: (percentile 0..100, latency µs), for plots.
pub fn latency_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return vec![];
    }
    let mut v: Vec<(f64, f64)> = [
        0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
    ]
    .iter()
    .map(|p| (*p, h.value_at_quantile(p / 100.0) as f64 / 1000.0))
    .collect();
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

/// I/Os of one path.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PathCount {
    pub name: String,
    pub ios: u64,
    /// Share of all I/Os, 0..=100.
    pub share_pct: f64,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    pub t_s: f64,
    pub iops: f64,
    pub mib_s: f64,
    /// (path name, IOPS during this interval)
    pub paths: Vec<(String, f64)>,
}

/// The whole result of one benchmark run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// When the measured interval began (the timeline's t = 0), Unix time in ms.
    pub start_unix_ms: u64,
    pub target: String,
    pub rw: String,
    pub bs: u64,
    pub iodepth: usize,
    pub jobs: usize,
    pub iopolicy: Option<String>,
    pub runtime_s: f64,
    pub ios: u64,
    pub reads: u64,
    pub writes: u64,
    pub bytes: u64,
    pub iops: f64,
    pub bw_mib_s: f64,
    pub latency: Latency,
    pub read_latency: Option<Latency>,
    pub write_latency: Option<Latency>,
    pub paths: Vec<PathCount>,
    pub failovers: u64,
    pub errors: u64,
    pub verify_errors: u64,
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
    /// All latencies (ns), to merge rounds.
    #[serde(skip)]
    pub hist: Histogram<u64>,
    pub timeline: Vec<Sample>,
    /// CPU, syscalls and context switches per I/O of this process (the
    /// host) and of the target's (`--target-pid`), over the measured interval.
    pub usage: super::usage::Usage,
}

impl Report {
    /// Merge rounds of the same workload on the same target (`--compare` interleaves rounds).
    pub fn merge(mut parts: Vec<Report>) -> Report {
        let mut r = parts.remove(0);
        for p in parts {
            let offset = r.runtime_s;
            r.runtime_s += p.runtime_s;
            r.ios += p.ios;
            r.reads += p.reads;
            r.writes += p.writes;
            r.bytes += p.bytes;
            r.errors += p.errors;
            r.verify_errors += p.verify_errors;
            r.failovers = r.failovers.max(p.failovers);
            r.usage.add(&p.usage);
            let _ = r.hist.add(&p.hist);
            for (name, ios) in p.paths.iter().map(|x| (x.name.clone(), x.ios)) {
                match r.paths.iter_mut().find(|x| x.name == name) {
                    Some(x) => x.ios += ios,
                    None => r.paths.push(PathCount {
                        name,
                        ios,
                        share_pct: 0.0,
                    }),
                }
            }
            r.timeline.extend(p.timeline.into_iter().map(|mut s| {
                s.t_s += offset;
                s
            }));
        }
        let raw: Vec<(String, u64)> = r.paths.iter().map(|x| (x.name.clone(), x.ios)).collect();
        r.paths = path_counts(&raw);
        r.iops = r.ios as f64 / r.runtime_s.max(1e-9);
        r.bw_mib_s = r.bytes as f64 / r.runtime_s.max(1e-9) / (1 << 20) as f64;
        r.latency = Latency::from_histogram(&r.hist);
        r.curve = latency_curve(&r.hist);
        r
    }
}

pub fn path_counts(raw: &[(String, u64)]) -> Vec<PathCount> {
    let total: u64 = raw.iter().map(|(_, n)| n).sum();
    raw.iter()
        .map(|(name, ios)| PathCount {
            name: name.clone(),
            ios: *ios,
            share_pct: if total == 0 {
                0.0
            } else {
                *ios as f64 * 100.0 / total as f64
            },
        })
        .collect()
}

fn lat_line(l: &Latency) -> String {
    format!(
        "min={:.1}us mean={:.1}us p50={:.1}us p99={:.1}us p99.9={:.1}us max={:.1}us",
        l.min_us, l.mean_us, l.p50_us, l.p99_us, l.p999_us, l.max_us
    )
}

impl Report {
    /// fio-like text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        use std::fmt::Write;
        let _ = writeln!(
            s,
            "{}: rw={} bs={} iodepth={} jobs={}{}",
            self.target,
            self.rw,
            crate::size::human(self.bs),
            self.iodepth,
            self.jobs,
            self.iopolicy
                .as_ref()
                .map(|p| format!(" iopolicy={p}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            s,
            "  io: {} I/Os ({} reads, {} writes), {} in {:.2}s",
            self.ios,
            self.reads,
            self.writes,
            crate::size::human(self.bytes),
            self.runtime_s
        );
        let _ = writeln!(s, "  IOPS={:.0}, BW={:.1}MiB/s", self.iops, self.bw_mib_s);
        let _ = writeln!(s, "  lat: {}", lat_line(&self.latency));
        if let (Some(r), Some(w)) = (&self.read_latency, &self.write_latency) {
            let _ = writeln!(s, "  read lat: {}", lat_line(r));
            let _ = writeln!(s, "  write lat: {}", lat_line(w));
        }
        for p in &self.paths {
            let _ = writeln!(s, "  path {}: {} I/Os ({:.1}%)", p.name, p.ios, p.share_pct);
        }
        if let Some(u) = &self.usage.host {
            let _ = writeln!(s, "  host:   {}", u.line());
        }
        if let Some(u) = &self.usage.target {
            let _ = writeln!(s, "  target: {} (pid {})", u.line(), u.pid);
        }
        for e in &self.usage.errors {
            let _ = writeln!(s, "  usage not measured: {e}");
        }
        let _ = writeln!(
            s,
            "  failovers={} errors={} verify_errors={}",
            self.failovers, self.errors, self.verify_errors
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut h = new_histogram();
        for i in 1..=1000u64 {
            h.record(i * 1000).unwrap();
        }
        let l = Latency::from_histogram(&h);
        // Two significant digits: within 1 % of the true value.
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.01;
        assert!(near(l.p50_us, 500.0), "{l:?}");
        assert!(near(l.p99_us, 990.0), "{l:?}");
        assert!(near(l.max_us, 1000.0), "{l:?}");
        assert_eq!(latency_curve(&h).last().unwrap().0, 100.0);
        assert_eq!(
            Latency::from_histogram(&new_histogram()),
            Latency::default()
        );
    }

    #[test]
    fn shares() {
        let p = path_counts(&[("a".into(), 3), ("b".into(), 1)]);
        assert_eq!(p[0].share_pct, 75.0);
        assert_eq!(path_counts(&[("a".into(), 0)])[0].share_pct, 0.0);
    }
}
