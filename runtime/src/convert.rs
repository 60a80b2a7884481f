//! Conversions from a provider's formats to the protocol's: amounts in minor units,
//! currencies in UMN (`EUR/2`), times in UTC, enum values, string-only metadata.
//!
//! The declarative mapping uses these functions, and handlers written by hand should too:
//! they never round, never guess a zone and never let a value through that Formance's
//! client would reject. Every failure is a [`ConversionError`] whose message says what was
//! expected and what was got. A value that came from the provider and cannot be converted
//! is the provider's problem: answer `ConnectorError::bad_gateway` (502, retried), not 400.

use chrono::format::{Item, ParseErrorKind, StrftimeItems};
use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeDelta};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::OnceLock;

/// Re-exported so that callers can name the times these functions take and return.
pub use chrono::{DateTime, Utc};

/// A value that cannot be converted. The message says what was expected and what was
/// got, e.g. `"12.345" has 3 decimals but EUR has 2; amounts are never rounded`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionError {
    message: String,
}

impl ConversionError {
    /// An error with this message; say what was expected and what was got.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with where the value came from: `amount: "12.345" has ...`.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Self {
            message: format!("{what}: {}", self.message),
        }
    }
}

impl fmt::Display for ConversionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConversionError {}

/// A value as JSON text for messages, shortened when long.
fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 80 {
        return text;
    }

    let head: String = text.chars().take(77).collect();
    format!("{head}...")
}

/// A text as a quoted JSON string for messages.
fn quoted(text: &str) -> String {
    show(&Value::from(text))
}

fn error(message: impl Into<String>) -> ConversionError {
    ConversionError::new(message)
}

/// One step of a path into a provider's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// The value under this key of an object.
    Key(&'static str),
    /// The item at this position (from 0) of an array.
    Index(usize),
}

/// The value at `path` inside `value` (an empty path is `value` itself). `None` when a
/// step is missing, when a step meets a value of the wrong kind (a key on an array, an
/// index on an object or a scalar), and when the value found is `null`: a provider's
/// `null` and an absent field mean the same thing.
pub fn lookup<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut current = value;
    for step in path {
        current = match (step, current) {
            (Step::Key(key), Value::Object(map)) => map.get(*key)?,
            (Step::Index(index), Value::Array(items)) => items.get(*index)?,
            _ => return None,
        };
    }

    (!current.is_null()).then_some(current)
}

/// A JSON value as protocol text: a string as it is, a number or boolean as its JSON text
/// (`12.5`, `true`), an array or object as compact JSON; `None` for `null`.
pub fn to_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// How a provider writes a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// RFC 3339 with a zone: `2026-11-24T12:00:05Z`, `2026-11-24T14:00:05.123+02:00`.
    Rfc3339,
    /// Seconds since 1970-01-01T00:00:00Z: a JSON integer (`1795521605`), a JSON
    /// decimal with fractional seconds (`1795521605.25`) or the same as a string.
    UnixSeconds,
    /// Milliseconds since 1970-01-01T00:00:00Z: a JSON integer (`1795521605250`) or
    /// the same as a string.
    UnixMillis,
    /// A chrono strftime pattern, e.g. `%d/%m/%Y %H:%M:%S` or `%Y-%m-%d` (a date alone
    /// means its midnight).
    Custom {
        /// The pattern. If it has a zone (`%z`, `%:z`, `%#z` or `%+`), the offset is
        /// read from the value and `utc_offset_seconds` is not used.
        pattern: &'static str,
        /// The zone of values whose pattern has none, as seconds east of UTC (`0` for
        /// UTC, `3600` for UTC+1, `-18000` for UTC-5). `None` with a zone-less pattern
        /// is an error: a time without a zone is never guessed to be UTC.
        utc_offset_seconds: Option<i32>,
    },
    /// A chrono strftime pattern without a zone, for local times of a named IANA zone
    /// (`Europe/Oslo`), daylight saving included. A local time the clocks skipped (in the
    /// spring gap) is read with the offset in force before the change; one they showed twice
    /// (in the autumn overlap) is the earlier instant, the one before the clocks went back.
    #[cfg(feature = "zones")]
    Zoned {
        pattern: &'static str,
        zone: &'static str,
    },
}

