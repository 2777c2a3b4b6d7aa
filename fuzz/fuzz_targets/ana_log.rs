//! ANA log page parser. First 8 input bytes: limits (max groups, max NSIDs).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nvmp_wire::log::{AnaLog, AnaLogLimits};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (l, b) = data.split_at(8);
    let limits = AnaLogLimits {
        max_groups: u32::from_le_bytes([l[0], l[1], l[2], l[3]]),
        max_nsids: u32::from_le_bytes([l[4], l[5], l[6], l[7]]),
    };
    if let Ok(log) = AnaLog::decode(b, limits) {
        let again = AnaLog::decode(&log.encode(false), limits).expect("re-encoded ANA log decodes");
        assert_eq!(again, log);
    }
});
