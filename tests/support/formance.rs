//! A blocking test client that polls a Generic connector exactly as Formance does (see
//! `/work/shared/reference/PROTOCOL.md`): the per-kind poll loop with its timestamp state,
//! strict decoding (one bad item fails the whole page), and Formance's retry classification.
//! It stores what it received by id, so a test can compare it with a mock provider's ground
//! truth.
//!
//! HTTP/1.1 over `std::net::TcpStream`, one `Connection: close` request per exchange.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const NANOS: i128 = 1_000_000_000;

// ---------------------------------------------------------------------------------------------
// Protocol values
// ---------------------------------------------------------------------------------------------

pub const TRANSACTION_STATUSES: [&str; 15] = [
    "PENDING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    "EXPIRED",
    "REFUNDED",
    "REFUNDED_FAILURE",
    "REFUND_REVERSED",
    "DISPUTE",
    "DISPUTE_WON",
    "DISPUTE_LOST",
    "AUTHORISATION",
    "CAPTURE",
    "CAPTURE_FAILED",
    "OTHER",
];

pub const TRANSACTION_TYPES: [&str; 4] = ["PAYIN", "PAYOUT", "TRANSFER", "OTHER"];

/// The three polled lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Accounts,
    Beneficiaries,
    Transactions,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Accounts, Kind::Beneficiaries, Kind::Transactions];

    pub fn path(self) -> &'static str {
        match self {
            Kind::Accounts => "/accounts",
            Kind::Beneficiaries => "/beneficiaries",
            Kind::Transactions => "/transactions",
        }
    }

    pub fn sort(self) -> &'static str {
        match self {
            Kind::Transactions => "updatedAt:asc",
            _ => "createdAt:asc",
        }
    }

    /// The query parameter carrying the state.
    pub fn filter_param(self) -> &'static str {
        match self {
            Kind::Transactions => "updatedAtFrom",
            _ => "createdAtFrom",
        }
    }

    /// The item field the state is taken from.
    pub fn time_field(self) -> &'static str {
        match self {
            Kind::Transactions => "updatedAt",
            _ => "createdAt",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

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

/// Parses an RFC 3339 date-time as Go's `time.Time` JSON decoding does: `YYYY-MM-DDTHH:MM:SS`,
/// optional `.` and fraction digits (beyond 9 truncated), then `Z` or `±HH:MM`; upper-case `T`
/// and `Z` only; ranges checked (second 60 rejected). Returns unix nanoseconds.
pub fn parse_rfc3339(text: &str) -> Option<i128> {
    let b = text.as_bytes();
    if b.len() < 20 || !text.is_ascii() {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let s = &text[from..to];
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = num(0, 4)?;
    let month = num(5, 7)? as u32;
    let day = num(8, 10)? as u32;
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut frac: i128 = 0;
    if let Some(after) = rest.strip_prefix('.') {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in after.bytes().take(9).take(digits).enumerate() {
            frac += i128::from(c - b'0') * 10i128.pow(8 - i as u32);
        }
        rest = &after[digits..];
    }
    let offset_secs: i64 = if rest == "Z" {
        0
    } else {
        let r = rest.as_bytes();
        if r.len() != 6 || !matches!(r[0], b'+' | b'-') || r[3] != b':' {
            return None;
        }
        let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
        if !digits(&rest[1..3]) || !digits(&rest[4..6]) {
            return None;
        }
        let hh: i64 = rest[1..3].parse().ok()?;
        let mm: i64 = rest[4..6].parse().ok()?;
        if hh > 23 || mm > 59 {
            return None;
        }
        let total = hh * 3600 + mm * 60;
        if r[0] == b'-' { -total } else { total }
    };
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(i128::from(local - offset_secs) * NANOS + frac)
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

// ---------------------------------------------------------------------------------------------
// Strict decoding
// ---------------------------------------------------------------------------------------------

/// A base-10 integer string, as Go's `big.Int.SetString(s, 10)` accepts: an optional sign and
/// at least one digit; no point, exponent, spaces or underscores.
pub fn check_amount(amount: &str) -> Result<(), String> {
    let digits = amount.strip_prefix(['+', '-']).unwrap_or(amount);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("amount {amount:?} is not a base-10 integer string"));
    }
    Ok(())
}

/// UMN: `CODE` or `CODE/PRECISION`, the code upper-case (letters, then letters or digits).
pub fn check_currency(currency: &str) -> Result<(), String> {
    let (code, precision) = match currency.split_once('/') {
        Some((code, precision)) => (code, Some(precision)),
        None => (currency, None),
    };
    let code_ok = code.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let precision_ok = precision
        .is_none_or(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()));
    if code_ok && precision_ok {
        Ok(())
    } else {
        Err(format!(
            "currency {currency:?} is not UMN (CODE or CODE/PRECISION, upper case)"
        ))
    }
}

