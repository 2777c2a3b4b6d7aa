//! Fabrics Connect data (1024 bytes) and the Fabrics/admin SQE views.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nvmp_wire::admin::{GetLogPageCmd, IdentifyCmd};
use nvmp_wire::fabrics::{ConnectCmd, ConnectData, PropertyGet, PropertySet};
use nvmp_wire::Sqe;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = ConnectData::decode(data) {
        assert_eq!(ConnectData::decode(&d.encode()).expect("re-encoded"), d);
    }
    if let Ok(s) = Sqe::decode(data) {
        let _ = ConnectCmd::from_sqe(&s);
        let _ = PropertyGet::from_sqe(&s);
        let _ = PropertySet::from_sqe(&s);
        let _ = IdentifyCmd::from_sqe(&s);
        let _ = GetLogPageCmd::from_sqe(&s);
    }
});
