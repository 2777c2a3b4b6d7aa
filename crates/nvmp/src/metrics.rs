//! Prometheus text exposition for `nvmp nbd --metrics ADDR:PORT`: a tiny
//! HTTP/1.0 responder (any path answers; `/metrics` by convention).

use std::fmt::Write;

use tokio::net::TcpListener;

use crate::control::{NbdCounters, State};
use nvmp_mpath::stats::SubsysSnapshot;
use nvmp_target::control::metrics::{esc, ANA_STATES};

const CTRL_STATES: [&str; 7] = [
    "new",
    "connecting",
    "live",
    "resetting",
    "deleting",
    "deleting (no IO)",
    "dead",
];

type PathField = fn(&nvmp_mpath::stats::PathSnapshot) -> u64;
type HeadField = fn(&nvmp_mpath::stats::HeadSnapshot) -> u64;

/// The exposition text.
pub fn render(subs: &[SubsysSnapshot], nbd: Option<&NbdCounters>) -> String {
    let mut s = String::new();
    let counters: [(&str, &str, PathField); 4] = [
        (
            "nvmp_path_ios_total",
            "I/O commands completed successfully on a path.",
            |p| p.ios,
        ),
        (
            "nvmp_path_bytes_total",
            "Bytes transferred on a path.",
            |p| p.bytes,
        ),
        (
            "nvmp_path_errors_total",
            "Commands that failed on a path.",
            |p| p.errors,
        ),
        (
            "nvmp_path_failovers_total",
            "Commands failed over away from a path.",
            |p| p.failovers,
        ),
    ];
    for (name, help, f) in counters {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
        for sub in subs {
            for h in &sub.heads {
                for p in &h.paths {
                    let _ = writeln!(
                        s,
                        "{name}{{subsystem=\"{}\",head=\"{}\",path=\"{}\",controller=\"{}\"}} {}",
                        esc(&sub.nqn),
                        h.name,
                        p.name,
                        p.controller,
                        f(p)
                    );
                }
            }
        }
    }
    let _ = writeln!(s, "# HELP nvmp_path_outstanding Commands in flight on the path's controller.\n# TYPE nvmp_path_outstanding gauge");
    for sub in subs {
        for h in &sub.heads {
            for p in &h.paths {
                let _ = writeln!(
                    s,
                    "nvmp_path_outstanding{{subsystem=\"{}\",head=\"{}\",path=\"{}\"}} {}",
                    esc(&sub.nqn),
                    h.name,
                    p.name,
                    p.outstanding
                );
            }
        }
    }
    let _ = writeln!(s, "# HELP nvmp_path_latency_seconds Decaying average completion latency of a path, overall and per size class (measured while the iopolicy is service-time; absent until then).\n# TYPE nvmp_path_latency_seconds gauge");
    for sub in subs {
        for h in &sub.heads {
            for p in &h.paths {
                let classes = nvmp_mpath::latency::CLASS_NAMES
                    .iter()
                    .zip(p.latency_class_us);
                for (class, us) in std::iter::once((&"all", p.latency_us)).chain(classes) {
                    if us > 0 {
                        let _ = writeln!(
                            s,
                            "nvmp_path_latency_seconds{{subsystem=\"{}\",head=\"{}\",path=\"{}\",class=\"{class}\"}} {}",
                            esc(&sub.nqn),
                            h.name,
                            p.name,
                            us as f64 / 1e6
                        );
                    }
                }
            }
        }
    }
    let _ = writeln!(s, "# HELP nvmp_path_ana_state ANA state of a path (1 for the current state).\n# TYPE nvmp_path_ana_state gauge");
    for sub in subs {
        for h in &sub.heads {
            for p in &h.paths {
                for st in ANA_STATES {
                    let v = u8::from(p.ana_state == st);
                    let _ = writeln!(
                        s,
                        "nvmp_path_ana_state{{subsystem=\"{}\",head=\"{}\",path=\"{}\",group=\"{}\",state=\"{st}\"}} {v}",
                        esc(&sub.nqn),
                        h.name,
                        p.name,
                        p.ana_group
                    );
                }
            }
        }
    }
    let _ = writeln!(s, "# HELP nvmp_controller_state State of a controller (1 for the current state).\n# TYPE nvmp_controller_state gauge");
    for sub in subs {
        for c in &sub.controllers {
            for st in CTRL_STATES {
                let v = u8::from(c.state == st);
                let _ = writeln!(
                    s,
                    "nvmp_controller_state{{subsystem=\"{}\",controller=\"{}\",address=\"{}\",state=\"{st}\"}} {v}",
                    esc(&sub.nqn),
                    c.name,
                    esc(&c.address)
                );
            }
        }
    }
    let heads: [(&str, &str, &str, HeadField); 6] = [
        (
            "nvmp_head_fenced_writes_total",
            "counter",
            "Writes torn down in flight, held for KATO before being resent.",
            |h| h.fenced,
        ),
        (
            "nvmp_head_requeued_total",
            "counter",
            "Commands that waited for a usable path.",
            |h| h.requeued,
        ),
        (
            "nvmp_head_failovers_total",
            "counter",
            "Commands failed over to another path.",
            |h| h.failovers,
        ),
        (
            "nvmp_head_errors_total",
            "counter",
            "Commands returned to the caller with an error.",
            |h| h.errors,
        ),
        (
            "nvmp_head_waiting",
            "gauge",
            "Commands waiting for a usable path now.",
            |h| h.waiting,
        ),
        (
            "nvmp_head_longest_wait_ms",
            "gauge",
            "Longest wait for a usable path, ms.",
            |h| h.longest_wait_ms,
        ),
    ];
    for (name, ty, help, f) in heads {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {ty}");
        for sub in subs {
            for h in &sub.heads {
                let _ = writeln!(
                    s,
                    "{name}{{subsystem=\"{}\",head=\"{}\"}} {}",
                    esc(&sub.nqn),
                    h.name,
                    f(h)
                );
            }
        }
    }
    if let Some(n) = nbd {
        let nb: [(&str, &str, u64); 6] = [
            ("nvmp_nbd_connections", "gauge", n.connections_active),
            ("nvmp_nbd_requests_total", "counter", n.requests),
            ("nvmp_nbd_read_bytes_total", "counter", n.bytes_read),
            ("nvmp_nbd_written_bytes_total", "counter", n.bytes_written),
            ("nvmp_nbd_errors_total", "counter", n.errors),
            ("nvmp_nbd_connections_total", "counter", n.connections_total),
        ];
        for (name, ty, v) in nb {
            let _ = writeln!(s, "# TYPE {name} {ty}\n{name} {v}");
        }
    }
    s
}

