//! Validation of nvmetcli JSON into [`TargetConfig`]. Every error names the
//! field as a JSON path (`ports[1].addr.trsvcid`) and the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use nvmp_wire::nqn::{Nqn, DISCOVERY_NQN};
use serde_json::Value;

use super::raw::{text, RawConfig, RawNamespace, RawPort, RawSubsystem};
use super::*;

type R<T> = Result<T, ConfigError>;

fn req_text(v: &Value, field: &str) -> R<String> {
    text(v).ok_or_else(|| ConfigError::new(field, "missing or not a string"))
}

fn num<T: std::str::FromStr>(v: &Value, field: &str, what: &str) -> R<T> {
    let t = req_text(v, field)?;
    t.trim()
        .parse::<T>()
        .map_err(|_| ConfigError::new(field, format!("{t:?} is not {what}")))
}

fn flag(v: Option<&Value>, field: &str, default: bool) -> R<bool> {
    match v.and_then(text) {
        None => Ok(default),
        Some(t) => match t.trim() {
            "1" | "true" | "Y" | "y" => Ok(true),
            "0" | "false" | "N" | "n" => Ok(false),
            _ => Err(ConfigError::new(
                field,
                format!("{t:?} is not \"0\" or \"1\""),
            )),
        },
    }
}

/// Validate a raw nvmetcli configuration.
pub fn validate(raw: &RawConfig) -> Result<TargetConfig, ConfigError> {
    let mut hosts = BTreeSet::new();
    let mut dhchap = super::dhchap::DhchapMap::new();
    for (i, h) in raw.hosts.iter().enumerate() {
        if let Some(d) = &h.dhchap {
            let n = req_text(&h.nqn, &format!("hosts[{i}].nqn"))?;
            if let Some(spec) = super::dhchap::validate(d, &format!("hosts[{i}].dhchap"))? {
                dhchap.insert(n, spec);
            }
        }
        let f = format!("hosts[{i}].nqn");
        let n = req_text(&h.nqn, &f)?;
        Nqn::parse(&n)
            .map_err(|e| ConfigError::new(&f, format!("{n:?} is not a valid NQN: {e}")))?;
        if !hosts.insert(n.clone()) {
            return Err(ConfigError::new(f, format!("duplicate host {n:?}")));
        }
    }
    let mut subsystems = Vec::new();
    let mut nqns = BTreeSet::new();
    for (i, s) in raw.subsystems.iter().enumerate() {
        let spec = subsystem(s, i, &hosts)?;
        if !nqns.insert(spec.nqn.clone()) {
            return Err(ConfigError::new(
                format!("subsystems[{i}].nqn"),
                format!("duplicate subsystem {:?}", spec.nqn),
            ));
        }
        subsystems.push(spec);
    }
    let tls_keys = super::tls::server_keys(raw)?;
    let mut ports = Vec::new();
    let mut skipped_ports = Vec::new();
    let mut ids = BTreeSet::new();
    for (i, p) in raw.ports.iter().enumerate() {
        let trtype = p.addr.get("trtype").and_then(text).unwrap_or_default();
        if matches!(trtype.as_str(), "rdma" | "fc" | "loop") {
            let id: u16 = num(
                &p.portid,
                &format!("ports[{i}].portid"),
                "a port id (0-65535)",
            )?;
            tracing::warn!(port = id, trtype = %trtype, "only tcp ports are served; port skipped");
            skipped_ports.push((id, trtype));
            continue;
        }
        let spec = port(p, i, &nqns, tls_keys.as_ref())?;
        if !ids.insert(spec.portid) {
            return Err(ConfigError::new(
                format!("ports[{i}].portid"),
                format!("duplicate port id {}", spec.portid),
            ));
        }
        ports.push(spec);
    }
    Ok(TargetConfig {
        hosts,
        dhchap,
        ports,
        subsystems,
        skipped_ports,
    })
}

