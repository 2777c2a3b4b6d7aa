use super::*;
use proptest::prelude::*;

const OPT: AnaState = AnaState::OPTIMIZED;
const NON: AnaState = AnaState::NON_OPTIMIZED;
const INACC: AnaState = AnaState::INACCESSIBLE;

fn p(ana: AnaState) -> PathView {
    PathView {
        ctrl: CtrlCondition::Live,
        ana,
        ana_pending: false,
        distance: 0,
        depth: 0,
        latency_ns: 0,
        probe: false,
    }
}
fn with_ctrl(mut v: PathView, c: CtrlCondition) -> PathView {
    v.ctrl = c;
    v
}

#[test]
fn numa_prefers_optimized_and_sticks() {
    let paths = [p(NON), p(OPT), p(OPT)];
    assert_eq!(select(&paths, IoPolicy::Numa, None), Selection::Path(1));
    // Sticky while optimized.
    assert_eq!(select(&paths, IoPolicy::Numa, Some(2)), Selection::Path(2));
    // A non-optimized current path is abandoned for an optimized one.
    assert_eq!(select(&paths, IoPolicy::Numa, Some(0)), Selection::Path(1));
}

#[test]
fn numa_nearest_distance() {
    let mut a = p(OPT);
    a.distance = 20;
    let mut b = p(OPT);
    b.distance = 10;
    assert_eq!(select(&[a, b], IoPolicy::Numa, None), Selection::Path(1));
}

#[test]
fn numa_current_path_yields_to_a_nearer_one() {
    // Distances from the submitting CPU's node: a thread on another node
    // sees another nearest path, and does not keep the current one.
    let mut far = p(OPT);
    far.distance = 20;
    let mut near = p(OPT);
    near.distance = 10;
    assert_eq!(
        select(&[far, near], IoPolicy::Numa, Some(0)),
        Selection::Path(1)
    );
    // Equal distances: sticky as before.
    let mut same = p(OPT);
    same.distance = 20;
    assert_eq!(
        select(&[far, same], IoPolicy::Numa, Some(1)),
        Selection::Path(1)
    );
    // A nearer non-optimized path does not displace an optimized one.
    let mut near_non = p(NON);
    near_non.distance = 10;
    assert_eq!(
        select(&[far, near_non], IoPolicy::Numa, Some(0)),
        Selection::Path(0)
    );
}

#[test]
fn numa_falls_back_to_non_optimized() {
    let paths = [p(INACC), p(NON)];
    assert_eq!(select(&paths, IoPolicy::Numa, None), Selection::Path(1));
}

#[test]
fn each_ana_state() {
    for (state, usable) in [
        (AnaState::OPTIMIZED, true),
        (AnaState::NON_OPTIMIZED, true),
        (AnaState::INACCESSIBLE, false),
        (AnaState::PERSISTENT_LOSS, false),
        (AnaState::CHANGE, false),
    ] {
        let got = select(&[p(state)], IoPolicy::Numa, None);
        let want = if usable {
            Selection::Path(0)
        } else {
            Selection::Requeue
        };
        assert_eq!(got, want, "{state:?}");
    }
}

#[test]
fn ana_pending_disables_path() {
    let mut a = p(OPT);
    a.ana_pending = true;
    assert_eq!(
        select(&[a, p(NON)], IoPolicy::Numa, Some(0)),
        Selection::Path(1)
    );
}

#[test]
fn requeue_while_recovering_fail_when_gone() {
    let rec = [
        with_ctrl(p(OPT), CtrlCondition::Recovering),
        with_ctrl(p(OPT), CtrlCondition::Gone),
    ];
    for pol in IoPolicy::ALL {
        assert_eq!(select(&rec, pol, None), Selection::Requeue);
    }
    let gone = [
        with_ctrl(p(OPT), CtrlCondition::Gone),
        with_ctrl(p(NON), CtrlCondition::Gone),
    ];
    for pol in IoPolicy::ALL {
        assert_eq!(select(&gone, pol, None), Selection::Fail);
    }
    assert_eq!(select(&[], IoPolicy::Numa, None), Selection::Fail);
    // A live controller whose only namespace path is inaccessible: the ANA
    // state may change, so requeue.
    assert_eq!(
        select(&[p(INACC)], IoPolicy::RoundRobin, None),
        Selection::Requeue
    );
}

