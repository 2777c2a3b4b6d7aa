//! I/O policies, as Linux names them (`/sys/class/nvme-subsystem/*/iopolicy`).

use core::fmt;
use core::str::FromStr;

/// How a namespace head picks a path for each command.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum IoPolicy {
    /// Linux's default: one sticky current path per NUMA node, optimized
    /// before non-optimized, nearest first. In userspace every path is at
    /// distance 0 unless the caller says otherwise.
    #[default]
    Numa,
    /// Rotate among optimized paths; fall back to non-optimized ones.
    RoundRobin,
    /// The usable path with the fewest outstanding commands (optimized first).
    QueueDepth,
    /// Adaptive: among the usable paths of the best ANA state, the one with
    /// the shortest expected completion time — its measured latency (a
    /// decaying average per I/O size class) times its outstanding commands
    /// plus one; a path that has not completed anything for a while is
    /// probed with one command so that its recovery is seen.
    ServiceTime,
}

impl IoPolicy {
    pub const ALL: [IoPolicy; 4] = [
        IoPolicy::Numa,
        IoPolicy::RoundRobin,
        IoPolicy::QueueDepth,
        IoPolicy::ServiceTime,
    ];
    pub const fn as_str(self) -> &'static str {
        match self {
            IoPolicy::Numa => "numa",
            IoPolicy::RoundRobin => "round-robin",
            IoPolicy::QueueDepth => "queue-depth",
            IoPolicy::ServiceTime => "service-time",
        }
    }
}

impl fmt::Display for IoPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown policy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown I/O policy {0:?} (expected numa, round-robin, queue-depth or service-time)")]
pub struct UnknownPolicy(pub String);

impl FromStr for IoPolicy {
    type Err = UnknownPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "numa" => Ok(IoPolicy::Numa),
            "round-robin" | "rr" => Ok(IoPolicy::RoundRobin),
            "queue-depth" | "qd" => Ok(IoPolicy::QueueDepth),
            "service-time" | "st" | "adaptive" => Ok(IoPolicy::ServiceTime),
            other => Err(UnknownPolicy(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names_round_trip() {
        for p in IoPolicy::ALL {
            assert_eq!(p.as_str().parse::<IoPolicy>().unwrap(), p);
        }
        assert!("fastest".parse::<IoPolicy>().is_err());
        assert_eq!(
            "adaptive".parse::<IoPolicy>().unwrap(),
            IoPolicy::ServiceTime
        );
        for (i, p) in IoPolicy::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i, "the head stores the policy as its index");
        }
        assert_eq!(IoPolicy::default(), IoPolicy::Numa);
    }
}
