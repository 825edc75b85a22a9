//! The SPEC rules, one behaviour per test, with events built directly (decoding has its own
//! tests in `event`).

use std::borrow::Cow;

use super::*;
use crate::event::Channel;
use crate::summary::StageSummary;

pub(super) const DAY: Millis = 86_400_000;
pub(super) const T0: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00Z

pub(super) const CONFIG: &str = r#"
[pipeline]
allowed_lateness = "0s"
dedup_window = "30d"

[identity]
pending_ttl = "10d"

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
"#;

fn engine() -> Engine {
    engine_with(CONFIG)
}

pub(super) fn engine_with(text: &str) -> Engine {
    let mut engine = Engine::new(&Config::parse(text, "test.toml").unwrap()).unwrap();
    // Journeys of two touches or more take the cached append path.
    engine.set_long_journey(2);
    engine
}

/// A touch event; the channel is the touchpoint's default from [`CONFIG`].
pub(super) fn touch(id: &str, at: Millis, touchpoint: &str) -> Event<'static> {
    let online = matches!(touchpoint, "visit" | "webinar" | "note");
    Event {
        event_id: Cow::Owned(id.to_string()),
        event_type: EventType::Touch,
        occurred_at: at,
        account_id: None,
        contact_id: None,
        anonymous_id: None,
        touchpoint: Some(Cow::Owned(touchpoint.to_string())),
        channel: Some(if online {
            Channel::Online
        } else {
            Channel::Offline
        }),
        stage: None,
        campaign: None,
        source: None,
        cost: None,
        revenue: None,
        attributes: Vec::new(),
    }
}

pub(super) fn for_account(mut e: Event<'static>, account: &str) -> Event<'static> {
    e.account_id = Some(Cow::Owned(account.to_string()));
    e
}

pub(super) fn acct(id: &str, at: Millis, touchpoint: &str) -> Event<'static> {
    for_account(touch(id, at, touchpoint), "acme")
}

pub(super) fn identify(
    id: &str,
    at: Millis,
    account: Option<&str>,
    contact: Option<&str>,
    anon: Option<&str>,
) -> Event<'static> {
    let mut e = touch(id, at, "visit");
    e.event_type = EventType::Identify;
    e.touchpoint = None;
    e.channel = None;
    e.account_id = account.map(|s| Cow::Owned(s.to_string()));
    e.contact_id = contact.map(|s| Cow::Owned(s.to_string()));
    e.anonymous_id = anon.map(|s| Cow::Owned(s.to_string()));
    e
}

