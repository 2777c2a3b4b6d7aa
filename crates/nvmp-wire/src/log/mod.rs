//! Log pages (NVMe Base 2.0, 5.16.1; NVMe-oF 1.1, 5.4): Asymmetric
//! Namespace Access (0Ch), Discovery (70h), Error Information (01h),
//! SMART / Health Information (02h), Changed Namespace List (04h).

mod ana;
mod discovery;
mod misc;
pub mod resv;

pub use ana::{AnaGroupDesc, AnaLog, AnaLogLimits, AnaState, ANA_DESC_LEN, ANA_HEADER_LEN};
pub use discovery::{
    adrfam, subtype, trtype, DiscoveryEntry, DiscoveryLog, DISCOVERY_ENTRY_LEN,
    DISCOVERY_HEADER_LEN,
};
pub use misc::{
    ChangedNsList, ErrorLogEntry, SmartLog, CHANGED_NS_LIST_LEN, CHANGED_NS_MAX,
    ERROR_LOG_ENTRY_LEN, SMART_LOG_LEN,
};
