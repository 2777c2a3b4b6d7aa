//! Cross-Controller Reset: the log page (1Eh) and the command's SQE view.
//! Input byte 0 bit 0 selects the SQE view (the next 64 bytes), else the log.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nvmp_wire::admin::ccr::{CcrLog, CcrResult, CrossControllerResetCmd};
use nvmp_wire::Sqe;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel & 1 == 1 {
        let Some(b) = rest.get(..64) else {
            return;
        };
        if let Ok(sqe) = Sqe::decode(b) {
            if let Ok(c) = CrossControllerResetCmd::from_sqe(&sqe) {
                let again = CrossControllerResetCmd::from_sqe(&c.to_sqe()).expect("re-encoded");
                assert_eq!(again, c);
                let r = CcrResult::from_dw0(sqe.cdw14);
                assert_eq!(CcrResult::from_dw0(r.to_dw0()), r);
            }
        }
        return;
    }
    if let Ok(log) = CcrLog::decode(rest) {
        assert_eq!(CcrLog::decode(&log.encode()).expect("re-encoded"), log);
    }
});
