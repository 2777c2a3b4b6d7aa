//! Reservation data: the Reservation Status data structure (both formats),
//! the Reservation Notification log page and the Register/Acquire/Release
//! data. First input byte: bit 0 = EDS.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nvmp_wire::io::resv::{ResvAcquire, ResvRegister, ResvRelease, ResvStatus};
use nvmp_wire::log::resv::ResvNotification;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, b)) = data.split_first() else {
        return;
    };
    let eds = flags & 1 != 0;
    if let Ok(st) = ResvStatus::decode(b, eds) {
        assert!(st.ctrls.len() <= usize::from(st.regctl));
        let again = ResvStatus::decode(&st.encode(eds), eds).expect("re-encoded status decodes");
        assert_eq!(again.ctrls.len(), st.ctrls.len());
        assert_eq!(
            (again.gen, again.rtype, again.ptpls),
            (st.gen, st.rtype, st.ptpls)
        );
    }
    if let Ok(l) = ResvNotification::decode(b) {
        assert_eq!(ResvNotification::decode(&l.encode()).unwrap(), l);
    }
    let sqe = |s: nvmp_wire::Sqe| {
        let mut s = s;
        s.cdw10 = u32::from(flags) << 1;
        s
    };
    let _ = ResvRegister::decode(&sqe(ResvRegister::default().to_sqe()), b);
    let _ = ResvAcquire::decode(&sqe(ResvAcquire::default().to_sqe()), b);
    let _ = ResvRelease::decode(&sqe(ResvRelease::default().to_sqe()), b);
});
