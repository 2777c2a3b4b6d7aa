//! The server against real NBD clients: qemu-io / qemu-img (qemu-utils),
//! nbdinfo / nbdcopy (libnbd-bin) and fio's nbd engine (fio). A missing
//! binary fails the test with the package to install.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use nvmp_nbd::{ExportConfig, MemDevice};

const MIB: u64 = 1 << 20;

#[test]
fn qemu_io_pattern_over_tcp_and_unix() {
    let s = TestServer::start(MemDevice::new(4 * MIB, 512));
    qemu_io(&s.uri(), &["write -P 0xaa 0 1M", "read -P 0xaa 0 1M"]);
    // Same data through the Unix socket, plus FUA and unaligned writes.
    qemu_io(
        &s.unix_uri(),
        &[
            "read -P 0xaa 0 1M",
            "write -f -P 0x5c 1M 64k",
            "write -P 0x33 2049 1000",
            "flush",
        ],
    );
    qemu_io(
        &s.uri(),
        &[
            "read -P 0x5c 1M 64k",
            "read -P 0x33 2049 1000",
            "read -P 0xaa 0 2049",
        ],
    );
    let snap = s.dev.snapshot();
    assert!(snap[..2049].iter().all(|&b| b == 0xaa));
    assert!(snap[2049..3049].iter().all(|&b| b == 0x33));
    assert!(snap[3049..MIB as usize].iter().all(|&b| b == 0xaa));
    let st = s.server.stats();
    assert!(st.writes >= 3 && st.reads >= 5 && st.flushes >= 1, "{st:?}");
    assert_eq!(st.errors, 0);
    // qemu honours the advertised 512-byte minimum block size: it does the
    // read-modify-write of 2049..3049 itself and sends 2048..3072.
    assert_eq!(st.bytes_written, MIB + 65536 + 1024, "{st:?}");
}

