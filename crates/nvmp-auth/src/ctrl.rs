//! The controller side of DH-HMAC-CHAP on one queue, sans I/O. The driver
//! hands it every Authentication Send payload ([`CtrlAuth::on_send`]) and
//! asks it for every Authentication Receive payload ([`CtrlAuth::on_receive`]);
//! each returns an [`Event`] saying whether the queue became authenticated
//! or the transaction failed (the driver then logs and closes the queue).
//!
//! An AUTH_Negotiate (re)starts a transaction at any time (re-authentication); an authenticated queue stays
//! authenticated during re-authentication until it fails.

use std::sync::Arc;

use nvmp_wire::auth::{
    AuthMsg, Challenge, Failure, FailureReason, Success1, AUTHID_DHCHAP, RESCODE_FAILED,
};
use zeroize::Zeroizing;

use crate::{ct_eq, DhGroup, DhKey, HashId, Secret};

/// What the controller requires of one host (target config `hosts[].dhchap`).
#[derive(Debug, Clone)]
pub struct CtrlAuthConfig {
    /// The key the host must prove (`dhchap_key`).
    pub host_key: Secret,
    /// The key the controller proves itself with when asked (`dhchap_ctrl_key`).
    pub ctrl_key: Option<Secret>,
    /// Hash function the controller selects (`dhchap_hash`).
    pub hash: HashId,
    /// DH group the controller selects (`dhchap_dhgroup`).
    pub group: DhGroup,
    pub hostnqn: String,
    pub subnqn: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Waiting for AUTH_Negotiate (Send).
    Negotiate,
    /// Waiting for the host to fetch the Challenge (Receive).
    Challenge,
    /// Waiting for the Reply (Send).
    Reply,
    /// Waiting for the host to fetch Success1 (Receive).
    Success1,
    /// Waiting for Success2 (Send).
    Success2,
    /// Waiting for the host to fetch Failure1 (Receive).
    Failure1,
    /// Transaction over.
    Idle,
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Transaction goes on (or nothing changed).
    None,
    /// The queue is authenticated.
    Authenticated,
    /// The host failed; AUTH_Failure1 will be returned on the next Receive.
    Failing {
        reason: FailureReason,
        detail: String,
    },
    /// The transaction is over and failed (Failure1 delivered, or the host
    /// sent AUTH_Failure2): the queue must not be used.
    Failed {
        reason: FailureReason,
        by_host: bool,
    },
}

/// One queue's authentication state.
pub struct CtrlAuth {
    cfg: Arc<CtrlAuthConfig>,
    step: Step,
    t_id: u16,
    s1: u32,
    c1: Vec<u8>,
    dh: Option<DhKey>,
    session: Option<Zeroizing<Vec<u8>>>,
    s2: u32,
    c2: Option<Vec<u8>>,
    reason: FailureReason,
    authenticated: bool,
}

impl std::fmt::Debug for CtrlAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtrlAuth")
            .field("step", &self.step)
            .field("t_id", &self.t_id)
            .field("authenticated", &self.authenticated)
            .finish_non_exhaustive()
    }
}

