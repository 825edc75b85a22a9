//! Journeys and outcomes (SPEC §3): the one home of the rules that decide when a journey
//! starts and ends, when a stage is entered, and whether it converted, dropped or is open.

use super::{Funnel, Funnels, LOST, NO_STAGE, Touch};
use crate::codec::{Reader, Writer};
use crate::config::MAX_STAGES;
use crate::engine::SnapshotError;
use crate::time::Millis;
use crate::time::accepted;

/// How a journey ended, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// No touch closed it (it may still time out: see [`Journey::deadline`]).
    Open,
    /// A touch reached the last stage.
    Won,
    /// A lost touch closed it.
    Lost,
}

/// Outcome of an entered stage other than the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Converted to the next stage after this many milliseconds.
    Converted(Millis),
    Dropped,
    Open,
}

impl Outcome {
    /// `converted`, `dropped` or `open`, as the account view and the BI files write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Converted(_) => "converted",
            Outcome::Dropped => "dropped",
            Outcome::Open => "open",
        }
    }
}

/// One journey of one account in one funnel.
#[derive(Debug, Clone)]
pub struct Journey {
    /// Index of its first touch in the account's touches, and one past its last.
    pub first: usize,
    pub end_index: usize,
    pub first_time: Millis,
    pub last_time: Millis,
    /// How many stages were entered: stages `0..reached`.
    pub reached: usize,
    pub entered: [Millis; MAX_STAGES],
    /// Index of the touch that entered each stage (the same touch for stages it hopped over).
    pub entering_touch: [u32; MAX_STAGES],
    /// Channel changes along the journey up to and including the entering touch.
    pub turns_before: [u32; MAX_STAGES],
    /// Bit s: the entering touch of stage s was online.
    pub entered_online: u16,
    /// Breakdown dimension values of the entering touch of each stage.
    pub entered_dims: [u16; MAX_STAGES],
    pub end: End,
    /// Channel changes along the whole journey so far.
    pub turns: u32,
    last_online: bool,
}

impl Journey {
    pub(crate) fn start(index: usize, touch: Touch) -> Journey {
        Journey {
            first: index,
            end_index: index,
            first_time: touch.time(),
            last_time: touch.time(),
            reached: 0,
            entered: [0; MAX_STAGES],
            entering_touch: [0; MAX_STAGES],
            turns_before: [0; MAX_STAGES],
            entered_online: 0,
            entered_dims: [0; MAX_STAGES],
            end: End::Open,
            turns: 0,
            last_online: touch.online(),
        }
    }

    /// Makes this the journey [`Journey::start`] would make. Stages past `reached` are
    /// still zero (`push` writes only those it reaches), so only those before are cleared.
    fn restart(&mut self, index: usize, touch: Touch) {
        let reached = self.reached;
        self.entered[..reached].fill(0);
        self.entering_touch[..reached].fill(0);
        self.turns_before[..reached].fill(0);
        self.entered_dims[..reached].fill(0);
        self.first = index;
        self.end_index = index;
        self.first_time = touch.time();
        self.last_time = touch.time();
        self.reached = 0;
        self.entered_online = 0;
        self.end = End::Open;
        self.turns = 0;
        self.last_online = touch.online();
    }

    /// Whether `touch` opens a new journey after this one: when this one is closed, or when the
    /// touch comes more than `journey_timeout` after its last touch (exactly the timeout stays).
    pub(crate) fn is_followed_by(&self, touch: Touch, funnel: &Funnel) -> bool {
        self.end != End::Open || touch.time() - self.last_time > funnel.journey_timeout
    }

    /// Adds the next touch (in order) with its stage code in this funnel.
    #[inline]
    pub(crate) fn push(&mut self, index: usize, touch: Touch, code: u8, funnel: &Funnel) {
        if index > self.first && touch.online() != self.last_online {
            self.turns += 1;
        }
        self.last_online = touch.online();
        self.last_time = touch.time();
        self.end_index = index + 1;
        match code {
            LOST => self.end = End::Lost,
            NO_STAGE => {}
            stage => {
                // Reaching a stage implies every earlier one (stage hopping fills the gaps);
                // a touch at or below the highest stage reached changes nothing.
                let stage = stage as usize;
                for s in self.reached..=stage {
                    self.entered[s] = touch.time();
                    self.entering_touch[s] = index as u32;
                    self.turns_before[s] = self.turns;
                    self.entered_dims[s] = touch.dims;
                    if touch.online() {
                        self.entered_online |= 1 << s;
                    }
                }
                self.reached = self.reached.max(stage + 1);
                if stage == funnel.last_stage() {
                    self.end = End::Won;
                }
            }
        }
    }

