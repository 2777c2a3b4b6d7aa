//! `nvmp demo --duration 10` runs to completion and reports zero data errors.

mod common;
use common::*;

#[test]
fn demo_ten_seconds_zero_data_errors() {
    let o = nvmp()
        .args(["demo", "--duration", "10"])
        .timeout(std::time::Duration::from_secs(90))
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "demo failed: {}\n{out}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
    let result = out
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in {out}"));
    let field = |k: &str| -> f64 {
        result
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing in {result}"))
            .parse()
            .unwrap()
    };
    assert_eq!(field("data_errors"), 0.0, "{out}");
    assert_eq!(field("io_errors"), 0.0, "{out}");
    assert!(field("ios") > 100.0, "{out}");
    // The schedule cut port 1 and port 2 and flipped ANA states: the events show it.
    assert!(
        out.contains("port 1 DOWN") && out.contains("port 1 up"),
        "{out}"
    );
    assert!(out.contains("ANA"), "{out}");
    assert!(
        out.contains("connecting -> live")
            || out.contains("resetting -> live")
            || out.contains("-> live"),
        "path came back: {out}"
    );
}

#[test]
fn demo_rejects_bad_arguments() {
    let o = nvmp().args(["demo", "--duration", "0"]).output().unwrap();
    assert_clean_failure(&o, "--duration");
    let o = nvmp().args(["demo", "--bs", "1000"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
}
