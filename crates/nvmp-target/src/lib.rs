//! nvmp-target: a userspace NVMe/TCP target, the far end of every nvmp
//! multipath path and a product of its own (no kernel modules needed).
//!
//! - [`config`]: nvmetcli's JSON (`nvmetcli save` shape), validated before
//!   anything listens, errors naming the field (`ports[1].addr.trsvcid: "x"
//!   is not a port number`). Documented extensions: RAM namespaces
//!   (`"device": {"size": "64M"}` or `"path": "ram:64M"`, optional
//!   `"block_size": "4096"`), `param.nvmp_advertise_traddr` (the address put
//!   in discovery entries, for NAT), `trsvcid` `"0"` (ephemeral port),
//!   `param.nvmp_max_queue_size` / `param.nvmp_max_io_queues`.
//! - [`core`]: the sans-IO core: the registry ([`core::state`]), the
//!   per-connection queue state machine ([`core::Queue`]: ICReq/ICResp,
//!   Connect, capsules, R2T/H2CData, C2HData, TermReq, keep-alive and stall
//!   timers), and the command handlers (Fabrics, admin, I/O).
//! - [`backend`]: RAM namespaces (64 KiB chunks read without copying) and
//!   file/block-device namespaces on a fixed thread pool (Flush = fdatasync,
//!   FUA = write + fdatasync; deallocate writes zeroes).
//! - [`driver`]: tokio listeners (one per port, open only while the port is
//!   up and has a subsystem linked) and one task per connection (read all
//!   that is readable, run RAM commands in line, vectored writes of many
//!   PDUs; I/O queues take no lock per command).
//! - [`control`]: [`TargetHandle`] (ANA changes, port down/up, namespaces,
//!   links, fault injection, [`TargetStatus`]) and the Unix control socket
//!   ([`control::socket`], line-delimited JSON).
//! - [`cli`]: `nvmp target run|ana|port|status|fault` ([`cli::TargetCommand`],
//!   [`cli::run_command`]).
//!
//! Fault injection semantics: *delay* holds every response of the port for
//! N ms (in order); *black hole* swallows every PDU after ICResp and answers
//! nothing while TCP stays open (the controller's keep-alive timer still
//! runs, so after KATO it is torn down, as nvmet would); *fail next* fails
//! the next N I/O commands on the port with a chosen status (+DNR); *hold*
//! parks every I/O command of the port for N ms before it runs (a command
//! late in the network: a Cross-Controller Reset meanwhile refuses it);
//! *stall* makes every file-backend operation take N ms longer once started
//! (a slow disk: a Cross-Controller Reset then completes through its log).
//!
//! Bounds: connections (1024; at the limit the oldest connection without a
//! Connect is closed to make room), I/O queues per controller (16, Set
//! Features grants at most that), queue depth (the Connect SQSIZE, at most
//! 128 by default; unsent completions keep their slot), reply bytes held for
//! a peer (2 MiB per connection, 256 MiB per target, reads reserve theirs at
//! admission; past it the connection stops reading so TCP pushes back),
//! write data asked for with R2T (4 MiB per connection), file operations
//! (8 threads, 32 per connection), PDU size (MAXH2CDATA 128 KiB; in-capsule
//! data per port), MDTS 1 MiB, AERs (AERL+1 = 4), pending events per
//! controller (16), a started PDU must complete within 5 s, ICReq+Connect
//! within 10 s.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use nvmp_target::{TargetConfig, TargetHandle};
//! use nvmp_wire::log::AnaState;
//! let cfg = TargetConfig::load(std::path::Path::new("target.json"))?;
//! let t = TargetHandle::start(cfg).await?;
//! t.set_ana(1, 1, AnaState::INACCESSIBLE)?;
//! t.port_down(2)?;
//! println!("{}", serde_json::to_string_pretty(&t.status())?);
//! t.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod backend;
pub mod cli;
pub mod config;
pub mod control;
pub mod core;
pub mod driver;

pub use config::{ConfigError, TargetConfig};
pub use control::{ControlError, FailNext, Fault, TargetHandle, TargetStatus};
