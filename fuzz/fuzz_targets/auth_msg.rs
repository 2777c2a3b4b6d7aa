//! DH-HMAC-CHAP message parser (Authentication Send/Receive payloads).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nvmp_wire::auth::AuthMsg;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = AuthMsg::decode(data) {
        let again = AuthMsg::decode(&m.encode()).expect("re-encoded auth message decodes");
        assert_eq!(again, m);
    }
});
