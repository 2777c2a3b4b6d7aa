//! libnvme's `config.json` (what `nvme config --dump` and `nvme connect-all
//! --config` use): an array of hosts, each with subsystems, each with ports
//! whose keys are `nvme connect`'s option names.
//!
//! ```json
//! [{"hostnqn": "nqn…", "hostid": "…",
//!   "subsystems": [{"nqn": "nqn…",
//!     "ports": [{"transport": "tcp", "traddr": "127.0.0.1", "trsvcid": "4420",
//!                "keep_alive_tmo": 5, "reconnect_delay": 1, "ctrl_loss_tmo": 600,
//!                "nr_io_queues": 2, "queue_size": 128, "hdr_digest": false}]}]}]
//! ```

use serde::Deserialize;
use serde_json::Value;

use crate::paths::{ConnectTuning, PortalSpec};

#[derive(Debug, Deserialize)]
struct Host {
    hostnqn: Option<String>,
    hostid: Option<String>,
    /// The host's DH-HMAC-CHAP key, for ports that name none.
    dhchap_key: Option<String>,
    #[serde(default)]
    subsystems: Vec<Subsys>,
}

#[derive(Debug, Deserialize)]
struct Subsys {
    nqn: String,
    #[serde(default)]
    ports: Vec<serde_json::Map<String, Value>>,
}

/// One host's paths from a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigHost {
    pub hostnqn: Option<String>,
    pub hostid: Option<String>,
    pub portals: Vec<PortalSpec>,
}

fn num(v: &Value, key: &str) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("{key}: not an integer")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{key}: {s:?} is not an integer")),
        _ => Err(format!("{key}: expected a number")),
    }
}

fn boolean(v: &Value, key: &str) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => Ok(n.as_i64() != Some(0)),
        Value::String(s) => match s.as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("{key}: {s:?} is not a boolean")),
        },
        _ => Err(format!("{key}: expected a boolean")),
    }
}

fn port(subnqn: &str, p: &serde_json::Map<String, Value>) -> Result<Option<PortalSpec>, String> {
    let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
    let transport = s("transport").unwrap_or_else(|| "tcp".into());
    if transport != "tcp" {
        // Only TCP is implemented: other transports in a shared config are skipped.
        tracing::warn!(
            subnqn,
            transport,
            "skipping port with an unsupported transport"
        );
        return Ok(None);
    }
    let traddr = s("traddr").ok_or("port without traddr")?;
    let trsvcid = match p.get("trsvcid") {
        None => 4420,
        Some(v) => {
            let n = num(v, "trsvcid")?;
            u16::try_from(n).map_err(|_| format!("trsvcid: {n} is not a TCP port"))?
        }
    };
    let mut t = ConnectTuning::default();
    for (k, v) in p {
        let ctx = |e: String| format!("subsystem {subnqn}, port {traddr}:{trsvcid}: {e}");
        match k.as_str() {
            "keep_alive_tmo" => t.keep_alive_tmo = Some(num(v, k).map_err(ctx)?.max(0) as u32),
            "reconnect_delay" => t.reconnect_delay = Some(num(v, k).map_err(ctx)?.max(1) as u64),
            "ctrl_loss_tmo" => t.ctrl_loss_tmo = Some(num(v, k).map_err(ctx)?),
            "fast_io_fail_tmo" => t.fast_io_fail_tmo = Some(num(v, k).map_err(ctx)?),
            "nr_io_queues" => t.nr_io_queues = Some(num(v, k).map_err(ctx)?.clamp(1, 256) as u16),
            "queue_size" => t.queue_size = Some(num(v, k).map_err(ctx)?.clamp(0, 65535) as u16),
            "hdr_digest" => t.hdr_digest = Some(boolean(v, k).map_err(ctx)?),
            "data_digest" => t.data_digest = Some(boolean(v, k).map_err(ctx)?),
            "dhchap_key" => t.dhchap.secret = v.as_str().map(str::to_string),
            "dhchap_ctrl_key" => t.dhchap.ctrl_secret = v.as_str().map(str::to_string),
            _ => {}
        }
    }
    Ok(Some(PortalSpec {
        traddr,
        trsvcid,
        subnqn: subnqn.to_string(),
        tuning: t,
    }))
}

/// Parse libnvme's config.json text.
pub fn parse(text: &str) -> Result<Vec<ConfigHost>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let hosts = match v {
        Value::Array(a) => a,
        Value::Object(mut o) => match o.remove("hosts") {
            Some(Value::Array(a)) => a,
            _ => return Err("expected an array of hosts (libnvme config.json)".into()),
        },
        _ => return Err("expected an array of hosts (libnvme config.json)".into()),
    };
    let mut out = Vec::new();
    for (i, h) in hosts.into_iter().enumerate() {
        let h: Host = serde_json::from_value(h).map_err(|e| format!("host {i}: {e}"))?;
        let mut portals = Vec::new();
        for s in &h.subsystems {
            for p in &s.ports {
                if let Some(mut spec) = port(&s.nqn, p)? {
                    if spec.tuning.dhchap.secret.is_none() {
                        spec.tuning.dhchap.secret = h.dhchap_key.clone();
                    }
                    spec.tuning
                        .dhchap
                        .secrets()
                        .map_err(|e| format!("subsystem {}: {e}", s.nqn))?;
                    portals.push(spec);
                }
            }
        }
        out.push(ConfigHost {
            hostnqn: h.hostnqn,
            hostid: h.hostid,
            portals,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libnvme_shape() {
        let text = r#"[{"hostnqn":"nqn.2014-08.org.nvmexpress:uuid:4c504853-0000-4000-8000-000000000001",
          "hostid":"4c504853-0000-4000-8000-000000000001",
          "subsystems":[{"nqn":"nqn.2024-01.io.nvmp:s1","ports":[
             {"transport":"tcp","traddr":"127.0.0.1","trsvcid":"4420","reconnect_delay":1,"ctrl_loss_tmo":-1,"hdr_digest":true},
             {"transport":"tcp","traddr":"127.0.0.1","trsvcid":4421,"nr_io_queues":"2"},
             {"transport":"rdma","traddr":"10.0.0.1","trsvcid":"4420"}]}]}]"#;
        let h = parse(text).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].portals.len(), 2);
        let p = &h[0].portals[0];
        assert_eq!((p.traddr.as_str(), p.trsvcid), ("127.0.0.1", 4420));
        assert_eq!(p.tuning.reconnect_delay, Some(1));
        assert_eq!(p.tuning.ctrl_loss_tmo, Some(-1));
        assert_eq!(p.tuning.hdr_digest, Some(true));
        assert_eq!(h[0].portals[1].tuning.nr_io_queues, Some(2));
        assert_eq!(h[0].portals[1].subnqn, "nqn.2024-01.io.nvmp:s1");
    }

    #[test]
    fn errors_name_the_field() {
        assert!(parse("{").unwrap_err().contains("invalid JSON"));
        assert!(parse("3").unwrap_err().contains("array of hosts"));
        let e = parse(r#"[{"subsystems":[{"nqn":"n","ports":[{"traddr":"a","trsvcid":"x"}]}]}]"#)
            .unwrap_err();
        assert!(e.contains("trsvcid"), "{e}");
        let e = parse(
            r#"[{"subsystems":[{"nqn":"n","ports":[{"traddr":"a","keep_alive_tmo":"z"}]}]}]"#,
        )
        .unwrap_err();
        assert!(e.contains("keep_alive_tmo"), "{e}");
    }
}
