//! Funnels (SPEC §3): which stage an event reaches in each funnel, and the compact touch record
//! that journeys are computed from.
//!
//! - [`Funnels`] compiles the configured funnels into a lookup table so that the stage of an
//!   event in every funnel is one array read per funnel on the hot path.
//! - [`journey`] cuts an account's ordered touches into journeys and decides outcomes.
//! - [`stats`] adds journeys up into the per-stage counters of the summary.

pub mod journey;
pub mod stats;

use foldhash::fast::RandomState;
use hashbrown::HashMap;

use crate::codec::{Reader, Writer};
use crate::config::FunnelConfig;
use crate::engine::{SnapshotError, TouchId};
use crate::time::{MAX_MILLIS, MIN_MILLIS, Millis, accepted};

/// Stage code of an event in a funnel that maps it to no stage.
pub const NO_STAGE: u8 = 0xFE;
/// Stage code of a lost event.
pub const LOST: u8 = 0xFF;

/// Funnels whose journey starts are marked in [`Touch::flags`]; journeys of later funnels are
/// recomputed from the account's first touch (correct, just slower).
pub const MARKED_FUNNELS: usize = 14;

/// One accepted touch as the engine keeps it: 20 bytes, its usual event id included.
///
/// Touches of an account are kept sorted by (`time`, event id bytes), SPEC §3. Accounts hold
/// most of the engine's memory in their touches, so the event time (49 bits hold every time
/// SPEC §1 accepts) shares a word with the kind (15 bits), the record is packed to 2-byte
/// alignment (22 bytes where plain fields took 24, issue #2, session 17), and the dimension
/// values take 16 bits (20 bytes, session 20).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, packed(2))]
pub struct Touch {
    /// The event time in the high 49 bits (signed), the kind in the low [`Touch::KIND_BITS`].
    when: u64,
    /// Its event id (ties in `time` are ordered by it): a [`TouchId`], whose variant is the
    /// [`Touch::STORED_ID`] flag. Read it with [`Touch::id`].
    id: u64,
    /// Bit 0: online. Bit 1 + f: this touch starts a journey of funnel f (f < 14). Bit 15:
    /// the event id is in the engine's touch id store, not in `id`.
    pub flags: u16,
    /// Its values of the configured breakdown dimensions, packed (see `engine::dims`); 0
    /// when none are configured.
    pub dims: u16,
}

const _: () = assert!(Touch::time_fits(MIN_MILLIS) && Touch::time_fits(MAX_MILLIS));

impl std::fmt::Debug for Touch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (flags, dims) = (self.flags, self.dims);
        f.debug_struct("Touch")
            .field("time", &self.time())
            .field("id", &self.id())
            .field("kind", &self.kind())
            .field("flags", &flags)
            .field("dims", &dims)
            .finish()
    }
}

impl Touch {
    pub const ONLINE: u16 = 1;
    const STORED_ID: u16 = 1 << 15;
    /// Bits of [`Touch::kind`]: [`Funnels::new`] refuses configurations with more kinds.
    pub const KIND_BITS: u32 = 15;
    /// Whether `time` survives the trip through the bits left above the kind: every time
    /// from [`MIN_MILLIS`] to [`MAX_MILLIS`] does (checked at compile time, after the struct).
    const fn time_fits(time: Millis) -> bool {
        (time << Touch::KIND_BITS) >> Touch::KIND_BITS == time
    }

    /// Whether `kind` fits the bits below the time.
    const fn kind_fits(kind: u16) -> bool {
        (kind as u32) < 1 << Touch::KIND_BITS
    }

    pub fn new(time: Millis, id: TouchId, kind: u16, online: bool, dims: u16) -> Touch {
        debug_assert!(Touch::time_fits(time), "{time}");
        debug_assert!(Touch::kind_fits(kind), "{kind}");
        let mut touch = Touch {
            when: Touch::when(time, kind),
            id: 0,
            flags: if online { Touch::ONLINE } else { 0 },
            dims,
        };
        touch.set_id(id);
        touch
    }

