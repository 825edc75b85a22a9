//! Event time: Unix epoch milliseconds in UTC, RFC 3339 in and out, config durations.
//!
//! No calendar crate: SPEC §1 needs exactly one strict input format and one output format,
//! and the proleptic Gregorian arithmetic below (Howard Hinnant's `days_from_civil`) is small
//! enough to own and test outright.

use std::fmt::Write as _;

/// Unix epoch milliseconds, UTC. Negative before 1970.
pub type Millis = i64;

const MS_PER_SECOND: i64 = 1_000;
const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;
const MS_PER_WEEK: i64 = 7 * MS_PER_DAY;

/// `0000-01-01T00:00:00.000Z`: the earliest time we accept, because it is the earliest one
/// [`format_rfc3339`] can write back as RFC 3339 (four-digit years).
pub const MIN_MILLIS: Millis = days_from_civil(0, 1, 1) * MS_PER_DAY;
/// `9999-12-31T23:59:59.999Z`: the latest time we accept.
pub const MAX_MILLIS: Millis = days_from_civil(9999, 12, 31) * MS_PER_DAY + MS_PER_DAY - 1;

/// Whether an event may have this time (SPEC §1): [`MIN_MILLIS`] to [`MAX_MILLIS`]. Decoding
/// accepts only these, and what is restored or received from another process is held to it.
#[inline]
pub const fn accepted(ms: Millis) -> bool {
    MIN_MILLIS <= ms && ms <= MAX_MILLIS
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`m` in 1..=12, `d` in 1..=31).
#[inline]
const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = (m + 9) % 12; // March is 0
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: `(year, month, day)`.
const fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

const fn is_leap_year(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

const fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap_year(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The two ASCII digits at `b[at..at + 2]` as a number, or `None` if either is not a digit.
#[inline(always)]
fn two_digits(b: &[u8], at: usize) -> Option<i64> {
    let hi = b[at].wrapping_sub(b'0');
    let lo = b[at + 1].wrapping_sub(b'0');
    (hi < 10 && lo < 10).then(|| i64::from(hi * 10 + lo))
}

/// Parses an RFC 3339 date-time with an offset (SPEC §1) into UTC milliseconds.
///
/// Accepted: `YYYY-MM-DD`, `T` or `t`, `HH:MM:SS`, optionally `.` and one or more digits
/// (truncated, not rounded, to milliseconds), then `Z`, `z` or `±HH:MM`. Nothing else: no
/// missing offset, no space separator, no leap second `:60`, no surrounding whitespace,
/// and the date must exist (February 30 does not). Times outside [`MIN_MILLIS`]..=
/// [`MAX_MILLIS`] once converted to UTC are rejected too, so every accepted time can be
/// written back by [`format_rfc3339`].
///
/// Every string `occurred_at` goes through here, so the fixed-position fields are read
/// two digits at a time with no bounds checks past the length test (a test holds it equal
/// to a plain reading of the grammar).
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = two_digits(b, 0)? * 100 + two_digits(b, 2)?;
    let month = two_digits(b, 5)?;
    let day = two_digits(b, 8)?;
    let hour = two_digits(b, 11)?;
    let minute = two_digits(b, 14)?;
    let second = two_digits(b, 17)?;
    // Days 1 to 28 exist in every month; only later ones need the calendar.
    if !(1..=12).contains(&month)
        || day < 1
        || (day > 28 && day > days_in_month(year, month))
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }

    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        match i - start {
            0 => return None,
            1 => millis *= 100,
            2 => millis *= 10,
            _ => {}
        }
    }

    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = two_digits(b, i + 1)?;
            let om = two_digits(b, i + 4)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let offset = oh * MS_PER_HOUR + om * MS_PER_MINUTE;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };

    let local = days_from_civil(year, month, day) * MS_PER_DAY
        + hour * MS_PER_HOUR
        + minute * MS_PER_MINUTE
        + second * MS_PER_SECOND
        + millis;
    let utc = local - offset;
    accepted(utc).then_some(utc)
}

