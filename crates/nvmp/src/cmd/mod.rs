//! Host commands.
pub mod discover;
pub mod identify;
pub mod io;
pub mod list_subsys;
pub mod resv;
pub mod status;
pub mod tls_key;
