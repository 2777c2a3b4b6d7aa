//! Fabrics commands (NVMe-oF 1.1, section 3.3): Connect and its 1024-byte
//! data, Property Get/Set with the controller properties, Disconnect.
//!
//! A Fabrics SQE is `OPC 7Fh | rsvd | CID | FCTYPE (byte 4) | rsvd | SGL1
//! (bytes 24..40) | command specific (bytes 40..64)`; bytes 40..64 are CDW10..15.

use crate::error::DecodeError;
use crate::nqn::{Nqn, NQN_FIELD_LEN};
use crate::reader::Reader;
use crate::sqe::{FabricsType, Sqe};
use crate::text;

/// Size of the Connect command's data.
pub const CONNECT_DATA_LEN: usize = 1024;

fn expect_fabrics(sqe: &Sqe, t: FabricsType, field: &'static str) -> Result<(), DecodeError> {
    if !sqe.is_fabrics() || sqe.fctype() != t {
        return Err(DecodeError::at(
            field,
            4,
            crate::error::DecodeErrorKind::Invalid,
        ));
    }
    Ok(())
}

/// The Connect command (NVMe-oF 1.1, Figure 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnectCmd {
    /// Record format; 0 is the only one defined.
    pub recfmt: u16,
    /// Queue ID: 0 for the admin queue.
    pub qid: u16,
    /// Submission queue size, 0's based.
    pub sqsize: u16,
    /// Connect attributes (bit 2: I/O queue deletion, bits 1:0 priority).
    pub cattr: u8,
    /// Keep Alive Timeout in milliseconds (admin queue only; 0 disables).
    pub kato_ms: u32,
}

impl ConnectCmd {
    /// The SQE; DPTR is left zero for the transport to fill.
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::fabrics(FabricsType::CONNECT);
        s.cdw10 = u32::from(self.recfmt) | (u32::from(self.qid) << 16);
        s.cdw11 = u32::from(self.sqsize) | (u32::from(self.cattr) << 16);
        s.cdw12 = self.kato_ms;
        s
    }
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        expect_fabrics(sqe, FabricsType::CONNECT, "Connect.FCTYPE")?;
        Ok(Self {
            recfmt: sqe.cdw10 as u16,
            qid: (sqe.cdw10 >> 16) as u16,
            sqsize: sqe.cdw11 as u16,
            cattr: (sqe.cdw11 >> 16) as u8,
            kato_ms: sqe.cdw12,
        })
    }
}

/// Connect command data (NVMe-oF 1.1, Figure 21): 1024 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectData {
    pub hostid: [u8; 16],
    /// 0xFFFF on the admin queue of a dynamic controller; the CNTLID to join on I/O queues.
    pub cntlid: u16,
    pub subnqn: String,
    /// The host's name for itself, as sent: possibly empty (SPDK sends an
    /// all-NUL HOSTNQN unless told one) and not checked against the NQN
    /// format, as Linux nvmet takes it (see [`host_nqn_field`]).
    pub hostnqn: String,
}

impl ConnectData {
    pub fn encode(&self) -> [u8; CONNECT_DATA_LEN] {
        let mut b = [0u8; CONNECT_DATA_LEN];
        b[0..16].copy_from_slice(&self.hostid);
        b[16..18].copy_from_slice(&self.cntlid.to_le_bytes());
        text::put(&mut b[256..512], &self.subnqn, 0);
        text::put(&mut b[512..768], &self.hostnqn, 0);
        b
    }
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let mut r = r.sub("ConnectData", CONNECT_DATA_LEN)?;
        let hostid = r.array("ConnectData.HOSTID")?;
        let cntlid = r.u16("ConnectData.CNTLID")?;
        r.skip("ConnectData.RSVD18", 256 - 18)?;
        let subnqn = nqn_field(&mut r, "ConnectData.SUBNQN")?;
        let hostnqn = host_nqn_field(&mut r, "ConnectData.HOSTNQN")?;
        Ok(Self {
            hostid,
            cntlid,
            subnqn,
            hostnqn,
        })
    }
}

/// A 256-byte NUL padded NQN field, validated as an NQN.
pub(crate) fn nqn_field(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
    let at = r.position();
    let s = text::nul_padded(field, at, r.take(field, NQN_FIELD_LEN)?)?;
    // "The NQN … shall not exceed 223 bytes" and follows one of the two formats.
    Nqn::parse(&s)
        .map_err(|_| DecodeError::at(field, at, crate::error::DecodeErrorKind::BadText))?;
    Ok(s)
}