/// Reads a provider's time as UTC. RFC 3339 accepts any offset or `Z` and fractional
/// seconds; Unix times are converted exactly (no float arithmetic), down to the
/// nanosecond; custom patterns follow [`TimeFormat::Custom`]. Custom patterns also
/// accept JSON integers (`20261124` for `%Y%m%d`).
pub fn parse_time(value: &Value, format: &TimeFormat) -> Result<DateTime<Utc>, ConversionError> {
    match format {
        TimeFormat::Rfc3339 => {
            let Some(text) = value.as_str() else {
                return Err(error(format!(
                    "expected an RFC 3339 date-time string like \"2026-11-24T12:00:05Z\", got {}",
                    show(value)
                )));
            };
            parse_rfc3339(text)
        }
        TimeFormat::UnixSeconds => parse_unix(value, 0),
        TimeFormat::UnixMillis => parse_unix(value, 3),
        TimeFormat::Custom {
            pattern,
            utc_offset_seconds,
        } => {
            let text = match value {
                Value::String(text) => Cow::Borrowed(text.as_str()),
                Value::Number(number) if !number.is_f64() => Cow::Owned(number.to_string()),
                other => {
                    return Err(error(format!(
                        "expected a date-time string in the pattern {}, got {}",
                        quoted(pattern),
                        show(other)
                    )));
                }
            };
            parse_custom(&text, pattern, *utc_offset_seconds)
        }
        #[cfg(feature = "zones")]
        TimeFormat::Zoned { pattern, zone } => {
            let text = value.as_str().ok_or_else(|| {
                error(format!(
                    "expected a date-time string in the pattern {}, got {}",
                    quoted(pattern),
                    show(value)
                ))
            })?;
            parse_zoned(text, pattern, zone)
        }
    }
}

/// Writes a time the way the provider reads it, e.g. for a `createdAtFrom` filter sent
/// upstream: RFC 3339 in UTC with whole seconds (`2026-11-24T12:00:05Z`), Unix seconds,
/// Unix milliseconds, or the custom pattern in its `utc_offset_seconds` zone (UTC if
/// the pattern has a zone of its own and none is given). Fractions that a format cannot
/// carry are cut, never rounded up, so a filter stays inclusive. Fails only for a custom
/// pattern that is invalid, has no zone and no `utc_offset_seconds`, or has an offset
/// of a day or more.
pub fn format_time(time: DateTime<Utc>, format: &TimeFormat) -> Result<String, ConversionError> {
    match format {
        TimeFormat::Rfc3339 => Ok(time.to_rfc3339_opts(SecondsFormat::Secs, true)),
        TimeFormat::UnixSeconds => Ok(time.timestamp().to_string()),
        TimeFormat::UnixMillis => Ok(time.timestamp_millis().to_string()),
        TimeFormat::Custom {
            pattern,
            utc_offset_seconds,
        } => {
            check_pattern(pattern)?;
            let seconds = match utc_offset_seconds {
                Some(seconds) => *seconds,
                None if pattern_has_zone(pattern) => 0,
                None => return Err(zone_needed(pattern)),
            };
            let zone = fixed_offset(seconds)?;
            let mut out = String::new();
            write!(out, "{}", time.with_timezone(&zone).format(pattern)).map_err(|_| {
                error(format!(
                    "cannot write a time with the pattern {}",
                    quoted(pattern)
                ))
            })?;
            Ok(out)
        }
        #[cfg(feature = "zones")]
        TimeFormat::Zoned { pattern, zone } => {
            check_pattern(pattern)?;
            let zone = named_zone(zone)?;
            Ok(time.with_timezone(&zone).format(pattern).to_string())
        }
    }
}

#[cfg(feature = "zones")]
fn named_zone(name: &str) -> Result<chrono_tz::Tz, ConversionError> {
    name.parse::<chrono_tz::Tz>()
        .map_err(|_| error(format!("{} is not an IANA time zone", quoted(name))))
}

/// A local time of a named zone, as [`TimeFormat::Zoned`] reads it.
#[cfg(feature = "zones")]
fn parse_zoned(text: &str, pattern: &str, zone: &str) -> Result<DateTime<Utc>, ConversionError> {
    use chrono::offset::{LocalResult, Offset, TimeZone};
    check_pattern(pattern)?;
    let tz = named_zone(zone)?;
    let local = match NaiveDateTime::parse_from_str(text, pattern) {
        Ok(local) => local,
        Err(reason) if reason.kind() == ParseErrorKind::NotEnough => {
            NaiveDate::parse_from_str(text, pattern)
                .map(|date| date.and_time(NaiveTime::MIN))
                .map_err(|_| {
                    error(format!(
                        "expected a date-time in the pattern {}, got {} ({reason})",
                        quoted(pattern),
                        quoted(text)
                    ))
                })?
        }
        Err(reason) => {
            return Err(error(format!(
                "expected a date-time in the pattern {}, got {} ({reason})",
                quoted(pattern),
                quoted(text)
            )));
        }
    };
    match tz.from_local_datetime(&local) {
        LocalResult::Single(time) => Ok(time.with_timezone(&Utc)),
        LocalResult::Ambiguous(earlier, _) => Ok(earlier.with_timezone(&Utc)),
        LocalResult::None => {
            // In the spring gap: the offset of an hour before, when the clocks had not moved.
            let before = local - TimeDelta::hours(3);
            let offset = tz
                .offset_from_local_datetime(&before)
                .earliest()
                .map(|offset| offset.fix().local_minus_utc())
                .ok_or_else(|| error(format!("{} is not a time in {zone}", quoted(text))))?;
            Ok((local - TimeDelta::seconds(i64::from(offset))).and_utc())
        }
    }
}

