//! `nvmp list-subsys`: connect the paths through the multipath layer and
//! show subsystems, paths and ANA states (nvme-cli's shape, plus nvmp's
//! per-path counters). Also the renderer `nvmp status` uses.

use anyhow::Result;
use clap::Args;
use nvmp_mpath::stats::SubsysSnapshot;
use serde_json::{json, Value};

use crate::output::OutputFormat;
use crate::paths::PathArgs;

#[derive(Debug, Args)]
pub struct ListSubsysArgs {
    #[command(flatten)]
    pub paths: PathArgs,
    /// I/O policy of the subsystem (numa, round-robin, queue-depth, service-time).
    #[arg(long = "iopolicy")]
    pub iopolicy: Option<nvmp_mpath::IoPolicy>,
    /// Output format.
    #[arg(short = 'o', long = "output-format", value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// "127.0.0.1:4420" → "traddr=127.0.0.1,trsvcid=4420" (nvme-cli's Address).
pub fn nvme_address(a: &str) -> String {
    match a.rsplit_once(':') {
        Some((h, p)) => format!(
            "traddr={},trsvcid={p}",
            h.trim_start_matches('[').trim_end_matches(']')
        ),
        None => format!("traddr={a}"),
    }
}

/// A path's latency per size class, µs (0: not measured), by class name.
fn latency_classes(p: &nvmp_mpath::stats::PathSnapshot) -> Value {
    let m: serde_json::Map<String, Value> = nvmp_mpath::latency::CLASS_NAMES
        .iter()
        .zip(p.latency_class_us)
        .map(|(n, v)| (n.to_string(), v.into()))
        .collect();
    Value::Object(m)
}

/// nvme-cli's `list-subsys -o json` for one host, with nvmp's counters
/// (latency: the decaying average the service-time policy measures, µs;
/// 0 when not measured).
pub fn to_json(hostnqn: &str, hostid: &str, subs: &[SubsysSnapshot]) -> Value {
    let subsystems: Vec<Value> = subs
        .iter()
        .map(|s| {
            let paths: Vec<Value> = s
                .controllers
                .iter()
                .map(|c| {
                    let mine: Vec<_> = s.heads.iter().flat_map(|h| h.paths.iter()).filter(|p| p.controller == c.name).collect();
                    let ana = mine.first().map_or("none".to_string(), |p| p.ana_state.clone());
                    let sum = |f: fn(&nvmp_mpath::stats::PathSnapshot) -> u64| mine.iter().map(|p| f(p)).sum::<u64>();
                    json!({
                        "Name": c.name,
                        "Transport": c.transport,
                        "Address": nvme_address(&c.address),
                        "State": c.state,
                        "ANAState": ana,
                        "ANAGroup": mine.first().map(|p| p.ana_group),
                        "CNTLID": c.cntlid,
                        "Current": mine.iter().any(|p| p.current),
                        "Outstanding": mine.first().map_or(0, |p| p.outstanding),
                        "IOs": sum(|p| p.ios),
                        "Bytes": sum(|p| p.bytes),
                        "Errors": sum(|p| p.errors),
                        "Failovers": sum(|p| p.failovers),
                        "LatencyUs": mine.first().map_or(0, |p| p.latency_us),
                    })
                })
                .collect();
            let namespaces: Vec<Value> = s
                .heads
                .iter()
                .map(|h| {
                    json!({
                        "Name": h.name,
                        "NSID": h.nsid,
                        "BlockSize": h.block_size,
                        "CapacityBlocks": h.capacity_blocks,
                        "NGUID": h.nguid,
                        "UUID": h.uuid,
                        "Requeued": h.requeued,
                        "Failovers": h.failovers,
                        "Errors": h.errors,
                        "Waiting": h.waiting,
                        "NoPathWaitMs": h.no_path_wait_ms,
                        "LongestWaitMs": h.longest_wait_ms,
                        "Paths": h.paths.iter().map(|p| json!({
                            "Name": p.name, "Controller": p.controller, "ANAState": p.ana_state,
                            "ANAGroup": p.ana_group, "ANAPending": p.ana_pending, "Current": p.current,
                            "State": p.ctrl_state, "Outstanding": p.outstanding, "IOs": p.ios,
                            "Bytes": p.bytes, "Errors": p.errors, "Failovers": p.failovers,
                            "LatencyUs": p.latency_us, "LatencyClassUs": latency_classes(p),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({ "Name": s.name, "NQN": s.nqn, "IOPolicy": s.iopolicy, "Paths": paths, "Namespaces": namespaces })
        })
        .collect();
    json!([{ "HostNQN": hostnqn, "HostID": hostid, "Subsystems": subsystems }])
}

/// nvme-cli's human list-subsys, with counters.
pub fn to_text(hostnqn: &str, subs: &[SubsysSnapshot]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for sub in subs {
        let _ = writeln!(s, "{} - NQN={}", sub.name, sub.nqn);
        let _ = writeln!(s, "{:w$}hostnqn={hostnqn}", "", w = sub.name.len() + 3);
        let _ = writeln!(
            s,
            "{:w$}iopolicy={}",
            "",
            sub.iopolicy,
            w = sub.name.len() + 3
        );
        let _ = writeln!(s, "\\");
        for c in &sub.controllers {
            let mine: Vec<_> = sub
                .heads
                .iter()
                .flat_map(|h| h.paths.iter())
                .filter(|p| p.controller == c.name)
                .collect();
            let ana = mine
                .first()
                .map_or("-".to_string(), |p| p.ana_state.clone());
            let ios: u64 = mine.iter().map(|p| p.ios).sum();
            let errs: u64 = mine.iter().map(|p| p.errors).sum();
            let fo: u64 = mine.iter().map(|p| p.failovers).sum();
            let cur = if mine.iter().any(|p| p.current) {
                " (current)"
            } else {
                ""
            };
            let lat = match mine.first().map_or(0, |p| p.latency_us) {
                0 => String::new(),
                us => format!(" latency={us}us"),
            };
            let _ = writeln!(
                s,
                " +- {} {} {} {} {}{cur}  ios={ios} errors={errs} failovers={fo}{lat}",
                c.name,
                c.transport,
                nvme_address(&c.address),
                c.state,
                ana
            );
        }
        for h in &sub.heads {
            let _ = writeln!(
                s,
                "    {} nsid={} {} blocks of {} B, requeued={} failovers={} errors={} longest no-path wait={} ms",
                h.name, h.nsid, h.capacity_blocks, h.block_size, h.requeued, h.failovers, h.errors, h.longest_wait_ms
            );
        }
    }
    s
}

pub async fn run(a: ListSubsysArgs) -> Result<()> {
    let (mp, conn) = crate::connect::multipath(&a.paths, Default::default()).await?;
    if let Some(p) = a.iopolicy {
        for s in mp.subsystems() {
            s.set_iopolicy(p);
        }
    }
    let snap = mp.snapshot();
    if a.output.is_json() {
        crate::output::print_json(&to_json(
            &conn.host.hostnqn,
            &conn.host.hostid_string(),
            &snap,
        ))?;
    } else {
        print!("{}", to_text(&conn.host.hostnqn, &snap));
    }
    mp.shutdown().await;
    Ok(())
}
