//! "Nordbank": a mock bank shaped like Modulr and Banking Circle, for end-to-end tests of mapped
//! connectors that fan out per account, walk mandatory time windows, read JSON-number amounts
//! with a credit flag and local times, and pay without idempotency keys.
//!
//! # Values
//!
//! - Times are LOCAL TIMES OF EUROPE/OSLO WITHOUT AN OFFSET, always with milliseconds:
//!   `2026-03-29T01:59:59.123`. Oslo is UTC+01:00 in winter and UTC+02:00 in summer, by the EU
//!   rule (summer time from the last Sunday of March 01:00 UTC to the last Sunday of October
//!   01:00 UTC), applied to every year. So local `02:00:00.000`..`02:59:59.999` never occurs on
//!   the last Sunday of March (the gap), and occurs TWICE on the last Sunday of October (the
//!   overlap: first at +02:00, then at +01:00). The mock writes the plain local text, as a real
//!   bank does: two different instants of the overlap hour can carry the same text, and nothing
//!   in the record tells them apart (no offset field). The mock itself always works on the true
//!   instant (filters, sort); the ground truth keeps it ([`oslo_is_ambiguous`] tells which
//!   texts are ambiguous, [`oslo_resolve`] turns a text into an instant with a chosen
//!   [`Fold`]). Seeded data always holds records on both sides of the spring gap and in both
//!   occurrences of the autumn overlap hour (with identical texts).
//! - Query times (`fromDate`, `toDate`, `fromCreatedDate`) are `YYYY-MM-DDTHH:MM:SS` with an
//!   optional `.f` to `.fff` (at most 3 digits) and an optional zone (`Z`, `+HH:MM`, `+HHMM`,
//!   `-...`). With a zone the text is that exact instant. Without one it is Oslo local time:
//!   an overlap text means its EARLIER instant (+02:00; the later occurrence can only be named
//!   with an offset), a gap text is read with the winter offset +01:00 (so `02:30` in the gap is
//!   `01:30Z`, i.e. local `03:30`), as java.time does. Anything else is 400 `INVALID_DATE`.
//! - Amounts are JSON NUMBERS in major units, written with the EXACT shortest decimal text of
//!   the value: no exponent, no trailing fractional zeros, no point for whole values (`1500`,
//!   `12.5`, `0.005`, `12345678901234.57`), never more fractional digits than the currency's
//!   exponent (JPY 0, EUR/NOK/SEK/GBP 2, KWD 3). The body is written as text by this module
//!   (a `Value` number is an `f64` unless serde_json's `arbitrary_precision` is on), hence
//!   large amounts keep every digit; a client that parses them as `f64` loses digits.
//!   Transaction amounts are ALWAYS POSITIVE; the direction is `credit` (true = money in).
//!   Balances may be negative (`-12.5`).
//!
//! # HTTP API
//!
//! Every `/api/...` call needs `Authorization: Bearer <token>` with a live token; else 401
//! `{"error":"invalid_token","error_description":"The access token expired"|"Missing or unknown
//! access token"}` with `WWW-Authenticate: Bearer error="invalid_token"`. Only the methods below
//! exist (others 405), unknown paths 404. Unknown or repeated query parameters are 400.
//!
//! | method and path | query or body | answer |
//! |---|---|---|
//! | `POST /oauth2/token` | form `grant_type=client_credentials&client_id&client_secret` | token |
//! | `GET /api/accounts` | `page`, `size`, `fromCreatedDate` | page of accounts |
//! | `GET /api/accounts/{id}` | none | one account with its balances |
//! | `GET /api/accounts/{id}/transactions` | `fromDate`, `toDate` (both required), `page`, `size` | page of transactions |
//! | `GET /api/beneficiaries` | `page`, `size`, `fromCreatedDate` | page of beneficiaries |
//! | `POST /api/payments` | JSON payment body | the executed payment (201) |
//! | `GET /api/payments` | `reference`, `id`, `page`, `size` | page of payments |
//!
//! - Token: `POST /oauth2/token` with a form body (the credentials may instead come as HTTP
//!   Basic; both at once only if they agree) -> 200 `{"access_token":"nbt_<n>","token_type":
//!   "Bearer","expires_in":300}`. Tokens are SHORT-LIVED: 300 s of wall-clock time by default
//!   ([`Nordbank::set_token_ttl`], `expires_in` rounded up to whole seconds);
//!   [`Nordbank::expire_tokens`] ends every token issued so far. Errors (RFC 6749): 400
//!   `{"error":"invalid_request"|"unsupported_grant_type","error_description":..}`, 401
//!   `{"error":"invalid_client",..}`, 405 for another method.
//! - Pages: `page` counts FROM 0 (default 0), `size` 1..=500 (default 20); else 400. Envelope:
//!   `{"content":[...],"page":0,"size":20,"totalPages":N,"totalSize":M}` with
//!   `totalPages = ceil(totalSize / size)` (0 when empty). Pages past the end are 200 with an
//!   empty `content`. Stop rule: the last page is `totalPages - 1`; a page with fewer than
//!   `size` items is the last one (the last page may also be full: then only `totalPages`, or
//!   an empty next page, tells).
//! - Accounts (`/api/accounts`): sorted by `createdDate` (instant) ascending, ties by `id`
//!   ascending (byte-wise). `fromCreatedDate` (optional) keeps `createdDate >= fromCreatedDate`
//!   (inclusive, millisecond precision). Item: `{"id":"A1B2C3D4","name":"Operations",
//!   "currency":"EUR","status":"ACTIVE","createdDate":"2025-07-03T14:22:05.120",
//!   "identifiers":[{"type":"IBAN","value":"NO..."}]}` (IBANs are not checksum-valid).
//! - One account (`/api/accounts/{id}`): the same object plus `"balance":1234.5,
//!   "availableBalance":1200` (JSON numbers, major units, account currency; no list of
//!   balances). Unknown id: 404.
//! - Transactions (`/api/accounts/{id}/transactions`): only per account. `fromDate` and
//!   `toDate` are MANDATORY (400 `REQUIRED` naming the missing one), `toDate` must be after
//!   `fromDate` (400 `INVALID_WINDOW`), and `toDate - fromDate` may not exceed 31 days =
//!   2 678 400 000 ms between the two instants (400 `WINDOW_TOO_LONG`; exactly 31 days is
//!   fine). The window filters `lastUpdated`: `fromDate <= lastUpdated < toDate` (from
//!   INCLUSIVE, to EXCLUSIVE, millisecond precision), so consecutive windows `[a,b)`, `[b,c)`
//!   tile time with no gap and no overlap. Sort: OLDEST FIRST by `lastUpdated` (instant), ties
//!   by `id` ascending (byte-wise; ids are random, so a tie's order is not its creation order);
//!   [`Nordbank::set_newest_first`] reverses both (as real Modulr serves newest first). Unknown
//!   account: 404. Item:
//!   `{"id":"T0A1B2C3D4E","accountId":"A1B2C3D4","type":"PI_FAST","status":"PROCESSED",
//!   "credit":true,"amount":12.5,"currency":"EUR","transactionDate":"...","postedDate":"..."|null,
//!   "lastUpdated":"...","description":"...","reference":"..."|"","counterpartyName":..,
//!   "counterpartyAccountId":"A..." (INT_INTERC only),"paymentId":"P..."|null}`.
//!   - `type` (see [`NB_TYPES`]): `PI_*` money in (`credit` true), `PO_*` money out (false),
//!     `INT_INTERC` between two own accounts (either), `FEE_*` fees (false), `PI_REV` (false)
//!     and `PO_REV` (true) reversals, `CARD_PURCHASE` (false), `CARD_AUTH` (false): a card
//!     authorisation HOLD, not a money movement; a connector should skip it.
//!   - `status`: `PENDING`, `PROCESSED`, `FAILED`; card holds are `HELD`, later `RELEASED`.
//!   - `transactionDate`: when it happened (never changes); `postedDate`: when it was booked,
//!     set (= `lastUpdated`) exactly when `status` is `PROCESSED`, else `null`; `lastUpdated`:
//!     the last change (creation, then every status change). A status change moves
//!     `lastUpdated` to the clock, so the record leaves its old window and enters the current
//!     one.
//!   - `counterpartyName`: a non-empty string for `PI_*` and `PO_*` (reversals included);
//!     `null` for `INT_INTERC`; `""` for `CARD_*`; the key is ABSENT for `FEE_*`.
//!     `counterpartyAccountId`: only on `INT_INTERC`, the other own account; absent otherwise.
//!   - `paymentId`: the payment (`P...`) that created the transaction, else `null`; an internal
//!     transfer's two legs share one (seeded ones get a `P...` id too, with no payment object).
//!   - `reference`: the payment's reference for legs of API payments; free text or `""`
//!     otherwise. `description`: free text.
//! - Beneficiaries (`/api/beneficiaries`): one global list, sorted like accounts, with the same
//!   `fromCreatedDate`. Item: `{"id":"B1C2D3E4","name":"Kari Nordmann","iban":"NO...",
//!   "createdDate":"..."}`.
//! - Payments (`POST /api/payments`), WITHOUT idempotency support (every accepted POST moves
//!   money): body `{"sourceAccountId":"A...","destination":{"type":"BENEFICIARY"|"ACCOUNT",
//!   "id":".."},"amount":12.5,"currency":"EUR","reference":"INV 2026-0042"}`, every key required,
//!   no others. `amount`: a positive JSON NUMBER (a string is 400) in major units, exactly
//!   representable in the currency's minor unit (`12.50` and `1.25e1` are fine for EUR,
//!   `12.505` is not); `currency`: the source account's; `reference`: 6 to 18 characters of
//!   `A-Z a-z 0-9 - . & /` and space, not all the same character. `BENEFICIARY`: a payout to a
//!   beneficiary; `ACCOUNT`: an internal transfer to another own account of the same currency.
//!   Errors: 400 with `field` naming the culprit. Success: 201 with the payment `{"id":"P...",
//!   "status":"SUBMITTED","createdDate":..,"sourceAccountId":..,"destination":{..},
//!   "amount":12.5,"currency":"EUR","reference":".."}` (the amount re-written in the shortest
//!   form). Execution, at the clock's time: a payout adds ONE debit leg on the source account
//!   (`type` `PO_SECT` for EUR, `PO_FAST` otherwise, `counterpartyName` the beneficiary's
//!   name); an internal transfer adds TWO `INT_INTERC` legs, a debit on the source and a credit
//!   on the destination (`counterpartyAccountId` the other one). Legs are `PENDING` with
//!   `paymentId` and `reference` set; `availableBalance` of the source drops at once.
//!   [`Nordbank::settle_payments`] processes every submitted payment (legs `PROCESSED`,
//!   balances move, payment `PROCESSED`); [`Nordbank::fail_payment`] fails one (legs `FAILED`,
//!   available balance restored). No funds check.
//! - `GET /api/payments`: every payment, oldest first (creation, ties by id), `reference` and
//!   `id` filter by exact match; paged as above.
//! - API errors are a JSON ARRAY: `[{"field":"toDate"|null,"code":"WINDOW_TOO_LONG",
//!   "message":".."}]`. Injected faults: 429 `[{"code":"RATE_LIMITED",..}]`, 5xx
//!   `[{"code":"SERVICE_UNAVAILABLE",..}]`, with `Retry-After` when configured; an injected
//!   fault answers before the router, so it never executes a payment.
//!   [`Nordbank::fail_after_executing`] makes the next payments EXECUTE and then answer 500
//!   `[{"code":"INTERNAL_ERROR",..}]`.
//!
//! The clock does not follow real time: it starts at [`NORDBANK_EPOCH_MS`] and moves only when
//! set. Seeded records lie between [`NORDBANK_SEED_START_MS`] and one day before the epoch.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::mock_cursor::{currency_exponent, format_decimal};
use super::mock_http::{Call, Control, Handler, MockServer, Prng, Request, Response, lock};
use super::mock_pages::{civil_from_days, days_from_civil};

