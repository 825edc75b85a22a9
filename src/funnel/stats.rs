//! Per-funnel, per-stage counters: journeys added up into the numbers of the summary
//! (SPEC §5.1). Counters are signed so that a journey can be taken back out when a change
//! (a late touch, a passing deadline) recomputes it.

use std::collections::HashMap;

use super::Funnel;
use super::journey::{End, Journey, Outcome};
use crate::time::Millis;

/// Buckets of `turns_before_entry`: 0, 1, 2, 3, 4+.
pub const TURN_BUCKETS: usize = 5;

/// Upper bounds (inclusive) of the time-to-convert histogram, from an hour to a year: B2B
/// stages take hours (a demo booked the same day) to months (a procurement cycle).
pub const CONVERSION_BOUNDS_MS: [Millis; 12] = [
    HOUR,
    6 * HOUR,
    DAY,
    3 * DAY,
    7 * DAY,
    14 * DAY,
    30 * DAY,
    60 * DAY,
    90 * DAY,
    180 * DAY,
    270 * DAY,
    365 * DAY,
];
const HOUR: Millis = 3_600_000;
const DAY: Millis = 24 * HOUR;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageStats {
    pub entered: i64,
    pub converted: i64,
    pub dropped: i64,
    pub open: i64,
    pub conversion_ms_sum: i64,
    pub entered_online: i64,
    pub entered_offline: i64,
    pub turns: [i64; TURN_BUCKETS],
    /// Exact sum of turns before entry (the buckets stop at 4+), for the histogram's `_sum`.
    pub turns_sum: i64,
    /// Conversions per bucket of [`CONVERSION_BOUNDS_MS`] (not cumulative); those slower
    /// than the last bound are `converted` minus the sum of these.
    pub conversion_buckets: [i64; CONVERSION_BOUNDS_MS.len()],
}

/// Entries of a stage by (stage, entering channel online, entering dimension values).
pub type EnteredByDims = HashMap<(u8, bool, u16), i64>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunnelStats {
    pub journeys: i64,
    pub won: i64,
    pub lost: i64,
    /// Journeys neither won nor lost that are over: a later journey exists or the watermark
    /// passed `journey_timeout` after their last touch.
    pub expired: i64,
    pub stages: Vec<StageStats>,
    /// Only when breakdown dimensions are configured; entries that fall back to 0 are removed,
    /// so that incremental and recomputed counters compare equal.
    pub entered_by_dims: Option<EnteredByDims>,
}

impl FunnelStats {
    pub fn new(funnel: &Funnel, with_dims: bool) -> FunnelStats {
        FunnelStats {
            stages: vec![StageStats::default(); funnel.stages.len()],
            entered_by_dims: with_dims.then(HashMap::new),
            ..FunnelStats::default()
        }
    }

    /// Adds (`sign` = 1) or takes back (`sign` = -1) one journey's contribution, with its
    /// outcomes decided at `watermark`.
    pub fn add(
        &mut self,
        journey: &Journey,
        funnel: &Funnel,
        watermark: Millis,
        has_later: bool,
        sign: i64,
    ) {
        self.journeys += sign;
        match journey.end {
            End::Won => self.won += sign,
            End::Lost => self.lost += sign,
            End::Open => {
                if journey.expired(funnel, watermark, has_later) {
                    self.expired += sign;
                }
            }
        }
        let last = funnel.last_stage();
        for s in 0..journey.reached {
            let stage = &mut self.stages[s];
            stage.entered += sign;
            if journey.entered_online & (1 << s) != 0 {
                stage.entered_online += sign;
            } else {
                stage.entered_offline += sign;
            }
            if let Some(by_dims) = &mut self.entered_by_dims {
                let online = journey.entered_online & (1 << s) != 0;
                let key = (s as u8, online, journey.entered_dims[s]);
                let n = by_dims.entry(key).or_default();
                *n += sign;
                if *n == 0 {
                    by_dims.remove(&key);
                }
            }
            let turns = journey.turns_before[s];
            stage.turns[(turns as usize).min(TURN_BUCKETS - 1)] += sign;
            stage.turns_sum += sign * i64::from(turns);
            if s < last {
                match journey.outcome(s, funnel, watermark, has_later) {
                    Outcome::Converted(ms) => {
                        stage.converted += sign;
                        stage.conversion_ms_sum += sign * ms;
                        if let Some(b) = CONVERSION_BOUNDS_MS.iter().position(|&bound| ms <= bound)
                        {
                            stage.conversion_buckets[b] += sign;
                        }
                    }
                    Outcome::Dropped => stage.dropped += sign,
                    Outcome::Open => stage.open += sign,
                }
            }
        }
    }
}
