//! The live watermark (SPEC §4): event time per assigned partition, the slowest active partition
//! holding the watermark back, idle ones not.
//!
//! Pure bookkeeping with the wall clock passed in, so the rules are unit-tested without Kafka:
//! - a partition is *active* while it delivered a message (accepted or not) within
//!   `idle_timeout`, counting its assignment as a delivery, so a new partition holds the
//!   watermark back until it has spoken or gone quiet;
//! - an active partition that has not delivered an accepted event yet holds it back entirely;
//! - when every partition is idle, the stream has paused: the newest event time of any partition
//!   decides, so that outcomes still settle in a quiet period.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::time::Millis;

/// A topic partition.
pub type TopicPartition = (String, i32);

#[derive(Debug, Clone)]
struct Partition {
    newest: Option<Millis>,
    last_message: Instant,
    /// Messages behind the end of the partition after the last stored offset (librdkafka's
    /// statistics); `None` until the first report.
    lag: Option<i64>,
}

/// What `/metrics` and `/readyz` show of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    pub newest: Option<Millis>,
    pub lag: Option<i64>,
    pub idle: bool,
}

/// How far the engine's state reflects a partition: what a checkpoint records and where a
/// reassigned partition resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The offset after the last message applied.
    pub next: i64,
    /// Newest accepted event time read from the partition.
    pub newest: Option<Millis>,
}

#[derive(Debug)]
pub struct Partitions {
    idle_timeout: Duration,
    parts: BTreeMap<TopicPartition, Partition>,
    /// Every partition the engine has applied messages of, assigned or not: revocation does
    /// not take its messages out of the engine, so a partition given back resumes here.
    positions: BTreeMap<TopicPartition, Position>,
    /// Partitions of subscribed topics that the engine has read and another member of the
    /// group holds now, as of the last rebalance ([`Partitions::settle_rebalance`]).
    elsewhere: Vec<TopicPartition>,
}

impl Partitions {
    pub fn new(idle_timeout: Duration) -> Partitions {
        Partitions {
            idle_timeout,
            parts: BTreeMap::new(),
            positions: BTreeMap::new(),
            elsewhere: Vec::new(),
        }
    }

    /// Starts from the positions of a restored checkpoint.
    pub fn with_positions(mut self, positions: BTreeMap<TopicPartition, Position>) -> Partitions {
        self.positions = positions;
        self
    }

    pub fn positions(&self) -> &BTreeMap<TopicPartition, Position> {
        &self.positions
    }

    /// Messages up to `next` of the partition were applied.
    pub fn applied(&mut self, tp: (&str, i32), next: i64, newest: Option<Millis>) {
        let position = self
            .positions
            .entry((tp.0.to_string(), tp.1))
            .or_insert(Position { next, newest: None });
        position.next = position.next.max(next);
        position.newest = position.newest.max(newest);
    }

    /// A partition was assigned to this consumer (it keeps what it knew if already there).
    pub fn assign(&mut self, tp: TopicPartition, now: Instant) {
        let newest = self.positions.get(&tp).and_then(|p| p.newest);
        self.parts.entry(tp).or_insert(Partition {
            newest,
            last_message: now,
            lag: None,
        });
    }

    /// A partition was taken away: it no longer holds the watermark back.
    pub fn revoke(&mut self, tp: &TopicPartition) {
        self.parts.remove(tp);
    }

    /// After a rebalance: notes which partitions of `subscribed` topics the engine has read
    /// but no longer holds, and returns them. Another consumer of the group reads them now,
    /// so this instance's numbers and the other's each cover part of the stream (one instance
    /// per group until scale-out, docs/durability.md). Topics no longer subscribed are left out:
    /// their partitions are nobody's now.
    pub fn settle_rebalance(
        &mut self,
        subscribed: &std::collections::HashSet<String>,
    ) -> &[TopicPartition] {
        self.elsewhere = self
            .positions
            .keys()
            .filter(|tp| subscribed.contains(&tp.0) && !self.parts.contains_key(*tp))
            .cloned()
            .collect();
        &self.elsewhere
    }