/// The HOSTNQN field, decoded as leniently as Linux nvmet takes it: Linux
/// terminates the field at its last byte and compares the C string with the
/// subsystem's allowed hosts (`strcmp`), checking neither the NQN format nor
/// emptiness, and ignoring what follows the first NUL; with `allow_any_host`
/// any name, the empty one included, is a host. So here: the text before the
/// first NUL (0..=255 bytes), the rest of the field ignored, no NQN format
/// check — whether the name may connect is the target's decision.
/// Deliberately stricter than Linux (no known host sends these): a field
/// with no NUL at all, text that is not UTF-8 or holds control characters.
pub(crate) fn host_nqn_field(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<String, DecodeError> {
    let at = r.position();
    text::nul_terminated(field, at, r.take(field, NQN_FIELD_LEN)?)
}

/// Controller property offsets (NVMe Base 2.0, Figure 33).
pub mod prop {
    /// Controller Capabilities (8 bytes).
    pub const CAP: u32 = 0x00;
    /// Version (4 bytes).
    pub const VS: u32 = 0x08;
    /// Controller Configuration (4 bytes).
    pub const CC: u32 = 0x14;
    /// Controller Status (4 bytes).
    pub const CSTS: u32 = 0x1C;
    /// NVM Subsystem Reset (4 bytes).
    pub const NSSR: u32 = 0x20;
}

/// ATTRIB byte 40 bits 2:0: "000b 4 bytes, 001b 8 bytes".
const ATTRIB_SIZE8: u32 = 1;

fn attrib(sqe: &Sqe, field: &'static str) -> Result<bool, DecodeError> {
    match sqe.cdw10 & 0x7 {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(DecodeError::at(
            field,
            40,
            crate::error::DecodeErrorKind::OutOfRange { value: v.into() },
        )),
    }
}

/// Property Get (NVMe-oF 1.1, Figure 26).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PropertyGet {
    pub offset: u32,
    pub size8: bool,
}

impl PropertyGet {
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::fabrics(FabricsType::PROPERTY_GET);
        s.cdw10 = if self.size8 { ATTRIB_SIZE8 } else { 0 };
        s.cdw11 = self.offset;
        s
    }
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        expect_fabrics(sqe, FabricsType::PROPERTY_GET, "PropertyGet.FCTYPE")?;
        Ok(Self {
            size8: attrib(sqe, "PropertyGet.ATTRIB")?,
            offset: sqe.cdw11,
        })
    }
}

/// Property Set (NVMe-oF 1.1, Figure 28).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PropertySet {
    pub offset: u32,
    pub size8: bool,
    pub value: u64,
}

impl PropertySet {
    pub fn to_sqe(&self) -> Sqe {
        let mut s = Sqe::fabrics(FabricsType::PROPERTY_SET);
        s.cdw10 = if self.size8 { ATTRIB_SIZE8 } else { 0 };
        s.cdw11 = self.offset;
        s.cdw12 = self.value as u32;
        s.cdw13 = (self.value >> 32) as u32;
        s
    }
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        expect_fabrics(sqe, FabricsType::PROPERTY_SET, "PropertySet.FCTYPE")?;
        let size8 = attrib(sqe, "PropertySet.ATTRIB")?;
        let value = u64::from(sqe.cdw12) | (u64::from(sqe.cdw13) << 32);
        Ok(Self {
            offset: sqe.cdw11,
            size8,
            value: if size8 { value } else { value & 0xFFFF_FFFF },
        })
    }
}

/// Disconnect (NVMe-oF 1.1, Figure 24a): RECFMT in bytes 40..42.
pub fn disconnect_sqe(recfmt: u16) -> Sqe {
    let mut s = Sqe::fabrics(FabricsType::DISCONNECT);
    s.cdw10 = u32::from(recfmt);
    s
}

/// `VS`/`VER` value: major in bits 31:16, minor 15:8, tertiary 7:0.
pub const fn version(major: u16, minor: u8, tertiary: u8) -> u32 {
    ((major as u32) << 16) | ((minor as u32) << 8) | tertiary as u32
}

const fn bits64(v: u64, lo: u32, n: u32) -> u64 {
    (v >> lo) & ((1 << n) - 1)
}
const fn bits32(v: u32, lo: u32, n: u32) -> u32 {
    (v >> lo) & ((1 << n) - 1)
}
const fn set32(v: u32, lo: u32, n: u32, x: u32) -> u32 {
    let m = ((1u32 << n) - 1) << lo;
    (v & !m) | ((x << lo) & m)
}

/// Controller Capabilities (NVMe Base 2.0, Figure 36).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cap(pub u64);

