//! The records of the two internal topics, and which partition of `spiral.touches` owns an
//! account. Binary, values only, a format byte first: a cut or random record is an error,
//! never a panic.

use crate::codec::{Reader, Writer};
use crate::engine::{ResolvedTouch, SnapshotError};
use crate::time::Millis;

/// First byte of every record, so that a later format is told apart.
const FORMAT: u8 = 1;
const MESSAGE: u8 = 0;
const IDLE: u8 = 1;
const ASSIGNED: u8 = 2;
const TOUCH: u8 = 0;
const WATERMARK: u8 = 1;

/// An input partition, as stage A read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: i32,
}

/// A record of `spiral.events`, written by stage A (the forwarder), read by stage B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsRecord<'a> {
    /// A message of an input partition, as read, with its offset there.
    Message {
        source: Source<'a>,
        offset: i64,
        bytes: &'a [u8],
    },
    /// The input partition delivered nothing for `kafka.idle_timeout`: it no longer holds
    /// the watermark back until its next message (SPEC §4). Written by the forwarder that
    /// reads it, so that the watermark is a function of this topic's records alone.
    Idle { source: Source<'a> },
    /// A forwarder was assigned the input partition: until it speaks or goes idle, it holds
    /// the watermark back (SPEC §4), as a partition assigned to one engine does.
    Assigned { source: Source<'a> },
}

/// Where a touch stands in stage B's output: the offset in `spiral.events` of the record
/// that released it, and its rank among the touches that record released. Stage B is a pure
/// function of `spiral.events`, so after a restart it releases the same touches under the
/// same numbers, and stage C recognises the ones it already placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seq {
    pub offset: i64,
    pub index: u32,
}

/// A record of `spiral.touches`, written by stage B, read by stage C.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TouchesRecord {
    Touch {
        seq: Seq,
        touch: ResolvedTouch,
    },
    /// Stage B's watermark: what came before it in the partition was released at an older one.
    Watermark(Millis),
}

impl EventsRecord<'_> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u8(FORMAT);
        match self {
            EventsRecord::Message {
                source,
                offset,
                bytes,
            } => {
                w.u8(MESSAGE);
                source.write(&mut w);
                w.i64(*offset);
                w.bytes(bytes);
            }
            EventsRecord::Idle { source } => {
                w.u8(IDLE);
                source.write(&mut w);
            }
            EventsRecord::Assigned { source } => {
                w.u8(ASSIGNED);
                source.write(&mut w);
            }
        }
    }

    /// Reads what [`EventsRecord::encode`] wrote, borrowing the message bytes.
    pub fn decode(bytes: &[u8]) -> Result<EventsRecord<'_>, String> {
        let mut r = Reader::new(bytes);
        r.section("spiral.events record");
        let record = (|| {
            format(&mut r)?;
            let record = match r.u8()? {
                MESSAGE => EventsRecord::Message {
                    source: Source::read(&mut r)?,
                    offset: r.i64()?,
                    bytes: r.bytes()?,
                },
                IDLE => EventsRecord::Idle {
                    source: Source::read(&mut r)?,
                },
                ASSIGNED => EventsRecord::Assigned {
                    source: Source::read(&mut r)?,
                },
                other => return Err(r.corrupt(format_args!("record type {other}"))),
            };
            r.finish()?;
            Ok(record)
        })();
        record.map_err(|e| e.to_string())
    }
}

impl<'a> Source<'a> {
    fn write(&self, w: &mut Writer<'_>) {
        w.bytes(self.topic.as_bytes());
        w.u32(self.partition as u32);
    }

