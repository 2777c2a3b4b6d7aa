//! Identify Controller data structure (NVMe Base 2.0, Figure 275; fabrics
//! fields from NVMe-oF 1.1, Figure 40; CIU, CIRN, CQT and CCRL from NVMe
//! Base 2.3 / TP8028: bytes 135, 143:136, 387:386 and 1807).

use super::IDENTIFY_LEN;
use crate::error::DecodeError;
use crate::field::{at, put, slice_at, u16_at, u32_at, u64_at, u8_at};
use crate::text;

/// CMIC bits.
pub mod cmic {
    /// "the NVM subsystem may contain more than one NVM subsystem port".
    pub const MULTI_PORT: u8 = 1 << 0;
    /// "the NVM subsystem may contain two or more controllers".
    pub const MULTI_CTRL: u8 = 1 << 1;
    /// "the controller supports Asymmetric Namespace Access Reporting".
    pub const ANA: u8 = 1 << 3;
}

/// Identify Controller, the fields nvmp uses (the rest are encoded as zero).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct IdentifyController {
    pub vid: u16,
    pub ssvid: u16,
    /// Serial number (20 bytes, ASCII, space padded).
    pub sn: String,
    /// Model number (40 bytes).
    pub mn: String,
    /// Firmware revision (8 bytes).
    pub fr: String,
    pub rab: u8,
    pub ieee: [u8; 3],
    pub cmic: u8,
    /// Maximum data transfer size, a power of two in units of CAP.MPSMIN (0 = no limit).
    pub mdts: u8,
    pub cntlid: u16,
    pub ver: u32,
    pub rtd3r: u32,
    pub rtd3e: u32,
    pub oaes: u32,
    pub ctratt: u32,
    /// 1 I/O controller, 2 discovery controller, 3 administrative controller.
    pub cntrltype: u8,
    /// Command Retry Delay Times 1-3, in 100 ms units (bytes 133:128).
    pub crdt: [u16; 3],
    /// Controller Instance Uniquifier (byte 135): changes when a CNTLID is
    /// reused for a new controller instance.
    pub ciu: u8,
    /// Controller Instance Random Number (bytes 143:136), chosen at random
    /// for each controller instance.
    pub cirn: u64,
    pub oacs: u16,
    pub acl: u8,
    pub aerl: u8,
    pub frmw: u8,
    pub lpa: u8,
    pub elpe: u8,
    pub npss: u8,
    /// Keep Alive Support: granularity of KATO in 100 ms units (0 = not supported).
    pub kas: u16,
    /// ANA Transition Time, seconds.
    pub anatt: u8,
    pub anacap: u8,
    pub anagrpmax: u32,
    pub nanagrpid: u32,
    /// Command Quiesce Time (bytes 387:386), ms: "the expected worst-case
    /// time … for the controller to quiesce all outstanding commands after
    /// a Keep Alive Timeout or other communication loss" (0 = not reported).
    pub cqt: u16,
    pub sqes: u8,
    pub cqes: u8,
    pub maxcmd: u16,
    pub nn: u32,
    pub oncs: u16,
    pub fuses: u16,
    pub fna: u8,
    pub vwc: u8,
    pub awun: u16,
    pub awupf: u16,
    pub sgls: u32,
    pub mnan: u32,
    /// NVM Subsystem NQN (256 bytes, NUL padded).
    pub subnqn: String,
    /// I/O Queue Command Capsule Supported Size, in 16-byte units.
    pub ioccsz: u32,
    /// I/O Queue Response Capsule Supported Size, in 16-byte units.
    pub iorcsz: u32,
    /// In Capsule Data Offset, in 16-byte units.
    pub icdoff: u16,
    pub fcatt: u8,
    pub msdbd: u8,
    pub ofcs: u16,
    /// Cross-Controller Reset Limit (byte 1807): resets this controller can
    /// have in progress at once (0 = Cross-Controller Reset not supported).
    pub ccrl: u8,
}

