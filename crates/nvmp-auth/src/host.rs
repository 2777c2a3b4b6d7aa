//! The host side of one DH-HMAC-CHAP transaction on one queue, sans I/O:
//!
//! 1. [`HostAuth::negotiate`] → AUTH_Negotiate to send (Authentication Send);
//! 2. [`HostAuth::on_challenge`] with what Authentication Receive returned →
//!    DH-HMAC-CHAP_Reply to send;
//! 3. [`HostAuth::on_success1`] with the next Authentication Receive → done,
//!    or (bidirectional) DH-HMAC-CHAP_Success2 to send.
//!
//! A step that fails returns an [`AuthError`]; when the host is the one
//! refusing, the error carries the AUTH_Failure2 to send.

use std::sync::Arc;

use nvmp_wire::auth::{
    AuthMsg, Failure, FailureReason, Negotiate, ProtocolDesc, Reply, AUTHID_DHCHAP, RESCODE_FAILED,
};
use zeroize::Zeroizing;

use crate::{ct_eq, DhGroup, DhKey, HashId, Secret};

/// What the host authenticates with.
#[derive(Debug, Clone)]
pub struct HostAuthConfig {
    /// The host key (`--dhchap-secret`).
    pub secret: Secret,
    /// The controller key (`--dhchap-ctrl-secret`): bidirectional when set.
    pub ctrl_secret: Option<Secret>,
    pub hostnqn: String,
    pub subnqn: String,
    /// Offered hash functions, in order of preference.
    pub hashes: Vec<HashId>,
    /// Offered DH groups, in order of preference.
    pub groups: Vec<DhGroup>,
}

impl HostAuthConfig {
    /// Offer everything, as Linux does.
    pub fn new(
        secret: Secret,
        ctrl_secret: Option<Secret>,
        hostnqn: impl Into<String>,
        subnqn: impl Into<String>,
    ) -> Self {
        Self {
            secret,
            ctrl_secret,
            hostnqn: hostnqn.into(),
            subnqn: subnqn.into(),
            hashes: HashId::ALL.to_vec(),
            groups: DhGroup::ALL.to_vec(),
        }
    }
}

/// Why an authentication transaction failed, as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The controller sent AUTH_Failure1.
    #[error("controller refused authentication: {reason}")]
    Refused { reason: FailureReason },
    /// The host refused the controller's message; send `failure2`.
    #[error("host failed authentication of the controller: {reason}: {detail}")]
    Local {
        reason: FailureReason,
        detail: String,
        failure2: Vec<u8>,
    },
}