pub fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, ConversionError> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(time) => Ok(time.with_timezone(&Utc)),
        Err(_) if NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").is_ok() => {
            Err(error(format!(
                "{} has no zone (Z or an offset like +02:00); for local times use a custom pattern with utc_offset_seconds",
                quoted(text)
            )))
        }
        Err(reason) => Err(error(format!(
            "expected an RFC 3339 date-time like \"2026-11-24T12:00:05Z\", got {} ({reason})",
            quoted(text)
        ))),
    }
}

/// Unix time in units of 10^-`scale` seconds (0: seconds, 3: milliseconds).
fn parse_unix(value: &Value, scale: i64) -> Result<DateTime<Utc>, ConversionError> {
    let unit = if scale == 0 {
        "Unix seconds like 1795521605"
    } else {
        "Unix milliseconds like 1795521605250"
    };
    let text = match value {
        Value::String(text) => text.as_str(),
        Value::Number(number) => number.as_str(),
        other => {
            return Err(error(format!(
                "expected {unit} (a number or a numeric string), got {}",
                show(other)
            )));
        }
    };
    let out_of_range = || error(format!("{} is too far from 1970 to be a time", show(value)));
    if let Some(whole) = plain_integer(text) {
        // The usual case, read without the general decimal's allocations.
        let nanos = i128::from(whole) * 10_i128.pow((9 - scale) as u32);
        return time_of_nanos(nanos).ok_or_else(out_of_range);
    }
    let Some(decimal) = parse_decimal(text) else {
        return Err(error(format!(
            "expected {unit} (a number or a numeric string), got {}",
            show(value)
        )));
    };
    let shift = decimal.exponent + 9 - scale;
    if shift < 0 {
        return Err(error(format!(
            "{} is more precise than a nanosecond",
            show(value)
        )));
    }

    if decimal.digits.len() as i64 + shift > 30 {
        return Err(out_of_range());
    }

    let mut nanos: i128 = if decimal.digits.is_empty() {
        0
    } else {
        decimal.digits.parse().map_err(|_| out_of_range())?
    };
    nanos *= 10_i128.pow(shift as u32);
    if decimal.negative {
        nanos = -nanos;
    }

    time_of_nanos(nanos).ok_or_else(out_of_range)
}

/// An integer of at most 18 digits with an optional `-`: one that fits an `i64` as it is.
fn plain_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || digits.len() > 18 || !all_digits(digits) {
        return None;
    }
    text.parse().ok()
}

/// The time `nanos` nanoseconds after 1970-01-01T00:00:00Z, if chrono can hold it.
fn time_of_nanos(nanos: i128) -> Option<DateTime<Utc>> {
    let seconds = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    let subsec = nanos.rem_euclid(1_000_000_000) as u32;
    DateTime::from_timestamp(seconds, subsec)
}

fn parse_custom(
    text: &str,
    pattern: &str,
    utc_offset_seconds: Option<i32>,
) -> Result<DateTime<Utc>, ConversionError> {
    check_pattern(pattern)?;
    let mismatch = |reason: chrono::ParseError| {
        error(format!(
            "expected a date-time in the pattern {}, got {} ({reason})",
            quoted(pattern),
            quoted(text)
        ))
    };
    if pattern_has_zone(pattern) {
        return DateTime::parse_from_str(text, pattern)
            .map(|time| time.with_timezone(&Utc))
            .map_err(mismatch);
    }

    let Some(seconds) = utc_offset_seconds else {
        return Err(zone_needed(pattern));
    };
    let zone = fixed_offset(seconds)?;
    let local = match NaiveDateTime::parse_from_str(text, pattern) {
        Ok(local) => local,
        Err(reason) if reason.kind() == ParseErrorKind::NotEnough => {
            NaiveDate::parse_from_str(text, pattern)
                .map_err(|_| mismatch(reason))?
                .and_time(NaiveTime::MIN)
        }
        Err(reason) => return Err(mismatch(reason)),
    };
    local
        .and_local_timezone(zone)
        .single()
        .map(|time| time.with_timezone(&Utc))
        .ok_or_else(|| error(format!("{} is not a valid time in UTC{zone}", quoted(text))))
}

