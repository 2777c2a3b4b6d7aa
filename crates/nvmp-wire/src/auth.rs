//! In-band authentication (NVMe Base 2.0, 8.13 "NVMe over Fabrics
//! In-band Authentication"; TP8006): the Authentication Send and
//! Authentication Receive fabrics commands, and the DH-HMAC-CHAP messages
//! they carry (AUTH_Negotiate, DH-HMAC-CHAP_Challenge, _Reply, _Success1,
//! _Success2, AUTH_Failure1/2).
//!
//! Layouts (byte offsets, multi-byte fields little endian):
//! - common header: `AUTH-TYPE (0) | AUTH-ID (1) | rsvd (2..4) | T_ID (4..6)`;
//! - Negotiate: `SC_C (6) | NAPD (7) | NAPD × 64-byte descriptors`, each
//!   `AUTHID (0) | rsvd | HALEN (2) | DHLEN (3) | 30 hash IDs | 30 DH group IDs`;
//! - Challenge: `HL (6) | rsvd | HASHID (8) | DHGID (9) | DHVLEN (10..12) |
//!   SEQNUM (12..16) | C1 (HL bytes) | DH value (DHVLEN bytes)`;
//! - Reply: `HL (6) | rsvd | CVALID (8) | rsvd | DHVLEN (10..12) | SEQNUM (12..16) |
//!   R1 (HL) | C2 (HL) | DH value (DHVLEN)`;
//! - Success1: `HL (6) | rsvd | RVALID (8) | rsvd (9..16) | R2 (HL bytes if RVALID)`;
//! - Success2: 16 bytes, header only; Failure1/2: `RESCODE (6) | RESCODE_EXP (7)`.
//!
//! An Authentication Receive returns the allocation length the host asked
//! for, zero padded, so decoding ignores bytes after the message.

use crate::error::{DecodeError, DecodeErrorKind};
use crate::reader::Reader;
use crate::sqe::{FabricsType, Sqe};

/// SECP (Security Protocol) E9h: NVMe over Fabrics in-band authentication.
pub const SECP_DHCHAP: u8 = 0xE9;
/// SPSP0 and SPSP1 are 01h for DH-HMAC-CHAP (what Linux sends and checks).
pub const SPSP_DHCHAP: u8 = 0x01;
/// AUTHID of the DH-HMAC-CHAP protocol descriptor.
pub const AUTHID_DHCHAP: u8 = 0x01;
/// Entries in each list of a protocol descriptor.
pub const MAX_IDS: usize = 30;
/// Largest hash (SHA-512) in bytes: HL above this is refused.
pub const MAX_HASH_LEN: usize = 64;
/// Largest DH value (ffdhe8192) in bytes: DHVLEN above this is refused.
pub const MAX_DH_VALUE_LEN: usize = 1024;
/// Protocol descriptors accepted in one Negotiate (only DH-HMAC-CHAP is defined).
pub const MAX_PROTOCOLS: usize = 4;
/// Bytes of a protocol descriptor.
pub const DESCRIPTOR_LEN: usize = 64;

/// AUTH-TYPE values.
pub const TYPE_COMMON: u8 = 0x00;
pub const TYPE_DHCHAP: u8 = 0x01;
/// AUTH-ID values.
pub const ID_NEGOTIATE: u8 = 0x00;
pub const ID_CHALLENGE: u8 = 0x01;
pub const ID_REPLY: u8 = 0x02;
pub const ID_SUCCESS1: u8 = 0x03;
pub const ID_SUCCESS2: u8 = 0x04;
pub const ID_FAILURE2: u8 = 0xF0;
pub const ID_FAILURE1: u8 = 0xF1;

/// AUTH_Failure REASON CODE: "01h Authentication failure".
pub const RESCODE_FAILED: u8 = 0x01;

/// AUTH_Failure REASON CODE EXPLANATION values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FailureReason(pub u8);

impl FailureReason {
    pub const FAILED: Self = Self(0x01);
    pub const NOT_USABLE: Self = Self(0x02);
    pub const CONCAT_MISMATCH: Self = Self(0x03);
    pub const HASH_UNUSABLE: Self = Self(0x04);
    pub const DHGROUP_UNUSABLE: Self = Self(0x05);
    pub const INCORRECT_PAYLOAD: Self = Self(0x06);
    pub const INCORRECT_PROTOCOL_MESSAGE: Self = Self(0x07);

