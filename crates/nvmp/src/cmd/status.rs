//! `nvmp status --control SOCKET`: a running export's subsystems, paths,
//! ANA states and counters; `--set-iopolicy` changes the policy live.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::control::{request, Request};
use crate::output::OutputFormat;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Control socket of a running `nvmp nbd`.
    #[arg(long = "control", value_name = "SOCKET")]
    pub control: PathBuf,
    /// Change the I/O policy (numa, round-robin, queue-depth, service-time) of every subsystem (or of --subsystem).
    #[arg(long = "set-iopolicy")]
    pub set_iopolicy: Option<nvmp_mpath::IoPolicy>,
    /// Subsystem NQN or name for --set-iopolicy.
    #[arg(long = "subsystem")]
    pub subsystem: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output-format", value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn run(a: StatusArgs) -> Result<()> {
    let req = match a.set_iopolicy {
        Some(p) => Request::SetIopolicy {
            iopolicy: p.to_string(),
            subsystem: a.subsystem.clone(),
        },
        None => Request::Status,
    };
    let r = request(&a.control, &req).await?;
    if a.output.is_json() {
        let mut v = crate::cmd::list_subsys::to_json(&r.hostnqn, &r.hostid, &r.subsystems);
        if let Some(h) = v.get_mut(0).and_then(|h| h.as_object_mut()) {
            h.insert("NBD".into(), serde_json::to_value(&r.nbd)?);
        }
        crate::output::print_json(&v)
    } else {
        print!(
            "{}",
            crate::cmd::list_subsys::to_text(&r.hostnqn, &r.subsystems)
        );
        if let Some(n) = &r.nbd {
            println!(
                "nbd: {} clients ({} total), {} requests, {} reads, {} writes, {} bytes read, {} bytes written, {} errors",
                n.connections_active, n.connections_total, n.requests, n.reads, n.writes, n.bytes_read, n.bytes_written, n.errors
            );
        }
        Ok(())
    }
}
