//! Namespace identification descriptor list, active NSID list and changed namespace list parsers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nvmp_wire::identify::{decode_ns_id_descriptors, decode_ns_list, encode_ns_id_descriptors};
use nvmp_wire::log::ChangedNsList;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = decode_ns_id_descriptors(data) {
        // Descriptors that fit in 4096 bytes round-trip.
        if data.len() <= 4096 {
            assert_eq!(
                decode_ns_id_descriptors(&encode_ns_id_descriptors(&d)).expect("re-encoded"),
                d
            );
        }
    }
    let _ = decode_ns_list(data);
    let _ = ChangedNsList::decode(data);
});
