//! A binary snapshot of the whole engine state, and the engine restored from one: the payload
//! of a durable checkpoint (issue #4, SPEC §6).
//!
//! The snapshot is a *layout* snapshot: it writes the engine's own tables nearly as they are in
//! memory (string arenas and id stores as raw bytes, touches field by field, slots and links
//! by index), so a million accounts save in a fraction of a second and restore without
//! re-deriving anything from events. The price is that the bytes follow the layout: they carry
//! [`SNAPSHOT_VERSION`], to be bumped by any change to what is saved, and a build reading
//! another version refuses the snapshot with [`SnapshotError::Version`] (the service then tells
//! the operator and starts from an older source of truth) rather than misreading it.
//!
//! Two things are deliberately not saved:
//! - Hash tables. Their hashers are randomly seeded per process, so their layout means nothing
//!   elsewhere: each saves its entries, in a deterministic order, and the table is rebuilt on
//!   load. Equal state therefore saves to equal bytes.
//! - The funnel counters. The invariant of `accounts.rs` is that the incremental counters
//!   always equal a recomputation over every journey at the current watermark, so restore
//!   recomputes them with [`Engine::recompute_stats`]; walking every journey also exercises
//!   every restored touch. (Tests check the invariant, breakdown by dimensions and expired
//!   journeys included.)
//!
//! What comes from the configuration (funnels, windows, lateness, dedup window, pending ttl,
//! dimensions) is taken from the `Config` given to [`Engine::restore`], not from the snapshot.
//! The snapshot does keep a checksum of the funnels and dimensions, on which the meaning of
//! stored touches depends: restoring under different ones is [`SnapshotError::Config`].
//!
//! Layout, after the header (`SPIRALEN`, version `u32`, config checksum `u32`): counters,
//! watermark state, string arena, touch ids, dimension labels, accounts, identity, dedup; then
//! nothing. All integers little endian ([`crate::codec`]). Loading checks that every index
//! points inside its table, so a corrupt snapshot is an error, never a panic or a hang; the
//! checkpoint file around it has a CRC against everything subtler.

use crate::codec::{Reader, Writer};
use crate::config::Config;
use crate::funnel::{Funnels, Touch};

use super::dims::Dimensions;
use super::event_ids::EventIds;
use super::{Accounts, Counters, Dedup, Engine, Identity, StrArena};

pub const MAGIC: &[u8; 8] = b"SPIRALEN";
/// Bump on any change to what is saved or how.
///
/// 3: a touch holds its event id when it is 16 hex characters (24 bytes a touch, was 20).
/// 5: names' shapes are coded (the string arena is followed by its coded shapes).
/// 6: a touch's dimension values are packed in 16 bits (`engine::dims`; 22 bytes saved).
pub const SNAPSHOT_VERSION: u32 = 6;

/// Why a snapshot cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "engine snapshot has version {found}, this build reads version {expected}: \
         run the build that wrote it, or start without this checkpoint"
    )]
    Version { found: u32, expected: u32 },
    #[error(
        "engine snapshot does not fit this configuration ({0}): restore it with the funnels \
         and [metrics] dimensions it was taken with, or start without this checkpoint"
    )]
    Config(String),
    #[error("corrupt engine snapshot: {0}")]
    Corrupt(String),
}

/// What a stored touch may point to, for checking restored touches.
pub(crate) struct TouchCheck<'a> {
    pub kinds: usize,
    pub dims: &'a Dimensions,
}

impl TouchCheck<'_> {
    /// Whether the touch's kind, event id (in `ids`) and dimension values exist. Its time
    /// is one an event may have: [`Touch::load`] refuses any other.
    pub fn touch(&self, touch: Touch, ids: &EventIds) -> bool {
        (touch.kind() as usize) < self.kinds && ids.holds(touch.id()) && self.dims.valid(touch.dims)
    }
}

/// Checksum of what stored touches and journeys mean.
fn config_checksum(funnels: &Funnels, dims: &Dimensions) -> u32 {
    let mut buf = Vec::new();
    let mut w = Writer::new(&mut buf);
    funnels.describe(&mut w);
    dims.describe(&mut w);
    crc32fast::hash(&buf)
}

impl Counters {
    fn save(&self, w: &mut Writer<'_>) {
        for v in [
            self.received,
            self.accepted,
            self.duplicates,
            self.identify,
            self.late,
            self.late_corrections,
        ] {
            w.u64(v);
        }
        for v in self.rejected {
            w.u64(v);
        }
    }