    /// The specification's wording, for log lines and errors.
    pub const fn describe(self) -> &'static str {
        match self.0 {
            0x01 => "authentication failed (wrong key)",
            0x02 => "authentication protocol not usable",
            0x03 => "secure channel concatenation mismatch",
            0x04 => "hash function not usable",
            0x05 => "DH group not usable",
            0x06 => "incorrect payload",
            0x07 => "incorrect protocol message",
            _ => "unknown reason",
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:#04x})", self.describe(), self.0)
    }
}

fn cdw10(secp: u8, spsp0: u8, spsp1: u8) -> u32 {
    (u32::from(spsp0) << 8) | (u32::from(spsp1) << 16) | (u32::from(secp) << 24)
}

/// Authentication Send (FCTYPE 05h) or Receive (06h): CDW10 holds
/// `NSSF (7:0) | SPSP0 (15:8) | SPSP1 (23:16) | SECP (31:24)`, CDW11 the
/// transfer length (Send: TL) or allocation length (Receive: AL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthCmd {
    /// True for Authentication Receive.
    pub receive: bool,
    pub secp: u8,
    pub spsp0: u8,
    pub spsp1: u8,
    /// TL (send) or AL (receive), bytes.
    pub len: u32,
}

impl AuthCmd {
    /// A DH-HMAC-CHAP Authentication Send of `tl` bytes.
    pub fn send(tl: u32) -> Self {
        Self {
            receive: false,
            secp: SECP_DHCHAP,
            spsp0: SPSP_DHCHAP,
            spsp1: SPSP_DHCHAP,
            len: tl,
        }
    }
    /// A DH-HMAC-CHAP Authentication Receive of at most `al` bytes.
    pub fn receive(al: u32) -> Self {
        Self {
            receive: true,
            ..Self::send(al)
        }
    }
    pub fn to_sqe(&self) -> Sqe {
        let t = if self.receive {
            FabricsType::AUTH_RECEIVE
        } else {
            FabricsType::AUTH_SEND
        };
        let mut s = Sqe::fabrics(t);
        s.cdw10 = cdw10(self.secp, self.spsp0, self.spsp1);
        s.cdw11 = self.len;
        s
    }
    pub fn from_sqe(sqe: &Sqe) -> Result<Self, DecodeError> {
        let receive = match sqe.fctype() {
            FabricsType::AUTH_SEND if sqe.is_fabrics() => false,
            FabricsType::AUTH_RECEIVE if sqe.is_fabrics() => true,
            _ => return Err(DecodeError::at("Auth.FCTYPE", 4, DecodeErrorKind::Invalid)),
        };
        Ok(Self {
            receive,
            spsp0: (sqe.cdw10 >> 8) as u8,
            spsp1: (sqe.cdw10 >> 16) as u8,
            secp: (sqe.cdw10 >> 24) as u8,
            len: sqe.cdw11,
        })
    }
    /// Whether SECP/SPSP0/SPSP1 name DH-HMAC-CHAP; else the byte offset
    /// in the SQE of the first field that does not.
    pub fn check_protocol(&self) -> Result<(), u32> {
        if self.secp != SECP_DHCHAP {
            Err(43)
        } else if self.spsp0 != SPSP_DHCHAP {
            Err(41)
        } else if self.spsp1 != SPSP_DHCHAP {
            Err(42)
        } else {
            Ok(())
        }
    }
}

/// One protocol descriptor of AUTH_Negotiate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ProtocolDesc {
    pub authid: u8,
    /// Hash function IDs (at most 30).
    pub hash_ids: Vec<u8>,
    /// DH group IDs (at most 30).
    pub dh_ids: Vec<u8>,
}

/// AUTH_Negotiate (host to controller).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Negotiate {
    pub t_id: u16,
    /// Secure channel concatenation (0: none).
    pub sc_c: u8,
    pub protocols: Vec<ProtocolDesc>,
}

/// DH-HMAC-CHAP_Challenge (controller to host).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Challenge {
    pub t_id: u16,
    pub hash_id: u8,
    pub dh_id: u8,
    pub seqnum: u32,
    /// C1: HL bytes.
    pub c1: Vec<u8>,
    /// The controller's DH value g^y mod p (empty for the NULL group).
    pub dhv: Vec<u8>,
}

