//! nvmp's in-process benchmarks live in `benches/` (`cargo bench -p
//! nvmp-bench --bench overhead|controller`); this library is empty. See
//! `Cargo.toml` for why they have a crate of their own.
#![forbid(unsafe_code)]
