//! Which event a stalled I/O is blamed on. An I/O that waited long is
//! reported when it completes, which may be seconds after what stalled it
//! (a write fenced at a port cut completes after KATO, by when an ANA
//! change may have come and gone): the blame goes by the I/O's own start
//! and end, not by the latest event.

/// One slow I/O: when it started and ended (seconds since the demo began)
/// and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    pub start_s: f64,
    pub end_s: f64,
    pub us: u64,
}

/// An I/O shorter than this is no stall to explain (the episode's own
/// cause is reported with it).
pub const STALL_US: u64 = 100_000;

/// The event that began a stall, as an index into `event_times_s` (sorted,
/// seconds): the first event while the I/O was outstanding (from its start
/// to its end); with none, the last one before it started (the I/O was
/// submitted into a disturbance already under way). `None` if every event
/// came after the I/O ended.
pub fn stall_cause(event_times_s: &[f64], start_s: f64, end_s: f64) -> Option<usize> {
    let first_after_start = event_times_s.partition_point(|t| *t < start_s);
    match event_times_s.get(first_after_start) {
        Some(t) if *t <= end_s => Some(first_after_start),
        _ => first_after_start.checked_sub(1),
    }
}

/// The line reporting an episode: its slowest I/O, blamed on the event that
/// began it (`events`: time and text, sorted by time); `fallback` (what
/// opened the episode, at `fallback_s`) when the slowest I/O is no stall or
/// no event explains it.
pub fn stall_line(
    events: &[(f64, String)],
    slowest: Stall,
    fallback: &str,
    fallback_s: f64,
) -> String {
    let ms = slowest.us as f64 / 1000.0;
    if slowest.us >= STALL_US {
        let times: Vec<f64> = events.iter().map(|e| e.0).collect();
        if let Some(i) = stall_cause(&times, slowest.start_s, slowest.end_s) {
            let (t, what) = &events[i];
            return format!(
                "{what} at t={t:.2}s, I/O waited {ms:.1} ms (from t={:.2}s)",
                slowest.start_s
            );
        }
    }
    format!("{fallback} at t={fallback_s:.2}s, I/O waited {ms:.1} ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_during_the_io_began_it() {
        // The reported case: a write from t=1.59 s fenced at a port cut at
        // t=1.60 s, completing 5001 ms later, after an ANA change at 6.40 s.
        let ev = [1.0, 1.6, 6.4, 6.8];
        assert_eq!(stall_cause(&ev, 1.59, 6.591), Some(1));
        // Several events during it: still the first.
        assert_eq!(stall_cause(&[1.6, 1.7, 3.0], 1.5, 4.0), Some(0));
        // An event at the very start counts as during it.
        assert_eq!(stall_cause(&[1.6], 1.6, 2.0), Some(0));
    }

    #[test]
    fn a_disturbance_under_way_began_it() {
        // Submitted at t=2.0 s on a path cut at t=1.6 s.
        assert_eq!(stall_cause(&[1.6, 6.8], 2.0, 6.6), Some(0));
        assert_eq!(stall_cause(&[1.6, 6.8], 6.85, 7.0), Some(1));
    }

    #[test]
    fn nothing_explains_it() {
        assert_eq!(stall_cause(&[], 1.0, 2.0), None);
        assert_eq!(stall_cause(&[5.0], 1.0, 2.0), None);
    }

    #[test]
    fn the_line_names_the_event_that_began_the_stall() {
        let ev = vec![
            (1.6, "target: port 1 DOWN".to_string()),
            (6.8, "p1: ANA optimized -> inaccessible".to_string()),
        ];
        let s = Stall {
            start_s: 1.59,
            end_s: 6.591,
            us: 5_001_000,
        };
        let l = stall_line(&ev, s, "ANA change", 6.8);
        assert_eq!(
            l,
            "target: port 1 DOWN at t=1.60s, I/O waited 5001.0 ms (from t=1.59s)"
        );
        // A short I/O is no stall: the episode's cause stands.
        let short = Stall { us: 3_200, ..s };
        assert_eq!(
            stall_line(&ev, short, "failover (3 commands moved)", 6.8),
            "failover (3 commands moved) at t=6.80s, I/O waited 3.2 ms"
        );
        // No event before or during it.
        let early = Stall {
            start_s: 0.2,
            end_s: 0.5,
            us: 300_000,
        };
        assert_eq!(
            stall_line(&ev, early, "path lost", 0.4),
            "path lost at t=0.40s, I/O waited 300.0 ms"
        );
    }
}
