//! `nvmp resv-register`, `resv-acquire`, `resv-release`, `resv-report`:
//! NVMe reservations through the namespace head, with nvme-cli's long
//! flags (`--crkey`, `--nrkey`, `--prkey`, `--rtype`, `--rrega`, `--racqa`,
//! `--rrela`, `--iekey`, `--cptpl`, `--numd`, `--eds`) and its JSON report.
//! (nvme-cli's one-letter forms clash with the connect flags `-a`, `-t`,
//! `-k`, `-i`, `-c`, `-n`; only the long forms are taken.) The namespace is
//! named with `--nsid` as elsewhere in nvmp. The Host Identifier is the one
//! the paths connect with (`--hostid`, else `/etc/nvme/hostid`).

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::Args;
use nvmp_mpath::resv::ResvError;
use nvmp_wire::io::resv::{
    RegisteredCtrl, ResvAcquire, ResvRegister, ResvRelease, ResvStatus, ResvType,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::control::Request;
use crate::output::{hex, print_json, OutputFormat};
use crate::paths::PathArgs;

/// A key or number in decimal or 0x-prefixed hex (as nvme-cli's strtoull base 0).
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    }
    .map_err(|e| format!("{s:?}: {e}"))
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub paths: PathArgs,
    /// Send the command through the control socket of a running `nvmp nbd`
    /// (its paths and Host Identifier) instead of connecting here.
    #[arg(long = "control", value_name = "SOCKET")]
    pub control: Option<PathBuf>,
    /// Namespace ID.
    #[arg(long = "nsid", default_value_t = 1)]
    pub nsid: u32,
    /// Current reservation key (unregister, replace).
    #[arg(long = "crkey", value_parser = parse_u64, default_value = "0")]
    pub crkey: u64,
    /// New reservation key (register, replace).
    #[arg(long = "nrkey", value_parser = parse_u64, default_value = "0")]
    pub nrkey: u64,
    /// Register action: 0 register, 1 unregister, 2 replace.
    #[arg(long = "rrega", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=7))]
    pub rrega: u8,
    /// Ignore the existing key.
    #[arg(long = "iekey")]
    pub iekey: bool,
    /// Change PTPL: 0 no change, 2 clear (reservations lost on power loss), 3 set (persist).
    #[arg(long = "cptpl", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub cptpl: u8,
}

#[derive(Debug, Args)]
pub struct AcquireArgs {
    #[command(flatten)]
    pub paths: PathArgs,
    /// Send the command through the control socket of a running `nvmp nbd`
    /// (its paths and Host Identifier) instead of connecting here.
    #[arg(long = "control", value_name = "SOCKET")]
    pub control: Option<PathBuf>,
    #[arg(long = "nsid", default_value_t = 1)]
    pub nsid: u32,
    /// Current reservation key.
    #[arg(long = "crkey", value_parser = parse_u64, default_value = "0")]
    pub crkey: u64,
    /// Key of the registrant(s) to preempt.
    #[arg(long = "prkey", value_parser = parse_u64, default_value = "0")]
    pub prkey: u64,
    /// Reservation type: 1 Write Exclusive, 2 Exclusive Access, 3/4 … Registrants Only, 5/6 … All Registrants.
    #[arg(long = "rtype", default_value_t = 0)]
    pub rtype: u8,
    /// Acquire action: 0 acquire, 1 preempt, 2 preempt and abort.
    #[arg(long = "racqa", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=7))]
    pub racqa: u8,
    #[arg(long = "iekey")]
    pub iekey: bool,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub paths: PathArgs,
    /// Send the command through the control socket of a running `nvmp nbd`
    /// (its paths and Host Identifier) instead of connecting here.
    #[arg(long = "control", value_name = "SOCKET")]
    pub control: Option<PathBuf>,
    #[arg(long = "nsid", default_value_t = 1)]
    pub nsid: u32,
    #[arg(long = "crkey", value_parser = parse_u64, default_value = "0")]
    pub crkey: u64,
    /// Type of the reservation released.
    #[arg(long = "rtype", default_value_t = 0)]
    pub rtype: u8,
    /// Release action: 0 release, 1 clear (every registration too).
    #[arg(long = "rrela", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=7))]
    pub rrela: u8,
    #[arg(long = "iekey")]
    pub iekey: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub paths: PathArgs,
    /// Send the command through the control socket of a running `nvmp nbd`
    /// (its paths and Host Identifier) instead of connecting here.
    #[arg(long = "control", value_name = "SOCKET")]
    pub control: Option<PathBuf>,
    #[arg(long = "nsid", default_value_t = 1)]
    pub nsid: u32,
    /// Dwords to transfer, 0's based (default and 0: 4 KiB), as nvme-cli.
    #[arg(long = "numd", default_value_t = 0)]
    pub numd: u32,
    /// Extended data structure (128-bit Host Identifiers; what NVMe over Fabrics targets require).
    #[arg(long = "eds")]
    pub eds: bool,
    #[arg(short = 'o', long = "output-format", value_enum, default_value_t)]
    pub output: OutputFormat,
}