fn field<'a>(item: &'a Value, name: &str) -> Option<&'a Value> {
    item.get(name).filter(|v| !v.is_null())
}

fn required_str<'a>(item: &'a Value, name: &str) -> Result<&'a str, String> {
    match item.get(name) {
        Some(Value::String(s)) => Ok(s),
        None => Err(format!("no value given for required property {name}")),
        Some(other) => Err(format!("{name} must be a string, got {other}")),
    }
}

fn optional_str(item: &Value, name: &str) -> Result<(), String> {
    match field(item, name) {
        None | Some(Value::String(_)) => Ok(()),
        Some(other) => Err(format!("{name} must be a string, got {other}")),
    }
}

fn required_time(item: &Value, name: &str) -> Result<i128, String> {
    let text = required_str(item, name)?;
    parse_rfc3339(text).ok_or_else(|| format!("{name} {text:?} is not an RFC 3339 date-time"))
}

fn check_metadata(item: &Value) -> Result<(), String> {
    match field(item, "metadata") {
        None => Ok(()),
        Some(Value::Object(map)) => map.iter().try_for_each(|(k, v)| match v {
            Value::String(_) => Ok(()),
            other => Err(format!("metadata[{k:?}] must be a string, got {other}")),
        }),
        Some(other) => Err(format!(
            "metadata must be an object of strings, got {other}"
        )),
    }
}

fn check_enum(item: &Value, name: &str, allowed: &[&str]) -> Result<(), String> {
    let value = required_str(item, name)?;
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid {name} (allowed: {allowed:?})"
        ))
    }
}

/// Decodes one list item strictly; returns its id and the timestamp the poll loop uses
/// (`createdAt`, or `updatedAt` for transactions) in unix nanoseconds.
pub fn decode_item(kind: Kind, item: &Value) -> Result<(String, i128), String> {
    if !item.is_object() {
        return Err(format!("item must be an object, got {item}"));
    }
    let id = required_str(item, "id")?.to_owned();
    let context = |e: String| format!("item {id:?}: {e}");
    let timestamp = match kind {
        Kind::Accounts => {
            required_str(item, "accountName").map_err(context)?;
            required_time(item, "createdAt").map_err(context)?
        }
        Kind::Beneficiaries => {
            required_str(item, "ownerName").map_err(context)?;
            required_time(item, "createdAt").map_err(context)?
        }
        Kind::Transactions => {
            required_time(item, "createdAt").map_err(context)?;
            let updated = required_time(item, "updatedAt").map_err(context)?;
            check_currency(required_str(item, "currency").map_err(context)?).map_err(context)?;
            check_amount(required_str(item, "amount").map_err(context)?).map_err(context)?;
            check_enum(item, "type", &TRANSACTION_TYPES).map_err(context)?;
            check_enum(item, "status", &TRANSACTION_STATUSES).map_err(context)?;
            for name in [
                "relatedTransactionID",
                "scheme",
                "sourceAccountID",
                "destinationAccountID",
            ] {
                optional_str(item, name).map_err(context)?;
            }
            updated
        }
    };
    check_metadata(item).map_err(context)?;
    Ok((id, timestamp))
}

/// Decodes a whole list response; one bad item fails the page. `null` is an empty page (as
/// Go decodes it).
pub fn decode_page(kind: Kind, body: &[u8]) -> Result<Vec<(String, i128, Value)>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("response is not JSON: {e}"))?;
    let items = match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        other => return Err(format!("response must be a JSON array, got {other}")),
    };
    items
        .into_iter()
        .map(|item| decode_item(kind, &item).map(|(id, ts)| (id, ts, item)))
        .collect()
}

/// What `GET /accounts/{id}/balances` returned.
#[derive(Clone, Debug, PartialEq)]
pub struct Balances {
    pub id: String,
    /// What Formance takes as the account reference.
    pub account_id: String,
    /// Unix nanoseconds.
    pub at: i128,
    /// `(amount, currency)` pairs.
    pub balances: Vec<(String, String)>,
    pub json: Value,
}

