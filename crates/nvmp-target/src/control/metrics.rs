//! Prometheus metrics: the text exposition of a [`TargetStatus`], and a
//! tiny HTTP/1.0 responder that serves any text exposition (also used by
//! `nvmp nbd --metrics`).

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::TargetStatus;

/// Largest request head read (the request's content does not matter).
const MAX_REQUEST_BYTES: usize = 4096;
/// Time a client has to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes answered at once; more wait for the accept loop.
const MAX_CONCURRENT: usize = 16;

/// Escape a label value.
pub fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The ANA states, in the order Prometheus state-set gauges list them.
pub const ANA_STATES: [&str; 5] = [
    "optimized",
    "non-optimized",
    "inaccessible",
    "persistent-loss",
    "change",
];

/// Per-port counters, ANA states and controllers of a running target.
pub fn render(st: &TargetStatus) -> String {
    let mut s = String::new();
    type F = fn(&super::CountersStatus) -> u64;
    let counters: [(&str, &str, F); 7] = [
        (
            "nvmp_target_reads_total",
            "Read commands served on a port.",
            |c| c.reads,
        ),
        (
            "nvmp_target_writes_total",
            "Write commands served on a port.",
            |c| c.writes,
        ),
        (
            "nvmp_target_read_bytes_total",
            "Bytes read on a port.",
            |c| c.read_bytes,
        ),
        (
            "nvmp_target_write_bytes_total",
            "Bytes written on a port.",
            |c| c.write_bytes,
        ),
        (
            "nvmp_target_flushes_total",
            "Flush commands served on a port.",
            |c| c.flushes,
        ),
        (
            "nvmp_target_errors_total",
            "I/O commands completed with an error on a port.",
            |c| c.errors,
        ),
        (
            "nvmp_target_connections_total",
            "TCP connections accepted on a port.",
            |c| c.connections_accepted,
        ),
    ];
    for (name, help, f) in counters {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
        for p in &st.ports {
            let _ = writeln!(s, "{name}{{port=\"{}\"}} {}", p.portid, f(&p.counters));
        }
    }
    let _ = writeln!(s, "# HELP nvmp_target_port_up Whether a port is administratively up.\n# TYPE nvmp_target_port_up gauge");
    for p in &st.ports {
        let _ = writeln!(
            s,
            "nvmp_target_port_up{{port=\"{}\"}} {}",
            p.portid,
            u8::from(p.up)
        );
    }
    let _ = writeln!(s, "# HELP nvmp_target_ana_state ANA state of a group on a port (1 for the current state).\n# TYPE nvmp_target_ana_state gauge");
    for p in &st.ports {
        for g in &p.ana_groups {
            for a in ANA_STATES {
                let v = u8::from(g.state == a);
                let _ = writeln!(
                    s,
                    "nvmp_target_ana_state{{port=\"{}\",group=\"{}\",state=\"{a}\"}} {v}",
                    p.portid, g.grpid
                );
            }
        }
    }
    let _ = writeln!(s, "# HELP nvmp_target_controllers Controllers of a subsystem.\n# TYPE nvmp_target_controllers gauge");
    for sub in &st.subsystems {
        let _ = writeln!(
            s,
            "nvmp_target_controllers{{subsystem=\"{}\"}} {}",
            esc(&sub.nqn),
            sub.controllers.len()
        );
    }
    s
}

async fn answer(mut sock: TcpStream, body: String) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_REQUEST_BYTES];
    let mut n = 0;
    while n < buf.len() {
        match tokio::time::timeout(REQUEST_TIMEOUT, sock.read(&mut buf[n..])).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(k)) => {
                n += k;
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n")
                    || buf[..n].windows(2).any(|w| w == b"\n\n")
                {
                    break;
                }
            }
            Ok(Err(e)) => return Err(e),
        }
    }
    let head = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body.as_bytes()).await?;
    sock.shutdown().await
}

/// Serve `render()` to every HTTP request on `listener` (any path; `/metrics` by convention), until the task is dropped.
pub async fn serve_http(listener: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let body = render();
        tokio::spawn(async move {
            let _ = answer(sock, body).await;
            drop(permit);
        });
    }
}
