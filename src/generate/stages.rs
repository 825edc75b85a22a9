//! What each funnel stage looks like as touches: the bursts of events an account produces when
//! it enters (or lingers in) a stage. `model.rs` decides when and which; this file decides
//! how — kinds, ids carried, campaigns, costs, and which path each event takes to the topic.

use super::clock::{DAY, HOUR, MINUTE, SECOND};
use super::model::{ADOPTION, AWARENESS, ENGAGED, GHOST, MQL, SQL, Sim};
use super::render::Campaign;
use super::rng::mix64;
use super::touches::{Origin, contact_key};

/// A show of the fixed calendar: many accounts are scanned at each, and its scans arrive
/// together in one import.
struct Show {
    name: &'static str,
    first_day: i64,
    days: i64,
    /// Days after the show's last day until its badge scans are imported.
    import_after: i64,
    cost_cents: (i64, i64),
}

const SHOWS: [&str; 10] = [
    "saastr",
    "dreamforce",
    "web-summit",
    "b2b-marketing-expo",
    "gartner-symposium",
    "collision",
    "inbound",
    "money2020",
    "hannover-messe",
    "gitex",
];
const EBOOKS: [&str; 4] = [
    "ebook-attribution-guide",
    "whitepaper-b2b-benchmarks",
    "report-state-of-abm",
    "template-roi-calculator",
];
const WEBINARS: [&str; 3] = ["attribution", "pipeline-velocity", "abm-playbook"];
const FIELD: [&str; 3] = ["exec-dinner", "roadshow", "customer-meetup"];

impl Sim {
    pub(super) fn enter_new_business(&mut self, a: u32, stage: u8, now: i64) -> i64 {
        let mut t = now;
        if stage > AWARENESS && self.rng.chance(0.4) {
            t = self.awareness(a, t, 1) + self.pause(MINUTE, 2 * DAY);
        }
        match stage {
            AWARENESS => {
                let n = 1 + self.rng.weighted(&[55, 30, 15]);
                self.awareness(a, t, n)
            }
            ENGAGED => self.engaged(a, t),
            MQL => self.mql(a, t),
            SQL => self.sql(a, t),
            _ => self.opportunity(a, t, true),
        }
    }

    /// `n` awareness touches over minutes to days: ad clicks with their landing visits,
    /// organic visits, newsletter opens, the odd unconfigured kind with an explicit channel.
    pub(super) fn awareness(&mut self, a: u32, mut t: i64, n: usize) -> i64 {
        for i in 0..n {
            if i > 0 {
                t += self.pause(5 * MINUTE, 2 * DAY);
            }
            let k = self.visitor(a);
            match self.rng.weighted(&[30, 44, 23, 3]) {
                0 => t = self.ad_click(a, k, t),
                1 => self.organic_visit(a, k, t),
                2 if k != GHOST => t = self.email_open(a, k, t),
                2 => self.organic_visit(a, k, t),
                _ => self.other_kind(a, k, t),
            }
            if k != GHOST && self.rng.chance(0.1) {
                let at = t + self.pause(5 * SECOND, MINUTE);
                self.identify_cookie(a, k, at);
            }
        }
        t
    }

    pub(super) fn email_open(&mut self, a: u32, k: u8, at: i64) -> i64 {
        let with_account = !self.is_known(a, k) && self.rng.chance(0.6);
        let mut ev = self.contact_touch(a, k, at, "email_open", Origin::Web, with_account);
        ev.campaign = Campaign::Monthly("newsletter");
        ev.source = Some(if a.is_multiple_of(3) {
            "marketo"
        } else {
            "hubspot"
        });
        self.emit_realtime(ev);
        self.ensure_known(a, k, at);
        if self.rng.chance(0.25) {
            // The email link identifies the cookie just before the visit it leads to.
            let t = at + self.pause(10 * SECOND, 30 * MINUTE);
            self.identify_cookie(a, k, t);
            self.web_visit(
                a,
                k,
                t + SECOND,
                "newsletter",
                Campaign::Monthly("newsletter"),
            );
            return t + SECOND;
        }
        at
    }

    /// Kinds that are not in the config: accepted because they name their channel.
    fn other_kind(&mut self, a: u32, k: u8, at: i64) {
        if k == GHOST || self.rng.chance(0.6) {
            let mut ev = self.touch(a, at, "chat_session", Origin::Web);
            ev.anon = Some(self.cookie(a, k));
            ev.channel = Some("online");
            self.emit_realtime(ev);
        } else {
            let mut ev = self.contact_touch(a, k, at, "partner_referral", Origin::Crm, true);
            ev.channel = Some("offline");
            ev.source = Some("partner-portal");
            self.emit_logged(ev);
        }
    }

