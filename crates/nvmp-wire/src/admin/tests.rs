use super::*;
use proptest::prelude::*;

fn sqe(b: &[u8; 64]) -> Sqe {
    Sqe::decode(b).unwrap()
}

#[test]
fn identify_known_bytes() {
    // Identify CNS 01h: OPC 06h, CDW10 (bytes 40..44) = CNTID[31:16] | CNS[7:0].
    let mut b = [0u8; 64];
    b[0] = 0x06;
    b[1] = 0x40;
    b[40] = 0x01;
    b[42] = 0x05;
    let c = IdentifyCmd::from_sqe(&sqe(&b)).unwrap();
    assert_eq!(
        c,
        IdentifyCmd {
            cns: Cns::CONTROLLER,
            nsid: 0,
            cntid: 5
        }
    );
    assert_eq!(c.to_sqe().to_bytes(), b);
    // CNS 00h for NSID 7.
    let mut b = [0u8; 64];
    b[0] = 0x06;
    b[1] = 0x40;
    b[4] = 7;
    let c = IdentifyCmd::from_sqe(&sqe(&b)).unwrap();
    assert_eq!((c.cns, c.nsid), (Cns::NAMESPACE, 7));
    assert_eq!(
        IdentifyCmd::from_sqe(&keep_alive_sqe()).unwrap_err().field,
        "Identify.OPC"
    );
}

#[test]
fn get_log_page_known_bytes() {
    // ANA log, RGO, RAE, 4096 bytes (NUMD 0's based = 1023), LPO 0x1_0000_0010, CSI 0.
    // CDW10: LID[7:0]=0Ch, LSP[14:8]=1, RAE[15]=1, NUMDL[31:16]=03FFh.
    let mut b = [0u8; 64];
    b[0] = 0x02;
    b[1] = 0x40;
    b[4..8].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    b[40..44].copy_from_slice(&[0x0C, 0x81, 0xFF, 0x03]);
    b[48..52].copy_from_slice(&0x10u32.to_le_bytes());
    b[52..56].copy_from_slice(&1u32.to_le_bytes());
    let c = GetLogPageCmd::from_sqe(&sqe(&b)).unwrap();
    assert_eq!(
        c,
        GetLogPageCmd {
            lid: LogPageId::ANA,
            nsid: 0xFFFF_FFFF,
            lsp: ANA_LSP_RGO,
            rae: true,
            numd: 1024,
            lpo: 0x1_0000_0010,
            csi: 0
        }
    );
    assert_eq!(c.len_bytes(), 4096);
    assert_eq!(c.to_sqe().to_bytes(), b);
    // NUMDU in CDW11 (bytes 44..46): 0x0001_0000 + 1 dwords.
    let mut b2 = [0u8; 64];
    b2[0] = 0x02;
    b2[1] = 0x40;
    b2[40] = 0x70;
    b2[44] = 0x01;
    b2[59] = 0x02; // CSI in CDW14[31:24]
    let c = GetLogPageCmd::from_sqe(&sqe(&b2)).unwrap();
    assert_eq!((c.lid, c.numd, c.csi), (LogPageId::DISCOVERY, 0x1_0001, 2));
    assert_eq!(c.to_sqe().to_bytes(), b2);
}

#[test]
fn get_log_page_numd_overflow() {
    let mut s = Sqe::new(Opcode::GET_LOG_PAGE);
    s.cdw10 = 0xFFFF_0002;
    s.cdw11 = 0xFFFF;
    let e = GetLogPageCmd::from_sqe(&s).unwrap_err();
    assert_eq!(e.field, "GetLogPage.NUMD");
}

