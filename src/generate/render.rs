//! One synthetic event and how it is written as a JSON line (field names of SPEC §1).
//!
//! Lines are formatted by hand: it is several times faster than building `serde_json` values,
//! and every string we write is either one of our constants or hex/digits, so nothing needs
//! escaping (the few escapes in attribute values are written out on purpose).

use super::clock::{self, Frac};
use super::digits::{push_dec, push_hex, push_int};
use super::rng::{mix32, mix64};

/// How `occurred_at` is written. Styles without a fraction are only used with whole-second times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ts {
    Z,
    ZMillis,
    ZMicros,
    Offset(i16),
    OffsetMillis(i16),
    /// `2026-03-01t10:00:00.250z`: lowercase separators are valid RFC 3339.
    Lower,
    /// Integer epoch milliseconds, as CRM exports write them.
    EpochMs,
}

impl Ts {
    pub(super) fn has_millis(self) -> bool {
        !matches!(self, Ts::Z | Ts::Offset(_))
    }
}

/// A campaign name; dated ones take their date from the event's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Campaign {
    None,
    Fixed(&'static str),
    /// `{0}-q{quarter}-{1}`, e.g. `linkedin-q1-abm`.
    Quarterly(&'static str, &'static str),
    /// `{0}-{year}-{month}`, e.g. `newsletter-2026-03`.
    Monthly(&'static str),
    /// `{0}-{year}`, e.g. `saastr-2026`.
    Yearly(&'static str),
}

pub(super) const ATTR_SEGMENT: u8 = 1;
pub(super) const ATTR_REGION: u8 = 2;
pub(super) const ATTR_INDUSTRY: u8 = 4;
pub(super) const ATTR_CITY: u8 = 8;
pub(super) const ATTR_TITLE: u8 = 16;
/// Added by a buggy retry: same `event_id`, different payload.
pub(super) const ATTR_RETRY: u8 = 32;

pub(super) const SEGMENTS: [&str; 3] = ["enterprise", "mid_market", "smb"];
pub(super) const REGIONS: [&str; 4] = ["emea", "na", "apac", "latam"];
pub(super) const INDUSTRIES: [&str; 6] = [
    "software",
    "fintech",
    "healthcare",
    "manufacturing",
    "retail",
    "logistics",
];
const CITIES: [[&str; 2]; 4] = [
    ["München", "Zürich"],
    ["New York", "Toronto"],
    ["Singapore", "Tōkyō"],
    ["São Paulo", "Bogotá"],
];
/// Raw JSON string bodies: the escapes are deliberate, decoders must unescape them.
const TITLES: [&str; 3] = [
    r"VP Sales \u2013 EMEA",
    r#"Head of \"Growth\""#,
    r"Director, IT\/Security",
];

/// Top-level fields producers add that Spiral must ignore, or write as `null`/`""`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Extra {
    None,
    /// `"campaign":null` — counts as absent.
    NullCampaign,
    /// `"account_id":""` — counts as absent.
    EmptyAccount,
    /// `"ingested_by":"…"` — an unknown field.
    IngestedBy(&'static str),
    /// `"type":"touch"` written out.
    ExplicitTouchType,
}

#[derive(Clone, Debug)]
pub(super) struct Ev {
    /// Counter behind the event id; see [`Ids::event`].
    pub id: u64,
    pub identify: bool,
    pub at: i64,
    pub ts: Ts,
    pub account: Option<u32>,
    /// Contact key: `account * 8 + index`.
    pub contact: Option<u32>,
    /// Cookie key: `account << 8 | index << 4 | generation`.
    pub anon: Option<u64>,
    pub touchpoint: &'static str,
    /// The effective channel (explicit, else the configured default).
    pub offline: bool,
    pub channel: Option<&'static str>,
    pub stage: Option<&'static str>,
    pub campaign: Campaign,
    pub source: Option<&'static str>,
    pub cost_cents: Option<u64>,
    pub revenue: Option<u64>,
    pub attrs: u8,
    pub seg: u8,
    pub region: u8,
    pub industry: u8,
    pub extra: Extra,
}

impl Ev {
    /// A touch with only its id, time, kind and effective channel: no identities, stage,
    /// campaign, source, cost, revenue, attributes or account firmographics, and nothing
    /// extra. Callers fill in what their event carries.
    pub(super) fn bare(id: u64, at: i64, ts: Ts, touchpoint: &'static str, offline: bool) -> Ev {
        Ev {
            id,
            identify: false,
            at,
            ts,
            account: None,
            contact: None,
            anon: None,
            touchpoint,
            offline,
            channel: None,
            stage: None,
            campaign: Campaign::None,
            source: None,
            cost_cents: None,
            revenue: None,
            attrs: 0,
            seg: 0,
            region: 0,
            industry: 0,
            extra: Extra::None,
        }
    }
}

/// Turns keys and counters into id strings. Each map is a bijection (xor with a seed-derived
/// key, then a bijective mixer), so distinct keys give distinct ids without any lookup table.
#[derive(Clone, Copy)]
pub(super) struct Ids {
    contact_key: u32,
    anon_key: u64,
    event_key: u64,
}

impl Ids {
    pub(super) fn new(seed: u64) -> Ids {
        Ids {
            contact_key: mix64(seed ^ 0xC0A7_AC75) as u32,
            anon_key: mix64(seed ^ 0xA4_04B0),
            event_key: mix64(seed ^ 0xE7E4_7150),
        }
    }

    pub(super) fn event(self, n: u64) -> u64 {
        mix64(n ^ self.event_key)
    }

    pub(super) fn contact(self, key: u32) -> u32 {
        mix32(key ^ self.contact_key)
    }

    pub(super) fn anon(self, key: u64) -> u64 {
        mix64(key ^ self.anon_key)
    }
}

/// Edits applied while rendering, to make broken lines: fields to leave out, and raw
/// `"key":value` pairs appended at the end (a key also written normally is then repeated).
#[derive(Default)]
pub(super) struct Mods {
    pub drop: &'static [&'static str],
    pub add: Vec<(&'static str, String)>,
}

impl Mods {
    pub(super) const NONE: &'static Mods = &Mods {
        drop: &[],
        add: Vec::new(),
    };
}

struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    mods: &'a Mods,
}

