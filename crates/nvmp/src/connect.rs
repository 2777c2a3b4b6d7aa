//! Turning path arguments into connected controllers: discovery, host
//! identity, `nvme connect` options, and one-line errors that name the
//! problem (bad address, unknown NQN, refused host, refused connection).

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use nvmp_host::{Controller, ControllerOptions, HostError, HostIdentity};
use nvmp_mpath::{MpathConfig, Multipath};
use nvmp_wire::log::DiscoveryEntry;
use nvmp_wire::StatusCode;

use crate::paths::{ConnectTuning, PathArgs, PathSource, PortalSpec};

/// The host identity from -q / -I, the config file, or the system.
pub fn identity(args: &PathArgs) -> Result<HostIdentity> {
    let (cfg_nqn, cfg_id) = args.config_identity()?;
    let nqn = args.hostnqn.clone().or(cfg_nqn);
    let id = args.hostid.clone().or(cfg_id);
    let mut h = match &nqn {
        Some(n) => {
            if !n.starts_with("nqn.") || n.len() > 223 {
                bail!("bad host NQN {n:?}: must start with \"nqn.\" and be at most 223 bytes");
            }
            let base = HostIdentity::from_system();
            let hostid = n
                .strip_prefix("nqn.2014-08.org.nvmexpress:uuid:")
                .and_then(parse_uuid)
                .unwrap_or(if base.hostnqn == *n {
                    base.hostid
                } else {
                    HostIdentity::generated().hostid
                });
            HostIdentity {
                hostnqn: n.clone(),
                hostid,
            }
        }
        None => HostIdentity::from_system(),
    };
    if let Some(id) = id {
        h.hostid = parse_uuid(&id).ok_or_else(|| anyhow!("bad host ID {id:?}: expected a UUID"))?;
    }
    Ok(h)
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.trim().bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Controller options for one portal.
pub fn options(p: &PortalSpec, host: &HostIdentity, multipath: bool) -> ControllerOptions {
    let mut o = ControllerOptions::new(p.traddr.clone(), p.trsvcid, p.subnqn.clone());
    o.host = host.clone();
    apply_tuning(&mut o, &p.tuning);
    // Under multipath a lost path's commands come back at once (0x370) and
    // the head requeues them elsewhere; a single controller holds them.
    o.queue_while_reconnecting = !multipath;
    o
}

fn apply_tuning(o: &mut ControllerOptions, t: &ConnectTuning) {
    if let Some(k) = t.keep_alive_tmo {
        o.kato_ms = k.saturating_mul(1000);
    }
    if let Some(c) = t.reconnect_delay {
        o.reconnect_delay_ms = c.max(1) * 1000;
    }
    if let Some(l) = t.ctrl_loss_tmo {
        o.ctrl_loss_tmo_s = (l >= 0).then_some(l as u64);
    }
    if let Some(f) = t.fast_io_fail_tmo {
        o.fast_io_fail_tmo_s = (f >= 0).then_some(f as u64);
    }
    if let Some(n) = t.nr_io_queues {
        o.nr_io_queues = n;
    }
    if let Some(q) = t.queue_size {
        o.queue_size = q;
    }
    if let Some(d) = t.hdr_digest {
        o.hdr_digest = d;
    }
    if let Some(d) = t.data_digest {
        o.data_digest = d;
    }
    // Checked when the arguments were read (PathArgs::source, portals).
    o.tls = t.tls.host_key().ok().flatten();
    // Checked when the arguments (or config.json) were read.
    if let Ok((secret, ctrl)) = t.dhchap.secrets() {
        o.dhchap_secret = secret;
        o.dhchap_ctrl_secret = ctrl;
    }
}

/// Check that an address resolves before connecting: "bad address" rather than a socket error.
async fn check_address(traddr: &str, trsvcid: u16) -> Result<()> {
    let host = traddr.trim_start_matches('[').trim_end_matches(']');
    match tokio::net::lookup_host((host, trsvcid)).await {
        Ok(it) => {
            if it.count() == 0 {
                bail!("bad address {traddr}: no such host");
            }
            Ok(())
        }
        Err(e) => bail!("bad address {traddr}: {e}"),
    }
}

/// One line that says what went wrong connecting to `addr` for `nqn`.
pub fn describe(e: &HostError, addr: &str, nqn: &str, host: &HostIdentity) -> anyhow::Error {
    if let Some(st) = e.status() {
        let what = match st.code {
            StatusCode::CONNECT_INVALID_HOST => format!(
                "host {} refused by the target (Connect Invalid Host): not in the allowed hosts of {nqn}",
                host.hostnqn
            ),
            StatusCode::CONNECT_INVALID_PARAMETERS => {
                format!("unknown subsystem NQN {nqn} at {addr} (Connect Invalid Parameters)")
            }
            _ => format!("{e}"),
        };
        return anyhow!("connect to {addr} ({nqn}): {what}");
    }
    match e {
        HostError::Io(io) => {
            let why = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "connection refused (nothing listens there)".to_string()
                }
                std::io::ErrorKind::TimedOut => "connection timed out (no route?)".to_string(),
                _ => {
                    let s = io.to_string();
                    if s.contains("route") || s.contains("unreachable") {
                        format!("no route to host: {s}")
                    } else {
                        s
                    }
                }
            };
            anyhow!("connect to {addr} ({nqn}): {why}")
        }
        other => anyhow!(
            "connect to {addr} ({nqn}): {}",
            one_line(&other.to_string())
        ),
    }
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