    /// How many partitions [`Partitions::settle_rebalance`] last found elsewhere.
    pub fn elsewhere(&self) -> usize {
        self.elsewhere.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// A message was read from the partition; `accepted_at` is the event time of an accepted
    /// event (not a duplicate, not a rejected message).
    pub fn message(
        &mut self,
        topic: &str,
        partition: i32,
        accepted_at: Option<Millis>,
        now: Instant,
    ) {
        let part = match self.parts.get_mut(&(topic.to_string(), partition)) {
            Some(part) => part,
            // Messages can arrive for a partition before its assignment is seen.
            None => {
                self.assign((topic.to_string(), partition), now);
                self.parts
                    .get_mut(&(topic.to_string(), partition))
                    .expect("just assigned")
            }
        };
        part.last_message = now;
        if let Some(time) = accepted_at {
            part.newest = Some(part.newest.map_or(time, |n| n.max(time)));
        }
    }

    pub fn set_lag(&mut self, topic: &str, partition: i32, lag: i64) {
        if let Some(part) = self.parts.get_mut(&(topic.to_string(), partition)) {
            part.lag = Some(lag);
        }
    }

    fn idle(&self, part: &Partition, now: Instant) -> bool {
        now.saturating_duration_since(part.last_message) >= self.idle_timeout
    }

    /// The event time the watermark may follow (before `allowed_lateness` is taken off), or
    /// `None` while some active partition has no accepted event yet.
    pub fn event_time(&self, now: Instant) -> Option<Millis> {
        crate::engine::watermark::event_time(
            self.parts
                .values()
                .map(|part| (part.newest, self.idle(part, now))),
        )
    }

    pub fn status(&self, now: Instant) -> Vec<PartitionStatus> {
        self.parts
            .iter()
            .map(|((topic, partition), part)| PartitionStatus {
                topic: topic.clone(),
                partition: *partition,
                newest: part.newest,
                lag: part.lag,
                idle: self.idle(part, now),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        ("t".to_string(), p)
    }

    #[test]
    fn slowest_active_partition_holds_the_watermark() {
        let t0 = Instant::now();
        let mut parts = Partitions::new(Duration::from_secs(10));
        parts.assign(tp(0), t0);
        parts.assign(tp(1), t0);
        parts.message("t", 0, Some(5_000), t0);
        // Partition 1 is active (just assigned) with nothing accepted yet: no watermark.
        assert_eq!(parts.event_time(t0), None);
        parts.message("t", 1, Some(2_000), t0);
        assert_eq!(parts.event_time(t0), Some(2_000));
        parts.message("t", 1, Some(9_000), t0);
        assert_eq!(parts.event_time(t0), Some(5_000));
        // A rejected message keeps a partition active without moving its time.
        parts.message("t", 0, None, t0 + Duration::from_secs(8));
        assert_eq!(parts.event_time(t0 + Duration::from_secs(12)), Some(5_000));
    }

    #[test]
    fn idle_partitions_do_not_hold_it_back() {
        let t0 = Instant::now();
        let mut parts = Partitions::new(Duration::from_secs(10));
        parts.assign(tp(0), t0);
        parts.assign(tp(1), t0);
        parts.assign(tp(2), t0);
        parts.message("t", 0, Some(1_000), t0);
        parts.message("t", 1, Some(7_000), t0 + Duration::from_secs(5));
        // At +12 s partitions 0 and 2 are idle; partition 1 alone decides.
        assert_eq!(parts.event_time(t0 + Duration::from_secs(12)), Some(7_000));
        // Partition 0 speaks again: at +16 s it is the only active one.
        parts.message("t", 0, Some(3_000), t0 + Duration::from_secs(13));
        assert_eq!(parts.event_time(t0 + Duration::from_secs(14)), Some(3_000));
        assert_eq!(parts.event_time(t0 + Duration::from_secs(16)), Some(3_000));
        let status = parts.status(t0 + Duration::from_secs(16));
        assert_eq!(status.iter().filter(|s| s.idle).count(), 2);
        // All idle: the newest time of any partition.
        assert_eq!(parts.event_time(t0 + Duration::from_secs(60)), Some(7_000));
    }

    #[test]
    fn revoked_partitions_leave() {
        let t0 = Instant::now();
        let mut parts = Partitions::new(Duration::from_secs(10));
        parts.message("t", 0, Some(1_000), t0);
        parts.message("t", 1, Some(8_000), t0);
        assert_eq!(parts.event_time(t0), Some(1_000));
        parts.revoke(&tp(0));
        assert_eq!(parts.event_time(t0), Some(8_000));
        parts.revoke(&tp(1));
        assert!(parts.is_empty());
        assert_eq!(parts.event_time(t0), None);
    }

    #[test]
    fn partitions_read_and_now_held_by_another_member_are_elsewhere() {
        let t0 = Instant::now();
        let mut parts = Partitions::new(Duration::from_secs(10));
        let subscribed = ["t".to_string()].into_iter().collect();
        for p in 0..3 {
            parts.assign(tp(p), t0);
            parts.applied(("t", p), 10, Some(1_000));
        }
        parts.applied(("old-topic", 0), 5, None);
        assert!(parts.settle_rebalance(&subscribed).is_empty());
        // A second member joined and took partitions 1 and 2.
        parts.revoke(&tp(1));
        parts.revoke(&tp(2));
        assert_eq!(parts.settle_rebalance(&subscribed), [tp(1), tp(2)]);
        assert_eq!(
            parts.elsewhere(),
            2,
            "not the unsubscribed topic's partition"
        );
        // It left again: everything this state has read is here.
        parts.assign(tp(1), t0);
        parts.assign(tp(2), t0);
        assert!(parts.settle_rebalance(&subscribed).is_empty());
        assert_eq!(parts.elsewhere(), 0);
    }
}
