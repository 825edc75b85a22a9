//! The journey model. Each account walks the `new_business` funnel one step (a burst of
//! touches) at a time — advancing, stalling, dropping off into a dormant pause, or being lost —
//! and if it wins, the `expansion` funnel, in cycles, until it churns back to prospect. The
//! driver in `mod.rs` pops steps in time order from a queue, so memory is O(accounts).
//!
//! Shares follow a realistic B2B funnel (config/spiral.toml): over a year at ten events an
//! account, nine in ten accounts show up, a third of those get engaged, one in nine becomes an
//! MQL, one in thirty an opportunity, one in a hundred wins (a few more are lost). Over years,
//! accounts come back for more journeys, and customers expand in cycles.

use super::clock::DAY;
use super::render::Ev;
use super::rng::{Rng, mix64};
use super::touches::Origin;

/// Visitor index of an account's anonymous-only visitor, never tied to a contact (only a
/// reverse-IP match can place its cookie).
pub(super) const GHOST: u8 = 7;

pub(super) const AWARENESS: u8 = 0;
pub(super) const ENGAGED: u8 = 1;
pub(super) const MQL: u8 = 2;
pub(super) const SQL: u8 = 3;
pub(super) const OPPORTUNITY: u8 = 4;

pub(super) const CUSTOMER: u8 = 0;
pub(super) const ADOPTION: u8 = 1;
pub(super) const PROPOSAL: u8 = 2;

/// Per-account state: a few bytes, so 100k accounts stay small.
#[derive(Clone, Copy, Default)]
pub(super) struct Account {
    /// Stage reached in the current funnel (new business, or expansion when `customer`).
    pub stage: u8,
    pub customer: bool,
    /// The next step enters `stage` rather than deciding what comes after it.
    pub fresh: bool,
    pub stalls: u8,
    pub contacts: u8,
    /// Bit k: contact k's link to the account has been published.
    pub known: u8,
    /// Bit k: contact k's current cookie has been identified.
    pub identified: u8,
    /// Bit k: whether a reverse-IP lookup places visitor k's current cookie has been decided.
    pub matched: u8,
    /// Two bits per contact: its current cookie generation (new device, cleared cookies).
    pub gens: u16,
    pub seg: u8,
    pub region: u8,
    pub industry: u8,
    /// Minutes east of UTC.
    pub tz: i16,
}

const TZ: [&[i16]; 4] = [
    &[0, 60, 120],
    &[-300, -360, -480],
    &[480, 540, 330, 600],
    &[-180],
];

pub(super) struct Sim {
    pub rng: Rng,
    pub accounts: Vec<Account>,
    pub out: Vec<(Ev, i64)>,
    next_id: u64,
    pub start: i64,
    pub start_day: i64,
    pub show_key: u64,
}

impl Sim {
    pub(super) fn new(seed: u64, start: i64, accounts: u32) -> Sim {
        let mut rng = Rng::new(seed);
        let accounts = (0..accounts)
            .map(|_| {
                let seg = rng.weighted(&[20, 35, 45]) as u8;
                let region = rng.weighted(&[40, 40, 15, 5]) as u8;
                let contacts = match seg {
                    0 => 2 + rng.below(4),
                    1 => 1 + rng.below(4),
                    _ => 1 + rng.below(2),
                } as u8;
                Account {
                    fresh: true,
                    contacts,
                    seg,
                    region,
                    industry: rng.below(6) as u8,
                    tz: rng.pick(TZ[usize::from(region)]),
                    ..Account::default()
                }
            })
            .collect();
        Sim {
            rng,
            accounts,
            out: Vec::new(),
            next_id: 0,
            start,
            start_day: start.div_euclid(DAY),
            show_key: mix64(seed ^ 0x5405_5405),
        }
    }

    pub(super) fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn acc(&mut self, a: u32) -> &mut Account {
        &mut self.accounts[a as usize]
    }