fn port(
    p: &RawPort,
    i: usize,
    nqns: &BTreeSet<String>,
    tls_keys: Option<&nvmp_tls::ServerConfig>,
) -> R<PortSpec> {
    let f = |s: &str| format!("ports[{i}].{s}");
    let portid: u16 = num(&p.portid, &f("portid"), "a port id (0-65535)")?;
    let a = |k: &str| p.addr.get(k);
    let trtype = a("trtype").and_then(text).unwrap_or_default();
    if trtype != "tcp" {
        return Err(ConfigError::new(
            f("addr.trtype"),
            format!("{trtype:?} is not a transport type (tcp, rdma, fc, loop)"),
        ));
    }
    let adrfam = match a("adrfam").and_then(text).as_deref() {
        Some("ipv4") | None => AddrFamily::Ipv4,
        Some("ipv6") => AddrFamily::Ipv6,
        Some(o) => {
            return Err(ConfigError::new(
                f("addr.adrfam"),
                format!("{o:?} is not \"ipv4\" or \"ipv6\""),
            ))
        }
    };
    let traddr_s = a("traddr").and_then(text).unwrap_or_default();
    let traddr: IpAddr = traddr_s.parse().map_err(|_| {
        ConfigError::new(
            f("addr.traddr"),
            format!("{traddr_s:?} is not an IP address"),
        )
    })?;
    if matches!(
        (adrfam, traddr),
        (AddrFamily::Ipv4, IpAddr::V6(_)) | (AddrFamily::Ipv6, IpAddr::V4(_))
    ) {
        return Err(ConfigError::new(
            f("addr.traddr"),
            format!("{traddr_s:?} does not match adrfam"),
        ));
    }
    let trsvcid_s = a("trsvcid").and_then(text).unwrap_or_default();
    let trsvcid: u16 = trsvcid_s.trim().parse().map_err(|_| {
        ConfigError::new(
            f("addr.trsvcid"),
            format!("{trsvcid_s:?} is not a port number"),
        )
    })?;
    let treq = parse_treq(a("treq").and_then(text).as_deref(), &f("addr.treq"))?;
    let tsas = a("tsas").and_then(text);
    let (tls, treq) = super::tls::port_tls(tsas.as_deref(), treq, tls_keys, &f)?;
    let mut referrals = Vec::new();
    for (j, r) in p.referrals.iter().enumerate() {
        if let Some(r) = super::referral::referral(r, &f(&format!("referrals[{j}]")))? {
            referrals.push(r);
        }
    }
    let param = |k: &str| p.param.get(k);
    let inline_data_size = match param("inline_data_size") {
        None => DEFAULT_INLINE_DATA_SIZE,
        Some(v) => {
            let n: i64 = num(v, &f("param.inline_data_size"), "a number")?;
            // nvmet: -1 means "use the default".
            if n < 0 {
                DEFAULT_INLINE_DATA_SIZE
            } else if n as u64 > MAX_INLINE_DATA_SIZE as u64 {
                return Err(ConfigError::new(
                    f("param.inline_data_size"),
                    format!("{n} exceeds the maximum {MAX_INLINE_DATA_SIZE}"),
                ));
            } else {
                n as u32
            }
        }
    };
    let advertise_traddr = match param("nvmp_advertise_traddr").and_then(text) {
        None => None,
        Some(s) if s.parse::<IpAddr>().is_ok() => Some(s),
        Some(s) => {
            return Err(ConfigError::new(
                f("param.nvmp_advertise_traddr"),
                format!("{s:?} is not an IP address"),
            ))
        }
    };
    let max_queue_size = match param("nvmp_max_queue_size") {
        None => DEFAULT_QUEUE_SIZE,
        Some(v) => {
            let n: u16 = num(v, &f("param.nvmp_max_queue_size"), "a number")?;
            if !(16..=1024).contains(&n) {
                return Err(ConfigError::new(
                    f("param.nvmp_max_queue_size"),
                    format!("{n} is not in 16..=1024"),
                ));
            }
            n
        }
    };
    let max_io_queues = match param("nvmp_max_io_queues") {
        None => DEFAULT_MAX_IO_QUEUES,
        Some(v) => {
            let n: u16 = num(v, &f("param.nvmp_max_io_queues"), "a number")?;
            if !(1..=128).contains(&n) {
                return Err(ConfigError::new(
                    f("param.nvmp_max_io_queues"),
                    format!("{n} is not in 1..=128"),
                ));
            }
            n
        }
    };
    let mut ana_groups = BTreeMap::new();
    for (j, g) in p.ana_groups.iter().enumerate() {
        let gf = f(&format!("ana_groups[{j}].grpid"));
        let grpid: u32 = num(&g.grpid, &gf, "a group id")?;
        if grpid == 0 || grpid > MAX_ANA_GROUPS {
            return Err(ConfigError::new(
                gf,
                format!("{grpid} is not in 1..={MAX_ANA_GROUPS}"),
            ));
        }
        let sf = f(&format!("ana_groups[{j}].ana.state"));
        let st = g
            .ana
            .get("state")
            .and_then(text)
            .unwrap_or_else(|| "optimized".into());
        let state: AnaState = st
            .parse()
            .map_err(|_| ConfigError::new(&sf, format!("{st:?} is not an ANA state")))?;
        if ana_groups.insert(grpid, state).is_some() {
            return Err(ConfigError::new(gf, format!("duplicate group {grpid}")));
        }
    }
    let mut subsystems = Vec::new();
    for (j, s) in p.subsystems.iter().enumerate() {
        let sf = f(&format!("subsystems[{j}]"));
        let n = req_text(s, &sf)?;
        if !nqns.contains(&n) {
            return Err(ConfigError::new(
                sf,
                format!("{n:?} is not a configured subsystem"),
            ));
        }
        if !subsystems.contains(&n) {
            subsystems.push(n);
        }
    }
    Ok(PortSpec {
        portid,
        adrfam,
        traddr,
        trsvcid,
        treq,
        inline_data_size,
        advertise_traddr,
        max_queue_size,
        max_io_queues,
        ana_groups,
        referrals,
        subsystems,
        tls,
    })
}