    /// Whether an open journey is over by time: a later journey followed it, or the watermark
    /// is more than `journey_timeout` past its last touch.
    pub fn expired(&self, funnel: &Funnel, watermark: Millis, has_later: bool) -> bool {
        has_later || watermark > self.last_time.saturating_add(funnel.journey_timeout)
    }

    /// `won`, `lost`, `expired` (see [`Journey::expired`]) or `open`.
    pub fn status(&self, funnel: &Funnel, watermark: Millis, has_later: bool) -> &'static str {
        match self.end {
            End::Won => "won",
            End::Lost => "lost",
            End::Open if self.expired(funnel, watermark, has_later) => "expired",
            End::Open => "open",
        }
    }

    /// How many touches it has.
    pub fn touch_count(&self) -> usize {
        self.end_index - self.first
    }

    /// Every field, `end` as a byte.
    pub fn save(&self, w: &mut Writer<'_>) {
        w.u64(self.first as u64);
        w.u64(self.end_index as u64);
        w.i64(self.first_time);
        w.i64(self.last_time);
        w.u8(self.reached as u8);
        for s in 0..MAX_STAGES {
            w.i64(self.entered[s]);
            w.u32(self.entering_touch[s]);
            w.u32(self.turns_before[s]);
            w.u16(self.entered_dims[s]);
        }
        w.u16(self.entered_online);
        w.u8(match self.end {
            End::Open => 0,
            End::Won => 1,
            End::Lost => 2,
        });
        w.u32(self.turns);
        w.bool(self.last_online);
    }

    /// A journey as saved, checked against the account's `touches` count and its `funnel`.
    pub fn load(
        r: &mut Reader<'_>,
        touches: usize,
        funnel: &Funnel,
    ) -> Result<Journey, SnapshotError> {
        let first = r.u64()?;
        let end_index = r.u64()?;
        if first >= end_index || end_index > touches as u64 {
            return Err(r.corrupt(format_args!(
                "journey over touches {first}..{end_index} of an account with {touches}"
            )));
        }
        let mut j = Journey {
            first: first as usize,
            end_index: end_index as usize,
            first_time: r.i64()?,
            last_time: r.i64()?,
            reached: r.u8()? as usize,
            entered: [0; MAX_STAGES],
            entering_touch: [0; MAX_STAGES],
            turns_before: [0; MAX_STAGES],
            entered_online: 0,
            entered_dims: [0; MAX_STAGES],
            end: End::Open,
            turns: 0,
            last_online: false,
        };
        if j.reached > funnel.stages.len() {
            return Err(r.corrupt(format_args!(
                "journey reached stage {} of {}",
                j.reached,
                funnel.stages.len()
            )));
        }
        for s in 0..MAX_STAGES {
            j.entered[s] = r.i64()?;
            j.entering_touch[s] = r.u32()?;
            j.turns_before[s] = r.u32()?;
            j.entered_dims[s] = r.u16()?;
            if j.entering_touch[s] >= end_index as u32 && s < j.reached {
                return Err(r.corrupt("a stage entered by a touch past the journey"));
            }
        }
        let mut times = [j.first_time, j.last_time].into_iter().chain(j.entered);
        if !times.all(accepted) {
            return Err(r.corrupt("a journey time out of range"));
        }
        j.entered_online = r.u16()?;
        j.end = match r.u8()? {
            0 => End::Open,
            1 => End::Won,
            2 => End::Lost,
            b => return Err(r.corrupt(format_args!("{b} is not a journey end"))),
        };
        j.turns = r.u32()?;
        j.last_online = r.bool()?;
        Ok(j)
    }

    /// Outcome of entered stage `s` (not the last) at `watermark`, SPEC §3:
    /// converted if `s + 1` was entered within the window of `s`; else dropped if `s + 1` was
    /// entered too late, the journey was lost, a later journey exists, the watermark is more
    /// than the window past `entered[s]`, or more than `journey_timeout` past the last touch;
    /// else open.
    pub fn outcome(
        &self,
        s: usize,
        funnel: &Funnel,
        watermark: Millis,
        has_later: bool,
    ) -> Outcome {
        debug_assert!(s < self.reached && s < funnel.last_stage());
        let window = funnel.windows[s];
        if s + 1 < self.reached {
            let took = self.entered[s + 1] - self.entered[s];
            return if took <= window {
                Outcome::Converted(took)
            } else {
                Outcome::Dropped
            };
        }
        if self.end == End::Lost
            || has_later
            || watermark > self.entered[s].saturating_add(window)
            || watermark > self.last_time.saturating_add(funnel.journey_timeout)
        {
            Outcome::Dropped
        } else {
            Outcome::Open
        }
    }

    /// The earliest watermark value past which this journey (as the last one of its account)
    /// changes by the passing of time alone, if any: its open stage drops when the watermark
    /// passes the stage's window, and the journey expires past `journey_timeout`.
    pub fn deadline(&self, funnel: &Funnel, watermark: Millis) -> Option<Millis> {
        if self.end != End::Open {
            return None;
        }
        let mut deadline = self.last_time.saturating_add(funnel.journey_timeout);
        if (1..=funnel.last_stage()).contains(&self.reached) {
            let s = self.reached - 1;
            deadline = deadline.min(self.entered[s].saturating_add(funnel.windows[s]));
        }
        // Deadlines already passed have had their effect; the later one may still be ahead.
        if deadline >= watermark {
            Some(deadline)
        } else {
            let timeout = self.last_time.saturating_add(funnel.journey_timeout);
            (timeout >= watermark).then_some(timeout)
        }
    }
}