    pub(super) fn cookie(&self, a: u32, k: u8) -> u64 {
        let generation = if k == GHOST {
            0
        } else {
            (self.accounts[a as usize].gens >> (2 * k)) & 3
        };
        (u64::from(a) << 8) | (u64::from(k) << 4) | u64::from(generation)
    }

    pub(super) fn new_cookie(&mut self, a: u32, k: u8) {
        let acc = self.acc(a);
        let generation = ((acc.gens >> (2 * k)) + 1) & 3;
        acc.gens = (acc.gens & !(3 << (2 * k))) | (generation << (2 * k));
        acc.identified &= !(1 << k);
        acc.matched &= !(1 << k);
    }

    pub(super) fn is_identified(&self, a: u32, k: u8) -> bool {
        self.accounts[a as usize].identified & (1 << k) != 0
    }

    /// True the first time it is asked for visitor `k`'s current cookie.
    pub(super) fn first_match(&mut self, a: u32, k: u8) -> bool {
        let acc = self.acc(a);
        let first = acc.matched & (1 << k) == 0;
        acc.matched |= 1 << k;
        first
    }

    pub(super) fn set_identified(&mut self, a: u32, k: u8) {
        self.acc(a).identified |= 1 << k;
    }

    pub(super) fn is_known(&self, a: u32, k: u8) -> bool {
        self.accounts[a as usize].known & (1 << k) != 0
    }

    pub(super) fn set_known(&mut self, a: u32, k: u8) {
        self.acc(a).known |= 1 << k;
    }

    pub(super) fn contact(&mut self, a: u32) -> u8 {
        let n = self.accounts[a as usize].contacts;
        self.rng.below(u64::from(n)) as u8
    }

    /// A web visitor: mostly the account's champion, then its other people, sometimes its ghost.
    pub(super) fn visitor(&mut self, a: u32) -> u8 {
        match self.rng.below(100) {
            0..8 => GHOST,
            // The champion (contact 0) does most of the research.
            8..55 => 0,
            _ => self.contact(a),
        }
    }

    /// One step of account `a` at `now`; returns the time of its next step. Emitted events go to
    /// `self.out`, all at or after `now`.
    pub(super) fn step(&mut self, a: u32, now: i64) -> i64 {
        let acc = self.accounts[a as usize];
        if acc.fresh {
            self.acc(a).fresh = false;
            let t = if acc.customer {
                self.enter_expansion(a, acc.stage, now)
            } else {
                self.enter_new_business(a, acc.stage, now)
            };
            return self.later(a, t, 2, 30);
        }
        if acc.customer {
            self.expansion_step(a, now)
        } else {
            self.new_business_step(a, now)
        }
    }

    fn new_business_step(&mut self, a: u32, now: i64) -> i64 {
        let stage = self.accounts[a as usize].stage;
        if stage == OPPORTUNITY {
            let stalls = self.accounts[a as usize].stalls;
            let stall_weight = if stalls >= 4 { 0 } else { 35 };
            return match self.rng.weighted(&[20, 28, stall_weight, 15]) {
                0 => {
                    let t = self.won(a, now);
                    *self.acc(a) = Account {
                        customer: true,
                        stage: CUSTOMER,
                        stalls: 0,
                        ..self.accounts[a as usize]
                    };
                    self.later(a, t, 3, 80)
                }
                1 => {
                    self.lost(a, now);
                    self.restart(a, false);
                    if self.rng.chance(0.2) {
                        self.leave(a, now)
                    } else {
                        self.later(a, now, 90, 330)
                    }
                }
                2 => {
                    self.acc(a).stalls += 1;
                    let t = self.opportunity(a, now, false);
                    self.later(a, t, 7, 45)
                }
                _ => self.drop_off(a, now),
            };
        }
        // (advance, stay) in percent; the rest drop off.
        let (advance, stay) = [(10, 48), (17, 40), (35, 28), (45, 25)][usize::from(stage)];
        let r = self.rng.below(100);
        if r < advance {
            self.acc(a).stage = stage + 1;
            let t = self.enter_new_business(a, stage + 1, now);
            self.later(a, t, 3, 45)
        } else if r < advance + stay {
            let t = if stage == AWARENESS || self.rng.chance(0.5) {
                let n = 1 + self.rng.weighted(&[60, 30, 10]);
                self.awareness(a, now, n)
            } else {
                self.enter_new_business(a, stage.min(ENGAGED), now)
            };
            self.later(a, t, 2, 30)
        } else {
            self.drop_off(a, now)
        }
    }