fn run(engine: &mut Engine, events: &[Event<'static>]) -> Summary {
    for e in events {
        engine.apply(e);
    }
    engine.finish();
    check_incremental(engine);
    engine.summary()
}

/// The incremental counters must always equal a recomputation from scratch.
pub(super) fn check_incremental(engine: &mut Engine) {
    let w = engine.watermark.max(Millis::MIN + 1);
    let fresh = engine.recompute_stats(w);
    assert_eq!(
        engine.stats, fresh,
        "incremental counters drifted from a full recomputation"
    );
}

fn stage(summary: &Summary, s: usize) -> &StageSummary {
    &summary.funnels[0].stages[s]
}

/// (entered, converted, dropped, open) of a stage.
fn eco(summary: &Summary, s: usize) -> (i64, i64, i64, i64) {
    let st = stage(summary, s);
    (st.entered, st.converted, st.dropped, st.open)
}

#[test]
fn conversion_exactly_at_the_window_is_converted() {
    let s = run(
        &mut engine(),
        &[acct("e1", T0, "visit"), acct("e2", T0 + 10 * DAY, "scan")],
    );
    assert_eq!(eco(&s, 0), (1, 1, 0, 0));
    assert_eq!(stage(&s, 0).conversion_ms_sum, 10 * DAY);
}

#[test]
fn conversion_a_millisecond_after_the_window_is_dropped() {
    let s = run(
        &mut engine(),
        &[
            acct("e1", T0, "visit"),
            acct("e2", T0 + 10 * DAY + 1, "scan"),
        ],
    );
    assert_eq!(eco(&s, 0), (1, 0, 1, 0));
    assert_eq!(
        eco(&s, 1),
        (1, 0, 0, 1),
        "b entered, still within its 20d window"
    );
}

#[test]
fn per_stage_window_overrides_the_default() {
    let s = run(
        &mut engine(),
        &[acct("e1", T0, "scan"), acct("e2", T0 + 15 * DAY, "sign")],
    );
    assert_eq!(eco(&s, 1), (1, 1, 0, 0), "b has a 20d window");
}

#[test]
fn stage_hopping_fills_earlier_stages() {
    let s = run(&mut engine(), &[acct("e1", T0, "sign")]);
    assert_eq!(eco(&s, 0), (1, 1, 0, 0));
    assert_eq!(eco(&s, 1), (1, 1, 0, 0));
    assert_eq!(stage(&s, 2).entered, 1);
    assert_eq!(stage(&s, 0).conversion_ms_sum, 0);
    assert_eq!(s.funnels[0].journeys_won, 1);
}

#[test]
fn explicit_stage_beats_the_rules() {
    let mut e = acct("e1", T0, "visit");
    e.stage = Some(Cow::Borrowed("b"));
    let s = run(&mut engine(), &[e]);
    assert_eq!(stage(&s, 1).entered, 1);
    // A stage name the funnel does not have falls back to the rule.
    let mut e = acct("e1", T0, "visit");
    e.stage = Some(Cow::Borrowed("qualified"));
    let s = run(&mut engine(), &[e]);
    assert_eq!((stage(&s, 0).entered, stage(&s, 1).entered), (1, 0));
}

#[test]
fn lost_closes_the_journey_and_drops_its_open_stage() {
    let s = run(
        &mut engine(),
        &[
            acct("e1", T0, "visit"),
            acct("e2", T0 + DAY, "nope"),
            acct("e3", T0 + 2 * DAY, "visit"),
        ],
    );
    let f = &s.funnels[0];
    assert_eq!((f.journeys, f.journeys_lost, f.journeys_won), (2, 1, 0));
    assert_eq!(eco(&s, 0), (2, 0, 1, 1), "first journey lost, second open");
}

#[test]
fn stage_lost_is_lost_too() {
    let mut lost = acct("e2", T0 + DAY, "call");
    lost.stage = Some(Cow::Borrowed("lost"));
    let s = run(&mut engine(), &[acct("e1", T0, "visit"), lost]);
    assert_eq!(s.funnels[0].journeys_lost, 1);
    assert_eq!(stage(&s, 1).entered, 0, "a lost event has no stage");
}

#[test]
fn gap_of_exactly_the_timeout_stays_in_the_journey() {
    let s = run(
        &mut engine(),
        &[acct("e1", T0, "note"), acct("e2", T0 + 30 * DAY, "visit")],
    );
    assert_eq!(s.funnels[0].journeys, 1);
}

#[test]
fn gap_past_the_timeout_opens_a_journey_and_drops_the_open_stage() {
    let s = run(
        &mut engine(),
        &[
            acct("e1", T0, "visit"),
            acct("e2", T0 + 30 * DAY + 1, "note"),
        ],
    );
    assert_eq!(s.funnels[0].journeys, 2);
    assert_eq!(eco(&s, 0), (1, 0, 1, 0));
}

#[test]
fn won_journey_is_closed_and_the_next_touch_opens_another() {
    let s = run(
        &mut engine(),
        &[acct("e1", T0, "sign"), acct("e2", T0 + DAY, "visit")],
    );
    let f = &s.funnels[0];
    assert_eq!((f.journeys, f.journeys_won), (2, 1));
    assert_eq!(eco(&s, 0), (2, 1, 0, 1));
}

#[test]
fn later_journey_makes_earlier_open_stages_dropped() {
    // With a watermark far behind, only the existence of the second journey decides.
    let mut ev =
        engine_with(&CONFIG.replace("allowed_lateness = \"0s\"", "allowed_lateness = \"100d\""));
    ev.apply(&acct("e1", T0, "visit"));
    ev.apply(&acct("e2", T0 + 31 * DAY, "note"));
    let s = ev.summary();
    assert_eq!(s.funnels[0].journeys, 2);
    assert_eq!(eco(&s, 0), (1, 0, 1, 0));
    check_incremental(&mut ev);
}

#[test]
fn lost_journey_then_a_new_one() {
    let mut ev = engine();
    let s = run(
        &mut ev,
        &[
            acct("e1", T0, "scan"),
            acct("e2", T0 + DAY, "nope"),
            acct("e3", T0 + 2 * DAY, "scan"),
        ],
    );
    assert_eq!(eco(&s, 0), (2, 2, 0, 0), "hopping converts a");
    assert_eq!(eco(&s, 1), (2, 0, 1, 1));
}

#[test]
fn watermark_passing_the_window_drops_an_open_stage() {
    let mut ev = engine();
    ev.apply(&acct("e1", T0, "visit"));
    assert_eq!(eco(&ev.summary(), 0), (1, 0, 0, 1));
    // Another account's touch moves the watermark (lateness 0) to exactly the window: open.
    ev.apply(&for_account(touch("x1", T0 + 10 * DAY, "note"), "other"));
    assert_eq!(eco(&ev.summary(), 0), (1, 0, 0, 1));
    ev.apply(&for_account(
        touch("x2", T0 + 10 * DAY + 1, "note"),
        "other",
    ));
    assert_eq!(eco(&ev.summary(), 0), (1, 0, 1, 0));
    check_incremental(&mut ev);
}

#[test]
fn watermark_passing_the_timeout_drops_a_stage_with_a_longer_window() {
    let text = CONFIG.replace("conversion_window = \"10d\"", "conversion_window = \"60d\"");
    let mut ev = engine_with(&text);
    ev.apply(&acct("e1", T0, "visit"));
    ev.apply(&for_account(
        touch("x1", T0 + 30 * DAY + 1, "note"),
        "other",
    ));
    assert_eq!(eco(&ev.summary(), 0), (1, 0, 1, 0));
    check_incremental(&mut ev);
}

#[test]
fn late_touch_counts_at_its_event_time_and_converts() {
    let mut ev = engine();
    ev.apply(&acct("e1", T0, "visit"));
    ev.apply(&for_account(touch("x1", T0 + 20 * DAY, "note"), "other"));
    assert_eq!(eco(&ev.summary(), 0), (1, 0, 1, 0));
    // Arrives late, but happened within the window: a late correction to converted.
    assert_eq!(
        ev.apply(&acct("e2", T0 + 5 * DAY, "scan")),
        Applied::Accepted { late: true }
    );
    let s = ev.summary();
    assert_eq!(eco(&s, 0), (1, 1, 0, 0));
    assert_eq!(s.events.late, 1);
    check_incremental(&mut ev);
}

#[test]
fn late_lost_touch_splits_an_existing_journey() {
    let mut ev = engine();
    for e in [
        acct("e1", T0, "visit"),
        acct("e3", T0 + 2 * DAY, "scan"),
        acct("e4", T0 + 3 * DAY, "sign"),
    ] {
        ev.apply(&e);
    }
    ev.apply(&acct("e2", T0 + DAY, "nope"));
    ev.finish();
    check_incremental(&mut ev);
    let s = ev.summary();
    let f = &s.funnels[0];
    assert_eq!((f.journeys, f.journeys_lost, f.journeys_won), (2, 1, 1));
    assert_eq!(eco(&s, 0), (2, 1, 1, 0));
}

#[test]
fn turns_count_channel_changes_up_to_the_entering_touch() {
    // offline → online → offline is two turns.
    let s = run(
        &mut engine(),
        &[
            acct("e1", T0, "call"),
            acct("e2", T0 + DAY, "note"),
            acct("e3", T0 + 2 * DAY, "sign"),
        ],
    );
    // Stage b was entered by the first touch (offline, 0 turns); c by the third, after 2 turns.
    assert_eq!(stage(&s, 1).turns_before_entry.as_array(), [1, 0, 0, 0, 0]);
    assert_eq!(stage(&s, 2).turns_before_entry.as_array(), [0, 0, 1, 0, 0]);
    assert_eq!(
        (
            stage(&s, 2).entered_by_channel.online,
            stage(&s, 2).entered_by_channel.offline
        ),
        (0, 1)
    );
}

#[test]
fn four_or_more_turns_share_a_bucket() {
    let mut events = Vec::new();
    for i in 0..6 {
        events.push(acct(
            &format!("e{i}"),
            T0 + i * DAY,
            if i % 2 == 0 { "note" } else { "call" },
        ));
    }
    events.push(acct("e9", T0 + 7 * DAY, "sign"));
    let s = run(&mut engine(), &events);
    assert_eq!(stage(&s, 2).turns_before_entry.as_array(), [0, 0, 0, 0, 1]);
}

#[test]
fn same_time_touches_are_ordered_by_event_id_bytes() {
    // "b" < "a"? No: bytes order puts "e-a" (lost) before "e-b" (sign), so the journey is lost
    // and the sign opens a second, won journey — whatever the arrival order.
    for order in [[0, 1], [1, 0]] {
        let events = [acct("e-a", T0, "nope"), acct("e-b", T0, "sign")];
        let mut ev = engine();
        let s = run(
            &mut ev,
            &[events[order[0]].clone(), events[order[1]].clone()],
        );
        let f = &s.funnels[0];
        assert_eq!(
            (f.journeys, f.journeys_lost, f.journeys_won),
            (2, 1, 1),
            "order {order:?}"
        );
    }
}

#[test]
fn unstaged_touches_open_journeys_and_count_as_activity() {
    let s = run(
        &mut engine(),
        &[
            acct("e1", T0, "note"),
            acct("e2", T0 + 25 * DAY, "note"),
            acct("e3", T0 + 50 * DAY, "visit"),
        ],
    );
    assert_eq!(s.funnels[0].journeys, 1, "each gap is under the timeout");
    assert_eq!(stage(&s, 0).turns_before_entry.as_array(), [1, 0, 0, 0, 0]);
}

#[test]
fn duplicates_are_counted_and_change_nothing() {
    let mut ev = engine();
    let s = run(
        &mut ev,
        &[
            acct("e1", T0, "visit"),
            acct("e1", T0, "visit"),
            acct("e1", T0 + DAY, "sign"),
        ],
    );
    assert_eq!(
        (s.events.accepted, s.events.duplicates, s.events.received),
        (1, 2, 3)
    );
    assert_eq!(stage(&s, 0).entered, 1);
    assert_eq!(stage(&s, 2).entered, 0);
}

#[test]
fn an_id_is_forgotten_after_the_dedup_window() {
    let mut ev = engine();
    ev.apply(&acct("e1", T0, "visit"));
    ev.apply(&for_account(touch("x1", T0 + 30 * DAY, "note"), "other"));
    assert_eq!(ev.apply(&acct("e1", T0, "visit")), Applied::Duplicate);
    ev.apply(&for_account(
        touch("x2", T0 + 30 * DAY + 1, "note"),
        "other",
    ));
    assert_eq!(
        ev.apply(&acct("e1", T0 + 31 * DAY, "visit")),
        Applied::Accepted { late: false }
    );
}

#[test]
fn anonymous_touches_wait_and_join_through_contact_and_account_links() {
    let mut ev = engine();
    let mut visit = touch("e1", T0, "visit");
    visit.anonymous_id = Some(Cow::Borrowed("cookie"));
    ev.apply(&visit);
    assert_eq!(ev.pending(), 1);
    ev.apply(&identify("i1", T0 + DAY, None, Some("c1"), Some("cookie")));
    assert_eq!(ev.pending(), 1, "the contact has no account yet");
    ev.apply(&identify(
        "i2",
        T0 + 2 * DAY,
        Some("acme"),
        Some("c1"),
        None,
    ));
    assert_eq!(ev.pending(), 0);
    let mut scan = touch("e2", T0 + 3 * DAY, "scan");
    scan.contact_id = Some(Cow::Borrowed("c1"));
    let s = run(&mut ev, &[scan]);
    // The visit joined at its own event time, so a converted 3 days later.
    assert_eq!(eco(&s, 0), (1, 1, 0, 0));
    assert_eq!(stage(&s, 0).conversion_ms_sum, 3 * DAY);
    assert_eq!((s.events.identify, s.events.unresolved), (2, 0));
}

#[test]
fn a_link_that_arrives_after_its_touches_resolves_them() {
    let mut ev = engine();
    let mut call = touch("e1", T0, "call");
    call.contact_id = Some(Cow::Borrowed("c1"));
    ev.apply(&call);
    assert_eq!(ev.pending(), 1);
    // A touch carrying both ids links them and resolves the waiting one.
    let mut visit = touch("e2", T0 + DAY, "visit");
    visit.contact_id = Some(Cow::Borrowed("c1"));
    visit.account_id = Some(Cow::Borrowed("acme"));
    let s = run(&mut ev, &[visit]);
    assert_eq!(ev.pending(), 0);
    assert_eq!(stage(&s, 1).entered, 1);
    assert_eq!(s.funnels[0].journeys, 1);
}

#[test]
fn cookie_touches_wait_for_the_contact_the_cookie_is_linked_to() {
    let mut ev = engine();
    // The first touch links the cookie to c1; the second carries the cookie alone. Neither
    // has an account until c1 gets one.
    let mut first = touch("e1", T0, "visit");
    first.anonymous_id = Some(Cow::Borrowed("cookie"));
    first.contact_id = Some(Cow::Borrowed("c1"));
    let mut second = touch("e2", T0 + DAY, "scan");
    second.anonymous_id = Some(Cow::Borrowed("cookie"));
    ev.apply(&first);
    ev.apply(&second);
    assert_eq!(ev.pending(), 2);
    let s = run(
        &mut ev,
        &[identify("i1", T0 + 2 * DAY, Some("acme"), Some("c1"), None)],
    );
    assert_eq!(ev.pending(), 0);
    assert_eq!(eco(&s, 0), (1, 1, 0, 0));
}

#[test]
fn anonymous_id_linked_directly_to_an_account_resolves() {
    let mut ev = engine();
    let mut visit = touch("e1", T0, "visit");
    visit.anonymous_id = Some(Cow::Borrowed("cookie"));
    ev.apply(&visit);
    let s = run(
        &mut ev,
        &[identify("i1", T0 + DAY, Some("acme"), None, Some("cookie"))],
    );
    assert_eq!(stage(&s, 0).entered, 1);
}

#[test]
fn first_link_wins_and_conflicts_are_counted() {
    let mut ev = engine();
    ev.apply(&identify("i1", T0, Some("acme"), Some("c1"), None));
    ev.apply(&identify("i2", T0, Some("globex"), Some("c1"), None));
    ev.apply(&identify("i3", T0, Some("acme"), Some("c1"), None));
    let mut call = touch("e1", T0 + DAY, "call");
    call.contact_id = Some(Cow::Borrowed("c1"));
    let s = run(&mut ev, &[call]);
    assert_eq!(s.events.identity_conflicts, 1);
    assert_eq!(
        ev.accounts
            .touches(ev.accounts.find(&ev.arena, b"acme").unwrap())
            .len(),
        1
    );
}

#[test]
fn touch_with_its_own_account_ignores_a_conflicting_contact_link() {
    let mut ev = engine();
    ev.apply(&identify("i1", T0, Some("acme"), Some("c1"), None));
    let mut call = for_account(touch("e1", T0 + DAY, "call"), "globex");
    call.contact_id = Some(Cow::Borrowed("c1"));
    let s = run(&mut ev, &[call]);
    assert_eq!(s.events.identity_conflicts, 1);
    assert_eq!(
        ev.accounts
            .touches(ev.accounts.find(&ev.arena, b"globex").unwrap())
            .len(),
        1
    );
}

#[test]
fn waiting_touch_is_unresolved_once_the_watermark_passes_the_ttl() {
    let mut ev = engine();
    let mut visit = touch("e1", T0, "visit");
    visit.anonymous_id = Some(Cow::Borrowed("cookie"));
    ev.apply(&visit);
    ev.apply(&for_account(touch("x1", T0 + 10 * DAY, "note"), "other"));
    assert_eq!(
        (ev.pending(), ev.summary().events.unresolved),
        (1, 0),
        "exactly at the ttl it still waits"
    );
    ev.apply(&for_account(
        touch("x2", T0 + 10 * DAY + 1, "note"),
        "other",
    ));
    assert_eq!((ev.pending(), ev.summary().events.unresolved), (0, 1));
    // A link arriving now finds nothing to resolve.
    let s = run(
        &mut ev,
        &[identify(
            "i1",
            T0 + 11 * DAY,
            Some("acme"),
            None,
            Some("cookie"),
        )],
    );
    assert_eq!(stage(&s, 0).entered, 0);
}

#[test]
fn an_anonymous_id_whose_touches_expired_unlinked_is_forgotten_and_comes_back_new() {
    let mut ev = engine();
    let cookie = |id: &str, cookie: u32, at: Millis| {
        let mut visit = touch(id, at, "visit");
        visit.anonymous_id = Some(Cow::Owned(format!("cookie-{cookie}")));
        visit
    };
    // 3 000 cookies, each with one touch that never resolves: their names fill the arena
    // until they expire, so it is compacted along the way.
    for i in 0..3000 {
        ev.apply(&cookie(&format!("e{i}"), i as u32, T0 + i * 60_000));
    }
    assert_eq!(ev.state_sizes().anonymous_ids, 3000);
    ev.apply(&acct("a1", T0 + 20 * DAY, "note"));
    assert_eq!((ev.pending(), ev.summary().events.unresolved), (0, 3000));
    assert_eq!(
        ev.state_sizes().anonymous_ids,
        0,
        "bare cookies are forgotten"
    );
    // One comes back: it is a new cookie, its touch waits, and a link now resolves it alone.
    ev.apply(&cookie("back", 7, T0 + 21 * DAY));
    assert_eq!(ev.state_sizes().anonymous_ids, 1);
    let s = run(
        &mut ev,
        &[identify(
            "i1",
            T0 + 21 * DAY,
            Some("acme"),
            None,
            Some("cookie-7"),
        )],
    );
    assert_eq!(ev.pending(), 0);
    assert_eq!(s.events.unresolved, 3000);
    let acme = ev.accounts.find(&ev.arena, b"acme").unwrap();
    assert_eq!(
        ev.accounts.touches(acme).len(),
        2,
        "a1 and the returning cookie's touch"
    );
    // Names outlive the compactions: every kind of id still finds its index.
    assert_eq!(ev.accounts.find(&ev.arena, b"acme"), Some(acme));
    assert!(
        ev.arena.heap_bytes() < 3000 * 12,
        "{}",
        ev.arena.heap_bytes()
    );
}

#[test]
fn several_funnels_run_side_by_side() {
    let text = format!(
        "{CONFIG}\n[[funnel]]\nname = \"g\"\nstages = [\"x\", \"y\"]\nconversion_window = \"1d\"\n[funnel.rules]\nsign = \"x\"\nnote = \"y\"\n"
    );
    let mut ev = engine_with(&text);
    let s = run(
        &mut ev,
        &[acct("e1", T0, "sign"), acct("e2", T0 + DAY, "note")],
    );
    assert_eq!(s.funnels.len(), 2);
    assert_eq!(s.funnels[0].journeys_won, 1);
    assert_eq!(s.funnels[1].stages[0].converted, 1);
    assert_eq!(s.funnels[1].journeys_won, 1);
}

#[test]
fn summary_at_an_earlier_watermark_reopens_stages() {
    let mut ev = engine();
    run(
        &mut ev,
        &[
            acct("e1", T0, "visit"),
            for_account(touch("x", T0 + 40 * DAY, "note"), "other"),
        ],
    );
    assert_eq!(eco(&ev.summary(), 0), (1, 0, 1, 0));
    let s = ev.summary_at(T0 + 5 * DAY);
    assert_eq!(eco(&s, 0), (1, 0, 0, 1));
    assert_eq!(
        s.watermark.as_deref(),
        Some(crate::time::format_rfc3339(T0 + 5 * DAY).as_str())
    );
}

#[test]
fn received_adds_up() {
    let mut ev = engine();
    ev.reject(RejectReason::Malformed);
    ev.reject(RejectReason::NoIdentity);
    let s = run(
        &mut ev,
        &[
            acct("e1", T0, "visit"),
            acct("e1", T0, "visit"),
            identify("i", T0, Some("a"), Some("c"), None),
        ],
    );
    let e = &s.events;
    assert_eq!(e.received, e.accepted + e.duplicates + e.rejected.total());
    assert_eq!(
        (
            e.accepted,
            e.identify,
            e.rejected.malformed,
            e.rejected.no_identity
        ),
        (2, 1, 1, 1)
    );
}

#[test]
fn watermark_is_null_before_any_event() {
    let s = engine().summary();
    assert_eq!(s.watermark, None);
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.starts_with("{\"watermark\":null,\"events\":{\"received\":0,\"accepted\":0,\"duplicates\":0,\"identify\":0,\"unresolved\":0,\"identity_conflicts\":0,\"late\":0,\"rejected\":{\"oversized\":0,"), "{json}");
    assert!(
        json.contains("\"turns_before_entry\":{\"0\":0,\"1\":0,\"2\":0,\"3\":0,\"4+\":0}"),
        "{json}"
    );
}