    fn read(r: &mut Reader<'a>) -> Result<Source<'a>, SnapshotError> {
        let topic = r.bytes()?;
        let topic = std::str::from_utf8(topic).map_err(|_| r.corrupt("a topic not in UTF-8"))?;
        let partition = r.u32()? as i32;
        if partition < 0 {
            return Err(r.corrupt(format_args!("partition {partition}")));
        }
        Ok(Source { topic, partition })
    }
}

impl TouchesRecord {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            TouchesRecord::Touch { seq, touch } => {
                let mut w = Writer::new(out);
                w.u8(FORMAT);
                w.u8(TOUCH);
                w.i64(seq.offset);
                w.u32(seq.index);
                // The touch's own record follows, to the end.
                touch.encode(out);
            }
            TouchesRecord::Watermark(time) => {
                let mut w = Writer::new(out);
                w.u8(FORMAT);
                w.u8(WATERMARK);
                w.i64(*time);
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<TouchesRecord, String> {
        let mut r = Reader::new(bytes);
        r.section("spiral.touches record");
        let head = (|| {
            format(&mut r)?;
            match r.u8()? {
                TOUCH => {
                    let seq = Seq {
                        offset: r.i64()?,
                        index: r.u32()?,
                    };
                    Ok(Ok(seq))
                }
                WATERMARK => {
                    let time = r.i64()?;
                    r.finish()?;
                    Ok(Err(time))
                }
                other => Err(r.corrupt(format_args!("record type {other}"))),
            }
        })();
        match head.map_err(|e| e.to_string())? {
            Ok(seq) => {
                // FORMAT, TOUCH, offset, index.
                let rest = &bytes[1 + 1 + 8 + 4..];
                let touch = ResolvedTouch::decode(rest)?;
                Ok(TouchesRecord::Touch { seq, touch })
            }
            Err(time) => Ok(TouchesRecord::Watermark(time)),
        }
    }
}

fn format(r: &mut Reader<'_>) -> Result<(), SnapshotError> {
    match r.u8()? {
        FORMAT => Ok(()),
        other => Err(r.corrupt(format_args!(
            "record format {other}, this build reads {FORMAT}"
        ))),
    }
}

/// The partition of `spiral.touches` that owns an account: FNV-1a of its id, mixed by
/// MurmurHash3's finaliser, so that every build and every instance agrees (std's hasher is
/// seeded per process) and ids that differ in a digit spread evenly (FNV-1a's low bits alone
/// put three in four of `acct-…` ids on two partitions of four).
pub fn partition_of(account: &str, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in account.as_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    (hash % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch() -> ResolvedTouch {
        ResolvedTouch {
            account: "acme".into(),
            event_id: "e-1".into(),
            time: 1_700_000_000_000,
            kind: 3,
            online: true,
            labels: vec!["camp1".into(), "none".into()],
            late: true,
        }
    }

    #[test]
    fn records_round_trip_and_every_cut_is_an_error() {
        let source = Source {
            topic: "touchpoints.web",
            partition: 7,
        };
        let events = [
            EventsRecord::Message {
                source,
                offset: 42,
                bytes: br#"{"event_id":"e"}"#,
            },
            EventsRecord::Idle { source },
            EventsRecord::Assigned { source },
        ];
        for record in events {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            assert_eq!(EventsRecord::decode(&bytes), Ok(record));
            for cut in 0..bytes.len() {
                assert!(EventsRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
        let touches = [
            TouchesRecord::Touch {
                seq: Seq {
                    offset: 9,
                    index: 2,
                },
                touch: touch(),
            },
            TouchesRecord::Watermark(-5),
        ];
        for record in touches {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            assert_eq!(TouchesRecord::decode(&bytes), Ok(record.clone()));
            for cut in 0..bytes.len() {
                assert!(
                    TouchesRecord::decode(&bytes[..cut]).is_err(),
                    "cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn random_bytes_are_an_error_never_a_panic() {
        let mut state: u64 = 1;
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let len = (state >> 59) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (state.rotate_left(i as u32 * 7) & 0xff) as u8)
                .map(|b| if len.is_multiple_of(3) { b % 3 } else { b })
                .collect();
            let _ = EventsRecord::decode(&bytes);
            let _ = TouchesRecord::decode(&bytes);
        }
    }

    const FIXED: [u32; 3] = [574, 315, 342];

    #[test]
    fn an_account_has_one_partition_in_every_build_and_accounts_spread() {
        // Fixed values: a change here moves accounts between partitions and their state.
        let first: Vec<u32> = ["acme", "a", ""]
            .iter()
            .map(|a| partition_of(a, 1000))
            .collect();
        assert_eq!(first, FIXED);
        assert_eq!(partition_of("acme", 0), 0);
        let mut counts = [0u32; 4];
        for i in 0..10_000 {
            counts[partition_of(&format!("acct-{i:06}"), 4) as usize] += 1;
        }
        for n in counts {
            assert!((2_300..2_700).contains(&n), "{counts:?}");
        }
    }
}