    fn engaged(&mut self, a: u32, t: i64) -> i64 {
        let k = self.contact(a);
        match self.rng.weighted(&[35, 25, 25, 15]) {
            0 => {
                self.organic_visit(a, k, t);
                let at = t + self.pause(30 * SECOND, 5 * MINUTE);
                let with_contact = self.rng.chance(0.4);
                let mut ev = self.touch(a, at, "content_download", Origin::Web);
                ev.anon = Some(self.cookie(a, k));
                ev.contact = with_contact.then(|| contact_key(a, k));
                ev.campaign = Campaign::Fixed(self.rng.pick(&EBOOKS));
                ev.source = Some("website");
                self.emit_realtime(ev);
                if self.rng.chance(0.9) {
                    self.identify_cookie(a, k, at + 2000);
                }
                self.ensure_known(a, k, at);
                at
            }
            1 => {
                let with_account = self.rng.chance(0.5);
                let mut ev =
                    self.contact_touch(a, k, t, "webinar_attended", Origin::Web, with_account);
                ev.campaign = Campaign::Quarterly("webinar", self.rng.pick(&WEBINARS));
                ev.source = Some(if self.rng.chance(0.5) { "on24" } else { "zoom" });
                if self.rng.chance(0.2) {
                    ev.cost_cents = Some(self.rng.between(2000, 8000) as u64);
                }
                // Attendance lists sync an hour or a few after the webinar.
                let arrival = ev.at + self.rng.between(HOUR, 4 * HOUR);
                self.out.push((ev, arrival));
                self.ensure_known(a, k, t);
                t
            }
            2 => match self.show_near(t) {
                Some(show) => self.badge_scans(a, t, &show),
                None => self.field_event(a, k, t),
            },
            _ => self.field_event(a, k, t),
        }
    }

    fn field_event(&mut self, a: u32, k: u8, t: i64) -> i64 {
        let mut ev = self.contact_touch(a, k, t, "field_event", Origin::Import, true);
        ev.campaign = Campaign::Quarterly("field", self.rng.pick(&FIELD));
        ev.source = Some("sales");
        ev.cost_cents = Some(self.rng.between(15_000, 90_000) as u64);
        let days = self.rng.between(1, 8);
        self.emit_batch(ev, t.div_euclid(DAY), days);
        t
    }

    /// The show running at `t` or the next one within five weeks. Shows are a fixed calendar
    /// (one every four weeks or so), so many accounts are scanned at the same show and its
    /// scans arrive together in one import.
    fn show_near(&self, t: i64) -> Option<Show> {
        let k = ((t.div_euclid(DAY) - self.start_day) / 28).max(0);
        [k, k + 1]
            .into_iter()
            .map(|k| self.show(k))
            .find(|s| (s.first_day + s.days) * DAY > t && s.first_day * DAY - t <= 35 * DAY)
    }

    fn show(&self, k: i64) -> Show {
        let h = mix64(self.show_key ^ k as u64);
        Show {
            name: SHOWS[(h >> 16) as usize % SHOWS.len()],
            first_day: self.start_day + k * 28 + (h % 14) as i64,
            days: 1 + ((h >> 8) % 3) as i64,
            import_after: 1 + ((h >> 24) % 10) as i64,
            cost_cents: (8_000 + ((h >> 32) % 10) as i64 * 2_000, 45_000),
        }
    }

    fn badge_scans(&mut self, a: u32, t: i64, show: &Show) -> i64 {
        let day = show.first_day + self.rng.below(show.days as u64) as i64;
        let mut at = day * DAY + 8 * HOUR + self.rng.between(0, 9 * 3600) * SECOND;
        if at < t {
            at = t + self.pause(MINUTE, 3 * HOUR);
        }
        let scanned = 1 + self.rng.weighted(&[70, 25, 5]);
        for _ in 0..scanned {
            let k = self.contact(a);
            let mut ev = self.contact_touch(a, k, at, "trade_show_scan", Origin::Import, true);
            ev.campaign = Campaign::Yearly(show.name);
            ev.source = Some("badge_scanner");
            ev.cost_cents = Some(self.rng.between(show.cost_cents.0, show.cost_cents.1) as u64);
            self.emit_batch(ev, show.first_day + show.days - 1, show.import_after);
            at += self.pause(MINUTE, HOUR);
        }
        at
    }