    /// The word holding `time` above `kind`.
    fn when(time: Millis, kind: u16) -> u64 {
        (time as u64) << Touch::KIND_BITS | u64::from(kind)
    }

    /// Its event time.
    #[inline]
    pub fn time(self) -> Millis {
        self.when as i64 >> Touch::KIND_BITS
    }

    /// Index into the [`Funnels`] kind table: touchpoint kind × explicit stage.
    #[inline]
    pub fn kind(self) -> u16 {
        (self.when & ((1 << Touch::KIND_BITS) - 1)) as u16
    }

    pub fn id(self) -> TouchId {
        if self.flags & Touch::STORED_ID == 0 {
            TouchId::Hex16(self.id)
        } else {
            TouchId::Stored(self.id as u32)
        }
    }

    pub fn set_id(&mut self, id: TouchId) {
        (self.id, self.flags) = match id {
            TouchId::Hex16(word) => (word, self.flags & !Touch::STORED_ID),
            TouchId::Stored(at) => (at.into(), self.flags | Touch::STORED_ID),
        };
    }

    pub fn online(self) -> bool {
        self.flags & Touch::ONLINE != 0
    }

    fn start_bit(funnel: usize) -> u16 {
        debug_assert!(funnel < MARKED_FUNNELS);
        1 << (funnel + 1)
    }

    pub fn starts_journey(self, funnel: usize) -> bool {
        self.flags & Touch::start_bit(funnel) != 0
    }

    pub fn set_starts_journey(&mut self, funnel: usize, starts: bool) {
        if funnel < MARKED_FUNNELS {
            if starts {
                self.flags |= Touch::start_bit(funnel);
            } else {
                self.flags &= !Touch::start_bit(funnel);
            }
        }
    }

    /// Bytes of a saved touch.
    pub const SAVED_BYTES: usize = 22;

    /// Field by field, journey marks and the stored-id flag included.
    pub fn save(self, w: &mut Writer<'_>) {
        let Touch {
            id, flags, dims, ..
        } = self;
        // One write per touch: accounts hold millions.
        let mut b = [0; Touch::SAVED_BYTES];
        b[..8].copy_from_slice(&self.time().to_le_bytes());
        b[8..16].copy_from_slice(&id.to_le_bytes());
        b[16..18].copy_from_slice(&self.kind().to_le_bytes());
        b[18..20].copy_from_slice(&flags.to_le_bytes());
        b[20..].copy_from_slice(&dims.to_le_bytes());
        w.raw(&b);
    }

    /// A touch as saved; the caller checks what its fields point to.
    pub fn load(r: &mut Reader<'_>) -> Result<Touch, SnapshotError> {
        let (time, id, kind, flags, dims) = (r.i64()?, r.u64()?, r.u16()?, r.u16()?, r.u16()?);
        if !accepted(time) {
            return Err(r.corrupt(format_args!("a touch's time {time} is out of range")));
        }
        if !Touch::kind_fits(kind) {
            return Err(r.corrupt(format_args!("a touch's kind {kind} is out of range")));
        }
        if flags & Touch::STORED_ID != 0 && u32::try_from(id).is_err() {
            return Err(r.corrupt("a touch's event id is past its store"));
        }
        Ok(Touch {
            when: Touch::when(time, kind),
            id,
            flags,
            dims,
        })
    }
}

/// One funnel's settings as the journey code needs them.
#[derive(Debug, Clone)]
pub struct Funnel {
    pub name: String,
    pub stages: Vec<String>,
    /// Conversion window of each stage (the last one is unused).
    pub windows: Vec<Millis>,
    pub journey_timeout: Millis,
}

impl Funnel {
    pub fn last_stage(&self) -> usize {
        self.stages.len() - 1
    }
}

