//! The active namespace ID list (CNS 02h) and the namespace identification
//! descriptor list (CNS 03h; NVMe Base 2.0, Figures 276-277).

use super::IDENTIFY_LEN;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::reader::Reader;

/// "A list of up to 1,024 NSIDs" (4096 bytes / 4).
pub const MAX_NS_LIST: usize = IDENTIFY_LEN / 4;

/// A namespace identification descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NsIdDescriptor {
    /// NIDT 1h, NIDL 8h.
    Eui64([u8; 8]),
    /// NIDT 2h, NIDL 10h.
    Nguid([u8; 16]),
    /// NIDT 3h, NIDL 10h.
    Uuid([u8; 16]),
    /// NIDT 4h, NIDL 1h: Command Set Identifier.
    Csi(u8),
    /// Another type, kept as received.
    Unknown { nidt: u8, data: Vec<u8> },
}

impl NsIdDescriptor {
    pub fn nidt(&self) -> u8 {
        match self {
            NsIdDescriptor::Eui64(_) => 1,
            NsIdDescriptor::Nguid(_) => 2,
            NsIdDescriptor::Uuid(_) => 3,
            NsIdDescriptor::Csi(_) => 4,
            NsIdDescriptor::Unknown { nidt, .. } => *nidt,
        }
    }
    fn data(&self) -> &[u8] {
        match self {
            NsIdDescriptor::Eui64(d) => d,
            NsIdDescriptor::Nguid(d) | NsIdDescriptor::Uuid(d) => d,
            NsIdDescriptor::Csi(c) => core::slice::from_ref(c),
            NsIdDescriptor::Unknown { data, .. } => data,
        }
    }
}

/// Encode into 4096 bytes; descriptors that do not fit (or are not
/// encodable: NIDT 0, data over 255 bytes) are dropped.
pub fn encode_ns_id_descriptors(d: &[NsIdDescriptor]) -> Vec<u8> {
    let mut b = vec![0u8; IDENTIFY_LEN];
    let mut off = 0usize;
    for x in d {
        let data = x.data();
        let Ok(nidl) = u8::try_from(data.len()) else {
            continue;
        };
        let end = off + 4 + data.len();
        if x.nidt() == 0 || end > IDENTIFY_LEN {
            continue;
        }
        b[off] = x.nidt();
        b[off + 1] = nidl;
        b[off + 4..end].copy_from_slice(data);
        off = end;
    }
    b
}

fn fixed<const N: usize>(data: &[u8], off: usize) -> Result<[u8; N], DecodeError> {
    <[u8; N]>::try_from(data).map_err(|_| {
        DecodeError::at(
            "NsIdDesc.NIDL",
            off + 1,
            DecodeErrorKind::OutOfRange {
                value: data.len() as u64,
            },
        )
    })
}

/// Decode a descriptor list: "The list is terminated by a descriptor with NIDT cleared to 0h"
/// (or by the end of the buffer).
pub fn decode_ns_id_descriptors(b: &[u8]) -> Result<Vec<NsIdDescriptor>, DecodeError> {
    let mut r = Reader::new(b);
    let mut out = Vec::new();
    while r.remaining() >= 4 {
        let off = r.position();
        let nidt = r.u8("NsIdDesc.NIDT")?;
        if nidt == 0 {
            break;
        }
        let nidl = r.u8("NsIdDesc.NIDL")?;
        r.skip("NsIdDesc.RSVD", 2)?;
        let data = r.take("NsIdDesc.NID", usize::from(nidl))?;
        // Figure 277: NIDL is "8h" for EUI64, "10h" for NGUID and UUID, "1h" for CSI.
        out.push(match nidt {
            1 => NsIdDescriptor::Eui64(fixed(data, off)?),
            2 => NsIdDescriptor::Nguid(fixed(data, off)?),
            3 => NsIdDescriptor::Uuid(fixed(data, off)?),
            4 => NsIdDescriptor::Csi(fixed::<1>(data, off)?[0]),
            _ => NsIdDescriptor::Unknown {
                nidt,
                data: data.to_vec(),
            },
        });
    }
    Ok(out)
}

/// Encode up to 1024 NSIDs into 4096 bytes (the rest is zero).
pub fn encode_ns_list(ids: &[u32]) -> Vec<u8> {
    let mut b = vec![0u8; IDENTIFY_LEN];
    for (id, c) in ids.iter().zip(b.chunks_exact_mut(4)) {
        c.copy_from_slice(&id.to_le_bytes());
    }
    b
}

/// Decode an active namespace ID list: NSIDs up to the first zero entry.
pub fn decode_ns_list(b: &[u8]) -> Result<Vec<u32>, DecodeError> {
    let mut r = Reader::new(b);
    let mut out = Vec::new();
    let mut prev = 0u32;
    while r.remaining() >= 4 && out.len() < MAX_NS_LIST {
        let off = r.position();
        let id = r.u32("NsList.NSID")?;
        if id == 0 {
            break;
        }
        // "… active NSIDs … in increasing order"; FFFFFFFFh is the broadcast value, never an NSID.
        if id <= prev || id == u32::MAX {
            return Err(DecodeError::at(
                "NsList.NSID",
                off,
                DecodeErrorKind::OutOfRange { value: id.into() },
            ));
        }
        prev = id;
        out.push(id);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
