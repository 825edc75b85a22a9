//! Building blocks of journeys: one touch or identify event, and how it reaches the topic —
//! in near real time (online tracking), through the hourly CRM sync (sales activity, stage
//! changes, logged by reps hours or days later), or in batch imports days after the fact
//! (badge scans, field events). `model.rs` and `stages.rs` string these together.

use super::clock::{DAY, HOUR, MINUTE, SECOND, weekday};
use super::model::{GHOST, Sim};
use super::render::{
    ATTR_CITY, ATTR_INDUSTRY, ATTR_REGION, ATTR_SEGMENT, ATTR_TITLE, Campaign, Ev, Extra, Ts,
};

/// Which system produced an event, which decides how its time is written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// Web/product tracking and marketing automation.
    Web,
    /// The CRM (stage changes, sales activity, contracts).
    Crm,
    /// Event-platform and badge-scanner exports.
    Import,
}

/// The default channel of each kind, mirroring `[touchpoints]` of config/spiral.toml.
pub(super) fn default_offline(touchpoint: &str) -> bool {
    matches!(
        touchpoint,
        "trade_show_scan"
            | "field_event"
            | "sales_call"
            | "sales_meeting"
            | "crm_stage_change"
            | "contract_signed"
            | "closed_lost"
            | "business_review"
            | "upsell_proposal"
            | "expansion_declined"
            | "partner_referral"
    )
}

/// Paid ads: source, campaign, cost per click in cents.
const ADS: [(&str, Campaign, (i64, i64)); 6] = [
    (
        "linkedin",
        Campaign::Quarterly("linkedin", "abm"),
        (450, 1800),
    ),
    (
        "linkedin",
        Campaign::Quarterly("linkedin", "retargeting"),
        (300, 1100),
    ),
    ("google", Campaign::Fixed("google-search-brand"), (80, 450)),
    (
        "google",
        Campaign::Fixed("google-search-generic"),
        (150, 950),
    ),
    ("capterra", Campaign::Fixed("capterra-ppc"), (300, 1200)),
    ("bing", Campaign::Fixed("bing-search-brand"), (60, 300)),
];
const ORGANIC: [&str; 7] = [
    "google",
    "direct",
    "linkedin",
    "bing",
    "g2",
    "partner",
    "newsletter",
];

impl Sim {
    /// A fresh touch of `account` with the touchpoint's default channel and an occasional
    /// attribute set; ids, campaign and cost are the caller's.
    pub(super) fn touch(
        &mut self,
        a: u32,
        at: i64,
        touchpoint: &'static str,
        origin: Origin,
    ) -> Ev {
        let acc = self.accounts[a as usize];
        let offline = default_offline(touchpoint);
        let mut ev = Ev {
            seg: acc.seg,
            region: acc.region,
            industry: acc.industry,
            ..Ev::bare(self.fresh_id(), at, Ts::Z, touchpoint, offline)
        };
        self.set_ts(&mut ev, acc.tz, origin);
        if self.rng.chance(0.04) {
            ev.channel = Some(if offline { "offline" } else { "online" });
        }
        if self.rng.chance(0.35) {
            ev.attrs = ATTR_SEGMENT | ATTR_REGION;
            if self.rng.chance(0.3) {
                ev.attrs |= ATTR_INDUSTRY;
            }
            if self.rng.chance(0.04) {
                ev.attrs |= ATTR_CITY;
            }
            if self.rng.chance(0.02) {
                ev.attrs |= ATTR_TITLE;
            }
        }
        ev.extra = match self.rng.below(100) {
            0 | 1 => Extra::NullCampaign,
            2 | 3 => Extra::ExplicitTouchType,
            _ => Extra::None,
        };
        ev
    }

    pub(super) fn identify(&mut self, a: u32, at: i64, origin: Origin) -> Ev {
        let mut ev = self.touch(a, at, "", origin);
        ev.identify = true;
        ev.channel = None;
        ev.attrs = 0;
        ev.extra = Extra::None;
        ev
    }

    /// Picks how `occurred_at` is written; whole-second styles keep the time whole, the others
    /// get a millisecond part (never earlier than `at`, so no event precedes its step; and not
    /// for the run's first event, which is exactly at `start`).
    fn set_ts(&mut self, ev: &mut Ev, tz: i16, origin: Origin) {
        let r = self.rng.below(1000);
        ev.ts = match origin {
            Origin::Web => match r {
                0..600 => Ts::ZMillis,
                600..750 => Ts::Z,
                750..900 => Ts::OffsetMillis(tz),
                900..950 => Ts::Offset(tz),
                950..975 => Ts::ZMicros,
                975..990 => Ts::EpochMs,
                _ => Ts::Lower,
            },
            Origin::Crm => match r {
                0..450 => Ts::EpochMs,
                450..850 => Ts::Z,
                _ => Ts::ZMillis,
            },
            Origin::Import => match r {
                0..500 => Ts::Z,
                500..900 => Ts::Offset(tz),
                _ => Ts::EpochMs,
            },
        };
        if ev.ts == Ts::Offset(0) {
            ev.ts = Ts::Z;
        }
        if ev.at % 1000 != 0 {
            // Only the run's very first event can start off a whole second.
            if !ev.ts.has_millis() {
                ev.ts = Ts::ZMillis;
            }
        } else if ev.ts.has_millis() && ev.at != self.start {
            ev.at += self.rng.below(1000) as i64;
        }
    }