/// All configured funnels, with the table giving each event's stage code in each funnel.
///
/// An event's *kind* is the pair (touchpoint kind, explicit `stage` field), each reduced to the
/// names the configuration mentions (anything else is "other"), so the table is small and
/// bounded by the configuration, never by the traffic.
#[derive(Debug, Clone)]
pub struct Funnels {
    pub funnels: Vec<Funnel>,
    touchpoints: HashMap<String, u16, RandomState>,
    stage_names: HashMap<String, u16, RandomState>,
    stage_name_count: usize,
    /// `codes[kind * funnels.len() + f]`: stage index, [`NO_STAGE`] or [`LOST`].
    codes: Vec<u8>,
    /// Touchpoint kinds the configuration names, by index (0: any other kind).
    touchpoint_names: Vec<String>,
}

impl Funnels {
    pub fn new(configs: &[FunnelConfig]) -> Result<Funnels, String> {
        // Index 0 of each dimension is "other".
        let mut touchpoints: HashMap<String, u16, RandomState> = HashMap::default();
        let mut stage_names: HashMap<String, u16, RandomState> = HashMap::default();
        stage_names.insert("lost".to_string(), 1);
        for config in configs {
            let mentioned = config
                .rules
                .iter()
                .map(|(t, _)| t)
                .chain(&config.lost_touchpoints);
            for touchpoint in mentioned {
                let next = touchpoints.len() as u16 + 1;
                touchpoints.entry(touchpoint.clone()).or_insert(next);
            }
            for stage in &config.stages {
                let next = stage_names.len() as u16 + 1;
                stage_names.entry(stage.clone()).or_insert(next);
            }
        }
        let stage_name_count = stage_names.len() + 1;
        let kinds = (touchpoints.len() + 1) * stage_name_count;
        if kinds > 1 << Touch::KIND_BITS {
            return Err(format!(
                "the funnels mention {} touchpoint kinds and {} stage names, more than Spiral's \
                 table of 32768 combinations holds",
                touchpoints.len(),
                stage_names.len()
            ));
        }
        let mut names_of_touchpoints = vec![""; touchpoints.len() + 1];
        for (name, &i) in &touchpoints {
            names_of_touchpoints[i as usize] = name;
        }
        let mut names_of_stages = vec![""; stage_name_count];
        for (name, &i) in &stage_names {
            names_of_stages[i as usize] = name;
        }
        let mut codes = Vec::with_capacity(kinds * configs.len());
        for kind in 0..kinds {
            let touchpoint = names_of_touchpoints[kind / stage_name_count];
            let stage = names_of_stages[kind % stage_name_count];
            for config in configs {
                codes.push(stage_code(config, touchpoint, stage));
            }
        }
        let funnels = configs
            .iter()
            .map(|c| Funnel {
                name: c.name.clone(),
                stages: c.stages.clone(),
                windows: c.windows.clone(),
                journey_timeout: c.journey_timeout,
            })
            .collect();
        let touchpoint_names = names_of_touchpoints.iter().map(|n| n.to_string()).collect();
        Ok(Funnels {
            funnels,
            touchpoint_names,
            touchpoints,
            stage_names,
            stage_name_count,
            codes,
        })
    }

    pub fn len(&self) -> usize {
        self.funnels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.funnels.is_empty()
    }

    /// The kind of an event with this touchpoint and optional explicit stage.
    pub fn kind(&self, touchpoint: &str, stage: Option<&str>) -> u16 {
        let t = self.touchpoints.get(touchpoint).copied().unwrap_or(0) as usize;
        let s = stage
            .and_then(|s| self.stage_names.get(s).copied())
            .unwrap_or(0) as usize;
        (t * self.stage_name_count + s) as u16
    }

    /// The touchpoint kind of a kind, when the configuration names it.
    pub fn touchpoint_name(&self, kind: u16) -> Option<&str> {
        let t = kind as usize / self.stage_name_count;
        (t > 0).then(|| self.touchpoint_names[t].as_str())
    }

    /// How many kinds there are: every touch's `kind` is below this.
    pub fn kinds(&self) -> usize {
        self.touchpoint_names.len() * self.stage_name_count
    }