#[test]
fn touch_already_past_the_ttl_when_read_is_given_up_at_once() {
    let mut ev = engine();
    ev.apply(&acct("e1", T0 + 20 * DAY, "visit"));
    let mut call = touch("e2", T0, "scan");
    call.contact_id = Some(Cow::Borrowed("c1"));
    ev.apply(&call);
    assert_eq!((ev.pending(), ev.summary().events.unresolved), (0, 1));
    // A link arriving afterwards finds nothing to resolve.
    let s = run(
        &mut ev,
        &[identify(
            "i1",
            T0 + 20 * DAY,
            Some("acme"),
            Some("c1"),
            None,
        )],
    );
    assert_eq!(stage(&s, 1).entered, 0);
    assert_eq!(s.events.unresolved, 1);
}

#[test]
fn links_of_one_event_apply_together_whatever_the_arrival_order() {
    let known = |id: &str| {
        let mut e = for_account(touch(id, T0, "note"), "a0");
        e.contact_id = Some(Cow::Borrowed("c0"));
        e
    };
    let mut waiting = touch("t2", T0 + DAY, "visit");
    waiting.anonymous_id = Some(Cow::Borrowed("x2"));
    // Carries x2 → c0 (whose account is a0) and x2 → a1 at once: the direct link wins.
    let mut both = for_account(touch("t3", T0 + DAY + 1, "note"), "a1");
    both.anonymous_id = Some(Cow::Borrowed("x2"));
    both.contact_id = Some(Cow::Borrowed("c0"));
    for order in [[0, 1, 2], [0, 2, 1]] {
        let events = [known("t1"), waiting.clone(), both.clone()];
        let mut ev = engine();
        run(&mut ev, &order.map(|i| events[i].clone()));
        let a1 = ev.accounts.find(&ev.arena, b"a1").unwrap();
        assert_eq!(
            ev.accounts.touches(a1).len(),
            2,
            "order {order:?}: the waiting visit joins a1"
        );
        assert_eq!(ev.summary().events.identity_conflicts, 1);
    }
}

