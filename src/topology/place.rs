//! Stage C: one journeys engine per partition of `spiral.touches`, fed the touches stage B
//! released for the accounts hashing there, at the watermark stage B released them at.

use crate::codec::{Reader, Writer};
use crate::config::Config;
use crate::engine::{Engine, SnapshotError};

use super::records::{Seq, TouchesRecord};

pub struct Place {
    engine: Engine,
    /// The last touch placed: one at or before it is a copy stage B wrote again after a
    /// restart, already counted.
    last: Option<Seq>,
}

impl Place {
    pub fn new(config: &Config) -> Result<Place, String> {
        Ok(Place {
            engine: Engine::new(config)?.into_journeys(),
            last: None,
        })
    }

    /// The journeys engine: its counters are the funnels of the summary.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Reads one record of its partition. `Ok(false)`: a copy, already placed. An error is a
    /// touch this engine cannot take (stage B runs with other funnels or dimensions); it
    /// changes nothing.
    pub fn read(&mut self, record: &TouchesRecord) -> Result<bool, String> {
        match record {
            TouchesRecord::Watermark(time) => {
                self.engine.advance_watermark(*time);
                Ok(true)
            }
            TouchesRecord::Touch { seq, touch } => {
                if self.last.is_some_and(|last| *seq <= last) {
                    return Ok(false);
                }
                self.engine.apply_resolved(touch)?;
                self.last = Some(*seq);
                Ok(true)
            }
        }
    }

    pub fn snapshot(&self, out: &mut Vec<u8>) {
        let mut engine = Vec::new();
        self.engine.snapshot(&mut engine);
        let mut w = Writer::new(out);
        w.bool(self.last.is_some());
        let last = self.last.unwrap_or(Seq {
            offset: 0,
            index: 0,
        });
        w.i64(last.offset);
        w.u32(last.index);
        w.bytes(&engine);
    }

    pub fn restore(config: &Config, bytes: &[u8]) -> Result<Place, SnapshotError> {
        let mut r = Reader::new(bytes);
        r.section("stage C");
        let has_last = r.bool()?;
        let last = Seq {
            offset: r.i64()?,
            index: r.u32()?,
        };
        let engine = Engine::restore(config, r.bytes()?)?;
        r.finish()?;
        if !engine.is_journeys() {
            return Err(SnapshotError::Config(
                "the engine in it is not a journeys engine".to_string(),
            ));
        }
        Ok(Place {
            engine,
            last: has_last.then_some(last),
        })
    }
}