impl Cap {
    /// MQES (bits 15:0), 0's based: the largest queue size minus one.
    pub const fn mqes(self) -> u16 {
        bits64(self.0, 0, 16) as u16
    }
    /// CQR (bit 16): contiguous queues required.
    pub const fn cqr(self) -> bool {
        bits64(self.0, 16, 1) == 1
    }
    /// AMS (bits 18:17).
    pub const fn ams(self) -> u8 {
        bits64(self.0, 17, 2) as u8
    }
    /// TO (bits 31:24): worst-case ready time in 500 ms units.
    pub const fn to_500ms(self) -> u8 {
        bits64(self.0, 24, 8) as u8
    }
    /// DSTRD (bits 35:32).
    pub const fn dstrd(self) -> u8 {
        bits64(self.0, 32, 4) as u8
    }
    /// CSS (bits 44:37).
    pub const fn css(self) -> u8 {
        bits64(self.0, 37, 8) as u8
    }
    /// CSS bit 0: the NVM command set.
    pub const fn css_nvm(self) -> bool {
        self.css() & 1 == 1
    }
    /// MPSMIN (bits 51:48): 2^(12+MPSMIN).
    pub const fn mpsmin(self) -> u8 {
        bits64(self.0, 48, 4) as u8
    }
    /// MPSMAX (bits 55:52).
    pub const fn mpsmax(self) -> u8 {
        bits64(self.0, 52, 4) as u8
    }
    /// A fabrics controller's CAP: CQR set, NVM command set, 4 KiB pages.
    pub const fn new(mqes: u16, to_500ms: u8) -> Self {
        Self(mqes as u64 | (1 << 16) | ((to_500ms as u64) << 24) | (1 << 37))
    }
}

/// Controller Configuration (NVMe Base 2.0, Figure 41).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cc(pub u32);

impl Cc {
    /// SHN "01b Normal shutdown notification".
    pub const SHN_NORMAL: u8 = 1;
    /// SHN "10b Abrupt shutdown notification".
    pub const SHN_ABRUPT: u8 = 2;

    pub const fn en(self) -> bool {
        self.0 & 1 == 1
    }
    /// CSS (bits 6:4).
    pub const fn css(self) -> u8 {
        bits32(self.0, 4, 3) as u8
    }
    /// MPS (bits 10:7).
    pub const fn mps(self) -> u8 {
        bits32(self.0, 7, 4) as u8
    }
    /// AMS (bits 13:11).
    pub const fn ams(self) -> u8 {
        bits32(self.0, 11, 3) as u8
    }
    /// SHN (bits 15:14).
    pub const fn shn(self) -> u8 {
        bits32(self.0, 14, 2) as u8
    }
    /// IOSQES (bits 19:16), log2 of the SQE size.
    pub const fn iosqes(self) -> u8 {
        bits32(self.0, 16, 4) as u8
    }
    /// IOCQES (bits 23:20), log2 of the CQE size.
    pub const fn iocqes(self) -> u8 {
        bits32(self.0, 20, 4) as u8
    }
    pub const fn with_en(self, v: bool) -> Self {
        Self(set32(self.0, 0, 1, v as u32))
    }
    pub const fn with_css(self, v: u8) -> Self {
        Self(set32(self.0, 4, 3, v as u32))
    }
    pub const fn with_mps(self, v: u8) -> Self {
        Self(set32(self.0, 7, 4, v as u32))
    }
    pub const fn with_ams(self, v: u8) -> Self {
        Self(set32(self.0, 11, 3, v as u32))
    }
    pub const fn with_shn(self, v: u8) -> Self {
        Self(set32(self.0, 14, 2, v as u32))
    }
    pub const fn with_iosqes(self, v: u8) -> Self {
        Self(set32(self.0, 16, 4, v as u32))
    }
    pub const fn with_iocqes(self, v: u8) -> Self {
        Self(set32(self.0, 20, 4, v as u32))
    }
}

/// Controller Status (NVMe Base 2.0, Figure 42).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Csts(pub u32);

impl Csts {
    pub const SHST_NORMAL: u8 = 0;
    pub const SHST_OCCURRING: u8 = 1;
    /// "10b Shutdown processing complete".
    pub const SHST_COMPLETE: u8 = 2;

    pub const fn rdy(self) -> bool {
        self.0 & 1 == 1
    }
    pub const fn cfs(self) -> bool {
        bits32(self.0, 1, 1) == 1
    }
    /// SHST (bits 3:2).
    pub const fn shst(self) -> u8 {
        bits32(self.0, 2, 2) as u8
    }
    pub const fn with_rdy(self, v: bool) -> Self {
        Self(set32(self.0, 0, 1, v as u32))
    }
    pub const fn with_cfs(self, v: bool) -> Self {
        Self(set32(self.0, 1, 1, v as u32))
    }
    pub const fn with_shst(self, v: u8) -> Self {
        Self(set32(self.0, 2, 2, v as u32))
    }
}

#[cfg(test)]
mod tests;
