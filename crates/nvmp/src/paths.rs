//! How host commands name their paths, as nvme-cli does: one portal
//! (`-t tcp -a ADDR -s PORT -n NQN`), repeated `--portal ADDR:PORT` with
//! `-n NQN`, `--discover ADDR:PORT` (every entry of the discovery log, like
//! `nvme connect-all`), or libnvme's `--config FILE`; plus `nvme connect`'s
//! host identity and tuning options.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

/// Path specification and connect options shared by the host commands.
#[derive(Debug, Clone, Default, Args)]
pub struct PathArgs {
    /// Transport type (only tcp).
    #[arg(
        short = 't',
        long = "transport",
        default_value = "tcp",
        help_heading = "Paths"
    )]
    pub transport: String,
    /// Transport address of one portal.
    #[arg(short = 'a', long = "traddr", help_heading = "Paths")]
    pub traddr: Option<String>,
    /// Transport service ID (TCP port) of that portal.
    #[arg(short = 's', long = "trsvcid", help_heading = "Paths")]
    pub trsvcid: Option<u16>,
    /// Subsystem NQN.
    #[arg(short = 'n', long = "nqn", help_heading = "Paths")]
    pub nqn: Option<String>,
    /// A portal ADDR:PORT of the subsystem given with -n (repeatable).
    #[arg(long = "portal", value_name = "ADDR:PORT", help_heading = "Paths")]
    pub portals: Vec<String>,
    /// Connect to every subsystem port the discovery controller at ADDR:PORT lists (with -n: only that subsystem).
    #[arg(long = "discover", value_name = "ADDR:PORT", help_heading = "Paths")]
    pub discover: Option<String>,
    /// libnvme config.json (hosts → subsystems → ports).
    #[arg(long = "config", value_name = "FILE", help_heading = "Paths")]
    pub config: Option<PathBuf>,

    /// Host NQN (default: /etc/nvme/hostnqn, else generated).
    #[arg(short = 'q', long = "hostnqn", help_heading = "Connect options")]
    pub hostnqn: Option<String>,
    /// Host ID, a UUID (default: /etc/nvme/hostid, else generated).
    #[arg(short = 'I', long = "hostid", help_heading = "Connect options")]
    pub hostid: Option<String>,
    #[command(flatten)]
    pub tuning: TuningArgs,
}

/// `nvme connect`'s tuning options.
#[derive(Debug, Clone, Default, Args)]
pub struct TuningArgs {
    /// Keep-alive timeout in seconds (0 disables).
    #[arg(short = 'k', long = "keep-alive-tmo", help_heading = "Connect options")]
    pub keep_alive_tmo: Option<u32>,
    /// Seconds between reconnect attempts.
    #[arg(
        short = 'c',
        long = "reconnect-delay",
        help_heading = "Connect options"
    )]
    pub reconnect_delay: Option<u64>,
    /// Seconds to keep reconnecting before giving a controller up (-1: forever).
    #[arg(
        short = 'l',
        long = "ctrl-loss-tmo",
        allow_hyphen_values = true,
        help_heading = "Connect options"
    )]
    pub ctrl_loss_tmo: Option<i64>,
    /// Seconds after which I/O queued on a lost path fails (-1: off).
    #[arg(
        long = "fast_io_fail_tmo",
        alias = "fast-io-fail-tmo",
        allow_hyphen_values = true,
        help_heading = "Connect options"
    )]
    pub fast_io_fail_tmo: Option<i64>,
    /// Number of I/O queues.
    #[arg(short = 'i', long = "nr-io-queues", help_heading = "Connect options")]
    pub nr_io_queues: Option<u16>,
    /// I/O queue size.
    #[arg(short = 'Q', long = "queue-size", help_heading = "Connect options")]
    pub queue_size: Option<u16>,
    /// Enable the header digest (CRC32C).
    #[arg(short = 'g', long = "hdr-digest", help_heading = "Connect options")]
    pub hdr_digest: bool,
    /// Enable the data digest (CRC32C).
    #[arg(short = 'G', long = "data-digest", help_heading = "Connect options")]
    pub data_digest: bool,
    /// Reads leave an I/O queue that completed nothing for this many ms
    /// while commands were outstanding, and a controller so stalled with
    /// writes waiting is reset through another one (Cross-Controller
    /// Reset). Default 500; 0: off (reads wait for the I/O timeout, as Linux).
    #[arg(long = "read-stall-ms", value_name = "MS", help_heading = "Multipath")]
    pub read_stall_ms: Option<u64>,
    #[command(flatten)]
    pub tls: crate::tls_cli::TlsArgs,
    #[command(flatten)]
    pub dhchap: crate::dhchap_cli::DhchapArgs,
}