    /// The account goes quiet: it resumes where it was after a long pause (often past the 90d
    /// conversion window), starts over later, or leaves the market for a year or more.
    fn drop_off(&mut self, a: u32, now: i64) -> i64 {
        match self.rng.weighted(&[50, 42, 8]) {
            0 => self.later(a, now, 45, 220),
            1 => {
                self.restart(a, false);
                self.later(a, now, 60, 330)
            }
            _ => self.leave(a, now),
        }
    }

    fn restart(&mut self, a: u32, customer: bool) {
        let acc = self.acc(a);
        acc.customer = customer;
        acc.stage = if customer { ADOPTION } else { AWARENESS };
        acc.fresh = true;
        acc.stalls = 0;
    }

    /// The account leaves the market for a year or more, then comes back as a new prospect (a
    /// new journey: past `journey_timeout`). Nobody leaves for good, so the traffic keeps its
    /// rate however long the run.
    fn leave(&mut self, a: u32, now: i64) -> i64 {
        self.restart(a, false);
        self.later(a, now, 370, 800)
    }

    fn expansion_step(&mut self, a: u32, now: i64) -> i64 {
        let stage = self.accounts[a as usize].stage;
        if self.rng.chance(0.1) {
            let k = self.contact(a);
            self.email_open(a, k, now);
        }
        let r = self.rng.below(100);
        match stage {
            CUSTOMER if r < 85 => {
                self.acc(a).stage = ADOPTION;
                let t = self.enter_expansion(a, ADOPTION, now);
                self.later(a, t, 20, 90)
            }
            CUSTOMER => self.drop_off_customer(a, now),
            ADOPTION if r < 35 => {
                self.acc(a).stage = PROPOSAL;
                let k = self.contact(a);
                let mut ev = self.contact_touch(a, k, now, "upsell_proposal", Origin::Crm, true);
                ev.source = Some("salesforce");
                self.emit_logged(ev);
                self.later(a, now, 7, 60)
            }
            ADOPTION if r < 85 => {
                let t = self.enter_expansion(a, ADOPTION, now);
                self.later(a, t, 20, 90)
            }
            ADOPTION => self.drop_off_customer(a, now),
            _ if r < 40 => {
                let k = self.contact(a);
                let mut ev = self.contact_touch(a, k, now, "expansion_order", Origin::Web, true);
                ev.revenue = Some(self.rng.between(3, 120) as u64 * 1000);
                ev.source = Some("billing");
                self.emit_realtime(ev);
                self.next_cycle(a, now)
            }
            _ if r < 70 => {
                let mut ev = self.touch(a, now, "expansion_declined", Origin::Crm);
                ev.account = Some(a);
                ev.source = Some("salesforce");
                self.emit_crm(ev, 0);
                self.next_cycle(a, now)
            }
            _ => {
                self.business_review(a, now);
                self.later(a, now, 10, 60)
            }
        }
    }

    fn drop_off_customer(&mut self, a: u32, now: i64) -> i64 {
        self.later(a, now, 45, 150)
    }

    /// After an expansion closes: another cycle (a repurchase) months later, or churn back to
    /// a prospect that will need winning again.
    fn next_cycle(&mut self, a: u32, now: i64) -> i64 {
        if self.rng.chance(0.08) {
            self.restart(a, false);
            self.later(a, now, 200, 500)
        } else {
            self.restart(a, true);
            self.later(a, now, 45, 220)
        }
    }
}
