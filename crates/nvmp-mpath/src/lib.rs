//! Native NVMe multipath in userspace, after Linux's design (Christoph
//! Hellwig, "nvme multipath support", 2017).
//!
//! - Controllers with the same subsystem NQN are linked into one
//!   [`Subsystem`]; a duplicate CNTLID is refused.
//! - A namespace seen through several controllers becomes one
//!   [`NamespaceHead`] when NSID and identifiers (UUID, NGUID, EUI-64, CSI)
//!   match; a mismatch is refused, naming the identifier.
//! - Path state comes from the controller state and the per-namespace ANA
//!   state; [`select::select`] is a pure function of them and the
//!   [`IoPolicy`].
//! - Commands are not cloned: each goes down one path as it is. A path error
//!   (status type 3h, transport failure, timeout) without DNR is failed over
//!   to another path ([`disposition::decide`]); other errors go back to the
//!   caller after Linux's retry rules.
//! - While no path is usable, commands wait while any controller may come
//!   back, and fail once none can.
#![forbid(unsafe_code)]

pub mod ana;
mod blockdev;
pub mod ccr;
pub mod disposition;
pub mod head;
pub mod ids;
pub mod latency;
mod local;
mod monitor;
pub mod numa;
pub mod path;
pub mod policy;
pub mod registry;
pub mod resv;
pub mod run;
pub mod select;
pub mod stats;
pub mod subsys;

pub use head::{IoError, NamespaceHead, RequeuePolicy};
pub use policy::IoPolicy;
pub use registry::{Linked, MpathConfig, MpathError, Multipath, PathRefusal};
pub use subsys::Subsystem;
