//! What the demo shows: per path controller state, ANA state and IOPS,
//! events as they happen (state changes, failovers and how long I/O
//! waited), drawn as a live view on a terminal or as plain lines otherwise.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use nvmp_mpath::stats::SubsysSnapshot;

use super::io::IoStats;
use super::stall::{stall_line, Stall, STALL_US};

/// An I/O disturbance being followed: from the first sign (failover, path
/// lost, requeue, a stalled I/O) until latencies are back to normal.
struct Episode {
    start_s: f64,
    cause: String,
    max_us: u64,
    /// Its slowest I/O, blamed on the event that began it when reported.
    slowest: Option<Stall>,
    quiet_ticks: u32,
}

pub struct View {
    pub tty: bool,
    t0: Instant,
    duration: Duration,
    pub events: Vec<String>,
    /// Events that can stall I/O (schedule steps, state and ANA changes),
    /// with their time: what a stall is blamed on.
    causes: Vec<(f64, String)>,
    last_paths: HashMap<String, (String, String, u64, u64)>,
    last_ios: u64,
    last_tick: Instant,
    last_line: Instant,
    episode: Option<Episode>,
    pub failovers: u64,
    pub longest_stall_us: u64,
    drawn_lines: usize,
    path_iops: HashMap<String, f64>,
    iops: f64,
}

/// An episode is reported after this long even if latencies stay high.
const MAX_EPISODE_S: f64 = 5.0;

impl View {
    pub fn new(tty: bool, duration: Duration) -> Self {
        let now = Instant::now();
        Self {
            tty,
            t0: now,
            duration,
            events: vec![],
            causes: vec![],
            last_paths: HashMap::new(),
            last_ios: 0,
            last_tick: now,
            last_line: now,
            episode: None,
            failovers: 0,
            longest_stall_us: 0,
            drawn_lines: 0,
            path_iops: HashMap::new(),
            iops: 0.0,
        }
    }

