//! Discovery log page parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nvmp_wire::log::DiscoveryLog;

fuzz_target!(|data: &[u8]| {
    let _ = DiscoveryLog::decode_header(data);
    if let Ok(log) = DiscoveryLog::decode(data) {
        assert!(log.entries.len() as u64 == log.numrec);
        let again = DiscoveryLog::decode(&log.encode()).expect("re-encoded discovery log decodes");
        assert_eq!(again, log);
    }
});
