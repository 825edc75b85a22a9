//! What the consumer owes before it may store offsets: rejected messages not yet on the
//! dead-letter topic, and the offsets of applied messages.
//!
//! Offsets are stored only once every rejected message up to them is delivered. When nothing
//! is waiting for the dead-letter topic they are stored after every batch; otherwise letters
//! are delivered in rounds (every [`ROUND_LETTERS`] letters or [`ROUND_AGE`], whichever comes
//! first) so that one broken message does not cost every batch a producer round trip. A
//! revocation or shutdown settles everything before committing.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Result;
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::TopicPartitionList;

use super::dlq::{DeadLetter, DeadLetters, DlqCounters};

pub const ROUND_LETTERS: usize = 10_000;
pub const ROUND_AGE: Duration = Duration::from_secs(1);

pub struct Outbox {
    dead_letters: DeadLetters,
    /// Next offset to read, per partition, of everything applied and not stored yet.
    unstored: BTreeMap<(String, i32), i64>,
    pending_letters: usize,
    oldest_letter: Option<Instant>,
    /// Source coordinates of rejected messages already on the dead-letter topic from before a
    /// crash (found by recovery): reading them again must not write them twice.
    already_dead: HashSet<(String, i32, i64)>,
}

impl Outbox {
    pub fn new(dead_letters: DeadLetters) -> Outbox {
        Outbox {
            dead_letters,
            unstored: BTreeMap::new(),
            pending_letters: 0,
            oldest_letter: None,
            already_dead: HashSet::new(),
        }
    }

    /// A message was applied (accepted, duplicate or rejected).
    pub fn applied(&mut self, topic: &str, partition: i32, offset: i64) {
        match self.unstored.get_mut(&(topic.to_string(), partition)) {
            Some(next) => *next = (*next).max(offset + 1),
            None => {
                self.unstored
                    .insert((topic.to_string(), partition), offset + 1);
            }
        }
    }

    pub fn set_already_dead(&mut self, letters: HashSet<(String, i32, i64)>) {
        self.already_dead = letters;
    }

    pub fn already_dead(&self) -> &HashSet<(String, i32, i64)> {
        &self.already_dead
    }

    pub fn dead_letters(&self) -> &DeadLetters {
        &self.dead_letters
    }

    pub fn reject(&mut self, letter: DeadLetter) {
        if !self.already_dead.is_empty()
            && self
                .already_dead
                .remove(&(letter.topic.clone(), letter.partition, letter.offset))
        {
            tracing::debug!(topic = %letter.topic, partition = letter.partition, offset = letter.offset, "already on the dead-letter topic");
            return;
        }
        self.dead_letters.push(letter);
        self.pending_letters += 1;
        self.oldest_letter.get_or_insert_with(Instant::now);
    }

    /// After a batch: store offsets now if nothing waits for the dead-letter topic, deliver a
    /// round of letters first if one is due, else keep going.
    pub fn after_batch<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        counters: &DlqCounters,
    ) -> Result<()> {
        let due = self.pending_letters >= ROUND_LETTERS
            || self.oldest_letter.is_some_and(|t| t.elapsed() >= ROUND_AGE);
        if self.pending_letters == 0 || due {
            self.settle(consumer, counters)?;
        }
        Ok(())
    }

    /// Delivers every pending letter (retrying until it can), then stores every offset.
    pub fn settle<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        counters: &DlqCounters,
    ) -> Result<()> {
        if self.pending_letters > 0 {
            self.dead_letters.deliver(counters);
            self.pending_letters = 0;
            self.oldest_letter = None;
        }
        if self.unstored.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::with_capacity(self.unstored.len());
        for ((topic, partition), next) in &self.unstored {
            list.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
        self.unstored.clear();
        if let Err(error) = consumer.store_offsets(&list) {
            // The partition was revoked meanwhile; its new owner reads from the last commit.
            tracing::warn!(%error, "cannot store offsets");
        }
        Ok(())
    }

    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.dead_letters.flush(timeout)
    }
}