/// `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`, e.g. `2026-03-01T10:00:00.000Z`.
///
/// Exact for [`MIN_MILLIS`]..=[`MAX_MILLIS`]. Outside that range it still writes something
/// (the year with a sign or more digits) rather than panic, but that is no longer RFC 3339.
/// The UTC date of `ms` as `YYYY-MM-DD` (the BI export's date partitions).
pub fn format_date(ms: Millis) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn format_rfc3339(ms: Millis) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339(ms, &mut out);
    out
}

/// [`format_rfc3339`] appending to `out`, for writers that reuse a buffer.
pub fn write_rfc3339(ms: Millis, out: &mut String) {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    if (0..=9999).contains(&year) {
        push_digits(out, year, 4);
    } else {
        let _ = write!(out, "{year:04}");
    }
    out.push('-');
    push_digits(out, month, 2);
    out.push('-');
    push_digits(out, day, 2);
    out.push('T');
    push_digits(out, in_day / MS_PER_HOUR, 2);
    out.push(':');
    push_digits(out, in_day / MS_PER_MINUTE % 60, 2);
    out.push(':');
    push_digits(out, in_day / MS_PER_SECOND % 60, 2);
    out.push('.');
    push_digits(out, in_day % MS_PER_SECOND, 3);
    out.push('Z');
}

/// Appends the `width` low decimal digits of non-negative `v`, zero-padded.
fn push_digits(out: &mut String, v: i64, width: u32) {
    let mut p = 10i64.pow(width - 1);
    while p > 0 {
        out.push(char::from(b'0' + (v / p % 10) as u8));
        p /= 10;
    }
}

const DURATION_UNITS: [(&str, i64); 6] = [
    ("w", MS_PER_WEEK),
    ("d", MS_PER_DAY),
    ("h", MS_PER_HOUR),
    ("ms", 1),
    ("m", MS_PER_MINUTE),
    ("s", MS_PER_SECOND),
];

/// Parses a config duration (SPEC §7): one or more `<integer><unit>` parts, units `w`, `d`,
/// `h`, `m`, `s`, `ms`, optionally separated by whitespace: `90d`, `500ms`, `1d 12h`.
///
/// The parts add up, in any order. Surrounding whitespace is ignored. Errors are lowercase
/// sentences fit to follow `file: key: `.
pub fn parse_duration(s: &str) -> Result<Millis, String> {
    let expected = || format!("expected a duration like \"90d\", \"12h\" or \"1d 12h\", got {s:?}");
    let b = s.trim().as_bytes();
    if b.is_empty() {
        return Err(expected());
    }
    let mut total: i64 = 0;
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(expected());
        }
        let mut n: i64 = 0;
        for &c in &b[start..i] {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(i64::from(c - b'0')))
                .ok_or_else(|| format!("duration {s:?} is too large"))?;
        }
        let rest = &b[i..];
        let unit_len = rest.iter().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        let Some(&(_, per)) = DURATION_UNITS
            .iter()
            .find(|(name, _)| name.as_bytes() == unit)
        else {
            return Err(if unit.is_empty() {
                format!(
                    "duration {s:?} needs a unit after {}: w, d, h, m, s or ms",
                    String::from_utf8_lossy(&b[start..i])
                )
            } else {
                expected()
            });
        };
        i += unit_len;
        total = n
            .checked_mul(per)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
    }
    Ok(total)
}