fn fail(what: &str, e: ResvError) -> anyhow::Error {
    match &e {
        ResvError::Status(s) if s.code == nvmp_wire::StatusCode::HOST_ID_INCONSISTENT => {
            anyhow::anyhow!("NVMe status: {s} ({what}; the target wants --eds)")
        }
        ResvError::Status(s) => anyhow::anyhow!("NVMe status: {s} ({what})"),
        ResvError::Decode(_) => anyhow::anyhow!("{what}: {e}"),
    }
}

/// A state-changing reservation command from the CLI: through the control
/// socket of a running `nvmp nbd` (its paths and Host Identifier), or on a
/// head of its own.
async fn run_cli(
    paths: &PathArgs,
    control: Option<&std::path::Path>,
    op: ResvOp,
    req: ResvRequest,
    wrap: fn(ResvRequest) -> Request,
    what: &str,
    done: &str,
) -> Result<()> {
    if let Some(sock) = control {
        via_control(sock, wrap(req)).await?;
    } else {
        let nsid = req.nsid.unwrap_or(1);
        let (mp, h) = crate::cmd::io::open_head(paths, nsid).await?;
        let r = run_op(&h, op, &req, nsid).await;
        mp.shutdown().await;
        r.map_err(|e| fail(what, e))?;
    }
    println!("{done}");
    Ok(())
}

pub async fn register(a: RegisterArgs) -> Result<()> {
    let req = ResvRequest {
        nsid: Some(a.nsid),
        subsystem: a.paths.nqn.clone(),
        rrega: a.rrega,
        iekey: a.iekey,
        cptpl: a.cptpl,
        crkey: a.crkey,
        nrkey: a.nrkey,
        ..Default::default()
    };
    let ctl = a.control.as_deref();
    run_cli(
        &a.paths,
        ctl,
        ResvOp::Register,
        req,
        Request::ResvRegister,
        "reservation register",
        "NVME Reservation  success",
    )
    .await
}

pub async fn acquire(a: AcquireArgs) -> Result<()> {
    let req = ResvRequest {
        nsid: Some(a.nsid),
        subsystem: a.paths.nqn.clone(),
        racqa: a.racqa,
        iekey: a.iekey,
        rtype: a.rtype,
        crkey: a.crkey,
        prkey: a.prkey,
        ..Default::default()
    };
    let ctl = a.control.as_deref();
    run_cli(
        &a.paths,
        ctl,
        ResvOp::Acquire,
        req,
        Request::ResvAcquire,
        "reservation acquire",
        "NVME Reservation Acquire success",
    )
    .await
}

pub async fn release(a: ReleaseArgs) -> Result<()> {
    let req = ResvRequest {
        nsid: Some(a.nsid),
        subsystem: a.paths.nqn.clone(),
        rrela: a.rrela,
        iekey: a.iekey,
        rtype: a.rtype,
        crkey: a.crkey,
        ..Default::default()
    };
    let ctl = a.control.as_deref();
    run_cli(
        &a.paths,
        ctl,
        ResvOp::Release,
        req,
        Request::ResvRelease,
        "reservation release",
        "NVME Reservation Release success",
    )
    .await
}

