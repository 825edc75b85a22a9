use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use super::*;

const TWO_DAYS: i64 = 2 * DAY;

/// The touchpoint kinds of config/spiral.toml.
const CONFIGURED: [&str; 18] = [
    "ad_click",
    "web_visit",
    "email_open",
    "content_download",
    "webinar_attended",
    "demo_request",
    "product_signup",
    "trade_show_scan",
    "field_event",
    "sales_call",
    "sales_meeting",
    "crm_stage_change",
    "contract_signed",
    "closed_lost",
    "business_review",
    "upsell_proposal",
    "expansion_order",
    "expansion_declined",
];

const REASONS: [&str; 6] = [
    "oversized",
    "malformed",
    "missing_field",
    "invalid_timestamp",
    "invalid_channel",
    "no_identity",
];

struct Sample {
    opts: GenerateOptions,
    stats: GenerateStats,
    lines: Vec<(Vec<u8>, LineKind)>,
    /// Each line parsed as a JSON object, if it is one (parsed once: it is the slow part).
    objects: Vec<Option<Object>>,
}

type Object = serde_json::Map<String, serde_json::Value>;

impl Sample {
    fn with_json(&self) -> impl Iterator<Item = (&(Vec<u8>, LineKind), Option<&Object>)> {
        self.lines
            .iter()
            .zip(self.objects.iter().map(Option::as_ref))
    }
}

/// 100k lines from 5k accounts (about two years), generated once for all tests.
fn sample() -> &'static Sample {
    static SAMPLE: OnceLock<Sample> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let opts = GenerateOptions {
            seed: 42,
            accounts: 5_000,
            events: 100_000,
            ..GenerateOptions::default()
        };
        let mut lines = Vec::with_capacity(100_000);
        let stats = generate_with(&opts, |line, kind| {
            lines.push((line.to_vec(), kind));
            Ok(())
        })
        .unwrap();
        let objects = lines.iter().map(|(line, _)| json(line)).collect();
        Sample {
            opts,
            stats,
            lines,
            objects,
        }
    })
}

fn bytes(opts: &GenerateOptions) -> Vec<u8> {
    let mut out = Vec::new();
    generate(opts, &mut out).unwrap();
    out
}

fn json(line: &[u8]) -> Option<Object> {
    match serde_json::from_slice(line) {
        Ok(serde_json::Value::Object(map)) => Some(map),
        _ => None,
    }
}

#[test]
fn same_seed_gives_same_bytes_and_another_seed_other_bytes() {
    let opts = GenerateOptions {
        seed: 7,
        accounts: 1_000,
        events: 10_000,
        ..GenerateOptions::default()
    };
    let first = bytes(&opts);
    assert_eq!(first, bytes(&opts));
    let other = bytes(&GenerateOptions { seed: 8, ..opts });
    assert_ne!(first, other);
}

#[test]
fn writes_exactly_the_requested_number_of_lines() {
    for (events, accounts) in [
        (0, 10),
        (1, 1),
        (2, 1),
        (17, 3),
        (1_000, 1),
        (5_000, 50),
        (300, 20_000),
    ] {
        let opts = GenerateOptions {
            events,
            accounts,
            ..GenerateOptions::default()
        };
        let out = bytes(&opts);
        let newlines = out.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(newlines, events, "{events} events from {accounts} accounts");
        assert!(out.is_empty() || out.ends_with(b"\n"));
        let stats = generate(&opts, &mut io::sink()).unwrap();
        assert_eq!(stats.lines, events);
        assert_eq!(
            stats.lines,
            stats.broken + stats.duplicates + stats.identify + stats.touches
        );
    }
}

#[test]
fn every_line_is_utf8_and_ends_with_one_newline() {
    let s = sample();
    assert_eq!(s.lines.len() as u64, s.opts.events);
    for (line, kind) in &s.lines {
        let text = std::str::from_utf8(line).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert!(text.ends_with('\n'), "{text}");
        assert!(!text[..text.len() - 1].contains('\n'), "{text}");
        assert!(text.len() > 2, "{text}");
    }
}

#[test]
fn stats_count_the_kinds_of_lines() {
    let s = sample();
    let mut counted = GenerateStats::default();
    for (_, kind) in &s.lines {
        counted.lines += 1;
        match kind {
            LineKind::Touch { .. } => counted.touches += 1,
            LineKind::Identify { .. } => counted.identify += 1,
            LineKind::Duplicate { .. } => counted.duplicates += 1,
            LineKind::Broken { .. } => counted.broken += 1,
        }
    }
    assert_eq!(counted, s.stats);
}