/// 2026-04-15T10:00:00Z in unix milliseconds, the default "now".
pub const NORDBANK_EPOCH_MS: i64 = 1_776_247_200_000;
/// 2025-10-01T00:00:00Z: seeded transactions start here (so both DST changes of 2025/26 lie
/// inside the seeded range).
pub const NORDBANK_SEED_START_MS: i64 = 1_759_276_800_000;
pub const NORDBANK_MAX_SIZE: usize = 500;
pub const NORDBANK_DEFAULT_SIZE: usize = 20;
/// The longest window `toDate - fromDate` allowed, in milliseconds (31 days).
pub const NORDBANK_MAX_WINDOW_MS: i64 = 31 * DAY_MS;
pub const NORDBANK_DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

/// Transaction types and their direction (`Some(credit)`, or `None`: either).
pub const NB_TYPES: [(&str, Option<bool>); 13] = [
    ("PI_SECT", Some(true)),
    ("PI_FAST", Some(true)),
    ("PI_SEPA_INST", Some(true)),
    ("PO_FAST", Some(false)),
    ("PO_SECT", Some(false)),
    ("PO_SEPA_INST", Some(false)),
    ("INT_INTERC", None),
    ("FEE_TXN", Some(false)),
    ("FEE_ACMNT", Some(false)),
    ("PI_REV", Some(false)),
    ("PO_REV", Some(true)),
    ("CARD_PURCHASE", Some(false)),
    ("CARD_AUTH", Some(false)),
];
pub const NB_STATUSES: [&str; 5] = ["PENDING", "PROCESSED", "FAILED", "HELD", "RELEASED"];

// ---------------------------------------------------------------------------------------------
// Europe/Oslo local time
// ---------------------------------------------------------------------------------------------

/// 01:00 UTC of the last Sunday of `month` (March or October) in `year`, in unix millis.
fn last_sunday_1am_utc(year: i64, month: u32) -> i64 {
    let last_day = days_from_civil(year, month + 1, 1) - 1;
    // 1970-01-01 was a Thursday: (days + 4) mod 7 is 0 on Sundays.
    let weekday = (last_day + 4).rem_euclid(7);
    (last_day - weekday) * DAY_MS + HOUR_MS
}

/// When summer time starts and ends in `year` (unix millis, UTC).
pub fn oslo_summer_time(year: i64) -> (i64, i64) {
    (last_sunday_1am_utc(year, 3), last_sunday_1am_utc(year, 10))
}

/// Oslo's offset from UTC at that instant, in minutes: 120 in summer time, 60 otherwise.
pub fn oslo_offset_minutes(utc_ms: i64) -> i32 {
    let (year, _, _) = civil_from_days(utc_ms.div_euclid(DAY_MS));
    let (start, end) = oslo_summer_time(year);
    if (start..end).contains(&utc_ms) {
        120
    } else {
        60
    }
}

/// Milliseconds since 1970-01-01T00:00:00 of a wall-clock reading (no zone).
fn local_ms_of(text_fields: (i64, u32, u32, i64, i64, i64, i64)) -> i64 {
    let (year, month, day, hour, minute, second, millis) = text_fields;
    days_from_civil(year, month, day) * DAY_MS
        + hour * HOUR_MS
        + minute * MINUTE_MS
        + second * 1000
        + millis
}

fn format_local_ms(local_ms: i64) -> String {
    let (year, month, day) = civil_from_days(local_ms.div_euclid(DAY_MS));
    let of_day = local_ms.rem_euclid(DAY_MS);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}",
        of_day / HOUR_MS,
        of_day / MINUTE_MS % 60,
        of_day / 1000 % 60,
        of_day % 1000
    )
}

/// The Oslo wall-clock text of an instant, as Nordbank writes it: `2026-03-29T01:59:59.123`.
pub fn oslo_local_text(utc_ms: i64) -> String {
    format_local_ms(utc_ms + i64::from(oslo_offset_minutes(utc_ms)) * MINUTE_MS)
}

/// `2026-03-29T00:59:59.123Z`, for messages and tests.
pub fn utc_text(utc_ms: i64) -> String {
    format!("{}Z", format_local_ms(utc_ms))
}

/// Which instant an ambiguous local text stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fold {
    /// The first occurrence (summer time, +02:00).
    Earlier,
    /// The second occurrence (winter time, +01:00).
    Later,
}

/// Every instant whose Oslo wall clock reads `local_ms`, ascending: none in the spring gap,
/// two in the autumn overlap, else one.
fn oslo_instants(local_ms: i64) -> Vec<i64> {
    [120i64, 60]
        .into_iter()
        .map(|offset| (local_ms - offset * MINUTE_MS, offset))
        .filter(|(utc, offset)| i64::from(oslo_offset_minutes(*utc)) == *offset)
        .map(|(utc, _)| utc)
        .collect()
}

/// Splits `YYYY-MM-DDTHH:MM:SS[.f{1,3}]` off the front of `text`: the wall-clock millis and the
/// rest of the text.
fn parse_wall_clock(text: &str) -> Option<(i64, &str)> {
    let b = text.as_bytes();
    if b.len() < 19 || !b[..19].is_ascii() {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = &text[range];
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)? as u32, digits(8..10)? as u32);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let days_in_month = if (1..=12).contains(&month) {
        let next = if month == 12 {
            days_from_civil(year + 1, 1, 1)
        } else {
            days_from_civil(year, month + 1, 1)
        };
        (next - days_from_civil(year, month, 1)) as u32
    } else {
        return None;
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(after) = rest.strip_prefix('.') {
        let count = after.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=3).contains(&count) {
            return None;
        }
        millis = after[..count].parse::<i64>().ok()? * 10i64.pow(3 - count as u32);
        rest = &after[count..];
    }
    Some((
        local_ms_of((year, month, day, hour, minute, second, millis)),
        rest,
    ))
}