pub fn decode_balances(body: &[u8]) -> Result<Balances, String> {
    let json: Value =
        serde_json::from_slice(body).map_err(|e| format!("response is not JSON: {e}"))?;
    if !json.is_object() {
        return Err(format!("balances must be an object, got {json}"));
    }
    let id = required_str(&json, "id")?.to_owned();
    let account_id = required_str(&json, "accountID")?.to_owned();
    let at = required_time(&json, "at")?;
    let list = match json.get("balances") {
        Some(Value::Array(list)) => list,
        None => return Err("no value given for required property balances".to_owned()),
        Some(other) => return Err(format!("balances must be an array, got {other}")),
    };
    let mut balances = Vec::new();
    for balance in list {
        if !balance.is_object() {
            return Err(format!("balance must be an object, got {balance}"));
        }
        let amount = required_str(balance, "amount")?;
        let currency = required_str(balance, "currency")?;
        check_amount(amount)?;
        check_currency(currency)?;
        balances.push((amount.to_owned(), currency.to_owned()));
    }
    Ok(Balances {
        id,
        account_id,
        at,
        balances,
        json,
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct HttpReply {
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Splits `http://host:port/prefix` into (`host:port`, `/prefix`).
fn split_url(url: &str) -> io::Result<(String, String)> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not an http:// URL: {url}"),
        )
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no host"));
    }
    Ok((authority.to_owned(), path.to_owned()))
}

/// One HTTP/1.1 exchange with `Connection: close`.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<HttpReply> {
    let (authority, path) = split_url(url)?;
    let with_port = if authority.contains(':') {
        authority.clone()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.unwrap_or(&[]));
    stream.write_all(&bytes)?;
    stream.flush()?;

    let deadline = Instant::now() + timeout;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "response too slow"));
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A reset after a complete response still gives the response.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => return Err(e),
        }
        if raw.len() > 64 * 1024 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response too large",
            ));
        }
        // Stop early once a Content-Length response is complete.
        if let Some(reply) = parse_reply(&raw, false) {
            return Ok(reply);
        }
    }
    parse_reply(&raw, true)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed HTTP response"))
}

/// Parses a complete response; with `eof`, a body without framing ends at EOF.
fn parse_reply(raw: &[u8], eof: bool) -> Option<HttpReply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let rest = &raw[end..];
    if (100..200).contains(&status) {
        // An interim response (100 Continue): parse what follows.
        return parse_reply(rest, eof);
    }
    let body = if status == 204 || status == 304 {
        Vec::new()
    } else if get("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        decode_chunked(rest)?
    } else if let Some(length) = get("content-length") {
        let length: usize = length.parse().ok()?;
        if rest.len() < length {
            return None;
        }
        rest[..length].to_vec()
    } else if eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some(HttpReply {
        status,
        headers,
        body,
    })
}

