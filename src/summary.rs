//! The summary (SPEC §5.1): one JSON object, the same shape for replay output and
//! `GET /api/v1/summary`. Field order follows the SPEC (serde writes struct fields in
//! declaration order).

use serde::{Deserialize, Serialize};

use crate::engine::Counters;
use crate::event::RejectReason;
use crate::funnel::Funnels;
use crate::funnel::stats::FunnelStats;
use crate::time::{self, Millis};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// RFC 3339 UTC with milliseconds; `null` before any event.
    pub watermark: Option<String>,
    pub events: EventCounts,
    pub funnels: Vec<FunnelSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    pub received: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub identify: u64,
    pub unresolved: u64,
    pub identity_conflicts: u64,
    pub late: u64,
    pub rejected: Rejected,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub oversized: u64,
    pub malformed: u64,
    pub missing_field: u64,
    pub invalid_timestamp: u64,
    pub invalid_channel: u64,
    pub no_identity: u64,
}

impl Rejected {
    pub fn get(&self, reason: RejectReason) -> u64 {
        match reason {
            RejectReason::Oversized => self.oversized,
            RejectReason::Malformed => self.malformed,
            RejectReason::MissingField => self.missing_field,
            RejectReason::InvalidTimestamp => self.invalid_timestamp,
            RejectReason::InvalidChannel => self.invalid_channel,
            RejectReason::NoIdentity => self.no_identity,
        }
    }

    pub fn total(&self) -> u64 {
        RejectReason::ALL.iter().map(|&r| self.get(r)).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunnelSummary {
    pub name: String,
    pub journeys: i64,
    pub journeys_won: i64,
    pub journeys_lost: i64,
    pub stages: Vec<StageSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSummary {
    pub name: String,
    pub entered: i64,
    pub converted: i64,
    pub dropped: i64,
    pub open: i64,
    pub conversion_ms_sum: i64,
    pub entered_by_channel: ByChannel,
    pub turns_before_entry: Turns,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByChannel {
    pub online: i64,
    pub offline: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turns {
    #[serde(rename = "0")]
    pub t0: i64,
    #[serde(rename = "1")]
    pub t1: i64,
    #[serde(rename = "2")]
    pub t2: i64,
    #[serde(rename = "3")]
    pub t3: i64,
    #[serde(rename = "4+")]
    pub t4_plus: i64,
}

impl Turns {
    pub fn as_array(&self) -> [i64; 5] {
        [self.t0, self.t1, self.t2, self.t3, self.t4_plus]
    }
}

pub(crate) fn build(
    watermark: Option<Millis>,
    counters: &Counters,
    unresolved: u64,
    identity_conflicts: u64,
    funnels: &Funnels,
    stats: &[FunnelStats],
) -> Summary {
    let r = &counters.rejected;
    let events = EventCounts {
        received: counters.received,
        accepted: counters.accepted,
        duplicates: counters.duplicates,
        identify: counters.identify,
        unresolved,
        identity_conflicts,
        late: counters.late,
        rejected: Rejected {
            oversized: r[RejectReason::Oversized.index()],
            malformed: r[RejectReason::Malformed.index()],
            missing_field: r[RejectReason::MissingField.index()],
            invalid_timestamp: r[RejectReason::InvalidTimestamp.index()],
            invalid_channel: r[RejectReason::InvalidChannel.index()],
            no_identity: r[RejectReason::NoIdentity.index()],
        },
    };
    let funnels = funnels
        .funnels
        .iter()
        .zip(stats)
        .map(|(funnel, stats)| FunnelSummary {
            name: funnel.name.clone(),
            journeys: stats.journeys,
            journeys_won: stats.won,
            journeys_lost: stats.lost,
            stages: funnel
                .stages
                .iter()
                .zip(&stats.stages)
                .map(|(name, s)| StageSummary {
                    name: name.clone(),
                    entered: s.entered,
                    converted: s.converted,
                    dropped: s.dropped,
                    open: s.open,
                    conversion_ms_sum: s.conversion_ms_sum,
                    entered_by_channel: ByChannel {
                        online: s.entered_online,
                        offline: s.entered_offline,
                    },
                    turns_before_entry: Turns {
                        t0: s.turns[0],
                        t1: s.turns[1],
                        t2: s.turns[2],
                        t3: s.turns[3],
                        t4_plus: s.turns[4],
                    },
                })
                .collect(),
        })
        .collect();
    Summary {
        watermark: watermark.map(time::format_rfc3339),
        events,
        funnels,
    }
}
