//! The sans-IO core: shared registry, per-connection queue state machine,
//! command handlers.

pub mod admin;
pub mod connect;
pub mod identify;
pub mod io;
pub mod logs;
pub mod queue;
pub mod state;
pub mod types;

pub use queue::{Completion, Exec, Limits, Output, Queue};
pub use state::{ConnId, ConnSignal, CtrlState, Shared, State};

#[cfg(test)]
mod tests;