impl Obj<'_> {
    /// Starts `"key":` unless the key is dropped; the caller writes the value when true.
    fn key(&mut self, key: &str) -> bool {
        if self.mods.drop.contains(&key) {
            return false;
        }
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        true
    }

    fn str(&mut self, key: &str, value: &str) {
        if self.key(key) {
            self.out.push(b'"');
            self.out.extend_from_slice(value.as_bytes());
            self.out.push(b'"');
        }
    }
}

/// Appends the event as one JSON object (no newline).
pub(super) fn render(ev: &Ev, ids: Ids, mods: &Mods, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut o = Obj {
        out,
        first: true,
        mods,
    };
    if o.key("event_id") {
        o.out.push(b'"');
        push_hex(o.out, ids.event(ev.id), 16);
        o.out.push(b'"');
    }
    if ev.identify {
        o.str("type", "identify");
    } else if ev.extra == Extra::ExplicitTouchType {
        o.str("type", "touch");
    }
    if o.key("occurred_at") {
        write_ts(o.out, ev.at, ev.ts);
    }
    if let Some(a) = ev.account {
        if o.key("account_id") {
            o.out.extend_from_slice(b"\"acct-");
            push_dec(o.out, u64::from(a), 6);
            o.out.push(b'"');
        }
    } else if ev.extra == Extra::EmptyAccount {
        o.str("account_id", "");
    }
    if let Some(c) = ev.contact
        && o.key("contact_id")
    {
        o.out.extend_from_slice(b"\"c-");
        push_hex(o.out, u64::from(ids.contact(c)), 8);
        o.out.push(b'"');
    }
    if let Some(k) = ev.anon
        && o.key("anonymous_id")
    {
        o.out.extend_from_slice(b"\"anon-");
        push_hex(o.out, ids.anon(k), 16);
        o.out.push(b'"');
    }
    if !ev.identify {
        o.str("touchpoint", ev.touchpoint);
    }
    if let Some(ch) = ev.channel {
        o.str("channel", ch);
    }
    if let Some(st) = ev.stage {
        o.str("stage", st);
    }
    write_campaign(&mut o, ev);
    if let Some(src) = ev.source {
        o.str("source", src);
    }
    if let Some(c) = ev.cost_cents
        && o.key("cost")
    {
        push_dec(o.out, c / 100, 1);
        o.out.push(b'.');
        push_dec(o.out, c % 100, 2);
    }
    if let Some(r) = ev.revenue
        && o.key("revenue")
    {
        push_dec(o.out, r, 1);
    }
    if ev.attrs != 0 && o.key("attributes") {
        write_attrs(o.out, ev);
    }
    if let Extra::IngestedBy(by) = ev.extra {
        o.str("ingested_by", by);
    }
    for (key, raw) in &mods.add {
        o.first = false;
        for part in [",\"", key, "\":", raw] {
            o.out.extend_from_slice(part.as_bytes());
        }
    }
    o.out.push(b'}');
}