    pub(super) fn emit_realtime(&mut self, ev: Ev) {
        let jitter = match self.rng.below(100) {
            0..70 => self.rng.between(50, 5 * SECOND),
            70..95 => self.rng.between(5 * SECOND, 2 * MINUTE),
            _ => self.rng.between(2 * MINUTE, 30 * MINUTE),
        };
        let arrival = ev.at + jitter;
        self.out.push((ev, arrival));
    }

    /// The hourly CRM sync picks up what was logged `logged_after` the event happened.
    pub(super) fn emit_crm(&mut self, mut ev: Ev, logged_after: i64) {
        if self.rng.chance(0.3) {
            ev.extra = Extra::IngestedBy("crm-sync");
        }
        let logged = ev.at + logged_after;
        let arrival =
            (logged.div_euclid(HOUR) + 1) * HOUR + self.rng.between(30 * SECOND, 6 * MINUTE);
        self.out.push((ev, arrival));
    }

    /// Sales activity logged by a rep: same day mostly, sometimes a week or more later.
    pub(super) fn emit_logged(&mut self, ev: Ev) {
        let delay = match self.rng.weighted(&[40, 30, 20, 10]) {
            0 => self.rng.between(10 * MINUTE, 8 * HOUR),
            1 => self.rng.between(DAY, 3 * DAY),
            2 => self.rng.between(3 * DAY, 7 * DAY),
            _ => self.rng.between(7 * DAY, 10 * DAY),
        };
        self.emit_crm(ev, delay);
    }

    /// A nightly batch import `days` after `day` (a day number) at about 02:00 UTC.
    pub(super) fn emit_batch(&mut self, mut ev: Ev, day: i64, days: i64) {
        ev.extra = Extra::IngestedBy("event-import");
        let arrival = (day + days) * DAY + 2 * HOUR + self.rng.between(0, 15 * MINUTE);
        self.out.push((ev, arrival));
    }

    /// A moment in business hours (08:00–18:00 local, weekdays mostly) at or after `t`.
    pub(super) fn business_time(&mut self, t: i64, tz: i16) -> i64 {
        let off = i64::from(tz) * MINUTE;
        let mut day = (t + off).div_euclid(DAY);
        let wd = weekday(day);
        if wd >= 5 && !self.rng.chance(0.08) {
            day += 7 - wd;
        }
        let local = day * DAY + 8 * HOUR + self.rng.between(0, 10 * 3600) * SECOND;
        let utc = local - off;
        if utc >= t {
            utc
        } else {
            t + self.rng.between(60, 7200) * SECOND
        }
    }

    /// `t` plus `lo..hi` days (skewed short), moved into business hours.
    pub(super) fn later(&mut self, a: u32, t: i64, lo_days: i64, hi_days: i64) -> i64 {
        let gap = self.rng.skewed(lo_days * DAY, hi_days * DAY);
        let tz = self.accounts[a as usize].tz;
        self.business_time(t + gap, tz)
    }

    /// A short pause inside one burst of activity.
    pub(super) fn pause(&mut self, lo: i64, hi: i64) -> i64 {
        self.rng.between(lo / SECOND, hi / SECOND) * SECOND
    }

    /// A web visit by visitor `k` (a contact, or the account's anonymous [`GHOST`]).
    pub(super) fn web_visit(
        &mut self,
        a: u32,
        k: u8,
        at: i64,
        source: &'static str,
        campaign: Campaign,
    ) {
        let mut ev = self.touch(a, at, "web_visit", Origin::Web);
        ev.anon = Some(self.cookie(a, k));
        ev.source = Some(source);
        ev.campaign = campaign;
        if self.rng.chance(0.03) {
            ev.extra = Extra::EmptyAccount;
        }
        self.emit_realtime(ev);
        self.reverse_ip(a, k, at);
        if k != GHOST && self.rng.chance(0.02) {
            self.new_cookie(a, k);
        }
    }