fn subsystem(s: &RawSubsystem, i: usize, hosts: &BTreeSet<String>) -> R<SubsystemSpec> {
    let f = |x: &str| format!("subsystems[{i}].{x}");
    let nqn = req_text(&s.nqn, &f("nqn"))?;
    Nqn::parse(&nqn)
        .map_err(|e| ConfigError::new(f("nqn"), format!("{nqn:?} is not a valid NQN: {e}")))?;
    if nqn == DISCOVERY_NQN {
        return Err(ConfigError::new(
            f("nqn"),
            "the discovery NQN is served implicitly and cannot be configured",
        ));
    }
    let at = |k: &str| s.attr.get(k);
    let allow_any_host = flag(at("allow_any_host"), &f("attr.allow_any_host"), false)?;
    let serial = match at("serial").and_then(text) {
        Some(x) => x,
        None => default_serial(&nqn),
    };
    if serial.len() > 20 || !serial.is_ascii() {
        return Err(ConfigError::new(
            f("attr.serial"),
            format!("{serial:?} is not at most 20 ASCII characters"),
        ));
    }
    let model = at("model").and_then(text).unwrap_or_else(|| "nvmp".into());
    if model.len() > 40 || !model.is_ascii() {
        return Err(ConfigError::new(
            f("attr.model"),
            format!("{model:?} is not at most 40 ASCII characters"),
        ));
    }
    let version = match at("version").and_then(text) {
        None => 0x0001_0400,
        Some(v) => parse_version(&v).ok_or_else(|| {
            ConfigError::new(
                f("attr.version"),
                format!("{v:?} is not a version like \"1.3\""),
            )
        })?,
    };
    let cmin: u16 = match at("cntlid_min") {
        None => 1,
        Some(v) => num(v, &f("attr.cntlid_min"), "a controller id")?,
    };
    let cmax: u16 = match at("cntlid_max") {
        None => 0xFFEF,
        Some(v) => num(v, &f("attr.cntlid_max"), "a controller id")?,
    };
    if cmin == 0 || cmin > 0xFFEF {
        return Err(ConfigError::new(
            f("attr.cntlid_min"),
            format!("{cmin} is not in 1..=65519"),
        ));
    }
    if cmax < cmin || cmax > 0xFFEF {
        return Err(ConfigError::new(
            f("attr.cntlid_max"),
            format!("{cmax} is not in cntlid_min..=65519"),
        ));
    }
    let mut allowed_hosts = BTreeSet::new();
    for (j, h) in s.allowed_hosts.iter().enumerate() {
        let hf = f(&format!("allowed_hosts[{j}]"));
        let n = req_text(h, &hf)?;
        if !hosts.contains(&n) {
            return Err(ConfigError::new(
                hf,
                format!("{n:?} is not listed in hosts"),
            ));
        }
        allowed_hosts.insert(n);
    }
    let mut namespaces = Vec::new();
    let mut nsids = BTreeSet::new();
    for (j, n) in s.namespaces.iter().enumerate() {
        let ns = namespace(n, &format!("subsystems[{i}].namespaces[{j}]"))?;
        if !nsids.insert(ns.nsid) {
            return Err(ConfigError::new(
                format!("subsystems[{i}].namespaces[{j}].nsid"),
                format!("duplicate nsid {}", ns.nsid),
            ));
        }
        namespaces.push(ns);
    }
    let anatt_s: u8 = match at("nvmp_anatt") {
        None => 10,
        Some(v) => num(v, &f("attr.nvmp_anatt"), "a number of seconds")?,
    };
    if anatt_s == 0 {
        return Err(ConfigError::new(
            f("attr.nvmp_anatt"),
            "0 is not in 1..=255",
        ));
    }
    let ext = SubsystemExt {
        anatt_s,
        ana: flag(at("nvmp_ana"), &f("attr.nvmp_ana"), true)?,
        nmic_shared: flag(at("nvmp_nmic_shared"), &f("attr.nvmp_nmic_shared"), true)?,
        cqt_ms: match at("nvmp_cqt_ms") {
            None => crate::core::ccr::DEFAULT_CQT_MS,
            Some(v) => num(v, &f("attr.nvmp_cqt_ms"), "a number of ms (0..=65535)")?,
        },
    };
    Ok(SubsystemSpec {
        ext,
        nqn,
        allow_any_host,
        allowed_hosts,
        serial,
        model,
        version,
        cntlid_min: cmin,
        cntlid_max: cmax,
        namespaces,
    })
}