/// The report as nvme-cli prints it with `-o json` (`regctls` with 64-bit
/// Host IDs as numbers; `regctlext` with 128-bit Host IDs as hex).
pub fn report_json(st: &ResvStatus, eds: bool) -> Value {
    let list: Vec<Value> = st
        .ctrls
        .iter()
        .map(|c| {
            if eds {
                json!({"cntlid": c.cntlid, "rcsts": c.rcsts, "rkey": c.rkey, "hostid": hex(&c.hostid)})
            } else {
                let mut h = [0u8; 8];
                h.copy_from_slice(&c.hostid[..8]);
                json!({"cntlid": c.cntlid, "rcsts": c.rcsts, "hostid": u64::from_le_bytes(h), "rkey": c.rkey})
            }
        })
        .collect();
    let mut v = json!({
        "gen": st.gen,
        "rtype": st.rtype.0,
        "regctl": st.regctl,
        "ptpls": u8::from(st.ptpls),
    });
    v[if eds { "regctlext" } else { "regctls" }] = Value::Array(list);
    v
}

fn print_report(st: &ResvStatus, eds: bool) {
    println!("\nNVME Reservation status:\n");
    println!("gen       : {}", st.gen);
    println!("rtype     : {} ({})", st.rtype.0, st.rtype.name());
    println!("regctl    : {}", st.regctl);
    println!("ptpls     : {}", u8::from(st.ptpls));
    for (i, c) in st.ctrls.iter().enumerate() {
        println!("regctl{}[{i}] :", if eds { "ext" } else { "" });
        println!("  cntlid  : {:x}", c.cntlid);
        println!("  rcsts   : {:x}", c.rcsts);
        if eds {
            println!("  hostid  : {}", hex(&c.hostid));
        } else {
            println!("  hostid  : {}", hex(&c.hostid[..8]));
        }
        println!("  rkey    : {:x}", c.rkey);
    }
}

pub async fn report(a: ReportArgs) -> Result<()> {
    let st = if let Some(sock) = &a.control {
        let req = ResvRequest {
            nsid: Some(a.nsid),
            subsystem: a.paths.nqn.clone(),
            numd: a.numd,
            eds: a.eds,
            ..Default::default()
        };
        let v = via_control(sock, Request::ResvReport(req))
            .await?
            .ok_or_else(|| anyhow!("control socket: no report in the answer"))?;
        status_from_json(&v, a.eds)?
    } else {
        let (mp, h) = crate::cmd::io::open_head(&a.paths, a.nsid).await?;
        let r = h.resv_report(report_len(a.numd), a.eds).await;
        mp.shutdown().await;
        r.map_err(|e| fail("reservation report", e))?
    };
    if st.regctl as usize > st.ctrls.len() && !a.output.is_json() {
        eprintln!(
            "{} registrants, {} shown: a larger --numd shows all",
            st.regctl,
            st.ctrls.len()
        );
    }
    if a.output.is_json() {
        print_json(&report_json(&st, a.eds))
    } else {
        print_report(&st, a.eds);
        Ok(())
    }
}

async fn via_control(sock: &std::path::Path, req: Request) -> Result<Option<Value>> {
    Ok(crate::control::request(sock, &req).await?.resv)
}

/// The report back from [`report_json`] (what the control socket answers).
pub fn status_from_json(v: &Value, eds: bool) -> Result<ResvStatus> {
    let num = |v: &Value, k: &str| {
        v[k].as_u64()
            .ok_or_else(|| anyhow!("reservation report: no {k}"))
    };
    let list = v[if eds { "regctlext" } else { "regctls" }]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut ctrls = Vec::with_capacity(list.len());
    for c in &list {
        let mut hostid = [0u8; 16];
        if eds {
            let h = c["hostid"].as_str().unwrap_or_default();
            for (i, b) in hostid.iter_mut().enumerate() {
                *b = h
                    .get(2 * i..2 * i + 2)
                    .and_then(|x| u8::from_str_radix(x, 16).ok())
                    .ok_or_else(|| anyhow!("reservation report: bad hostid {h:?}"))?;
            }
        } else {
            hostid[..8].copy_from_slice(&num(c, "hostid")?.to_le_bytes());
        }
        ctrls.push(RegisteredCtrl {
            cntlid: num(c, "cntlid")? as u16,
            rcsts: num(c, "rcsts")? as u8,
            hostid,
            rkey: num(c, "rkey")?,
        });
    }
    Ok(ResvStatus {
        gen: num(v, "gen")? as u32,
        rtype: ResvType(num(v, "rtype")? as u8),
        regctl: num(v, "regctl")? as u16,
        ptpls: num(v, "ptpls")? != 0,
        ctrls,
    })
}

