//! Asymmetric Namespace Access log page (NVMe Base 2.0, 5.16.1.13, Figures 224-226).

use core::fmt;

use crate::error::{DecodeError, DecodeErrorKind};
use crate::reader::{Reader, Writer};

/// Header: CHGCNT u64, NGRPS u16, 6 reserved bytes.
pub const ANA_HEADER_LEN: usize = 16;
/// Group descriptor without its NSID list: ANAGRPID, NNSIDS, CHGCNT, ANAS, 15 reserved.
pub const ANA_DESC_LEN: usize = 32;

/// An ANA state (ANAS bits 3:0). Open newtype: unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct AnaState(pub u8);

impl AnaState {
    pub const OPTIMIZED: Self = Self(0x1);
    pub const NON_OPTIMIZED: Self = Self(0x2);
    pub const INACCESSIBLE: Self = Self(0x3);
    pub const PERSISTENT_LOSS: Self = Self(0x4);
    pub const CHANGE: Self = Self(0xF);

    /// The states in which I/O may be sent (optimized, non-optimized).
    pub const fn is_usable(self) -> bool {
        matches!(self.0, 0x1 | 0x2)
    }
    /// Linux's name for the state (nvmet configfs, sysfs `ana_state`).
    pub const fn name(self) -> &'static str {
        match self.0 {
            0x1 => "optimized",
            0x2 => "non-optimized",
            0x3 => "inaccessible",
            0x4 => "persistent-loss",
            0xF => "change",
            _ => "invalid",
        }
    }
}

impl fmt::Display for AnaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parse one of [`AnaState::name`]'s names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAnaState(pub String);

impl fmt::Display for UnknownAnaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown ANA state {:?} (optimized, non-optimized, inaccessible, persistent-loss, change)", self.0)
    }
}
impl std::error::Error for UnknownAnaState {}

impl core::str::FromStr for AnaState {
    type Err = UnknownAnaState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "optimized" => Self::OPTIMIZED,
            "non-optimized" => Self::NON_OPTIMIZED,
            "inaccessible" => Self::INACCESSIBLE,
            "persistent-loss" => Self::PERSISTENT_LOSS,
            "change" => Self::CHANGE,
            _ => return Err(UnknownAnaState(s.to_owned())),
        })
    }
}

/// One ANA group descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AnaGroupDesc {
    pub grpid: u32,
    pub change_count: u64,
    pub state: AnaState,
    /// The group's NSIDs (empty when the log was read with RGO).
    pub nsids: Vec<u32>,
}

/// The ANA log page.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AnaLog {
    pub change_count: u64,
    pub groups: Vec<AnaGroupDesc>,
}

/// Limits on what a decoded ANA log may hold (from Identify Controller:
/// ANAGRPMAX / NANAGRPID for groups, MNAN / NN for NSIDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnaLogLimits {
    pub max_groups: u32,
    pub max_nsids: u32,
}

impl Default for AnaLogLimits {
    /// Generous limits for when the controller's are not known: 1024 groups, 65536 NSIDs.
    fn default() -> Self {
        Self {
            max_groups: 1024,
            max_nsids: 65536,
        }
    }
}

impl AnaLog {
    /// Encoded length (with or without the NSID lists).
    pub fn encoded_len(&self, rgo: bool) -> usize {
        ANA_HEADER_LEN
            + self
                .groups
                .iter()
                .map(|g| ANA_DESC_LEN + if rgo { 0 } else { 4 * g.nsids.len() })
                .sum::<usize>()
    }