impl TuningArgs {
    /// The multipath read stall rule from `--read-stall-ms` (None: default).
    pub fn read_stall(&self) -> Option<nvmp_mpath::disposition::ReadStall> {
        self.read_stall_ms.map(|ms| {
            nvmp_mpath::disposition::ReadStall(
                (ms > 0).then(|| std::time::Duration::from_millis(ms)),
            )
        })
    }
}

/// Per-portal overrides (from the command line or config.json); None = default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectTuning {
    pub keep_alive_tmo: Option<u32>,
    pub reconnect_delay: Option<u64>,
    pub ctrl_loss_tmo: Option<i64>,
    pub fast_io_fail_tmo: Option<i64>,
    pub nr_io_queues: Option<u16>,
    pub queue_size: Option<u16>,
    pub hdr_digest: Option<bool>,
    pub data_digest: Option<bool>,
    pub tls: crate::tls_cli::TlsTuning,
    pub dhchap: crate::dhchap_cli::DhchapTuning,
}

impl ConnectTuning {
    /// `self`'s values where set, else `base`'s.
    pub fn or(&self, base: &ConnectTuning) -> ConnectTuning {
        ConnectTuning {
            keep_alive_tmo: self.keep_alive_tmo.or(base.keep_alive_tmo),
            reconnect_delay: self.reconnect_delay.or(base.reconnect_delay),
            ctrl_loss_tmo: self.ctrl_loss_tmo.or(base.ctrl_loss_tmo),
            fast_io_fail_tmo: self.fast_io_fail_tmo.or(base.fast_io_fail_tmo),
            nr_io_queues: self.nr_io_queues.or(base.nr_io_queues),
            queue_size: self.queue_size.or(base.queue_size),
            hdr_digest: self.hdr_digest.or(base.hdr_digest),
            data_digest: self.data_digest.or(base.data_digest),
            tls: self.tls.or(&base.tls),
            dhchap: self.dhchap.or(&base.dhchap),
        }
    }
}

impl TuningArgs {
    pub fn to_tuning(&self) -> ConnectTuning {
        ConnectTuning {
            keep_alive_tmo: self.keep_alive_tmo,
            reconnect_delay: self.reconnect_delay,
            ctrl_loss_tmo: self.ctrl_loss_tmo,
            fast_io_fail_tmo: self.fast_io_fail_tmo,
            nr_io_queues: self.nr_io_queues,
            queue_size: self.queue_size,
            hdr_digest: self.hdr_digest.then_some(true),
            data_digest: self.data_digest.then_some(true),
            tls: self.tls.to_tuning(),
            dhchap: self.dhchap.to_tuning(),
        }
    }
}

/// One I/O controller to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSpec {
    pub traddr: String,
    pub trsvcid: u16,
    pub subnqn: String,
    pub tuning: ConnectTuning,
}

/// Where the paths come from, after parsing the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSource {
    /// Explicit portals.
    Portals(Vec<PortalSpec>),
    /// A discovery controller; entries optionally filtered by subsystem NQN.
    Discover {
        traddr: String,
        trsvcid: u16,
        subnqn: Option<String>,
        /// Boxed: the connect options are large, the portal list is a pointer.
        tuning: Box<ConnectTuning>,
    },
}

/// Split `ADDR:PORT` (IPv6 as `[::1]:4420`).
pub fn parse_portal(s: &str) -> Result<(String, u16)> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .with_context(|| format!("bad address {s:?}: expected [IPv6]:PORT"))?;
        (h, p)
    } else {
        s.rsplit_once(':')
            .with_context(|| format!("bad address {s:?}: expected ADDR:PORT"))?
    };
    if host.is_empty() {
        bail!("bad address {s:?}: empty host");
    }
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("bad address {s:?}: {port:?} is not a TCP port"))?;
    Ok((host.to_string(), port))
}