#[test]
fn round_robin_rotates_among_optimized() {
    let paths = [p(OPT), p(NON), p(OPT), p(OPT)];
    let mut cur = None;
    let mut seen = vec![];
    for _ in 0..6 {
        let Selection::Path(i) = select(&paths, IoPolicy::RoundRobin, cur) else {
            panic!()
        };
        seen.push(i);
        cur = Some(i);
    }
    assert_eq!(seen, vec![0, 2, 3, 0, 2, 3]);
}

#[test]
fn round_robin_falls_back_to_non_optimized() {
    let paths = [p(NON), p(INACC), p(NON)];
    let Selection::Path(a) = select(&paths, IoPolicy::RoundRobin, None) else {
        panic!()
    };
    let Selection::Path(b) = select(&paths, IoPolicy::RoundRobin, Some(a)) else {
        panic!()
    };
    assert_eq!((a, b), (0, 2));
    // Single usable path stays.
    let one = [p(NON), p(INACC)];
    assert_eq!(
        select(&one, IoPolicy::RoundRobin, Some(0)),
        Selection::Path(0)
    );
}

#[test]
fn queue_depth_picks_least_loaded_optimized() {
    let mut a = p(OPT);
    a.depth = 5;
    let mut b = p(OPT);
    b.depth = 2;
    let mut c = p(NON);
    c.depth = 0;
    assert_eq!(
        select(&[a, b, c], IoPolicy::QueueDepth, None),
        Selection::Path(1)
    );
    let mut d = p(NON);
    d.depth = 3;
    assert_eq!(
        select(&[p(INACC), c, d], IoPolicy::QueueDepth, None),
        Selection::Path(1)
    );
}

fn timed(ana: AnaState, latency_us: u64, depth: usize) -> PathView {
    PathView {
        latency_ns: latency_us * 1000,
        depth,
        ..p(ana)
    }
}

const ST: IoPolicy = IoPolicy::ServiceTime;

#[test]
fn service_time_weighs_latency_by_outstanding_work() {
    // 100 us with 10 outstanding (1.1 ms) beats 2 ms idle; at 25 outstanding (2.6 ms) it does not.
    let fast = timed(OPT, 100, 10);
    let slow = timed(OPT, 2000, 0);
    assert_eq!(select(&[slow, fast], ST, None), Selection::Path(1));
    let busy = timed(OPT, 100, 25);
    assert_eq!(select(&[slow, busy], ST, None), Selection::Path(0));
    // Equal latencies: the least loaded (queue-depth's choice).
    assert_eq!(
        select(&[timed(OPT, 100, 3), timed(OPT, 100, 2)], ST, None),
        Selection::Path(1)
    );
    // Ties go to the first; the current path does not matter.
    assert_eq!(
        select(&[timed(OPT, 100, 0), timed(OPT, 100, 0)], ST, Some(1)),
        Selection::Path(0)
    );
}

#[test]
fn service_time_keeps_to_the_best_ana_state() {
    // A fast non-optimized path is not chosen while an optimized one is usable.
    let slow_opt = timed(OPT, 5000, 30);
    let fast_non = timed(NON, 10, 0);
    assert_eq!(select(&[fast_non, slow_opt], ST, None), Selection::Path(1));
    // Nor probed.
    let mut probe_non = fast_non;
    probe_non.probe = true;
    assert_eq!(select(&[probe_non, slow_opt], ST, None), Selection::Path(1));
    // Without an optimized path, the best non-optimized one.
    assert_eq!(
        select(
            &[p(INACC), timed(NON, 900, 0), timed(NON, 300, 1)],
            ST,
            None
        ),
        Selection::Path(2)
    );
}

#[test]
fn service_time_probes_and_tries_unmeasured_paths() {
    let fast = timed(OPT, 50, 0);
    let mut slow = timed(OPT, 2000, 0);
    assert_eq!(select(&[slow, fast], ST, None), Selection::Path(1));
    // Due a probe: chosen once, even though it looks slow.
    slow.probe = true;
    assert_eq!(select(&[slow, fast], ST, None), Selection::Path(0));
    // A path never measured is tried before any measured one, the least loaded first.
    let new_a = timed(OPT, 0, 3);
    let new_b = timed(OPT, 0, 1);
    assert_eq!(select(&[fast, new_a, new_b], ST, None), Selection::Path(2));
    assert_eq!(expected_ns(&new_a), 3);
    assert_eq!(expected_ns(&timed(OPT, 100, 4)), 500_000);
    assert_eq!(
        expected_ns(&PathView {
            latency_ns: u64::MAX,
            depth: 9,
            ..p(OPT)
        }),
        u64::MAX,
        "saturates"
    );
}