    /// A demo request (form fill: the cookie is identified) and usually the CRM's MQL flag,
    /// or the lead-scoring MQL alone.
    fn mql(&mut self, a: u32, t: i64) -> i64 {
        if self.rng.chance(0.4) {
            self.stage_change(a, t, "mql", 0);
            return t;
        }
        let k = self.contact(a);
        self.organic_visit(a, k, t);
        let at = t + self.pause(20 * SECOND, 4 * MINUTE);
        let mut ev = self.touch(a, at, "demo_request", Origin::Web);
        ev.anon = Some(self.cookie(a, k));
        if self.rng.chance(0.5) {
            ev.contact = Some(contact_key(a, k));
        }
        ev.campaign = Campaign::Fixed("demo-request-form");
        ev.source = Some("website");
        self.emit_realtime(ev);
        if self.rng.chance(0.95) {
            self.identify_cookie(a, k, at + 1500);
        }
        self.ensure_known(a, k, at);
        if self.rng.chance(0.65) {
            let after = self.pause(HOUR, 2 * DAY);
            self.stage_change(a, at + after, "mql", 0);
        }
        at
    }

    fn sales_activity(&mut self, a: u32, t: i64, touchpoint: &'static str) {
        let k = self.contact(a);
        let mut ev = self.contact_touch(a, k, t, touchpoint, Origin::Crm, true);
        ev.source = Some("salesforce");
        if self.rng.chance(0.12) {
            ev.channel = Some("online"); // a video call
            ev.offline = false;
        }
        self.emit_logged(ev);
    }

    fn sql(&mut self, a: u32, t: i64) -> i64 {
        self.sales_activity(a, t, "sales_call");
        if self.rng.chance(0.5) {
            let at = t + self.pause(MINUTE, 8 * HOUR);
            self.stage_change(a, at, "sql", 0);
        }
        t
    }

    pub(super) fn opportunity(&mut self, a: u32, t: i64, entering: bool) -> i64 {
        let kind = if entering || self.rng.chance(0.6) {
            "sales_meeting"
        } else {
            "sales_call"
        };
        self.sales_activity(a, t, kind);
        if entering && self.rng.chance(0.6) {
            let at = t + self.pause(MINUTE, DAY);
            self.stage_change(a, at, "opportunity", 0);
        }
        t
    }

    pub(super) fn won(&mut self, a: u32, t: i64) -> i64 {
        let mut ev = self.contact_touch(a, 0, t, "contract_signed", Origin::Crm, true);
        ev.source = Some("docusign");
        ev.revenue = Some(self.rng.between(12, 480) as u64 * 1000);
        self.emit_crm(ev, 0);
        if self.rng.chance(0.2) {
            let at = t + self.pause(MINUTE, HOUR);
            self.stage_change(a, at, "won", 0);
        }
        t
    }

    pub(super) fn lost(&mut self, a: u32, t: i64) {
        if self.rng.chance(0.6) {
            let mut ev = self.touch(a, t, "closed_lost", Origin::Crm);
            ev.account = Some(a);
            ev.source = Some("salesforce");
            self.emit_crm(ev, 0);
        } else {
            self.stage_change(a, t, "lost", 0);
        }
        if self.rng.chance(0.05) {
            // A stage name in neither funnel: a touch with no stage.
            let later = t + self.pause(DAY, 20 * DAY);
            self.stage_change(a, later, "recycled", 0);
        }
    }

    pub(super) fn enter_expansion(&mut self, a: u32, stage: u8, now: i64) -> i64 {
        if stage == ADOPTION && self.rng.chance(0.65) {
            let users = 1 + self.rng.weighted(&[60, 30, 10]);
            let mut t = now;
            for _ in 0..users {
                let k = self.contact(a);
                let mut ev = if self.rng.chance(0.7) {
                    self.contact_touch(a, k, t, "product_signup", Origin::Web, true)
                } else {
                    let mut ev = self.touch(a, t, "product_signup", Origin::Web);
                    ev.anon = Some(self.cookie(a, k));
                    ev.contact = Some(contact_key(a, k));
                    ev
                };
                ev.source = Some("app");
                self.emit_realtime(ev);
                t += self.pause(MINUTE, 3 * DAY);
            }
            return t;
        }
        self.business_review(a, now);
        now
    }

    pub(super) fn business_review(&mut self, a: u32, t: i64) {
        let k = self.contact(a);
        let mut ev = self.contact_touch(a, k, t, "business_review", Origin::Crm, true);
        ev.source = Some("gainsight");
        if self.rng.chance(0.2) {
            ev.channel = Some("online");
            ev.offline = false;
        }
        self.emit_logged(ev);
    }
}
