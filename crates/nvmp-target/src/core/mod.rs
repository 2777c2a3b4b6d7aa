//! The sans-IO core: shared registry, per-connection queue state machine,
//! command handlers.

pub mod admin;
pub mod ccr;
pub mod connect;
pub mod identify;
pub mod io;
pub mod logs;
pub mod queue;
pub mod resv;
pub mod state;
pub mod tx;
pub mod types;
pub mod view;

pub use queue::{Completion, Exec, Limits, Output, Queue};
pub use state::{ConnId, ConnSignal, CtrlState, Shared, State};
pub use tx::{Sink, TxBuf};

#[cfg(test)]
mod tests;