    /// On a cookie's first visit, an ABM tool may place it at its company by IP address: an
    /// identify linking the cookie straight to the account (SPEC §2, `anonymous_id → account_id`).
    fn reverse_ip(&mut self, a: u32, k: u8, at: i64) {
        if self.first_match(a, k) && self.rng.chance(0.4) {
            let t = at + self.pause(SECOND, 10 * MINUTE);
            let mut ev = self.identify(a, t, Origin::Web);
            ev.anon = Some(self.cookie(a, k));
            ev.account = Some(a);
            ev.source = Some("reverse-ip");
            self.emit_realtime(ev);
        }
    }

    /// An ad click and the landing-page visit it causes, with the same cookie.
    pub(super) fn ad_click(&mut self, a: u32, k: u8, at: i64) -> i64 {
        let (source, campaign, (lo, hi)) = self.rng.pick(&ADS);
        let mut ev = self.touch(a, at, "ad_click", Origin::Web);
        ev.anon = Some(self.cookie(a, k));
        ev.source = Some(source);
        ev.campaign = campaign;
        ev.cost_cents = Some(self.rng.between(lo, hi) as u64);
        self.emit_realtime(ev);
        let t = at + self.pause(2 * SECOND, 20 * SECOND);
        self.web_visit(a, k, t, source, campaign);
        t
    }

    pub(super) fn organic_visit(&mut self, a: u32, k: u8, at: i64) {
        let source = self.rng.pick(&ORGANIC);
        self.web_visit(a, k, at, source, Campaign::None);
    }

    /// The cookie of visitor `k` is tied to its contact (a form fill, a login, an email link):
    /// an identify event, sometimes with the account too. A few cookies also turn up on a
    /// contact of another account later (a shared machine): an identity conflict (SPEC §2).
    pub(super) fn identify_cookie(&mut self, a: u32, k: u8, at: i64) {
        if k == GHOST || self.is_identified(a, k) {
            return;
        }
        let mut ev = self.identify(a, at, Origin::Web);
        ev.anon = Some(self.cookie(a, k));
        ev.contact = Some(contact_key(a, k));
        if self.rng.chance(0.6) {
            ev.account = Some(a);
            self.set_known(a, k);
        }
        self.emit_realtime(ev);
        self.set_identified(a, k);
        if self.rng.chance(0.01) {
            let other = self.rng.below(self.accounts.len() as u64) as u32;
            if other != a {
                let later = at + self.rng.between(DAY, 20 * DAY);
                let mut ev = self.identify(other, later, Origin::Web);
                ev.anon = Some(self.cookie(a, k));
                ev.contact = Some(contact_key(other, 0));
                self.emit_realtime(ev);
            }
        }
        self.ensure_known(a, k, at);
    }

    /// Makes sure contact `k`'s link to its account gets published: the CRM sync sends an
    /// identify (contact + account) minutes to days later — so touches carrying only the
    /// contact wait for it. Rarely the contact later shows up under another account too.
    pub(super) fn ensure_known(&mut self, a: u32, k: u8, at: i64) {
        if self.is_known(a, k) {
            return;
        }
        self.set_known(a, k);
        let t = at + self.rng.skewed(10 * MINUTE, 4 * DAY);
        let mut ev = self.identify(a, t, Origin::Crm);
        ev.contact = Some(contact_key(a, k));
        ev.account = Some(a);
        self.emit_crm(ev, 0);
        if self.rng.chance(0.003) {
            let other = self.rng.below(self.accounts.len() as u64) as u32;
            let t = at + self.rng.between(30 * DAY, 90 * DAY);
            let mut ev = self.identify(other, t, Origin::Crm);
            ev.contact = Some(contact_key(a, k));
            ev.account = Some(other);
            self.emit_crm(ev, 0);
        }
    }

    /// A touch by contact `k` that carries its contact id (and the account id if `with_account`).
    pub(super) fn contact_touch(
        &mut self,
        a: u32,
        k: u8,
        at: i64,
        touchpoint: &'static str,
        origin: Origin,
        with_account: bool,
    ) -> Ev {
        let mut ev = self.touch(a, at, touchpoint, origin);
        ev.contact = Some(contact_key(a, k));
        if with_account {
            ev.account = Some(a);
            self.set_known(a, k);
        }
        ev
    }

    /// A CRM lifecycle change with an explicit `stage` (SPEC §3: the `stage` field wins).
    pub(super) fn stage_change(&mut self, a: u32, at: i64, stage: &'static str, logged_after: i64) {
        let mut ev = self.touch(a, at, "crm_stage_change", Origin::Crm);
        ev.account = Some(a);
        ev.stage = Some(stage);
        ev.source = Some("salesforce");
        self.emit_crm(ev, logged_after);
    }
}

pub(super) fn contact_key(a: u32, k: u8) -> u32 {
    a * 8 + u32::from(k)
}
