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
    )
        .prop_map(|(ctrl, ana, ana_pending, distance, depth)| PathView {
            ctrl,
            ana,
            ana_pending,
            distance,
            depth,
        })
}

proptest! {
    /// Whatever the policy: a chosen path is usable; an optimized path is
    /// chosen whenever one exists (except round-robin's sticky fallback,
    /// which never picks non-optimized over optimized either); requeue and
    /// fail follow availability.
    #[test]
    fn selection_invariants(paths in proptest::collection::vec(arb_view(), 0..6), cur in proptest::option::of(0usize..6), pol in 0usize..3) {
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
