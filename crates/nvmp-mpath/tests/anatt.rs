//! A group that stays in the ANA change state longer than 2 × ANATT gets
//! its controller reset, as Linux does. The target is told to report
//! ANATT = 1 s (its `nvmp_anatt` extension), so the reset comes after 2 s.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nvmp_host::CtrlState;
use nvmp_wire::log::AnaState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anatt_expiry_resets_the_controller() {
    let (t, _a, mp, head) = setup_two_paths_with(&TargetDef {
        extra_attr: r#""nvmp_anatt": "1""#,
        ..Default::default()
    })
    .await;
    let p0 = head.paths()[0].clone();
    let anatt = p0.ctrl.ctrl.id_ctrl().anatt as u64;
    assert_eq!(anatt, 1);
    let mut states = p0.ctrl.ctrl.watch_state();
    let start = Instant::now();
    t.set_ana(1, 1, AnaState::CHANGE).unwrap();
    wait_until("change state seen", Duration::from_secs(5), || {
        p0.ana_state() == AnaState::CHANGE
    })
    .await;
    // The I/O path keeps working on the other path meanwhile.
    head.read(0, 1).await.unwrap();
    let reset = tokio::time::timeout(Duration::from_secs(2 * anatt + 5), async {
        loop {
            states.changed().await.unwrap();
            if matches!(
                *states.borrow(),
                CtrlState::Resetting | CtrlState::Connecting
            ) {
                return start.elapsed();
            }
        }
    })
    .await
    .expect("controller reset after 2 x ANATT");
    eprintln!("controller reset {reset:?} after the group entered change (ANATT {anatt} s)");
    assert!(
        reset >= Duration::from_secs(2 * anatt) - Duration::from_millis(200),
        "{reset:?}"
    );
    // The group leaves the change state; after the reconnect the path is optimized again.
    t.set_ana(1, 1, AnaState::OPTIMIZED).unwrap();
    wait_until(
        "path optimized after reconnect",
        Duration::from_secs(10),
        || p0.view().is_optimized(),
    )
    .await;
    mp.shutdown().await;
    t.shutdown().await;
}