/// Writes a duration in the syntax [`parse_duration`] reads, largest units first and
/// without weeks (`14d` reads better than `2w`): `1d 12h`, `500ms`, `0s`.
///
/// A negative duration gets a leading `-`, which [`parse_duration`] does not accept.
pub fn format_duration(ms: Millis) -> String {
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
    }
    let mut rest = ms.unsigned_abs();
    if rest == 0 {
        out.push_str("0s");
        return out;
    }
    for (name, per) in [("d", MS_PER_DAY), ("h", MS_PER_HOUR), ("m", MS_PER_MINUTE)]
        .into_iter()
        .chain([("s", MS_PER_SECOND), ("ms", 1)])
    {
        let per = per as u64;
        let n = rest / per;
        if n > 0 {
            if out.len() > usize::from(ms < 0) {
                out.push(' ');
            }
            let _ = write!(out, "{n}{name}");
            rest -= n * per;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `n` ASCII digits at `b[at..]` as a number, or `None` if any is not a digit.
    fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(at..at + n)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    }

    /// The straightforward reading of the grammar [`parse_rfc3339`] must agree with.
    ///
    /// Accepted: `YYYY-MM-DD`, `T` or `t`, `HH:MM:SS`, optionally `.` and one or more digits
    /// (truncated, not rounded, to milliseconds), then `Z`, `z` or `±HH:MM`. Nothing else: no
    /// missing offset, no space separator, no leap second `:60`, no surrounding whitespace,
    /// and the date must exist (February 30 does not). Times outside [`MIN_MILLIS`]..=
    /// [`MAX_MILLIS`] once converted to UTC are rejected too, so every accepted time can be
    /// written back by [`format_rfc3339`].
    fn reference_parse(s: &str) -> Option<Millis> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return None;
        }
        let year = digits(b, 0, 4)?;
        let month = digits(b, 5, 2)?;
        let day = digits(b, 8, 2)?;
        let hour = digits(b, 11, 2)?;
        let minute = digits(b, 14, 2)?;
        let second = digits(b, 17, 2)?;
        if b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        if !(1..=12).contains(&month)
            || !(1..=days_in_month(year, month)).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }

        let mut i = 19;
        let mut millis = 0;
        if b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 3 {
                    millis = millis * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            match i - start {
                0 => return None,
                1 => millis *= 100,
                2 => millis *= 10,
                _ => {}
            }
        }

        let offset = match b.get(i)? {
            b'Z' | b'z' if i + 1 == b.len() => 0,
            sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
                let oh = digits(b, i + 1, 2)?;
                let om = digits(b, i + 4, 2)?;
                if oh > 23 || om > 59 {
                    return None;
                }
                let offset = oh * MS_PER_HOUR + om * MS_PER_MINUTE;
                if *sign == b'-' { -offset } else { offset }
            }
            _ => return None,
        };

        let local = days_from_civil(year, month, day) * MS_PER_DAY
            + hour * MS_PER_HOUR
            + minute * MS_PER_MINUTE
            + second * MS_PER_SECOND
            + millis;
        let utc = local - offset;
        accepted(utc).then_some(utc)
    }

    /// Valid times, and valid times with one byte replaced, cut or added.
    fn near_rfc3339() -> impl Strategy<Value = String> {
        let valid = "[0-9]{4}-(0[0-9]|1[0-3])-[0-3][0-9][Tt]([01][0-9]|2[0-5]):[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,5})?([Zz]|[+-]([01][0-9]|2[0-5]):[0-6][0-9])";
        (
            valid,
            any::<prop::sample::Index>(),
            "[-+0-9:.TZtz \\x00a\\u{e9}]",
            0..4u8,
        )
            .prop_map(|(s, at, c, how)| {
                let mut s: Vec<char> = s.chars().collect();
                let i = at.index(s.len() + 1);
                match how {
                    0 => {}
                    1 if i < s.len() => s[i] = c.chars().next().unwrap(),
                    2 => s.truncate(i),
                    _ => s.insert(i, c.chars().next().unwrap()),
                }
                s.into_iter().collect()
            })
    }

    proptest! {
        #[test]
        fn fast_parse_agrees_with_the_plain_reading(s in near_rfc3339()) {
            prop_assert_eq!(parse_rfc3339(&s), reference_parse(&s), "{:?}", s);
        }
    }

    #[test]
    fn range_constants_are_years_0000_and_9999() {
        assert_eq!(MIN_MILLIS, -62_167_219_200_000);
        assert_eq!(MAX_MILLIS, 253_402_300_799_999);
        assert_eq!(format_rfc3339(MIN_MILLIS), "0000-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(MAX_MILLIS), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn epoch_parses_to_zero() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00+00:00"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00-00:00"), Some(0));
    }

    #[test]
    fn spec_examples_parse() {
        let ten = parse_rfc3339("2026-03-01T10:00:00Z").unwrap();
        assert_eq!(ten, 1_772_359_200_000);
        assert_eq!(
            parse_rfc3339("2026-03-01T18:00:00.250+08:00"),
            Some(ten + 250)
        );
    }

    #[test]
    fn offsets_of_both_signs_convert_to_utc() {
        assert_eq!(parse_rfc3339("1970-01-01T01:30:00+01:30"), Some(0));
        assert_eq!(parse_rfc3339("1969-12-31T19:00:00-05:00"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-03-01T23:59:00-23:59"),
            parse_rfc3339("2026-03-02T23:58:00Z")
        );
    }

    #[test]
    fn lowercase_t_and_z_are_accepted() {
        assert_eq!(parse_rfc3339("1970-01-01t00:00:01z"), Some(1000));
        assert_eq!(parse_rfc3339("1970-01-01t00:00:01+00:00"), Some(1000));
    }

    #[test]
    fn fractions_are_truncated_to_milliseconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.9999Z"), Some(999));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.5Z"), Some(500));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.05Z"), Some(50));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.123456789Z"), Some(123));
        assert_eq!(
            parse_rfc3339("1969-12-31T23:59:59.9999999Z"),
            Some(-1),
            "before 1970 truncation still drops the extra digits of the written time"
        );
    }

    #[test]
    fn leap_years_follow_the_gregorian_rule() {
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339("0000-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339("2023-02-29T00:00:00Z").is_none());
        assert!(parse_rfc3339("1900-02-29T00:00:00Z").is_none());
        assert!(parse_rfc3339("2024-02-30T00:00:00Z").is_none());
        assert!(parse_rfc3339("2024-04-31T00:00:00Z").is_none());
        assert!(parse_rfc3339("2024-12-31T00:00:00Z").is_some());
    }

    #[test]
    fn out_of_range_fields_are_rejected() {
        for s in [
            "2026-00-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "2026-01-32T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:60:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+00:60",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
    }

    #[test]
    fn anything_but_the_exact_syntax_is_rejected() {
        for s in [
            "",
            "2026-03-01T10:00:00",
            "2026-03-01 10:00:00Z",
            "2026-03-01T10:00:00.Z",
            "2026-03-01T10:00:00,5Z",
            " 2026-03-01T10:00:00Z",
            "2026-03-01T10:00:00Z ",
            "2026-03-01T10:00:00ZZ",
            "2026-03-01T10:00:00+0100",
            "2026-03-01T10:00:00+01",
            "2026-03-01T10:00:00+01:00:00",
            "2026-03-01T10:00Z",
            "2026-3-01T10:00:00Z",
            "+2026-03-01T10:00:00Z",
            "-2026-03-01T10:00:00Z",
            "20260-03-01T10:00:00Z",
            "2026-03-01T10:00:00UTC",
            "2026-03-01T1a:00:00Z",
            "2026-03-01T10:00:00.1a2Z",
            "2026-03-01T10:00:00\u{0}Z",
            "2026-03-01T10:00:00+01:0\u{e9}",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s:?}");
        }
    }

    #[test]
    fn results_outside_printable_years_are_rejected() {
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00+00:01"), None);
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00Z"), Some(MIN_MILLIS));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999Z"), Some(MAX_MILLIS));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999-00:01"), None);
    }

    #[test]
    fn pre_1970_times_round_trip() {
        let s = "1969-07-20T20:17:40.123Z";
        let ms = parse_rfc3339(s).unwrap();
        assert_eq!(ms, -14_182_939_877);
        assert_eq!(format_rfc3339(ms), s);
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn format_always_writes_milliseconds_and_z() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(1_772_359_200_000),
            "2026-03-01T10:00:00.000Z"
        );
        let mut buf = String::from("at ");
        write_rfc3339(1_772_359_200_250, &mut buf);
        assert_eq!(buf, "at 2026-03-01T10:00:00.250Z");
    }

    #[test]
    fn format_outside_the_range_does_not_panic() {
        assert!(!format_rfc3339(i64::MIN).is_empty());
        assert!(!format_rfc3339(i64::MAX).is_empty());
        assert!(format_rfc3339(MIN_MILLIS - 1).starts_with("-001"));
    }

    #[test]
    fn durations_parse_every_unit() {
        assert_eq!(parse_duration("90d"), Ok(90 * MS_PER_DAY));
        assert_eq!(parse_duration("12h"), Ok(12 * MS_PER_HOUR));
        assert_eq!(parse_duration("30m"), Ok(30 * MS_PER_MINUTE));
        assert_eq!(parse_duration("45s"), Ok(45_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("1w"), Ok(MS_PER_WEEK));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("1d 12h"), Ok(36 * MS_PER_HOUR));
        assert_eq!(parse_duration("1d12h"), Ok(36 * MS_PER_HOUR));
        assert_eq!(parse_duration(" 1h  30m 5s 1ms "), Ok(5_405_001));
    }

    #[test]
    fn bad_durations_are_explained() {
        assert_eq!(
            parse_duration("9x").unwrap_err(),
            r#"expected a duration like "90d", "12h" or "1d 12h", got "9x""#
        );
        for s in [
            "", " ", "d", "-1d", "1.5h", "1 d", "1D", "1dd", "1d,2h", "+1d", "1µs",
        ] {
            let err = parse_duration(s).unwrap_err();
            assert!(err.contains("duration"), "{s:?}: {err}");
        }
        assert!(parse_duration("90").unwrap_err().contains("needs a unit"));
        assert!(
            parse_duration("99999999999999999999ms")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_duration("9999999999999999w")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_duration("9223372036854775807ms 1ms")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn durations_format_largest_units_first() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(500), "500ms");
        assert_eq!(format_duration(36 * MS_PER_HOUR), "1d 12h");
        assert_eq!(format_duration(90 * MS_PER_DAY), "90d");
        assert_eq!(format_duration(MS_PER_DAY + 1), "1d 1ms");
        assert_eq!(format_duration(-1500), "-1s 500ms");
        assert!(!format_duration(i64::MIN).is_empty());
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(ms in MIN_MILLIS..=MAX_MILLIS) {
            let s = format_rfc3339(ms);
            prop_assert_eq!(s.len(), 24);
            prop_assert_eq!(parse_rfc3339(&s), Some(ms));
        }

        #[test]
        fn offsets_shift_by_exactly_the_offset(
            ms in 0i64..=4_102_444_800_000,
            oh in 0i64..24,
            om in 0i64..60,
            negative: bool,
        ) {
            let offset = (oh * 60 + om) * MS_PER_MINUTE * if negative { -1 } else { 1 };
            let local = format_rfc3339(ms + offset);
            let sign = if negative { '-' } else { '+' };
            let s = format!("{}{sign}{oh:02}:{om:02}", &local[..23]);
            prop_assert_eq!(parse_rfc3339(&s), Some(ms));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse_rfc3339(&s);
            let _ = parse_duration(&s);
        }

        #[test]
        fn durations_round_trip(ms in 0i64..=i64::MAX) {
            prop_assert_eq!(parse_duration(&format_duration(ms)), Ok(ms));
        }
    }
}
