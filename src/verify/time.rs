//! RFC 3339 as Formance's client reads and writes it: parsed like Go's `time.Time` JSON
//! decoding, instants kept as unix nanoseconds so that comparisons are exact.

pub const NANOS: i128 = 1_000_000_000;

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(text: &str) -> Option<i64> {
    if !text.is_empty() && text.bytes().all(|c| c.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// Parses an RFC 3339 date-time as Go's `time.Time` JSON decoding does: `YYYY-MM-DDTHH:MM:SS`,
/// optional `.` and fraction digits (beyond 9 truncated), then `Z` or `±HH:MM`; upper-case `T`
/// and `Z` only; ranges checked (second 60 rejected). Returns unix nanoseconds.
pub fn parse_rfc3339(text: &str) -> Option<i128> {
    let b = text.as_bytes();
    if b.len() < 20 || !text.is_ascii() {
        return None;
    }
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&text[0..4])?;
    let month = u32::try_from(digits(&text[5..7])?).ok()?;
    let day = u32::try_from(digits(&text[8..10])?).ok()?;
    let (hour, minute, second) = (
        digits(&text[11..13])?,
        digits(&text[14..16])?,
        digits(&text[17..19])?,
    );
    let in_range = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 59;
    if !in_range {
        return None;
    }
    let (frac, zone) = fraction(&text[19..])?;
    let offset = zone_offset(zone)?;
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(i128::from(local - offset) * NANOS + frac)
}

/// `.123` and what follows it; no fraction is zero nanoseconds.
fn fraction(rest: &str) -> Option<(i128, &str)> {
    let Some(after) = rest.strip_prefix('.') else {
        return Some((0, rest));
    };
    let count = after.bytes().take_while(u8::is_ascii_digit).count();
    if count == 0 {
        return None;
    }
    let frac = after
        .bytes()
        .take(count.min(9))
        .enumerate()
        .map(|(i, c)| i128::from(c - b'0') * 10i128.pow(8 - i as u32))
        .sum();
    Some((frac, &after[count..]))
}

/// `Z` or `±HH:MM`, in seconds east of UTC.
fn zone_offset(zone: &str) -> Option<i64> {
    if zone == "Z" {
        return Some(0);
    }
    let z = zone.as_bytes();
    if z.len() != 6 || !matches!(z[0], b'+' | b'-') || z[3] != b':' {
        return None;
    }
    let (hh, mm) = (digits(&zone[1..3])?, digits(&zone[4..6])?);
    if hh > 23 || mm > 59 {
        return None;
    }
    let total = hh * 3600 + mm * 60;
    Some(if z[0] == b'-' { -total } else { total })
}

fn civil_utc(nanos: i128) -> (String, i128) {
    let secs = nanos.div_euclid(NANOS) as i64;
    let frac = nanos.rem_euclid(NANOS);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    (
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        ),
        frac,
    )
}

/// `2026-11-24T12:00:05Z`: UTC, second precision, fractions dropped (what Formance sends).
pub fn format_rfc3339_utc_seconds(nanos: i128) -> String {
    format!("{}Z", civil_utc(nanos).0)
}

/// UTC with the fraction's trailing zeros trimmed (Go's `RFC3339Nano`):
/// `2026-11-24T12:00:05.25Z`, `2026-11-24T12:00:05Z`.
pub fn format_rfc3339_nanos(nanos: i128) -> String {
    let (base, frac) = civil_utc(nanos);
    if frac == 0 {
        format!("{base}Z")
    } else {
        let digits = format!("{frac:09}");
        format!("{base}.{}Z", digits.trim_end_matches('0'))
    }
}

/// The start of the second an instant falls in.
pub fn floor_second(nanos: i128) -> i128 {
    nanos.div_euclid(NANOS) * NANOS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_like_go() {
        let t = parse_rfc3339("2026-03-01T14:00:00.5+02:00").unwrap();
        assert_eq!(format_rfc3339_nanos(t), "2026-03-01T12:00:00.5Z");
        assert_eq!(format_rfc3339_utc_seconds(t), "2026-03-01T12:00:00Z");
        assert_eq!(floor_second(t) + NANOS / 2, t);
        for bad in [
            "2026-03-01T12:00:00",
            "2026-03-01t12:00:00z",
            "2026-02-30T12:00:00Z",
            "2026-03-01T12:00:60Z",
            "2026-03-01T12:00:00.Z",
            "2026-03-01T12:00:00+24:00",
            "２026-03-01T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
