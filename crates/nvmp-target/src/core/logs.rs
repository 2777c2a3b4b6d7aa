//! Get Log Page: error, SMART, changed namespace list, ANA (with RGO) and
//! the discovery log. LPO/NUMD are honoured; a log read in pieces is built
//! afresh each time, and the generation / change counters tell the host
//! whether the pieces belong together.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use nvmp_wire::log::{adrfam, subtype, trtype, AnaGroupDesc, AnaLog, DiscoveryEntry, DiscoveryLog};
use nvmp_wire::{Sqe, StatusCode};

use super::queue::{Bound, Completion, Ctx, Exec};
use super::state::State;
use crate::config::AddrFamily;

const LID_ERROR: u8 = 0x01;
const LID_SMART: u8 = 0x02;
const LID_CHANGED_NS: u8 = 0x04;
const LID_ANA: u8 = 0x0C;
const LID_DISCOVERY: u8 = 0x70;

/// Admin submission queue size advertised in discovery entries (nvmet: 32).
const ASQSZ: u16 = 32;

/// The ANA log of a subsystem as seen through a port.
pub fn ana_log(st: &State, port: u16, subnqn: &str) -> Option<AnaLog> {
    let p = st.ports.get(&port)?;
    let sub = st.subsystems.get(subnqn)?;
    let mut groups: BTreeMap<u32, Vec<u32>> = p.ana.keys().map(|g| (*g, Vec::new())).collect();
    for ns in sub.namespaces.values().filter(|n| n.spec.enable) {
        groups
            .entry(ns.spec.ana_grpid)
            .or_default()
            .push(ns.spec.nsid);
    }
    let groups = groups
        .into_iter()
        .map(|(grpid, nsids)| {
            let g = p.ana_state(grpid);
            AnaGroupDesc {
                grpid,
                change_count: g.change_count,
                state: g.state,
                nsids,
            }
        })
        .collect();
    Some(AnaLog {
        change_count: p.ana_change_count,
        groups,
    })
}

fn advertised_addr(st: &State, ctx: &Ctx, portid: u16) -> Option<(String, String, u8)> {
    let p = st.ports.get(&portid)?;
    let traddr = match &p.spec.advertise_traddr {
        Some(a) => a.clone(),
        None if p.spec.traddr.is_unspecified() => match ctx.local_addr {
            Some(a) => a.ip().to_string(),
            None => p.spec.traddr.to_string(),
        },
        None => p.spec.traddr.to_string(),
    };
    let svc = match (p.spec.trsvcid, p.bound) {
        (0, Some(b)) => b.port(),
        (s, _) => s,
    };
    let fam = match traddr.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => adrfam::IPV6,
        Ok(IpAddr::V4(_)) => adrfam::IPV4,
        Err(_) => match p.spec.adrfam {
            AddrFamily::Ipv4 => adrfam::IPV4,
            AddrFamily::Ipv6 => adrfam::IPV6,
        },
    };
    Some((traddr, svc.to_string(), fam))
}

/// The discovery log for a host: every (port, subsystem) pair it may reach.
pub fn discovery_log(st: &State, ctx: &Ctx, hostnqn: &str) -> DiscoveryLog {
    let mut entries = Vec::new();
    for (id, p) in &st.ports {
        if !p.should_listen() {
            continue;
        }
        let Some((traddr, trsvcid, fam)) = advertised_addr(st, ctx, *id) else {
            continue;
        };
        for nqn in &p.spec.subsystems {
            match st.subsystems.get(nqn) {
                Some(s) if s.host_allowed(hostnqn) => {}
                _ => continue,
            }
            entries.push(DiscoveryEntry {
                trtype: trtype::TCP,
                adrfam: fam,
                subtype: subtype::NVME,
                treq: p.spec.treq,
                portid: *id,
                cntlid: 0xFFFF,
                asqsz: ASQSZ,
                eflags: 0,
                trsvcid: trsvcid.clone(),
                subnqn: nqn.clone(),
                traddr: traddr.clone(),
                tsas: {
                    let mut t = [0; 256];
                    if p.spec.tls.is_some() {
                        t[0] = crate::config::tls::SECTYPE_TLS13;
                    }
                    t
                },
            });
        }
    }
    // Referrals of the port the query came in on, as nvmet lists them.
    if let Some(p) = st.ports.get(&ctx.port) {
        for r in &p.spec.referrals {
            entries.push(DiscoveryEntry {
                trtype: r.trtype,
                adrfam: r.adrfam,
                subtype: subtype::REFERRAL,
                treq: r.treq,
                portid: r.portid,
                cntlid: 0xFFFF,
                asqsz: ASQSZ,
                eflags: 0,
                trsvcid: r.trsvcid.clone(),
                subnqn: nvmp_wire::nqn::DISCOVERY_NQN.to_string(),
                traddr: r.traddr.clone(),
                tsas: [0; 256],
            });
        }
    }
    DiscoveryLog {
        genctr: st.genctr,
        numrec: entries.len() as u64,
        recfmt: 0,
        entries,
    }
}

