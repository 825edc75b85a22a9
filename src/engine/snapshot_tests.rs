//! Snapshot and restore: a restored engine is indistinguishable from the one that took the
//! snapshot, whatever it goes on to see; a damaged snapshot is an error, never a panic.

use std::borrow::Cow;

use super::tests::{
    CONFIG, DAY, T0, acct, check_incremental, engine_with, for_account, identify, touch,
};
use super::*;

/// [`CONFIG`] with a breakdown by campaign that has room for one named value.
fn config_text() -> String {
    format!("{CONFIG}\n[metrics]\ndimensions = [\"campaign\"]\ntop_n = 1\n")
}

fn config() -> Config {
    Config::parse(&config_text(), "test.toml").unwrap()
}

fn campaign(mut e: Event<'static>, name: &str, cost: f64) -> Event<'static> {
    e.campaign = Some(Cow::Owned(name.to_string()));
    e.cost = Some(cost);
    e
}

fn with_ids(
    mut e: Event<'static>,
    contact: Option<&'static str>,
    anon: Option<&'static str>,
) -> Event<'static> {
    e.contact_id = contact.map(Cow::Borrowed);
    e.anonymous_id = anon.map(Cow::Borrowed);
    e
}

/// A stream that leaves something in every table at some point: waiting touches (resolved
/// through a contact, through a cookie's contact, and given up), a link conflict, duplicates
/// within the dedup window and one forgotten after it, a late touch, long journeys, costs and
/// campaign labels (one past `top_n`).
fn scenario() -> Vec<Event<'static>> {
    vec![
        campaign(acct("e1", T0, "visit"), "spring", 2.5),
        campaign(acct("e2", T0 + DAY, "scan"), "summer", 1.0),
        acct("e1", T0, "visit"),
        with_ids(touch("w1", T0 + DAY, "visit"), None, Some("ck1")),
        with_ids(touch("w2", T0 + 2 * DAY, "call"), Some("c1"), None),
        identify("i1", T0 + 2 * DAY, None, Some("c1"), Some("ck1")),
        with_ids(touch("w3", T0 + 3 * DAY, "webinar"), None, Some("ck1")),
        identify("i2", T0 + 3 * DAY, Some("acme"), Some("c1"), None),
        identify("i3", T0 + 3 * DAY, Some("globex"), Some("c1"), None),
        with_ids(touch("w4", T0 + 4 * DAY, "visit"), None, Some("ck2")),
        campaign(acct("e3", T0 + 5 * DAY, "sign"), "spring", 4.0),
        for_account(touch("x1", T0 + 6 * DAY, "note"), "other"),
        campaign(acct("e0", T0 - DAY, "visit"), "autumn", 0.5),
        for_account(touch("g1", T0 + 7 * DAY, "visit"), "globex"),
        for_account(touch("g2", T0 + 8 * DAY, "call"), "globex"),
        for_account(touch("g4", T0 + 10 * DAY, "webinar"), "globex"),
        for_account(touch("g3", T0 + 9 * DAY, "note"), "globex"),
        with_ids(touch("w5", T0 + 10 * DAY, "scan"), Some("c2"), Some("ck3")),
        for_account(touch("x2", T0 + 20 * DAY, "note"), "other"),
        acct("e1", T0 + 20 * DAY, "visit"),
        for_account(touch("g5", T0 + 21 * DAY, "scan"), "globex"),
        for_account(touch("x3", T0 + 40 * DAY, "note"), "other"),
        acct("e1", T0 + 41 * DAY, "visit"),
        with_ids(touch("w6", T0 + 41 * DAY, "scan"), Some("c9"), None),
        identify("i4", T0 + 42 * DAY, None, Some("c9"), Some("ck9")),
    ]
}

fn snapshot(engine: &Engine) -> Vec<u8> {
    let mut bytes = Vec::new();
    engine.snapshot(&mut bytes);
    bytes
}

/// Restores `engine`'s snapshot, checking that the restored engine saves to the same bytes.
fn round_trip(engine: &Engine, config: &Config) -> Engine {
    let bytes = snapshot(engine);
    let restored = Engine::restore(config, &bytes).expect("a fresh snapshot restores");
    assert_eq!(
        snapshot(&restored),
        bytes,
        "restore then snapshot gives the same bytes"
    );
    restored
}

