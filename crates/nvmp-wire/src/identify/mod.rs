//! Identify data structures (NVMe Base 2.0, 5.17.2): Identify Controller
//! (CNS 01h), Identify Namespace (CNS 00h), the active namespace ID list
//! (CNS 02h) and the namespace identification descriptor list (CNS 03h).
//! Each is 4096 bytes.

mod ctrl;
mod ns;
mod nsid;

pub use ctrl::{cmic, IdentifyController};
pub use ns::{nmic, IdentifyNamespace, LbaFormat, MAX_LBAF};
pub use nsid::{
    decode_ns_id_descriptors, decode_ns_list, encode_ns_id_descriptors, encode_ns_list,
    NsIdDescriptor, MAX_NS_LIST,
};

/// Size of every Identify data structure.
pub const IDENTIFY_LEN: usize = 4096;