#[test]
fn qemu_io_reports_server_errors() {
    let s = TestServer::start(MemDevice::new(MIB, 512));
    s.dev.inject_error(Some(nvmp_nbd::IoErrorKind::Io));
    require("qemu-io", "qemu-utils");
    let out = run(
        Command::new("qemu-io").args(["-f", "raw", &s.uri(), "-c", "read 0 4k"]),
        Duration::from_secs(30),
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Input/output error"), "{text}");
    s.dev.inject_error(None);
    qemu_io(&s.uri(), &["read 0 4k"]);
    assert!(s.server.stats().errors >= 1);
}

#[test]
fn nbdinfo_json_size_and_block_sizes() {
    require("nbdinfo", "libnbd-bin");
    let s = TestServer::start(MemDevice::new(3 * MIB, 4096));
    for uri in [s.uri(), s.unix_uri()] {
        let out = run_ok(Command::new("nbdinfo").args(["--json", &uri]));
        let v: serde_json::Value = serde_json::from_str(&out).expect("nbdinfo JSON");
        assert_eq!(v["protocol"], "newstyle-fixed");
        assert_eq!(v["structured"], true);
        let e = &v["exports"][0];
        assert_eq!(e["export-name"], NAME);
        assert_eq!(e["description"], "nvmp test export");
        assert_eq!(e["export-size"], 3 * MIB);
        assert_eq!(e["block_size_minimum"], 4096);
        assert_eq!(e["block_size_preferred"], 4096);
        assert_eq!(e["block_size_maximum"], 32 * MIB);
        for flag in [
            "can_flush",
            "can_fua",
            "can_trim",
            "can_zero",
            "can_multi_conn",
            "can_df",
        ] {
            assert_eq!(e[flag], true, "{flag}");
        }
        assert_eq!(e["is_read_only"], false);
    }
    let out = run_ok(Command::new("nbdinfo").args(["--list", "--json", &s.uri()]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("nbdinfo --list JSON");
    assert_eq!(v["exports"].as_array().map(Vec::len), Some(1));

    let mut cfg = ExportConfig::new(NAME);
    cfg.read_only = true;
    let ro = TestServer::start_with(MemDevice::new(MIB, 512), cfg);
    let out = run_ok(Command::new("nbdinfo").args(["--json", &ro.uri()]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("nbdinfo JSON");
    assert_eq!(v["exports"][0]["is_read_only"], true);
    assert_eq!(v["exports"][0]["can_trim"], false);
}

#[test]
fn nbdcopy_round_trip_and_qemu_img_compare() {
    require("nbdcopy", "libnbd-bin");
    require("qemu-img", "qemu-utils");
    // Small device transfers so that big client requests are split.
    let s = TestServer::start(MemDevice::new(4 * MIB, 512).with_max_transfer(64 * 1024));
    let data = random_bytes(4 * MIB as usize, 0xfeed);
    let src = s.path("src.img");
    let back = s.path("back.img");
    write_file(&src, &data);
    run_ok(Command::new("nbdcopy").args([src.to_str().unwrap(), &s.uri()]));
    assert!(
        s.dev.snapshot() == data,
        "device differs from the source file"
    );
    assert!(s.dev.max_len_seen() <= 64 * 1024);
    run_ok(Command::new("nbdcopy").args([&s.unix_uri(), back.to_str().unwrap()]));
    let got = std::fs::read(&back).expect("read back");
    assert!(got == data, "nbdcopy round trip differs");
    // Several connections at once (the export says CAN_MULTI_CONN).
    let data2 = random_bytes(4 * MIB as usize, 0xbeef);
    write_file(&src, &data2);
    run_ok(Command::new("nbdcopy").args(["--connections=4", src.to_str().unwrap(), &s.uri()]));
    run_ok(Command::new("qemu-img").args([
        "compare",
        "-f",
        "raw",
        "-F",
        "raw",
        src.to_str().unwrap(),
        &s.uri(),
    ]));
    write_file(&src, &data);
    let out = run(
        Command::new("qemu-img").args([
            "compare",
            "-q",
            "-f",
            "raw",
            "-F",
            "raw",
            src.to_str().unwrap(),
            &s.uri(),
        ]),
        Duration::from_secs(30),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "qemu-img compare must see the difference"
    );
}

#[test]
fn trim_and_write_zeroes_with_qemu_io() {
    let s = TestServer::start(MemDevice::new(2 * MIB, 4096));
    qemu_io(
        &s.uri(),
        &[
            "write -P 0x11 0 1M",
            "discard 0 256k",
            "write -z 256k 256k",
            "write -z -u 512k 128k",
            "read -P 0 256k 384k",
            "read -P 0x11 640k 384k",
        ],
    );
    let st = s.server.stats();
    assert!(st.trims >= 1 && st.write_zeroes >= 2, "{st:?}");
    // MemDevice trims to zeroes.
    assert!(s.dev.snapshot()[..256 * 1024].iter().all(|&b| b == 0));
}

#[test]
fn fio_nbd_engine_randwrite_verify() {
    require("fio", "fio");
    let engines = run_ok(Command::new("fio").arg("--enghelp"));
    assert!(
        engines.lines().any(|l| l.trim() == "nbd"),
        "this fio has no nbd engine:\n{engines}"
    );
    let s = TestServer::start(MemDevice::new(8 * MIB, 512).with_max_transfer(128 * 1024));
    let out = run_ok(Command::new("fio").args([
        "--name=nbdverify",
        "--ioengine=nbd",
        &format!("--uri={}", s.uri()),
        "--rw=randwrite",
        "--bsrange=4k-256k",
        "--size=4M",
        "--iodepth=16",
        "--verify=crc32c",
        "--do_verify=1",
        "--verify_fatal=1",
        "--verify_state_save=0",
        "--output-format=json",
    ]));
    let json = &out[out.find('{').expect("fio JSON")..];
    let v: serde_json::Value = serde_json::from_str(json).expect("fio JSON");
    let job = &v["jobs"][0];
    assert_eq!(job["error"], 0, "{out}");
    assert!(
        job["write"]["io_bytes"].as_u64().unwrap_or(0) >= 4 * MIB,
        "{out}"
    );
    assert!(
        job["read"]["io_bytes"].as_u64().unwrap_or(0) >= 4 * MIB,
        "verify read nothing: {out}"
    );
    assert_eq!(s.server.stats().errors, 0);
}

#[test]
fn concurrent_qemu_io_clients() {
    let s = TestServer::start(MemDevice::new(4 * MIB, 512));
    let uris = [s.uri(), s.unix_uri()];
    std::thread::scope(|sc| {
        for i in 0..4u64 {
            let uri = uris[i as usize % 2].clone();
            sc.spawn(move || {
                let off = i * MIB;
                let p = format!("0x{:02x}", 0x10 + i);
                let w = format!("write -P {p} {off} 1M");
                let r = format!("read -P {p} {off} 1M");
                qemu_io(&uri, &[&w, &r, &r]);
            });
        }
    });
    let snap = s.dev.snapshot();
    for i in 0..4usize {
        let chunk = &snap[i * MIB as usize..(i + 1) * MIB as usize];
        assert!(chunk.iter().all(|&b| b == 0x10 + i as u8), "region {i}");
    }
    let st = s.server.stats();
    assert!(
        st.connections_total >= 4 && st.protocol_errors == 0,
        "{st:?}"
    );
}

#[test]
fn structured_replies_off_simple_replies_with_libnbd_and_qemu() {
    require("nbdinfo", "libnbd-bin");
    require("fio", "fio");
    let mut cfg = ExportConfig::new(NAME);
    cfg.structured_replies = false;
    let s = TestServer::start_with(
        MemDevice::new(4 * MIB, 512).with_max_transfer(64 * 1024),
        cfg,
    );
    let out = run_ok(Command::new("nbdinfo").args(["--json", &s.uri()]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("nbdinfo JSON");
    assert_eq!(v["structured"], false, "{out}");
    assert_eq!(v["exports"][0]["can_df"], false, "{out}");
    // qemu-io: data (split by the transfer limit, sent as one simple
    // reply) and an error reply both arrive intact.
    qemu_io(&s.unix_uri(), &["write -P 0x6b 0 1M", "read -P 0x6b 0 1M"]);
    s.dev.inject_error(Some(nvmp_nbd::IoErrorKind::Io));
    let o = run(
        Command::new("qemu-io").args(["-f", "raw", &s.uri(), "-c", "read 0 4k"]),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(text.contains("Input/output error"), "{text}");
    s.dev.inject_error(None);
    // libnbd pipelining simple replies: fio's nbd engine, verified.
    let out = run_ok(Command::new("fio").args([
        "--name=simple",
        "--ioengine=nbd",
        &format!("--uri={}", s.uri()),
        "--rw=randwrite",
        "--bs=4k",
        "--size=2M",
        "--iodepth=16",
        "--verify=crc32c",
        "--do_verify=1",
        "--verify_fatal=1",
        "--verify_state_save=0",
        "--output-format=json",
    ]));
    let v: serde_json::Value =
        serde_json::from_str(&out[out.find('{').expect("fio JSON")..]).expect("fio JSON");
    assert_eq!(v["jobs"][0]["error"], 0, "{out}");
    let read = v["jobs"][0]["read"]["io_bytes"].as_u64().unwrap_or(0);
    assert!(read >= 2 * MIB, "verify read {read} bytes: {out}");
}
