//! The control socket, the CLI entry point and the `run` subcommand.

mod common;

use std::time::Duration;

use common::*;
use nvmp_target::cli::{run_command, TargetCommand};
use nvmp_target::control::socket::{self, Request};
use nvmp_target::{TargetConfig, TargetHandle};
use nvmp_wire::StatusCode;

const SUB: &str = "nqn.2024-01.io.nvmp:control";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_socket_and_cli() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ctl.sock");
    let t = TargetHandle::start(TargetConfig::from_json(&two_port_config(SUB, "")).unwrap())
        .await
        .unwrap();
    let srv = {
        let (t, sock) = (t.clone(), sock.clone());
        tokio::spawn(async move { socket::serve(t, &sock).await })
    };
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let addr = t.local_addr(1).unwrap();
    let (_admin, cntlid) = Client::admin(addr, SUB, HOSTNQN, 5000).await.unwrap();
    let mut io = Client::io(addr, SUB, HOSTNQN, cntlid, 1).await.unwrap();

    // CLI: ana → I/O sees 0x303.
    run_command(TargetCommand::Ana {
        control: sock.clone(),
        port: 1,
        group: 1,
        state: "change".into(),
    })
    .await
    .unwrap();
    let (c, _) = io.command(read_sqe(1, 0, 1), None, 512).await.unwrap();
    assert_eq!(c.status.code, StatusCode::ANA_TRANSITION);
    assert!(!c.status.dnr);
    // Bad state is refused with a reason.
    let e = run_command(TargetCommand::Ana {
        control: sock.clone(),
        port: 1,
        group: 1,
        state: "sideways".into(),
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("not an ANA state"), "{e}");
    run_command(TargetCommand::Ana {
        control: sock.clone(),
        port: 1,
        group: 1,
        state: "optimized".into(),
    })
    .await
    .unwrap();

    // Fault: fail the next 2 commands with 0x300.
    let r = socket::request(
        &sock,
        &serde_json::from_str(r#"{"op":"fault","port":1,"fail_next":{"count":2,"status":768}}"#)
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(r.ok);
    for _ in 0..2 {
        let (c, _) = io.command(read_sqe(1, 0, 1), None, 512).await.unwrap();
        assert_eq!(c.status.code, StatusCode::INTERNAL_PATH_ERROR);
    }
    assert!(io
        .command(read_sqe(1, 0, 1), None, 512)
        .await
        .unwrap()
        .0
        .status
        .is_success());

    // Status over the socket.
    let r = socket::request(&sock, &Request::Status).await.unwrap();
    let st = r.status.unwrap();
    assert_eq!(st.ports.len(), 2);
    let ctrl = &st.subsystems[0].controllers[0];
    assert_eq!(
        (ctrl.cntlid, ctrl.port, ctrl.hostnqn.as_str()),
        (cntlid, 1, HOSTNQN)
    );
    assert!(st.ports[0].counters.reads >= 1 && st.ports[0].counters.errors >= 3);
    assert_eq!(st.ports[0].ana_groups[0].state, "optimized");

    // Namespaces at run time.
    let r = socket::request(
        &sock,
        &Request::AddNamespace {
            subsystem: SUB.into(),
            namespace: serde_json::json!({"nsid": 3, "enable": 1, "ana_grpid": 1, "device": {"size": "4M"}}),
        },
    )
    .await
    .unwrap();
    assert!(r.ok, "{r:?}");
    let w = bytes::Bytes::from(vec![3u8; 512]);
    assert!(io
        .command(write_sqe(3, 0, 1, false), Some(w), 0)
        .await
        .unwrap()
        .0
        .status
        .is_success());
    let r = socket::request(
        &sock,
        &Request::RemoveNamespace {
            subsystem: SUB.into(),
            nsid: 3,
        },
    )
    .await
    .unwrap();
    assert!(r.ok);
    let (c, _) = io.command(read_sqe(3, 0, 1), None, 512).await.unwrap();
    assert_eq!(c.status.code, StatusCode::INVALID_NAMESPACE);
    let r = socket::request(
        &sock,
        &Request::RemoveNamespace {
            subsystem: SUB.into(),
            nsid: 3,
        },
    )
    .await
    .unwrap();
    assert!(!r.ok && r.error.unwrap().contains("no namespace 3"));
    // A populated RAM namespace at run time (its memory is faulted in off
    // the runtime's workers): zeroes until written, what was written after;
    // more than the machine has is refused.
    let r = socket::request(
        &sock,
        &Request::AddNamespace {
            subsystem: SUB.into(),
            namespace: serde_json::json!({"nsid": 4, "enable": 1, "ana_grpid": 1,
                "device": {"size": "8M", "populate": "1"}}),
        },
    )
    .await
    .unwrap();
    assert!(r.ok, "{r:?}");
    let w = bytes::Bytes::from(vec![4u8; 512]);
    let (c, _) = io
        .command(write_sqe(4, 1, 1, false), Some(w), 0)
        .await
        .unwrap();
    assert!(c.status.is_success());
    let (c, d) = io.command(read_sqe(4, 0, 3), None, 1536).await.unwrap();
    assert!(c.status.is_success());
    assert!(d[..512].iter().all(|b| *b == 0) && d[1024..].iter().all(|b| *b == 0));
    assert!(d[512..1024].iter().all(|b| *b == 4));
    let r = socket::request(
        &sock,
        &Request::AddNamespace {
            subsystem: SUB.into(),
            namespace: serde_json::json!({"nsid": 5, "enable": 1, "ana_grpid": 1,
                "device": {"size": "64T", "populate": "1"}}),
        },
    )
    .await
    .unwrap();
    assert!(!r.ok && r.error.unwrap().contains("available"));

    // Port down / up through the CLI.
    run_command(TargetCommand::Port {
        control: sock.clone(),
        port: 2,
        down: true,
        up: false,
    })
    .await
    .unwrap();
    let st = t.status();
    assert!(!st.ports[1].up);
    run_command(TargetCommand::Port {
        control: sock.clone(),
        port: 2,
        down: false,
        up: true,
    })
    .await
    .unwrap();
    assert!(t.status().ports[1].up);
    // Unlink the subsystem from port 1: its controllers there go away.
    let r = socket::request(
        &sock,
        &Request::Unlink {
            port: 1,
            subsystem: SUB.into(),
        },
    )
    .await
    .unwrap();
    assert!(r.ok);
    assert!(io.recv().await.is_err());
    // A garbage request gets an error line, not a crash.
    let r = socket::request(
        &sock,
        &serde_json::from_str::<Request>(r#"{"op":"port_up","port":99}"#).unwrap(),
    )
    .await
    .unwrap();
    assert!(!r.ok);
    srv.abort();
    t.shutdown().await;
}

#[tokio::test]
async fn invalid_config_is_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    let text = two_port_config(SUB, "").replace(r#""trsvcid": "0""#, r#""trsvcid": "x""#);
    std::fs::write(&path, text).unwrap();
    let e = run_command(TargetCommand::Run {
        config: path,
        control: None,
        metrics: None,
    })
    .await
    .unwrap_err();
    assert!(
        e.to_string()
            .contains(r#"ports[0].addr.trsvcid: "x" is not a port number"#),
        "{e}"
    );
}

/// `run` from the example binary stops cleanly on SIGTERM.
#[test]
fn run_stops_on_sigterm() {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/target");
    // `cargo test` builds the examples before it runs tests; a missing binary is a failure, not a skip.
    assert!(
        bin.exists(),
        "example binary {} not built (cargo build --all-targets)",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.json");
    std::fs::write(&cfg, two_port_config(SUB, "")).unwrap();
    let sock = dir.path().join("ctl.sock");
    let mut child = std::process::Command::new(&bin)
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--control")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sock.exists(), "control socket did not appear");
    let st = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let t0 = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "exit status {s}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!sock.exists(), "control socket must be removed");
}

/// Prometheus metrics over HTTP: per-port counters follow I/O, ANA states follow `set_ana`.
#[tokio::test]
async fn metrics_over_http() {
    use nvmp_target::control::metrics;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = TargetHandle::start(TargetConfig::from_json(&two_port_config(SUB, "")).unwrap())
        .await
        .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maddr = l.local_addr().unwrap();
    let h = t.clone();
    let srv = tokio::spawn(metrics::serve_http(
        l,
        std::sync::Arc::new(move || metrics::render(&h.status())),
    ));
    let scrape = || async move {
        let mut s = tokio::net::TcpStream::connect(maddr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let addr = t.local_addr(1).unwrap();
    let (_admin, cntlid) = Client::admin(addr, SUB, HOSTNQN, 5000).await.unwrap();
    let mut io = Client::io(addr, SUB, HOSTNQN, cntlid, 1).await.unwrap();
    let (c, _) = io
        .command(write_sqe(1, 0, 1, false), Some(vec![5u8; 512].into()), 0)
        .await
        .unwrap();
    assert!(c.status.is_success());
    let body = scrape().await;
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
    assert!(
        body.contains("nvmp_target_writes_total{port=\"1\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("nvmp_target_write_bytes_total{port=\"1\"} 512"),
        "{body}"
    );
    assert!(body.contains("nvmp_target_port_up{port=\"2\"} 1"), "{body}");
    t.set_ana(2, 1, nvmp_wire::log::AnaState::INACCESSIBLE)
        .unwrap();
    let body = scrape().await;
    assert!(
        body.contains("nvmp_target_ana_state{port=\"2\",group=\"1\",state=\"inaccessible\"} 1"),
        "{body}"
    );
    assert!(
        body.contains(&format!("nvmp_target_controllers{{subsystem=\"{SUB}\"}} 1")),
        "{body}"
    );
    srv.abort();
    t.shutdown().await;
}
