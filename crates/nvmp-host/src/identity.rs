//! Host identity (host NQN and host ID), found as nvme-cli finds it.

use std::sync::OnceLock;

/// The host's NQN and 16-byte host identifier, sent in every Fabrics Connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostIdentity {
    pub hostnqn: String,
    pub hostid: [u8; 16],
}

const UUID_NQN_PREFIX: &str = "nqn.2014-08.org.nvmexpress:uuid:";

impl HostIdentity {
    /// `/etc/nvme/hostnqn` and `/etc/nvme/hostid` when present (nvme-cli's
    /// files); a missing host ID is taken from a UUID-style host NQN; with
    /// neither, an identity generated once per process (so every
    /// controller of this process presents the same host).
    pub fn from_system() -> Self {
        Self::from_files("/etc/nvme/hostnqn", "/etc/nvme/hostid")
    }

    /// As [`HostIdentity::from_system`] with other file paths.
    pub fn from_files(nqn_path: &str, id_path: &str) -> Self {
        let nqn = read_trimmed(nqn_path).filter(|s| s.starts_with("nqn.") && s.len() <= 223);
        let id = read_trimmed(id_path).and_then(|s| parse_uuid(&s));
        match (nqn, id) {
            (Some(hostnqn), Some(hostid)) => Self { hostnqn, hostid },
            (Some(hostnqn), None) => {
                let hostid = hostnqn
                    .strip_prefix(UUID_NQN_PREFIX)
                    .and_then(parse_uuid)
                    .unwrap_or_else(|| Self::generated().hostid);
                Self { hostnqn, hostid }
            }
            (None, _) => Self::generated().clone(),
        }
    }

    /// The identity generated for this process (random UUID, stable for its life).
    pub fn generated() -> &'static Self {
        static ID: OnceLock<HostIdentity> = OnceLock::new();
        ID.get_or_init(|| Self::from_uuid(*uuid::Uuid::new_v4().as_bytes()))
    }

    /// `nqn.2014-08.org.nvmexpress:uuid:<uuid>` with the UUID as host ID (what `nvme gen-hostnqn` makes).
    pub fn from_uuid(uuid: [u8; 16]) -> Self {
        Self {
            hostnqn: format!(
                "{UUID_NQN_PREFIX}{}",
                uuid::Uuid::from_bytes(uuid).hyphenated()
            ),
            hostid: uuid,
        }
    }

    /// The host ID as a UUID string.
    pub fn hostid_string(&self) -> String {
        uuid::Uuid::from_bytes(self.hostid).hyphenated().to_string()
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    uuid::Uuid::parse_str(s.trim()).ok().map(|u| *u.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_is_stable() {
        let a = HostIdentity::generated();
        let b = HostIdentity::generated();
        assert_eq!(a, b);
        assert!(a.hostnqn.starts_with(UUID_NQN_PREFIX));
        assert_eq!(a.hostnqn[UUID_NQN_PREFIX.len()..], a.hostid_string());
    }

    #[test]
    fn files() {
        let dir = std::env::temp_dir().join(format!("nvmp-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let nqn = dir.join("hostnqn");
        let id = dir.join("hostid");
        let u = "4c504853-0000-4000-8000-000000000001";
        std::fs::write(&nqn, format!("{UUID_NQN_PREFIX}{u}\n")).unwrap();
        let h = HostIdentity::from_files(nqn.to_str().unwrap(), id.to_str().unwrap());
        assert_eq!(h.hostid_string(), u, "host ID from the UUID NQN");
        std::fs::write(&nqn, "nqn.2024-01.io.example:host1\n").unwrap();
        std::fs::write(&id, "4c504853-0000-4000-8000-000000000002\n").unwrap();
        let h = HostIdentity::from_files(nqn.to_str().unwrap(), id.to_str().unwrap());
        assert_eq!(h.hostnqn, "nqn.2024-01.io.example:host1");
        assert_eq!(h.hostid[15], 2);
        let h = HostIdentity::from_files("/nonexistent/a", "/nonexistent/b");
        assert_eq!(&h, HostIdentity::generated());
        std::fs::remove_dir_all(&dir).ok();
    }
}