/// Cuts `touches[from..]` into journeys of funnel `f` and calls `visit(journey, has_later)` for
/// each, in order; returns the last one. `from` must be the first touch of a journey (or 0).
///
/// With `mark`, records which touches start a journey in their flags, so that a later change
/// can find the start of the journey it affects without walking from the first touch.
#[inline]
pub fn walk(
    touches: &mut [Touch],
    from: usize,
    f: usize,
    funnels: &Funnels,
    mark: bool,
    visit: impl FnMut(&Journey, bool),
) -> Option<Journey> {
    let mut last = None;
    walk_into(touches, from, f, funnels, mark, &mut last, visit);
    last
}

/// [`walk`], leaving the last journey in `last` (`None` when there are no touches), where a
/// journey left from an earlier walk is reset in place: a journey is a few hundred bytes,
/// and moving the one returned out of [`walk`] was a visible share of a replay (issue #2).
#[inline]
pub fn walk_into(
    touches: &mut [Touch],
    from: usize,
    f: usize,
    funnels: &Funnels,
    mark: bool,
    last: &mut Option<Journey>,
    mut visit: impl FnMut(&Journey, bool),
) {
    let funnel = &funnels.funnels[f];
    let mut open = false;
    for (i, touch) in touches.iter_mut().enumerate().skip(from) {
        let starts = match &*last {
            Some(j) if open => j.is_followed_by(*touch, funnel),
            _ => true,
        };
        if mark {
            touch.set_starts_journey(f, starts);
        }
        if starts {
            match last {
                // Reset in place, clearing only the stages the old one reached.
                Some(previous) => {
                    if open {
                        visit(previous, true);
                    }
                    previous.restart(i, *touch);
                }
                None => *last = Some(Journey::start(i, *touch)),
            }
            open = true;
        }
        let journey = last.as_mut().expect("a journey is open");
        journey.push(i, *touch, funnels.code(touch.kind(), f), funnel);
    }
    match last {
        Some(journey) if open => visit(journey, false),
        _ => *last = None,
    }
}

/// Index of the first touch of the journey of funnel `f` that contains `touches[at]`, from the
/// marks left by [`walk`]; 0 for funnels that are not marked.
pub fn journey_start(touches: &[Touch], at: usize, f: usize) -> usize {
    if f >= super::MARKED_FUNNELS {
        return 0;
    }
    (0..=at)
        .rev()
        .find(|&i| touches[i].starts_journey(f))
        .unwrap_or(0)
}

/// Appends `touch`, which sorts after every touch of the account, to funnel `f` given the
/// account's current last journey, updated in place. When the touch opens a new journey,
/// `last` becomes that journey and the one it closed (which now has a later one) is returned.
/// Marks the touch like [`walk`].
pub fn append(
    last: &mut Journey,
    touch: &mut Touch,
    index: usize,
    f: usize,
    funnels: &Funnels,
) -> Option<Journey> {
    let funnel = &funnels.funnels[f];
    let opens = last.is_followed_by(*touch, funnel);
    touch.set_starts_journey(f, opens);
    let closed = opens.then(|| std::mem::replace(last, Journey::start(index, *touch)));
    last.push(index, *touch, funnels.code(touch.kind(), f), funnel);
    closed
}