/// Connect one controller, with a one-line error.
pub async fn connect_one(opts: ControllerOptions) -> Result<Controller> {
    check_address(&opts.traddr, opts.trsvcid).await?;
    let addr = opts.address();
    let nqn = opts.subnqn.clone();
    let host = opts.host.clone();
    match tokio::time::timeout(
        Duration::from_millis(opts.connect_timeout_ms + 5_000),
        Controller::connect(opts),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(describe(&e, &addr, &nqn, &host)),
        Err(_) => bail!("connect to {addr} ({nqn}): timed out"),
    }
}

/// The discovery log of a discovery controller: (genctr, entries).
pub async fn discovery_log(
    traddr: &str,
    trsvcid: u16,
    host: &HostIdentity,
    t: &ConnectTuning,
) -> Result<(u64, Vec<DiscoveryEntry>)> {
    check_address(traddr, trsvcid).await?;
    let mut o = nvmp_host::discovery_options(traddr.to_string(), trsvcid);
    o.host = host.clone();
    if let Some(d) = t.hdr_digest {
        o.hdr_digest = d;
    }
    if let Some(d) = t.data_digest {
        o.data_digest = d;
    }
    o.ctrl_loss_tmo_s = Some(0);
    o.tls = t.tls.host_key()?;
    // The host key authenticates where a discovery controller asks for it;
    // the controller key is for the I/O controllers (nvmet does not
    // authenticate discovery controllers, so they cannot prove themselves).
    o.dhchap_secret = t.dhchap.secrets()?.0;
    let addr = o.address();
    let c = Controller::connect(o)
        .await
        .map_err(|e| describe(&e, &addr, nvmp_wire::nqn::DISCOVERY_NQN, host))?;
    let log = nvmp_host::read_discovery_log(&c).await;
    c.disconnect().await;
    let log =
        log.map_err(|e| anyhow!("discovery log from {addr}: {}", one_line(&e.to_string())))?;
    Ok((log.genctr, log.entries))
}

