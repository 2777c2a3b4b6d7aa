//! Writes the seed corpus (fuzz/corpus/<target>/) from real encoded structures:
//! `cargo run --example gen_corpus` from fuzz/ (any toolchain, no sanitizer).
use std::path::Path;

use bytes::{Bytes, BytesMut};
use nvmp_wire::admin::{Cns, GetLogPageCmd, IdentifyCmd, LogPageId};
use nvmp_wire::fabrics::{ConnectCmd, ConnectData, PropertyGet};
use nvmp_wire::identify::{
    encode_ns_id_descriptors, encode_ns_list, IdentifyController, IdentifyNamespace, LbaFormat,
    NsIdDescriptor,
};
use nvmp_wire::log::{trtype, AnaGroupDesc, AnaLog, AnaState, DiscoveryEntry, DiscoveryLog};
use nvmp_wire::pdu::{DataHeader, DataPdu, Digests, EncodeOptions, IcReq, IcResp, Pdu, R2t};
use nvmp_wire::{Cqe, Status};

const SUBNQN: &str = "nqn.2019-10.io.nvmp:subsys1";
const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6";

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn pdu(p: &Pdu, sel: u8) -> Vec<u8> {
    let mut out = BytesMut::new();
    p.encode(
        EncodeOptions {
            digests: Digests::from_byte(sel & 3),
            pda: 0,
        },
        &mut out,
    );
    let mut v = vec![sel];
    v.extend_from_slice(&out);
    v
}