    /// Encode. With `rgo` ("Return Groups Only") the NSID lists are omitted
    /// and NNSIDS is 0. At most 65535 groups are encoded (NGRPS is 16 bits).
    pub fn encode(&self, rgo: bool) -> Vec<u8> {
        let groups = &self.groups[..self.groups.len().min(usize::from(u16::MAX))];
        let mut b = vec![0u8; self.encoded_len(rgo)];
        let mut w = Writer::new(&mut b);
        w.u64(self.change_count).u16(groups.len() as u16).zeros(6);
        for g in groups {
            let n = if rgo { 0 } else { g.nsids.len() };
            w.u32(g.grpid)
                .u32(n as u32)
                .u64(g.change_count)
                .u8(g.state.0 & 0xF)
                .zeros(15);
            for id in g.nsids.iter().take(n) {
                w.u32(*id);
            }
        }
        let len = w.position();
        b.truncate(len);
        b
    }

    /// Decode, bounded by `limits` and by the buffer (bytes after the last
    /// descriptor are ignored: hosts read into a fixed-size buffer).
    pub fn decode(b: &[u8], limits: AnaLogLimits) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let change_count = r.u64("ANA.CHGCNT")?;
        let ngrps = r.u16("ANA.NGRPS")?;
        r.skip("ANA.RSVD", 6)?;
        // NGRPS "shall not exceed the value of the ANAGRPMAX field" (or NANAGRPID).
        if u32::from(ngrps) > limits.max_groups {
            return Err(DecodeError::at(
                "ANA.NGRPS",
                8,
                DecodeErrorKind::OutOfRange {
                    value: ngrps.into(),
                },
            ));
        }
        // Each descriptor takes at least 32 bytes: bound the allocation by the buffer too.
        let cap = usize::from(ngrps).min(r.remaining() / ANA_DESC_LEN);
        let mut groups = Vec::with_capacity(cap);
        let mut total_nsids: u32 = 0;
        for _ in 0..ngrps {
            let at = r.position();
            let grpid = r.u32("ANA.ANAGRPID")?;
            // "ANA Group ID … 0h … is not a valid ANA group" (Linux rejects it too).
            if grpid == 0 {
                return Err(DecodeError::at(
                    "ANA.ANAGRPID",
                    at,
                    DecodeErrorKind::Invalid,
                ));
            }
            let nnsids = r.u32("ANA.NNSIDS")?;
            let gchg = r.u64("ANA.Desc.CHGCNT")?;
            let anas = r.u8("ANA.ANAS")?;
            r.skip("ANA.Desc.RSVD", 15)?;
            total_nsids = total_nsids
                .checked_add(nnsids)
                .filter(|t| *t <= limits.max_nsids)
                .ok_or(DecodeError::at(
                    "ANA.NNSIDS",
                    at + 4,
                    DecodeErrorKind::OutOfRange {
                        value: nnsids.into(),
                    },
                ))?;
            // The NSID list must fit in the buffer: checked multiplication, bounded sub-reader.
            let list_len = usize::try_from(nnsids)
                .ok()
                .and_then(|n| n.checked_mul(4))
                .ok_or(DecodeError::at(
                    "ANA.NNSIDS",
                    at + 4,
                    DecodeErrorKind::Overflow,
                ))?;
            let mut lr = r.sub("ANA.NSID", list_len)?;
            let mut nsids = Vec::with_capacity(nnsids as usize);
            for _ in 0..nnsids {
                let o = at + ANA_DESC_LEN + lr.position();
                let id = lr.u32("ANA.NSID")?;
                // 0h is not a valid NSID and FFFFFFFFh is the broadcast value, never a namespace.
                if id == 0 || id == u32::MAX {
                    return Err(DecodeError::at(
                        "ANA.NSID",
                        o,
                        DecodeErrorKind::OutOfRange { value: id.into() },
                    ));
                }
                nsids.push(id);
            }
            groups.push(AnaGroupDesc {
                grpid,
                change_count: gchg,
                state: AnaState(anas & 0xF),
                nsids,
            });
        }
        Ok(Self {
            change_count,
            groups,
        })
    }

    /// The state of the group containing `nsid`, if listed.
    pub fn state_of(&self, nsid: u32) -> Option<AnaState> {
        self.groups
            .iter()
            .find(|g| g.nsids.contains(&nsid))
            .map(|g| g.state)
    }
}

#[cfg(test)]
mod tests;