fn zone_needed(pattern: &str) -> ConversionError {
    error(format!(
        "the time pattern {} has no zone (%z), so a zone is needed: set utc_offset_seconds (0 for UTC)",
        quoted(pattern)
    ))
}

fn fixed_offset(seconds: i32) -> Result<FixedOffset, ConversionError> {
    FixedOffset::east_opt(seconds).ok_or_else(|| {
        error(format!(
            "utc_offset_seconds must be less than a day (86400) either way, got {seconds}"
        ))
    })
}

fn check_pattern(pattern: &str) -> Result<(), ConversionError> {
    if StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error)) {
        return Err(error(format!(
            "{} is not a valid chrono strftime pattern",
            quoted(pattern)
        )));
    }

    Ok(())
}

/// Whether a strftime pattern reads the zone from the value (`%z`, `%:z`, `%::z`,
/// `%#z` or `%+`); `%%z` is a literal `%z`.
fn pattern_has_zone(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        for spec in chars.by_ref() {
            match spec {
                '-' | '_' | '0'..='9' | ':' | '#' | '.' => continue,
                'z' | '+' => return true,
                _ => break,
            }
        }
    }

    false
}

/// The time to serve for a record: its own time plus an offset derived from its id
/// alone, so that records sharing a timestamp get distinct, stable timestamps and
/// Formance's poller, which only keeps items strictly after the last timestamp it
/// kept, does not skip the rest of a tie that a full page cut in two.
///
/// The offset is smaller than the precision the time shows: a time in whole seconds
/// moves by less than a second, one in whole milliseconds by less than a millisecond,
/// one in whole microseconds by less than a microsecond, one with nanoseconds not at
/// all. It is the id's 64-bit FNV-1a hash modulo that unit, the same in every process
/// and on every platform. So a served time stays in its own second (the protocol's
/// `createdAtFrom` filters stay correct), records in different seconds keep their
/// order, and a record's served time never moves while its time and id do not.
///
/// Apply it once, to the provider's time, and sort and page by the result.
pub fn served_time(time: DateTime<Utc>, id: &str) -> DateTime<Utc> {
    let subsec = time.timestamp_subsec_nanos() % 1_000_000_000;
    let unit = 10_u64.pow(9 - fraction_digits(subsec));
    let offset = fnv1a64(id.as_bytes()) % unit;
    time.checked_add_signed(TimeDelta::nanoseconds(offset as i64))
        .unwrap_or(time)
}

/// The fraction digits a time with these nanoseconds is written with: 0, or 3, 6 or 9 as
/// its last non-zero digit needs (what chrono writes, and what [`served_time`] keeps).
fn fraction_digits(nanos: u32) -> u32 {
    if nanos == 0 {
        0
    } else if nanos.is_multiple_of(1_000_000) {
        3
    } else if nanos.is_multiple_of(1_000) {
        6
    } else {
        9
    }
}

/// 64-bit FNV-1a: small, stable and specified, unlike `std`'s hasher.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }

    hash
}

/// Serializes `time` exactly as chrono's `Serialize` does (RFC 3339 in UTC with `Z`, and 3,
/// 6 or 9 fraction digits when its nanoseconds need them), written without `fmt`: a list
/// answer holds a time or two in every record. For `#[serde(serialize_with = ...)]`.
pub fn serialize_time<S: serde::Serializer>(
    time: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut buffer = [0u8; 30];
    match write_rfc3339(time, &mut buffer) {
        Some(text) => serializer.serialize_str(text),
        None => serde::Serialize::serialize(time, serializer),
    }
}

/// [`serialize_time`] for a time that may be absent (`null`).
pub fn serialize_optional_time<S: serde::Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serialize_time(time, serializer),
        None => serializer.serialize_none(),
    }
}

