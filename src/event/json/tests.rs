use super::strings::find_special;
use super::*;
use proptest::prelude::*;

/// Validates a whole message as any JSON value, the way the decoder's callers would.
fn validate(msg: &[u8]) -> Result<()> {
    let mut sc = Scanner::new(msg)?;
    sc.value()?;
    sc.end()
}

/// The same verdict through [`Scanner::skip_value`], which builds nothing.
fn validate_skipping(msg: &[u8]) -> Result<()> {
    let mut sc = Scanner::new(msg)?;
    sc.skip_value()?;
    sc.end()
}

fn valid(s: &str) -> bool {
    let verdict = validate(s.as_bytes()).is_ok();
    assert_eq!(validate_skipping(s.as_bytes()).is_ok(), verdict, "{s:?}");
    verdict
}

fn one_value(s: &str) -> Value<'_> {
    let mut sc = Scanner::new(s.as_bytes()).unwrap();
    let v = sc.value().unwrap();
    sc.end().unwrap();
    v
}

#[test]
fn scalars_are_read() {
    assert_eq!(one_value(" true "), Value::Bool(true));
    assert_eq!(one_value("false"), Value::Bool(false));
    assert_eq!(one_value("\tnull\r\n"), Value::Null);
    assert_eq!(one_value(r#""abc""#), Value::Str(Cow::Borrowed("abc")));
    assert_eq!(
        one_value("-12.5e3"),
        Value::Num(Number {
            raw: "-12.5e3",
            is_integer: false
        })
    );
    assert_eq!(
        one_value("1700000000000"),
        Value::Num(Number {
            raw: "1700000000000",
            is_integer: true
        })
    );
    assert_eq!(one_value("[1, {\"a\": []}]"), Value::Array);
    assert_eq!(one_value("{}"), Value::Object);
}

#[test]
fn strings_without_escapes_are_borrowed() {
    let Value::Str(s) = one_value(r#""héllo wörld, long enough for a few words""#) else {
        panic!()
    };
    assert!(matches!(s, Cow::Borrowed(_)));
    assert_eq!(s, "héllo wörld, long enough for a few words");
}

#[test]
fn escapes_are_decoded_into_owned_strings() {
    let Value::Str(s) = one_value(r#""a\"b\\c\/d\be\ff\ng\rh\ti\u0041\u00e9\ud83d\ude00z""#) else {
        panic!()
    };
    assert!(matches!(s, Cow::Owned(_)));
    assert_eq!(s, "a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti\u{41}é😀z");
    assert_eq!(one_value(r#""\uD83D\uDE00""#), Value::Str("😀".into()));
}

#[test]
fn bad_strings_are_rejected() {
    for s in [
        "\"abc",
        "\"a\u{1}b\"",
        "\"tab\tinside\"",
        "\"new\nline\"",
        r#""\x""#,
        r#""\u12""#,
        r#""\u12g4""#,
        r#""\ud800""#,
        r#""\ud800x""#,
        r#""\ud800\u0041""#,
        r#""\udc00""#,
        r#""\ud800\ud800""#,
        "\"abc\\",
        "'abc'",
    ] {
        assert!(!valid(s), "{s:?} should be invalid");
        // The same inside a skipped container.
        assert!(!valid(&format!("[{s}]")), "[{s:?}] should be invalid");
    }
}

#[test]
fn numbers_follow_the_json_grammar() {
    for s in [
        "0", "-0", "1", "-1", "10", "1.5", "0.5", "1e5", "1E+5", "1e-5", "-0.0e0",
    ] {
        assert!(valid(s), "{s}");
    }
    for s in [
        "01", "-", "+1", "1.", ".5", "1e", "1e+", "-01", "0x1", "1.5.5", "Infinity", "NaN", "--1",
        "1 2",
    ] {
        assert!(!valid(s), "{s}");
    }
}

#[test]
fn number_helpers() {
    let n = |raw: &'static str| {
        let Value::Num(n) = one_value(raw) else {
            panic!()
        };
        n
    };
    assert!(n("-1").is_negative());
    assert!(n("-1e-400").is_negative());
    assert!(!n("-0").is_negative());
    assert!(!n("-0.000e7").is_negative());
    assert!(!n("0").is_negative());
    assert!(n("1e400").to_f64().is_infinite());
    assert_eq!(n("1.25").to_f64(), 1.25);
    assert_eq!(n("1700000000000").to_i64(), Some(1_700_000_000_000));
    assert_eq!(n("1.0").to_i64(), None);
    assert_eq!(n("1e3").to_i64(), None);
    assert_eq!(n("99999999999999999999").to_i64(), None);
    assert_eq!(n("-0").to_i64(), Some(0));
}

#[test]
fn literals_whitespace_and_trailing_data() {
    for s in [
        "tru",
        "nul",
        "True",
        "nulll",
        "{} {}",
        "1,",
        "\u{a0}1",
        "\u{feff}{}",
        "",
    ] {
        assert!(!valid(s), "{s:?}");
    }
    assert!(valid(" \t\r\n[ \t\r\n1 \t\r\n] \t\r\n"));
}

#[test]
fn structure_errors_are_rejected() {
    for s in [
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{\"a\":1,}",
        "{,}",
        "{1:2}",
        "{\"a\":1 \"b\":2}",
        "[}",
        "{]",
        "[[]",
        "{\"a\":{}",
        "]",
    ] {
        assert!(!valid(s), "{s:?}");
    }
}

#[test]
fn invalid_utf8_is_rejected_with_its_offset() {
    assert_eq!(
        *validate(b"\"ab\xff\"").unwrap_err().kind(),
        ErrorKind::NotUtf8 { at: 3 }
    );
    assert!(validate(b"\"\xed\xa0\x80\"").is_err(), "encoded surrogate");
}

#[test]
fn duplicate_keys_are_found_at_any_depth_after_unescaping() {
    assert!(matches!(
        validate(br#"{"a":1,"a":2}"#),
        Err(ref e) if matches!(e.kind(), ErrorKind::DuplicateKey { key, .. } if key == "a")
    ));
    assert!(matches!(
        validate(br#"[{"x":{"a":1,"\u0061":2}}]"#),
        Err(ref e) if matches!(e.kind(), ErrorKind::DuplicateKey { key, .. } if key == "a")
    ));
    // The same key in sibling or nested objects is fine.
    assert!(valid(r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#));
    assert!(valid(r#"{"a":1,"A":2,"a ":3}"#));
}

#[test]
fn duplicate_keys_are_found_in_large_objects() {
    let mut obj: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
    let ok = format!("[{{{}}}]", obj.join(","));
    assert!(valid(&ok));
    obj.push("\"k7\":0".into());
    let dup = format!("[{{{}}}]", obj.join(","));
    assert!(matches!(
        validate(dup.as_bytes()),
        Err(ref e) if matches!(e.kind(), ErrorKind::DuplicateKey { key, .. } if key == "k7")
    ));
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let depth = 60_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(valid(&deep));
    let unclosed = "[".repeat(depth);
    assert!(!valid(&unclosed));
    let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    assert!(valid(&objects));
}

#[test]
fn objects_are_walked_member_by_member() {
    let msg = br#" { "a" : 1 , "b\n" : {"x": [true]}, "c": "s" } "#;
    let mut sc = Scanner::new(msg).unwrap();
    sc.object_start().unwrap();
    let mut first = true;
    let mut seen = Vec::new();
    while let Some(k) = sc.next_key(&mut first).unwrap() {
        seen.push((k.into_owned(), sc.value().unwrap()));
    }
    sc.end().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].0, "b\n");
    assert_eq!(seen[1].1, Value::Object);
    assert_eq!(seen[2].1, Value::Str("s".into()));

    let mut sc = Scanner::new(b"{}").unwrap();
    sc.object_start().unwrap();
    assert_eq!(sc.next_key(&mut true).unwrap(), None);

    for bad in [&b"{\"a\":1,}"[..], b"{,\"a\":1}", b"{\"a\":1 \"b\":1}"] {
        let mut sc = Scanner::new(bad).unwrap();
        sc.object_start().unwrap();
        let mut first = true;
        let res = (|| {
            while sc.next_key(&mut first)?.is_some() {
                sc.value()?;
            }
            sc.end()
        })();
        assert!(res.is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn key_check_detects_repeats_small_and_large() {
    let mut check = KeyCheck::new();
    for i in 0..100 {
        assert!(check.insert(Cow::Owned(format!("k{i}"))));
    }
    assert!(!check.insert(Cow::Borrowed("k3")));
    assert!(!check.insert(Cow::Borrowed("k99")));
    let mut check = KeyCheck::new();
    assert!(check.insert(Cow::Borrowed("a")));
    assert!(!check.insert(Cow::Owned("a".into())));
}

#[test]
fn find_special_finds_the_first_match_in_every_position() {
    let naive = |b: &[u8]| {
        b.iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .unwrap_or(b.len())
    };
    for len in 0..40 {
        for at in 0..len {
            for special in [b'"', b'\\', 0u8, 0x1f] {
                // Bytes that must never match: 0x20, DEL, non-ASCII.
                let mut v: Vec<u8> = (0..len)
                    .map(|i| [b'a', 0x20, 0x7f, 0xc3, 0xff][i % 5])
                    .collect();
                v[at] = special;
                // A second match later must not hide the first, nor one earlier
                // in the word confuse it.
                v[len - 1] = b'"';
                assert_eq!(find_special(&v, 0), naive(&v), "{v:?}");
                assert_eq!(find_special(&v, at), at, "{v:?}");
            }
        }
        let plain = vec![b'x'; len];
        assert_eq!(find_special(&plain, 0), len);
    }
}

// ---- agreement with serde_json ----

/// serde_json's verdict plus duplicate-key detection, as an independent oracle.
struct DupFree;

impl<'de> serde::Deserialize<'de> for DupFree {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DupFree;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("json")
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<DupFree, E> {
                Ok(DupFree)
            }
            fn visit_i64<E>(self, _: i64) -> std::result::Result<DupFree, E> {
                Ok(DupFree)
            }
            fn visit_u64<E>(self, _: u64) -> std::result::Result<DupFree, E> {
                Ok(DupFree)
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<DupFree, E> {
                Ok(DupFree)
            }
            fn visit_str<E>(self, _: &str) -> std::result::Result<DupFree, E> {
                Ok(DupFree)
            }
            fn visit_unit<E>(self) -> std::result::Result<DupFree, E> {
                Ok(DupFree)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<DupFree, A::Error> {
                while a.next_element::<DupFree>()?.is_some() {}
                Ok(DupFree)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<DupFree, A::Error> {
                let mut keys = std::collections::HashSet::new();
                while let Some(k) = a.next_key::<String>()? {
                    if !keys.insert(k) {
                        return Err(serde::de::Error::custom("duplicate key"));
                    }
                    a.next_value::<DupFree>()?;
                }
                Ok(DupFree)
            }
        }
        d.deserialize_any(V)
    }
}

/// `Some(valid)` per serde_json, or `None` where serde_json's verdict is not RFC 8259's:
/// it rejects numbers that overflow `f64` and nesting deeper than 128.
fn oracle(msg: &[u8]) -> Option<bool> {
    match serde_json::from_slice::<DupFree>(msg) {
        Ok(_) => Some(true),
        Err(e) => {
            let e = e.to_string();
            if e.contains("number out of range") || e.contains("recursion limit") {
                None
            } else {
                Some(false)
            }
        }
    }
}

fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c]{0,3}",
        "\\PC{0,6}",
        Just("\u{0}\u{1f}\"\\/\u{8}\u{c}\n\r\t".to_string()),
        Just("😀é".to_string()),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(J::from),
        json_string().prop_map(J::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(J::Array),
            prop::collection::vec(("[a-c]{0,2}", inner), 0..6)
                .prop_map(|kv| J::Object(kv.into_iter().collect())),
        ]
    })
}

/// Serializes with random whitespace, escaped characters and optional duplicate keys,
/// which `serde_json::to_string` alone never produces.
fn write_json(v: &serde_json::Value, style: &mut impl Iterator<Item = u8>, out: &mut String) {
    use serde_json::Value as J;
    let ws = |out: &mut String, style: &mut dyn Iterator<Item = u8>| match style.next().unwrap_or(0)
        % 8
    {
        0 => out.push(' '),
        1 => out.push_str("\n\t"),
        2 => out.push('\r'),
        _ => {}
    };
    let string = |s: &str, out: &mut String, style: &mut dyn Iterator<Item = u8>| {
        out.push('"');
        for c in s.chars() {
            match (c, style.next().unwrap_or(0) % 4) {
                ('"', _) => out.push_str("\\\""),
                ('\\', _) => out.push_str("\\\\"),
                (c, _) if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                (c, 0) => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
                (c, _) => out.push(c),
            }
        }
        out.push('"');
    };
    ws(out, style);
    match v {
        J::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, style, out);
            }
            ws(out, style);
            out.push(']');
        }
        J::Object(map) => {
            out.push('{');
            let mut first = true;
            for (k, item) in map {
                let copies = if style.next().unwrap_or(1).is_multiple_of(16) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    ws(out, style);
                    string(k, out, style);
                    ws(out, style);
                    out.push(':');
                    write_json(item, style, out);
                }
            }
            ws(out, style);
            out.push('}');
        }
        J::String(s) => string(s, out, style),
        other => out.push_str(&other.to_string()),
    }
    ws(out, style);
}

const MUTATION_BYTES: &[u8] = b"{}[]\",:\\/ 0123456789-+.eEtrufalsn\t\n\x00\x1f\x7f\xc3\xa9\xffu";

fn mutate(mut bytes: Vec<u8>, edits: &[(u16, u8, u8)]) -> Vec<u8> {
    for &(at, op, b) in edits {
        let b = MUTATION_BYTES[usize::from(b) % MUTATION_BYTES.len()];
        let at = if bytes.is_empty() {
            0
        } else {
            usize::from(at) % (bytes.len() + 1)
        };
        match op % 3 {
            0 => bytes.insert(at, b),
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ if at < bytes.len() => bytes[at] = b,
            _ => bytes.push(b),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn verdict_matches_serde_json_on_generated_json(
        v in json_value(),
        style in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut text = String::new();
        write_json(&v, &mut style.iter().copied().cycle(), &mut text);
        if let Some(want) = oracle(text.as_bytes()) {
            prop_assert_eq!(validate(text.as_bytes()).is_ok(), want, "{}", text);
            prop_assert_eq!(validate_skipping(text.as_bytes()).is_ok(), want, "{}", text);
        }
    }

    #[test]
    fn verdict_matches_serde_json_on_mutated_json(
        v in json_value(),
        style in prop::collection::vec(any::<u8>(), 0..64),
        edits in prop::collection::vec(any::<(u16, u8, u8)>(), 1..4),
    ) {
        let mut text = String::new();
        write_json(&v, &mut style.iter().copied().cycle(), &mut text);
        let bytes = mutate(text.into_bytes(), &edits);
        if let Some(want) = oracle(&bytes) {
            prop_assert_eq!(
                validate(&bytes).is_ok(),
                want,
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
            prop_assert_eq!(validate_skipping(&bytes).is_ok(), want);
        }
    }

    #[test]
    fn verdict_matches_serde_json_on_random_bytes(
        bytes in prop::collection::vec(
            prop::sample::select(MUTATION_BYTES.to_vec()), 0..24),
    ) {
        if let Some(want) = oracle(&bytes) {
            prop_assert_eq!(validate(&bytes).is_ok(), want, "{:?}", bytes);
            prop_assert_eq!(validate_skipping(&bytes).is_ok(), want, "{:?}", bytes);
        }
    }
}

proptest! {
    #[test]
    fn fast_float_path_matches_the_correctly_rounded_parse(
        raw in "-?(0|[1-9][0-9]{0,16})(\\.[0-9]{1,17})?",
    ) {
        let n = Number { raw: &raw, is_integer: !raw.contains('.') };
        let want: f64 = raw.parse().unwrap();
        prop_assert_eq!(n.to_f64().to_bits(), want.to_bits());
        if let Some(fast) = n.to_f64_fast() {
            prop_assert_eq!(fast.to_bits(), want.to_bits());
        }
    }
}