    pub fn t(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// Record an event (printed at once without a terminal).
    pub fn event(&mut self, msg: String) {
        let line = format!("t={:>5.2}s  {msg}", self.t());
        if !self.tty {
            println!("{line}");
        }
        self.events.push(line);
    }

    /// Record an event that can stall I/O.
    pub fn cause(&mut self, msg: String) {
        self.causes.push((self.t(), msg.clone()));
        self.event(msg);
    }

    /// Take a sample: detect changes, follow stalls, redraw or print.
    pub fn tick(&mut self, subs: &[SubsysSnapshot], io: &IoStats) {
        let dt = self.last_tick.elapsed().as_secs_f64().max(1e-3);
        self.last_tick = Instant::now();
        let ios = io.ios.load(Relaxed);
        self.iops = (ios - self.last_ios) as f64 / dt;
        self.last_ios = ios;
        let window_max = io.window_max_us.swap(0, Relaxed);
        let slowest = io.take_slowest().map(|(us, start)| {
            let start_s = start.saturating_duration_since(self.t0).as_secs_f64();
            Stall {
                start_s,
                end_s: start_s + us as f64 / 1e6,
                us,
            }
        });
        let mut failovers_now = 0;
        let mut changes = vec![];
        let mut path_lost = false;
        let mut ana_changed = false;
        for s in subs {
            for h in &s.heads {
                failovers_now += h.failovers;
                for p in &h.paths {
                    let prev = self.last_paths.get(&p.name).cloned();
                    let iops = prev
                        .as_ref()
                        .map_or(0.0, |x| p.ios.saturating_sub(x.2) as f64 / dt);
                    self.path_iops.insert(p.name.clone(), iops);
                    if let Some((st, ana, _, _)) = &prev {
                        if *st == "live" && p.ctrl_state != "live" {
                            path_lost = true;
                        }
                        if *st != p.ctrl_state {
                            changes.push((
                                true,
                                format!(
                                    "{} ({}): controller {} -> {}",
                                    p.controller, p.address, st, p.ctrl_state
                                ),
                            ));
                        }
                        if *ana != p.ana_state {
                            ana_changed = true;
                            changes.push((
                                true,
                                format!("{}: ANA {} -> {}", p.name, ana, p.ana_state),
                            ));
                        }
                    } else {
                        changes.push((
                            false,
                            format!(
                                "{} ({}): {} {}",
                                p.name, p.address, p.ctrl_state, p.ana_state
                            ),
                        ));
                    }
                    self.last_paths.insert(
                        p.name.clone(),
                        (
                            p.ctrl_state.clone(),
                            p.ana_state.clone(),
                            p.ios,
                            p.failovers,
                        ),
                    );
                }
            }
        }
        for (can_stall, c) in changes {
            if can_stall {
                self.cause(c);
            } else {
                self.event(c);
            }
        }
        let new_failovers = failovers_now.saturating_sub(self.failovers);
        self.failovers = failovers_now;
        let cause = if new_failovers > 0 {
            Some(format!("failover ({new_failovers} commands moved)"))
        } else if path_lost {
            Some("path lost".to_string())
        } else if ana_changed {
            Some("ANA change".to_string())
        } else {
            None
        };
        let stalled = slowest.is_some_and(|s| s.us >= STALL_US);
        let now_s = self.t();
        match (&mut self.episode, cause) {
            (None, c) if c.is_some() || stalled => {
                self.episode = Some(Episode {
                    start_s: now_s,
                    cause: c.unwrap_or_else(|| "stalled I/O".to_string()),
                    max_us: window_max,
                    slowest,
                    quiet_ticks: 0,
                });
            }
            (None, _) => {}
            (Some(e), c) => {
                e.max_us = e.max_us.max(window_max);
                if let Some(s) = slowest.filter(|s| e.slowest.is_none_or(|x| s.us > x.us)) {
                    e.slowest = Some(s);
                }
                if c.is_none() {
                    e.quiet_ticks += 1;
                } else {
                    e.quiet_ticks = 0;
                    if !e.cause.starts_with("failover") && new_failovers > 0 {
                        e.cause = format!("failover ({new_failovers} commands moved)");
                    }
                }
                if e.quiet_ticks >= 2 || now_s - e.start_s > MAX_EPISODE_S {
                    let e = self.episode.take().expect("episode");
                    self.close_episode(e);
                }
            }
        }
        // The longest stall is the longest single I/O of the run.
        self.longest_stall_us = self.longest_stall_us.max(io.max_us.load(Relaxed));
        if self.tty {
            self.draw(subs, io);
        } else if self.last_line.elapsed() >= Duration::from_secs(1) {
            self.last_line = Instant::now();
            println!("{}", self.status_line(subs, io));
        }
    }

    /// Report a finished episode (already taken out of `self.episode`).
    fn close_episode(&mut self, e: Episode) {
        self.longest_stall_us = self.longest_stall_us.max(e.max_us);
        let slowest = e.slowest.unwrap_or(Stall {
            start_s: e.start_s,
            end_s: e.start_s,
            us: e.max_us,
        });
        let msg = stall_line(&self.causes, slowest, &e.cause, e.start_s);
        self.event(msg);
    }

    /// Close an episode still open at the end.
    pub fn finish(&mut self) {
        if let Some(e) = self.episode.take() {
            self.close_episode(e);
        }
    }

    fn status_line(&self, subs: &[SubsysSnapshot], io: &IoStats) -> String {
        let mut s = format!("t={:>5.2}s  IOPS {:>6.0}", self.t(), self.iops);
        for sub in subs {
            for h in &sub.heads {
                for p in &h.paths {
                    let _ = write!(
                        s,
                        " | {} {} {} {:.0}",
                        p.name,
                        p.ctrl_state,
                        p.ana_state,
                        self.path_iops.get(&p.name).copied().unwrap_or(0.0)
                    );
                }
            }
        }
        let _ = write!(
            s,
            " | errors {}",
            io.data_errors.load(Relaxed) + io.io_errors.load(Relaxed)
        );
        s
    }

    fn draw(&mut self, subs: &[SubsysSnapshot], io: &IoStats) {
        let mut out = String::new();
        if self.drawn_lines > 0 {
            let _ = write!(out, "\x1b[{}A", self.drawn_lines);
        }
        let mut lines = vec![];
        let bar = |frac: f64| {
            let n = (frac.clamp(0.0, 1.0) * 30.0).round() as usize;
            format!("{}{}", "█".repeat(n), "·".repeat(30 - n))
        };
        let el = self.t();
        lines.push(format!(
            "\x1b[1mnvmp demo\x1b[0m  t={el:>5.1}s / {:.0}s  [{}]",
            self.duration.as_secs_f64(),
            bar(el / self.duration.as_secs_f64())
        ));
        for sub in subs {
            lines.push(format!(
                "{} {}  iopolicy={}",
                sub.name, sub.nqn, sub.iopolicy
            ));
            lines.push(format!(
                "  {:<11} {:<7} {:<22} {:<11} {:<16} {:>8}",
                "PATH", "CTRL", "ADDRESS", "STATE", "ANA", "IOPS"
            ));
            let max = self.path_iops.values().copied().fold(1.0, f64::max);
            for h in &sub.heads {
                for p in &h.paths {
                    let iops = self.path_iops.get(&p.name).copied().unwrap_or(0.0);
                    let color = match (p.ctrl_state.as_str(), p.ana_state.as_str()) {
                        ("live", "optimized") => "\x1b[32m",
                        ("live", "non-optimized") => "\x1b[33m",
                        _ => "\x1b[31m",
                    };
                    lines.push(format!(
                        "  {:<11} {:<7} {:<22} {color}{:<11} {:<16}\x1b[0m {:>8.0} {}{}",
                        p.name,
                        p.controller,
                        p.address,
                        p.ctrl_state,
                        p.ana_state,
                        iops,
                        &bar(iops / max)[..],
                        if p.current { " *" } else { "" }
                    ));
                }
            }
        }
        lines.push(format!(
            "I/Os {}  IOPS {:.0}  verified reads {}  failovers {}  longest stall {:.1} ms  data errors {}  I/O errors {}",
            io.ios.load(Relaxed),
            self.iops,
            io.verified_reads.load(Relaxed),
            self.failovers,
            self.longest_stall_us as f64 / 1000.0,
            io.data_errors.load(Relaxed),
            io.io_errors.load(Relaxed)
        ));
        lines.push("events:".into());
        let tail: Vec<&String> = self.events.iter().rev().take(10).collect();
        for e in tail.into_iter().rev() {
            lines.push(format!("  {e}"));
        }
        for l in &lines {
            let _ = writeln!(out, "\x1b[2K{l}");
        }
        // Clear what a longer previous frame left below.
        for _ in lines.len()..self.drawn_lines {
            let _ = writeln!(out, "\x1b[2K");
        }
        self.drawn_lines = lines.len().max(self.drawn_lines);
        let mut so = std::io::stdout().lock();
        let _ = so.write_all(out.as_bytes());
        let _ = so.flush();
    }
}
