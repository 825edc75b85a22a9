use super::*;
use RejectReason::*;
use proptest::prelude::*;

const MAX: usize = 4096;

fn decoder() -> Decoder {
    Decoder::new(
        MAX,
        [
            ("web_visit".to_string(), Channel::Online),
            ("trade_show_scan".to_string(), Channel::Offline),
        ],
    )
}

fn decode(msg: &str) -> Result<Event<'_>, Rejection> {
    decoder().decode(msg.as_bytes())
}

#[track_caller]
fn rejected(msg: &str) -> RejectReason {
    match decode(msg) {
        Ok(event) => panic!("accepted {msg}: {event:?}"),
        Err(r) => r.reason,
    }
}

/// The accepted event; the message is leaked so tests can pass temporaries.
#[track_caller]
fn accepted(msg: &str) -> Event<'static> {
    let msg: &'static str = Box::leak(msg.to_owned().into_boxed_str());
    decode(msg).unwrap_or_else(|r| panic!("rejected {msg}: {r}"))
}

/// A valid touch with `extra` members appended (which may repeat or override nothing;
/// callers build messages from parts to break exactly one rule).
fn touch(extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    format!(
        r#"{{"event_id":"e1","occurred_at":"2026-03-01T10:00:00Z","touchpoint":"web_visit","account_id":"acme"{sep}{extra}}}"#
    )
}

/// An object from `key: value` parts, for messages missing some of the required fields.
fn obj(parts: &[&str]) -> String {
    format!("{{{}}}", parts.join(","))
}

const ID: &str = r#""event_id":"e1""#;
const AT: &str = r#""occurred_at":"2026-03-01T10:00:00Z""#;
const TP: &str = r#""touchpoint":"web_visit""#;
const ACCT: &str = r#""account_id":"acme""#;

#[test]
fn every_known_field_name_is_recognised_and_nothing_else() {
    for &field in Field::ALL {
        assert_eq!(Field::from_key(field.name()), Some(field));
        let mut near = field.name().to_string();
        near.pop();
        assert_eq!(Field::from_key(&near), None);
        assert_eq!(Field::from_key(&field.name().to_uppercase()), None);
    }
    assert_eq!(Field::ALL.len(), 14);
    for other in ["", "types", "event", "cost ", "attribute", "occurredAt"] {
        assert_eq!(Field::from_key(other), None);
    }
}

// ---- accepted events ----

#[test]
fn full_touch_is_accepted_with_every_field() {
    let msg = r#"{
        "event_id": "evt-1", "type": "touch", "occurred_at": "2026-03-01T18:00:00.250+08:00",
        "account_id": "acme", "contact_id": "c-1", "anonymous_id": "a-1",
        "touchpoint": "trade_show_scan", "channel": "online", "stage": "mql",
        "campaign": "spring", "source": "linkedin", "cost": 12.5, "revenue": 0,
        "attributes": {"segment": "enterprise", "region": "emea"}, "extra": [1, {"x": null}]
    }"#;
    let e = accepted(msg);
    assert_eq!(e.event_id, "evt-1");
    assert_eq!(e.event_type, EventType::Touch);
    assert_eq!(
        e.occurred_at,
        time::parse_rfc3339("2026-03-01T10:00:00.250Z").unwrap()
    );
    assert_eq!(e.account_id.as_deref(), Some("acme"));
    assert_eq!(e.contact_id.as_deref(), Some("c-1"));
    assert_eq!(e.anonymous_id.as_deref(), Some("a-1"));
    assert_eq!(e.touchpoint.as_deref(), Some("trade_show_scan"));
    assert_eq!(
        e.channel,
        Some(Channel::Online),
        "explicit channel wins over default"
    );
    assert_eq!(e.stage.as_deref(), Some("mql"));
    assert_eq!(e.campaign.as_deref(), Some("spring"));
    assert_eq!(e.source.as_deref(), Some("linkedin"));
    assert_eq!(e.cost, Some(12.5));
    assert_eq!(e.revenue, Some(0.0));
    assert_eq!(
        e.attributes,
        vec![
            (Cow::Borrowed("segment"), Cow::Borrowed("enterprise")),
            (Cow::Borrowed("region"), Cow::Borrowed("emea")),
        ]
    );
    assert_eq!(e.id_count(), 3);
}