/// Validate one namespace (also used by the run-time `add_namespace`).
pub(crate) fn namespace(n: &RawNamespace, base: &str) -> R<NamespaceSpec> {
    let f = |x: &str| format!("{base}.{x}");
    let nsid: u32 = num(&n.nsid, &f("nsid"), "a namespace id")?;
    if nsid == 0 || nsid > MAX_NSID {
        return Err(ConfigError::new(
            f("nsid"),
            format!("{nsid} is not in 1..={MAX_NSID}"),
        ));
    }
    let enable = if n.enable.is_null() {
        true
    } else {
        flag(Some(&n.enable), &f("enable"), true)?
    };
    let ana_grpid: u32 = if n.ana_grpid.is_null() {
        1
    } else {
        num(&n.ana_grpid, &f("ana_grpid"), "a group id")?
    };
    if ana_grpid == 0 || ana_grpid > MAX_ANA_GROUPS {
        return Err(ConfigError::new(
            f("ana_grpid"),
            format!("{ana_grpid} is not in 1..={MAX_ANA_GROUPS}"),
        ));
    }
    let d = |k: &str| n.device.get(k).and_then(text).filter(|s| !s.is_empty());
    let id = |k: &str| -> R<Option<[u8; 16]>> {
        match d(k) {
            None => Ok(None),
            Some(s) => parse_uuid(&s).map(Some).ok_or_else(|| {
                ConfigError::new(
                    f(&format!("device.{k}")),
                    format!("{s:?} is not 32 hex digits"),
                )
            }),
        }
    };
    let nguid = id("nguid")?;
    let uuid = id("uuid")?;
    let block_size = match d("block_size") {
        None => 512,
        Some(s) => match s.trim() {
            "512" => 512,
            "4096" => 4096,
            _ => {
                return Err(ConfigError::new(
                    f("device.block_size"),
                    format!("{s:?} is not 512 or 4096"),
                ))
            }
        },
    };
    // Extension: a RAM namespace's memory allocated and made resident at
    // creation (docs/PERFORMANCE.md, "Target: reads of written data, session 6").
    let populate = flag(n.device.get("populate"), &f("device.populate"), false)?;
    let ram = |s: &str, field: &str| -> R<DeviceSpec> {
        let size = parse_size(s)
            .ok_or_else(|| ConfigError::new(field, format!("{s:?} is not a size like \"64M\"")))?;
        if size == 0 || size % block_size as u64 != 0 {
            return Err(ConfigError::new(
                field,
                format!("{s:?} is not a positive multiple of the block size {block_size}"),
            ));
        }
        Ok(if populate {
            DeviceSpec::RamPopulated { size, block_size }
        } else {
            DeviceSpec::Ram { size, block_size }
        })
    };
    let device = match (d("path"), d("size")) {
        (Some(p), _) if p.starts_with("ram:") => ram(&p[4..], &f("device.path"))?,
        (Some(_), _) if populate => {
            return Err(ConfigError::new(
                f("device.populate"),
                "applies to RAM namespaces only (a \"size\" or a \"ram:\" path)",
            ))
        }
        (Some(p), _) => DeviceSpec::File {
            path: PathBuf::from(p),
        },
        (None, Some(s)) => ram(&s, &f("device.size"))?,
        (None, None) => {
            return Err(ConfigError::new(
                f("device.path"),
                "missing (give a file or block device path, or a RAM \"size\")",
            ))
        }
    };
    Ok(NamespaceSpec {
        nsid,
        enable,
        ana_grpid,
        device,
        nguid,
        uuid,
    })
}

