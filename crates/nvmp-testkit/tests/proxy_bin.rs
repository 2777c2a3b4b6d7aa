//! The `nvmp-proxy` binary as benchmarks use it: routes from the command
//! line, commands on stdin, counters back on stdout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn proxies_a_route_and_takes_commands_on_stdin() {
    // Upstream: echo one connection.
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = up.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let (mut s, _) = up.accept().unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => s.write_all(&buf[..n]).unwrap(),
            }
        }
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_nvmp-proxy"))
        .args([
            "--route",
            &format!("127.0.0.1:0={up_addr}"),
            "--cmd",
            "rate all both 10MiB",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    // "route 0: 127.0.0.1:PORT -> UPSTREAM"
    let listen = line
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    assert!(line.ends_with(&format!("-> {up_addr}\n")), "{line:?}");
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");

    let mut c = TcpStream::connect(&listen).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(b"hello through the proxy").unwrap();
    let mut got = [0u8; 23];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello through the proxy");

    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "delay 0 1ms").unwrap();
    writeln!(stdin, "stats").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(
        line, "route 0: to-target 23 B, to-host 23 B, connections 1\n",
        "{line:?}"
    );
    drop(c);
    child.kill().unwrap();
    let _ = child.wait();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("] rate all both 10MiB") && err.contains("] delay 0 1ms"),
        "{err}"
    );
    echo.join().unwrap();
}
