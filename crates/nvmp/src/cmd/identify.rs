//! `nvmp id-ctrl`, `nvmp id-ns`, `nvmp ana-log`: Identify data and the ANA
//! log with nvme-cli's field names, as text or JSON.

use anyhow::{anyhow, Result};
use clap::Args;
use nvmp_host::Controller;
use nvmp_wire::identify::{IdentifyController, IdentifyNamespace, NsIdDescriptor};
use nvmp_wire::log::AnaLog;
use serde_json::{json, Map, Value};

use crate::output::{hex, trim_id, OutputFormat};
use crate::paths::PathArgs;

#[derive(Debug, Args)]
pub struct IdArgs {
    #[command(flatten)]
    pub paths: PathArgs,
    /// Output format.
    #[arg(short = 'o', long = "output-format", value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct IdNsArgs {
    #[command(flatten)]
    pub paths: PathArgs,
    /// Namespace ID.
    #[arg(long = "nsid", alias = "namespace-id", default_value_t = 1)]
    pub nsid: u32,
    /// Output format.
    #[arg(short = 'o', long = "output-format", value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// A field as nvme-cli shows it: JSON value and text rendering.
enum F {
    U(u64),
    X(u64),
    S(String),
}

fn fields_ctrl(id: &IdentifyController) -> Vec<(&'static str, F)> {
    use F::*;
    let ieee = (id.ieee[2] as u64) << 16 | (id.ieee[1] as u64) << 8 | id.ieee[0] as u64;
    vec![
        ("vid", X(id.vid as u64)),
        ("ssvid", X(id.ssvid as u64)),
        ("sn", S(trim_id(&id.sn).to_string())),
        ("mn", S(trim_id(&id.mn).to_string())),
        ("fr", S(trim_id(&id.fr).to_string())),
        ("rab", U(id.rab as u64)),
        ("ieee", X(ieee)),
        ("cmic", X(id.cmic as u64)),
        ("mdts", U(id.mdts as u64)),
        ("cntlid", X(id.cntlid as u64)),
        ("ver", X(id.ver as u64)),
        ("rtd3r", X(id.rtd3r as u64)),
        ("rtd3e", X(id.rtd3e as u64)),
        ("oaes", X(id.oaes as u64)),
        ("ctratt", X(id.ctratt as u64)),
        ("cntrltype", U(id.cntrltype as u64)),
        ("crdt1", U(id.crdt[0] as u64)),
        ("crdt2", U(id.crdt[1] as u64)),
        ("crdt3", U(id.crdt[2] as u64)),
        ("ciu", U(id.ciu as u64)),
        ("cirn", X(id.cirn)),
        ("oacs", X(id.oacs as u64)),
        ("acl", U(id.acl as u64)),
        ("aerl", U(id.aerl as u64)),
        ("frmw", X(id.frmw as u64)),
        ("lpa", X(id.lpa as u64)),
        ("elpe", U(id.elpe as u64)),
        ("npss", U(id.npss as u64)),
        ("kas", U(id.kas as u64)),
        ("anatt", U(id.anatt as u64)),
        ("anacap", U(id.anacap as u64)),
        ("anagrpmax", U(id.anagrpmax as u64)),
        ("nanagrpid", U(id.nanagrpid as u64)),
        ("cqt", U(id.cqt as u64)),
        ("sqes", X(id.sqes as u64)),
        ("cqes", X(id.cqes as u64)),
        ("maxcmd", U(id.maxcmd as u64)),
        ("nn", U(id.nn as u64)),
        ("oncs", X(id.oncs as u64)),
        ("fuses", X(id.fuses as u64)),
        ("fna", X(id.fna as u64)),
        ("vwc", X(id.vwc as u64)),
        ("awun", U(id.awun as u64)),
        ("awupf", U(id.awupf as u64)),
        ("sgls", X(id.sgls as u64)),
        ("mnan", U(id.mnan as u64)),
        ("subnqn", S(trim_id(&id.subnqn).to_string())),
        ("ioccsz", U(id.ioccsz as u64)),
        ("iorcsz", U(id.iorcsz as u64)),
        ("icdoff", U(id.icdoff as u64)),
        ("fcatt", X(id.fcatt as u64)),
        ("msdbd", U(id.msdbd as u64)),
        ("ofcs", U(id.ofcs as u64)),
        ("ccrl", U(id.ccrl as u64)),
    ]
}

fn render(fields: Vec<(&'static str, F)>, json: bool, extra: Map<String, Value>) -> String {
    if json {
        let mut m = Map::new();
        for (k, v) in fields {
            m.insert(
                k.into(),
                match v {
                    F::U(n) | F::X(n) => json!(n),
                    F::S(s) => json!(s),
                },
            );
        }
        m.extend(extra);
        return serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_default();
    }
    let mut s = String::new();
    for (k, v) in fields {
        let val = match v {
            F::U(n) => n.to_string(),
            F::X(n) => format!("{n:#x}"),
            F::S(t) => t,
        };
        s.push_str(&format!("{k:<10}: {val}\n"));
    }
    s
}

pub fn id_ctrl_text(id: &IdentifyController, json: bool) -> String {
    render(fields_ctrl(id), json, Map::new())
}

pub fn id_ns_text(ns: &IdentifyNamespace, descs: &[NsIdDescriptor], json: bool) -> String {
    use F::*;
    let mut f = vec![
        ("nsze", X(ns.nsze)),
        ("ncap", X(ns.ncap)),
        ("nuse", X(ns.nuse)),
        ("nsfeat", X(ns.nsfeat as u64)),
        ("nlbaf", U(ns.nlbaf as u64)),
        ("flbas", X(ns.flbas as u64)),
        ("dlfeat", U(ns.dlfeat as u64)),
        ("nmic", X(ns.nmic as u64)),
        ("anagrpid", U(ns.anagrpid as u64)),
        ("nsattr", U(ns.nsattr as u64)),
        ("nguid", S(hex(&ns.nguid))),
        ("eui64", S(hex(&ns.eui64))),
    ];
    let mut uuid = None;
    for d in descs {
        if let NsIdDescriptor::Uuid(u) = d {
            let h = hex(u);
            uuid = Some(format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            ));
        }
    }
    if let Some(u) = &uuid {
        f.push(("uuid", S(u.clone())));
    }
    let in_use = (ns.flbas & 0xf) as usize;
    if json {
        let lbafs: Vec<Value> = ns
            .lbaf
            .iter()
            .map(|l| json!({"ms": l.ms, "ds": l.lbads, "rp": l.rp}))
            .collect();
        let mut m = Map::new();
        m.insert("lbafs".into(), json!(lbafs));
        return render(f, true, m);
    }
    let mut s = render(f, false, Map::new());
    for (i, l) in ns.lbaf.iter().enumerate() {
        s.push_str(&format!(
            "lbaf {i:>2} : ms:{:<3} lbads:{:<2} rp:{:#x}{}\n",
            l.ms,
            l.lbads,
            l.rp,
            if i == in_use { " (in use)" } else { "" }
        ));
    }
    s
}

pub fn ana_log_value(dev: &str, log: &AnaLog) -> Value {
    let descs: Vec<Value> = log
        .groups
        .iter()
        .map(|g| {
            json!({
                "grpid": g.grpid,
                "nnsids": g.nsids.len(),
                "chgcnt": g.change_count,
                "state": g.state.name(),
                "NSIDS": g.nsids.iter().map(|n| json!({"nsid": n})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "Asymmetric Namespace Access Log for NVMe device": dev,
        "chgcnt": log.change_count,
        "ngrps": log.groups.len(),
        "ANA DESC LIST ": descs,
    })
}

pub fn ana_log_text(dev: &str, log: &AnaLog) -> String {
    let mut s = format!(
        "Asymmetric Namespace Access Log for NVMe device: {dev}\nANA LOG HEADER :-\nchgcnt\t:\t{}\nngrps\t:\t{}\nANA Log Desc :-\n",
        log.change_count,
        log.groups.len()
    );
    for g in &log.groups {
        s.push_str(&format!(
            "grpid\t:\t{}\nnnsids\t:\t{}\nchgcnt\t:\t{}\nstate\t:\t{}\n",
            g.grpid,
            g.nsids.len(),
            g.change_count,
            g.state.name()
        ));
        for n in &g.nsids {
            s.push_str(&format!("\tnsid\t:\t{n}\n"));
        }
    }
    s
}

async fn first_ctrl(p: &PathArgs) -> Result<Vec<Controller>> {
    Ok(crate::connect::connect_all(p, false).await?.ctrls)
}

async fn close(ctrls: Vec<Controller>) {
    for c in ctrls {
        c.disconnect().await;
    }
}

pub async fn id_ctrl(a: IdArgs) -> Result<()> {
    let ctrls = first_ctrl(&a.paths).await?;
    let id = ctrls[0].id_ctrl();
    if !a.output.is_json() {
        println!("NVME Identify Controller ({}):", ctrls[0].address());
    }
    println!("{}", id_ctrl_text(&id, a.output.is_json()).trim_end());
    close(ctrls).await;
    Ok(())
}

pub async fn id_ns(a: IdNsArgs) -> Result<()> {
    let ctrls = first_ctrl(&a.paths).await?;
    let c = &ctrls[0];
    let r = async {
        let active = c
            .active_namespaces()
            .await
            .map_err(|e| anyhow!("{}: Identify active namespaces: {e}", c.address()))?;
        if !active.contains(&a.nsid) {
            return Err(anyhow!(
                "namespace {} not found on {} (active: {:?})",
                a.nsid,
                c.address(),
                active
            ));
        }
        let ns = c
            .identify_namespace(a.nsid)
            .await
            .map_err(|e| anyhow!("{}: Identify Namespace {}: {e}", c.address(), a.nsid))?;
        let descs = c.ns_id_descriptors(a.nsid).await.unwrap_or_default();
        Ok((ns, descs))
    }
    .await;
    close(ctrls.clone()).await;
    let (ns, descs) = r?;
    if !a.output.is_json() {
        println!("NVME Identify Namespace {}:", a.nsid);
    }
    println!("{}", id_ns_text(&ns, &descs, a.output.is_json()).trim_end());
    Ok(())
}

/// Why a controller has no ANA log: Identify Controller CMIC bit 3 "the
/// controller supports Asymmetric Namespace Access Reporting" is clear, and
/// the ANA log page is then not one it supports (a target answers the Get
/// Log Page with Invalid Field).
pub const NO_ANA: &str =
    "the controller does not report ANA (Identify Controller CMIC.ANA is clear): no ANA log";

/// `nvmp ana-log -o json` for a controller without ANA.
pub fn no_ana_value(dev: &str, cmic: u8) -> Value {
    json!({
        "Asymmetric Namespace Access Log for NVMe device": dev,
        "cmic": cmic,
        "error": NO_ANA,
    })
}

pub async fn ana_log(a: IdArgs) -> Result<()> {
    let ctrls = first_ctrl(&a.paths).await?;
    let mut values = vec![];
    let mut text = String::new();
    let mut without_ana = vec![];
    for c in &ctrls {
        let dev = format!("{} ({})", c.address(), c.subnqn());
        let cmic = c.id_ctrl().cmic;
        if cmic & nvmp_wire::identify::cmic::ANA == 0 {
            values.push(no_ana_value(&dev, cmic));
            without_ana.push(dev);
            continue;
        }
        let log = c
            .ana_log(false)
            .await
            .map_err(|e| anyhow!("{}: ANA log: {e}", c.address()));
        let log = match log {
            Ok(l) => l,
            Err(e) => {
                close(ctrls.clone()).await;
                return Err(e);
            }
        };
        values.push(ana_log_value(&dev, &log));
        text.push_str(&ana_log_text(&dev, &log));
    }
    close(ctrls).await;
    if a.output.is_json() {
        if values.len() == 1 {
            crate::output::print_json(&values[0])?
        } else {
            crate::output::print_json(&values)?
        }
    } else {
        print!("{text}");
    }
    if without_ana.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}: {NO_ANA}", without_ana.join(", ")))
    }
}
