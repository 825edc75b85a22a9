//! Stage B: dedup and identity over `spiral.events`, touches handed on to `spiral.touches`.
//!
//! One engine in the resolver role (`engine::split`) and the input partitions' watermark
//! inputs, both restored from its checkpoint. It is a pure function of the records it reads,
//! idleness included (stage A writes it into the topic), so that a restart from a checkpoint
//! releases the same touches under the same [`Seq`] and stage C can drop the ones it has.

use std::collections::BTreeMap;

use crate::codec::{Reader, Writer};
use crate::config::Config;
use crate::engine::{Applied, Engine, SnapshotError, watermark};
use crate::event::{Decoder, Rejection};
use crate::time::Millis;

use super::records::{EventsRecord, Seq, Source, TouchesRecord, partition_of};

/// A record for a partition of `spiral.touches`, and the account it is keyed by (none for
/// a watermark, which goes to every partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub partition: u32,
    pub key: Option<String>,
    pub record: Vec<u8>,
}

/// What reading one record of `spiral.events` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Decoded and applied (accepted or a duplicate).
    Applied,
    /// Counted as rejected: the caller sends it to the dead-letter topic.
    Rejected(Rejection),
    /// A message forwarded again after a forwarder restarted, already read: not counted.
    Again,
    /// A partition went idle or was assigned.
    Status,
}

/// What stage B knows of an input partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Input {
    /// The offset after the last message read from it: anything below was read already.
    next: i64,
    newest: Option<Millis>,
    idle: bool,
}

pub struct Resolve {
    engine: Engine,
    decoder: Decoder,
    allowed_lateness: Millis,
    inputs: BTreeMap<(String, i32), Input>,
    /// Partitions of `spiral.touches`.
    partitions: u32,
    /// The watermark last written to each partition of `spiral.touches` since this process
    /// started (not checkpointed: a restart writes it again, which changes nothing).
    sent: Vec<Option<Millis>>,
}

impl Resolve {
    pub fn new(config: &Config, partitions: u32) -> Result<Resolve, String> {
        let engine = Engine::new(config)?.into_resolver();
        Ok(Resolve::with_engine(config, engine, partitions))
    }

    fn with_engine(config: &Config, engine: Engine, partitions: u32) -> Resolve {
        Resolve {
            engine,
            decoder: Decoder::new(
                config.pipeline.max_event_bytes,
                config.touchpoints.iter().cloned(),
            ),
            allowed_lateness: config.pipeline.allowed_lateness,
            inputs: BTreeMap::new(),
            partitions: partitions.max(1),
            sent: vec![None; partitions.max(1) as usize],
        }
    }

    /// The resolver: its counters are every event counter of the summary.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads the record at `offset` of `spiral.events`, appending what it releases to `out`.
    pub fn read(
        &mut self,
        offset: i64,
        record: &EventsRecord<'_>,
        out: &mut Vec<Outgoing>,
    ) -> Read {
        let read = match *record {
            EventsRecord::Message {
                source,
                offset: at,
                bytes,
            } => {
                let input = self.input(source);
                if at < input.next {
                    return Read::Again;
                }
                input.next = at + 1;
                input.idle = false;
                match self.decoder.decode(bytes) {
                    Err(rejection) => {
                        self.engine.reject(rejection.reason);
                        Read::Rejected(rejection)
                    }
                    Ok(event) => {
                        if let Applied::Accepted { .. } = self.engine.apply(&event) {
                            let time = event.occurred_at;
                            let input = self.input(source);
                            input.newest = Some(input.newest.map_or(time, |n| n.max(time)));
                        }
                        Read::Applied
                    }
                }
            }
            EventsRecord::Idle { source } => {
                self.input(source).idle = true;
                Read::Status
            }
            EventsRecord::Assigned { source } => {
                self.input(source).idle = false;
                Read::Status
            }
        };
        // Touches the event released were placed at the watermark before it moved, as in
        // one engine; then it moves, which releases nothing (expiry only counts).
        self.hand_on(offset, out);
        if let Some(time) = watermark::event_time(self.inputs.values().map(|i| (i.newest, i.idle)))
        {
            self.engine
                .advance_watermark(time.saturating_sub(self.allowed_lateness));
        }
        read
    }