/// DH-HMAC-CHAP_Reply (host to controller).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Reply {
    pub t_id: u16,
    /// C2 is valid: the host asks the controller to authenticate itself.
    pub cvalid: bool,
    /// S2 (0 when the controller is not to be authenticated).
    pub seqnum: u32,
    /// R1: HL bytes.
    pub r1: Vec<u8>,
    /// C2: HL bytes (zero when not valid).
    pub c2: Vec<u8>,
    /// The host's DH value g^x mod p.
    pub dhv: Vec<u8>,
}

/// DH-HMAC-CHAP_Success1 (controller to host).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Success1 {
    pub t_id: u16,
    pub hl: u8,
    /// R2 (HL bytes) when the controller authenticates itself, else None.
    pub r2: Option<Vec<u8>>,
}

/// AUTH_Failure1 (controller to host) or AUTH_Failure2 (host to controller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Failure {
    pub t_id: u16,
    pub rescode: u8,
    pub reason: FailureReason,
}

/// One authentication message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuthMsg {
    Negotiate(Negotiate),
    Challenge(Challenge),
    Reply(Reply),
    Success1(Success1),
    Success2 { t_id: u16 },
    Failure1(Failure),
    Failure2(Failure),
}

fn bad(field: &'static str, at: usize, kind: DecodeErrorKind) -> DecodeError {
    DecodeError::at(field, at, kind)
}

fn hl_field(r: &mut Reader<'_>, field: &'static str) -> Result<u8, DecodeError> {
    let at = r.position();
    let hl = r.u8(field)?;
    if hl == 0 || hl as usize > MAX_HASH_LEN {
        return Err(bad(
            field,
            at,
            DecodeErrorKind::OutOfRange { value: hl.into() },
        ));
    }
    Ok(hl)
}

fn dhvlen_field(r: &mut Reader<'_>) -> Result<usize, DecodeError> {
    let at = r.position();
    let n = r.u16("Auth.DHVLEN")?;
    if n as usize > MAX_DH_VALUE_LEN {
        return Err(bad(
            "Auth.DHVLEN",
            at,
            DecodeErrorKind::OutOfRange { value: n.into() },
        ));
    }
    Ok(n as usize)
}

impl AuthMsg {
    /// The transaction ID of the message.
    pub fn t_id(&self) -> u16 {
        match self {
            AuthMsg::Negotiate(m) => m.t_id,
            AuthMsg::Challenge(m) => m.t_id,
            AuthMsg::Reply(m) => m.t_id,
            AuthMsg::Success1(m) => m.t_id,
            AuthMsg::Success2 { t_id } => *t_id,
            AuthMsg::Failure1(f) | AuthMsg::Failure2(f) => f.t_id,
        }
    }