/// A zone suffix: `Z`, `+HH:MM`, `+HHMM`, `-HH:MM`, `-HHMM`, in minutes east of UTC.
fn parse_zone(text: &str) -> Option<i64> {
    if text == "Z" {
        return Some(0);
    }
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &text[1..];
    if !body.is_ascii() {
        return None;
    }
    let (hh, mm) = match body.len() {
        5 if body.as_bytes()[2] == b':' => (&body[..2], &body[3..]),
        4 => (&body[..2], &body[2..]),
        _ => return None,
    };
    if !hh.bytes().chain(mm.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (hh, mm): (i64, i64) = (hh.parse().ok()?, mm.parse().ok()?);
    (hh <= 23 && mm <= 59).then_some(sign * (hh * 60 + mm))
}

/// The instant of an Oslo local text (`2025-10-26T02:30:00.000`, 0 to 3 fractional digits, no
/// zone): an overlap text gives the instant `fold` picks, a gap text is read at +01:00.
pub fn oslo_resolve(text: &str, fold: Fold) -> Option<i64> {
    let (local, rest) = parse_wall_clock(text)?;
    if !rest.is_empty() {
        return None;
    }
    Some(resolve_local(local, fold))
}

fn resolve_local(local: i64, fold: Fold) -> i64 {
    let instants = oslo_instants(local);
    match (instants.as_slice(), fold) {
        ([], _) => local - HOUR_MS,
        ([only], _) => *only,
        ([first, ..], Fold::Earlier) => *first,
        ([.., last], Fold::Later) => *last,
    }
}

/// Whether an instant's Oslo local text also names another instant (the autumn overlap hour).
pub fn oslo_is_ambiguous(utc_ms: i64) -> bool {
    let local = utc_ms + i64::from(oslo_offset_minutes(utc_ms)) * MINUTE_MS;
    oslo_instants(local).len() > 1
}

/// A query time as Nordbank reads it: with a zone, that instant; without, Oslo local time read
/// with [`Fold::Earlier`] (gap texts at +01:00). None if malformed.
pub fn nordbank_query_time(text: &str) -> Option<i64> {
    let (local, rest) = parse_wall_clock(text)?;
    if rest.is_empty() {
        return Some(resolve_local(local, Fold::Earlier));
    }
    Some(local - parse_zone(rest)? * MINUTE_MS)
}

// ---------------------------------------------------------------------------------------------
// Exact decimal numbers in JSON
// ---------------------------------------------------------------------------------------------

/// The shortest exact decimal text of `minor / 10^exponent`: `1250, 2` -> `12.5`,
/// `150000, 2` -> `1500`, `5, 3` -> `0.005`, `-1, 2` -> `-0.01`.
pub fn nb_number_text(minor: i64, exponent: u32) -> String {
    let text = format_decimal(minor, exponent);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// The exact value of a JSON number lexeme in minor units of a currency with `exponent`
/// decimals (`"12.50"`, `"1.25e1"`, `"1500"`); None if malformed, not a whole number of minor
/// units, or too large for i64.
pub fn nb_number_minor(lexeme: &str, exponent: u32) -> Option<i64> {
    let (negative, rest) = match lexeme.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, lexeme),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
        || (mantissa.contains('.') && frac.is_empty())
        || (int.len() > 1 && int.starts_with('0'))
        || exp.abs() > 40
    {
        return None;
    }
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    // value = digits * 10^(exp - frac.len()); minor = value * 10^exponent.
    let shift = exp - frac.len() as i64 + i64::from(exponent);
    let (kept, dropped) = if shift >= 0 {
        (
            format!("{digits}{}", "0".repeat(shift as usize)),
            String::new(),
        )
    } else {
        let cut = digits.len().saturating_sub((-shift) as usize);
        (digits[..cut].to_owned(), digits[cut..].to_owned())
    };
    if !dropped.bytes().all(|c| c == b'0') {
        return None;
    }
    let magnitude: i64 = if kept.is_empty() {
        0
    } else {
        kept.parse().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Marks a string of a [`Value`] as raw JSON number text (see [`render_json`]).
const RAW: char = '\u{E000}';

/// A JSON number written exactly as `text` by [`render_json`].
pub fn raw_number(text: &str) -> Value {
    Value::String(format!("{RAW}{text}"))
}

/// The JSON text of `value`, where strings made by [`raw_number`] are written as bare number
/// text; the rest as serde_json writes it.
pub fn render_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

fn write_json(out: &mut String, value: &Value) {
    match value {
        Value::String(text) if text.starts_with(RAW) => out.push_str(&text[RAW.len_utf8()..]),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Parses JSON text keeping every number's exact lexeme: numbers come back as strings that
/// [`raw_lexeme`] recognises (and [`render_json`] writes back unchanged). Duplicate keys,
/// strings holding U+E000, nesting deeper than 64 and trailing text are errors.
pub fn parse_json_exact(text: &str) -> Result<Value, String> {
    let mut parser = JsonParser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let value = parser.value()?;
    parser.skip_ws();
    if parser.pos != parser.bytes.len() {
        return Err(format!("trailing text at byte {}", parser.pos));
    }
    Ok(value)
}

/// The exact number text of a value from [`parse_json_exact`] or [`raw_number`].
pub fn raw_lexeme(value: &Value) -> Option<&str> {
    value.as_str()?.strip_prefix(RAW)
}

struct JsonParser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl JsonParser<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn error<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.pos))
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_ws();
        self.depth += 1;
        if self.depth > 64 {
            return self.error("nesting too deep");
        }
        let value = match self.bytes.get(self.pos) {
            Some(b'{') => self.object()?,
            Some(b'[') => self.array()?,
            Some(b'"') => Value::String(self.string()?),
            Some(b't') => self.literal("true", Value::Bool(true))?,
            Some(b'f') => self.literal("false", Value::Bool(false))?,
            Some(b'n') => self.literal("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return self.error("expected a value"),
        };
        self.depth -= 1;
        Ok(value)
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, String> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            self.error("malformed literal")
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.bytes.get(self.pos), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.error("malformed number"),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return self.error("malformed number");
            }
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.error("malformed number");
            }
        }
        Ok(raw_number(&self.text[start..self.pos]))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let hex = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
        match hex {
            Some(hex) => {
                self.pos += 4;
                Ok(u32::from_str_radix(hex, 16).unwrap())
            }
            None => self.error("malformed \\u escape"),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                return self.error("unterminated string");
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    break;
                }
                b'\\' => {
                    self.pos += 1;
                    let escape = self.bytes.get(self.pos).copied();
                    self.pos += 1;
                    let c = match escape {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let high = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&high) {
                                if !self.text[self.pos..].starts_with("\\u") {
                                    return self.error("lone surrogate");
                                }
                                self.pos += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return self.error("lone surrogate");
                                }
                                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                high
                            };
                            match char::from_u32(code) {
                                Some(c) => c,
                                None => return self.error("lone surrogate"),
                            }
                        }
                        _ => return self.error("malformed escape"),
                    };
                    out.push(c);
                }
                0..=0x1F => return self.error("control character in string"),
                _ => {
                    let c = self.text[self.pos..].chars().next().unwrap();
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
        if out.contains(RAW) {
            return self.error("U+E000 in a string");
        }
        Ok(out)
    }

    fn array(&mut self) -> Result<Value, String> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return self.error("expected , or ]"),
            }
        }
    }

    fn object(&mut self) -> Result<Value, String> {
        self.pos += 1;
        let mut map = Map::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return self.error("expected a key");
            }
            let key = self.string()?;
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b':') {
                return self.error("expected :");
            }
            self.pos += 1;
            let value = self.value()?;
            if map.insert(key.clone(), value).is_some() {
                return self.error(&format!("duplicate key {key:?}"));
            }
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                _ => return self.error("expected , or }"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NbAccount {
    pub id: String,
    pub name: String,
    /// Upper-case ISO code.
    pub currency: String,
    pub created_ms: i64,
    pub iban: String,
    pub balance_minor: i64,
    pub available_minor: i64,
}

impl NbAccount {
    pub fn exponent(&self) -> u32 {
        currency_exponent(&self.currency)
    }

    /// `balance` as served (exact decimal text).
    pub fn balance_text(&self) -> String {
        nb_number_text(self.balance_minor, self.exponent())
    }

    pub fn available_text(&self) -> String {
        nb_number_text(self.available_minor, self.exponent())
    }

    /// An item of `/api/accounts`.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "currency": self.currency,
            "status": "ACTIVE",
            "createdDate": oslo_local_text(self.created_ms),
            "identifiers": [{"type": "IBAN", "value": self.iban}],
        })
    }

    /// `/api/accounts/{id}`.
    pub fn detail_json(&self) -> Value {
        let mut value = self.to_json();
        value["balance"] = raw_number(&self.balance_text());
        value["availableBalance"] = raw_number(&self.available_text());
        value
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NbBeneficiary {
    pub id: String,
    pub name: String,
    pub iban: String,
    pub created_ms: i64,
}

impl NbBeneficiary {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "iban": self.iban,
            "createdDate": oslo_local_text(self.created_ms),
        })
    }
}

/// What `counterpartyName` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NbCounterparty {
    Name(String),
    /// `"counterpartyName": null`
    Null,
    /// `"counterpartyName": ""`
    Empty,
    /// No `counterpartyName` key.
    Absent,
}