/// `time` in `buffer` as RFC 3339, for years 0 to 9999 outside leap seconds (chrono
/// writes the others).
fn write_rfc3339<'b>(time: &DateTime<Utc>, buffer: &'b mut [u8; 30]) -> Option<&'b str> {
    use chrono::{Datelike, Timelike};
    let year = u32::try_from(time.year())
        .ok()
        .filter(|year| *year <= 9999)?;
    let nanos = time.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    let mut at = 0;
    let digits = |buffer: &mut [u8; 30], value: u32, width: u32, at: &mut usize| {
        for place in (0..width).rev() {
            buffer[*at] = b'0' + (value / 10_u32.pow(place) % 10) as u8;
            *at += 1;
        }
    };
    let fields = [
        (year, 4, b'-'),
        (time.month(), 2, b'-'),
        (time.day(), 2, b'T'),
        (time.hour(), 2, b':'),
        (time.minute(), 2, b':'),
        (time.second(), 2, b'.'),
    ];
    for (value, width, separator) in fields {
        digits(buffer, value, width, &mut at);
        buffer[at] = separator;
        at += 1;
    }
    let width = fraction_digits(nanos);
    if width == 0 {
        // No fraction: the `.` written after the seconds becomes the zone.
        at -= 1;
    } else {
        digits(buffer, nanos / 10_u32.pow(9 - width), width, &mut at);
    }
    buffer[at] = b'Z';
    std::str::from_utf8(&buffer[..=at]).ok()
}

/// ISO 4217 currencies with their minor units, sorted by code: every active code of
/// ISO 4217 list one that has minor units, and codes withdrawn in recent years that
/// still appear in historical records (ANG, BGN, CUC, HRK, SLL, ZWL). Codes without
/// minor units (gold, XDR, XXX, ...) are not here.
pub const ISO_4217: &[(&str, u32)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BOV", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHE", 2),
    ("CHF", 2),
    ("CHW", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("COU", 2),
    ("CRC", 2),
    ("CUC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HRK", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MXV", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SLL", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("USN", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAD", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
    ("ZWL", 2),
];

/// The number of decimals of a currency code (`EUR` -> 2, `jpy` -> 0, `KWD` -> 3),
/// case-insensitively. `extra` (the mapping's `currencies:`, e.g. `("BTC", 8)`,
/// `("USDC", 6)`) is searched first, so it also overrides the ISO table. Takes a bare
/// code, not UMN; `None` if the code is unknown.
pub fn currency_precision(code: &str, extra: &[(&str, u32)]) -> Option<u32> {
    if let Some((_, precision)) = extra
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(code))
    {
        return Some(*precision);
    }

    let upper = code.to_ascii_uppercase();
    ISO_4217
        .binary_search_by(|(known, _)| (*known).cmp(upper.as_str()))
        .ok()
        .map(|index| ISO_4217[index].1)
}

/// A currency the protocol can carry: an upper-case code and its number of decimals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency {
    code: String,
    precision: u32,
}

impl Currency {
    /// The upper-case code, e.g. `EUR`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The number of decimals, e.g. 2.
    pub fn precision(&self) -> u32 {
        self.precision
    }

    /// [`minor_units`] at this currency's precision; messages name the currency.
    pub fn minor_units(
        &self,
        value: &Value,
        format: AmountFormat,
        sign: Sign,
    ) -> Result<String, ConversionError> {
        amount(value, self.precision, format, sign, Some(&self.code))
    }
}

/// The UMN form, `EUR/2`.
impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.code, self.precision)
    }
}

/// Resolves a provider's currency (`eur`, `EUR`, or UMN `EUR/2`) with
/// [`currency_precision`]. A UMN input's precision must be the known one. An unknown
/// code is an error asking to declare its precision in the mapping's `currencies:`.
pub fn currency(code: &str, extra: &[(&str, u32)]) -> Result<Currency, ConversionError> {
    let (name, stated) = match code.split_once('/') {
        Some((name, stated)) => (name, Some(stated)),
        None => (code, None),
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(error(format!(
            "expected a currency code like \"EUR\" or \"EUR/2\", got {}",
            quoted(code)
        )));
    }

    let upper = name.to_ascii_uppercase();
    let Some(precision) = currency_precision(&upper, extra) else {
        return Err(error(format!(
            "unknown currency {}: it is not in the ISO 4217 table, so declare its precision under currencies: in the mapping (e.g. {upper}: 8)",
            quoted(code)
        )));
    };
    if let Some(stated) = stated {
        let parsed = Some(stated)
            .filter(|stated| all_digits(stated))
            .and_then(|stated| stated.parse::<u32>().ok());
        let Some(parsed) = parsed else {
            return Err(error(format!(
                "expected a currency like \"EUR/2\", got {}: the precision is not a number",
                quoted(code)
            )));
        };
        if parsed != precision {
            return Err(error(format!(
                "{} says {parsed} decimals but {upper} has {precision}",
                quoted(code)
            )));
        }
    }

    Ok(Currency {
        code: upper,
        precision,
    })
}

