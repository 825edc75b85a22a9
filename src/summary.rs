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

impl Summary {
    /// Adds `other` in: the summary of engines that each counted a part of the traffic (the
    /// roles of a split engine, `engine::split`; instances that each own some partitions).
    /// Every count is summed; the watermark is the older of the two, how far event time has
    /// surely progressed for both (a part without one leaves it as it is). Both must come
    /// from the same funnels configuration.
    pub fn add(&mut self, other: &Summary) -> Result<(), String> {
        let same_shape = self.funnels.len() == other.funnels.len()
            && self.funnels.iter().zip(&other.funnels).all(|(a, b)| {
                a.name == b.name
                    && a.stages.len() == b.stages.len()
                    && a.stages
                        .iter()
                        .zip(&b.stages)
                        .all(|(x, y)| x.name == y.name)
            });
        if !same_shape {
            return Err("the summaries come from different funnels".to_string());
        }
        // RFC 3339 in one fixed format: text order is time order.
        self.watermark = match (self.watermark.take(), &other.watermark) {
            (Some(a), Some(b)) => Some(a.min(b.clone())),
            (a, b) => a.or_else(|| b.clone()),
        };
        let (e, o) = (&mut self.events, &other.events);
        e.received += o.received;
        e.accepted += o.accepted;
        e.duplicates += o.duplicates;
        e.identify += o.identify;
        e.unresolved += o.unresolved;
        e.identity_conflicts += o.identity_conflicts;
        e.late += o.late;
        let (r, q) = (&mut e.rejected, &o.rejected);
        r.oversized += q.oversized;
        r.malformed += q.malformed;
        r.missing_field += q.missing_field;
        r.invalid_timestamp += q.invalid_timestamp;
        r.invalid_channel += q.invalid_channel;
        r.no_identity += q.no_identity;
        for (f, g) in self.funnels.iter_mut().zip(&other.funnels) {
            f.journeys += g.journeys;
            f.journeys_won += g.journeys_won;
            f.journeys_lost += g.journeys_lost;
            for (s, t) in f.stages.iter_mut().zip(&g.stages) {
                s.entered += t.entered;
                s.converted += t.converted;
                s.dropped += t.dropped;
                s.open += t.open;
                s.conversion_ms_sum += t.conversion_ms_sum;
                s.entered_by_channel.online += t.entered_by_channel.online;
                s.entered_by_channel.offline += t.entered_by_channel.offline;
                let (a, b) = (&mut s.turns_before_entry, &t.turns_before_entry);
                a.t0 += b.t0;
                a.t1 += b.t1;
                a.t2 += b.t2;
                a.t3 += b.t3;
                a.t4_plus += b.t4_plus;
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(watermark: Option<&str>, funnel: &str, entered: i64, received: u64) -> Summary {
        let stage = StageSummary {
            name: "a".into(),
            entered,
            converted: 0,
            dropped: 0,
            open: entered,
            conversion_ms_sum: 0,
            entered_by_channel: ByChannel {
                online: entered,
                offline: 0,
            },
            turns_before_entry: Turns {
                t0: entered,
                t1: 0,
                t2: 0,
                t3: 0,
                t4_plus: 0,
            },
        };
        Summary {
            watermark: watermark.map(str::to_string),
            events: EventCounts {
                received,
                accepted: received,
                duplicates: 0,
                identify: 0,
                unresolved: 0,
                identity_conflicts: 0,
                late: 0,
                rejected: Rejected::default(),
            },
            funnels: vec![FunnelSummary {
                name: funnel.into(),
                journeys: entered,
                journeys_won: 0,
                journeys_lost: 0,
                stages: vec![stage],
            }],
        }
    }

    #[test]
    fn adding_sums_counts_and_keeps_the_older_watermark() {
        let mut a = summary(Some("2026-03-02T00:00:00.000Z"), "f", 2, 5);
        a.add(&summary(Some("2026-03-01T10:00:00.000Z"), "f", 3, 7))
            .unwrap();
        a.add(&summary(None, "f", 1, 0)).unwrap();
        assert_eq!(a.watermark.as_deref(), Some("2026-03-01T10:00:00.000Z"));
        assert_eq!((a.events.received, a.events.accepted), (12, 12));
        let s = &a.funnels[0].stages[0];
        assert_eq!((a.funnels[0].journeys, s.entered, s.open), (6, 6, 6));
        assert_eq!(s.entered_by_channel.online, 6);
        assert_eq!(s.turns_before_entry.t0, 6);
    }

    #[test]
    fn summaries_of_other_funnels_do_not_add() {
        let mut a = summary(None, "f", 1, 1);
        assert!(a.add(&summary(None, "g", 1, 1)).is_err());
    }
}
