//! Identify: controller (advertising multipath: CMIC, ANA fields, OAES),
//! namespace (NMIC shared, ANAGRPID, NGUID), active namespace list and
//! namespace identification descriptors (identical on every port).

use bytes::Bytes;
use nvmp_wire::identify::{
    cmic, encode_ns_id_descriptors, encode_ns_list, IdentifyController, IdentifyNamespace,
    LbaFormat, NsIdDescriptor,
};
use nvmp_wire::{Sqe, StatusCode};

use super::admin::{supported_events, AERL};
use super::queue::{Bound, Completion, Ctx, Exec};
use super::state::{NsRt, State};
use crate::config::{MAX_ANA_GROUPS, MAX_NSID};

/// Identify data is always 4096 bytes.
pub const IDENTIFY_LEN: usize = 4096;
/// KAS: keep-alive granularity in 100 ms units (nvmet: 1 s).
pub const KAS: u16 = 10;
/// ANACAP: optimized, non-optimized, inaccessible, persistent loss and change reported (nvmet: 0x1f).
pub const ANACAP: u8 = 0x1f;
/// Firmware revision reported.
pub const FIRMWARE: &str = "nvmp-0.1";

fn mdts(mdts_bytes: u32) -> u8 {
    // In units of the minimum page size (4 KiB), as a power of two.
    let pages = (mdts_bytes / 4096).max(1);
    31 - pages.leading_zeros() as u8
}

/// Build Identify Controller for a bound controller.
pub fn controller(st: &State, ctx: &Ctx, b: &Bound) -> Option<IdentifyController> {
    let sub = st.subsystems.get(&*b.subnqn)?;
    let port = st.ports.get(&ctx.port)?;
    let inline = port.spec.inline_data_size;
    let qs = port.spec.max_queue_size;
    let io = !b.discovery;
    let (ciu, cirn) = super::ccr::identity(st, b);
    Some(IdentifyController {
        sn: sub.spec.serial.clone(),
        mn: sub.spec.model.clone(),
        fr: FIRMWARE.into(),
        rab: 6,
        ieee: [0x00, 0x14, 0x05],
        cmic: if io && sub.spec.ext.ana {
            cmic::MULTI_PORT | cmic::MULTI_CTRL | cmic::ANA
        } else if io {
            cmic::MULTI_PORT | cmic::MULTI_CTRL
        } else {
            0
        },
        mdts: mdts(ctx.limits.mdts_bytes),
        cntlid: b.cntlid,
        ver: sub.spec.version,
        oaes: supported_events(b.discovery),
        cntrltype: if io { 1 } else { 2 },
        acl: 3,
        aerl: AERL,
        // LPA bit 2: extended data (LPO, NUMDU) for Get Log Page.
        lpa: 1 << 2,
        elpe: 0,
        kas: KAS,
        anatt: if io { sub.spec.ext.anatt_s } else { 0 },
        // Cross-Controller Reset (NVMe 2.3): the instance identity a host
        // names the controller by, the resets it may run at once, and how
        // long its commands take to quiesce after a communication loss.
        ciu,
        cirn,
        ccrl: if io { super::ccr::CCR_LIMIT } else { 0 },
        cqt: if io { sub.spec.ext.cqt_ms } else { 0 },
        anacap: if io { ANACAP } else { 0 },
        anagrpmax: if io { MAX_ANA_GROUPS } else { 0 },
        nanagrpid: if io { MAX_ANA_GROUPS } else { 0 },
        sqes: 0x66,
        cqes: 0x44,
        maxcmd: qs,
        nn: if io { MAX_NSID } else { 0 },
        mnan: if io { MAX_NSID } else { 0 },
        // ONCS: Dataset Management (bit 2), Write Zeroes (bit 3), Reservations (bit 5).
        oncs: if io {
            (1 << 2) | (1 << 3) | nvmp_wire::io::resv::ONCS_RESERVATIONS
        } else {
            0
        },
        // VWC present; "Flush … FFFFFFFFh not supported" (bits 2:1 = 10b).
        vwc: if io { 0x01 | (0x2 << 1) } else { 0 },
        // SGLs supported (no alignment); bit 20: SGL offsets (in-capsule data).
        sgls: 1 | (1 << 20),
        subnqn: b.subnqn.to_string(),
        ioccsz: ((64 + inline) / 16),
        iorcsz: 1,
        icdoff: 0,
        fcatt: 0,
        msdbd: 1,
        // OFCS bit 0: Disconnect supported.
        ofcs: 1,
        ..Default::default()
    })
}