/// A reservation request on the control socket of `nvmp nbd` (the host
/// that exports the namespace sends it on its own paths). Fields as the
/// CLI flags; all optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ResvRequest {
    /// Subsystem NQN (or nvmp's name for it); default: the one that has `nsid`.
    pub subsystem: Option<String>,
    pub nsid: Option<u32>,
    pub crkey: u64,
    pub nrkey: u64,
    pub prkey: u64,
    pub rtype: u8,
    pub rrega: u8,
    pub racqa: u8,
    pub rrela: u8,
    pub iekey: bool,
    pub cptpl: u8,
    pub numd: u32,
    pub eds: bool,
}

/// Which reservation command a control request runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResvOp {
    Register,
    Acquire,
    Release,
    Report,
}

fn report_len(numd: u32) -> u32 {
    // nvme-cli: "numd 0 or past 4 KiB: 4 KiB"; the size is (numd + 1) dwords.
    let numd = if numd == 0 || numd >= 1024 {
        1023
    } else {
        numd
    };
    (numd + 1) * 4
}

/// Run one reservation request on `head`: `Some(report JSON)` for a
/// report, `None` for the others.
async fn run_op(
    head: &nvmp_mpath::NamespaceHead,
    op: ResvOp,
    r: &ResvRequest,
    nsid: u32,
) -> Result<Option<Value>, ResvError> {
    match op {
        ResvOp::Register => head
            .resv_register(ResvRegister {
                nsid,
                rrega: r.rrega,
                iekey: r.iekey,
                cptpl: r.cptpl,
                crkey: r.crkey,
                nrkey: r.nrkey,
            })
            .await
            .map(|()| None),
        ResvOp::Acquire => head
            .resv_acquire(ResvAcquire {
                nsid,
                racqa: r.racqa,
                iekey: r.iekey,
                rtype: ResvType(r.rtype),
                crkey: r.crkey,
                prkey: r.prkey,
            })
            .await
            .map(|()| None),
        ResvOp::Release => head
            .resv_release(ResvRelease {
                nsid,
                rrela: r.rrela,
                iekey: r.iekey,
                rtype: ResvType(r.rtype),
                crkey: r.crkey,
            })
            .await
            .map(|()| None),
        ResvOp::Report => head
            .resv_report(report_len(r.numd), r.eds)
            .await
            .map(|st| Some(report_json(&st, r.eds))),
    }
}

/// Run a control-socket reservation request on the exporting host's heads:
/// `Some(report JSON)` for a report, `None` for the others.
pub async fn control(
    mp: &nvmp_mpath::Multipath,
    op: ResvOp,
    r: &ResvRequest,
) -> Result<Option<Value>, String> {
    let nsid = r.nsid.unwrap_or(1);
    let head = mp
        .subsystems()
        .iter()
        .filter(|s| {
            r.subsystem
                .as_ref()
                .is_none_or(|x| *x == s.nqn || *x == s.name)
        })
        .find_map(|s| s.head(nsid))
        .ok_or_else(|| format!("namespace {nsid} not found"))?;
    let res = run_op(&head, op, r, nsid).await;
    res.map_err(|e| match e {
        ResvError::Status(s) => format!("NVMe status: {s}"),
        e => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_as_nvme_cli() {
        assert_eq!(parse_u64("0xABcd"), Ok(0xabcd));
        assert_eq!(parse_u64("42"), Ok(42));
        assert!(parse_u64("0xg").is_err());
    }

    #[test]
    fn json_as_nvme_cli() {
        let st = ResvStatus {
            gen: 2,
            rtype: ResvType(1),
            regctl: 1,
            ptpls: false,
            ctrls: vec![RegisteredCtrl {
                cntlid: 0xFFFF,
                rcsts: 1,
                hostid: [0xB; 16],
                rkey: 0xbbbb,
            }],
        };
        let v = report_json(&st, true);
        assert_eq!(v["regctlext"][0]["hostid"], "0b".repeat(16));
        assert_eq!(v["regctlext"][0]["rkey"], 0xbbbb);
        assert_eq!((v["gen"].as_u64(), v["rtype"].as_u64()), (Some(2), Some(1)));
        assert_eq!(status_from_json(&v, true).unwrap(), st);
        let v = report_json(&st, false);
        assert_eq!(v["regctls"][0]["hostid"], 0x0b0b_0b0b_0b0b_0b0bu64);
        let mut short = st.clone();
        short.ctrls[0].hostid[8..].fill(0);
        assert_eq!(status_from_json(&v, false).unwrap(), short);
    }
}
