//! SPEC §4's rule for a stream read from several partitions, in one home: the live service's
//! partition table (`service::partitions`) and scale-out's resolver stage (`topology`) both
//! call it.

use crate::time::Millis;

/// The event time the watermark may follow, before `allowed_lateness` is taken off, from each
/// partition's newest accepted event time and whether it is idle:
/// - the slowest active partition decides, and one that has no accepted event yet holds the
///   watermark back entirely (`None`);
/// - when every partition is idle the stream has paused, and the newest of any decides, so
///   that outcomes still settle in a quiet period.
pub fn event_time(parts: impl IntoIterator<Item = (Option<Millis>, bool)>) -> Option<Millis> {
    let mut slowest: Option<Millis> = None;
    let mut any_active = false;
    let mut active_without = false;
    let mut newest: Option<Millis> = None;
    for (time, idle) in parts {
        newest = newest.max(time);
        if idle {
            continue;
        }
        any_active = true;
        match time {
            Some(t) => slowest = Some(slowest.map_or(t, |s| s.min(t))),
            None => active_without = true,
        }
    }
    match (any_active, active_without) {
        (false, _) => newest,
        (true, true) => None,
        (true, false) => slowest,
    }
}

#[cfg(test)]
mod tests {
    use super::event_time;

    #[test]
    fn the_slowest_active_partition_decides_and_idle_ones_do_not() {
        assert_eq!(event_time([(Some(5), false), (Some(9), false)]), Some(5));
        assert_eq!(event_time([(Some(5), true), (Some(9), false)]), Some(9));
        // An active partition without an accepted event holds everything back.
        assert_eq!(event_time([(None, false), (Some(9), false)]), None);
        // All idle: the newest of any.
        assert_eq!(event_time([(Some(5), true), (Some(9), true)]), Some(9));
        assert_eq!(event_time([(None, true)]), None);
        assert_eq!(event_time([]), None);
    }
}
