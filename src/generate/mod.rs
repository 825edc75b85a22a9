//! Seeded synthetic B2B traffic for demos, tests and benchmarks: JSON Lines touchpoint events
//! (SPEC §1) in the order a Kafka topic would receive them.
//!
//! Accounts walk the funnels of config/spiral.toml (see `model.rs`): ad clicks and web visits
//! from anonymous cookies that are identified later (or never), email opens, downloads,
//! webinars, trade-show scans and field events, demo requests, sales calls and meetings, CRM
//! stage changes, contracts, losses, and for customers business reviews, product signups,
//! upsells and expansion orders. Online touches arrive within seconds to minutes; CRM activity
//! comes through an hourly sync, often logged days late; badge scans and field events come in
//! nightly batch imports 1–10 days after they happened (`touches.rs`). On top of that go exact
//! re-sends and buggy retries (duplicates), and broken lines of every rejection reason
//! (`broken.rs`).
//!
//! The output is a pure function of [`GenerateOptions`]: a private PRNG and counter-derived ids
//! keep it byte-identical across runs, platforms and dependency upgrades. It streams: memory is
//! O(accounts) plus the lines waiting for their arrival time (mostly the last days' offline
//! touches) — under 10 MB for 1M events from 100k accounts.

mod arrivals;
mod broken;
mod clock;
mod digits;
mod model;
mod render;
mod rng;
mod stages;
mod steps;
mod touches;

#[cfg(test)]
mod tests;

use std::io::{self, BufWriter, Write};

use arrivals::{Arrivals, Slot};
use clock::{DAY, MINUTE, SECOND};
use render::{ATTR_RETRY, Ev, Ids, Mods, Ts};
use rng::{Rng, mix64};
use steps::StepQueue;

/// What to generate. Everything, byte for byte, follows from these values.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub seed: u64,
    /// How many accounts the traffic comes from (at least 1, at most 2^29 − 1).
    pub accounts: u64,
    /// Exactly how many lines to write, broken and duplicate lines included.
    pub events: u64,
    /// Epoch milliseconds of the earliest event time (default 2026-01-05T00:00:00Z, a Monday).
    pub start: i64,
    /// Share of lines that are broken (rejected by SPEC §1), default 0.01.
    pub broken_share: f64,
    /// Share of lines that re-send an earlier event id, default 0.02.
    pub duplicate_share: f64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 1,
            accounts: 10_000,
            events: 100_000,
            start: 1_767_571_200_000,
            broken_share: 0.01,
            duplicate_share: 0.02,
        }
    }
}

/// Counts of what was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenerateStats {
    pub lines: u64,
    pub broken: u64,
    pub duplicates: u64,
    /// Identify events, not counting their duplicates.
    pub identify: u64,
    /// Touches, not counting their duplicates.
    pub touches: u64,
}

/// What a generated line is, for tests and benches that want to check a decoder or an engine
/// against the generator's intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A good touch; `arrival` is when the simulated topic received it (epoch ms).
    Touch {
        touchpoint: &'static str,
        occurred_at: i64,
        offline: bool,
        arrival: i64,
    },
    Identify {
        occurred_at: i64,
        arrival: i64,
    },
    /// A re-sent event id: an exact copy of an earlier line, or (a buggy retry) the same id
    /// with a different payload.
    Duplicate {
        exact: bool,
    },
    /// A line a decoder must reject; `reason` is the SPEC §1 name (`"malformed"`, …).
    Broken {
        reason: &'static str,
    },
}

/// Writes `opts.events` JSON lines to `out` (buffered internally).
pub fn generate(opts: &GenerateOptions, out: &mut impl Write) -> io::Result<GenerateStats> {
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let stats = generate_with(opts, |line, _| out.write_all(line))?;
    out.flush()?;
    Ok(stats)
}

/// Like [`generate`], but hands each line (ending in `\n`) and what it is to `sink`.
pub fn generate_with<F>(opts: &GenerateOptions, mut sink: F) -> io::Result<GenerateStats>
where
    F: FnMut(&[u8], LineKind) -> io::Result<()>,
{
    let mut g = Generator::new(opts);
    let mut stats = GenerateStats::default();
    let mut buf = Vec::new();
    while stats.lines < opts.events {
        let Some((arrival, slot)) = g.next_arrival() else {
            break;
        };
        // Broken lines are interleaved with arrivals at the configured rate.
        while stats.lines < opts.events && g.noise.chance(g.broken_share) {
            buf.clear();
            let reason = g.breaker.line(arrival, stats.lines, &mut buf);
            buf.push(b'\n');
            sink(&buf, LineKind::Broken { reason })?;
            stats.lines += 1;
            stats.broken += 1;
        }
        if stats.lines == opts.events {
            break;
        }
        let Slot { line, kind } = g.arrivals.get(slot);
        match kind {
            LineKind::Touch { .. } => stats.touches += 1,
            LineKind::Identify { .. } => stats.identify += 1,
            LineKind::Duplicate { .. } => stats.duplicates += 1,
            LineKind::Broken { .. } => stats.broken += 1,
        }
        sink(line, *kind)?;
        g.arrivals.release(slot);
        stats.lines += 1;
    }
    Ok(stats)
}