/// Portals to connect: the given ones, or the NVMe subsystem entries of a discovery log.
pub async fn portals(args: &PathArgs, host: &HostIdentity) -> Result<Vec<PortalSpec>> {
    match args.source()? {
        PathSource::Portals(p) => Ok(p),
        PathSource::Discover {
            traddr,
            trsvcid,
            subnqn,
            tuning,
        } => {
            let (_, entries) = discovery_log(&traddr, trsvcid, host, &tuning).await?;
            let mut v: Vec<PortalSpec> = entries
                .iter()
                .filter(|e| {
                    e.subtype == nvmp_wire::log::subtype::NVME
                        && e.trtype == nvmp_wire::log::trtype::TCP
                })
                .filter(|e| subnqn.as_ref().is_none_or(|n| *n == e.subnqn))
                .filter_map(|e| {
                    Some(PortalSpec {
                        traddr: e.traddr.trim_end_matches(['\0', ' ']).to_string(),
                        trsvcid: e.trsvcid.trim_end_matches(['\0', ' ']).parse().ok()?,
                        subnqn: e.subnqn.clone(),
                        // The entry's TREQ/TSAS: TLS where the port requires it.
                        tuning: crate::paths::ConnectTuning {
                            tls: tuning.tls.for_entry(e.treq, e.tsas[0], "").ok()?,
                            ..(*tuning).clone()
                        },
                    })
                })
                .collect();
            // Ports that require TLS when no key was given: left out with a
            // warning, or the error when nothing else is left.
            let mut tls_errors = Vec::new();
            for e in entries.iter().filter(|e| {
                e.subtype == nvmp_wire::log::subtype::NVME
                    && e.trtype == nvmp_wire::log::trtype::TCP
                    && subnqn.as_ref().is_none_or(|n| *n == e.subnqn)
            }) {
                let what = format!(
                    "{}:{} ({})",
                    e.traddr.trim_end_matches(['\0', ' ']),
                    e.trsvcid.trim_end_matches(['\0', ' ']),
                    e.subnqn
                );
                if let Err(err) = tuning.tls.for_entry(e.treq, e.tsas[0], &what) {
                    tls_errors.push(err);
                }
            }
            if v.is_empty() {
                if let Some(e) = tls_errors.into_iter().next() {
                    return Err(e);
                }
            } else {
                for e in tls_errors {
                    eprintln!("nvmp: warning: {e:#}");
                }
            }
            for p in &mut v {
                p.tuning.tls.host_key()?;
            }
            if v.is_empty() {
                match subnqn {
                    Some(n) => bail!(
                        "unknown subsystem NQN {n}: not in the discovery log of {traddr}:{trsvcid}"
                    ),
                    None => {
                        bail!("the discovery log of {traddr}:{trsvcid} lists no NVMe/TCP subsystem")
                    }
                }
            }
            Ok(v)
        }
    }
}

/// Controllers connected for a command.
pub struct Connected {
    pub host: HostIdentity,
    pub ctrls: Vec<Controller>,
}

/// Connect every portal; unreachable ones are reported on stderr (discovery)
/// or fail the command (explicit portals), as `nvme connect-all` / `nvme connect` do.
pub async fn connect_all(args: &PathArgs, multipath: bool) -> Result<Connected> {
    let host = identity(args)?;
    let list = portals(args, &host).await?;
    let mut ctrls = Vec::new();
    let mut errors = Vec::new();
    for p in &list {
        match connect_one(options(p, &host, multipath)).await {
            Ok(c) => ctrls.push(c),
            Err(e) => errors.push(e),
        }
    }
    if ctrls.is_empty() {
        let n = errors.len();
        let first = errors
            .into_iter()
            .next()
            .unwrap_or_else(|| anyhow!("no path could be connected"));
        return Err(if n > 1 {
            first.context(format!("none of {n} paths could be connected"))
        } else {
            first
        });
    }
    // Like `nvme connect-all`: unreachable entries are reported, the others used.
    for e in errors {
        eprintln!("nvmp: warning: {e:#}");
    }
    Ok(Connected { host, ctrls })
}

/// Connect every portal and link the controllers into a multipath layer.
pub async fn multipath(args: &PathArgs, mut config: MpathConfig) -> Result<(Multipath, Connected)> {
    if let Some(r) = args.tuning.read_stall() {
        config.read_stall = r;
    }
    let conn = connect_all(args, true).await?;
    let mp = Multipath::new(config);
    for c in &conn.ctrls {
        let linked = mp
            .add_controller(c.clone())
            .await
            .map_err(|e| anyhow!("{}: {}", c.address(), one_line(&e.to_string())))?;
        for r in &linked.refused {
            eprintln!(
                "nvmp: {}: namespace {} not added: {}",
                linked.ctrl_name, r.nsid, r.reason
            );
        }
    }
    Ok((mp, conn))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn uuids() {
        assert_eq!(
            parse_uuid("4c504853-0000-4000-8000-000000000001").unwrap()[15],
            1
        );
        assert!(parse_uuid("xyz").is_none());
    }
}