impl IdentifyController {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; IDENTIFY_LEN];
        put(&mut b, 0, &self.vid.to_le_bytes());
        put(&mut b, 2, &self.ssvid.to_le_bytes());
        text::put(&mut b[4..24], &self.sn, b' ');
        text::put(&mut b[24..64], &self.mn, b' ');
        text::put(&mut b[64..72], &self.fr, b' ');
        b[72] = self.rab;
        put(&mut b, 73, &self.ieee);
        b[76] = self.cmic;
        b[77] = self.mdts;
        put(&mut b, 78, &self.cntlid.to_le_bytes());
        put(&mut b, 80, &self.ver.to_le_bytes());
        put(&mut b, 84, &self.rtd3r.to_le_bytes());
        put(&mut b, 88, &self.rtd3e.to_le_bytes());
        put(&mut b, 92, &self.oaes.to_le_bytes());
        put(&mut b, 96, &self.ctratt.to_le_bytes());
        b[111] = self.cntrltype;
        for (i, c) in self.crdt.iter().enumerate() {
            put(&mut b, 128 + 2 * i, &c.to_le_bytes());
        }
        b[135] = self.ciu;
        put(&mut b, 136, &self.cirn.to_le_bytes());
        put(&mut b, 256, &self.oacs.to_le_bytes());
        b[258] = self.acl;
        b[259] = self.aerl;
        b[260] = self.frmw;
        b[261] = self.lpa;
        b[262] = self.elpe;
        b[263] = self.npss;
        put(&mut b, 320, &self.kas.to_le_bytes());
        b[343] = self.anatt;
        b[344] = self.anacap;
        put(&mut b, 348, &self.anagrpmax.to_le_bytes());
        put(&mut b, 352, &self.nanagrpid.to_le_bytes());
        put(&mut b, 386, &self.cqt.to_le_bytes());
        b[512] = self.sqes;
        b[513] = self.cqes;
        put(&mut b, 514, &self.maxcmd.to_le_bytes());
        put(&mut b, 516, &self.nn.to_le_bytes());
        put(&mut b, 520, &self.oncs.to_le_bytes());
        put(&mut b, 522, &self.fuses.to_le_bytes());
        b[524] = self.fna;
        b[525] = self.vwc;
        put(&mut b, 526, &self.awun.to_le_bytes());
        put(&mut b, 528, &self.awupf.to_le_bytes());
        put(&mut b, 536, &self.sgls.to_le_bytes());
        put(&mut b, 540, &self.mnan.to_le_bytes());
        text::put(&mut b[768..1024], &self.subnqn, 0);
        put(&mut b, 1792, &self.ioccsz.to_le_bytes());
        put(&mut b, 1796, &self.iorcsz.to_le_bytes());
        put(&mut b, 1800, &self.icdoff.to_le_bytes());
        b[1802] = self.fcatt;
        b[1803] = self.msdbd;
        put(&mut b, 1804, &self.ofcs.to_le_bytes());
        b[1807] = self.ccrl;
        b
    }

    /// Decode from at least 4096 bytes (extra bytes are ignored).
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let b = slice_at(buf, "IdentifyController", 0, IDENTIFY_LEN)?;
        let crdt = [
            u16_at(b, "IdCtrl.CRDT1", 128)?,
            u16_at(b, "IdCtrl.CRDT2", 130)?,
            u16_at(b, "IdCtrl.CRDT3", 132)?,
        ];
        Ok(Self {
            vid: u16_at(b, "IdCtrl.VID", 0)?,
            ssvid: u16_at(b, "IdCtrl.SSVID", 2)?,
            sn: text::ascii("IdCtrl.SN", 4, slice_at(b, "IdCtrl.SN", 4, 20)?)?,
            mn: text::ascii("IdCtrl.MN", 24, slice_at(b, "IdCtrl.MN", 24, 40)?)?,
            fr: text::ascii("IdCtrl.FR", 64, slice_at(b, "IdCtrl.FR", 64, 8)?)?,
            rab: u8_at(b, "IdCtrl.RAB", 72)?,
            ieee: at(b, "IdCtrl.IEEE", 73)?,
            cmic: u8_at(b, "IdCtrl.CMIC", 76)?,
            mdts: u8_at(b, "IdCtrl.MDTS", 77)?,
            cntlid: u16_at(b, "IdCtrl.CNTLID", 78)?,
            ver: u32_at(b, "IdCtrl.VER", 80)?,
            rtd3r: u32_at(b, "IdCtrl.RTD3R", 84)?,
            rtd3e: u32_at(b, "IdCtrl.RTD3E", 88)?,
            oaes: u32_at(b, "IdCtrl.OAES", 92)?,
            ctratt: u32_at(b, "IdCtrl.CTRATT", 96)?,
            cntrltype: u8_at(b, "IdCtrl.CNTRLTYPE", 111)?,
            crdt,
            ciu: u8_at(b, "IdCtrl.CIU", 135)?,
            cirn: u64_at(b, "IdCtrl.CIRN", 136)?,
            oacs: u16_at(b, "IdCtrl.OACS", 256)?,
            acl: u8_at(b, "IdCtrl.ACL", 258)?,
            aerl: u8_at(b, "IdCtrl.AERL", 259)?,
            frmw: u8_at(b, "IdCtrl.FRMW", 260)?,
            lpa: u8_at(b, "IdCtrl.LPA", 261)?,
            elpe: u8_at(b, "IdCtrl.ELPE", 262)?,
            npss: u8_at(b, "IdCtrl.NPSS", 263)?,
            kas: u16_at(b, "IdCtrl.KAS", 320)?,
            anatt: u8_at(b, "IdCtrl.ANATT", 343)?,
            anacap: u8_at(b, "IdCtrl.ANACAP", 344)?,
            anagrpmax: u32_at(b, "IdCtrl.ANAGRPMAX", 348)?,
            nanagrpid: u32_at(b, "IdCtrl.NANAGRPID", 352)?,
            cqt: u16_at(b, "IdCtrl.CQT", 386)?,
            sqes: u8_at(b, "IdCtrl.SQES", 512)?,
            cqes: u8_at(b, "IdCtrl.CQES", 513)?,
            maxcmd: u16_at(b, "IdCtrl.MAXCMD", 514)?,
            nn: u32_at(b, "IdCtrl.NN", 516)?,
            oncs: u16_at(b, "IdCtrl.ONCS", 520)?,
            fuses: u16_at(b, "IdCtrl.FUSES", 522)?,
            fna: u8_at(b, "IdCtrl.FNA", 524)?,
            vwc: u8_at(b, "IdCtrl.VWC", 525)?,
            awun: u16_at(b, "IdCtrl.AWUN", 526)?,
            awupf: u16_at(b, "IdCtrl.AWUPF", 528)?,
            sgls: u32_at(b, "IdCtrl.SGLS", 536)?,
            mnan: u32_at(b, "IdCtrl.MNAN", 540)?,
            subnqn: text::nul_padded(
                "IdCtrl.SUBNQN",
                768,
                slice_at(b, "IdCtrl.SUBNQN", 768, 256)?,
            )?,
            ioccsz: u32_at(b, "IdCtrl.IOCCSZ", 1792)?,
            iorcsz: u32_at(b, "IdCtrl.IORCSZ", 1796)?,
            icdoff: u16_at(b, "IdCtrl.ICDOFF", 1800)?,
            fcatt: u8_at(b, "IdCtrl.FCATT", 1802)?,
            msdbd: u8_at(b, "IdCtrl.MSDBD", 1803)?,
            ofcs: u16_at(b, "IdCtrl.OFCS", 1804)?,
            ccrl: u8_at(b, "IdCtrl.CCRL", 1807)?,
        })
    }

    /// MDTS in bytes for a minimum page size (CAP.MPSMIN) of `page_size`; `None` = no limit.
    pub fn max_transfer_bytes(&self, page_size: u32) -> Option<u64> {
        if self.mdts == 0 {
            return None;
        }
        u64::from(page_size).checked_shl(u32::from(self.mdts))
    }
    pub fn has_ana(&self) -> bool {
        self.cmic & cmic::ANA != 0
    }
    /// Whether the controller takes Cross-Controller Reset commands (CCRL > 0).
    pub fn supports_ccr(&self) -> bool {
        self.ccrl > 0
    }
}

#[cfg(test)]
mod tests;