fn parse_version(v: &str) -> Option<u32> {
    let mut it = v.trim().split('.');
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it.next().map_or(Some(0), |x| x.parse().ok())?;
    let ter: u32 = it.next().map_or(Some(0), |x| x.parse().ok())?;
    if it.next().is_some() || major == 0 || major > 0xFFFF || minor > 0xFF || ter > 0xFF {
        return None;
    }
    Some(major << 16 | minor << 8 | ter)
}

/// A stable serial derived from the NQN (nvmet makes a random one; a stable
/// one keeps a restarted target recognisable).
fn default_serial(nqn: &str) -> String {
    let h = nvmp_wire::crc::crc32c(nqn.as_bytes());
    format!("{h:08x}{:08x}", h.rotate_left(13) ^ 0x5a5a_5a5a)
}

/// TREQ as nvmetcli writes it, to the discovery log's TREQ byte
/// (0 not specified, 1 required, 2 not required).
pub(super) fn parse_treq(v: Option<&str>, field: &str) -> R<u8> {
    match v {
        None | Some("not specified") => Ok(0),
        Some("required") => Ok(1),
        Some("not required") => Ok(2),
        Some(o) => Err(ConfigError::new(
            field,
            format!("{o:?} is not \"not specified\", \"required\" or \"not required\""),
        )),
    }
}