impl AuthError {
    /// The AUTH_Failure2 the host must send, if any.
    pub fn failure2(&self) -> Option<&[u8]> {
        match self {
            AuthError::Local { failure2, .. } => Some(failure2),
            AuthError::Refused { .. } => None,
        }
    }
    pub fn reason(&self) -> FailureReason {
        match self {
            AuthError::Refused { reason } | AuthError::Local { reason, .. } => *reason,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Negotiate,
    Challenge,
    Success1,
    Done,
}

/// Results of a completed transaction, for log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub hash: HashId,
    pub group: DhGroup,
    pub bidirectional: bool,
}

/// One transaction.
pub struct HostAuth {
    cfg: Arc<HostAuthConfig>,
    t_id: u16,
    step: Step,
    hash: HashId,
    group: DhGroup,
    c2: Vec<u8>,
    s2: u32,
    session: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for HostAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostAuth")
            .field("t_id", &self.t_id)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl HostAuth {
    pub fn new(cfg: Arc<HostAuthConfig>, t_id: u16) -> Self {
        Self {
            cfg,
            t_id,
            step: Step::Negotiate,
            hash: HashId::Sha256,
            group: DhGroup::Null,
            c2: Vec::new(),
            s2: 0,
            session: None,
        }
    }

    fn fail(&self, reason: FailureReason, detail: impl Into<String>) -> AuthError {
        let failure2 = AuthMsg::Failure2(Failure {
            t_id: self.t_id,
            rescode: RESCODE_FAILED,
            reason,
        })
        .encode();
        AuthError::Local {
            reason,
            detail: detail.into(),
            failure2,
        }
    }

    /// AUTH_Negotiate: DH-HMAC-CHAP with the configured hashes and groups,
    /// no secure channel concatenation.
    pub fn negotiate(&mut self) -> Vec<u8> {
        self.step = Step::Challenge;
        AuthMsg::Negotiate(Negotiate {
            t_id: self.t_id,
            sc_c: 0,
            protocols: vec![ProtocolDesc {
                authid: AUTHID_DHCHAP,
                hash_ids: self.cfg.hashes.iter().map(|h| h.id()).collect(),
                dh_ids: self.cfg.groups.iter().map(|g| g.id()).collect(),
            }],
        })
        .encode()
    }

    /// Decode a received message; a Failure1 or another transaction's
    /// message ends the transaction.
    fn receive(&self, buf: &[u8], want: &'static str) -> Result<AuthMsg, AuthError> {
        let m = AuthMsg::decode(buf)
            .map_err(|e| self.fail(FailureReason::INCORRECT_PAYLOAD, format!("{want}: {e}")))?;
        if let AuthMsg::Failure1(f) = m {
            return Err(AuthError::Refused { reason: f.reason });
        }
        if m.t_id() != self.t_id {
            return Err(self.fail(
                FailureReason::INCORRECT_PROTOCOL_MESSAGE,
                format!(
                    "{} for transaction {} (expected {})",
                    m.name(),
                    m.t_id(),
                    self.t_id
                ),
            ));
        }
        Ok(m)
    }

    /// The controller's challenge → the Reply to send.
    pub fn on_challenge(&mut self, buf: &[u8]) -> Result<Vec<u8>, AuthError> {
        if self.step != Step::Challenge {
            return Err(self.fail(
                FailureReason::INCORRECT_PROTOCOL_MESSAGE,
                "challenge out of order",
            ));
        }
        self.step = Step::Done;
        let ch = match self.receive(buf, "DH-HMAC-CHAP_Challenge")? {
            AuthMsg::Challenge(ch) => ch,
            m => {
                return Err(self.fail(
                    FailureReason::INCORRECT_PROTOCOL_MESSAGE,
                    format!("expected DH-HMAC-CHAP_Challenge, got {}", m.name()),
                ))
            }
        };
        let hash = match HashId::from_id(ch.hash_id).filter(|h| self.cfg.hashes.contains(h)) {
            Some(h) => h,
            None => {
                return Err(self.fail(
                    FailureReason::HASH_UNUSABLE,
                    format!("controller chose hash {} which was not offered", ch.hash_id),
                ))
            }
        };
        if ch.c1.len() != hash.len() {
            return Err(self.fail(
                FailureReason::HASH_UNUSABLE,
                format!("HL {} does not match {hash}", ch.c1.len()),
            ));
        }
        let group = match DhGroup::from_id(ch.dh_id).filter(|g| self.cfg.groups.contains(g)) {
            Some(g) => g,
            None => {
                return Err(self.fail(
                    FailureReason::DHGROUP_UNUSABLE,
                    format!(
                        "controller chose DH group {} which was not offered",
                        ch.dh_id
                    ),
                ))
            }
        };
        self.hash = hash;
        self.group = group;
        let (challenge, dhv) = if group == DhGroup::Null {
            if !ch.dhv.is_empty() {
                return Err(self.fail(
                    FailureReason::INCORRECT_PAYLOAD,
                    "DH value with the NULL group",
                ));
            }
            (ch.c1.clone(), Vec::new())
        } else {
            let key = DhKey::generate(group).expect("not the NULL group");
            let session = key.shared(&ch.dhv).map_err(|e| {
                self.fail(
                    FailureReason::DHGROUP_UNUSABLE,
                    format!("controller DH value: {e}"),
                )
            })?;
            let c = crate::augmented_challenge(hash, &session, &ch.c1);
            self.session = Some(session);
            (c, key.public().to_vec())
        };
        let kh = self.cfg.secret.transformed(&self.cfg.hostnqn);
        let r1 = crate::host_response(
            hash,
            &kh,
            &challenge,
            ch.seqnum,
            self.t_id,
            0,
            &self.cfg.hostnqn,
            &self.cfg.subnqn,
        );
        let cvalid = self.cfg.ctrl_secret.is_some();
        if cvalid {
            self.c2 = crate::random_bytes(hash.len());
            self.s2 = crate::random_seqnum();
        }
        self.step = Step::Success1;
        Ok(AuthMsg::Reply(Reply {
            t_id: self.t_id,
            cvalid,
            seqnum: self.s2,
            r1,
            c2: if cvalid {
                self.c2.clone()
            } else {
                vec![0; hash.len()]
            },
            dhv,
        })
        .encode())
    }

    /// The controller's Success1 → None when done, or the Success2 to send
    /// after the controller's response was verified.
    pub fn on_success1(&mut self, buf: &[u8]) -> Result<Option<Vec<u8>>, AuthError> {
        if self.step != Step::Success1 {
            return Err(self.fail(
                FailureReason::INCORRECT_PROTOCOL_MESSAGE,
                "success1 out of order",
            ));
        }
        self.step = Step::Done;
        let s1 = match self.receive(buf, "DH-HMAC-CHAP_Success1")? {
            AuthMsg::Success1(s) => s,
            m => {
                return Err(self.fail(
                    FailureReason::INCORRECT_PROTOCOL_MESSAGE,
                    format!("expected DH-HMAC-CHAP_Success1, got {}", m.name()),
                ))
            }
        };
        if s1.hl as usize != self.hash.len() {
            return Err(self.fail(
                FailureReason::HASH_UNUSABLE,
                format!("Success1 HL {}", s1.hl),
            ));
        }
        let Some(ctrl_secret) = &self.cfg.ctrl_secret else {
            return Ok(None);
        };
        let Some(r2) = s1.r2 else {
            return Err(self.fail(
                FailureReason::FAILED,
                "controller did not authenticate itself (no response in Success1)",
            ));
        };
        let kc = ctrl_secret.transformed(&self.cfg.subnqn);
        let c2 = match &self.session {
            Some(s) => crate::augmented_challenge(self.hash, s, &self.c2),
            None => self.c2.clone(),
        };
        let expect = crate::ctrl_response(
            self.hash,
            &kc,
            &c2,
            self.s2,
            self.t_id,
            0,
            &self.cfg.subnqn,
            &self.cfg.hostnqn,
        );
        if !ct_eq(&expect, &r2) {
            return Err(self.fail(
                FailureReason::FAILED,
                "controller response does not match (wrong controller key)",
            ));
        }
        Ok(Some(AuthMsg::Success2 { t_id: self.t_id }.encode()))
    }

    /// What was negotiated (valid after the challenge).
    pub fn negotiated(&self) -> Negotiated {
        Negotiated {
            hash: self.hash,
            group: self.group,
            bidirectional: self.cfg.ctrl_secret.is_some(),
        }
    }
}