/// Build Identify Namespace.
pub fn namespace(ns: &NsRt, shared: bool) -> IdentifyNamespace {
    IdentifyNamespace {
        nsze: ns.blocks,
        ncap: ns.blocks,
        nuse: ns.blocks,
        nsfeat: 0,
        nlbaf: 0,
        flbas: 0,
        // DLFEAT: deallocated blocks read as zeroes (001b), Write Zeroes with DEAC supported (bit 3).
        dlfeat: 0x01 | (1 << 3),
        nmic: if shared {
            nvmp_wire::identify::nmic::SHARED
        } else {
            0
        },
        anagrpid: ns.spec.ana_grpid,
        nsattr: 0,
        nguid: ns.nguid,
        eui64: [0; 8],
        lbaf: vec![LbaFormat {
            ms: 0,
            lbads: ns.block_size.trailing_zeros() as u8,
            rp: 0,
        }],
    }
}

/// RESCAP: every reservation type and IEKEY; PTPL on file-backed namespaces.
pub fn rescap(ns: &NsRt) -> u8 {
    use nvmp_wire::io::resv::rescap;
    let all = rescap::ALL & !rescap::PTPL;
    if ns.resv.ptpl_capable() {
        all | rescap::PTPL
    } else {
        all
    }
}

/// The namespace identification descriptors: NGUID, UUID, CSI (NVM).
pub fn descriptors(ns: &NsRt) -> Vec<NsIdDescriptor> {
    vec![
        NsIdDescriptor::Nguid(ns.nguid),
        NsIdDescriptor::Uuid(ns.uuid),
        NsIdDescriptor::Csi(0),
    ]
}

/// Identify command.
pub fn identify(st: &State, ctx: &Ctx, b: &Bound, sqe: &Sqe) -> Exec {
    let cns = (sqe.cdw10 & 0xFF) as u8;
    let dnr = |c| Exec::Done(Completion::err_dnr(c));
    if b.discovery && cns != 0x01 {
        return dnr(StatusCode::INVALID_FIELD);
    }
    let Some(sub) = st.subsystems.get(&*b.subnqn) else {
        return dnr(StatusCode::INTERNAL_ERROR);
    };
    let active = |nsid: u32| sub.namespaces.get(&nsid).filter(|n| n.spec.enable);
    let data: Vec<u8> = match cns {
        0x01 => match controller(st, ctx, b) {
            Some(id) => id.encode(),
            None => return dnr(StatusCode::INTERNAL_ERROR),
        },
        0x00 => {
            if sqe.nsid == 0 || (sqe.nsid > MAX_NSID && sqe.nsid != 0xFFFF_FFFF) {
                return dnr(StatusCode::INVALID_NAMESPACE);
            }
            match active(sqe.nsid) {
                Some(ns) => {
                    let mut v = namespace(ns, sub.spec.ext.nmic_shared).encode();
                    v[nvmp_wire::io::resv::IDNS_RESCAP_OFFSET] = rescap(ns);
                    v
                }
                // An inactive NSID: "a zero filled data structure".
                None => vec![0; IDENTIFY_LEN],
            }
        }
        0x02 => {
            if sqe.nsid >= 0xFFFF_FFFE {
                return dnr(StatusCode::INVALID_NAMESPACE);
            }
            let ids: Vec<u32> = sub
                .namespaces
                .values()
                .filter(|n| n.spec.enable && n.spec.nsid > sqe.nsid)
                .map(|n| n.spec.nsid)
                .take(1024)
                .collect();
            encode_ns_list(&ids)
        }
        // I/O Command Set specific Identify Controller (NVM): no extra limits.
        0x06 if (sqe.cdw11 >> 24) & 0xFF == 0 => vec![0; IDENTIFY_LEN],
        0x03 => match active(sqe.nsid) {
            Some(ns) => encode_ns_id_descriptors(&descriptors(ns)),
            None => return dnr(StatusCode::INVALID_NAMESPACE),
        },
        _ => return dnr(StatusCode::INVALID_FIELD),
    };
    Exec::Done(Completion::data(Bytes::from(data)))
}
