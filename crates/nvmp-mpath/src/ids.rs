//! Namespace identifiers, and the rule that joins namespaces into one head.

use nvmp_wire::identify::{IdentifyNamespace, NsIdDescriptor};

/// The identifiers a namespace is known by. Absent identifiers are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct NsIds {
    pub uuid: [u8; 16],
    pub nguid: [u8; 16],
    pub eui64: [u8; 8],
    /// Command Set Identifier (0 = NVM).
    pub csi: u8,
}

impl NsIds {
    /// From Identify Namespace and the namespace identification descriptor
    /// list; descriptors win over the Identify Namespace fields.
    pub fn from_identify(ns: &IdentifyNamespace, descs: &[NsIdDescriptor]) -> Self {
        let mut ids = NsIds {
            uuid: [0; 16],
            nguid: ns.nguid,
            eui64: ns.eui64,
            csi: 0,
        };
        for d in descs {
            match d {
                NsIdDescriptor::Uuid(u) => ids.uuid = *u,
                NsIdDescriptor::Nguid(g) => ids.nguid = *g,
                NsIdDescriptor::Eui64(e) => ids.eui64 = *e,
                NsIdDescriptor::Csi(c) => ids.csi = *c,
                _ => {}
            }
        }
        ids
    }

    /// Whether the namespace has any globally unique identifier.
    pub fn has_unique_id(&self) -> bool {
        self.uuid != [0; 16] || self.nguid != [0; 16] || self.eui64 != [0; 8]
    }

    /// The first identifier that differs, by name — "IDs don't match for
    /// shared namespace" must say which.
    pub fn mismatch(&self, other: &NsIds) -> Option<IdMismatch> {
        if self.uuid != other.uuid {
            return Some(IdMismatch {
                field: "UUID",
                head: hex(&self.uuid),
                path: hex(&other.uuid),
            });
        }
        if self.nguid != other.nguid {
            return Some(IdMismatch {
                field: "NGUID",
                head: hex(&self.nguid),
                path: hex(&other.nguid),
            });
        }
        if self.eui64 != other.eui64 {
            return Some(IdMismatch {
                field: "EUI-64",
                head: hex(&self.eui64),
                path: hex(&other.eui64),
            });
        }
        if self.csi != other.csi {
            return Some(IdMismatch {
                field: "CSI",
                head: self.csi.to_string(),
                path: other.csi.to_string(),
            });
        }
        None
    }
}

/// Which identifier differs between a head and a new path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMismatch {
    pub field: &'static str,
    pub head: String,
    pub path: String,
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_win_and_mismatch_names_field() {
        let ns = IdentifyNamespace {
            nguid: [1; 16],
            eui64: [2; 8],
            ..Default::default()
        };
        let a = NsIds::from_identify(
            &ns,
            &[NsIdDescriptor::Uuid([3; 16]), NsIdDescriptor::Csi(0)],
        );
        assert_eq!(a.uuid, [3; 16]);
        assert_eq!(a.nguid, [1; 16]);
        assert!(a.has_unique_id());
        assert_eq!(a.mismatch(&a), None);
        let mut b = a;
        b.nguid[15] = 9;
        assert_eq!(a.mismatch(&b).unwrap().field, "NGUID");
        let mut c = a;
        c.eui64 = [0; 8];
        assert_eq!(a.mismatch(&c).unwrap().field, "EUI-64");
        let mut d = a;
        d.uuid = [0; 16];
        assert_eq!(a.mismatch(&d).unwrap().field, "UUID");
        let mut e = a;
        e.csi = 2;
        assert_eq!(a.mismatch(&e).unwrap().field, "CSI");
    }
}