/// The protocol's currency text (UMN): `eur` -> `EUR/2`, `jpy` -> `JPY/0`, `EUR/2` ->
/// `EUR/2`. See [`currency`] for the rules.
pub fn umn(code: &str, extra: &[(&str, u32)]) -> Result<String, ConversionError> {
    currency(code, extra).map(|currency| currency.to_string())
}

/// How a provider writes an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountFormat {
    /// In major units with a decimal point: `"12.34"` EUR is 1234 cents. Exponents are
    /// read exactly (`1.5E3`, `1e-7`).
    Decimal,
    /// Already in minor units, a whole number: `"1234"` EUR is 12.34 EUR. A decimal
    /// point is an error (it usually means the amount is in major units).
    MinorUnits,
}

/// What to do with an amount's sign. The protocol's amounts are usually positive, with
/// the direction carried elsewhere (the transaction's type, source and destination).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// Keep it: `-12.34` stays negative.
    Keep,
    /// Drop it: `-12.34` becomes positive.
    Absolute,
    /// Flip it: `12.34` becomes negative and `-12.34` positive.
    Negate,
}

/// Longest amount this library writes, in digits: far beyond any real amount, short
/// enough that `1e999999999` cannot exhaust memory.
const MAX_DIGITS: usize = 1000;

/// A provider's amount (a JSON string or number) as the protocol's integer string in
/// minor units at `precision` decimals: `"12.34"` -> `"1234"`, `"12.3"` -> `"1230"`,
/// `12` -> `"1200"`, `"-0.00"` -> `"0"`.
///
/// Only string arithmetic is used, so amounts of any length are exact. An amount with
/// more decimals than `precision` is an error, never rounded (trailing zeros are fine:
/// `"12.340"` is 12.34). Strings must be plain numbers: an optional sign, digits, an
/// optional `.` with digits, an optional exponent; `""`, `"12,34"`, `"1.2.3"`, `" 1"`
/// and `"NaN"` are errors. A JSON number is read as its shortest decimal text; since
/// serde_json holds non-integers as 64-bit floats, a non-integer number with more than
/// 15 significant digits may already have lost digits and is an error (unless
/// serde_json's `arbitrary_precision` feature keeps the exact text).
pub fn minor_units(
    value: &Value,
    precision: u32,
    format: AmountFormat,
    sign: Sign,
) -> Result<String, ConversionError> {
    amount(value, precision, format, sign, None)
}

fn amount(
    value: &Value,
    precision: u32,
    format: AmountFormat,
    sign: Sign,
    code: Option<&str>,
) -> Result<String, ConversionError> {
    let text = match value {
        Value::String(text) => Cow::Borrowed(text.as_str()),
        Value::Number(number) => {
            let text = number.to_string();
            if number.is_f64() {
                if format == AmountFormat::MinorUnits {
                    return Err(not_minor_units(value));
                }
                if !numbers_are_exact() && parse_decimal(&text).is_some_and(|d| d.digits.len() > 15)
                {
                    return Err(error(format!(
                        "the JSON number {text} has more significant digits than a 64-bit float keeps (15), so it may not be what the provider sent; amounts with this many digits must come as strings"
                    )));
                }
            }
            Cow::Owned(text)
        }
        other => {
            return Err(error(format!(
                "expected an amount (a string or a number), got {}",
                show(other)
            )));
        }
    };
    let (negative, digits) = match format {
        AmountFormat::MinorUnits => {
            parse_integer(&text, true).ok_or_else(|| not_minor_units(value))?
        }
        AmountFormat::Decimal => {
            let Some(decimal) = parse_decimal(&text) else {
                return Err(error(format!(
                    "expected a decimal amount like \"12.34\", got {}",
                    show(value)
                )));
            };
            let decimals = decimal.decimals();
            if decimals > u64::from(precision) {
                let owner = match code {
                    Some(code) => format!("{code} has {precision}"),
                    None => format!("the precision is {precision}"),
                };
                let plural = if decimals == 1 { "" } else { "s" };
                return Err(error(format!(
                    "{} has {decimals} decimal{plural} but {owner}; amounts are never rounded",
                    show(value)
                )));
            }
            if decimal.digits.is_empty() {
                (false, String::from("0"))
            } else {
                let zeros = (decimal.exponent + i64::from(precision)) as usize;
                if decimal.digits.len().saturating_add(zeros) > MAX_DIGITS {
                    return Err(too_long(value));
                }
                (
                    decimal.negative,
                    format!("{}{}", decimal.digits, "0".repeat(zeros)),
                )
            }
        }
    };
    if digits.len() > MAX_DIGITS {
        return Err(too_long(value));
    }

    Ok(signed(negative, digits, sign))
}

