//! Random event streams for the property tests: funnels and limits, events with consistent
//! or contradicting identity, retried copies, a broken line, shuffled.

use proptest::prelude::*;
use serde_json::json;
use spiral::engine::Engine;
use spiral::summary::Summary;
use std::collections::HashMap;

use super::DAY;

pub const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// Lateness, ttl and dedup window far beyond the streams' span: nothing depends on when a
/// message arrives except `late`.
pub const PATIENT: &str = r#"
[pipeline]
allowed_lateness = "10000d"
dedup_window = "10000d"
[identity]
pending_ttl = "10000d"
"#;

/// Small lateness and ttl: outcomes and expiry move while the stream is read.
pub const HASTY: &str = r#"
[pipeline]
allowed_lateness = "2d"
dedup_window = "5d"
[identity]
pending_ttl = "7d"
"#;

pub const FUNNELS: &str = r#"
[touchpoints]
visit = "online"
webinar = "online"
scan = "offline"
call = "offline"
sign = "offline"
nope = "offline"
note = "online"

[[funnel]]
name = "f"
stages = ["a", "b", "c"]
conversion_window = "10d"
journey_timeout = "30d"
lost_touchpoints = ["nope"]
[funnel.conversion_windows]
b = "20d"
[funnel.rules]
visit = "a"
webinar = "a"
scan = "b"
call = "b"
sign = "c"

[[funnel]]
name = "g"
stages = ["x", "y"]
conversion_window = "3d"
journey_timeout = "7d"
[funnel.rules]
sign = "x"
note = "y"
"#;

pub const TOUCHPOINTS: [&str; 7] = ["visit", "webinar", "scan", "call", "sign", "nope", "note"];

/// One random event: which account, which ids it carries, when, and what.
#[derive(Debug, Clone)]
pub struct Spec {
    pub account: usize,
    pub carrier: u8,
    pub day: i64,
    pub jitter: i64,
    pub touchpoint: usize,
    pub identify: bool,
    pub explicit_stage: Option<&'static str>,
}

pub fn spec() -> impl Strategy<Value = Spec> {
    (
        0..4usize,
        0..5u8,
        0..90i64,
        prop_oneof![Just(0i64), Just(1), Just(3_600_000)],
        0..TOUCHPOINTS.len(),
        prop::bool::weighted(0.15),
        prop_oneof![4 => Just(None), 1 => Just(Some("b")), 1 => Just(Some("lost")), 1 => Just(Some("y"))],
    )
        .prop_map(|(account, carrier, day, jitter, touchpoint, identify, explicit_stage)| Spec {
            account,
            carrier,
            day,
            jitter,
            touchpoint,
            identify,
            explicit_stage,
        })
}

/// Messages with consistent identity: contact `c{a}` and cookie `x{a}` always belong to
/// account `acct{a}`, so no link conflicts and no order-dependent resolution.
pub fn messages(specs: &[Spec]) -> Vec<String> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let a = s.account;
            let mut m =
                json!({"event_id": format!("e{i}"), "occurred_at": T0 + s.day * DAY + s.jitter});
            let ids: &[(&str, String)] = &match (s.identify, s.carrier) {
                (true, 0 | 1) => vec![
                    ("anonymous_id", format!("x{a}")),
                    ("contact_id", format!("c{a}")),
                ],
                (true, _) => vec![
                    ("contact_id", format!("c{a}")),
                    ("account_id", format!("acct{a}")),
                ],
                (false, 0) => vec![("account_id", format!("acct{a}"))],
                (false, 1) => vec![("contact_id", format!("c{a}"))],
                (false, 2) => vec![("anonymous_id", format!("x{a}"))],
                (false, 3) => vec![
                    ("contact_id", format!("c{a}")),
                    ("account_id", format!("acct{a}")),
                ],
                (false, _) => vec![
                    ("anonymous_id", format!("x{a}")),
                    ("contact_id", format!("c{a}")),
                ],
            };
            // A few campaigns, so the breakdown by dimension has several values (and `other`).
            if i % 3 != 0 {
                m["campaign"] = format!("camp{}", i % 5).into();
            }
            for (k, v) in ids {
                m[*k] = v.clone().into();
            }
            if s.identify {
                m["type"] = "identify".into();
            } else {
                m["touchpoint"] = TOUCHPOINTS[s.touchpoint].into();
                if let Some(stage) = s.explicit_stage {
                    m["stage"] = stage.into();
                }
            }
            m.to_string()
        })
        .collect()
}

/// Identify events that contradict earlier links: conflicts, and first links that depend on
/// order.
pub fn add_liars(msgs: &mut Vec<String>, liars: &[(usize, usize, i64)]) {
    for (k, (a, b, day)) in liars.iter().enumerate() {
        let (id, other) = if k % 2 == 0 {
            ("contact_id", format!("c{a}"))
        } else {
            ("anonymous_id", format!("x{a}"))
        };
        msgs.push(
            json!({"event_id": format!("liar{k}"), "type": "identify", "occurred_at": T0 + day * DAY,
                id: other, "account_id": format!("acct{b}")})
            .to_string(),
        );
    }
}

/// The messages of `specs` with contradicting links, retried copies (every copy meets the
/// first in the resolver owning its id) and a broken line, shuffled.
pub fn stream(
    specs: &[Spec],
    liars: &[(usize, usize, i64)],
    copies: &[prop::sample::Index],
    seed: u64,
) -> Vec<String> {
    let mut msgs = messages(specs);
    add_liars(&mut msgs, liars);
    for copy in copies {
        msgs.push(msgs[copy.index(msgs.len())].clone());
    }
    let mut msgs = shuffled(&msgs, seed);
    msgs.insert(seed as usize % (msgs.len() + 1), "not json".to_string());
    msgs
}

pub fn without_late(mut s: Summary) -> Summary {
    s.events.late = 0;
    s
}

pub fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut v = items.to_vec();
    let mut state = seed | 1;
    for i in (1..v.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        v.swap(i, (state % (i as u64 + 1)) as usize);
    }
    v
}

/// Stage entries by (funnel, stage, online, label values) summed over `engines`, zeros left
/// out: engines that each own some accounts add up to one engine's breakdown.
pub fn entries_by_labels(engines: &[&Engine]) -> HashMap<(usize, u8, bool, Vec<String>), i64> {
    let mut all: HashMap<_, i64> = HashMap::new();
    for engine in engines {
        for (f, stats) in engine.stats().iter().enumerate() {
            for (&(stage, online, dims), &n) in stats.entered_by_dims.as_ref().expect("dimensions")
            {
                let labels = engine
                    .dimensions()
                    .labels(dims)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                *all.entry((f, stage, online, labels)).or_default() += n;
            }
        }
    }
    all.retain(|_, n| *n != 0);
    all
}