impl CtrlAuth {
    pub fn new(cfg: Arc<CtrlAuthConfig>) -> Self {
        Self {
            cfg,
            step: Step::Negotiate,
            t_id: 0,
            s1: 0,
            c1: Vec::new(),
            dh: None,
            session: None,
            s2: 0,
            c2: None,
            reason: FailureReason::FAILED,
            authenticated: false,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }
    /// A transaction is under way.
    pub fn in_progress(&self) -> bool {
        !matches!(self.step, Step::Negotiate | Step::Idle)
    }
    /// The configuration in force (keys may change between transactions).
    pub fn set_config(&mut self, cfg: Arc<CtrlAuthConfig>) {
        self.cfg = cfg;
    }

    fn failing(&mut self, reason: FailureReason, detail: impl Into<String>) -> Event {
        // The queue stays as it was (authenticated or not) until Failure1
        // has been delivered.
        self.step = Step::Failure1;
        self.reason = reason;
        self.session = None;
        self.dh = None;
        Event::Failing {
            reason,
            detail: detail.into(),
        }
    }

    /// An Authentication Send payload.
    pub fn on_send(&mut self, data: &[u8]) -> Event {
        let msg = match AuthMsg::decode(data) {
            Ok(m) => m,
            Err(e) => return self.failing(FailureReason::INCORRECT_PAYLOAD, e.to_string()),
        };
        if let AuthMsg::Negotiate(n) = &msg {
            // (Re)start.
            self.t_id = n.t_id;
            self.session = None;
            self.dh = None;
            self.c2 = None;
            if n.sc_c != 0 {
                return self.failing(
                    FailureReason::CONCAT_MISMATCH,
                    "secure channel concatenation is not supported",
                );
            }
            let Some(p) = n.protocols.iter().find(|p| p.authid == AUTHID_DHCHAP) else {
                return self.failing(FailureReason::NOT_USABLE, "host offers no DH-HMAC-CHAP");
            };
            if !p.hash_ids.contains(&self.cfg.hash.id()) {
                let d = format!(
                    "host does not offer {} (offers {:?})",
                    self.cfg.hash, p.hash_ids
                );
                return self.failing(FailureReason::HASH_UNUSABLE, d);
            }
            if !p.dh_ids.contains(&self.cfg.group.id()) {
                let d = format!(
                    "host does not offer {} (offers {:?})",
                    self.cfg.group, p.dh_ids
                );
                return self.failing(FailureReason::DHGROUP_UNUSABLE, d);
            }
            self.step = Step::Challenge;
            return Event::None;
        }
        if let AuthMsg::Failure2(f) = msg {
            self.step = Step::Idle;
            self.authenticated = false;
            return Event::Failed {
                reason: f.reason,
                by_host: true,
            };
        }
        if msg.t_id() != self.t_id && self.in_progress() {
            let d = format!("transaction {} (expected {})", msg.t_id(), self.t_id);
            return self.failing(FailureReason::INCORRECT_PAYLOAD, d);
        }
        match (self.step, msg) {
            (Step::Reply, AuthMsg::Reply(r)) => self.on_reply(r),
            (Step::Success2, AuthMsg::Success2 { .. }) => {
                self.step = Step::Idle;
                self.authenticated = true;
                Event::Authenticated
            }
            (step, m) => {
                let d = format!("{} while waiting for {step:?}", m.name());
                self.failing(FailureReason::INCORRECT_PROTOCOL_MESSAGE, d)
            }
        }
    }

    fn on_reply(&mut self, r: nvmp_wire::auth::Reply) -> Event {
        let hash = self.cfg.hash;
        if r.r1.len() != hash.len() {
            let d = format!("HL {} for {hash}", r.r1.len());
            return self.failing(FailureReason::INCORRECT_PAYLOAD, d);
        }
        let challenge = match &self.dh {
            None if r.dhv.is_empty() => self.c1.clone(),
            None => {
                return self.failing(
                    FailureReason::INCORRECT_PAYLOAD,
                    "DH value with the NULL group",
                )
            }
            Some(key) => match key.shared(&r.dhv) {
                Ok(s) => {
                    let c = crate::augmented_challenge(hash, &s, &self.c1);
                    self.session = Some(s);
                    c
                }
                Err(e) => {
                    return self.failing(
                        FailureReason::DHGROUP_UNUSABLE,
                        format!("host DH value: {e}"),
                    )
                }
            },
        };
        let kh = self.cfg.host_key.transformed(&self.cfg.hostnqn);
        let expect = crate::host_response(
            hash,
            &kh,
            &challenge,
            self.s1,
            self.t_id,
            0,
            &self.cfg.hostnqn,
            &self.cfg.subnqn,
        );
        if !ct_eq(&expect, &r.r1) {
            return self.failing(
                FailureReason::FAILED,
                "host response does not match (wrong host key)",
            );
        }
        // NVMe Base 2.2 8.3.4.5.4, Reply SEQNUM: "The value 0h is used to indicate
        // that bidirectional authentication is not performed".
        if r.cvalid && r.seqnum != 0 {
            if self.cfg.ctrl_key.is_none() {
                return self.failing(
                    FailureReason::FAILED,
                    "host asks the controller to authenticate itself but no controller key is configured",
                );
            }
            self.s2 = r.seqnum;
            self.c2 = Some(r.c2);
        }
        self.step = Step::Success1;
        Event::None
    }

    /// Bytes the next Authentication Receive needs (None: any length will do).
    fn needed(&self) -> usize {
        let hl = self.cfg.hash.len();
        match self.step {
            Step::Challenge => 16 + hl + self.cfg.group.value_len(),
            Step::Success1 => 16 + if self.c2.is_some() { hl } else { 0 },
            _ => 8,
        }
    }

    /// An Authentication Receive with allocation length `al`: the message
    /// to return, or Err(needed) if `al` is too small (nothing changes).
    pub fn on_receive(&mut self, al: u32) -> Result<(Vec<u8>, Event), usize> {
        let need = self.needed();
        if (al as usize) < need {
            return Err(need);
        }
        match self.step {
            Step::Challenge => {
                let hash = self.cfg.hash;
                self.s1 = crate::random_seqnum();
                self.c1 = crate::random_bytes(hash.len());
                self.dh = DhKey::generate(self.cfg.group);
                let dhv = self.dh.as_ref().map_or(Vec::new(), |k| k.public().to_vec());
                self.step = Step::Reply;
                let m = AuthMsg::Challenge(Challenge {
                    t_id: self.t_id,
                    hash_id: hash.id(),
                    dh_id: self.cfg.group.id(),
                    seqnum: self.s1,
                    c1: self.c1.clone(),
                    dhv,
                });
                Ok((m.encode(), Event::None))
            }
            Step::Success1 => {
                let hash = self.cfg.hash;
                let r2 = match (&self.c2, &self.cfg.ctrl_key) {
                    (Some(c2), Some(key)) => {
                        let kc = key.transformed(&self.cfg.subnqn);
                        let c = match &self.session {
                            Some(s) => crate::augmented_challenge(hash, s, c2),
                            None => c2.clone(),
                        };
                        Some(crate::ctrl_response(
                            hash,
                            &kc,
                            &c,
                            self.s2,
                            self.t_id,
                            0,
                            &self.cfg.subnqn,
                            &self.cfg.hostnqn,
                        ))
                    }
                    _ => None,
                };
                let bidirectional = r2.is_some();
                let m = AuthMsg::Success1(Success1 {
                    t_id: self.t_id,
                    hl: hash.len() as u8,
                    r2,
                });
                self.session = None;
                self.dh = None;
                let ev = if bidirectional {
                    self.step = Step::Success2;
                    Event::None
                } else {
                    self.step = Step::Idle;
                    self.authenticated = true;
                    Event::Authenticated
                };
                Ok((m.encode(), ev))
            }
            step => {
                // Failure1, or a Receive out of order ("unexpected step").
                let reason = if step == Step::Failure1 {
                    self.reason
                } else {
                    FailureReason::INCORRECT_PROTOCOL_MESSAGE
                };
                self.step = Step::Idle;
                self.authenticated = false;
                let m = AuthMsg::Failure1(Failure {
                    t_id: self.t_id,
                    rescode: RESCODE_FAILED,
                    reason,
                });
                Ok((
                    m.encode(),
                    Event::Failed {
                        reason,
                        by_host: false,
                    },
                ))
            }
        }
    }
}