struct Generator {
    sim: model::Sim,
    ids: Ids,
    /// When each account takes its next step.
    steps: StepQueue,
    arrivals: Arrivals,
    /// Decides duplicates and broken lines; separate from the journeys' generator so that the
    /// noise shares never change the journeys themselves.
    noise: Rng,
    breaker: broken::Breaker,
    broken_share: f64,
    /// Chance that an original line gets re-sent.
    resend: f64,
}

/// Over how long the accounts' first steps are spread: the first 240 days, or for a short run,
/// about its expected span (the model makes about ten events an account a year).
fn start_spread(opts: &GenerateOptions) -> i64 {
    let per_account = opts.events as f64 / opts.accounts.max(1) as f64;
    ((36.5 * per_account).clamp(1.0, 240.0) * DAY as f64) as i64
}

impl Generator {
    fn new(opts: &GenerateOptions) -> Generator {
        let accounts = opts.accounts.clamp(1, (1 << 29) - 1) as u32;
        let ids = Ids::new(opts.seed);
        let mut sim = model::Sim::new(opts.seed, opts.start, accounts);
        let mut steps = StepQueue::new(opts.start);
        // Account 0 starts the run; the others come in over the first months, so the traffic
        // does not start with every account at once.
        let spread = start_spread(opts);
        steps.push(opts.start, 0);
        for a in 1..accounts {
            let t = opts.start + sim.rng.between(MINUTE, spread);
            let tz = sim.accounts[a as usize].tz;
            let t = sim.business_time(t, tz);
            steps.push(t, a);
        }
        let broken_share = opts.broken_share.clamp(0.0, 1.0);
        let dup = opts.duplicate_share.clamp(0.0, 1.0);
        let resend = if broken_share + dup >= 1.0 {
            1.0
        } else {
            (dup / (1.0 - broken_share - dup)).min(1.0)
        };
        Generator {
            sim,
            ids,
            steps,
            arrivals: Arrivals::default(),
            noise: Rng::new(mix64(opts.seed ^ 0x0015_E0A5)),
            breaker: broken::Breaker::new(
                mix64(opts.seed ^ 0xB40C_E000),
                ids,
                accounts,
                opts.start,
            ),
            broken_share,
            resend,
        }
    }

    /// The next line in arrival order (its arrival time and slot): runs account steps until
    /// no step can produce anything that arrives before the earliest waiting line (every event
    /// arrives at or after the step that made it).
    fn next_arrival(&mut self) -> Option<(i64, u32)> {
        loop {
            // Accounts never leave for good, so there is always a next step.
            let horizon = self.steps.peek()?;
            if self.arrivals.next_arrival().is_some_and(|t| t <= horizon) {
                return self.arrivals.pop();
            }
            let (now, a) = self.steps.pop()?;
            let next = self.sim.step(a, now);
            self.steps.push(next.max(now), a);
            let mut out = std::mem::take(&mut self.sim.out);
            for (ev, arrival) in out.drain(..) {
                self.enqueue(&ev, arrival.max(now));
            }
            self.sim.out = out;
        }
    }

    fn enqueue(&mut self, ev: &Ev, arrival: i64) {
        let slot = self.arrivals.take_slot();
        render::render(ev, self.ids, Mods::NONE, self.arrivals.line_mut(slot));
        self.arrivals.line_mut(slot).push(b'\n');
        if self.noise.chance(self.resend) {
            let again = arrival + self.resend_delay();
            if self.noise.chance(0.9) {
                let copy = self.arrivals.copy_slot(slot);
                self.arrivals
                    .push(again, copy, LineKind::Duplicate { exact: true });
            } else {
                let retry = self.buggy_retry(ev);
                self.arrivals
                    .push(again, retry, LineKind::Duplicate { exact: false });
            }
        }
        let kind = if ev.identify {
            LineKind::Identify {
                occurred_at: ev.at,
                arrival,
            }
        } else {
            LineKind::Touch {
                touchpoint: ev.touchpoint,
                occurred_at: ev.at,
                offline: ev.offline,
                arrival,
            }
        };
        self.arrivals.push(arrival, slot, kind);
    }

    /// Retries come shortly after the original: under a second to a few minutes, rarely hours.
    fn resend_delay(&mut self) -> i64 {
        if self.noise.chance(0.9) {
            self.noise.between(200, 5 * MINUTE)
        } else {
            self.noise.between(5 * MINUTE, 3 * 3600 * SECOND)
        }
    }

    /// The same event id with a different payload: a re-stamped time, another time format,
    /// or an extra attribute.
    fn buggy_retry(&mut self, ev: &Ev) -> u32 {
        let mut ev = ev.clone();
        match self.noise.below(3) {
            0 => {
                ev.ts = Ts::ZMillis;
                ev.at += self.noise.between(1, 5_000);
            }
            1 => {
                ev.ts = if ev.ts == Ts::EpochMs {
                    Ts::ZMillis
                } else {
                    Ts::EpochMs
                }
            }
            _ => ev.attrs |= ATTR_RETRY,
        }
        let slot = self.arrivals.take_slot();
        render::render(&ev, self.ids, Mods::NONE, self.arrivals.line_mut(slot));
        self.arrivals.line_mut(slot).push(b'\n');
        slot
    }
}