fn smart_log(st: &State) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    let (mut rb, mut wb, mut rc, mut wc) = (0u64, 0u64, 0u64, 0u64);
    for p in st.ports.values() {
        rb += p.counters.read_bytes.load(Ordering::Relaxed);
        wb += p.counters.write_bytes.load(Ordering::Relaxed);
        rc += p.counters.reads.load(Ordering::Relaxed);
        wc += p.counters.writes.load(Ordering::Relaxed);
    }
    // Composite temperature 300 K, available spare 100 %, threshold 10 %.
    b[1..3].copy_from_slice(&300u16.to_le_bytes());
    b[3] = 100;
    b[4] = 10;
    // Data units are thousands of 512-byte units, rounded up.
    let units = |bytes: u64| (bytes / 512).div_ceil(1000) as u128;
    b[32..48].copy_from_slice(&units(rb).to_le_bytes());
    b[48..64].copy_from_slice(&units(wb).to_le_bytes());
    b[64..80].copy_from_slice(&(rc as u128).to_le_bytes());
    b[80..96].copy_from_slice(&(wc as u128).to_le_bytes());
    b
}

fn changed_ns_log(list: &BTreeSet<u32>) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    if list.len() > 1024 {
        b[..4].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    } else {
        for (i, n) in list.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&n.to_le_bytes());
        }
    }
    b
}

/// Get Log Page.
pub fn get_log_page(st: &mut State, ctx: &Ctx, b: &Bound, sqe: &Sqe) -> Exec {
    let lid = (sqe.cdw10 & 0xFF) as u8;
    let lsp = ((sqe.cdw10 >> 8) & 0x7F) as u8;
    let rae = sqe.cdw10 & (1 << 15) != 0;
    let numd = ((sqe.cdw10 >> 16) as u64 | (((sqe.cdw11 & 0xFFFF) as u64) << 16)) + 1;
    let lpo = sqe.cdw12 as u64 | ((sqe.cdw13 as u64) << 32);
    let len = numd * 4;
    let dnr = |c| Exec::Done(Completion::err_dnr(c));
    // "The offset … shall be dword aligned".
    if !lpo.is_multiple_of(4) {
        return dnr(StatusCode::INVALID_FIELD);
    }
    let hostnqn = match st
        .subsystems
        .get(&*b.subnqn)
        .and_then(|s| s.ctrls.get(&b.cntlid))
    {
        Some(c) => c.hostnqn.clone(),
        None => return dnr(StatusCode::INTERNAL_ERROR),
    };
    let log: Vec<u8> = match (lid, b.discovery) {
        (LID_DISCOVERY, true) => discovery_log(st, ctx, &hostnqn).encode(),
        (LID_ERROR, _) => vec![0u8; 64],
        (LID_SMART, false) => smart_log(st),
        (LID_ANA, false) => match ana_log(st, ctx.port, &b.subnqn) {
            // LSP bit 0: "Return Groups Only".
            Some(l) => l.encode(lsp & 1 != 0),
            None => return dnr(StatusCode::INTERNAL_ERROR),
        },
        (LID_CHANGED_NS, false) => {
            let Some(c) = st.ctrl_mut(&b.subnqn, b.cntlid) else {
                return dnr(StatusCode::INTERNAL_ERROR);
            };
            let l = changed_ns_log(&c.changed_ns);
            if !rae {
                c.changed_ns.clear();
            }
            l
        }
        (0x1E, false) => match super::ccr::log_page(st, b, lsp) {
            Some(l) => l,
            None => return dnr(StatusCode::INTERNAL_ERROR),
        },
        (nvmp_wire::log::resv::LID_RESERVATION_NOTIFICATION, false) => {
            match super::resv::ctrl_log_page(st, b) {
                Some(l) => l,
                None => return dnr(StatusCode::INTERNAL_ERROR),
            }
        }
        _ => return dnr(StatusCode::INVALID_LOG_PAGE),
    };
    // "If … offset … greater than the size of the log page … Invalid Field".
    if lpo > log.len() as u64 {
        return dnr(StatusCode::INVALID_FIELD);
    }
    let start = lpo as usize;
    let end = (start as u64 + len).min(log.len() as u64) as usize;
    let mut out = log[start..end].to_vec();
    out.resize(len.min(1 << 20) as usize, 0);
    Exec::Done(Completion::data(Bytes::from(out)))
}