pub(super) fn write_ts(out: &mut Vec<u8>, at: i64, ts: Ts) {
    let (offset, frac, lower) = match ts {
        Ts::EpochMs => {
            push_int(out, at, 1);
            return;
        }
        Ts::Z => (0, Frac::None, false),
        Ts::ZMillis => (0, Frac::Millis, false),
        Ts::ZMicros => (0, Frac::Micros, false),
        Ts::Offset(o) => (i32::from(o), Frac::None, false),
        Ts::OffsetMillis(o) => (i32::from(o), Frac::Millis, false),
        Ts::Lower => (0, Frac::Millis, true),
    };
    out.push(b'"');
    clock::write_rfc3339(out, at, offset, frac, lower);
    out.push(b'"');
}

fn write_campaign(o: &mut Obj<'_>, ev: &Ev) {
    let (year, quarter) = clock::year_quarter(ev.at);
    match ev.campaign {
        Campaign::None if ev.extra == Extra::NullCampaign => {
            if o.key("campaign") {
                o.out.extend_from_slice(b"null");
            }
        }
        Campaign::None => {}
        Campaign::Fixed(name) => o.str("campaign", name),
        Campaign::Quarterly(pre, post) => {
            if o.key("campaign") {
                for part in ["\"", pre, "-q"] {
                    o.out.extend_from_slice(part.as_bytes());
                }
                push_dec(o.out, u64::from(quarter), 1);
                for part in ["-", post, "\""] {
                    o.out.extend_from_slice(part.as_bytes());
                }
            }
        }
        Campaign::Monthly(pre) => {
            if o.key("campaign") {
                let (_, month, _) = clock::civil_from_days(ev.at.div_euclid(clock::DAY));
                for part in ["\"", pre, "-"] {
                    o.out.extend_from_slice(part.as_bytes());
                }
                push_int(o.out, year, 4);
                o.out.push(b'-');
                push_dec(o.out, u64::from(month), 2);
                o.out.push(b'"');
            }
        }
        Campaign::Yearly(pre) => {
            if o.key("campaign") {
                for part in ["\"", pre, "-"] {
                    o.out.extend_from_slice(part.as_bytes());
                }
                push_int(o.out, year, 4);
                o.out.push(b'"');
            }
        }
    }
}

fn write_attrs(out: &mut Vec<u8>, ev: &Ev) {
    let mut first = true;
    let mut pair = |out: &mut Vec<u8>, k: &str, v: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        for part in ["\"", k, "\":\"", v, "\""] {
            out.extend_from_slice(part.as_bytes());
        }
    };
    out.push(b'{');
    let region = usize::from(ev.region);
    if ev.attrs & ATTR_SEGMENT != 0 {
        pair(out, "segment", SEGMENTS[usize::from(ev.seg)]);
    }
    if ev.attrs & ATTR_REGION != 0 {
        pair(out, "region", REGIONS[region]);
    }
    if ev.attrs & ATTR_INDUSTRY != 0 {
        pair(out, "industry", INDUSTRIES[usize::from(ev.industry)]);
    }
    if ev.attrs & ATTR_CITY != 0 {
        pair(out, "city", CITIES[region][ev.id as usize % 2]);
    }
    if ev.attrs & ATTR_TITLE != 0 {
        pair(out, "title", TITLES[ev.id as usize % TITLES.len()]);
    }
    if ev.attrs & ATTR_RETRY != 0 {
        pair(out, "retry", "1");
    }
    out.push(b'}');
}
