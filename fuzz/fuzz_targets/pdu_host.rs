//! NVMe/TCP PDU decoder, host side (decodes what the peer sends), digests on/off.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "pdu_common.rs"]
mod pdu_common;

fuzz_target!(|data: &[u8]| pdu_common::run(nvmp_wire::pdu::Role::Host, data));
