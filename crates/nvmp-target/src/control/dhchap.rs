//! Changing a host's DH-HMAC-CHAP settings while the target runs (control
//! socket op `set_dhchap`). New settings apply to new connections and to
//! every re-authentication; queues already authenticated stay so.

use std::sync::Arc;

use super::{ControlError, TargetHandle};
use crate::config::dhchap::{self, RawDhchap};

impl TargetHandle {
    /// Set (or, with `None`, remove) the DH-HMAC-CHAP settings of `host`.
    pub fn set_dhchap(
        &self,
        host: &str,
        spec: Option<dhchap::DhchapSpec>,
    ) -> Result<(), ControlError> {
        nvmp_wire::Nqn::parse(host).map_err(|e| ControlError(format!("host {host:?}: {e}")))?;
        let mut st = self.shared.lock();
        match spec {
            Some(s) => {
                tracing::info!(hostnqn = host, hash = %s.hash, dhgroup = %s.group,
                    bidirectional = s.ctrl_key.is_some(), "DH-HMAC-CHAP settings changed");
                st.dhchap.insert(host.to_string(), Arc::new(s));
            }
            None => {
                tracing::info!(hostnqn = host, "DH-HMAC-CHAP settings removed");
                st.dhchap.remove(host);
            }
        }
        Ok(())
    }

    /// [`TargetHandle::set_dhchap`] from the JSON object of `hosts[].dhchap`.
    pub fn set_dhchap_json(
        &self,
        host: &str,
        v: Option<serde_json::Value>,
    ) -> Result<(), ControlError> {
        let spec = match v {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => {
                let raw: RawDhchap =
                    serde_json::from_value(v).map_err(|e| ControlError(format!("dhchap: {e}")))?;
                dhchap::validate(&raw, "dhchap")?
            }
        };
        self.set_dhchap(host, spec)
    }
}