#[test]
fn account_view_shows_journeys_in_order_with_outcomes() {
    let mut e = engine();
    // Out of order: the scan arrives after the call; two journeys (the gap exceeds 30 d).
    let events = [
        acct("v1", T0, "visit"),
        acct("c1", T0 + 3 * DAY, "call"),
        acct("s1", T0 + DAY, "scan"),
        acct("v2", T0 + 40 * DAY, "visit"),
    ];
    run(&mut e, &events);
    assert!(e.account("nobody").is_none());
    let view = e.account("acme").expect("acme is known");
    let journeys = &view.funnels[0].journeys;
    assert_eq!(journeys.len(), 2);
    let first = &journeys[0];
    assert_eq!(first.status, "expired", "a later journey exists");
    let ids: Vec<&str> = first.touches.iter().map(|t| t.event_id.as_str()).collect();
    assert_eq!(ids, ["v1", "s1", "c1"], "touches in event-time order");
    assert_eq!(first.touches[1].channel, "offline");
    assert_eq!(first.touches[1].stage.as_deref(), Some("b"));
    assert_eq!(first.turns, 1);
    let stages: Vec<(&str, Option<&str>, &str)> = first
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.outcome, s.entered_by.as_str()))
        .collect();
    assert_eq!(
        stages,
        [("a", Some("converted"), "v1"), ("b", Some("dropped"), "s1")]
    );
    assert_eq!(first.stages[0].conversion_ms, Some(DAY));
    assert_eq!(first.stages[1].turns_before, 1);
    assert_eq!(journeys[1].status, "open");
    assert_eq!(journeys[1].stages[0].outcome, Some("open"));
}

