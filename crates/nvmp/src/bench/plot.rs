//! A small hand-written SVG: the latency distribution (percentile curve on
//! a "nines" axis) and the IOPS-per-path timeline.

use std::fmt::Write;

use super::report::Report;

const W: f64 = 900.0;
const PANEL_H: f64 = 300.0;
const ML: f64 = 70.0;
const MR: f64 = 160.0;
const MT: f64 = 40.0;
const MB: f64 = 50.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Percentile → position on a "nines" axis: 0 → 0, 90 → 1, 99 → 2, 99.9 → 3 …
fn nines(p: f64) -> f64 {
    let rest = (100.0 - p).max(0.0001) / 100.0;
    -rest.log10()
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let e = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * e >= v {
            return m * e;
        }
    }
    10.0 * e
}

fn axes(s: &mut String, top: f64, title: &str, xlabel: &str, ylabel: &str) {
    let (x0, y0, x1, y1) = (ML, top + MT, W - MR, top + PANEL_H - MB);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
        ML,
        top + 22.0,
        esc(title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        x1 - x0,
        y1 - y0
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>"#,
        (x0 + x1) / 2.0,
        y1 + 38.0,
        esc(xlabel)
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" font-size="12" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0,
        esc(ylabel)
    );
}

fn y_ticks(s: &mut String, top: f64, ymax: f64) {
    let (y0, y1) = (top + MT, top + PANEL_H - MB);
    for i in 0..=4 {
        let v = ymax * i as f64 / 4.0;
        let y = y1 - (y1 - y0) * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{ML}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/>"##,
            W - MR
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>"#,
            ML - 6.0,
            y + 4.0,
            fmt_num(v)
        );
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn polyline(s: &mut String, pts: &[(f64, f64)], color: &str) {
    let mut d = String::new();
    for (x, y) in pts {
        let _ = write!(d, "{x:.1},{y:.1} ");
    }
    let _ = writeln!(
        s,
        r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
        d.trim_end()
    );
}

/// The SVG document for a report.
pub fn svg(r: &Report) -> String {
    let mut s = String::new();
    let h = PANEL_H * 2.0;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);

    // Panel 1: latency percentiles.
    let title = format!(
        "{} {} bs={} qd={} jobs={}: latency (p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us)",
        r.target,
        r.rw,
        crate::size::human(r.bs),
        r.iodepth,
        r.jobs,
        r.latency.p50_us,
        r.latency.p99_us,
        r.latency.p999_us
    );
    axes(&mut s, 0.0, &title, "percentile", "latency (us)");
    let ymax = nice_max(r.curve.iter().map(|c| c.1).fold(0.0, f64::max));
    y_ticks(&mut s, 0.0, ymax);
    let xmax = 5.0; // 99.999
    let (x0, x1, y0, y1) = (ML, W - MR, MT, PANEL_H - MB);
    for (p, label) in [
        (0.0, "0"),
        (90.0, "90"),
        (99.0, "99"),
        (99.9, "99.9"),
        (99.99, "99.99"),
        (99.999, "99.999"),
    ] {
        let x = x0 + (x1 - x0) * nines(p) / xmax;
        let _ = writeln!(
            s,
            r##"<line x1="{x}" x2="{x}" y1="{y0}" y2="{y1}" stroke="#eee"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{x}" y="{}" font-size="11" text-anchor="middle">{label}</text>"#,
            y1 + 16.0
        );
    }
    let pts: Vec<(f64, f64)> = r
        .curve
        .iter()
        .map(|(p, v)| {
            (
                x0 + (x1 - x0) * nines(*p).min(xmax) / xmax,
                y1 - (y1 - y0) * v / ymax,
            )
        })
        .collect();
    polyline(&mut s, &pts, COLORS[0]);

    // Panel 2: IOPS per path over time.
    let top = PANEL_H;
    axes(&mut s, top, "IOPS per path over time", "time (s)", "IOPS");
    let mut names: Vec<String> = vec![];
    for smp in &r.timeline {
        for (n, _) in &smp.paths {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let ymax = nice_max(r.timeline.iter().map(|x| x.iops).fold(0.0, f64::max));
    y_ticks(&mut s, top, ymax);
    let tmax = r.timeline.last().map_or(1.0, |x| x.t_s).max(1.0);
    let (y0, y1) = (top + MT, top + PANEL_H - MB);
    for i in 0..=5 {
        let t = tmax * i as f64 / 5.0;
        let x = x0 + (x1 - x0) * i as f64 / 5.0;
        let _ = writeln!(
            s,
            r#"<text x="{x}" y="{}" font-size="11" text-anchor="middle">{:.1}</text>"#,
            y1 + 16.0,
            t
        );
    }
    let px = |t: f64| x0 + (x1 - x0) * t / tmax;
    let py = |v: f64| y1 - (y1 - y0) * v / ymax;
    let total: Vec<(f64, f64)> = r.timeline.iter().map(|x| (px(x.t_s), py(x.iops))).collect();
    polyline(&mut s, &total, "#000");
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" font-size="12" fill="#000">total</text>"##,
        x1 + 10.0,
        y0 + 12.0
    );
    for (i, n) in names.iter().enumerate() {
        let color = COLORS[(i + 1) % COLORS.len()];
        let pts: Vec<(f64, f64)> = r
            .timeline
            .iter()
            .map(|x| {
                (
                    px(x.t_s),
                    py(x.paths
                        .iter()
                        .find(|(p, _)| p == n)
                        .map_or(0.0, |(_, v)| *v)),
                )
            })
            .collect();
        polyline(&mut s, &pts, color);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-size="12" fill="{color}">{}</text>"#,
            x1 + 10.0,
            y0 + 30.0 + 18.0 * i as f64,
            esc(n)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::super::report::*;
    use super::*;

    #[test]
    fn draws_both_panels() {
        let mut h = new_histogram();
        for i in 1..100u64 {
            h.record(i * 10_000).unwrap();
        }
        let r = Report {
            start_unix_ms: 0,
            target: "nvme0n1".into(),
            rw: "randread".into(),
            bs: 4096,
            iodepth: 1,
            jobs: 1,
            iopolicy: None,
            runtime_s: 2.0,
            ios: 99,
            reads: 99,
            writes: 0,
            bytes: 99 * 4096,
            iops: 49.5,
            bw_mib_s: 0.2,
            latency: Latency::from_histogram(&h),
            read_latency: None,
            write_latency: None,
            paths: vec![],
            failovers: 0,
            errors: 0,
            verify_errors: 0,
            curve: latency_curve(&h),
            hist: h.clone(),
            timeline: vec![
                Sample {
                    t_s: 1.0,
                    iops: 50.0,
                    mib_s: 0.2,
                    paths: vec![("nvme0c0n1".into(), 50.0)],
                },
                Sample {
                    t_s: 2.0,
                    iops: 49.0,
                    mib_s: 0.2,
                    paths: vec![("nvme0c0n1".into(), 30.0), ("nvme0c1n1<&>".into(), 19.0)],
                },
            ],
            usage: Default::default(),
        };
        let s = svg(&r);
        assert!(s.starts_with("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 4);
        assert!(s.contains("nvme0c1n1&lt;&amp;&gt;"));
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
    }
}
