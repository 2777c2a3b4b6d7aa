//! DH-HMAC-CHAP from the command line: `gen-dhchap-key` prints what
//! nvme-cli prints for the same inputs, keys pass both tools'
//! `check-dhchap-key`; `--dhchap-secret`/`--dhchap-ctrl-secret` on a
//! connecting command and in libnvme's config.json; refusals name the reason.

mod common;

use std::process::Command;

use common::*;
use nvmp_target::config::TargetConfig;
use nvmp_target::control::TargetHandle;

const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:7e570000-0000-4000-8000-00000000d4c4";
const NQN: &str = "nqn.2026-12.io.nvmp:dhchap-cli";

fn nvme(args: &[&str]) -> std::process::Output {
    need("nvme", "nvme-cli");
    Command::new("nvme").args(args).output().unwrap()
}

fn line(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn keys_match_nvme_cli() {
    for (m, len) in [(0, 32), (0, 48), (0, 64), (1, 32), (2, 48), (3, 64)] {
        let secret: String = nvmp_auth::random_bytes(len)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (m, l) = (m.to_string(), len.to_string());
        let args = ["-s", &secret, "-m", &m, "-l", &l, "-n", HOST];
        let theirs = nvme(&[&["gen-dhchap-key"][..], &args].concat());
        assert!(theirs.status.success(), "{theirs:?}");
        let ours = run(&s(&[&["gen-dhchap-key"][..], &args].concat()));
        assert_ok(&ours);
        assert_eq!(line(&ours), line(&theirs), "-m {m} -l {l}");
        // Random keys of ours pass nvme-cli's check and the other way round.
        let k = line(&run(&s(&["gen-dhchap-key", "-m", &m, "-n", HOST])));
        let c = nvme(&["check-dhchap-key", "-k", &k]);
        assert!(c.status.success(), "{}", line(&c));
        let k = line(&nvme(&["gen-dhchap-key", "-m", &m, "-n", HOST]));
        let c = run(&s(&["check-dhchap-key", "-k", &k]));
        assert_ok(&c);
        assert!(
            line(&c).starts_with(&format!("Key is valid (HMAC {m}")),
            "{}",
            line(&c)
        );
    }
    let bad = "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaS:";
    assert!(!nvme(&["check-dhchap-key", "-k", bad]).status.success());
    assert_clean_failure(&run(&s(&["check-dhchap-key", "-k", bad])), "CRC mismatch");
    assert_clean_failure(
        &run(&s(&["gen-dhchap-key", "-m", "4"])),
        "Invalid HMAC identifier 4",
    );
}

struct Target {
    rt: tokio::runtime::Runtime,
    handle: TargetHandle,
}

impl Drop for Target {
    fn drop(&mut self) {
        let h = self.handle.clone();
        self.rt.block_on(async move { h.shutdown().await });
    }
}

fn target(key: &str, ctrl_key: &str) -> Target {
    let cfg = serde_json::json!({
        "hosts": [{"nqn": HOST, "dhchap": {"key": key, "ctrl_key": ctrl_key,
                   "hash": "hmac(sha384)", "dhgroup": "ffdhe3072"}}],
        "ports": [{"portid": 1, "addr": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1",
                   "trsvcid": "0", "treq": "not specified"}, "referrals": [], "subsystems": [NQN]}],
        "subsystems": [{"nqn": NQN, "attr": {"allow_any_host": "0", "serial": "nvmpauth01", "model": "nvmp auth"},
            "allowed_hosts": [HOST],
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
    Target { rt, handle }
}

#[test]
fn connecting_commands_take_dhchap_options() {
    let key = line(&run(&s(&["gen-dhchap-key", "-m", "2", "-n", HOST])));
    let ckey = line(&run(&s(&["gen-dhchap-key"])));
    let t = target(&key, &ckey);
    let portal = t.handle.local_addr(1).unwrap().to_string();
    let id = |extra: &[&str]| {
        let mut a = s(&[
            "id-ctrl", "-o", "json", "--portal", &portal, "-n", NQN, "-q", HOST,
        ]);
        a.extend(s(extra));
        run(&a)
    };
    let o = id(&["--dhchap-secret", &key, "--dhchap-ctrl-secret", &ckey]);
    assert_ok(&o);
    assert!(stdout(&o).contains("nvmpauth01"));
    let o = id(&["-S", &key]);
    assert_ok(&o);
    // Refusals say why, and never print a key.
    let other = line(&run(&s(&["gen-dhchap-key", "-m", "2", "-n", HOST])));
    let o = id(&["-S", &other]);
    assert_clean_failure(&o, "wrong key");
    assert!(!stderr(&o).contains(&other[10..30]));
    assert_clean_failure(&id(&["-S", &key, "-C", &other]), "wrong controller key");
    assert_clean_failure(&id(&[]), "no DH-HMAC-CHAP secret");
    assert_clean_failure(&id(&["-S", "DHHC-1:00:AAAA:"]), "--dhchap-secret");
    // Discovery takes the options too (the discovery controller does not ask).
    let o = run(&s(&[
        "discover",
        "-a",
        "127.0.0.1",
        "-s",
        portal.rsplit(':').next().unwrap(),
        "-q",
        HOST,
        "-S",
        &key,
    ]));
    assert_ok(&o);
    // libnvme config.json: the host's dhchap_key, a port's dhchap_ctrl_key.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    let (addr, port) = portal.rsplit_once(':').unwrap();
    std::fs::write(
        &cfg,
        serde_json::json!([{"hostnqn": HOST, "dhchap_key": key, "subsystems": [{"nqn": NQN, "ports": [
            {"transport": "tcp", "traddr": addr, "trsvcid": port, "dhchap_ctrl_key": ckey}]}]}])
        .to_string(),
    )
    .unwrap();
    let o = run(&s(&[
        "id-ctrl",
        "-o",
        "json",
        "--config",
        cfg.to_str().unwrap(),
    ]));
    assert_ok(&o);
    assert!(stdout(&o).contains("nvmpauth01"));

    // Keys change at runtime: `nvmp target dhchap` through the control socket.
    let sock = dir.path().join("ctl.sock");
    let (h, sp) = (t.handle.clone(), sock.clone());
    t.rt.spawn(async move {
        let _ = nvmp_target::control::socket::serve(h, &sp).await;
    });
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let ctl = sock.to_str().unwrap();
    let k2 = line(&run(&s(&["gen-dhchap-key", "-m", "3", "-n", HOST])));
    let set = |extra: &[&str]| {
        let mut a = s(&["target", "dhchap", "--control", ctl, "--host", HOST]);
        a.extend(s(extra));
        run(&a)
    };
    assert_ok(&set(&[
        "--key",
        &k2,
        "--hash",
        "hmac(sha512)",
        "--dhgroup",
        "ffdhe4096",
    ]));
    assert_clean_failure(&id(&["-S", &key]), "wrong key");
    assert_ok(&id(&["-S", &k2]));
    assert_clean_failure(&set(&["--key", "DHHC-1:00:AAAA:"]), "dhchap.key");
    assert_ok(&set(&["--remove"]));
    assert_ok(&id(&[]));
}