#[test]
fn features_known_bytes() {
    // Set Features: OPC 09h, CDW10 = SV[31] | FID; Number of Queues CDW11 = NCQR[31:16] | NSQR[15:0].
    let mut b = [0u8; 64];
    b[0] = 0x09;
    b[1] = 0x40;
    b[40] = 0x07;
    b[44..48].copy_from_slice(&[3, 0, 7, 0]);
    let c = SetFeaturesCmd::from_sqe(&sqe(&b)).unwrap();
    assert_eq!((c.fid, c.save), (FeatureId::NUMBER_OF_QUEUES, false));
    assert_eq!(
        NumberOfQueues::from_cdw11(c.cdw11),
        NumberOfQueues { nsqr: 3, ncqr: 7 }
    );
    assert_eq!(c.to_sqe().to_bytes(), b);
    b[43] = 0x80;
    assert!(SetFeaturesCmd::from_sqe(&sqe(&b)).unwrap().save);
    // Get Features: OPC 0Ah, SEL in bits 10:8.
    let mut b = [0u8; 64];
    b[0] = 0x0A;
    b[1] = 0x40;
    b[40] = 0x0F;
    b[41] = 0x03;
    let c = GetFeaturesCmd::from_sqe(&sqe(&b)).unwrap();
    assert_eq!((c.fid, c.sel), (FeatureId::KEEP_ALIVE_TIMER, 3));
    assert_eq!(c.to_sqe().to_bytes(), b);
}

#[test]
fn async_event_known_dw0() {
    // ANA change notice: type 2, info 03h, log page 0Ch → 0x000C_0302.
    let e = AsyncEvent::from_dw0(0x000C_0302);
    assert_eq!(e, AsyncEvent::notice(NOTICE_ANA_CHANGE, LogPageId::ANA));
    assert_eq!(e.to_dw0(), 0x000C_0302);
    let d = AsyncEvent::from_dw0(0x0070_F002);
    assert_eq!(
        (d.event_type, d.info, d.log_page),
        (
            AsyncEventType::NOTICE,
            NOTICE_DISCOVERY_LOG_CHANGE,
            LogPageId::DISCOVERY
        )
    );
    let n = AsyncEvent::from_dw0(0x0004_0002);
    assert_eq!(
        (n.info, n.log_page),
        (NOTICE_NS_ATTR_CHANGED, LogPageId::CHANGED_NS)
    );
    assert_eq!(aec::ANA_CHANGE | aec::NS_ATTR_CHANGED, 0x900);
}

#[test]
fn simple_sqes() {
    assert_eq!(keep_alive_sqe().to_bytes()[0], 0x18);
    assert_eq!(async_event_request_sqe().to_bytes()[0], 0x0C);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn identify_round_trip(cns: u8, nsid: u32, cntid: u16) {
        let c = IdentifyCmd { cns: Cns(cns), nsid, cntid };
        prop_assert_eq!(IdentifyCmd::from_sqe(&c.to_sqe()).unwrap(), c);
    }
    #[test]
    fn get_log_page_round_trip(lid: u8, nsid: u32, lsp in 0u8..128, rae: bool, numd in 1u32.., lpo: u64, csi: u8) {
        let c = GetLogPageCmd { lid: LogPageId(lid), nsid, lsp, rae, numd, lpo, csi };
        prop_assert_eq!(GetLogPageCmd::from_sqe(&c.to_sqe()).unwrap(), c);
    }
    #[test]
    fn features_round_trip(fid: u8, save: bool, sel in 0u8..8, cdw11: u32) {
        let s = SetFeaturesCmd { fid: FeatureId(fid), save, cdw11 };
        prop_assert_eq!(SetFeaturesCmd::from_sqe(&s.to_sqe()).unwrap(), s);
        let g = GetFeaturesCmd { fid: FeatureId(fid), sel, cdw11 };
        prop_assert_eq!(GetFeaturesCmd::from_sqe(&g.to_sqe()).unwrap(), g);
        let q = NumberOfQueues::from_dw0(cdw11);
        prop_assert_eq!(q.to_dw0(), cdw11);
    }
    #[test]
    fn async_event_round_trip(t in 0u8..8, info: u8, lp: u8) {
        let e = AsyncEvent { event_type: AsyncEventType(t), info, log_page: LogPageId(lp) };
        prop_assert_eq!(AsyncEvent::from_dw0(e.to_dw0()), e);
    }
    #[test]
    fn no_panic(b in proptest::collection::vec(any::<u8>(), 64)) {
        let s = Sqe::decode(&b).unwrap();
        let _ = IdentifyCmd::from_sqe(&s);
        let _ = GetLogPageCmd::from_sqe(&s).map(|c| c.len_bytes());
        let _ = SetFeaturesCmd::from_sqe(&s);
        let _ = GetFeaturesCmd::from_sqe(&s);
        let _ = AsyncEvent::from_dw0(s.cdw10);
    }
}