impl PathArgs {
    /// Resolve the arguments into a path source (config files are read here).
    pub fn source(&self) -> Result<PathSource> {
        if self.transport != "tcp" {
            bail!("transport {:?} is not supported (only tcp)", self.transport);
        }
        let base = self.tuning.to_tuning();
        base.tls.host_key()?;
        base.dhchap.secrets()?;
        let kinds = [
            self.traddr.is_some(),
            !self.portals.is_empty(),
            self.discover.is_some(),
            self.config.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            0 => bail!("no path given: use -a ADDR -s PORT -n NQN, --portal ADDR:PORT -n NQN, --discover ADDR:PORT or --config FILE"),
            1 => {}
            _ => bail!("give paths one way: -a/-s, --portal, --discover or --config"),
        }
        if let Some(d) = &self.discover {
            let (traddr, trsvcid) = parse_portal(d)?;
            return Ok(PathSource::Discover {
                traddr,
                trsvcid,
                subnqn: self.nqn.clone(),
                tuning: Box::new(base),
            });
        }
        if let Some(file) = &self.config {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let hosts = crate::libnvme_config::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let mut portals: Vec<PortalSpec> = hosts
                .into_iter()
                .flat_map(|h| h.portals)
                .filter(|p| self.nqn.as_ref().is_none_or(|n| *n == p.subnqn))
                .map(|mut p| {
                    // Command-line options override the file's.
                    p.tuning = base.or(&p.tuning);
                    p
                })
                .collect();
            portals.dedup();
            if portals.is_empty() {
                bail!(
                    "{}: no tcp port{}",
                    file.display(),
                    self.nqn
                        .as_ref()
                        .map(|n| format!(" for {n}"))
                        .unwrap_or_default()
                );
            }
            return Ok(PathSource::Portals(portals));
        }
        let nqn = self
            .nqn
            .clone()
            .context("missing subsystem NQN: give -n NQN")?;
        let mut portals = Vec::new();
        if let Some(a) = &self.traddr {
            let trsvcid = self.trsvcid.unwrap_or(4420);
            portals.push(PortalSpec {
                traddr: a.clone(),
                trsvcid,
                subnqn: nqn.clone(),
                tuning: base.clone(),
            });
        }
        for p in &self.portals {
            let (traddr, trsvcid) = parse_portal(p)?;
            portals.push(PortalSpec {
                traddr,
                trsvcid,
                subnqn: nqn.clone(),
                tuning: base.clone(),
            });
        }
        Ok(PathSource::Portals(portals))
    }

    /// The config file's host NQN / ID when the command line gives none.
    pub fn config_identity(&self) -> Result<(Option<String>, Option<String>)> {
        let Some(file) = &self.config else {
            return Ok((None, None));
        };
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let hosts = crate::libnvme_config::parse(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        Ok(hosts
            .into_iter()
            .next()
            .map(|h| (h.hostnqn, h.hostid))
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        p: PathArgs,
    }

    fn parse(args: &[&str]) -> Result<PathSource> {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).unwrap().p.source()
    }

    #[test]
    fn read_stall_flag() {
        let t = |a: &[&str]| {
            let mut v = vec!["t"];
            v.extend_from_slice(a);
            T::try_parse_from(v).unwrap().p.tuning.read_stall()
        };
        use nvmp_mpath::disposition::ReadStall;
        assert_eq!(t(&[]), None, "the multipath default stays");
        assert_eq!(
            t(&["--read-stall-ms", "0"]),
            Some(ReadStall(None)),
            "0: off"
        );
        assert_eq!(
            t(&["--read-stall-ms", "250"]),
            Some(ReadStall(Some(std::time::Duration::from_millis(250))))
        );
    }

    #[test]
    fn portal_forms() {
        assert_eq!(
            parse_portal("127.0.0.1:4420").unwrap(),
            ("127.0.0.1".into(), 4420)
        );
        assert_eq!(parse_portal("[::1]:4421").unwrap(), ("::1".into(), 4421));
        assert!(parse_portal("127.0.0.1")
            .unwrap_err()
            .to_string()
            .contains("bad address"));
        assert!(parse_portal("h:99999")
            .unwrap_err()
            .to_string()
            .contains("not a TCP port"));
        assert!(parse_portal(":1").is_err());
    }

    #[test]
    fn sources() {
        let s = parse(&[
            "-a",
            "127.0.0.1",
            "-s",
            "4420",
            "-n",
            "nqn.x",
            "-c",
            "1",
            "-l",
            "-1",
            "-g",
        ])
        .unwrap();
        let PathSource::Portals(p) = s else { panic!() };
        assert_eq!(p[0].trsvcid, 4420);
        assert_eq!(p[0].tuning.reconnect_delay, Some(1));
        assert_eq!(p[0].tuning.ctrl_loss_tmo, Some(-1));
        assert_eq!(p[0].tuning.hdr_digest, Some(true));
        let s = parse(&[
            "--portal",
            "127.0.0.1:1",
            "--portal",
            "127.0.0.1:2",
            "-n",
            "nqn.x",
        ])
        .unwrap();
        let PathSource::Portals(p) = s else { panic!() };
        assert_eq!(p.len(), 2);
        let s = parse(&["--discover", "127.0.0.1:8009"]).unwrap();
        assert!(matches!(
            s,
            PathSource::Discover {
                trsvcid: 8009,
                subnqn: None,
                ..
            }
        ));
        assert!(parse(&[])
            .unwrap_err()
            .to_string()
            .contains("no path given"));
        assert!(parse(&["--portal", "127.0.0.1:1"])
            .unwrap_err()
            .to_string()
            .contains("-n NQN"));
        assert!(parse(&["-t", "rdma", "-a", "x"])
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        assert!(parse(&["-a", "x", "--discover", "y:1"])
            .unwrap_err()
            .to_string()
            .contains("one way"));
    }
}
