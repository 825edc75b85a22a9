//! Scale-out's stages as pure state machines over the records of Spiral's internal topics
//! (docs/durability.md, "Topology"). No I/O: the service moves records between Kafka and
//! these, and the tests between vectors.
//!
//! ```text
//! input topics ─► A: forward ─► spiral.events ─► B: decode, reject, dedup, identity ─► spiral.touches ─► C: journeys
//!  (any key)      (+ idle)       (1 partition)      (Resolve)                          (key account)     (Place, one per partition)
//! ```
//!
//! - **A** forwards every message as read, with its partition and offset, and writes an
//!   [`EventsRecord::Idle`] when an input partition goes quiet. It keeps no state but its
//!   consumer offsets; a restart forwards some messages again, which B recognises by offset.
//! - **B** ([`Resolve`]) is one engine in the resolver role: every event counter of the summary,
//!   the dead letters, the watermark. `spiral.events` has one partition, so one instance at
//!   a time owns all dedup and identity state, which moves whole with that partition; more
//!   partitions need the links topic (docs/durability.md, "Next steps").
//! - **C** ([`Place`]) is a journeys engine per partition of `spiral.touches`: the funnels.
//!   Its partitions, and their state, spread over the instances of the group.
//!
//! Every stage is a function of its input topic alone, so a restart from a checkpoint redoes
//! exactly what it did, and the next stage drops what it has already read by its position in
//! the stream before ([`Seq`], the input offset).

pub mod place;
pub mod records;
pub mod resolve;

pub use place::Place;
pub use records::{EventsRecord, Seq, Source, TouchesRecord, partition_of};
pub use resolve::{Outgoing, Read, Resolve};