/// Everything observable about the two engines is equal (heap capacities aside), and so are
/// their snapshots.
fn assert_same(a: &mut Engine, b: &mut Engine, accounts: &[&str]) {
    assert_eq!(a.summary(), b.summary());
    assert_eq!(a.stats(), b.stats());
    assert_eq!(a.counters(), b.counters());
    assert_eq!(a.dimensions(), b.dimensions());
    assert_eq!(a.dimensions().costs(), b.dimensions().costs());
    assert_eq!(a.pending(), b.pending());
    assert_eq!(a.watermark(), b.watermark());
    assert_eq!(
        (a.newest, a.external_watermark, a.accounts.long_journey),
        (b.newest, b.external_watermark, b.accounts.long_journey)
    );
    let (sa, sb) = (a.state_sizes(), b.state_sizes());
    assert_eq!(
        (sa.accounts, sa.touches, sa.pending, sa.contacts),
        (sb.accounts, sb.touches, sb.pending, sb.contacts)
    );
    assert_eq!(
        (sa.anonymous_ids, sa.dedup_ids),
        (sb.anonymous_ids, sb.dedup_ids)
    );
    for account in accounts {
        let view = |e: &mut Engine| serde_json::to_value(e.account(account)).unwrap();
        assert_eq!(view(a), view(b), "account {account}");
    }
    assert!(
        snapshot(a) == snapshot(b),
        "equal state saves to equal bytes"
    );
}

const ACCOUNTS: &[&str] = &["acme", "globex", "other", "nobody"];

#[test]
fn a_restored_engine_goes_on_exactly_like_the_original() {
    let config = config();
    let events = scenario();
    for cut in 0..=events.len() {
        let mut original = engine_with(&config_text());
        original.reject(RejectReason::Malformed);
        for e in &events[..cut] {
            original.apply(e);
        }
        let mut restored = round_trip(&original, &config);
        assert_same(&mut original, &mut restored, ACCOUNTS);
        for e in &events[cut..] {
            let applied = original.apply(e);
            assert_eq!(
                restored.apply(e),
                applied,
                "cut {cut}, event {}",
                e.event_id
            );
            assert_same(&mut original, &mut restored, ACCOUNTS);
        }
        original.finish();
        restored.finish();
        assert_same(&mut original, &mut restored, ACCOUNTS);
        check_incremental(&mut restored);
    }
}

#[test]
fn forgotten_anonymous_ids_and_a_compacted_arena_restore_exactly() {
    // Cookies come and go: most touches expire unlinked (their cookies are forgotten, the
    // arena is compacted, their indexes reused), every seventh cookie identifies.
    let config = config();
    let mut events = Vec::new();
    for i in 0..1200i64 {
        let at = T0 + i * 3_600_000;
        let mut visit = touch(&format!("v{i}"), at, "visit");
        visit.anonymous_id = Some(Cow::Owned(format!("cookie-{}", i % 500)));
        events.push(visit);
        if i % 7 == 0 {
            let cookie = format!("cookie-{}", i % 500);
            events.push(identify(
                &format!("i{i}"),
                at,
                Some("acme"),
                None,
                Some(&cookie),
            ));
        }
    }
    let replayed = |events: &[Event<'static>]| {
        let mut engine = engine_with(&config_text());
        for e in events {
            engine.apply(e);
        }
        engine
    };
    for cut in [150, 420, 700, 1000, 1300] {
        let mut original = replayed(&events[..cut]);
        let mut restored = round_trip(&original, &config);
        for e in &events[cut..cut + 60] {
            assert_eq!(restored.apply(e), original.apply(e));
            assert_same(&mut original, &mut restored, ACCOUNTS);
        }
    }
    let original = replayed(&events);
    let s = original.summary();
    assert!(s.events.unresolved > 500, "{:?}", s.events);
    assert!(
        original.state_sizes().anonymous_ids < 450,
        "{:?}",
        original.state_sizes()
    );
}

#[test]
fn the_scenario_reaches_every_table() {
    // Guards the test above: the states it snapshots hold what it claims they hold.
    let mut engine = engine_with(&config_text());
    let events = scenario();
    let mut seen = (0, 0, 0, 0);
    for e in &events {
        engine.apply(e);
        seen.0 = seen.0.max(engine.pending());
        seen.1 = seen.1.max(engine.accounts.long_count());
        seen.2 = seen.2.max(engine.identity.registered_contacts());
    }
    seen.3 = engine.dedup.len();
    let c = engine.counters().clone();
    assert!(seen.0 >= 3 && seen.1 >= 1 && seen.2 >= 1, "{seen:?}");
    assert!(c.duplicates >= 2 && c.late >= 1, "{c:?}");
    let s = engine.summary();
    assert_eq!(s.events.identity_conflicts, 1);
    assert!(s.events.unresolved >= 1);
    assert_eq!(engine.pending(), 1);
    let labels: Vec<_> = engine
        .dimensions()
        .costs()
        .into_iter()
        .map(|c| c.1)
        .collect();
    assert!(labels.contains(&"other"), "{labels:?}");
}

