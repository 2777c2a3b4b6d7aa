//! TLS key material from untrusted text: the PSK interchange format, PSK
//! identities (as a host sends them in its ClientHello) and key files.
//! Whatever parses must print back to text that parses to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nvmp_tls::{ConfiguredPsk, KeyStore, PskIdentity};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(k) = ConfiguredPsk::parse(text) {
        let again = ConfiguredPsk::parse(&k.to_interchange()).expect("re-encoded key parses");
        assert_eq!(again, k);
    }
    if let Ok(id) = PskIdentity::parse(text) {
        let again = PskIdentity::parse(&id.to_string()).expect("re-printed identity parses");
        assert_eq!(again, id);
    }
    let mut store = KeyStore::new();
    let _ = store.add_text(text, "fuzz");
    // A target resolving the input as an identity offered by a host.
    let mut t = KeyStore::new();
    let _ = t.insert_host(
        "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001",
        ConfiguredPsk::new(1, vec![7; 32]).expect("key"),
    );
    let _ = t.lookup(text);
});