/// The statistics and the selection together: a path whose latency jumps
/// loses its traffic as its estimate decays toward the new value, and a
/// path that recovers is seen again through a probe.
#[test]
fn service_time_follows_a_delay_from_one_path_to_the_other() {
    use crate::latency::{PathLatency, PROBE_AFTER_NS};
    let stats = [PathLatency::default(), PathLatency::default()];
    let mut now = 1_000_000_000u64;
    let mut real = [2_000_000u64, 100_000]; // path 0 slow, path 1 fast
    let choose = |stats: &[PathLatency; 2], now: u64| {
        let views: Vec<PathView> = stats
            .iter()
            .map(|s| PathView {
                latency_ns: s.estimate_ns(0),
                probe: s.due_probe(now),
                ..p(OPT)
            })
            .collect();
        match select(&views, ST, None) {
            Selection::Path(i) => i,
            other => panic!("{other:?}"),
        }
    };
    // QD1, one command at a time: each completes after the path's real latency.
    let run = |stats: &[PathLatency; 2], now: &mut u64, real: [u64; 2], n: usize| {
        let mut counts = [0usize; 2];
        for _ in 0..n {
            let i = choose(stats, *now);
            *now += real[i];
            stats[i].record_at(*now, real[i], 0);
            counts[i] += 1;
        }
        counts
    };
    let c = run(&stats, &mut now, real, 2000);
    assert!(c[1] > 1900, "the fast path carries nearly all: {c:?}");
    assert!(
        c[0] >= 2,
        "the slow path is still probed now and then: {c:?}"
    );
    // The delay moves to path 1: within 1 s (of simulated time) path 0 carries the I/O again.
    real = [100_000, 2_000_000];
    let t_move = now;
    let mut switched_at = None;
    while now - t_move < 3_000_000_000 {
        let before = now;
        let c = run(&stats, &mut now, real, 50);
        if c[0] >= 45 {
            switched_at = Some(before - t_move);
            break;
        }
    }
    let at = switched_at.expect("follows the delay");
    assert!(at <= 1_000_000_000, "followed after {at} ns");
    assert!(
        at <= 2 * PROBE_AFTER_NS + 200_000_000,
        "one probe suffices: {at} ns"
    );
}

fn arb_view() -> impl Strategy<Value = PathView> {
    (
        prop_oneof![
            Just(CtrlCondition::Live),
            Just(CtrlCondition::Recovering),
            Just(CtrlCondition::Gone)
        ],
        prop_oneof![
            Just(OPT),
            Just(NON),
            Just(INACC),
            Just(AnaState::PERSISTENT_LOSS),
            Just(AnaState::CHANGE)
        ],
        any::<bool>(),
        0u32..3,
        0usize..8,
        prop_oneof![Just(0u64), 1u64..10_000_000],
        any::<bool>(),
    )
        .prop_map(
            |(ctrl, ana, ana_pending, distance, depth, latency_ns, probe)| PathView {
                ctrl,
                ana,
                ana_pending,
                distance,
                depth,
                latency_ns,
                probe,
            },
        )
}

proptest! {
    /// Whatever the policy: a chosen path is usable; an optimized path is
    /// chosen whenever one exists (except round-robin's sticky fallback,
    /// which never picks non-optimized over optimized either); requeue and
    /// fail follow availability.
    #[test]
    fn selection_invariants(paths in proptest::collection::vec(arb_view(), 0..6), cur in proptest::option::of(0usize..6), pol in 0usize..4) {
        let policy = IoPolicy::ALL[pol];
        let any_usable = paths.iter().any(PathView::is_usable);
        let any_opt = paths.iter().any(PathView::is_optimized);
        match select(&paths, policy, cur) {
            Selection::Path(i) => {
                prop_assert!(paths[i].is_usable());
                if any_opt { prop_assert!(paths[i].is_optimized()); }
            }
            Selection::Requeue => { prop_assert!(!any_usable); prop_assert!(available(&paths)); }
            Selection::Fail => { prop_assert!(!any_usable); prop_assert!(!available(&paths)); }
        }
    }
}