/// xorshift64: deterministic noise without a dependency.
struct Noise(u64);

impl Noise {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const HASTY: &str = r#"
[pipeline]
allowed_lateness = "2d"
dedup_window = "5d"
[identity]
pending_ttl = "7d"
"#;

/// [`CONFIG`]'s touchpoints and funnel under [`HASTY`]'s pipeline and identity, then `extra`.
fn hasty_config(extra: &str) -> Config {
    let funnel = &CONFIG[CONFIG.find("[touchpoints]").unwrap()..];
    Config::parse(&format!("{HASTY}{funnel}\n{extra}"), "test.toml").unwrap()
}

fn random_event(noise: &mut Noise, n: usize) -> Event<'static> {
    const TOUCHPOINTS: [&str; 7] = ["visit", "webinar", "scan", "call", "sign", "nope", "note"];
    // A few ids are reused, so some events are duplicates and some come back after the
    // dedup window.
    let m = if noise.below(8) == 0 {
        noise.below(n as u64 + 1)
    } else {
        n as u64
    };
    // Half the ids are 16 hex characters, which touches hold themselves; the others are kept
    // in the touch id store.
    let id = if m % 2 == 0 {
        format!("{:016x}", m.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    } else {
        format!("e{m}")
    };
    let at = T0 + noise.below(60) as Millis * DAY + noise.below(3) as Millis * 3_600_000;
    let a = noise.below(6);
    let ids = |account: bool, contact: bool, anon: bool| {
        (
            account.then(|| format!("acct{a}")),
            contact.then(|| format!("c{}", noise_free(a, 1))),
            anon.then(|| format!("x{}", noise_free(a, 2))),
        )
    };
    let (account, contact, anon) = match noise.below(6) {
        0 => ids(true, false, false),
        1 => ids(false, true, false),
        2 => ids(false, false, true),
        3 => ids(true, true, false),
        4 => ids(false, true, true),
        _ => ids(true, false, true),
    };
    let mut e = if noise.below(6) == 0 {
        identify(&id, at, None, None, None)
    } else {
        touch(&id, at, TOUCHPOINTS[noise.below(7) as usize])
    };
    e.account_id = account.map(Cow::Owned);
    e.contact_id = contact.map(Cow::Owned);
    e.anonymous_id = anon.map(Cow::Owned);
    if noise.below(3) > 0 {
        e.campaign = Some(Cow::Owned(format!("camp{}", noise.below(4))));
        e.cost = Some(noise.below(100) as f64 / 8.0);
    }
    e
}

/// Contacts and cookies mostly follow their account, with a few strays that cause conflicts.
fn noise_free(a: u64, salt: u64) -> u64 {
    if a == 5 { (a + salt) % 6 } else { a }
}

#[test]
fn incremental_stats_equal_a_recomputation_so_restore_may_recompute_them() {
    // Restore recomputes the funnel counters instead of saving them: that is only exact if
    // the incremental counters always equal a recomputation at the current watermark, with
    // the watermark moved by events or only from outside, breakdowns and expiry included.
    let config = hasty_config("[metrics]\ndimensions = [\"campaign\"]\ntop_n = 2\n");
    let mut seen = Counters::default();
    let (mut unresolved, mut conflicts) = (0, 0);
    for seed in 1..=12u64 {
        let mut noise = Noise(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let external = seed % 2 == 0;
        let new = || {
            let e = Engine::new(&config).unwrap();
            if external {
                e.with_external_watermark()
            } else {
                e
            }
        };
        let mut original = new();
        original.set_long_journey(1 + seed as usize % 4);
        let mut restored = round_trip(&original, &config);
        for n in 0..300 {
            let e = random_event(&mut noise, n);
            assert_eq!(
                original.apply(&e),
                restored.apply(&e),
                "seed {seed}, event {n}"
            );
            if external && noise.below(10) == 0 {
                let to = T0 + noise.below(70) as Millis * DAY;
                original.advance_watermark(to);
                restored.advance_watermark(to);
            }
            let w = original.watermark;
            let fresh = original.recompute_stats(w);
            assert_eq!(original.stats(), &fresh[..], "seed {seed}, event {n}");
            if n % 25 == 0 {
                restored = round_trip(&restored, &config);
                assert_same(&mut original, &mut restored, &[]);
            }
        }
        original.finish();
        restored.finish();
        let accounts: Vec<String> = (0..6).map(|a| format!("acct{a}")).collect();
        let accounts: Vec<&str> = accounts.iter().map(String::as_str).collect();
        assert_same(&mut original, &mut restored, &accounts);
        check_incremental(&mut original);
        let c = original.counters();
        seen.duplicates += c.duplicates;
        seen.late_corrections += c.late_corrections;
        unresolved += original.identity.unresolved;
        conflicts += original.identity.conflicts;
    }
    // The traffic exercised what it is meant to.
    assert!(seen.duplicates > 0 && seen.late_corrections > 0, "{seen:?}");
    assert!(unresolved > 0 && conflicts > 0, "{unresolved} {conflicts}");
}

fn small_snapshot() -> Vec<u8> {
    let mut engine = engine_with(&config_text());
    for e in &scenario()[..12] {
        engine.apply(e);
    }
    snapshot(&engine)
}

#[test]
fn a_truncated_or_padded_snapshot_is_an_error() {
    let config = config();
    let bytes = small_snapshot();
    for len in 0..bytes.len() {
        match Engine::restore(&config, &bytes[..len]) {
            Err(SnapshotError::Corrupt(_)) => {}
            other => panic!("{len} of {} bytes: {other:?}", bytes.len()),
        }
    }
    let mut padded = bytes.clone();
    padded.push(0);
    let err = Engine::restore(&config, &padded).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::Corrupt(m) if m.contains("after the end")),
        "{err}"
    );
    assert!(Engine::restore(&config, &bytes).is_ok());
}