#[test]
fn broken_lines_cover_every_rejection_reason_at_the_configured_share() {
    let s = sample();
    let share = s.stats.broken as f64 / s.stats.lines as f64;
    assert!((0.008..0.012).contains(&share), "broken share {share}");
    let mut by_reason: HashMap<&str, u64> = HashMap::new();
    for (line, kind) in &s.lines {
        if let LineKind::Broken { reason } = kind {
            *by_reason.entry(reason).or_default() += 1;
            let oversized = line.len() > 65_537;
            assert_eq!(
                oversized,
                *reason == "oversized",
                "{reason}: {} bytes",
                line.len()
            );
        }
    }
    for reason in REASONS {
        assert!(
            by_reason.contains_key(reason),
            "no {reason} line in {by_reason:?}"
        );
    }
    assert!(
        by_reason["oversized"] <= 2,
        "oversized lines should be rare"
    );
}

#[test]
fn broken_lines_break_what_they_claim() {
    for ((line, kind), parsed) in sample().with_json() {
        let LineKind::Broken { reason } = kind else {
            continue;
        };
        let text = std::str::from_utf8(line).unwrap();
        let Some(obj) = parsed else {
            assert_eq!(*reason, "malformed", "{text}");
            continue;
        };
        let str_of = |k: &str| obj.get(k).and_then(|v| v.as_str()).unwrap_or("");
        match *reason {
            "missing_field" => assert!(
                ["event_id", "occurred_at", "touchpoint"]
                    .iter()
                    .any(|k| str_of(k).is_empty() && !obj.get(*k).is_some_and(|v| v.is_number())),
                "{text}"
            ),
            "invalid_channel" => assert!(
                !CONFIGURED.contains(&str_of("touchpoint"))
                    || !["", "online", "offline"].contains(&str_of("channel")),
                "{text}"
            ),
            "no_identity" => {
                let ids = ["account_id", "contact_id", "anonymous_id"]
                    .iter()
                    .filter(|k| !str_of(k).is_empty())
                    .count();
                assert!(
                    ids == 0 || (ids == 1 && str_of("type") == "identify"),
                    "{text}"
                );
            }
            _ => {}
        }
    }
}

#[test]
fn good_lines_are_json_objects_with_unique_event_ids() {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut exact_copies = HashSet::new();
    for (i, ((line, kind), parsed)) in sample().with_json().enumerate() {
        let text = std::str::from_utf8(line).unwrap();
        match kind {
            LineKind::Broken { .. } => {
                if let Some(id) = parsed.and_then(|o| {
                    o.get("event_id")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                }) {
                    assert!(
                        !seen.contains_key(&id),
                        "broken line reuses a good id: {text}"
                    );
                }
            }
            LineKind::Touch { .. } | LineKind::Identify { .. } => {
                let obj = parsed.unwrap_or_else(|| panic!("not an object: {text}"));
                let id = obj["event_id"].as_str().unwrap().to_owned();
                assert_eq!(id.len(), 16, "{text}");
                assert!(seen.insert(id, i).is_none(), "event id reused: {text}");
                let is_identify = obj.get("type").and_then(|v| v.as_str()) == Some("identify");
                assert_eq!(
                    is_identify,
                    matches!(kind, LineKind::Identify { .. }),
                    "{text}"
                );
                if !is_identify {
                    assert!(obj["touchpoint"].is_string(), "{text}");
                }
            }
            LineKind::Duplicate { exact } => {
                let obj = parsed.unwrap_or_else(|| panic!("not an object: {text}"));
                let id = obj["event_id"].as_str().unwrap();
                let first = *seen
                    .get(id)
                    .unwrap_or_else(|| panic!("duplicate before its original: {text}"));
                assert_eq!(*exact, sample().lines[first].0 == *line, "{text}");
                if *exact {
                    exact_copies.insert(id.to_owned());
                }
            }
        }
    }
    assert!(!exact_copies.is_empty());
}

#[test]
fn duplicates_and_identify_events_come_at_their_shares() {
    let s = sample();
    let dup = s.stats.duplicates as f64 / s.stats.lines as f64;
    assert!((0.015..0.025).contains(&dup), "duplicate share {dup}");
    let buggy = s
        .lines
        .iter()
        .filter(|(_, k)| *k == LineKind::Duplicate { exact: false })
        .count();
    assert!(
        buggy > 0 && (buggy as u64) < s.stats.duplicates / 4,
        "{buggy} buggy retries"
    );
    let identify = s.stats.identify as f64 / s.stats.lines as f64;
    assert!((0.05..0.3).contains(&identify), "identify share {identify}");
}