/// Serve the exposition over HTTP until the task is dropped.
pub async fn serve(l: TcpListener, st: State) {
    nvmp_target::control::metrics::serve_http(
        l,
        std::sync::Arc::new(move || {
            let nbd: NbdCounters = (st.nbd)().into();
            render(&st.mp.snapshot(), Some(&nbd))
        }),
    )
    .await
}

#[cfg(test)]
mod tests {
    use nvmp_mpath::stats::{CtrlSnapshot, HeadSnapshot, PathSnapshot, SubsysSnapshot};

    /// Built from JSON, so that fields added later with a serde default do not break it.
    fn path(name: &str, ctrl: &str, latency_us: u64) -> PathSnapshot {
        serde_json::from_value(serde_json::json!({
            "name": name, "controller": ctrl, "transport": "tcp", "address": "127.0.0.1:4420",
            "ctrl_state": "live", "ana_group": 1, "ana_state": "optimized", "ana_pending": false,
            "current": false, "outstanding": 0, "ios": 10, "bytes": 40960, "errors": 0,
            "failovers": 0, "latency_us": latency_us, "latency_class_us": [latency_us, 0, 0, 0],
        }))
        .unwrap()
    }

    /// One subsystem, one head, two paths: nvme0 measured at 2 ms, nvme1 never.
    pub fn snapshot() -> Vec<SubsysSnapshot> {
        let ctrl = |name: &str| CtrlSnapshot {
            name: name.into(),
            cntlid: 1,
            transport: "tcp".into(),
            address: "127.0.0.1:4420".into(),
            state: "live".into(),
        };
        vec![SubsysSnapshot {
            name: "nvme-subsys0".into(),
            nqn: "nqn.2024-01.x:y".into(),
            iopolicy: "service-time".into(),
            controllers: vec![ctrl("nvme0"), ctrl("nvme1")],
            heads: vec![HeadSnapshot {
                name: "nvme0n1".into(),
                nsid: 1,
                block_size: 512,
                capacity_blocks: 1000,
                nguid: String::new(),
                uuid: String::new(),
                requeued: 0,
                failovers: 0,
                errors: 0,
                fenced: 0,
                waiting: 0,
                no_path_wait_ms: 0,
                longest_wait_ms: 0,
                paths: vec![
                    path("nvme0c0n1", "nvme0", 2000),
                    path("nvme0c1n1", "nvme1", 0),
                ],
            }],
        }]
    }

    #[test]
    fn latency_is_exported_where_measured() {
        let text = super::render(&snapshot(), None);
        assert!(text.contains("# TYPE nvmp_path_latency_seconds gauge"));
        assert!(
            text.contains("nvmp_path_latency_seconds{subsystem=\"nqn.2024-01.x:y\",head=\"nvme0n1\",path=\"nvme0c0n1\",class=\"all\"} 0.002\n"),
            "{text}"
        );
        assert!(text.contains("path=\"nvme0c0n1\",class=\"4k\"} 0.002\n"));
        assert!(
            !text.contains("path=\"nvme0c0n1\",class=\"large\""),
            "not measured"
        );
        assert!(!text.contains("path=\"nvme0c1n1\",class="), "not measured");
    }

    #[test]
    fn list_subsys_shows_latency() {
        let v = crate::cmd::list_subsys::to_json("h", "i", &snapshot());
        let s = &v[0]["Subsystems"][0];
        assert_eq!(s["IOPolicy"], "service-time");
        assert_eq!(s["Paths"][0]["LatencyUs"], 2000);
        assert_eq!(s["Paths"][1]["LatencyUs"], 0);
        let p = &s["Namespaces"][0]["Paths"][0];
        assert_eq!(p["LatencyUs"], 2000);
        assert_eq!(p["LatencyClassUs"]["4k"], 2000);
        assert_eq!(p["LatencyClassUs"]["large"], 0);
        let t = crate::cmd::list_subsys::to_text("h", &snapshot());
        assert!(t.contains("failovers=0 latency=2000us\n"), "{t}");
        assert_eq!(t.matches("latency=").count(), 1, "{t}");
    }
}
