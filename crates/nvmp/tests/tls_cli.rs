//! TLS from the command line: keys nvmp writes pass nvme-cli's
//! `check-tls-key` and keys nvme-cli generates load in nvmp; libnvme's
//! identity vector; `--tls_key`, `--keyring`, `--tls_key_identity` on a
//! connecting command; discovery's TREQ honoured (a TLS-required port is
//! connected with TLS from a key file, a plain one without).

mod common;

use std::process::Command;

use common::*;
use nvmp_target::config::TargetConfig;
use nvmp_target::control::TargetHandle;

const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:7e570000-0000-4000-8000-00000000c11c";
const SECRET: &str = "5512DBB6737D0106F65975B773DFB011FFC344BCF442E2DD6D8BC4870B5D5B03";
const VECTOR_KEY: &str = "NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:";

/// `nvme check-tls-key` with the key: `-k` up to nvme-cli 2.x, `--keydata`
/// from 3.0 (where `-k` names a keyring).
fn nvme_check(key: &str) -> std::process::Output {
    let v = nvme(&["version"]);
    let old = String::from_utf8_lossy(&v.stdout).contains("nvme version 2.");
    if old {
        nvme(&["check-tls-key", "-k", key])
    } else {
        nvme(&["check-tls-key", "--keydata", key])
    }
}

fn nvme(args: &[&str]) -> std::process::Output {
    Command::new("nvme")
        .args(args)
        .output()
        .expect("nvme-cli is needed (scripts/test installs it)")
}

#[test]
fn keys_interoperate_with_nvme_cli() {
    for (m, len) in [("1", "32"), ("2", "48")] {
        // nvmp -> nvme-cli
        let o = run(&s(&["gen-tls-key", "-m", m]));
        assert_ok(&o);
        let key = stdout(&o).trim().to_string();
        assert!(key.starts_with(&format!("NVMeTLSkey-1:0{m}:")), "{key}");
        let c = nvme_check(&key);
        let out = String::from_utf8_lossy(&c.stdout);
        assert!(c.status.success(), "nvme check-tls-key: {out}");
        assert!(
            out.contains(&format!("Key is valid (HMAC {m}, length {len}")),
            "{out}"
        );
        // nvme-cli -> nvmp
        let g = nvme(&["gen-tls-key", "-m", m]);
        assert!(g.status.success());
        let theirs = String::from_utf8_lossy(&g.stdout).trim().to_string();
        let o = run(&s(&["check-tls-key", "-d", &theirs]));
        assert_ok(&o);
        assert_eq!(
            stdout(&o).trim(),
            format!("Key is valid (HMAC {m}, length {len})")
        );
    }
    // A corrupted key: nvme-cli and nvmp both refuse it.
    let bad = VECTOR_KEY.replace("LrZ:", "Lra:");
    assert!(!nvme_check(&bad).status.success());
    assert_clean_failure(&run(&s(&["check-tls-key", "-d", &bad])), "CRC mismatch");
    // libnvme's vector: secret -> key -> identity (version 1).
    let o = run(&s(&["gen-tls-key", "-s", SECRET]));
    assert_eq!(stdout(&o).trim(), VECTOR_KEY);
    let o = run(&s(&[
        "check-tls-key",
        "-d",
        VECTOR_KEY,
        "-n",
        "nqn.psk-test-host",
        "-c",
        "nqn.psk-test-subsys",
        "-I",
        "1",
    ]));
    assert_ok(&o);
    assert!(stdout(&o).contains(
        "NVMe1R01 nqn.psk-test-host nqn.psk-test-subsys iSbjiStwJ/1TrTvDlt2fjFmzvsytOJelidNnA+X5lEU="
    ));
}

struct TlsTarget {
    rt: tokio::runtime::Runtime,
    handle: TargetHandle,
    tls_port: std::net::SocketAddr,
    plain_port: std::net::SocketAddr,
}

impl Drop for TlsTarget {
    fn drop(&mut self) {
        let h = self.handle.clone();
        self.rt.block_on(async move { h.shutdown().await });
    }
}