#[test]
fn offline_touches_arrive_late_and_online_ones_nearly_in_order() {
    let mut newest = i64::MIN;
    let (mut offline, mut offline_late, mut online, mut online_late) = (0, 0, 0, 0);
    let mut arrival = i64::MIN;
    for (_, kind) in &sample().lines {
        match *kind {
            LineKind::Touch {
                occurred_at,
                offline: is_offline,
                arrival: a,
                ..
            } => {
                assert!(a >= arrival, "arrival order");
                assert!(a >= occurred_at, "arrives before it happened");
                arrival = a;
                let late = occurred_at < newest.saturating_sub(TWO_DAYS);
                if is_offline {
                    offline += 1;
                    offline_late += u64::from(late);
                } else {
                    online += 1;
                    online_late += u64::from(late);
                }
                newest = newest.max(occurred_at);
            }
            LineKind::Identify {
                occurred_at,
                arrival: a,
            } => {
                assert!(a >= arrival && a >= occurred_at);
                arrival = a;
                newest = newest.max(occurred_at);
            }
            _ => {}
        }
    }
    assert!(
        offline_late * 10 > offline,
        "{offline_late} of {offline} offline touches late"
    );
    assert!(
        online_late * 100 < online,
        "{online_late} of {online} online touches late"
    );
}

#[test]
fn traffic_exercises_every_configured_touchpoint_kind() {
    let mut kinds: HashMap<&str, u64> = HashMap::new();
    for (_, kind) in &sample().lines {
        if let LineKind::Touch { touchpoint, .. } = kind {
            *kinds.entry(touchpoint).or_default() += 1;
        }
    }
    for kind in CONFIGURED {
        assert!(kinds.contains_key(kind), "no {kind} in {kinds:?}");
    }
    // A funnel: many aware, fewer engaged, few won.
    assert!(kinds["web_visit"] > 10 * kinds["content_download"]);
    assert!(kinds["content_download"] > kinds["contract_signed"]);
}

#[test]
fn explicit_stages_lost_and_unconfigured_kinds_appear() {
    let mut stages = HashSet::new();
    let mut unconfigured = HashSet::new();
    for ((_, kind), parsed) in sample().with_json() {
        if let LineKind::Touch { touchpoint, .. } = kind {
            let obj = parsed.unwrap();
            if let Some(stage) = obj.get("stage").and_then(|v| v.as_str()) {
                stages.insert(stage.to_owned());
            }
            if !CONFIGURED.contains(touchpoint) {
                assert!(
                    obj["channel"].is_string(),
                    "unconfigured kind without a channel"
                );
                unconfigured.insert(*touchpoint);
            }
        }
    }
    for stage in ["mql", "sql", "opportunity", "won", "lost"] {
        assert!(stages.contains(stage), "no stage {stage} in {stages:?}");
    }
    assert!(!unconfigured.is_empty());
}

#[test]
fn timestamps_come_in_every_accepted_form_and_start_at_start() {
    let (mut utc, mut offset, mut epoch, mut lower, mut micros) = (0, 0, 0, 0, 0);
    let mut first = i64::MAX;
    for ((_, kind), parsed) in sample().with_json() {
        if let LineKind::Touch { occurred_at, .. } | LineKind::Identify { occurred_at, .. } = *kind
        {
            first = first.min(occurred_at);
            match &parsed.unwrap()["occurred_at"] {
                serde_json::Value::Number(n) => {
                    assert_eq!(n.as_i64(), Some(occurred_at));
                    epoch += 1;
                }
                serde_json::Value::String(t) => {
                    utc += u64::from(t.ends_with('Z'));
                    lower += u64::from(t.ends_with('z'));
                    offset += u64::from(t.ends_with(":00") || t.ends_with(":30"));
                    micros += u64::from(t.len() == "2026-01-05T00:00:00.000000Z".len());
                }
                other => panic!("occurred_at {other}"),
            }
        }
    }
    assert_eq!(first, sample().opts.start);
    for (form, n) in [
        ("utc", utc),
        ("offset", offset),
        ("epoch", epoch),
        ("lower", lower),
        ("micros", micros),
    ] {
        assert!(n > 0, "no {form} timestamps");
    }
}

#[test]
fn zero_shares_give_clean_traffic() {
    let opts = GenerateOptions {
        accounts: 500,
        events: 5_000,
        broken_share: 0.0,
        duplicate_share: 0.0,
        ..GenerateOptions::default()
    };
    let stats = generate(&opts, &mut io::sink()).unwrap();
    assert_eq!((stats.broken, stats.duplicates), (0, 0));
    assert_eq!(stats.touches + stats.identify, 5_000);
}

#[test]
fn noise_shares_do_not_change_the_journeys() {
    let good = |broken_share, duplicate_share| {
        let opts = GenerateOptions {
            accounts: 300,
            events: 3_000,
            broken_share,
            duplicate_share,
            ..GenerateOptions::default()
        };
        let mut lines = Vec::new();
        generate_with(&opts, |line, kind| {
            if matches!(kind, LineKind::Touch { .. } | LineKind::Identify { .. }) {
                lines.push(line.to_vec());
            }
            Ok(())
        })
        .unwrap();
        lines
    };
    let clean = good(0.0, 0.0);
    let noisy = good(0.05, 0.1);
    assert!(noisy.len() < clean.len());
    assert_eq!(noisy[..], clean[..noisy.len()]);
}