fn not_minor_units(value: &Value) -> ConversionError {
    let hint = match value {
        Value::String(text) if parse_decimal(text).is_some() => {
            " (is it in major units? then its format is Decimal)"
        }
        Value::Number(_) => " (is it in major units? then its format is Decimal)",
        _ => "",
    };
    error(format!(
        "expected a whole number of minor units like \"1234\", got {}{hint}",
        show(value)
    ))
}

fn too_long(value: &Value) -> ConversionError {
    error(format!(
        "{} has more than {MAX_DIGITS} digits in minor units",
        show(value)
    ))
}

fn signed(negative: bool, digits: String, sign: Sign) -> String {
    let negative = match sign {
        Sign::Keep => negative,
        Sign::Absolute => false,
        Sign::Negate => !negative,
    };
    if negative && digits != "0" {
        format!("-{digits}")
    } else {
        digits
    }
}

/// The reverse of [`minor_units`]: a protocol amount as a decimal with exactly
/// `precision` decimals, for sending upstream: `"1234"`, 2 -> `"12.34"`; `"5"`, 2 ->
/// `"0.05"`; `"-5"`, 2 -> `"-0.05"`; `"100"`, 0 -> `"100"`. Anything but an integer
/// (optional `-`, digits) is an error.
pub fn decimal_from_minor(minor: &str, precision: u32) -> Result<String, ConversionError> {
    let Some((negative, digits)) = parse_integer(minor, false) else {
        return Err(error(format!(
            "expected an amount in minor units like \"1234\", got {}",
            quoted(minor)
        )));
    };
    let precision = precision as usize;
    if precision > MAX_DIGITS {
        return Err(error(format!(
            "a precision of {precision} decimals is not a currency's"
        )));
    }

    let sign = if negative && digits != "0" { "-" } else { "" };
    if precision == 0 {
        return Ok(format!("{sign}{digits}"));
    }

    let padded = if digits.len() <= precision {
        format!("{}{digits}", "0".repeat(precision + 1 - digits.len()))
    } else {
        digits
    };
    let (whole, fraction) = padded.split_at(padded.len() - precision);
    Ok(format!("{sign}{whole}.{fraction}"))
}

/// Whether `text` is an amount as this library writes it for the protocol: an optional
/// `-`, then `0` or digits without leading zeros (`"1234"`, `"-5"`, `"0"`; not `""`,
/// `"-0"`, `"007"`, `"12.5"`, `"1e3"`, `"+1"`).
pub fn is_minor_units(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    match digits.as_bytes() {
        [] => false,
        [b'0'] => digits.len() == text.len(),
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
    }
}

/// An exact decimal: `digits` × 10^`exponent`, `digits` without leading or trailing
/// zeros; zero has no digits, exponent 0 and no sign.
struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Decimal {
    /// How many decimals the number really has (`12.340` has 2).
    fn decimals(&self) -> u64 {
        if self.exponent < 0 {
            self.exponent.unsigned_abs()
        } else {
            0
        }
    }
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `[+-]digits[.digits][(e|E)[+-]digits]`, exactly.
fn parse_decimal(text: &str) -> Option<Decimal> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (mantissa, ""),
    };
    if !all_digits(whole) || (mantissa.contains('.') && !all_digits(fraction)) {
        return None;
    }

    let mut exponent: i64 = match exponent {
        None => 0,
        Some(text) => {
            let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
            if !all_digits(digits) || digits.len() > 9 {
                return None;
            }
            text.parse().ok()?
        }
    };
    exponent -= fraction.len() as i64;
    let joined = format!("{whole}{fraction}");
    let significant = joined.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    if trimmed.is_empty() {
        return Some(Decimal {
            negative: false,
            digits: String::new(),
            exponent: 0,
        });
    }

    exponent += (significant.len() - trimmed.len()) as i64;
    Some(Decimal {
        negative,
        digits: trimmed.to_owned(),
        exponent,
    })
}

