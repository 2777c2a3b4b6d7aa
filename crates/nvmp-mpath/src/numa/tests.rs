use super::*;

/// A fake sysfs: two nodes (distance 10 local, 21 remote), CPUs 0-1 on
/// node 0 and 2-3 on node 1; eth0 on node 1, eth1 without a node, lo.
fn fake_sys() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let w = |p: &str, s: &str| {
        let p = d.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    };
    w("devices/system/node/node0/distance", "10 21\n");
    w("devices/system/node/node0/cpulist", "0-1\n");
    w("devices/system/node/node1/distance", "21 10\n");
    w("devices/system/node/node1/cpulist", "2,3\n");
    w("class/net/eth0/device/numa_node", "1\n");
    w("class/net/eth1/device/numa_node", "-1\n");
    std::fs::create_dir_all(d.path().join("class/net/lo")).unwrap();
    d
}

const ROUTE: &str =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth1\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth1\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
eth0\t0000000A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";

#[test]
fn cpulists() {
    assert_eq!(parse_cpulist("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
    assert_eq!(parse_cpulist(""), Vec::<usize>::new());
    assert_eq!(parse_cpulist("x,2"), vec![2]);
    assert_eq!(parse_cpulist("0-999999").len(), MAX_CPUS, "bounded");
}

#[test]
fn topology_from_sysfs() {
    let d = fake_sys();
    let t = Topology::read(d.path());
    assert!(t.is_numa());
    assert_eq!(t.distance, vec![vec![10, 21], vec![21, 10]]);
    assert_eq!(t.node_of_cpu(1), Some(0));
    assert_eq!(t.node_of_cpu(3), Some(1));
    assert_eq!(t.node_of_cpu(9), None);
    assert_eq!(t.distance(Some(0), Some(1)), 21);
    assert_eq!(t.distance(Some(1), Some(1)), 10);
    assert_eq!(t.distance(Some(0), None), 0, "unknown: all alike");
    assert_eq!(t.distance(Some(5), Some(0)), 0);
    // No sysfs at all: one flat machine.
    let empty = Topology::read(&d.path().join("nothing"));
    assert!(!empty.is_numa());
}

#[test]
fn routes_pick_the_longest_prefix() {
    assert_eq!(
        route_iface(ROUTE, "10.0.3.4".parse().unwrap()).as_deref(),
        Some("eth0")
    );
    assert_eq!(
        route_iface(ROUTE, "192.0.2.7".parse().unwrap()).as_deref(),
        Some("eth1")
    );
    assert_eq!(
        route_iface(ROUTE, "8.8.8.8".parse().unwrap()).as_deref(),
        Some("eth1"),
        "default route"
    );
    assert_eq!(
        route_iface(ROUTE, "127.0.0.1".parse().unwrap()).as_deref(),
        Some("lo")
    );
    assert_eq!(route_iface("Iface\n", "8.8.8.8".parse().unwrap()), None);
    assert_eq!(
        route_iface("Iface\nbad line\n", "8.8.8.8".parse().unwrap()),
        None
    );
}

#[test]
fn path_nodes() {
    let d = fake_sys();
    assert_eq!(path_node(d.path(), ROUTE, "10.0.0.9"), Some(1));
    assert_eq!(
        path_node(d.path(), ROUTE, "192.0.2.1"),
        None,
        "numa_node -1"
    );
    assert_eq!(
        path_node(d.path(), ROUTE, "127.0.0.1"),
        None,
        "lo: no device"
    );
    assert_eq!(path_node(d.path(), ROUTE, "::1"), None);
    assert_eq!(path_node(d.path(), ROUTE, "fe80::1"), None);
    assert_eq!(path_node(d.path(), ROUTE, "not-an-ip"), None);
    assert_eq!(iface_node(d.path(), "../../etc"), None);
}

#[test]
fn node_cell_looks_up_once() {
    let c = NodeCell::default();
    let mut calls = 0;
    // Loopback: no node on any machine.
    assert_eq!(
        c.get_or_lookup(|| {
            calls += 1;
            "127.0.0.1".into()
        }),
        None
    );
    assert_eq!(c.get_or_lookup(|| panic!("looked up twice")), None);
    assert_eq!(calls, 1);
}

#[test]
fn current_cpu_has_a_node_here() {
    // This machine: /sys lists its CPUs under some node (or none at all).
    let t = topology();
    if !t.cpu_node.is_empty() {
        assert!(current_node(t).is_some());
    }
}
