//! Identify Controller and Identify Namespace parsers (the same 4096 bytes fed to both).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nvmp_wire::identify::{IdentifyController, IdentifyNamespace};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = IdentifyController::decode(data) {
        let _ = c.max_transfer_bytes(4096);
        assert_eq!(
            IdentifyController::decode(&c.encode()).expect("re-encoded"),
            c
        );
    }
    if let Ok(n) = IdentifyNamespace::decode(data) {
        let _ = n.block_size();
        assert_eq!(
            IdentifyNamespace::decode(&n.encode()).expect("re-encoded"),
            n
        );
    }
});
