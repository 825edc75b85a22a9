//! Per-funnel, per-stage counters: journeys added up into the numbers of the summary
//! (SPEC §5.1). Counters are signed so that a journey can be taken back out when a change
//! (a late touch, a passing deadline) recomputes it.

use super::Funnel;
use super::journey::{End, Journey, Outcome};
use crate::time::Millis;

/// Buckets of `turns_before_entry`: 0, 1, 2, 3, 4+.
pub const TURN_BUCKETS: usize = 5;

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
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunnelStats {
    pub journeys: i64,
    pub won: i64,
    pub lost: i64,
    pub stages: Vec<StageStats>,
}

impl FunnelStats {
    pub fn new(funnel: &Funnel) -> FunnelStats {
        FunnelStats {
            stages: vec![StageStats::default(); funnel.stages.len()],
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
            End::Open => {}
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
            stage.turns[(journey.turns_before[s] as usize).min(TURN_BUCKETS - 1)] += sign;
            if s < last {
                match journey.outcome(s, funnel, watermark, has_later) {
                    Outcome::Converted(ms) => {
                        stage.converted += sign;
                        stage.conversion_ms_sum += sign * ms;
                    }
                    Outcome::Dropped => stage.dropped += sign,
                    Outcome::Open => stage.open += sign,
                }
            }
        }
    }
}