#[test]
fn minimal_touch_gets_the_default_channel_and_borrows_its_strings() {
    let msg = touch("");
    let e = accepted(&msg);
    assert_eq!(e.event_type, EventType::Touch);
    assert_eq!(e.channel, Some(Channel::Online));
    assert!(matches!(e.event_id, Cow::Borrowed(_)));
    assert!(e.attributes.is_empty());
    assert_eq!((e.cost, e.revenue, e.stage), (None, None, None));
    let offline = touch("").replace("web_visit", "trade_show_scan");
    assert_eq!(accepted(&offline).channel, Some(Channel::Offline));
}

#[test]
fn identify_needs_no_touchpoint_or_channel() {
    let e = accepted(
        r#"{"event_id":"i1","type":"identify","occurred_at":0,"contact_id":"c","anonymous_id":"a"}"#,
    );
    assert_eq!(e.event_type, EventType::Identify);
    assert_eq!((&e.touchpoint, e.channel), (&None, None));
    assert_eq!(e.id_count(), 2);
}

#[test]
fn identify_keeps_a_valid_channel_and_ignores_an_invalid_one() {
    let base = r#""type":"identify","contact_id":"c","account_id":"x""#;
    let ok = obj(&[ID, AT, base, r#""channel":"offline""#]);
    assert_eq!(accepted(&ok).channel, Some(Channel::Offline));
    for bad in [
        r#""channel":"ONLINE""#,
        r#""channel":"""#,
        r#""touchpoint":"nowhere""#,
    ] {
        let msg = obj(&[ID, AT, base, bad]);
        assert_eq!(accepted(&msg).channel, None, "{msg}");
    }
    let empty_tp = obj(&[ID, AT, base, r#""touchpoint":"""#]);
    assert_eq!(accepted(&empty_tp).touchpoint, None);
}

#[test]
fn null_fields_count_as_absent() {
    let e = accepted(&touch(
        r#""type":null,"channel":null,"stage":null,"campaign":null,"source":null,"cost":null,"revenue":null,"attributes":null,"contact_id":null,"anonymous_id":null"#,
    ));
    assert_eq!(e.event_type, EventType::Touch);
    assert_eq!(e.channel, Some(Channel::Online));
    assert_eq!((e.cost, e.revenue), (None, None));
    assert!(e.attributes.is_empty());
    assert_eq!(e.id_count(), 1);
}

#[test]
fn empty_ids_count_as_absent() {
    let e = accepted(&touch(r#""contact_id":"","anonymous_id":"""#));
    assert_eq!((e.contact_id, e.anonymous_id), (None, None));
    let msg = obj(&[ID, AT, TP, r#""account_id":"""#, r#""contact_id":"""#]);
    assert_eq!(rejected(&msg), NoIdentity);
}

#[test]
fn escapes_in_keys_and_values_are_decoded() {
    let msg = obj(&[
        r#""\u0065vent_id":"e\"1\\""#,
        r#""occurred_at":"2026-03-01T10:00:00\u005a""#,
        r#""touch\u0070oint":"web_visit""#,
        r#""account_id":"caf\u00e9 \ud83d\ude00""#,
        r#""attributes":{"re\u0067ion":"\t\/x"}"#,
    ]);
    let e = accepted(&msg);
    assert_eq!(e.event_id, "e\"1\\");
    assert!(matches!(e.event_id, Cow::Owned(_)));
    assert_eq!(e.account_id.as_deref(), Some("café 😀"));
    assert_eq!(e.channel, Some(Channel::Online));
    assert_eq!(e.attributes, vec![("region".into(), "\t/x".into())]);
}

#[test]
fn unicode_strings_pass_through() {
    let e = accepted(&touch(
        r#""campaign":"春のキャンペーン","attributes":{"région":"Île-de-France"}"#,
    ));
    assert_eq!(e.campaign.as_deref(), Some("春のキャンペーン"));
    assert_eq!(e.attributes[0].1, "Île-de-France");
}

#[test]
fn unknown_fields_are_ignored_however_nested() {
    let e = accepted(&touch(
        r#""schema":2,"meta":{"a":{"b":[1,2,{"c":"d"}]},"a2":{"a":1}},"list":[[],{}],"flag":true,"n":null,"big":1e400"#,
    ));
    assert_eq!(e.event_id, "e1");
}

#[test]
fn deeply_nested_unknown_fields_do_not_overflow_the_stack() {
    let depth = 60_000;
    let deep = format!(r#""deep":{}{}"#, "[".repeat(depth), "]".repeat(depth));
    let msg = touch(&deep);
    let d = Decoder::new(1 << 20, [("web_visit".to_string(), Channel::Online)]);
    assert!(d.decode(msg.as_bytes()).is_ok());
    let unbalanced = touch(&format!(r#""deep":{}"#, "[".repeat(depth)));
    assert_eq!(
        d.decode(unbalanced.as_bytes()).unwrap_err().reason,
        Malformed
    );
}

// ---- occurred_at ----

#[test]
fn occurred_at_accepts_epoch_milliseconds() {
    let at =
        |v: &str| accepted(&obj(&[ID, TP, ACCT, &format!(r#""occurred_at":{v}"#)])).occurred_at;
    assert_eq!(at("0"), 0);
    assert_eq!(at("-0"), 0);
    assert_eq!(at("1700000000000"), 1_700_000_000_000);
    assert_eq!(at("253402300799999"), time::MAX_MILLIS);
}

#[test]
fn occurred_at_accepts_rfc3339_variants() {
    let at =
        |v: &str| accepted(&obj(&[ID, TP, ACCT, &format!(r#""occurred_at":"{v}""#)])).occurred_at;
    let base = at("2026-03-01T10:00:00Z");
    assert_eq!(at("2026-03-01t10:00:00z"), base);
    assert_eq!(at("2026-03-01T10:00:00.000Z"), base);
    assert_eq!(
        at("2026-03-01T10:00:00.9999Z"),
        base + 999,
        "truncated, not rounded"
    );
    assert_eq!(at("2026-03-01T12:30:00+02:30"), base);
    assert_eq!(at("2026-03-01T05:00:00-05:00"), base);
    assert_eq!(
        at("2024-02-29T00:00:00Z"),
        time::parse_rfc3339("2024-02-29T00:00:00Z").unwrap()
    );
    assert_eq!(at("1969-12-31T23:59:59.999Z"), -1);
}

#[test]
fn occurred_at_rejects_bad_times() {
    let reason = |v: &str| rejected(&obj(&[ID, TP, ACCT, &format!(r#""occurred_at":{v}"#)]));
    for v in [
        r#""2026-03-01T10:00:00""#,
        r#""2026-03-01 10:00:00Z""#,
        r#""2026-02-30T10:00:00Z""#,
        r#""2023-02-29T10:00:00Z""#,
        r#""2026-03-01T10:00:60Z""#,
        r#""""#,
        r#""1700000000000""#,
        "1.5",
        "1e12",
        "1.0",
        "0.0",
        "-0.0",
        "253402300800000",
        "99999999999999999999",
    ] {
        assert_eq!(reason(v), InvalidTimestamp, "occurred_at {v}");
    }
    for v in ["-1", "-1.5", "1e400", "true", "{}", "[]"] {
        assert_eq!(reason(v), Malformed, "occurred_at {v}");
    }
    // Non-finite means "overflows a double", however it is written.
    assert_eq!(reason(&format!("1{}", "0".repeat(400))), Malformed);
    assert_eq!(reason(&format!("1{}", "0".repeat(299))), InvalidTimestamp);
}

// ---- malformed ----

#[test]
fn oversized_is_checked_first() {
    let d = Decoder::new(10, []);
    assert_eq!(
        d.decode(b"{\"a\":1234}").unwrap_err().reason,
        MissingField,
        "at the limit"
    );
    let r = d.decode(b"{\"a\":12345}").unwrap_err();
    assert_eq!(r.reason, Oversized);
    assert_eq!(
        r.detail,
        "message is 11 bytes, more than max_event_bytes = 10"
    );
    // Oversized beats malformed: not even UTF-8, too large.
    assert_eq!(
        d.decode(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
            .unwrap_err()
            .reason,
        Oversized
    );
    let msg = touch("");
    let exact = Decoder::new(msg.len(), [("web_visit".to_string(), Channel::Online)]);
    assert!(exact.decode(msg.as_bytes()).is_ok());
    let less = Decoder::new(msg.len() - 1, []);
    assert_eq!(less.decode(msg.as_bytes()).unwrap_err().reason, Oversized);
}

#[test]
fn non_json_and_non_objects_are_malformed() {
    for msg in [
        "",
        "   ",
        "null",
        "[]",
        r#""event""#,
        "42",
        "{",
        r#"{"event_id":"e1",}"#,
        r#"{"event_id":'e1'}"#,
        "{} {}",
        "{}x",
        r#"{"event_id":"e1"} ["#,
        "\u{feff}{}",
    ] {
        assert_eq!(rejected(msg), Malformed, "{msg:?}");
    }
    assert_eq!(
        decoder()
            .decode(b"{\"event_id\":\"\xff\"}")
            .unwrap_err()
            .reason,
        Malformed
    );
}

#[test]
fn repeated_keys_are_malformed_anywhere() {
    for extra in [
        r#""event_id":"e2""#,
        r#""account_id":null"#,
        r#""x":1,"x":2"#,
        r#""x":1,"\u0078":2"#,
        r#""\u0065vent_id":"e1""#,
        r#""attributes":{"a":"1","a":"2"}"#,
        r#""attributes":{"a":"1","\u0061":"2"}"#,
        r#""attributes":{},"attributes":{}"#,
        r#""meta":{"a":1,"a":1}"#,
        r#""meta":[{"b":{"c":1,"d":2,"c":3}}]"#,
    ] {
        assert_eq!(rejected(&touch(extra)), Malformed, "{extra}");
    }
    let r = decode(&touch(r#""cost":1,"cost":2"#)).unwrap_err();
    assert_eq!(r.detail, r#"key "cost" repeated"#);
    let r = decode(&touch(r#""x":1,"x":2"#)).unwrap_err();
    assert_eq!(r.detail, r#"key "x" repeated"#);
}

#[test]
fn many_attributes_and_unknown_fields_are_checked_for_repeats() {
    let attrs: Vec<String> = (0..50).map(|i| format!(r#""k{i}":"v""#)).collect();
    let unknown: Vec<String> = (0..50).map(|i| format!(r#""u{i}":{i}"#)).collect();
    let ok = touch(&format!(
        r#""attributes":{{{}}},{}"#,
        attrs.join(","),
        unknown.join(",")
    ));
    assert_eq!(accepted(&ok).attributes.len(), 50);
    let dup_attr = touch(&format!(
        r#""attributes":{{{},"k42":"w"}}"#,
        attrs.join(",")
    ));
    assert_eq!(rejected(&dup_attr), Malformed);
    let dup_unknown = touch(&format!(r#"{},"u3":true"#, unknown.join(",")));
    assert_eq!(rejected(&dup_unknown), Malformed);
}

#[test]
fn known_fields_of_the_wrong_type_are_malformed() {
    let cases: &[(&str, &[&str])] = &[
        ("event_id", &["1", "true", "{}", "[]"]),
        ("type", &["1", "false", "{}", "[\"touch\"]"]),
        ("occurred_at", &["true", "{}", "[]"]),
        ("account_id", &["1", "true", "{}"]),
        ("contact_id", &["1", "[]"]),
        ("anonymous_id", &["0", "{}"]),
        ("touchpoint", &["1", "[\"web_visit\"]"]),
        ("channel", &["1", "true", "{}"]),
        ("stage", &["1", "[]"]),
        ("campaign", &["1", "{}"]),
        ("source", &["1", "false"]),
        ("cost", &["\"1\"", "true", "{}", "[]"]),
        ("revenue", &["\"1\"", "[1]"]),
        (
            "attributes",
            &[
                "\"a\"",
                "1",
                "[]",
                "true",
                r#"{"a":null}"#,
                r#"{"a":1}"#,
                r#"{"a":true}"#,
                r#"{"a":{}}"#,
                r#"{"a":["x"]}"#,
            ],
        ),
    ];
    for (field, values) in cases {
        for value in *values {
            // The base touch without that field, plus the field with a wrong value.
            let own = format!(r#""{field}":{value}"#);
            let mut parts: Vec<&str> = [ID, AT, TP, ACCT]
                .into_iter()
                .filter(|p| !p.starts_with(&format!(r#""{field}""#)))
                .collect();
            parts.push(&own);
            let msg = obj(&parts);
            let r = decode(&msg).unwrap_err();
            assert_eq!(r.reason, Malformed, "{msg}");
        }
    }
    let r = decode(&touch(r#""cost":"12""#)).unwrap_err();
    assert_eq!(r.detail, "cost: not a number");
    let r = decode(&touch(r#""attributes":{"a":null}"#)).unwrap_err();
    assert_eq!(r.detail, "attributes: every value must be a string");
}

#[test]
fn event_id_must_be_1_to_256_bytes() {
    let id = |v: &str| format!(r#"{{"event_id":"{v}",{AT},{TP},{ACCT}}}"#);
    assert_eq!(rejected(&id("")), Malformed);
    assert_eq!(accepted(&id(&"x".repeat(256))).event_id.len(), 256);
    assert_eq!(rejected(&id(&"x".repeat(257))), Malformed);
    // Bytes after unescaping: each \u00e9 is 2 bytes of UTF-8, 6 of JSON.
    assert_eq!(accepted(&id(&"\\u00e9".repeat(128))).event_id.len(), 256);
    assert_eq!(
        rejected(&id(&format!("{}x", "\\u00e9".repeat(128)))),
        Malformed
    );
    assert_eq!(accepted(&id(&"é".repeat(128))).event_id.len(), 256);
    assert_eq!(rejected(&id(&"é".repeat(129))), Malformed);
    let r = decode(&id(&"x".repeat(257))).unwrap_err();
    assert_eq!(r.detail, "event_id: longer than 256 bytes");
}

#[test]
fn ids_may_be_at_most_256_bytes() {
    for field in ["account_id", "contact_id", "anonymous_id"] {
        let msg = |n: usize| obj(&[ID, AT, TP, &format!(r#""{field}":"{}""#, "a".repeat(n))]);
        assert!(decode(&msg(256)).is_ok(), "{field}");
        let r = decode(&msg(257)).unwrap_err();
        assert_eq!(r.reason, Malformed, "{field}");
        assert_eq!(r.detail, format!("{field}: longer than 256 bytes"));
    }
}

#[test]
fn type_must_be_touch_or_identify() {
    for t in ["Touch", "", "IDENTIFY", "track", " touch"] {
        let msg = touch(&format!(r#""type":"{t}""#));
        assert_eq!(rejected(&msg), Malformed, "{t:?}");
    }
    assert_eq!(
        accepted(&touch(r#""type":"touch""#)).event_type,
        EventType::Touch
    );
}

#[test]
fn cost_and_revenue_must_be_finite_and_not_negative() {
    for field in ["cost", "revenue"] {
        for v in ["-1", "-0.5", "-1e-400", "1e400", "-1e400"] {
            let msg = touch(&format!(r#""{field}":{v}"#));
            assert_eq!(rejected(&msg), Malformed, "{field} {v}");
        }
        for (v, want) in [
            ("0", 0.0),
            ("-0", 0.0),
            ("-0.0e3", 0.0),
            ("1e3", 1000.0),
            ("0.1", 0.1),
        ] {
            let msg = touch(&format!(r#""{field}":{v}"#));
            let e = accepted(&msg);
            let got = if field == "cost" { e.cost } else { e.revenue };
            assert_eq!(got, Some(want), "{field} {v}");
            assert!(
                got.unwrap().is_sign_positive(),
                "{field} {v}: -0 becomes +0"
            );
        }
    }
}

// ---- missing_field ----

#[test]
fn required_fields_must_be_present() {
    assert_eq!(rejected(&obj(&[AT, TP, ACCT])), MissingField);
    assert_eq!(
        rejected(&obj(&[r#""event_id":null"#, AT, TP, ACCT])),
        MissingField
    );
    assert_eq!(rejected(&obj(&[ID, TP, ACCT])), MissingField);
    assert_eq!(
        rejected(&obj(&[ID, r#""occurred_at":null"#, TP, ACCT])),
        MissingField
    );
    assert_eq!(rejected(&obj(&[ID, AT, ACCT])), MissingField);
    assert_eq!(
        rejected(&obj(&[ID, AT, r#""touchpoint":null"#, ACCT])),
        MissingField
    );
    assert_eq!(
        rejected(&obj(&[ID, AT, r#""touchpoint":"""#, ACCT])),
        MissingField
    );
    assert_eq!(
        rejected(&obj(&[ID, AT, r#""type":"touch""#, ACCT])),
        MissingField
    );
    assert_eq!(
        rejected(&obj(&[ID, AT, r#""type":null"#, ACCT])),
        MissingField
    );
    assert_eq!(rejected("{}"), MissingField);
    let r = decode(&obj(&[AT, TP, ACCT])).unwrap_err();
    assert_eq!(r.detail, "event_id: missing");
}

// ---- invalid_channel ----

#[test]
fn touch_channels_must_be_online_or_offline() {
    for c in ["ONLINE", "Offline", "", "web", " online"] {
        let msg = touch(&format!(r#""channel":"{c}""#));
        assert_eq!(rejected(&msg), InvalidChannel, "{c:?}");
    }
    assert_eq!(
        accepted(&touch(r#""channel":"offline""#)).channel,
        Some(Channel::Offline)
    );
}

#[test]
fn touch_without_channel_needs_a_configured_default() {
    let msg = obj(&[ID, AT, ACCT, r#""touchpoint":"webinar""#]);
    let r = decode(&msg).unwrap_err();
    assert_eq!(r.reason, InvalidChannel);
    assert_eq!(
        r.detail,
        r#"channel: none given, and none configured for touchpoint "webinar""#
    );
    let explicit = obj(&[
        ID,
        AT,
        ACCT,
        r#""touchpoint":"webinar""#,
        r#""channel":"online""#,
    ]);
    assert_eq!(accepted(&explicit).channel, Some(Channel::Online));
}

// ---- no_identity ----

#[test]
fn touches_need_one_id_and_identifies_two() {
    assert_eq!(rejected(&obj(&[ID, AT, TP])), NoIdentity);
    for id in ["account_id", "contact_id", "anonymous_id"] {
        let msg = obj(&[ID, AT, TP, &format!(r#""{id}":"x""#)]);
        assert_eq!(accepted(&msg).id_count(), 1);
        let identify = obj(&[ID, AT, r#""type":"identify""#, &format!(r#""{id}":"x""#)]);
        assert_eq!(rejected(&identify), NoIdentity);
    }
    let no_ids = obj(&[ID, AT, r#""type":"identify""#]);
    assert_eq!(rejected(&no_ids), NoIdentity);
    let empty = obj(&[ID, AT, r#""type":"identify""#, ACCT, r#""contact_id":"""#]);
    assert_eq!(rejected(&empty), NoIdentity);
}

// ---- precedence between adjacent reasons ----

#[test]
fn oversized_beats_malformed() {
    let d = Decoder::new(5, []);
    assert_eq!(d.decode(b"[1,2,3]").unwrap_err().reason, Oversized);
}

#[test]
fn malformed_beats_missing_field() {
    // A wrong-typed known field and no event_id: malformed, wherever it sits.
    assert_eq!(rejected(&obj(&[AT, TP, ACCT, r#""cost":"x""#])), Malformed);
    assert_eq!(rejected(&obj(&[r#""cost":"x""#, AT, TP, ACCT])), Malformed);
    // A JSON error after everything else, with fields missing.
    assert_eq!(rejected(r#"{"touchpoint":"web_visit","#), Malformed);
    // A repeat deep inside an unknown field.
    assert_eq!(
        rejected(&obj(&[AT, r#""m":{"a":[{"k":1,"k":2}]}"#])),
        Malformed
    );
    // An over-long id.
    assert_eq!(
        rejected(&obj(&[
            AT,
            TP,
            &format!(r#""contact_id":"{}""#, "c".repeat(300))
        ])),
        Malformed
    );
}

#[test]
fn missing_field_beats_invalid_timestamp() {
    let bad_at = r#""occurred_at":"yesterday""#;
    assert_eq!(rejected(&obj(&[ID, bad_at, ACCT])), MissingField);
    assert_eq!(rejected(&obj(&[bad_at, TP, ACCT])), MissingField);
    assert_eq!(
        rejected(&obj(&[ID, r#""occurred_at":1.5"#, ACCT])),
        MissingField
    );
}

#[test]
fn invalid_timestamp_beats_invalid_channel() {
    let msg = obj(&[
        ID,
        r#""occurred_at":"2026-02-30T00:00:00Z""#,
        TP,
        ACCT,
        r#""channel":"x""#,
    ]);
    assert_eq!(rejected(&msg), InvalidTimestamp);
    let msg = obj(&[
        ID,
        r#""occurred_at":1e12"#,
        r#""touchpoint":"unknown""#,
        ACCT,
    ]);
    assert_eq!(rejected(&msg), InvalidTimestamp);
}

#[test]
fn invalid_channel_beats_no_identity() {
    assert_eq!(
        rejected(&obj(&[ID, AT, TP, r#""channel":"x""#])),
        InvalidChannel
    );
    assert_eq!(
        rejected(&obj(&[ID, AT, r#""touchpoint":"unknown""#])),
        InvalidChannel
    );
}

#[test]
fn each_reason_has_a_lowercase_detail_naming_the_problem() {
    let cases = [
        obj(&[AT, TP, ACCT]),
        obj(&[ID, r#""occurred_at":"x""#, TP, ACCT]),
        obj(&[ID, AT, TP, ACCT, r#""channel":"x""#]),
        obj(&[ID, AT, TP]),
        obj(&[ID, AT, TP, ACCT, r#""type":"x""#]),
        "{".to_string(),
    ];
    for msg in &cases {
        let r = decode(msg).unwrap_err();
        assert!(!r.detail.is_empty());
        assert!(!r.detail.starts_with(char::is_uppercase), "{r}");
    }
}

proptest! {
    #[test]
    fn decode_never_panics_and_accepts_only_json_objects(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if decoder().decode(&bytes).is_ok() {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert!(v.is_object());
        }
    }

    #[test]
    fn generated_touches_decode_to_what_was_written(
        id in "[a-z0-9-]{1,40}",
        at in time::MIN_MILLIS..=time::MAX_MILLIS,
        as_text: bool,
        account in "\\PC{0,20}",
        cost in prop::option::of(0.0f64..1e9),
        attrs in prop::collection::btree_map("[a-z]{1,8}", "\\PC{0,10}", 0..5),
    ) {
        let mut v = serde_json::json!({
            "event_id": id, "touchpoint": "web_visit", "contact_id": "c", "account_id": account,
            // Epoch milliseconds are never negative (a negative number is malformed).
            "occurred_at": if as_text || at < 0 { serde_json::json!(time::format_rfc3339(at)) } else { serde_json::json!(at) },
            "attributes": attrs,
        });
        if let Some(cost) = cost {
            v["cost"] = serde_json::json!(cost);
        }
        let msg = serde_json::to_vec(&v).unwrap();
        let e = decoder().decode(&msg).unwrap();
        prop_assert_eq!(&*e.event_id, id.as_str());
        prop_assert_eq!(e.occurred_at, at);
        prop_assert_eq!(e.account_id.as_deref(), (!account.is_empty()).then_some(account.as_str()));
        prop_assert_eq!(e.cost, cost);
        let got: Vec<(String, String)> =
            e.attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let want: Vec<(String, String)> = attrs.into_iter().collect();
        prop_assert_eq!(got, want);
    }
}