fn decode_chunked(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if rest.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Go's `url.QueryEscape`: unreserved characters kept, space as `+`, the rest `%XX`.
pub fn query_escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.PathEscape` (what the generated client does to path parameters).
pub fn path_escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'$'
            | b'&'
            | b'+'
            | b'='
            | b':'
            | b'@' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Whether Formance retries a response with this status.
pub fn is_retryable(status: u16) -> bool {
    matches!(status, 408 | 421 | 423 | 425 | 429) || (500..600).contains(&status)
}

// ---------------------------------------------------------------------------------------------
// The poller
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub enum PollError {
    /// A non-retryable status (any 4xx but 408, 421, 423, 425, 429; 3xx): not retried.
    Status {
        url: String,
        status: u16,
        title: String,
        detail: String,
        body: String,
    },
    /// Retryable failures (statuses or I/O) on every attempt.
    Exhausted {
        url: String,
        attempts: usize,
        last: String,
    },
    /// The response did not decode: the whole page is rejected.
    Decode {
        url: String,
        detail: String,
        body: String,
    },
    /// The loop did not converge within its bounds.
    Stuck { kind: Kind, detail: String },
}

impl fmt::Display for PollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PollError::Status {
                url,
                status,
                title,
                detail,
                body,
            } => write!(f, "GET {url}: {status} {title}: {detail} ({body})"),
            PollError::Exhausted {
                url,
                attempts,
                last,
            } => write!(
                f,
                "GET {url}: still failing after {attempts} attempts: {last}"
            ),
            PollError::Decode { url, detail, body } => {
                let shown: String = body.chars().take(500).collect();
                write!(f, "GET {url}: cannot decode: {detail}\nbody: {shown}")
            }
            PollError::Stuck { kind, detail } => write!(f, "{kind:?}: {detail}"),
        }
    }
}

impl std::error::Error for PollError {}

/// The latest version of one received record.
#[derive(Clone, Debug)]
pub struct Received {
    pub json: Value,
    /// The poll timestamp (`createdAt` / `updatedAt`), unix nanoseconds.
    pub timestamp: i128,
    /// How many times it was received (1 = once).
    pub versions: usize,
    /// How many of those receipts were identical to the version before (true duplicates).
    pub repeats: usize,
}

/// What one poll cycle did.
#[derive(Clone, Debug, Default)]
pub struct Cycle {
    pub pages: usize,
    pub fetched: usize,
    /// Items kept after the strict "after the state" filter and trimming.
    pub kept: usize,
    /// Kept items dropped by the trim to `pageSize`.
    pub trimmed: usize,
    /// Formance's own `HasMore`: the last page fetched was full.
    pub has_more: bool,
    /// The batch held `pageSize` items: more may remain.
    pub full: bool,
    /// Kept items whose timestamp was lower than the previous kept item's (unsorted server).
    pub out_of_order: usize,
    pub state_before: Option<i128>,
    pub state_after: Option<i128>,
}

/// One HTTP exchange the poller made.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    /// None for an I/O failure.
    pub status: Option<u16>,
}

#[derive(Default)]
struct KindState {
    state: Option<i128>,
    records: BTreeMap<String, Received>,
    receipts: usize,
    cycles: Vec<Cycle>,
}

pub struct Poller {
    base: String,
    api_key: String,
    page_size: usize,
    max_attempts: usize,
    backoff: Duration,
    timeout: Duration,
    max_pages_per_cycle: usize,
    max_cycles: usize,
    kinds: BTreeMap<Kind, KindState>,
    requests: usize,
    retries: usize,
    exchanges: Vec<Exchange>,
}

impl Poller {
    /// `connector_url` is Formance's `endpoint` (may carry a path prefix; a trailing `/` is
    /// dropped), `api_key` its `apiKey`, `page_size` the engine's page size (100 by default in
    /// Formance). Retries: 4 attempts, backoff 10 ms doubling up to 200 ms.
    pub fn new(connector_url: &str, api_key: &str, page_size: usize) -> Poller {
        assert!(page_size > 0, "page size must be positive");
        Poller {
            base: connector_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            page_size,
            max_attempts: 4,
            backoff: Duration::from_millis(10),
            timeout: Duration::from_secs(30),
            max_pages_per_cycle: 10_000,
            max_cycles: 100_000,
            kinds: Kind::ALL
                .iter()
                .map(|k| (*k, KindState::default()))
                .collect(),
            requests: 0,
            retries: 0,
            exchanges: Vec::new(),
        }
    }

    /// Attempts per request (>= 1) and the first backoff (doubled each retry, capped 200 ms).
    pub fn with_retries(mut self, max_attempts: usize, backoff: Duration) -> Poller {
        self.max_attempts = max_attempts.max(1);
        self.backoff = backoff;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Poller {
        self.timeout = timeout;
        self
    }

    /// Bounds that turn a non-converging connector into [`PollError::Stuck`].
    pub fn with_limits(mut self, max_pages_per_cycle: usize, max_cycles: usize) -> Poller {
        self.max_pages_per_cycle = max_pages_per_cycle;
        self.max_cycles = max_cycles;
        self
    }

    pub fn page_size(&self) -> usize {
        self.page_size
    }

    fn kind(&self, kind: Kind) -> &KindState {
        &self.kinds[&kind]
    }

    fn kind_mut(&mut self, kind: Kind) -> &mut KindState {
        self.kinds.get_mut(&kind).expect("every kind has a state")
    }

    /// The URL of one list page for that state.
    pub fn list_url(&self, kind: Kind, page: usize, state: Option<i128>) -> String {
        // Go's url.Values.Encode sorts by key.
        let mut params: Vec<(&str, String)> = vec![
            ("page", page.to_string()),
            ("pageSize", self.page_size.to_string()),
            ("sort", kind.sort().to_owned()),
        ];
        if let Some(state) = state {
            params.push((kind.filter_param(), format_rfc3339_utc_seconds(state)));
        }
        params.sort_by(|a, b| a.0.cmp(b.0));
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
            .collect();
        format!("{}{}?{}", self.base, kind.path(), query.join("&"))
    }

    /// GET with Formance's retry classification; the body of a 2xx.
    fn get(&mut self, url: &str) -> Result<Vec<u8>, PollError> {
        let auth = format!("Bearer {}", self.api_key);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Accept", "application/json"),
            ("User-Agent", "formance-poller-test/1.0"),
        ];
        let mut last = String::new();
        for attempt in 0..self.max_attempts {
            if attempt > 0 {
                self.retries += 1;
                let factor = 1u32 << (attempt - 1).min(16);
                thread::sleep((self.backoff * factor).min(Duration::from_millis(200)));
            }
            self.requests += 1;
            match http_request("GET", url, &headers, None, self.timeout) {
                Ok(reply) => {
                    self.exchanges.push(Exchange {
                        method: "GET".to_owned(),
                        url: url.to_owned(),
                        status: Some(reply.status),
                    });
                    if (200..300).contains(&reply.status) {
                        return Ok(reply.body);
                    }
                    if is_retryable(reply.status) {
                        last = format!("{} {}", reply.status, reply.text());
                        continue;
                    }
                    let json = reply.json().unwrap_or(Value::Null);
                    let key = |name: &str| {
                        json.as_object()
                            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                            .and_then(|(_, v)| v.as_str())
                            .unwrap_or("")
                            .to_owned()
                    };
                    return Err(PollError::Status {
                        url: url.to_owned(),
                        status: reply.status,
                        title: key("title"),
                        detail: key("detail"),
                        body: reply.text(),
                    });
                }
                Err(e) => {
                    self.exchanges.push(Exchange {
                        method: "GET".to_owned(),
                        url: url.to_owned(),
                        status: None,
                    });
                    last = format!("I/O error: {e}");
                }
            }
        }
        Err(PollError::Exhausted {
            url: url.to_owned(),
            attempts: self.max_attempts,
            last,
        })
    }

    /// One poll cycle (one `fetchNext...` call of Formance). Returns whether more may remain:
    /// the batch held `pageSize` items. (Formance's own `HasMore` is [`Cycle::has_more`]: when
    /// it is false but the batch was trimmed, Formance gets the rest at its next periodic
    /// poll, which starts from the same state; so looping on this value reaches the same end.)
    /// On error nothing is stored and the state is unchanged.
    pub fn poll_cycle(&mut self, kind: Kind) -> Result<bool, PollError> {
        let state = self.kind(kind).state;
        let page_size = self.page_size;
        let mut cycle = Cycle {
            state_before: state,
            ..Cycle::default()
        };
        let mut kept: Vec<(String, i128, Value)> = Vec::new();
        let mut page = 1;
        loop {
            if page > self.max_pages_per_cycle {
                return Err(PollError::Stuck {
                    kind,
                    detail: format!(
                        "no end after {} pages (every page full)",
                        self.max_pages_per_cycle
                    ),
                });
            }
            let url = self.list_url(kind, page, state);
            let body = self.get(&url)?;
            let items = decode_page(kind, &body).map_err(|detail| PollError::Decode {
                url: url.clone(),
                detail,
                body: String::from_utf8_lossy(&body).into_owned(),
            })?;
            cycle.pages += 1;
            cycle.fetched += items.len();
            let count = items.len();
            kept.extend(
                items
                    .into_iter()
                    .filter(|(_, ts, _)| state.is_none_or(|s| *ts > s)),
            );
            let need_more = kept.len() < page_size;
            cycle.has_more = count >= page_size;
            if !need_more || !cycle.has_more {
                break;
            }
            page += 1;
        }
        cycle.trimmed = kept.len().saturating_sub(page_size);
        kept.truncate(page_size);
        cycle.kept = kept.len();
        cycle.full = kept.len() == page_size;
        cycle.out_of_order = kept.windows(2).filter(|w| w[1].1 < w[0].1).count();
        let new_state = kept.last().map(|(_, ts, _)| *ts).or(state);
        cycle.state_after = new_state;

        let entry = self.kind_mut(kind);
        entry.state = new_state;
        for (id, timestamp, json) in kept {
            entry.receipts += 1;
            match entry.records.get_mut(&id) {
                Some(record) => {
                    record.versions += 1;
                    if record.json == json {
                        record.repeats += 1;
                    }
                    record.json = json;
                    record.timestamp = timestamp;
                }
                None => {
                    entry.records.insert(
                        id,
                        Received {
                            json,
                            timestamp,
                            versions: 1,
                            repeats: 0,
                        },
                    );
                }
            }
        }
        let full = cycle.full;
        entry.cycles.push(cycle);
        Ok(full)
    }

    /// Runs cycles until one says nothing more remains. Returns the number of cycles.
    /// A full cycle that leaves the state where it was is [`PollError::Stuck`] (Formance would
    /// repeat it forever).
    pub fn sync(&mut self, kind: Kind) -> Result<usize, PollError> {
        for cycles in 1..=self.max_cycles {
            if !self.poll_cycle(kind)? {
                return Ok(cycles);
            }
            let last = self.kind(kind).cycles.last().expect("a cycle was recorded");
            if last.state_after == last.state_before {
                // The next cycle would ask exactly the same: Formance would loop forever.
                return Err(PollError::Stuck {
                    kind,
                    detail: format!(
                        "a full batch left the state at {:?}: no progress",
                        last.state_after.map(format_rfc3339_nanos)
                    ),
                });
            }
        }
        Err(PollError::Stuck {
            kind,
            detail: format!("still more after {} cycles", self.max_cycles),
        })
    }

    /// `sync` for accounts, beneficiaries and transactions.
    pub fn sync_all(&mut self) -> Result<(), PollError> {
        for kind in Kind::ALL {
            self.sync(kind)?;
        }
        Ok(())
    }

    /// `GET /accounts/{id}/balances`, decoded strictly.
    pub fn balances(&mut self, account_id: &str) -> Result<Balances, PollError> {
        let url = format!(
            "{}/accounts/{}/balances",
            self.base,
            path_escape(account_id)
        );
        let body = self.get(&url)?;
        decode_balances(&body).map_err(|detail| PollError::Decode {
            url,
            detail,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Balances of every account received so far, by account id.
    pub fn all_balances(&mut self) -> Result<BTreeMap<String, Balances>, PollError> {
        let ids = self.ids(Kind::Accounts);
        let mut out = BTreeMap::new();
        for id in ids {
            let balances = self.balances(&id)?;
            out.insert(id, balances);
        }
        Ok(out)
    }

    // ---- what was received ----

    /// The state: the timestamp of the last kept item (None before anything was kept).
    pub fn state(&self, kind: Kind) -> Option<i128> {
        self.kind(kind).state
    }

    pub fn set_state(&mut self, kind: Kind, state: Option<i128>) {
        self.kind_mut(kind).state = state;
    }

    /// The latest version of every received record, by id.
    pub fn records(&self, kind: Kind) -> &BTreeMap<String, Received> {
        &self.kind(kind).records
    }

    pub fn record(&self, kind: Kind, id: &str) -> Option<&Value> {
        self.kind(kind).records.get(id).map(|r| &r.json)
    }

    /// Received ids, sorted.
    pub fn ids(&self, kind: Kind) -> Vec<String> {
        self.kind(kind).records.keys().cloned().collect()
    }

    /// Items received in total (every version of every record).
    pub fn receipts(&self, kind: Kind) -> usize {
        self.kind(kind).receipts
    }

    /// Receipts beyond the first of each id (new versions and repeats).
    pub fn extra_versions(&self, kind: Kind) -> usize {
        self.kind(kind).receipts - self.kind(kind).records.len()
    }

    /// Receipts identical to the version before: true duplicates.
    pub fn repeats(&self, kind: Kind) -> usize {
        self.kind(kind).records.values().map(|r| r.repeats).sum()
    }

    pub fn cycles(&self, kind: Kind) -> &[Cycle] {
        &self.kind(kind).cycles
    }

    /// Forgets received records (not the state), e.g. before an incremental check.
    pub fn clear_records(&mut self, kind: Kind) {
        let entry = self.kind_mut(kind);
        entry.records.clear();
        entry.receipts = 0;
    }

    /// HTTP requests made (retries included).
    pub fn requests(&self) -> usize {
        self.requests
    }

    /// Retries made (requests beyond the first attempt).
    pub fn retries(&self) -> usize {
        self.retries
    }

    pub fn exchanges(&self) -> &[Exchange] {
        &self.exchanges
    }
}