fn main() {
    let connect = ConnectCmd {
        recfmt: 0,
        qid: 0,
        sqsize: 31,
        cattr: 0,
        kato_ms: 5000,
    }
    .to_sqe();
    let data = ConnectData {
        hostid: [7; 16],
        cntlid: 0xFFFF,
        subnqn: SUBNQN.into(),
        hostnqn: HOSTNQN.into(),
    };
    // Host → controller.
    let icreq = Pdu::IcReq(IcReq {
        pfv: 0,
        hpda: 0,
        digests: Digests {
            header: true,
            data: true,
        },
        maxr2t: 0,
    });
    write("pdu_controller", "icreq", &pdu(&icreq, 0));
    let cmd = Pdu::CapsuleCmd {
        sqe: connect,
        data: Bytes::copy_from_slice(&data.encode()),
    };
    write("pdu_controller", "connect_capsule", &pdu(&cmd, 0));
    write("pdu_controller", "connect_capsule_digests", &pdu(&cmd, 3));
    let id = Pdu::CapsuleCmd {
        sqe: IdentifyCmd {
            cns: Cns::CONTROLLER,
            nsid: 0,
            cntid: 0,
        }
        .to_sqe(),
        data: Bytes::new(),
    };
    write("pdu_controller", "identify_hdgst_stream", &pdu(&id, 1 | 4));
    let h2c = Pdu::H2CData(DataPdu {
        header: DataHeader {
            cccid: 3,
            ttag: 1,
            offset: 0,
            length: 512,
        },
        last: true,
        success: false,
        data: Bytes::from(vec![0xA5; 512]),
    });
    write("pdu_controller", "h2cdata_ddgst", &pdu(&h2c, 2));
    // Controller → host.
    let icresp = Pdu::IcResp(IcResp {
        pfv: 0,
        cpda: 0,
        digests: Digests::NONE,
        maxh2cdata: 131072,
    });
    write("pdu_host", "icresp", &pdu(&icresp, 0));
    let mut cqe = Cqe::new(1, Status::SUCCESS);
    cqe.dw0 = 5;
    write(
        "pdu_host",
        "capsule_resp_hdgst",
        &pdu(&Pdu::CapsuleResp(cqe), 1),
    );
    let c2h = Pdu::C2HData(DataPdu {
        header: DataHeader {
            cccid: 9,
            ttag: 0,
            offset: 0,
            length: 4096,
        },
        last: true,
        success: true,
        data: Bytes::from(vec![0x5A; 4096]),
    });
    write("pdu_host", "c2hdata_both_digests", &pdu(&c2h, 3));
    write(
        "pdu_host",
        "r2t_stream",
        &pdu(
            &Pdu::R2t(R2t {
                cccid: 2,
                ttag: 1,
                offset: 0,
                length: 8192,
            }),
            4,
        ),
    );
    // peek_plain: a plain C2HData (512 bytes, LAST_PDU) and CapsuleResp on
    // a host decoder without digests; the C2HData with a header digest; a
    // CapsuleResp followed by a C2HData.
    let plain_c2h = Pdu::C2HData(DataPdu {
        header: DataHeader {
            cccid: 3,
            ttag: 0,
            offset: 4096,
            length: 512,
        },
        last: true,
        success: false,
        data: Bytes::from(vec![0xA5; 512]),
    });
    let resp = pdu(&Pdu::CapsuleResp(cqe), 0);
    write("pdu_plain", "c2hdata", &pdu(&plain_c2h, 0));
    write("pdu_plain", "capsule_resp", &resp);
    write("pdu_plain", "c2hdata_hdgst", &pdu(&plain_c2h, 1));
    let mut stream = resp;
    stream.extend_from_slice(&pdu(&plain_c2h, 0)[1..]);
    write("pdu_plain", "capsule_resp_c2hdata", &stream);

    // ANA log: 8 bytes of limits, then the log.
    let ana = AnaLog {
        change_count: 3,
        groups: vec![
            AnaGroupDesc {
                grpid: 1,
                change_count: 1,
                state: AnaState::OPTIMIZED,
                nsids: vec![1, 2],
            },
            AnaGroupDesc {
                grpid: 2,
                change_count: 2,
                state: AnaState::INACCESSIBLE,
                nsids: vec![3],
            },
        ],
    };
    let limits = [128u32.to_le_bytes(), 1024u32.to_le_bytes()].concat();
    write(
        "ana_log",
        "two_groups",
        &[&limits[..], &ana.encode(false)].concat(),
    );
    write("ana_log", "rgo", &[&limits[..], &ana.encode(true)].concat());

    let entry = DiscoveryEntry {
        trtype: trtype::TCP,
        adrfam: 1,
        subtype: 2,
        treq: 0,
        portid: 1,
        cntlid: 0xFFFF,
        asqsz: 32,
        eflags: 0,
        trsvcid: "4420".into(),
        subnqn: SUBNQN.into(),
        traddr: "127.0.0.1".into(),
        tsas: [0; 256],
    };
    let disc = DiscoveryLog {
        genctr: 1,
        numrec: 2,
        recfmt: 0,
        entries: vec![entry.clone(), DiscoveryEntry { portid: 2, ..entry }],
    };
    write("discovery_log", "two_entries", &disc.encode());
    write(
        "discovery_log",
        "header_only",
        &DiscoveryLog::default().encode(),
    );

    let ctrl = IdentifyController {
        sn: "SN0001".into(),
        mn: "nvmp".into(),
        fr: "0.1.0".into(),
        cmic: 0x0B,
        cntlid: 1,
        ver: 0x0002_0000,
        kas: 100,
        anatt: 10,
        anacap: 0x5F,
        anagrpmax: 128,
        nanagrpid: 128,
        nn: 1024,
        mnan: 1024,
        subnqn: SUBNQN.into(),
        ioccsz: 4,
        iorcsz: 1,
        msdbd: 1,
        ..Default::default()
    };
    write("identify", "controller", &ctrl.encode());
    let ns = IdentifyNamespace {
        nsze: 1 << 20,
        ncap: 1 << 20,
        nuse: 1 << 20,
        nlbaf: 1,
        flbas: 1,
        nmic: 1,
        anagrpid: 1,
        nguid: [0x11; 16],
        lbaf: vec![
            LbaFormat {
                ms: 0,
                lbads: 9,
                rp: 0,
            },
            LbaFormat {
                ms: 0,
                lbads: 12,
                rp: 0,
            },
        ],
        ..Default::default()
    };
    write("identify", "namespace", &ns.encode());

    let d = [
        NsIdDescriptor::Nguid([0x11; 16]),
        NsIdDescriptor::Uuid([0x22; 16]),
        NsIdDescriptor::Csi(0),
        NsIdDescriptor::Eui64([3; 8]),
    ];
    write(
        "ns_descriptors",
        "descriptors",
        &encode_ns_id_descriptors(&d)[..128],
    );
    write(
        "ns_descriptors",
        "ns_list",
        &encode_ns_list(&[1, 2, 7])[..32],
    );

    write("connect_data", "connect_data", &data.encode());
    // As SPDK sends it without `hostnqn:`: HOSTNQN all NUL.
    let no_host = ConnectData {
        hostnqn: String::new(),
        ..data.clone()
    };
    write("connect_data", "connect_data_no_hostnqn", &no_host.encode());
    write("connect_data", "connect_sqe", &connect.to_bytes());
    write(
        "connect_data",
        "property_get_sqe",
        &PropertyGet {
            offset: 0,
            size8: true,
        }
        .to_sqe()
        .to_bytes(),
    );
    write(
        "connect_data",
        "get_log_page_sqe",
        &GetLogPageCmd::new(LogPageId::ANA, 0, 4096, 0)
            .to_sqe()
            .to_bytes(),
    );
}