#[test]
fn funnels_past_the_marked_ones_count_like_the_first() {
    // Sixteen copies of the one funnel: the last two have no journey-start marks in their
    // touches (`MARKED_FUNNELS`) and are recomputed from the first touch, and the marks must
    // leave alone the flag that says where a touch's event id is.
    let funnel = &CONFIG[CONFIG.find("[[funnel]]").unwrap()..];
    let mut text = CONFIG[..CONFIG.find("[[funnel]]").unwrap()].to_string();
    for f in 0..16 {
        text += &funnel.replace("name = \"f\"", &format!("name = \"f{f}\""));
    }
    const { assert!(16 > crate::funnel::MARKED_FUNNELS) };
    let mut engine = engine_with(&text);
    // 16-hex-character ids are held in the touches, the others in the store; at equal
    // times their bytes decide the order ("e-a" loses before "ffff…" signs).
    let events = [
        acct("0000000000000001", T0, "visit"),
        acct("e-x", T0 + DAY, "webinar"),
        acct("ffffffffffffffff", T0 + 2 * DAY, "sign"),
        acct("e-a", T0 + 2 * DAY, "nope"),
        acct("00000000000000aa", T0 + 40 * DAY, "visit"),
        acct("e-y", T0 + 41 * DAY, "call"),
        // Late: lands between touches already kept.
        acct("0000000000000abc", T0 + DAY + 1, "scan"),
        acct("e-late", T0 + 40 * DAY + 1, "webinar"),
        // Late, and tied with touches that already start journeys: sorting it reads their
        // ids.
        acct("fffffffffffffff0", T0 + 2 * DAY, "visit"),
        acct("e-b", T0 + 2 * DAY, "visit"),
    ];
    let s = run(&mut engine, &events);
    // Every funnel's journeys hold every touch under its own id.
    let view = engine.account("acme").unwrap();
    let mut expected: Vec<&str> = events.iter().map(|e| e.event_id.as_ref()).collect();
    expected.sort_unstable();
    for funnel in &view.funnels {
        let mut ids: Vec<&str> = funnel
            .journeys
            .iter()
            .flat_map(|j| j.touches.iter())
            .map(|t| t.event_id.as_str())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, expected, "{}", funnel.name);
    }
    let first = &s.funnels[0];
    assert_eq!(
        (first.journeys, first.journeys_lost, first.journeys_won),
        (3, 1, 1)
    );
    for other in &s.funnels[1..] {
        assert_eq!(
            (other.journeys, other.journeys_won, other.journeys_lost),
            (first.journeys, first.journeys_won, first.journeys_lost),
            "{}",
            other.name
        );
        assert_eq!(other.stages, first.stages, "{}", other.name);
    }
}

