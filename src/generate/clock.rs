//! Calendar arithmetic and RFC 3339 rendering for generated events. The generator keeps this
//! small copy instead of calling `crate::time`, so its bytes never depend on the decoder's code.

use super::digits::push_int;

pub(super) const SECOND: i64 = 1_000;
pub(super) const MINUTE: i64 = 60 * SECOND;
pub(super) const HOUR: i64 = 60 * MINUTE;
pub(super) const DAY: i64 = 24 * HOUR;

/// `(year, month, day)` of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// 0 = Monday … 6 = Sunday (1970-01-01 was a Thursday).
pub(super) fn weekday(days: i64) -> i64 {
    (days + 3).rem_euclid(7)
}

/// Calendar year and quarter (1–4) of an instant.
pub(super) fn year_quarter(ms: i64) -> (i64, u32) {
    let (y, m, _) = civil_from_days(ms.div_euclid(DAY));
    (y, (m - 1) / 3 + 1)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Frac {
    None,
    Millis,
    /// Six digits; the last three are noise that a decoder must truncate (SPEC §1).
    Micros,
}

/// Writes `ms` as local time at `offset_min` east of UTC, e.g. `2026-03-01T11:00:00.250+01:00`.
pub(super) fn write_rfc3339(out: &mut Vec<u8>, ms: i64, offset_min: i32, frac: Frac, lower: bool) {
    let local = ms + i64::from(offset_min) * MINUTE;
    let (y, m, d) = civil_from_days(local.div_euclid(DAY));
    let tod = local.rem_euclid(DAY);
    let t = if lower { b't' } else { b'T' };
    let (hh, mm, ss) = (tod / HOUR, tod % HOUR / MINUTE, tod % MINUTE / SECOND);
    push_int(out, y, 4);
    for (sep, v) in [
        (b'-', i64::from(m)),
        (b'-', i64::from(d)),
        (t, hh),
        (b':', mm),
        (b':', ss),
    ] {
        out.push(sep);
        push_int(out, v, 2);
    }
    match frac {
        Frac::None => {}
        Frac::Millis => {
            out.push(b'.');
            push_int(out, tod % SECOND, 3);
        }
        Frac::Micros => {
            out.push(b'.');
            push_int(out, tod % SECOND, 3);
            push_int(out, (ms * 7919).rem_euclid(1000), 3);
        }
    }
    if offset_min == 0 {
        out.push(if lower { b'z' } else { b'Z' });
    } else {
        let sign = if offset_min < 0 { b'-' } else { b'+' };
        let abs = offset_min.unsigned_abs();
        out.push(sign);
        push_int(out, i64::from(abs / 60), 2);
        out.push(b':');
        push_int(out, i64::from(abs % 60), 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(ms: i64, offset: i32, frac: Frac) -> String {
        let mut s = Vec::new();
        write_rfc3339(&mut s, ms, offset, frac, false);
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn renders_utc_and_offsets() {
        let t = 1_767_571_200_000; // 2026-01-05T00:00:00Z, a Monday
        assert_eq!(rfc(t, 0, Frac::None), "2026-01-05T00:00:00Z");
        assert_eq!(
            rfc(t + 250, 120, Frac::Millis),
            "2026-01-05T02:00:00.250+02:00"
        );
        assert_eq!(rfc(t, -300, Frac::None), "2026-01-04T19:00:00-05:00");
        assert_eq!(rfc(t, 330, Frac::None), "2026-01-05T05:30:00+05:30");
        assert_eq!(weekday(t / DAY), 0);
    }

    #[test]
    fn civil_dates_round_trip_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(civil_from_days(20_512), (2026, 2, 28));
        assert_eq!(civil_from_days(19_417), (2023, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