    /// The message's name, as the specification names it.
    pub fn name(&self) -> &'static str {
        match self {
            AuthMsg::Negotiate(_) => "AUTH_Negotiate",
            AuthMsg::Challenge(_) => "DH-HMAC-CHAP_Challenge",
            AuthMsg::Reply(_) => "DH-HMAC-CHAP_Reply",
            AuthMsg::Success1(_) => "DH-HMAC-CHAP_Success1",
            AuthMsg::Success2 { .. } => "DH-HMAC-CHAP_Success2",
            AuthMsg::Failure1(_) => "AUTH_Failure1",
            AuthMsg::Failure2(_) => "AUTH_Failure2",
        }
    }

    /// Encode; lengths beyond the limits above are truncated to them.
    pub fn encode(&self) -> Vec<u8> {
        let (ty, id) = match self {
            AuthMsg::Negotiate(_) => (TYPE_COMMON, ID_NEGOTIATE),
            AuthMsg::Challenge(_) => (TYPE_DHCHAP, ID_CHALLENGE),
            AuthMsg::Reply(_) => (TYPE_DHCHAP, ID_REPLY),
            AuthMsg::Success1(_) => (TYPE_DHCHAP, ID_SUCCESS1),
            AuthMsg::Success2 { .. } => (TYPE_DHCHAP, ID_SUCCESS2),
            AuthMsg::Failure1(_) => (TYPE_COMMON, ID_FAILURE1),
            AuthMsg::Failure2(_) => (TYPE_COMMON, ID_FAILURE2),
        };
        let mut b = vec![ty, id, 0, 0];
        b.extend_from_slice(&self.t_id().to_le_bytes());
        let cap = |v: &[u8], n: usize| v[..v.len().min(n)].to_vec();
        match self {
            AuthMsg::Negotiate(m) => {
                let protocols = &m.protocols[..m.protocols.len().min(MAX_PROTOCOLS)];
                b.push(m.sc_c);
                b.push(protocols.len() as u8);
                for p in protocols {
                    let h = cap(&p.hash_ids, MAX_IDS);
                    let d = cap(&p.dh_ids, MAX_IDS);
                    let mut desc = [0u8; DESCRIPTOR_LEN];
                    desc[0] = p.authid;
                    desc[2] = h.len() as u8;
                    desc[3] = d.len() as u8;
                    desc[4..4 + h.len()].copy_from_slice(&h);
                    desc[34..34 + d.len()].copy_from_slice(&d);
                    b.extend_from_slice(&desc);
                }
            }
            AuthMsg::Challenge(m) => {
                let c1 = cap(&m.c1, MAX_HASH_LEN);
                let dhv = cap(&m.dhv, MAX_DH_VALUE_LEN);
                b.extend_from_slice(&[c1.len() as u8, 0, m.hash_id, m.dh_id]);
                b.extend_from_slice(&(dhv.len() as u16).to_le_bytes());
                b.extend_from_slice(&m.seqnum.to_le_bytes());
                b.extend_from_slice(&c1);
                b.extend_from_slice(&dhv);
            }
            AuthMsg::Reply(m) => {
                let r1 = cap(&m.r1, MAX_HASH_LEN);
                let mut c2 = cap(&m.c2, r1.len());
                c2.resize(r1.len(), 0);
                let dhv = cap(&m.dhv, MAX_DH_VALUE_LEN);
                b.extend_from_slice(&[r1.len() as u8, 0, m.cvalid as u8, 0]);
                b.extend_from_slice(&(dhv.len() as u16).to_le_bytes());
                b.extend_from_slice(&m.seqnum.to_le_bytes());
                b.extend_from_slice(&r1);
                b.extend_from_slice(&c2);
                b.extend_from_slice(&dhv);
            }
            AuthMsg::Success1(m) => {
                let r2 = m.r2.as_ref().map(|r| {
                    let mut r = cap(r, m.hl as usize);
                    r.resize(m.hl as usize, 0);
                    r
                });
                b.extend_from_slice(&[m.hl, 0, r2.is_some() as u8]);
                b.extend_from_slice(&[0; 7]);
                if let Some(r) = r2 {
                    b.extend_from_slice(&r);
                }
            }
            AuthMsg::Success2 { .. } => b.extend_from_slice(&[0; 10]),
            AuthMsg::Failure1(f) | AuthMsg::Failure2(f) => {
                b.extend_from_slice(&[f.rescode, f.reason.0]);
            }
        }
        b
    }

    /// Decode one message from the front of `buf` (trailing bytes ignored).
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let ty = r.u8("Auth.AUTH-TYPE")?;
        let id = r.u8("Auth.AUTH-ID")?;
        r.skip("Auth.RSVD2", 2)?;
        let t_id = r.u16("Auth.T_ID")?;
        Ok(match (ty, id) {
            (TYPE_COMMON, ID_NEGOTIATE) => {
                let sc_c = r.u8("Negotiate.SC_C")?;
                let at = r.position();
                let napd = r.u8("Negotiate.NAPD")?;
                if napd == 0 || napd as usize > MAX_PROTOCOLS {
                    return Err(bad(
                        "Negotiate.NAPD",
                        at,
                        DecodeErrorKind::OutOfRange { value: napd.into() },
                    ));
                }
                let mut protocols = Vec::with_capacity(napd as usize);
                for _ in 0..napd {
                    let mut d = r.sub("Negotiate.DESCRIPTOR", DESCRIPTOR_LEN)?;
                    let authid = d.u8("Negotiate.AUTHID")?;
                    d.skip("Negotiate.RSVD", 1)?;
                    let at = d.position();
                    let halen = d.u8("Negotiate.HALEN")? as usize;
                    let dhlen = d.u8("Negotiate.DHLEN")? as usize;
                    if halen > MAX_IDS || dhlen > MAX_IDS {
                        let value = halen.max(dhlen) as u64;
                        return Err(bad(
                            "Negotiate.HALEN/DHLEN",
                            at,
                            DecodeErrorKind::OutOfRange { value },
                        ));
                    }
                    let h = d.take("Negotiate.HASH_IDS", MAX_IDS)?;
                    let g = d.take("Negotiate.DH_IDS", MAX_IDS)?;
                    protocols.push(ProtocolDesc {
                        authid,
                        hash_ids: h[..halen].to_vec(),
                        dh_ids: g[..dhlen].to_vec(),
                    });
                }
                AuthMsg::Negotiate(Negotiate {
                    t_id,
                    sc_c,
                    protocols,
                })
            }
            (TYPE_DHCHAP, ID_CHALLENGE) => {
                let hl = hl_field(&mut r, "Challenge.HL")?;
                r.skip("Challenge.RSVD7", 1)?;
                let hash_id = r.u8("Challenge.HASHID")?;
                let dh_id = r.u8("Challenge.DHGID")?;
                let dhvlen = dhvlen_field(&mut r)?;
                let seqnum = r.u32("Challenge.SEQNUM")?;
                let c1 = r.take("Challenge.C1", hl as usize)?.to_vec();
                let dhv = r.take("Challenge.DHV", dhvlen)?.to_vec();
                AuthMsg::Challenge(Challenge {
                    t_id,
                    hash_id,
                    dh_id,
                    seqnum,
                    c1,
                    dhv,
                })
            }
            (TYPE_DHCHAP, ID_REPLY) => {
                let hl = hl_field(&mut r, "Reply.HL")? as usize;
                r.skip("Reply.RSVD7", 1)?;
                let at = r.position();
                let cvalid = match r.u8("Reply.CVALID")? {
                    0 => false,
                    1 => true,
                    v => {
                        let kind = DecodeErrorKind::OutOfRange { value: v.into() };
                        return Err(bad("Reply.CVALID", at, kind));
                    }
                };
                r.skip("Reply.RSVD9", 1)?;
                let dhvlen = dhvlen_field(&mut r)?;
                let seqnum = r.u32("Reply.SEQNUM")?;
                let r1 = r.take("Reply.R1", hl)?.to_vec();
                let c2 = r.take("Reply.C2", hl)?.to_vec();
                let dhv = r.take("Reply.DHV", dhvlen)?.to_vec();
                AuthMsg::Reply(Reply {
                    t_id,
                    cvalid,
                    seqnum,
                    r1,
                    c2,
                    dhv,
                })
            }
            (TYPE_DHCHAP, ID_SUCCESS1) => {
                let hl = hl_field(&mut r, "Success1.HL")?;
                r.skip("Success1.RSVD7", 1)?;
                let at = r.position();
                let rvalid = r.u8("Success1.RVALID")?;
                r.skip("Success1.RSVD9", 7)?;
                let r2 = match rvalid {
                    0 => None,
                    1 => Some(r.take("Success1.R2", hl as usize)?.to_vec()),
                    v => {
                        let kind = DecodeErrorKind::OutOfRange { value: v.into() };
                        return Err(bad("Success1.RVALID", at, kind));
                    }
                };
                AuthMsg::Success1(Success1 { t_id, hl, r2 })
            }
            (TYPE_DHCHAP, ID_SUCCESS2) => {
                r.skip("Success2.RSVD", 10)?;
                AuthMsg::Success2 { t_id }
            }
            (TYPE_COMMON, ID_FAILURE1 | ID_FAILURE2) => {
                let f = Failure {
                    t_id,
                    rescode: r.u8("Failure.RESCODE")?,
                    reason: FailureReason(r.u8("Failure.RESCODE_EXP")?),
                };
                if id == ID_FAILURE1 {
                    AuthMsg::Failure1(f)
                } else {
                    AuthMsg::Failure2(f)
                }
            }
            _ => return Err(bad("Auth.AUTH-ID", 1, DecodeErrorKind::Invalid)),
        })
    }
}

#[cfg(test)]
mod tests;