#[test]
fn accounts_growing_together_keep_their_touches_when_their_pool_is_compacted() {
    // 6 000 accounts get a touch each per round, stopping at 1 to 16 touches: each size
    // class empties at once but for the accounts that stopped in it, so the pool compacts
    // classes, moving blocks under the accounts. The touches and counters must not notice.
    let mut ev = engine();
    let (accounts, rounds) = (6_000usize, 16usize);
    let mut events = Vec::new();
    for round in 0..rounds {
        for a in (0..accounts).filter(|a| a % rounds >= round) {
            let at = T0 + (round * accounts + a) as Millis * 1_000;
            let id = format!("r{round}-a{a}");
            events.push(for_account(touch(&id, at, "visit"), &format!("acct-{a}")));
        }
    }
    let s = run(&mut ev, &events);
    assert_eq!(s.funnels[0].stages[0].entered, accounts as i64);
    let mut touches = 0;
    for a in 0..accounts {
        let account = ev.accounts.find(&ev.arena, format!("acct-{a}").as_bytes());
        let times: Vec<Millis> = ev
            .accounts
            .touches(account.unwrap())
            .iter()
            .map(|t| t.time())
            .collect();
        let expected: Vec<Millis> = (0..=a % rounds)
            .map(|round| T0 + (round * accounts + a) as Millis * 1_000)
            .collect();
        assert_eq!(times, expected, "account {a}");
        touches += times.len();
    }
    // Without compaction the pool holds about five times the touches.
    let bytes = touches * size_of::<Touch>();
    let pool = ev.accounts.pool_bytes();
    assert!(pool < bytes * 3 / 2, "{pool} bytes for {bytes} of touches");
}