    fn load(r: &mut Reader<'_>) -> Result<Counters, SnapshotError> {
        let mut c = Counters {
            received: r.u64()?,
            accepted: r.u64()?,
            duplicates: r.u64()?,
            identify: r.u64()?,
            late: r.u64()?,
            late_corrections: r.u64()?,
            rejected: [0; 6],
        };
        for v in &mut c.rejected {
            *v = r.u64()?;
        }
        Ok(c)
    }
}

/// The role bytes of resolvers (`split`); 0 and 1 are whole engines with their own or an
/// external watermark (journeys engines have an external one).
const ROLE_RESOLVER: u8 = 2;
const ROLE_LOG_RESOLVER: u8 = 3;

impl Engine {
    /// Appends a snapshot of the whole state to `out` (see the module doc).
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.raw(MAGIC);
        w.u32(SNAPSHOT_VERSION);
        w.u32(config_checksum(&self.funnels, &self.dims));
        self.counters.save(&mut w);
        w.bool(self.newest.is_some());
        w.i64(self.newest.unwrap_or_default());
        w.i64(self.watermark);
        // The role, in what was a bool: 0 and 1 read as before, and a build that knows no
        // resolvers refuses one rather than run it as a whole engine.
        let role = match (&self.released, self.external_watermark) {
            (Some(released), _) => {
                debug_assert!(
                    released.is_empty(),
                    "a resolver is drained before a snapshot"
                );
                if released.by_log() {
                    ROLE_LOG_RESOLVER
                } else {
                    ROLE_RESOLVER
                }
            }
            (None, external) => u8::from(external),
        };
        w.u8(role);
        self.arena.save(&mut w);
        self.touch_ids.save(&mut w);
        self.dims.save(&mut w);
        self.accounts.save(&mut w);
        self.identity.save(&mut w);
        self.dedup.save(&mut w);
    }

    /// An engine with the state of a snapshot taken by an engine built from the same config:
    /// from then on it behaves exactly as the one that took it.
    pub fn restore(config: &Config, bytes: &[u8]) -> Result<Engine, SnapshotError> {
        let mut engine = Engine::new(config).map_err(SnapshotError::Config)?;
        let mut r = Reader::new(bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(r.corrupt("not an engine snapshot"));
        }
        let found = r.u32()?;
        if found != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version {
                found,
                expected: SNAPSHOT_VERSION,
            });
        }
        if r.u32()? != config_checksum(&engine.funnels, &engine.dims) {
            return Err(SnapshotError::Config(
                "its funnels or breakdown dimensions differ".to_string(),
            ));
        }
        r.section("counters");
        engine.counters = Counters::load(&mut r)?;
        let has_newest = r.bool()?;
        let newest = r.i64()?;
        engine.newest = has_newest.then_some(newest);
        engine.watermark = r.i64()?;
        match r.u8()? {
            0 => {}
            1 => engine.external_watermark = true,
            ROLE_RESOLVER => engine = engine.into_resolver(),
            ROLE_LOG_RESOLVER => engine = engine.into_log_resolver(),
            other => return Err(r.corrupt(format_args!("engine role {other}"))),
        }
        engine.arena = StrArena::load(&mut r)?;
        r.section("touch ids");
        engine.touch_ids = EventIds::load(&mut r)?;
        engine.dims = Dimensions::load(&mut r, &config.service.metrics)?;
        let check = TouchCheck {
            kinds: engine.funnels.kinds(),
            dims: &engine.dims,
        };
        engine.accounts = Accounts::load(
            &mut r,
            &engine.arena,
            &engine.touch_ids,
            &engine.funnels,
            &check,
        )?;
        engine.identity = Identity::load(
            &mut r,
            config.identity.pending_ttl,
            &engine.arena,
            engine.accounts.len(),
            &check,
        )?;
        engine.dedup = Dedup::load(&mut r, config.pipeline.dedup_window)?;
        r.finish()?;
        let [contacts, anons] = engine.identity.interners();
        let interners = [&*engine.accounts.interner(), contacts, anons];
        engine.arena.recount_dead(&interners)?;
        engine.stats = engine.recompute_stats(engine.watermark);
        Ok(engine)
    }
}