    /// The watermark to every partition that has not been told it yet: when reading pauses,
    /// so that stage C settles outcomes without waiting for a touch.
    pub fn flush(&mut self, out: &mut Vec<Outgoing>) {
        for partition in 0..self.partitions {
            self.tell_watermark(partition, out);
        }
    }

    /// End of a finite input (tests, benches): the watermark becomes the newest accepted
    /// event time (SPEC §4), and every partition is told.
    pub fn finish(&mut self, out: &mut Vec<Outgoing>) {
        self.engine.finish();
        self.flush(out);
    }

    fn input(&mut self, source: Source<'_>) -> &mut Input {
        self.inputs
            .entry((source.topic.to_string(), source.partition))
            .or_insert(Input {
                next: 0,
                newest: None,
                idle: false,
            })
    }

    fn hand_on(&mut self, offset: i64, out: &mut Vec<Outgoing>) {
        // The only resolver has set its links already; nobody else needs them (until the
        // links topic, for several).
        self.engine.take_links();
        for (index, touch) in self.engine.take_resolved().into_iter().enumerate() {
            let partition = partition_of(&touch.account, self.partitions);
            // Its partition learns the watermark it was released at before the touch.
            self.tell_watermark(partition, out);
            let seq = Seq {
                offset,
                index: index as u32,
            };
            let key = Some(touch.account.clone());
            let mut record = Vec::new();
            TouchesRecord::Touch { seq, touch }.encode(&mut record);
            out.push(Outgoing {
                partition,
                key,
                record,
            });
        }
    }

    fn tell_watermark(&mut self, partition: u32, out: &mut Vec<Outgoing>) {
        let now = self.engine.watermark();
        let sent = &mut self.sent[partition as usize];
        if let Some(time) = now
            && *sent != now
        {
            *sent = now;
            let mut record = Vec::new();
            TouchesRecord::Watermark(time).encode(&mut record);
            out.push(Outgoing {
                partition,
                key: None,
                record,
            });
        }
    }

    /// The state a checkpoint keeps: the engine's snapshot and the input partitions.
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        let mut engine = Vec::new();
        self.engine.snapshot(&mut engine);
        let mut w = Writer::new(out);
        w.u32(self.partitions);
        w.bytes(&engine);
        w.len(self.inputs.len());
        for ((topic, partition), input) in &self.inputs {
            w.bytes(topic.as_bytes());
            w.u32(*partition as u32);
            w.i64(input.next);
            w.bool(input.newest.is_some());
            w.i64(input.newest.unwrap_or_default());
            w.bool(input.idle);
        }
    }

    /// A stage B with the state of [`Resolve::snapshot`], for `partitions` partitions of
    /// `spiral.touches` (the count it was taken with: accounts would move otherwise).
    pub fn restore(
        config: &Config,
        partitions: u32,
        bytes: &[u8],
    ) -> Result<Resolve, SnapshotError> {
        let mut r = Reader::new(bytes);
        r.section("stage B");
        let taken_with = r.u32()?;
        if taken_with != partitions.max(1) {
            return Err(SnapshotError::Config(format!(
                "it was taken for {taken_with} partitions of the touches topic, which has {partitions} now"
            )));
        }
        let engine = Engine::restore(config, r.bytes()?)?;
        if !engine.is_resolver() {
            return Err(r.corrupt("an engine that is not a resolver"));
        }
        let mut resolve = Resolve::with_engine(config, engine, partitions);
        r.section("stage B inputs");
        for _ in 0..r.len(8 + 4 + 8 + 1 + 8 + 1)? {
            let topic = r.bytes()?;
            let topic = std::str::from_utf8(topic)
                .map_err(|_| r.corrupt("a topic not in UTF-8"))?
                .to_string();
            let partition = r.u32()? as i32;
            let next = r.i64()?;
            let has_newest = r.bool()?;
            let newest = r.i64()?;
            let idle = r.bool()?;
            resolve.inputs.insert(
                (topic, partition),
                Input {
                    next,
                    newest: has_newest.then_some(newest),
                    idle,
                },
            );
        }
        r.finish()?;
        Ok(resolve)
    }
}