#[test]
fn another_version_is_refused() {
    let mut bytes = small_snapshot();
    bytes[8..12].copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes());
    let err = Engine::restore(&config(), &bytes).unwrap_err();
    assert_eq!(
        err,
        SnapshotError::Version {
            found: SNAPSHOT_VERSION + 1,
            expected: SNAPSHOT_VERSION
        }
    );
    assert!(
        err.to_string().contains("start without this checkpoint"),
        "{err}"
    );
}

#[test]
fn other_funnels_or_dimensions_are_refused() {
    let bytes = small_snapshot();
    let other_window = config_text().replace("b = \"20d\"", "b = \"21d\"");
    let other_dims = config_text().replace("top_n = 1", "top_n = 2");
    for text in [other_window, other_dims, CONFIG.to_string()] {
        let config = Config::parse(&text, "test.toml").unwrap();
        let err = Engine::restore(&config, &bytes).unwrap_err();
        assert!(matches!(err, SnapshotError::Config(_)), "{err}");
    }
    // Settings the state does not depend on may change.
    let lateness = config_text().replace("allowed_lateness = \"0s\"", "allowed_lateness = \"1h\"");
    Engine::restore(&Config::parse(&lateness, "test.toml").unwrap(), &bytes).unwrap();
}

#[test]
fn a_damaged_snapshot_never_panics() {
    // The checkpoint's CRC catches damage; this checks that whatever gets past it cannot
    // crash or hang the restore, nor the engine it gives.
    let config = config();
    let bytes = small_snapshot();
    let rest = &scenario()[12..];
    let mut restored = 0;
    for i in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[i] ^= flip;
            if let Ok(mut engine) = Engine::restore(&config, &damaged) {
                restored += 1;
                for e in rest {
                    engine.apply(e);
                }
                engine.finish();
                engine.summary();
                for account in ACCOUNTS {
                    engine.account(account);
                }
                snapshot(&engine);
            }
        }
    }
    assert!(
        restored > 0,
        "some damage (a time, a count) is undetectable"
    );
}

#[test]
fn warming_a_batch_changes_nothing() {
    // Warming only reads: an engine warmed before every batch (with the events that follow,
    // and now and then with ones it never applies) ends in the same state, byte for byte, as
    // one that never was. Batches vary in size, some past WARM_BATCH (the events past it are
    // applied without hashes, as the warmed ones are with theirs).
    let config = hasty_config("");
    let mut noise = Noise(0x5eed);
    let events: Vec<_> = (0..2000).map(|n| random_event(&mut noise, n)).collect();
    let strangers: Vec<_> = (0..WARM_BATCH)
        .map(|n| random_event(&mut noise, 5000 + n))
        .collect();
    let mut plain = Engine::new(&config).unwrap();
    let mut warmed = Engine::new(&config).unwrap();
    let mut rest = &events[..];
    while !rest.is_empty() {
        let (batch, after) = rest.split_at((1 + noise.below(23) as usize).min(rest.len()));
        if noise.below(3) == 0 {
            warmed.warm(strangers.iter());
        }
        let mut hashes = warmed.warm(batch.iter());
        for e in batch {
            assert_eq!(warmed.apply_hashed(e, hashes.next()), plain.apply(e));
        }
        rest = after;
    }
    assert_eq!(snapshot(&warmed), snapshot(&plain));
    assert_eq!(warmed.summary(), plain.summary());
}
