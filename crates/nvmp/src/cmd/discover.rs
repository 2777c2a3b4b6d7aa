//! `nvmp discover`: the discovery log, printed as nvme-cli prints it.

use anyhow::{bail, Result};
use clap::Args;
use nvmp_wire::log::DiscoveryEntry;
use serde_json::json;

use crate::output::OutputFormat;
use crate::paths::{parse_portal, PathArgs};

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub paths: PathArgs,
    /// Output format.
    #[arg(short = 'o', long = "output-format", value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub fn trtype(t: u8) -> &'static str {
    match t {
        1 => "rdma",
        2 => "fc",
        3 => "tcp",
        254 => "loop",
        _ => "unrecognized",
    }
}
pub fn adrfam(a: u8) -> &'static str {
    match a {
        1 => "ipv4",
        2 => "ipv6",
        3 => "infiniband",
        4 => "fibre-channel",
        254 => "loop",
        _ => "unrecognized",
    }
}
pub fn subtype(s: u8) -> &'static str {
    match s {
        1 => "discovery subsystem referral",
        2 => "nvme subsystem",
        3 => "current discovery subsystem",
        _ => "unrecognized",
    }
}
pub fn treq(t: u8) -> &'static str {
    match t & 3 {
        0 => "not specified",
        1 => "required",
        2 => "not required",
        _ => "reserved",
    }
}
fn eflags(e: u16) -> String {
    let mut v = vec![];
    if e & 1 != 0 {
        v.push("duplicate discovery information");
    }
    if e & 2 != 0 {
        v.push("explicit discovery connections");
    }
    if e & 4 != 0 {
        v.push("no cdc connectivity");
    }
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
fn sectype(e: &DiscoveryEntry) -> &'static str {
    // TSAS byte 0 for TCP is SECTYPE.
    match e.tsas[0] {
        0 => "none",
        1 => "tls12",
        2 => "tls13",
        _ => "reserved",
    }
}
fn clean(s: &str) -> &str {
    s.trim_end_matches(['\0', ' '])
}

pub fn entry_json(e: &DiscoveryEntry) -> serde_json::Value {
    json!({
        "trtype": trtype(e.trtype),
        "adrfam": adrfam(e.adrfam),
        "subtype": subtype(e.subtype),
        "treq": treq(e.treq),
        "portid": e.portid,
        "trsvcid": clean(&e.trsvcid),
        "subnqn": clean(&e.subnqn),
        "traddr": clean(&e.traddr),
        "eflags": eflags(e.eflags),
        "sectype": sectype(e),
    })
}

pub fn print_text(genctr: u64, entries: &[DiscoveryEntry]) {
    println!(
        "\nDiscovery Log Number of Records {}, Generation counter {}",
        entries.len(),
        genctr
    );
    for (i, e) in entries.iter().enumerate() {
        println!("=====Discovery Log Entry {i}======");
        println!("trtype:  {}", trtype(e.trtype));
        println!("adrfam:  {}", adrfam(e.adrfam));
        println!("subtype: {}", subtype(e.subtype));
        println!("treq:    {}", treq(e.treq));
        println!("portid:  {}", e.portid);
        println!("trsvcid: {}", clean(&e.trsvcid));
        println!("subnqn:  {}", clean(&e.subnqn));
        println!("traddr:  {}", clean(&e.traddr));
        println!("eflags:  {}", eflags(e.eflags));
        println!("sectype: {}", sectype(e));
    }
}

pub async fn run(a: DiscoverArgs) -> Result<()> {
    let p = &a.paths;
    if a.paths.transport != "tcp" {
        bail!(
            "transport {:?} is not supported (only tcp)",
            a.paths.transport
        );
    }
    let (traddr, trsvcid) = match (&p.discover, &p.traddr) {
        (Some(d), None) => parse_portal(d)?,
        (None, Some(addr)) => (addr.clone(), p.trsvcid.unwrap_or(8009)),
        (Some(_), Some(_)) => {
            bail!("give the discovery controller either as -a/-s or as --discover ADDR:PORT")
        }
        (None, None) => {
            bail!("no discovery controller given: use -a ADDR [-s PORT] or --discover ADDR:PORT")
        }
    };
    let host = crate::connect::identity(p)?;
    let (genctr, mut entries) =
        crate::connect::discovery_log(&traddr, trsvcid, &host, &p.tuning.to_tuning()).await?;
    if let Some(n) = &p.nqn {
        entries.retain(|e| clean(&e.subnqn) == n);
    }
    if a.output.is_json() {
        let records: Vec<_> = entries.iter().map(entry_json).collect();
        crate::output::print_json(&json!({ "genctr": genctr, "records": records }))
    } else {
        print_text(genctr, &entries);
        Ok(())
    }
}