    /// Writes everything stored touches and journeys depend on: the funnels' stages, windows
    /// and timeouts, the kind numbering and its stage codes. An engine snapshot keeps a
    /// checksum of it, so state is never restored under funnels that read it differently.
    pub fn describe(&self, w: &mut Writer<'_>) {
        w.len(self.funnels.len());
        for f in &self.funnels {
            w.bytes(f.name.as_bytes());
            w.len(f.stages.len());
            for (stage, &window) in f.stages.iter().zip(&f.windows) {
                w.bytes(stage.as_bytes());
                w.i64(window);
            }
            w.i64(f.journey_timeout);
        }
        w.len(self.touchpoint_names.len());
        for name in &self.touchpoint_names {
            w.bytes(name.as_bytes());
        }
        w.len(self.stage_name_count);
        w.bytes(&self.codes);
    }

    /// Stage code of a kind in funnel `f`: a stage index, [`NO_STAGE`] or [`LOST`].
    #[inline]
    pub fn code(&self, kind: u16, f: usize) -> u8 {
        self.codes[kind as usize * self.funnels.len() + f]
    }
}

/// The stage of an event in a funnel (SPEC §3): lost if its touchpoint is a lost touchpoint or
/// its `stage` is "lost" (a lost event has no stage); else its `stage` field if that names one
/// of the funnel's stages; else the funnel's rule for its touchpoint; else none.
fn stage_code(config: &FunnelConfig, touchpoint: &str, stage: &str) -> u8 {
    if stage == "lost" || config.lost_touchpoints.iter().any(|t| t == touchpoint) {
        return LOST;
    }
    if let Some(i) = config.stages.iter().position(|s| s == stage) {
        return i as u8;
    }
    match config.rules.iter().find(|(t, _)| t == touchpoint) {
        Some(&(_, i)) => i as u8,
        None => NO_STAGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn funnels() -> Funnels {
        let config =
            Config::parse(include_str!("../../config/spiral.toml"), "spiral.toml").unwrap();
        Funnels::new(&config.funnels).unwrap()
    }

    #[test]
    fn a_touch_keeps_any_accepted_time_and_kind_in_20_bytes() {
        assert_eq!(size_of::<Touch>(), 20);
        let kinds = [0, 1, (1 << Touch::KIND_BITS) - 1];
        for time in [MIN_MILLIS, -1, 0, 1, 1_767_225_600_000, MAX_MILLIS] {
            for kind in kinds {
                let touch = Touch::new(time, TouchId::Hex16(u64::MAX), kind, true, u16::MAX);
                assert_eq!((touch.time(), touch.kind()), (time, kind));
                assert_eq!(touch.id(), TouchId::Hex16(u64::MAX));
                let mut bytes = Vec::new();
                touch.save(&mut Writer::new(&mut bytes));
                assert_eq!(Touch::load(&mut Reader::new(&bytes)).unwrap(), touch);
            }
        }
        // A saved time no event may have, or a kind past the table, is refused.
        for (time, kind) in [(MAX_MILLIS + 1, 0), (MIN_MILLIS - 1, 0), (0, 1 << 15)] {
            let mut bytes = Vec::new();
            let mut w = Writer::new(&mut bytes);
            w.i64(time);
            w.u64(0);
            w.u16(kind);
            w.u16(0);
            w.u32(0);
            assert!(
                Touch::load(&mut Reader::new(&bytes)).is_err(),
                "{time} {kind}"
            );
        }
    }

    /// A journey as a snapshot saves it: equal bytes, equal journeys.
    fn saved(j: &journey::Journey) -> Vec<u8> {
        let mut bytes = Vec::new();
        j.save(&mut crate::codec::Writer::new(&mut bytes));
        bytes
    }

    /// Touches of the example config's kinds, two funnels' first journeys and then, a year
    /// later, a journey of its own in either funnel.
    fn two_journeys(f: &Funnels) -> [Touch; 5] {
        let touch = |time, kind, online| {
            Touch::new(time, TouchId::Stored(0), f.kind(kind, None), online, 7)
        };
        [
            touch(1_000, "web_visit", true),
            touch(2_000, "webinar_attended", false),
            touch(3_000, "contract_signed", true),
            touch(40_000_000_000, "ad_click", true),
            touch(40_000_001_000, "demo_held", false),
        ]
    }

    /// `walk` resets a journey in place for the next one: it must be the journey a fresh
    /// start would be, down to the bytes a snapshot saves of it.
    #[test]
    fn a_journey_restarted_in_place_equals_a_fresh_one() {
        let f = funnels();
        let [a, b, c, d, _] = two_journeys(&f);
        for funnel in 0..f.len() {
            let mut touches = [a, b, c, d];
            let mut journeys = Vec::new();
            let last = journey::walk(&mut touches, 0, funnel, &f, false, |j, _| {
                journeys.push(saved(j))
            })
            .unwrap();
            assert!(journeys.len() >= 2, "the test needs a second journey");
            let mut fresh = journey::Journey::start(3, touches[3]);
            fresh.push(
                3,
                touches[3],
                f.code(touches[3].kind(), funnel),
                &f.funnels[funnel],
            );
            assert_eq!(saved(&last), saved(&fresh), "funnel {funnel}");
        }
    }

    /// `walk_into` reuses whatever journey an earlier walk left: it must visit and leave
    /// exactly what a walk from nothing does, and nothing at all for no touches.
    #[test]
    fn a_walk_into_a_used_journey_equals_a_fresh_walk() {
        let f = funnels();
        let mut touches = two_journeys(&f);
        for funnel in 0..f.len() {
            for from in [0, 3] {
                let (mut fresh, mut reused) = (Vec::new(), Vec::new());
                let expected = journey::walk(&mut touches, from, funnel, &f, false, |j, later| {
                    fresh.push((saved(j), later))
                })
                .unwrap();
                // Left by a walk over all of them: reached stages, a later first touch.
                let mut last = journey::walk(&mut touches, 0, funnel, &f, false, |_, _| {});
                journey::walk_into(
                    &mut touches,
                    from,
                    funnel,
                    &f,
                    false,
                    &mut last,
                    |j, later| reused.push((saved(j), later)),
                );
                assert_eq!(reused, fresh, "funnel {funnel} from {from}");
                assert_eq!(saved(&last.unwrap()), saved(&expected));
            }
            let mut last = journey::walk(&mut touches, 0, funnel, &f, false, |_, _| {});
            journey::walk_into(&mut touches, 5, funnel, &f, false, &mut last, |_, _| {
                panic!("no touches, no journey")
            });
            assert!(last.is_none(), "no touches leave no journey");
        }
    }

    #[test]
    fn rules_map_touchpoints_to_stages_per_funnel() {
        let f = funnels();
        let signed = f.kind("contract_signed", None);
        assert_eq!(f.code(signed, 0), 5, "won in new_business");
        assert_eq!(f.code(signed, 1), 0, "customer in expansion");
        assert_eq!(f.code(f.kind("web_visit", None), 1), NO_STAGE);
        assert_eq!(f.code(f.kind("unheard_of", None), 0), NO_STAGE);
    }

    #[test]
    fn explicit_stage_beats_the_rules_only_where_it_names_a_stage() {
        let f = funnels();
        let k = f.kind("web_visit", Some("sql"));
        assert_eq!(f.code(k, 0), 3);
        assert_eq!(
            f.code(k, 1),
            NO_STAGE,
            "sql is not an expansion stage, web_visit has no rule"
        );
        let k = f.kind("crm_stage_change", Some("nonsense"));
        assert_eq!(f.code(k, 0), NO_STAGE);
    }

    #[test]
    fn lost_touchpoints_and_lost_stage_are_lost() {
        let f = funnels();
        assert_eq!(f.code(f.kind("closed_lost", None), 0), LOST);
        assert_eq!(f.code(f.kind("closed_lost", None), 1), NO_STAGE);
        let k = f.kind("crm_stage_change", Some("lost"));
        assert_eq!((f.code(k, 0), f.code(k, 1)), (LOST, LOST));
        // A lost touchpoint with an explicit stage is still lost: it has no stage.
        assert_eq!(f.code(f.kind("closed_lost", Some("sql")), 0), LOST);
    }
}