/// `[-]digits` (and a leading `+` if `plus`), as (negative, digits without leading
/// zeros); zero is `(false, "0")`.
fn parse_integer(text: &str, plus: bool) -> Option<(bool, String)> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') if plus => (false, &text[1..]),
        _ => (false, text),
    };
    if !all_digits(digits) {
        return None;
    }

    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        Some((false, String::from("0")))
    } else {
        Some((negative, digits.to_owned()))
    }
}

/// Whether serde_json keeps numbers' exact text (its `arbitrary_precision` feature,
/// which any crate in the build can turn on).
fn numbers_are_exact() -> bool {
    static EXACT: OnceLock<bool> = OnceLock::new();
    *EXACT.get_or_init(|| {
        const PROBE: &str = "0.10000000000000000555";
        serde_json::from_str::<Value>(PROBE)
            .ok()
            .map(|value| value.to_string())
            .is_some_and(|text| text == PROBE)
    })
}

/// The value of the longest `PREFIX*` entry of `table` that `value` starts with; the first
/// of equally long ones.
fn longest_prefix<'t, T>(value: &str, table: &'t [(&str, T)]) -> Option<&'t T> {
    table
        .iter()
        .filter_map(|(known, mapped)| {
            let prefix = known.strip_suffix('*')?;
            value.starts_with(prefix).then_some((prefix.len(), mapped))
        })
        .fold(
            None,
            |best: Option<(usize, &T)>, (len, mapped)| match best {
                Some((longest, _)) if longest >= len => best,
                _ => Some((len, mapped)),
            },
        )
        .map(|(_, mapped)| mapped)
}

/// A provider's value mapped through `table` (provider value, protocol value): an exact
/// match first, then an ASCII case-insensitive one (the first in table order), then the
/// longest prefix written `PREFIX*` (`PI_*` for every `PI_...` type). A value that matches
/// nothing gives `fallback` with `true` as the second element, so that the caller can log
/// or count values that fell back; without a fallback it is an error listing the known
/// values. A match gives `false`.
pub fn map_enum<T: Copy>(
    value: &str,
    table: &[(&str, T)],
    fallback: Option<T>,
) -> Result<(T, bool), ConversionError> {
    let found = table
        .iter()
        .find(|(known, _)| *known == value)
        .or_else(|| {
            table
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(value))
        })
        .map(|(_, mapped)| mapped)
        .or_else(|| longest_prefix(value, table));
    if let Some(mapped) = found {
        return Ok((*mapped, false));
    }

    if let Some(fallback) = fallback {
        return Ok((fallback, true));
    }

    const LISTED: usize = 20;
    let mut known: Vec<String> = table
        .iter()
        .take(LISTED)
        .map(|(known, _)| quoted(known))
        .collect();
    if table.len() > LISTED {
        known.push(format!("and {} more", table.len() - LISTED));
    }

    Err(error(format!(
        "unknown value {}; expected one of {}",
        quoted(value),
        known.join(", ")
    )))
}

/// Protocol metadata (string to string) from a provider record.
///
/// `fields` are (key, path) pairs: the value at the path is copied under the key with
/// [`to_text`] (strings as they are, numbers and booleans as JSON text, arrays and
/// objects as compact JSON); missing and `null` values are skipped. `flatten` are
/// (prefix, path) pairs naming objects whose leaves become `prefix.key.subkey` entries
/// (nested objects flattened with `.`, arrays as JSON text, `null` skipped; an empty
/// prefix gives bare keys; a non-object is stored under the prefix itself). Explicit
/// `fields` win over flattened entries with the same key.
pub fn metadata(
    record: &Value,
    fields: &[(&str, &[Step])],
    flatten: &[(&str, &[Step])],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (prefix, path) in flatten {
        if let Some(value) = lookup(record, path) {
            flatten_into(&mut out, prefix, value);
        }
    }

    for (key, path) in fields {
        if let Some(text) = lookup(record, path).and_then(to_text) {
            out.insert((*key).to_owned(), text);
        }
    }

    out
}

pub fn flatten_into(out: &mut BTreeMap<String, String>, key: &str, value: &Value) {
    flatten_at(out, &mut key.to_owned(), value);
}

/// [`flatten_into`] with the key of `value` in `path`, one buffer for every key below it.
fn flatten_at(out: &mut BTreeMap<String, String>, path: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            for (sub, value) in map {
                let parent = path.len();
                if parent > 0 {
                    path.push('.');
                }
                path.push_str(sub);
                flatten_at(out, path, value);
                path.truncate(parent);
            }
        }
        other if !path.is_empty() => {
            if let Some(text) = to_text(other) {
                out.insert(path.clone(), text);
            }
        }
        _ => {}
    }
}