/// Port 1: TLS required; port 2: plain. The host's configured PSK is
/// libnvme's vector key.
fn tls_target() -> TlsTarget {
    let port = |id: u16, extra: serde_json::Value| {
        let mut addr = serde_json::json!({"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "0", "treq": "not specified"});
        for (k, v) in extra.as_object().unwrap() {
            addr[k] = v.clone();
        }
        serde_json::json!({"portid": id, "addr": addr, "referrals": [], "subsystems": [NQN]})
    };
    let cfg = serde_json::json!({
        "hosts": [{"nqn": HOST, "psk": VECTOR_KEY}],
        "ports": [port(1, serde_json::json!({"treq": "required", "tsas": "tls1.3"})), port(2, serde_json::json!({}))],
        "subsystems": [{"nqn": NQN, "attr": {"allow_any_host": "1", "serial": "nvmptls01", "model": "nvmp tls"},
            "allowed_hosts": [],
            "namespaces": [{"nsid": 1, "enable": 1, "ana_grpid": 1, "device": {"size": "8M"}}]}],
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt
        .block_on(TargetHandle::start(
            TargetConfig::from_json(&cfg.to_string()).unwrap(),
        ))
        .unwrap();
    TlsTarget {
        tls_port: handle.local_addr(1).unwrap(),
        plain_port: handle.local_addr(2).unwrap(),
        handle,
        rt,
    }
}

#[test]
fn connecting_commands_take_tls_options() {
    let t = tls_target();
    let tls = t.tls_port.to_string();
    let id = |extra: &[&str]| {
        let mut a = s(&[
            "id-ctrl", "-o", "json", "--portal", &tls, "-n", NQN, "-q", HOST,
        ]);
        a.extend(s(extra));
        run(&a)
    };
    // --tls_key: a configured PSK (identity version 1, as nvme-cli).
    let o = id(&["--tls", "--tls_key", VECTOR_KEY]);
    assert_ok(&o);
    assert!(stdout(&o).contains("nvmptls01"));
    // Plain TCP on the TLS port: refused.
    assert_clean_failure(&id(&[]), "if the port requires TLS");
    // A wrong key: refused, and the reason says so.
    let other = stdout(&run(&s(&["gen-tls-key"]))).trim().to_string();
    assert_clean_failure(&id(&["--tls_key", &other]), "wrong key");
    // --tls without a key.
    assert_clean_failure(&id(&["--tls"]), "--tls needs a key");
    // A key file made by gen-tls-key --insert (the derived TLS PSK under a
    // version 0 identity), used with --keyring, then named explicitly.
    let dir = tempfile::tempdir().unwrap();
    let kf = dir.path().join("keys");
    let kfs = kf.to_str().unwrap();
    let o = run(&s(&[
        "gen-tls-key",
        "-s",
        SECRET,
        "-n",
        HOST,
        "-c",
        NQN,
        "-I",
        "0",
        "-i",
        "-f",
        kfs,
    ]));
    assert_ok(&o);
    let ident = format!("NVMe0R01 {HOST} {NQN}");
    assert_ok(&id(&["--tls", "--keyring", kfs]));
    assert_ok(&id(&[
        "--tls",
        "--keyring",
        kfs,
        "--tls_key_identity",
        &ident,
    ]));
    let o = run(&s(&[
        "check-tls-key",
        "-d",
        VECTOR_KEY,
        "-n",
        HOST,
        "-c",
        NQN,
        "-k",
        kfs,
    ]));
    assert!(stdout(&o).contains("Key is loaded"), "{}", stdout(&o));
    // Discovery (plain port): the TLS-required port is connected with TLS
    // from the key file, the plain one without.
    let o = run(&s(&[
        "list-subsys",
        "-o",
        "json",
        "--discover",
        &t.plain_port.to_string(),
        "-n",
        NQN,
        "-q",
        HOST,
        "--keyring",
        kfs,
    ]));
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains(&t.tls_port.port().to_string()), "{out}");
    assert!(out.contains(&t.plain_port.port().to_string()), "{out}");
    // Without a key: the TLS port is left out with a warning naming TREQ.
    let o = run(&s(&[
        "list-subsys",
        "--discover",
        &t.plain_port.to_string(),
        "-n",
        NQN,
        "-q",
        HOST,
    ]));
    assert_ok(&o);
    assert!(stderr(&o).contains("requires TLS"), "{}", stderr(&o));
    // Every connecting command has the options, nbd included.
    for cmd in ["nbd", "bench", "discover", "list-subsys", "id-ns"] {
        let o = run(&s(&[cmd, "--help"]));
        let h = stdout(&o);
        for f in ["--tls", "--tls_key", "--keyring", "--tls_key_identity"] {
            assert!(h.contains(f), "{cmd} --help lacks {f}");
        }
    }
}