impl NbCounterparty {
    /// The rule for a type: names for `PI_*`/`PO_*`, null for `INT_INTERC`, `""` for `CARD_*`,
    /// absent for `FEE_*` (and anything else).
    pub fn for_type(kind: &str, name: &str) -> NbCounterparty {
        if kind.starts_with("PI_") || kind.starts_with("PO_") {
            NbCounterparty::Name(name.to_owned())
        } else if kind == "INT_INTERC" {
            NbCounterparty::Null
        } else if kind.starts_with("CARD_") {
            NbCounterparty::Empty
        } else {
            NbCounterparty::Absent
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NbTransaction {
    pub id: String,
    pub account_id: String,
    /// The `type` field.
    pub kind: String,
    pub status: String,
    pub credit: bool,
    /// Always > 0.
    pub amount_minor: i64,
    pub currency: String,
    pub transaction_ms: i64,
    /// Some(lastUpdated) exactly when PROCESSED.
    pub posted_ms: Option<i64>,
    /// What the window filters and the list sorts on.
    pub updated_ms: i64,
    pub description: String,
    pub reference: String,
    pub counterparty: NbCounterparty,
    /// INT_INTERC only: the other own account.
    pub counterparty_account_id: Option<String>,
    pub payment_id: Option<String>,
}

impl NbTransaction {
    /// `amount` as served: the exact shortest decimal text (`12.5`).
    pub fn amount_text(&self) -> String {
        nb_number_text(self.amount_minor, currency_exponent(&self.currency))
    }

    /// The signed amount in minor units (negative when `credit` is false).
    pub fn signed_minor(&self) -> i64 {
        if self.credit {
            self.amount_minor
        } else {
            -self.amount_minor
        }
    }

    pub fn to_json(&self) -> Value {
        let mut item = json!({
            "id": self.id,
            "accountId": self.account_id,
            "type": self.kind,
            "status": self.status,
            "credit": self.credit,
            "amount": raw_number(&self.amount_text()),
            "currency": self.currency,
            "transactionDate": oslo_local_text(self.transaction_ms),
            "postedDate": self.posted_ms.map(oslo_local_text),
            "lastUpdated": oslo_local_text(self.updated_ms),
            "description": self.description,
            "reference": self.reference,
        });
        match &self.counterparty {
            NbCounterparty::Name(name) => item["counterpartyName"] = json!(name),
            NbCounterparty::Null => item["counterpartyName"] = Value::Null,
            NbCounterparty::Empty => item["counterpartyName"] = json!(""),
            NbCounterparty::Absent => {}
        }
        if let Some(other) = &self.counterparty_account_id {
            item["counterpartyAccountId"] = json!(other);
        }
        item["paymentId"] = json!(self.payment_id);
        item
    }
}

/// What [`Nordbank::add_transaction`] creates. `updated_ms` defaults to the clock,
/// `transaction_ms` to `updated_ms`; `postedDate` follows the status; `counterparty` None
/// follows [`NbCounterparty::for_type`] with the name "Test Counterparty".
#[derive(Clone, Debug)]
pub struct NbNewTransaction {
    pub account_id: String,
    pub kind: String,
    pub status: String,
    pub credit: bool,
    pub amount_minor: i64,
    pub transaction_ms: Option<i64>,
    pub updated_ms: Option<i64>,
    pub description: String,
    pub reference: String,
    pub counterparty: Option<NbCounterparty>,
    pub counterparty_account_id: Option<String>,
    pub payment_id: Option<String>,
}

impl Default for NbNewTransaction {
    fn default() -> Self {
        NbNewTransaction {
            account_id: String::new(),
            kind: "PI_FAST".to_owned(),
            status: "PROCESSED".to_owned(),
            credit: true,
            amount_minor: 1000,
            transaction_ms: None,
            updated_ms: None,
            description: "test transaction".to_owned(),
            reference: String::new(),
            counterparty: None,
            counterparty_account_id: None,
            payment_id: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NbPayment {
    pub id: String,
    /// SUBMITTED, then PROCESSED or FAILED.
    pub status: String,
    pub created_ms: i64,
    pub source_account_id: String,
    /// BENEFICIARY or ACCOUNT.
    pub destination_type: String,
    pub destination_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub reference: String,
    /// The transactions it created (one for a payout, debit then credit for a transfer).
    pub leg_ids: Vec<String>,
}

impl NbPayment {
    pub fn amount_text(&self) -> String {
        nb_number_text(self.amount_minor, currency_exponent(&self.currency))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "createdDate": oslo_local_text(self.created_ms),
            "sourceAccountId": self.source_account_id,
            "destination": {"type": self.destination_type, "id": self.destination_id},
            "amount": raw_number(&self.amount_text()),
            "currency": self.currency,
            "reference": self.reference,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

struct NbState {
    client_id: String,
    client_secret: String,
    token_ttl: Duration,
    tokens: Vec<(String, Instant)>,
    token_requests: usize,
    now_ms: i64,
    rng: Prng,
    ids: HashSet<String>,
    account_seed_ms: i64,
    beneficiary_seed_ms: i64,
    accounts: Vec<NbAccount>,
    beneficiaries: Vec<NbBeneficiary>,
    transactions: Vec<NbTransaction>,
    payments: Vec<NbPayment>,
    newest_first: bool,
    /// The next this-many executed payments are answered 500.
    fail_after_executing: usize,
}

impl NbState {
    /// A fresh random id: `prefix` and `hex` upper-case hex digits.
    fn new_id(&mut self, prefix: &str, hex: usize) -> String {
        loop {
            let id = format!("{prefix}{}", self.rng.hex(hex).to_ascii_uppercase());
            if self.ids.insert(id.clone()) {
                return id;
            }
        }
    }

    fn iban(&mut self) -> String {
        format!(
            "NO{:02}{:011}",
            self.rng.range(10, 99),
            self.rng.range(0, 99_999_999_999)
        )
    }

    fn account(&self, id: &str) -> Option<&NbAccount> {
        self.accounts.iter().find(|a| a.id == id)
    }

    fn account_mut(&mut self, id: &str) -> Option<&mut NbAccount> {
        self.accounts.iter_mut().find(|a| a.id == id)
    }

    /// A positive random amount in minor units: sub-unit, round, ordinary or huge (more
    /// significant digits than an f64 holds).
    fn random_amount(&mut self, exponent: u32) -> i64 {
        let unit = 10i64.pow(exponent);
        match self.rng.below(20) {
            0 | 1 => self.rng.range(1, (unit - 1).max(1)),
            2 | 3 => self.rng.range(1, 2000) * unit,
            4 => self
                .rng
                .range(100_000_000_000_000_000, 900_000_000_000_000_000),
            _ => self.rng.range(1, unit * 5_000),
        }
    }

    fn push_transaction(&mut self, spec: NbNewTransaction) -> String {
        let id = self.new_id("T", 10);
        let updated_ms = spec.updated_ms.unwrap_or(self.now_ms);
        let currency = self
            .account(&spec.account_id)
            .map_or_else(|| "EUR".to_owned(), |a| a.currency.clone());
        let counterparty = spec
            .counterparty
            .unwrap_or_else(|| NbCounterparty::for_type(&spec.kind, "Test Counterparty"));
        self.transactions.push(NbTransaction {
            id: id.clone(),
            account_id: spec.account_id,
            kind: spec.kind,
            posted_ms: (spec.status == "PROCESSED").then_some(updated_ms),
            status: spec.status,
            credit: spec.credit,
            amount_minor: spec.amount_minor,
            currency,
            transaction_ms: spec.transaction_ms.unwrap_or(updated_ms),
            updated_ms,
            description: spec.description,
            reference: spec.reference,
            counterparty,
            counterparty_account_id: spec.counterparty_account_id,
            payment_id: spec.payment_id,
        });
        id
    }

    /// The account's transactions with `from <= lastUpdated < to`, in the served order.
    fn window(&self, account_id: &str, from_ms: i64, to_ms: i64) -> Vec<&NbTransaction> {
        let mut items: Vec<&NbTransaction> = self
            .transactions
            .iter()
            .filter(|t| t.account_id == account_id && (from_ms..to_ms).contains(&t.updated_ms))
            .collect();
        items.sort_by(|a, b| a.updated_ms.cmp(&b.updated_ms).then(a.id.cmp(&b.id)));
        if self.newest_first {
            items.reverse();
        }
        items
    }

    fn set_transaction_status(&mut self, id: &str, status: &str, at_ms: i64) -> bool {
        match self.transactions.iter_mut().find(|t| t.id == id) {
            Some(t) => {
                t.status = status.to_owned();
                t.updated_ms = at_ms;
                t.posted_ms = (status == "PROCESSED").then_some(at_ms);
                true
            }
            None => false,
        }
    }

    /// Makes one seeded transaction (and, for INT_INTERC, its other leg) at `updated_ms`.
    fn seed_one(&mut self, account: &NbAccount, updated_ms: i64, special: bool) {
        let exponent = account.exponent();
        let weighted = [
            "PI_SECT",
            "PI_FAST",
            "PI_FAST",
            "PI_SEPA_INST",
            "PO_FAST",
            "PO_FAST",
            "PO_SECT",
            "PO_SEPA_INST",
            "INT_INTERC",
            "INT_INTERC",
            "FEE_TXN",
            "FEE_ACMNT",
            "PI_REV",
            "PO_REV",
            "CARD_PURCHASE",
            "CARD_AUTH",
            "CARD_AUTH",
        ];
        let mut kind = if special {
            "PI_FAST"
        } else {
            *self.rng.pick(&weighted)
        };
        let partner = (kind == "INT_INTERC")
            .then(|| {
                let others: Vec<NbAccount> = self
                    .accounts
                    .iter()
                    .filter(|a| a.id != account.id && a.currency == account.currency)
                    .cloned()
                    .collect();
                (!others.is_empty()).then(|| self.rng.pick(&others).clone())
            })
            .flatten();
        if kind == "INT_INTERC" && partner.is_none() {
            kind = "PI_SECT";
        }
        let status = if special {
            "PROCESSED"
        } else if kind == "CARD_AUTH" {
            *self.rng.pick(&["HELD", "HELD", "RELEASED"])
        } else {
            *self.rng.pick(&[
                "PROCESSED",
                "PROCESSED",
                "PROCESSED",
                "PROCESSED",
                "PROCESSED",
                "PENDING",
                "FAILED",
            ])
        };
        // Pending records and holds happened when they were last updated; others often earlier.
        let transaction_ms =
            if special || matches!(status, "PENDING" | "HELD") || self.rng.chance(1, 2) {
                updated_ms
            } else {
                updated_ms - self.rng.range(1, 2 * DAY_MS)
            };
        let credit = match NB_TYPES.iter().find(|(k, _)| *k == kind) {
            Some((_, Some(credit))) => *credit,
            _ => self.rng.chance(1, 2),
        };
        let amount_minor = self.random_amount(exponent);
        let name = self.rng.pick(&PEOPLE).to_string();
        let reference = if self.rng.chance(1, 4) {
            String::new()
        } else {
            format!("INV-{}", self.rng.range(10_000, 99_999))
        };
        let description = match kind {
            k if k.starts_with("PI_") => format!("From {name}"),
            k if k.starts_with("PO_") => format!("To {name}"),
            k if k.starts_with("FEE_") => "Monthly fee".to_owned(),
            k if k.starts_with("CARD_") => format!("Card *{}", self.rng.range(1000, 9999)),
            _ => "Internal transfer".to_owned(),
        };
        let payment_id = partner.as_ref().map(|_| self.new_id("P", 9));
        let spec = NbNewTransaction {
            account_id: account.id.clone(),
            kind: kind.to_owned(),
            status: status.to_owned(),
            credit,
            amount_minor,
            transaction_ms: Some(transaction_ms),
            updated_ms: Some(updated_ms),
            description: description.clone(),
            reference: reference.clone(),
            counterparty: Some(NbCounterparty::for_type(kind, &name)),
            counterparty_account_id: partner.as_ref().map(|p| p.id.clone()),
            payment_id: payment_id.clone(),
        };
        self.push_transaction(spec.clone());
        if let Some(partner) = partner {
            self.push_transaction(NbNewTransaction {
                account_id: partner.id.clone(),
                credit: !credit,
                counterparty_account_id: Some(account.id.clone()),
                ..spec
            });
        }
    }

    fn execute(&mut self, order: PaymentOrder) -> NbPayment {
        let now = self.now_ms;
        let id = self.new_id("P", 9);
        let source = self.account(&order.source).cloned().unwrap();
        let mut legs = Vec::new();
        match &order.destination {
            Destination::Beneficiary(beneficiary) => {
                let kind = if source.currency == "EUR" {
                    "PO_SECT"
                } else {
                    "PO_FAST"
                };
                legs.push(self.push_transaction(NbNewTransaction {
                    account_id: source.id.clone(),
                    kind: kind.to_owned(),
                    status: "PENDING".to_owned(),
                    credit: false,
                    amount_minor: order.minor,
                    transaction_ms: Some(now),
                    updated_ms: Some(now),
                    description: format!("To {}", beneficiary.name),
                    reference: order.reference.clone(),
                    counterparty: Some(NbCounterparty::Name(beneficiary.name.clone())),
                    counterparty_account_id: None,
                    payment_id: Some(id.clone()),
                }));
            }
            Destination::Account(destination) => {
                for (account, other, credit, description) in [
                    (
                        &source,
                        destination,
                        false,
                        format!("To {}", destination.name),
                    ),
                    (destination, &source, true, format!("From {}", source.name)),
                ] {
                    legs.push(self.push_transaction(NbNewTransaction {
                        account_id: account.id.clone(),
                        kind: "INT_INTERC".to_owned(),
                        status: "PENDING".to_owned(),
                        credit,
                        amount_minor: order.minor,
                        transaction_ms: Some(now),
                        updated_ms: Some(now),
                        description,
                        reference: order.reference.clone(),
                        counterparty: Some(NbCounterparty::Null),
                        counterparty_account_id: Some(other.id.clone()),
                        payment_id: Some(id.clone()),
                    }));
                }
            }
        }
        if let Some(account) = self.account_mut(&source.id) {
            account.available_minor -= order.minor;
        }
        let (destination_type, destination_id) = match &order.destination {
            Destination::Beneficiary(b) => ("BENEFICIARY", b.id.clone()),
            Destination::Account(a) => ("ACCOUNT", a.id.clone()),
        };
        let payment = NbPayment {
            id,
            status: "SUBMITTED".to_owned(),
            created_ms: now,
            source_account_id: source.id,
            destination_type: destination_type.to_owned(),
            destination_id,
            amount_minor: order.minor,
            currency: order.currency,
            reference: order.reference,
            leg_ids: legs,
        };
        self.payments.push(payment.clone());
        payment
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

fn json_response(status: u16, body: &Value) -> Response {
    Response::new(status)
        .with_header("Content-Type", "application/json")
        .with_body(render_json(body))
}

fn api_error(status: u16, field: Option<&str>, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!([{"field": field, "code": code, "message": message}]),
    )
}

fn bad(field: &str, code: &str, message: &str) -> Response {
    api_error(400, Some(field), code, message)
}

fn oauth_error(status: u16, code: &str, description: &str) -> Response {
    Response::json(
        status,
        &json!({"error": code, "error_description": description}),
    )
}

fn fault_response(status: u16, _retry_after: Option<u64>) -> Response {
    if status == 429 {
        api_error(429, None, "RATE_LIMITED", "Too many requests, slow down")
    } else {
        api_error(
            status,
            None,
            "SERVICE_UNAVAILABLE",
            "The service is temporarily unavailable",
        )
    }
}

/// The query's `page`, `size` and the other allowed parameters' values.
struct Query {
    page: usize,
    size: usize,
    values: HashMap<String, String>,
}

fn list_query(request: &Request, allowed: &[&str]) -> Result<Query, Response> {
    let mut parsed = Query {
        page: 0,
        size: NORDBANK_DEFAULT_SIZE,
        values: HashMap::new(),
    };
    let mut seen = HashSet::new();
    for (key, value) in &request.query {
        if !seen.insert(key.as_str()) {
            return Err(bad(
                key,
                "DUPLICATE_PARAMETER",
                &format!("{key} given more than once"),
            ));
        }
        match key.as_str() {
            "page" => {
                parsed.page = value.parse().map_err(|_| {
                    bad("page", "INVALID_PARAMETER", "page must be an integer >= 0")
                })?;
            }
            "size" => {
                parsed.size = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=NORDBANK_MAX_SIZE).contains(s))
                    .ok_or_else(|| {
                        bad(
                            "size",
                            "INVALID_PARAMETER",
                            &format!("size must be an integer from 1 to {NORDBANK_MAX_SIZE}"),
                        )
                    })?;
            }
            k if allowed.contains(&k) => {
                parsed.values.insert(key.clone(), value.clone());
            }
            _ => {
                return Err(bad(
                    key,
                    "UNKNOWN_PARAMETER",
                    &format!("unknown query parameter {key}"),
                ));
            }
        }
    }
    Ok(parsed)
}

fn query_time(query: &Query, key: &str) -> Result<Option<i64>, Response> {
    match query.values.get(key) {
        None => Ok(None),
        Some(text) => nordbank_query_time(text).map(Some).ok_or_else(|| {
            bad(
                key,
                "INVALID_DATE",
                &format!(
                    "{key} must be yyyy-MM-ddTHH:mm:ss[.SSS] (Europe/Oslo) or carry an offset"
                ),
            )
        }),
    }
}

fn page_of<T>(query: &Query, items: &[T], to_json: impl Fn(&T) -> Value) -> Response {
    let total = items.len();
    let start = query.page.saturating_mul(query.size).min(total);
    let end = (start + query.size).min(total);
    let content: Vec<Value> = items[start..end].iter().map(to_json).collect();
    json_response(
        200,
        &json!({
            "content": content,
            "page": query.page,
            "size": query.size,
            "totalPages": total.div_ceil(query.size),
            "totalSize": total,
        }),
    )
}

fn token_endpoint(state: &mut NbState, request: &Request) -> Response {
    state.token_requests += 1;
    if request.method != "POST" {
        return oauth_error(405, "invalid_request", "use POST");
    }
    let Some(form) = request.form() else {
        return oauth_error(400, "invalid_request", "malformed form body");
    };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let from_form = match (field("client_id"), field("client_secret")) {
        (Some(id), secret) => Some((id, secret.unwrap_or_default())),
        (None, None) => None,
        (None, Some(_)) => {
            return oauth_error(400, "invalid_request", "client_secret without client_id");
        }
    };
    let credentials = match (request.basic_auth(), from_form) {
        (Some(basic), Some(form)) if basic != form => {
            return oauth_error(400, "invalid_request", "conflicting client authentication");
        }
        (Some(basic), _) => basic,
        (None, Some(form)) => form,
        (None, None) => {
            return oauth_error(401, "invalid_client", "client authentication required");
        }
    };
    match field("grant_type").as_deref() {
        None => return oauth_error(400, "invalid_request", "grant_type is required"),
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                400,
                "unsupported_grant_type",
                &format!("grant_type {other:?} is not supported"),
            );
        }
    }
    if credentials != (state.client_id.clone(), state.client_secret.clone()) {
        return oauth_error(401, "invalid_client", "unknown client or wrong secret");
    }
    let token = format!("nbt_{}", state.tokens.len() + 1);
    state
        .tokens
        .push((token.clone(), Instant::now() + state.token_ttl));
    let expires_in = state.token_ttl.as_millis().div_ceil(1000);
    Response::json(
        200,
        &json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}),
    )
    .with_header("Cache-Control", "no-store")
}

/// Where a payment goes, validated.
enum Destination {
    Beneficiary(NbBeneficiary),
    Account(NbAccount),
}

struct PaymentOrder {
    source: String,
    destination: Destination,
    minor: i64,
    currency: String,
    reference: String,
}

const PAYMENT_KEYS: [&str; 5] = [
    "sourceAccountId",
    "destination",
    "amount",
    "currency",
    "reference",
];

/// Whether a client `reference` is acceptable: 6 to 18 of `A-Z a-z 0-9 - . & /` and space,
/// not all the same character.
pub fn nordbank_reference_ok(reference: &str) -> bool {
    let length = reference.chars().count();
    (6..=18).contains(&length)
        && reference
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " -.&/".contains(c))
        && reference.chars().any(|c| !reference.starts_with(c))
}

/// A required string `key` of `body`, reported as `field` when missing or mistyped.
fn required_string<'a>(
    body: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<&'a str, Response> {
    match body.get(key) {
        None | Some(Value::Null) => Err(bad(field, "REQUIRED", &format!("{field} is required"))),
        Some(value) if raw_lexeme(value).is_some() => Err(bad(
            field,
            "INVALID_TYPE",
            &format!("{field} must be a string"),
        )),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(bad(
            field,
            "INVALID_TYPE",
            &format!("{field} must be a string"),
        )),
    }
}

fn validate_payment(state: &NbState, request: &Request) -> Result<PaymentOrder, Response> {
    let text = std::str::from_utf8(&request.body)
        .map_err(|_| api_error(400, None, "INVALID_JSON", "the body is not UTF-8"))?;
    let body = parse_json_exact(text).map_err(|e| {
        api_error(
            400,
            None,
            "INVALID_JSON",
            &format!("the body is not JSON: {e}"),
        )
    })?;
    let Value::Object(body) = body else {
        return Err(api_error(
            400,
            None,
            "INVALID_JSON",
            "the body must be a JSON object",
        ));
    };
    if let Some(key) = body.keys().find(|k| !PAYMENT_KEYS.contains(&k.as_str())) {
        return Err(bad(key, "UNKNOWN_FIELD", &format!("unknown field {key}")));
    }
    let source_id = required_string(&body, "sourceAccountId", "sourceAccountId")?;
    let source = state.account(source_id).ok_or_else(|| {
        bad(
            "sourceAccountId",
            "ACCOUNT_NOT_FOUND",
            &format!("no account {source_id}"),
        )
    })?;
    let destination = match body.get("destination") {
        Some(Value::Object(destination)) => destination,
        None | Some(Value::Null) => {
            return Err(bad("destination", "REQUIRED", "destination is required"));
        }
        Some(_) => {
            return Err(bad(
                "destination",
                "INVALID_TYPE",
                "destination must be an object {type, id}",
            ));
        }
    };
    if let Some(key) = destination
        .keys()
        .find(|k| !["type", "id"].contains(&k.as_str()))
    {
        return Err(bad(
            &format!("destination.{key}"),
            "UNKNOWN_FIELD",
            &format!("unknown field destination.{key}"),
        ));
    }
    let kind = required_string(destination, "type", "destination.type")?;
    let id = required_string(destination, "id", "destination.id")?;
    let destination = match kind {
        "BENEFICIARY" => Destination::Beneficiary(
            state
                .beneficiaries
                .iter()
                .find(|b| b.id == id)
                .cloned()
                .ok_or_else(|| {
                    bad(
                        "destination.id",
                        "BENEFICIARY_NOT_FOUND",
                        &format!("no beneficiary {id}"),
                    )
                })?,
        ),
        "ACCOUNT" => {
            let account = state.account(id).cloned().ok_or_else(|| {
                bad(
                    "destination.id",
                    "ACCOUNT_NOT_FOUND",
                    &format!("no account {id}"),
                )
            })?;
            if account.id == source.id {
                return Err(bad(
                    "destination.id",
                    "SAME_ACCOUNT",
                    "the destination is the source account",
                ));
            }
            if account.currency != source.currency {
                return Err(bad(
                    "destination.id",
                    "CURRENCY_MISMATCH",
                    "the destination account holds another currency",
                ));
            }
            Destination::Account(account)
        }
        other => {
            return Err(bad(
                "destination.type",
                "INVALID_VALUE",
                &format!("destination.type {other:?} is not BENEFICIARY or ACCOUNT"),
            ));
        }
    };
    let currency = required_string(&body, "currency", "currency")?;
    if currency != source.currency {
        return Err(bad(
            "currency",
            "CURRENCY_MISMATCH",
            &format!("the source account holds {}", source.currency),
        ));
    }
    let exponent = currency_exponent(currency);
    let minor = match body.get("amount") {
        None | Some(Value::Null) => return Err(bad("amount", "REQUIRED", "amount is required")),
        Some(value) => match raw_lexeme(value) {
            None => {
                return Err(bad(
                    "amount",
                    "INVALID_TYPE",
                    "amount must be a JSON number in major units",
                ));
            }
            Some(lexeme) => nb_number_minor(lexeme, exponent)
                .filter(|minor| *minor > 0)
                .ok_or_else(|| {
                    bad(
                        "amount",
                        "INVALID_AMOUNT",
                        &format!(
                            "amount {lexeme} must be positive with at most {exponent} decimals \
                             for {currency}"
                        ),
                    )
                })?,
        },
    };
    let reference = required_string(&body, "reference", "reference")?;
    if !nordbank_reference_ok(reference) {
        return Err(bad(
            "reference",
            "INVALID_REFERENCE",
            "reference must be 6 to 18 characters of A-Z a-z 0-9 - . & / and space, not all \
             the same",
        ));
    }
    Ok(PaymentOrder {
        source: source.id.clone(),
        destination,
        minor,
        currency: currency.to_owned(),
        reference: reference.to_owned(),
    })
}

fn route(state: &Mutex<NbState>, request: &Request) -> Response {
    let mut state = lock(state);
    let segments = request.segments();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    if segments == ["oauth2", "token"] {
        return token_endpoint(&mut state, request);
    }
    if segments.first() != Some(&"api") {
        return api_error(
            404,
            None,
            "NOT_FOUND",
            &format!("no route for {}", request.path),
        );
    }
    let valid = request.bearer().and_then(|token| {
        state
            .tokens
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, expiry)| Instant::now() < *expiry)
    });
    let description = match valid {
        Some(true) => None,
        Some(false) => Some("The access token expired"),
        None => Some("Missing or unknown access token"),
    };
    if let Some(description) = description {
        return oauth_error(401, "invalid_token", description).with_header(
            "WWW-Authenticate",
            &format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
        );
    }
    let method = request.method.as_str();
    match (method, segments.as_slice()) {
        ("GET", ["api", "accounts"]) => {
            let query = match list_query(request, &["fromCreatedDate"]) {
                Ok(q) => q,
                Err(response) => return response,
            };
            let from = match query_time(&query, "fromCreatedDate") {
                Ok(from) => from,
                Err(response) => return response,
            };
            let mut accounts: Vec<&NbAccount> = state
                .accounts
                .iter()
                .filter(|a| from.is_none_or(|from| a.created_ms >= from))
                .collect();
            accounts.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
            page_of(&query, &accounts, |a| a.to_json())
        }
        ("GET", ["api", "accounts", id]) => match state.account(id) {
            Some(account) => json_response(200, &account.detail_json()),
            None => api_error(
                404,
                Some("accountId"),
                "NOT_FOUND",
                &format!("no account {id}"),
            ),
        },
        ("GET", ["api", "accounts", id, "transactions"]) => {
            if state.account(id).is_none() {
                return api_error(
                    404,
                    Some("accountId"),
                    "NOT_FOUND",
                    &format!("no account {id}"),
                );
            }
            let query = match list_query(request, &["fromDate", "toDate"]) {
                Ok(q) => q,
                Err(response) => return response,
            };
            let (from, to) = match (query_time(&query, "fromDate"), query_time(&query, "toDate")) {
                (Err(response), _) | (_, Err(response)) => return response,
                (Ok(None), _) => return bad("fromDate", "REQUIRED", "fromDate is required"),
                (_, Ok(None)) => return bad("toDate", "REQUIRED", "toDate is required"),
                (Ok(Some(from)), Ok(Some(to))) => (from, to),
            };
            if to <= from {
                return bad("toDate", "INVALID_WINDOW", "toDate must be after fromDate");
            }
            if to - from > NORDBANK_MAX_WINDOW_MS {
                return bad(
                    "toDate",
                    "WINDOW_TOO_LONG",
                    "the window from fromDate to toDate may not exceed 31 days",
                );
            }
            let items = state.window(id, from, to);
            page_of(&query, &items, |t| t.to_json())
        }
        ("GET", ["api", "beneficiaries"]) => {
            let query = match list_query(request, &["fromCreatedDate"]) {
                Ok(q) => q,
                Err(response) => return response,
            };
            let from = match query_time(&query, "fromCreatedDate") {
                Ok(from) => from,
                Err(response) => return response,
            };
            let mut beneficiaries: Vec<&NbBeneficiary> = state
                .beneficiaries
                .iter()
                .filter(|b| from.is_none_or(|from| b.created_ms >= from))
                .collect();
            beneficiaries.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
            page_of(&query, &beneficiaries, |b| b.to_json())
        }
        ("GET", ["api", "payments"]) => {
            let query = match list_query(request, &["reference", "id"]) {
                Ok(q) => q,
                Err(response) => return response,
            };
            let mut payments: Vec<&NbPayment> = state
                .payments
                .iter()
                .filter(|p| {
                    query
                        .values
                        .get("reference")
                        .is_none_or(|r| *r == p.reference)
                        && query.values.get("id").is_none_or(|id| *id == p.id)
                })
                .collect();
            payments.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
            page_of(&query, &payments, |p| p.to_json())
        }
        ("POST", ["api", "payments"]) => {
            let order = match validate_payment(&state, request) {
                Ok(order) => order,
                Err(response) => return response,
            };
            let payment = state.execute(order);
            if state.fail_after_executing > 0 {
                state.fail_after_executing -= 1;
                return api_error(500, None, "INTERNAL_ERROR", "An unexpected error occurred");
            }
            json_response(201, &payment.to_json())
        }
        (_, ["api", "accounts"])
        | (_, ["api", "accounts", _])
        | (_, ["api", "accounts", _, "transactions"])
        | (_, ["api", "beneficiaries"])
        | (_, ["api", "payments"]) => api_error(
            405,
            None,
            "METHOD_NOT_ALLOWED",
            &format!("{method} is not allowed here"),
        ),
        _ => api_error(
            404,
            None,
            "NOT_FOUND",
            &format!("no route for {}", request.path),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The mock
// ---------------------------------------------------------------------------------------------

const ACCOUNT_NAMES: [&str; 6] = [
    "Operations",
    "Payroll",
    "Treasury",
    "Client money",
    "Reserve",
    "Card settlement",
];
const PEOPLE: [&str; 8] = [
    "Kari Nordmann",
    "Ola Nordmann",
    "Sigrid Undset",
    "Roald Amundsen",
    "Sonja Henie",
    "Edvard Munch",
    "Liv Ullmann",
    "Fridtjof Nansen",
];
/// Account currencies, drawn in seeding (exponents 2, 2, 2, 0, 3, 2).
pub const NB_CURRENCIES: [&str; 8] = ["EUR", "NOK", "SEK", "JPY", "KWD", "GBP", "EUR", "NOK"];

pub struct Nordbank {
    server: MockServer,
    state: Arc<Mutex<NbState>>,
    control: Arc<Control>,
    posts: Arc<AtomicUsize>,
}

impl Nordbank {
    /// A Nordbank with no data, the clock at [`NORDBANK_EPOCH_MS`], tokens living 300 s.
    pub fn start(seed: u64, client_id: &str, client_secret: &str) -> Nordbank {
        let state = Arc::new(Mutex::new(NbState {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            token_ttl: NORDBANK_DEFAULT_TOKEN_TTL,
            tokens: Vec::new(),
            token_requests: 0,
            now_ms: NORDBANK_EPOCH_MS,
            rng: Prng::new(seed),
            ids: HashSet::new(),
            account_seed_ms: NORDBANK_SEED_START_MS - 120 * DAY_MS,
            beneficiary_seed_ms: NORDBANK_SEED_START_MS - 60 * DAY_MS,
            accounts: Vec::new(),
            beneficiaries: Vec::new(),
            transactions: Vec::new(),
            payments: Vec::new(),
            newest_first: false,
            fail_after_executing: 0,
        }));
        let control = Arc::new(Control::new());
        let route_state = Arc::clone(&state);
        let routed = control.wrap(fault_response, move |request| route(&route_state, request));
        // Counted before the control, so that POSTs answered by an injected fault count too.
        let posts = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&posts);
        let handler: Handler = Arc::new(move |request: &Request| {
            if request.method == "POST" && request.path == "/api/payments" {
                count.fetch_add(1, Ordering::SeqCst);
            }
            routed(request)
        });
        Nordbank {
            server: MockServer::start(handler),
            state,
            control,
            posts,
        }
    }

    fn state(&self) -> MutexGuard<'_, NbState> {
        lock(&self.state)
    }

    /// `http://127.0.0.1:PORT` (the API lives under `/api`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.server.url())
    }

    pub fn server(&self) -> &MockServer {
        &self.server
    }

    // ---- OAuth ----

    /// How long tokens issued from now on live (wall-clock time).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.state().token_ttl = ttl;
    }

    /// Every token issued so far expires now.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for (_, expiry) in self.state().tokens.iter_mut() {
            *expiry = now;
        }
    }

    /// Issues a token directly (not counted as a token request).
    pub fn issue_token(&self) -> String {
        let mut state = self.state();
        let token = format!("nbt_{}", state.tokens.len() + 1);
        let expiry = Instant::now() + state.token_ttl;
        state.tokens.push((token.clone(), expiry));
        token
    }

    /// Requests to `/oauth2/token` that reached the router (failed ones included).
    pub fn token_requests(&self) -> usize {
        self.state().token_requests
    }

    pub fn tokens_issued(&self) -> usize {
        self.state().tokens.len()
    }

    // ---- clock ----

    /// "Now" in unix milliseconds: the time of payments, status changes and default records.
    pub fn now_ms(&self) -> i64 {
        self.state().now_ms
    }

    pub fn set_now_ms(&self, now_ms: i64) {
        self.state().now_ms = now_ms;
    }

    pub fn advance_millis(&self, millis: i64) {
        self.state().now_ms += millis;
    }

    // ---- list order ----

    /// Serve transactions newest first (`lastUpdated` descending, ties by `id` descending),
    /// as real Modulr does; the default is oldest first.
    pub fn set_newest_first(&self, newest_first: bool) {
        self.state().newest_first = newest_first;
    }

    // ---- seeding and changes ----

    /// Adds `n` accounts with increasing `createdDate` (a third share the previous
    /// millisecond), currencies drawn from [`NB_CURRENCIES`], random balances (one in eight
    /// negative; available = balance minus up to 10%). Returns their ids.
    pub fn seed_accounts(&self, n: usize) -> Vec<String> {
        let mut state = self.state();
        (0..n)
            .map(|_| {
                if !state.rng.chance(1, 3) {
                    state.account_seed_ms += state.rng.range(1, 3 * DAY_MS);
                }
                let created_ms = state.account_seed_ms;
                let currency = state.rng.pick(&NB_CURRENCIES).to_string();
                let name = state.rng.pick(&ACCOUNT_NAMES).to_string();
                let id = state.new_id("A", 8);
                let iban = state.iban();
                let mut balance = state.random_amount(currency_exponent(&currency));
                if state.rng.chance(1, 8) {
                    balance = -balance;
                }
                let hold = balance.abs() / 10;
                let available = balance - state.rng.range(0, hold.max(0));
                state.accounts.push(NbAccount {
                    id: id.clone(),
                    name,
                    currency,
                    created_ms,
                    iban,
                    balance_minor: balance,
                    available_minor: available,
                });
                id
            })
            .collect()
    }

    /// Adds `n` beneficiaries with increasing `createdDate` (a third share the previous
    /// millisecond). Returns their ids.
    pub fn seed_beneficiaries(&self, n: usize) -> Vec<String> {
        let mut state = self.state();
        (0..n)
            .map(|_| {
                if !state.rng.chance(1, 3) {
                    state.beneficiary_seed_ms += state.rng.range(1, DAY_MS);
                }
                let created_ms = state.beneficiary_seed_ms;
                let name = state.rng.pick(&PEOPLE).to_string();
                let id = state.new_id("B", 8);
                let iban = state.iban();
                state.beneficiaries.push(NbBeneficiary {
                    id: id.clone(),
                    name,
                    iban,
                    created_ms,
                });
                id
            })
            .collect()
    }

    /// Adds about `per_account` transactions to every existing account (an internal transfer
    /// also adds its other leg to another account of the same currency), with `lastUpdated`
    /// between [`NORDBANK_SEED_START_MS`] and one day before the clock's epoch, in bursts: a
    /// burst is 1 to 5 records, or one in six times 8 to 25, each 0 ms (half the time: a tie
    /// on the millisecond) or 1 to 40 ms after the previous, so big bursts fall within about
    /// one second. With `per_account >= 8`, each account also gets six `PI_FAST` records on
    /// the DST changes: two at 2025-10-26T00:30:00.000Z and two at 01:30:00.000Z (all four
    /// written `2025-10-26T02:30:00.000`), one at 2026-03-29T00:59:59.999Z
    /// (`01:59:59.999`) and one at 01:00:00.000Z (`03:00:00.000`). Returns every id created.
    pub fn seed_transactions(&self, per_account: usize) -> Vec<String> {
        let mut state = self.state();
        let first = state.transactions.len();
        let accounts = state.accounts.clone();
        let end = NORDBANK_EPOCH_MS - DAY_MS;
        for account in &accounts {
            let mut times = Vec::new();
            if per_account >= 8 {
                let autumn = 1_761_438_600_000; // 2025-10-26T00:30:00Z
                let spring = 1_774_745_999_999; // 2026-03-29T00:59:59.999Z
                times.extend([
                    autumn,
                    autumn,
                    autumn + HOUR_MS,
                    autumn + HOUR_MS,
                    spring,
                    spring + 1,
                ]);
            }
            let specials = times.len();
            while times.len() < per_account.max(specials) {
                let mut t = state.rng.range(NORDBANK_SEED_START_MS, end);
                let size = if state.rng.chance(1, 6) {
                    state.rng.range(8, 25)
                } else {
                    state.rng.range(1, 5)
                } as usize;
                for _ in 0..size.min(per_account - times.len()) {
                    times.push(t);
                    if state.rng.chance(1, 2) {
                        t += state.rng.range(1, 40);
                    }
                }
            }
            for (i, t) in times.into_iter().enumerate() {
                state.seed_one(account, t, i < specials);
            }
        }
        state.transactions[first..]
            .iter()
            .map(|t| t.id.clone())
            .collect()
    }

    /// Adds an account created at `created_ms` (default: now) with zero balances.
    pub fn add_account(&self, name: &str, currency: &str, created_ms: Option<i64>) -> String {
        let mut state = self.state();
        let created_ms = created_ms.unwrap_or(state.now_ms);
        let id = state.new_id("A", 8);
        let iban = state.iban();
        state.accounts.push(NbAccount {
            id: id.clone(),
            name: name.to_owned(),
            currency: currency.to_owned(),
            created_ms,
            iban,
            balance_minor: 0,
            available_minor: 0,
        });
        id
    }

    /// Sets an account's `balance` and `availableBalance` (minor units). False if unknown.
    pub fn set_balance(&self, id: &str, balance_minor: i64, available_minor: i64) -> bool {
        match self.state().account_mut(id) {
            Some(account) => {
                account.balance_minor = balance_minor;
                account.available_minor = available_minor;
                true
            }
            None => false,
        }
    }

    pub fn add_beneficiary(&self, name: &str, created_ms: Option<i64>) -> String {
        let mut state = self.state();
        let created_ms = created_ms.unwrap_or(state.now_ms);
        let id = state.new_id("B", 8);
        let iban = state.iban();
        state.beneficiaries.push(NbBeneficiary {
            id: id.clone(),
            name: name.to_owned(),
            iban,
            created_ms,
        });
        id
    }

    /// Adds a transaction (its currency is its account's). Returns its id.
    pub fn add_transaction(&self, spec: NbNewTransaction) -> String {
        self.state().push_transaction(spec)
    }

    /// Sets a transaction's status, `lastUpdated` to `at_ms` (default: now) and `postedDate`
    /// by the status. False if unknown.
    pub fn update_transaction(&self, id: &str, status: &str, at_ms: Option<i64>) -> bool {
        let mut state = self.state();
        let at_ms = at_ms.unwrap_or(state.now_ms);
        state.set_transaction_status(id, status, at_ms)
    }

    /// Every `SUBMITTED` payment becomes `PROCESSED` now: its legs `PROCESSED` (`lastUpdated`
    /// and `postedDate` now), the source's `balance` drops, an own destination's `balance`
    /// and `availableBalance` rise. Returns how many.
    pub fn settle_payments(&self) -> usize {
        let mut state = self.state();
        let now = state.now_ms;
        let pending: Vec<NbPayment> = state
            .payments
            .iter()
            .filter(|p| p.status == "SUBMITTED")
            .cloned()
            .collect();
        for payment in &pending {
            for leg in &payment.leg_ids {
                state.set_transaction_status(leg, "PROCESSED", now);
            }
            if let Some(source) = state.account_mut(&payment.source_account_id) {
                source.balance_minor -= payment.amount_minor;
            }
            if payment.destination_type == "ACCOUNT"
                && let Some(destination) = state.account_mut(&payment.destination_id)
            {
                destination.balance_minor += payment.amount_minor;
                destination.available_minor += payment.amount_minor;
            }
            if let Some(p) = state.payments.iter_mut().find(|p| p.id == payment.id) {
                p.status = "PROCESSED".to_owned();
            }
        }
        pending.len()
    }

    /// A `SUBMITTED` payment becomes `FAILED` now (legs `FAILED`, the source's available
    /// balance restored). False if unknown or not submitted.
    pub fn fail_payment(&self, id: &str) -> bool {
        let mut state = self.state();
        let now = state.now_ms;
        let Some(payment) = state
            .payments
            .iter()
            .find(|p| p.id == id && p.status == "SUBMITTED")
            .cloned()
        else {
            return false;
        };
        for leg in &payment.leg_ids {
            state.set_transaction_status(leg, "FAILED", now);
        }
        if let Some(source) = state.account_mut(&payment.source_account_id) {
            source.available_minor += payment.amount_minor;
        }
        if let Some(p) = state.payments.iter_mut().find(|p| p.id == id) {
            p.status = "FAILED".to_owned();
        }
        true
    }

    // ---- ground truth ----

    /// Every account, in creation order.
    pub fn accounts(&self) -> Vec<NbAccount> {
        self.state().accounts.clone()
    }

    pub fn account(&self, id: &str) -> Option<NbAccount> {
        self.state().account(id).cloned()
    }

    pub fn beneficiaries(&self) -> Vec<NbBeneficiary> {
        self.state().beneficiaries.clone()
    }

    /// Every transaction of every account, in creation order.
    pub fn transactions(&self) -> Vec<NbTransaction> {
        self.state().transactions.clone()
    }

    pub fn transaction(&self, id: &str) -> Option<NbTransaction> {
        self.state()
            .transactions
            .iter()
            .find(|t| t.id == id)
            .cloned()
    }

    /// What `/api/accounts/{id}/transactions` serves for `[from_ms, to_ms)`, all pages together
    /// (no 31-day cap here), in the served order.
    pub fn window(&self, account_id: &str, from_ms: i64, to_ms: i64) -> Vec<NbTransaction> {
        self.state()
            .window(account_id, from_ms, to_ms)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Every payment executed, in execution order.
    pub fn payments(&self) -> Vec<NbPayment> {
        self.state().payments.clone()
    }

    /// Payments executed with that reference (no idempotency: every accepted POST counts).
    pub fn executions_for_reference(&self, reference: &str) -> usize {
        self.state()
            .payments
            .iter()
            .filter(|p| p.reference == reference)
            .count()
    }

    /// `POST /api/payments` received, whatever their outcome (injected faults included).
    pub fn payment_posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }

    // ---- faults and calls ----

    /// The next `count` payments that pass validation are executed, then answered 500.
    pub fn fail_after_executing(&self, count: usize) {
        self.state().fail_after_executing = count;
    }

    /// Requests received whose path starts with `path_prefix` (failures included).
    pub fn calls(&self, path_prefix: &str) -> usize {
        self.control.calls(path_prefix)
    }

    pub fn call_log(&self) -> Vec<Call> {
        self.control.call_log()
    }

    pub fn reset_calls(&self) {
        self.control.reset_calls();
    }

    /// Every `n`-th API request (paths under `/api/`, counted from now; the token endpoint is
    /// not affected) is answered `status` (429, 503, ...) with `Retry-After: secs` when given,
    /// before routing. `n == 0` disables.
    pub fn fail_every(&self, n: usize, status: u16, retry_after_secs: Option<u64>) {
        self.control
            .fail_every("/api/", n, status, retry_after_secs);
    }

    /// Like `fail_every`, for requests whose path starts with `path_prefix`.
    pub fn fail_every_on(
        &self,
        path_prefix: &str,
        n: usize,
        status: u16,
        retry_after_secs: Option<u64>,
    ) {
        self.control
            .fail_every(path_prefix, n, status, retry_after_secs);
    }

    /// The next `count` requests whose path starts with `path_prefix` are answered `status`.
    pub fn fail_next_on(
        &self,
        path_prefix: &str,
        count: usize,
        status: u16,
        retry_after_secs: Option<u64>,
    ) {
        self.control
            .fail_next(path_prefix, count, status, retry_after_secs);
    }

    pub fn clear_faults(&self) {
        self.control.clear_faults();
    }

    pub fn set_latency(&self, delay: Duration) {
        self.control.set_latency(delay);
    }

    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }
}
