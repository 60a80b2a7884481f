//! "Pageworks": a mock payment provider with page-number pagination, OAuth2 client
//! credentials and nested records, for end-to-end tests of mapped connectors.
//!
//! - Times are RFC 3339 WITH OFFSETS, each record keeping its own zone: `+02:00`, `-05:00`,
//!   `+05:30`, `+01:00`, `-08:00` or `Z`; some carry milliseconds (`.250`). Two records of one
//!   instant may be written in different zones.
//! - Amounts are MINOR UNITS as JSON integers (`value_minor`, negative = money out), currencies
//!   upper-case ISO codes (EUR, USD 2 digits; JPY 0; KWD 3).
//! - Lists are OLDEST FIRST: by the list's time field (as an instant), ties by id ascending
//!   (byte-wise), page-number paginated: `page` (>= 1, default 1), `per_page` (1..=100, default
//!   25); anything else is 400. A page past the end is 200 with no items.
//!   `meta.total_pages = ceil(total / per_page)` (0 when empty).
//! - Unknown query parameters are 400.
//!
//! HTTP API:
//!
//! - `POST /oauth/token`, form body `grant_type=client_credentials&client_id=..&client_secret=..`
//!   or HTTP Basic client authentication (both at once only if they agree) ->
//!   `{"access_token":"tok_<k>","token_type":"Bearer","expires_in":<secs, rounded up>}`.
//!   Errors (RFC 6749): 400 `{"error":"invalid_request"|"unsupported_grant_type",
//!   "error_description":..}`, 401 `{"error":"invalid_client",..}`. Tokens expire after the
//!   configured TTL of real (wall-clock) time, default 3600 s.
//! - Every `/api/v2/...` call needs `Authorization: Bearer tok_<k>` with an unexpired token;
//!   else 401 `{"error":"invalid_token","error_description":..}` and
//!   `WWW-Authenticate: Bearer error="invalid_token"`.
//! - `GET /api/v2/accounts?page&per_page&opened_after=<rfc3339>` ->
//!   `{"meta":{"page":1,"per_page":50,"total_pages":N,"total":M},"items":[{"account":{"uuid":..,
//!   "label":..,"opened_at":..},"owner":{"name":..}}]}`, sorted by `opened_at`.
//!   `opened_after` is EXCLUSIVE at SECOND precision: an account is listed iff the whole second
//!   of its `opened_at` is after the whole second of `opened_after` (fractions of either are
//!   ignored; so `opened_after=10:00:00Z` hides `10:00:00.250Z`).
//! - `GET /api/v2/accounts/{uuid}/balances` -> `{"account_uuid":..,"as_of":<now, in the
//!   account's zone>,"balances":[{"money":{"value_minor":123456,"currency":"EUR"}}]}`; 404 if
//!   unknown.
//! - `GET /api/v2/counterparties?page&per_page` (no time filter) -> `{"meta":..,"items":[{"id":..,
//!   "holder":{"full_name":..},"created_at":..}]}`, sorted by `created_at`.
//! - `GET /api/v2/statements?page&per_page&changed_since=<rfc3339>` -> `{"meta":..,"items":[
//!   {"statement_id":..,"entries":[transaction,...]}]}`. `changed_since` is INCLUSIVE at full
//!   precision (`changed_at >= changed_since`). The transactions passing the filter are sorted
//!   by `changed_at` (ties by `ref` ascending) and cut, in that order, into statements of 1 to 4
//!   entries (the size derives from the statement's first `ref`), so flattening the statements
//!   of pages 1, 2, ... gives the sorted sequence. `per_page` and `meta` count statements.
//!   transaction: `{"ref":..,"booked_at":..,"changed_at":..,"money":{"value_minor":-1234,
//!   "currency":"EUR"},"kind":"CARD"|"SEPA_OUT"|"INTERNAL"|"FEE","state":"BOOKED"|"PENDING"|
//!   "REJECTED"|"REVERSED","from_account":uuid|null,"to_account":uuid|null,
//!   "tags":{"channel":"web","batch":7}}` (`batch` is a JSON integer). Signs: CARD +, SEPA_OUT -,
//!   INTERNAL - (from -> to), FEE -.
//! - API errors: `{"errors":[{"code":"invalid_parameter"|"not_found"|..,"detail":..}]}`;
//!   injected faults: 429 `{"errors":[{"code":"rate_limited",..}]}`, 5xx
//!   `{"errors":[{"code":"unavailable",..}]}`, with `Retry-After` when configured.

#![allow(dead_code)]

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::mock_http::{Call, Control, MockServer, Prng, Request, Response, fnv1a, lock};

/// 2026-03-01T12:00:00Z in unix seconds, the default "now".
pub const PAGEWORKS_EPOCH: i64 = 1_772_366_400;
pub const PAGEWORKS_MAX_PER_PAGE: usize = 100;
pub const PAGEWORKS_DEFAULT_PER_PAGE: usize = 25;
const NANOS: i64 = 1_000_000_000;

pub const PW_KINDS: [&str; 4] = ["CARD", "SEPA_OUT", "INTERNAL", "FEE"];
pub const PW_STATES: [&str; 4] = ["BOOKED", "PENDING", "REJECTED", "REVERSED"];
/// The zones records are written in, in minutes east of UTC.
pub const PW_OFFSETS: [i32; 6] = [120, -300, 0, 60, 330, -480];

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number from [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// An instant with the zone it is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PwTime {
    pub unix_nanos: i64,
    /// Minutes east of UTC; 0 is written `Z`.
    pub offset_minutes: i32,
}

impl PwTime {
    pub fn from_unix(secs: i64, offset_minutes: i32) -> PwTime {
        PwTime {
            unix_nanos: secs * NANOS,
            offset_minutes,
        }
    }

    pub fn from_unix_millis(millis: i64, offset_minutes: i32) -> PwTime {
        PwTime {
            unix_nanos: millis * 1_000_000,
            offset_minutes,
        }
    }

    /// Whole unix seconds (floor).
    pub fn secs(&self) -> i64 {
        self.unix_nanos.div_euclid(NANOS)
    }

    pub fn with_offset(self, offset_minutes: i32) -> PwTime {
        PwTime {
            offset_minutes,
            ..self
        }
    }

    pub fn plus_millis(self, millis: i64) -> PwTime {
        PwTime {
            unix_nanos: self.unix_nanos + millis * 1_000_000,
            ..self
        }
    }

    /// Compares instants (zones ignored).
    pub fn instant_cmp(&self, other: &PwTime) -> Ordering {
        self.unix_nanos.cmp(&other.unix_nanos)
    }

    /// `2026-03-01T14:00:00+02:00`, `2026-03-01T12:00:00.250Z`: milliseconds when the instant
    /// has a sub-second part on a millisecond, nanoseconds otherwise, nothing when whole.
    pub fn rfc3339(&self) -> String {
        let local = self.unix_nanos + i64::from(self.offset_minutes) * 60 * NANOS;
        let secs = local.div_euclid(NANOS);
        let frac = local.rem_euclid(NANOS);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        let mut out = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        );
        if frac != 0 {
            if frac % 1_000_000 == 0 {
                out.push_str(&format!(".{:03}", frac / 1_000_000));
            } else {
                out.push_str(&format!(".{frac:09}"));
            }
        }
        if self.offset_minutes == 0 {
            out.push('Z');
        } else {
            let sign = if self.offset_minutes < 0 { '-' } else { '+' };
            let abs = self.offset_minutes.abs();
            out.push_str(&format!("{sign}{:02}:{:02}", abs / 60, abs % 60));
        }
        out
    }

    /// Parses RFC 3339 with a zone (`Z` or `±HH:MM`), 1 to 9 fractional digits. `-00:00` and
    /// `+00:00` read as `Z`.
    pub fn parse(text: &str) -> Option<PwTime> {
        let b = text.as_bytes();
        if b.len() < 20 || !text.is_ascii() {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<i64> {
            let s = &text[range];
            s.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| s.parse().ok())
                .flatten()
        };
        if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' {
            return None;
        }
        if b[16] != b':' {
            return None;
        }
        let (year, month, day) = (num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
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
        let mut frac: i64 = 0;
        if let Some(after) = rest.strip_prefix('.') {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            if !(1..=9).contains(&digits) {
                return None;
            }
            frac = after[..digits].parse::<i64>().ok()? * 10i64.pow(9 - digits as u32);
            rest = &after[digits..];
        }
        let offset_minutes = match rest {
            "Z" | "z" => 0,
            _ => {
                let rb = rest.as_bytes();
                if rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                    return None;
                }
                let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
                if !digits(&rest[1..3]) || !digits(&rest[4..6]) {
                    return None;
                }
                let hh: i32 = rest[1..3].parse().ok()?;
                let mm: i32 = rest[4..6].parse().ok()?;
                if hh > 23 || mm > 59 {
                    return None;
                }
                let total = hh * 60 + mm;
                if rb[0] == b'-' { -total } else { total }
            }
        };
        let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
        let utc = local - i64::from(offset_minutes) * 60;
        Some(PwTime {
            unix_nanos: utc * NANOS + frac,
            offset_minutes,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// Decimal digits of a currency's minor unit (ISO 4217), for the codes the mocks use.
pub fn pw_currency_exponent(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "JPY" | "KRW" | "CLP" | "VND" | "ISK" => 0,
        "KWD" | "BHD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PwMoney {
    pub value_minor: i64,
    /// Upper-case ISO code.
    pub currency: String,
}

impl PwMoney {
    pub fn new(value_minor: i64, currency: &str) -> PwMoney {
        PwMoney {
            value_minor,
            currency: currency.to_owned(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"value_minor": self.value_minor, "currency": self.currency})
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PwAccount {
    pub uuid: String,
    pub label: String,
    pub opened_at: PwTime,
    pub owner_name: String,
    pub balances: Vec<PwMoney>,
}

impl PwAccount {
    /// One item of the accounts list.
    pub fn to_json(&self) -> Value {
        json!({
            "account": {"uuid": self.uuid, "label": self.label, "opened_at": self.opened_at.rfc3339()},
            "owner": {"name": self.owner_name},
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PwCounterparty {
    pub id: String,
    pub full_name: String,
    pub created_at: PwTime,
}

impl PwCounterparty {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "holder": {"full_name": self.full_name},
            "created_at": self.created_at.rfc3339(),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PwTransaction {
    /// The `ref` field.
    pub reference: String,
    pub booked_at: PwTime,
    pub changed_at: PwTime,
    pub money: PwMoney,
    pub kind: String,
    pub state: String,
    pub from_account: Option<String>,
    pub to_account: Option<String>,
    /// A JSON object; seeded ones hold `channel` (string) and `batch` (integer).
    pub tags: Value,
}

impl PwTransaction {
    pub fn to_json(&self) -> Value {
        json!({
            "ref": self.reference,
            "booked_at": self.booked_at.rfc3339(),
            "changed_at": self.changed_at.rfc3339(),
            "money": self.money.to_json(),
            "kind": self.kind,
            "state": self.state,
            "from_account": self.from_account,
            "to_account": self.to_account,
            "tags": self.tags,
        })
    }
}

/// What [`Pageworks::add_transaction`] creates; times default to the clock (in UTC).
#[derive(Clone, Debug)]
pub struct PwNewTransaction {
    pub value_minor: i64,
    pub currency: String,
    pub kind: String,
    pub state: String,
    pub from_account: Option<String>,
    pub to_account: Option<String>,
    pub tags: Value,
    pub booked_at: Option<PwTime>,
    pub changed_at: Option<PwTime>,
}

impl Default for PwNewTransaction {
    fn default() -> Self {
        PwNewTransaction {
            value_minor: 1000,
            currency: "EUR".to_owned(),
            kind: "CARD".to_owned(),
            state: "BOOKED".to_owned(),
            from_account: None,
            to_account: None,
            tags: json!({"channel": "web", "batch": 1}),
            booked_at: None,
            changed_at: None,
        }
    }
}

/// A statement as served: its id and its entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PwStatement {
    pub statement_id: String,
    pub entries: Vec<PwTransaction>,
}

impl PwStatement {
    pub fn to_json(&self) -> Value {
        json!({
            "statement_id": self.statement_id,
            "entries": self.entries.iter().map(PwTransaction::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Where transactions (already filtered and sorted) are cut into statements: the index
/// ranges of each statement's entries.
fn statement_bounds(sorted: &[&PwTransaction]) -> Vec<std::ops::Range<usize>> {
    let mut bounds = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let size = 1 + (fnv1a(&sorted[i].reference) % 4) as usize;
        let end = (i + size).min(sorted.len());
        bounds.push(i..end);
        i = end;
    }
    bounds
}

/// The statement holding these entries.
fn statement_of(entries: &[&PwTransaction]) -> PwStatement {
    let key: Vec<&str> = entries.iter().map(|t| t.reference.as_str()).collect();
    PwStatement {
        statement_id: format!("ST-{:012X}", fnv1a(&key.join(",")) >> 16),
        entries: entries.iter().map(|t| (*t).clone()).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

struct PwState {
    client_id: String,
    client_secret: String,
    token_ttl: Duration,
    /// Issued tokens and when they expire.
    tokens: Vec<(String, Instant)>,
    token_requests: usize,
    now: i64,
    seed_time: i64,
    rng: Prng,
    accounts: Vec<PwAccount>,
    counterparties: Vec<PwCounterparty>,
    transactions: Vec<PwTransaction>,
    /// Every `ref` handed out, so that a new one is checked in constant time.
    references: HashSet<String>,
}

impl PwState {
    fn now(&self) -> PwTime {
        PwTime {
            unix_nanos: self.now,
            offset_minutes: 0,
        }
    }

    /// A seeded time: the seed second moves 0 (a third of the time) or 1..=max_gap seconds;
    /// a third of the records get a millisecond part; a random zone.
    fn seed_time(&mut self, max_gap: i64) -> PwTime {
        if !self.rng.chance(1, 3) {
            self.seed_time += self.rng.range(1, max_gap);
        }
        self.seeded_at(self.seed_time)
    }

    fn seeded_at(&mut self, second: i64) -> PwTime {
        let millis = if self.rng.chance(1, 3) {
            *self.rng.pick(&[250, 250, 500, 999, 1])
        } else {
            0
        };
        let offset = *self.rng.pick(&PW_OFFSETS);
        let time = PwTime::from_unix(second, offset).plus_millis(millis);
        if self.now < time.unix_nanos {
            self.now = time.unix_nanos;
        }
        time
    }

    fn uuid_unique(&mut self) -> String {
        loop {
            let id = self.rng.uuid();
            if !self.accounts.iter().any(|a| a.uuid == id)
                && !self.counterparties.iter().any(|c| c.id == id)
            {
                return id;
            }
        }
    }

    fn reference_unique(&mut self) -> String {
        loop {
            let id = format!("TX-{}", self.rng.hex(10).to_ascii_uppercase());
            if self.references.insert(id.clone()) {
                return id;
            }
        }
    }

    fn random_minor(&mut self, currency: &str) -> i64 {
        let scale = 10i64.pow(pw_currency_exponent(currency));
        match self.rng.below(10) {
            0 => self.rng.range(1, 99),
            _ => self.rng.range(100, scale * 5_000),
        }
    }

    /// The transactions passing the filter, sorted by `changed_at`, ties by `ref`.
    fn sorted_transactions(&self, since: Option<PwTime>) -> Vec<&PwTransaction> {
        let mut sorted: Vec<&PwTransaction> = self
            .transactions
            .iter()
            .filter(|t| since.is_none_or(|s| t.changed_at.unix_nanos >= s.unix_nanos))
            .collect();
        sorted.sort_by(|a, b| {
            a.changed_at
                .instant_cmp(&b.changed_at)
                .then_with(|| a.reference.cmp(&b.reference))
        });
        sorted
    }

    fn statements(&self, since: Option<PwTime>) -> Vec<PwStatement> {
        let sorted = self.sorted_transactions(since);
        statement_bounds(&sorted)
            .into_iter()
            .map(|range| statement_of(&sorted[range]))
            .collect()
    }
}

fn api_error(status: u16, code: &str, detail: &str) -> Response {
    Response::json(
        status,
        &json!({"errors": [{"code": code, "detail": detail}]}),
    )
}

fn oauth_error(status: u16, code: &str, description: &str) -> Response {
    Response::json(
        status,
        &json!({"error": code, "error_description": description}),
    )
}

fn fault_response(status: u16, _retry_after: Option<u64>) -> Response {
    if status == 429 {
        api_error(429, "rate_limited", "Rate limit exceeded, slow down.")
    } else {
        api_error(status, "unavailable", "Service temporarily unavailable.")
    }
}

struct PageParams {
    page: usize,
    per_page: usize,
    filter: Option<PwTime>,
}

fn page_params(request: &Request, filter_key: Option<&str>) -> Result<PageParams, Response> {
    let mut params = PageParams {
        page: 1,
        per_page: PAGEWORKS_DEFAULT_PER_PAGE,
        filter: None,
    };
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in &request.query {
        if seen.contains(&key.as_str()) {
            return Err(api_error(
                400,
                "invalid_parameter",
                &format!("parameter '{key}' given twice"),
            ));
        }
        seen.push(key);
        match key.as_str() {
            "page" => {
                params.page = value
                    .parse::<usize>()
                    .ok()
                    .filter(|p| *p >= 1)
                    .ok_or_else(|| {
                        api_error(400, "invalid_parameter", "page must be an integer >= 1")
                    })?;
            }
            "per_page" => {
                params.per_page = value
                    .parse::<usize>()
                    .ok()
                    .filter(|p| (1..=PAGEWORKS_MAX_PER_PAGE).contains(p))
                    .ok_or_else(|| {
                        api_error(
                            400,
                            "invalid_parameter",
                            &format!(
                                "per_page must be an integer between 1 and {PAGEWORKS_MAX_PER_PAGE}"
                            ),
                        )
                    })?;
            }
            k if Some(k) == filter_key => {
                params.filter = Some(PwTime::parse(value).ok_or_else(|| {
                    api_error(
                        400,
                        "invalid_parameter",
                        &format!("{k} must be an RFC 3339 date-time with a zone"),
                    )
                })?);
            }
            _ => {
                return Err(api_error(
                    400,
                    "invalid_parameter",
                    &format!("unknown query parameter '{key}'"),
                ));
            }
        }
    }
    Ok(params)
}

/// One page of `items`; only that page is rendered as JSON (lists may be long).
fn page_of<T>(params: &PageParams, items: &[T], to_json: impl Fn(&T) -> Value) -> Response {
    let total = items.len();
    let total_pages = total.div_ceil(params.per_page);
    let start = (params.page - 1).saturating_mul(params.per_page).min(total);
    let end = (start + params.per_page).min(total);
    let page: Vec<Value> = items[start..end].iter().map(to_json).collect();
    Response::json(
        200,
        &json!({
            "meta": {
                "page": params.page,
                "per_page": params.per_page,
                "total_pages": total_pages,
                "total": total,
            },
            "items": page,
        }),
    )
}

fn token_endpoint(state: &mut PwState, request: &Request) -> Response {
    state.token_requests += 1;
    if request.method != "POST" {
        return oauth_error(405, "invalid_request", "use POST");
    }
    let Some(form) = request.form() else {
        return oauth_error(400, "invalid_request", "malformed form body");
    };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let from_form = match (field("client_id"), field("client_secret")) {
        (Some(id), Some(secret)) => Some((id, secret)),
        (None, None) => None,
        (Some(id), None) => Some((id, String::new())),
        (None, Some(_)) => {
            return oauth_error(400, "invalid_request", "client_secret without client_id");
        }
    };
    let credentials = match (request.basic_auth(), from_form) {
        (Some(basic), Some(form)) if basic != form => {
            return oauth_error(
                400,
                "invalid_request",
                "conflicting client authentication methods",
            );
        }
        (Some(basic), _) => basic,
        (None, Some(form)) => form,
        (None, None) => {
            return oauth_error(401, "invalid_client", "client authentication required")
                .with_header("WWW-Authenticate", "Basic realm=\"pageworks\"");
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
        return oauth_error(401, "invalid_client", "unknown client or wrong secret")
            .with_header("WWW-Authenticate", "Basic realm=\"pageworks\"");
    }
    let token = format!("tok_{}", state.tokens.len() + 1);
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

fn route(state: &Mutex<PwState>, request: &Request) -> Response {
    let mut state = lock(state);
    let segments = request.segments();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    if segments == ["oauth", "token"] {
        return token_endpoint(&mut state, request);
    }
    if segments.first() != Some(&"api") {
        return api_error(404, "not_found", &format!("no route for {}", request.path));
    }
    let valid = request.bearer().and_then(|token| {
        state
            .tokens
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, expiry)| Instant::now() < *expiry)
    });
    match valid {
        Some(true) => {}
        Some(false) => {
            return oauth_error(401, "invalid_token", "The access token expired")
                .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
        }
        None => {
            return oauth_error(401, "invalid_token", "Missing or unknown access token")
                .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
        }
    }
    if request.method != "GET" {
        return api_error(405, "method_not_allowed", "use GET");
    }
    match segments.as_slice() {
        ["api", "v2", "accounts"] => {
            let params = match page_params(request, Some("opened_after")) {
                Ok(p) => p,
                Err(response) => return response,
            };
            let mut accounts: Vec<&PwAccount> = state
                .accounts
                .iter()
                .filter(|a| {
                    params
                        .filter
                        .is_none_or(|after| a.opened_at.secs() > after.secs())
                })
                .collect();
            accounts.sort_by(|a, b| {
                a.opened_at
                    .instant_cmp(&b.opened_at)
                    .then_with(|| a.uuid.cmp(&b.uuid))
            });
            page_of(&params, &accounts, |a| a.to_json())
        }
        ["api", "v2", "accounts", uuid, "balances"] => {
            match state.accounts.iter().find(|a| a.uuid == *uuid) {
                Some(account) => Response::json(
                    200,
                    &json!({
                        "account_uuid": account.uuid,
                        "as_of": state.now().with_offset(account.opened_at.offset_minutes).rfc3339(),
                        "balances": account.balances.iter()
                            .map(|m| json!({"money": m.to_json()}))
                            .collect::<Vec<_>>(),
                    }),
                ),
                None => api_error(404, "not_found", &format!("no account {uuid}")),
            }
        }
        ["api", "v2", "counterparties"] => {
            let params = match page_params(request, None) {
                Ok(p) => p,
                Err(response) => return response,
            };
            let mut counterparties: Vec<&PwCounterparty> = state.counterparties.iter().collect();
            counterparties.sort_by(|a, b| {
                a.created_at
                    .instant_cmp(&b.created_at)
                    .then_with(|| a.id.cmp(&b.id))
            });
            page_of(&params, &counterparties, |c| c.to_json())
        }
        ["api", "v2", "statements"] => {
            let params = match page_params(request, Some("changed_since")) {
                Ok(p) => p,
                Err(response) => return response,
            };
            // Only the requested page's statements are built: lists may be long.
            let sorted = state.sorted_transactions(params.filter);
            let bounds = statement_bounds(&sorted);
            page_of(&params, &bounds, |range| {
                statement_of(&sorted[range.clone()]).to_json()
            })
        }
        _ => api_error(404, "not_found", &format!("no route for {}", request.path)),
    }
}

const LABELS: [&str; 6] = [
    "Main",
    "Payroll",
    "Savings",
    "Escrow",
    "Card settlement",
    "FX",
];
const OWNERS: [&str; 6] = [
    "Acme SAS",
    "Globex GmbH",
    "Initech Inc.",
    "Umbrella KK",
    "Hooli LLC",
    "Stark Industries",
];
const HOLDERS: [&str; 8] = [
    "Marie Curie",
    "Niels Bohr",
    "Lise Meitner",
    "Enrico Fermi",
    "Emmy Noether",
    "Paul Dirac",
    "Chien-Shiung Wu",
    "Max Planck",
];
const PW_CURRENCIES: [&str; 5] = ["EUR", "EUR", "USD", "JPY", "KWD"];

pub struct Pageworks {
    server: MockServer,
    state: Arc<Mutex<PwState>>,
    control: Arc<Control>,
}

impl Pageworks {
    /// A Pageworks with no data, the clock at [`PAGEWORKS_EPOCH`], tokens living 3600 s.
    pub fn start(seed: u64, client_id: &str, client_secret: &str) -> Pageworks {
        let state = Arc::new(Mutex::new(PwState {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            token_ttl: Duration::from_secs(3600),
            tokens: Vec::new(),
            token_requests: 0,
            now: PAGEWORKS_EPOCH * NANOS,
            seed_time: PAGEWORKS_EPOCH - 30 * 86_400,
            rng: Prng::new(seed),
            accounts: Vec::new(),
            counterparties: Vec::new(),
            transactions: Vec::new(),
            references: HashSet::new(),
        }));
        let control = Arc::new(Control::new());
        let route_state = Arc::clone(&state);
        let handler = control.wrap(fault_response, move |request| route(&route_state, request));
        Pageworks {
            server: MockServer::start(handler),
            state,
            control,
        }
    }

    /// `http://127.0.0.1:PORT` (the API lives under `/api/v2`, the token endpoint at
    /// `/oauth/token`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.server.url())
    }

    pub fn server(&self) -> &MockServer {
        &self.server
    }

    // ---- OAuth ----

    /// How long tokens issued from now on live (wall-clock time). `expires_in` is this rounded
    /// up to whole seconds.
    pub fn set_token_ttl(&self, ttl: Duration) {
        lock(&self.state).token_ttl = ttl;
    }

    /// Requests to `/oauth/token` so far (failed ones included).
    pub fn token_requests(&self) -> usize {
        lock(&self.state).token_requests
    }

    pub fn tokens_issued(&self) -> usize {
        lock(&self.state).tokens.len()
    }

    /// Every token issued so far expires now.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for (_, expiry) in lock(&self.state).tokens.iter_mut() {
            *expiry = now;
        }
    }

    /// Issues a token directly (not counted as a token request), for tests of the mock.
    pub fn issue_token(&self) -> String {
        let mut state = lock(&self.state);
        let token = format!("tok_{}", state.tokens.len() + 1);
        let expiry = Instant::now() + state.token_ttl;
        state.tokens.push((token.clone(), expiry));
        token
    }

    // ---- clock ----

    /// "Now" (written in UTC): what records added without a time get, and balances' `as_of`.
    pub fn now(&self) -> PwTime {
        lock(&self.state).now()
    }

    pub fn set_now(&self, now: PwTime) {
        lock(&self.state).now = now.unix_nanos;
    }

    pub fn advance_millis(&self, millis: i64) {
        lock(&self.state).now += millis * 1_000_000;
    }

    // ---- seeding and changes ----

    /// Adds `n` accounts with increasing `opened_at` (a third share the previous second; a
    /// third carry milliseconds; random zones), each with 1 to 3 balances. Returns the uuids.
    pub fn seed_accounts(&self, n: usize) -> Vec<String> {
        let mut state = lock(&self.state);
        (0..n)
            .map(|_| {
                let opened_at = state.seed_time(120);
                let uuid = state.uuid_unique();
                let label = state.rng.pick(&LABELS).to_string();
                let owner = state.rng.pick(&OWNERS).to_string();
                let count = 1 + state.rng.below(3) as usize;
                let mut balances = Vec::new();
                for currency in ["EUR", "USD", "JPY", "KWD"].iter().take(count) {
                    let mut minor = state.random_minor(currency);
                    if state.rng.chance(1, 8) {
                        minor = -minor;
                    }
                    balances.push(PwMoney::new(minor, currency));
                }
                state.accounts.push(PwAccount {
                    uuid: uuid.clone(),
                    label,
                    opened_at,
                    owner_name: owner,
                    balances,
                });
                uuid
            })
            .collect()
    }

    /// Adds `n` counterparties with increasing `created_at` (ties, milliseconds, zones as for
    /// accounts). Returns their ids.
    pub fn seed_counterparties(&self, n: usize) -> Vec<String> {
        let mut state = lock(&self.state);
        (0..n)
            .map(|_| {
                let created_at = state.seed_time(120);
                let id = state.uuid_unique();
                let full_name = state.rng.pick(&HOLDERS).to_string();
                state.counterparties.push(PwCounterparty {
                    id: id.clone(),
                    full_name,
                    created_at,
                });
                id
            })
            .collect()
    }

    /// Adds `n` transactions in bursts: each run of `burst` consecutive transactions shares
    /// one `changed_at` second (bursts 1 to 3 s apart); a third of them carry milliseconds
    /// (mostly `.250`, so exact-instant ties exist both with and without fractions); zones
    /// are random, so one instant may be written in several zones. `booked_at` is up to 3
    /// days earlier, in the same zone. Accounts are drawn from the existing ones.
    pub fn seed_transactions(&self, n: usize, burst: usize) -> Vec<String> {
        let burst = burst.max(1);
        let mut state = lock(&self.state);
        let uuids: Vec<String> = state.accounts.iter().map(|a| a.uuid.clone()).collect();
        let mut refs = Vec::with_capacity(n);
        for i in 0..n {
            if i % burst == 0 {
                state.seed_time += state.rng.range(1, 3);
            }
            let second = state.seed_time;
            let changed_at = state.seeded_at(second);
            let booked_at = PwTime {
                unix_nanos: changed_at.unix_nanos - state.rng.range(0, 3 * 86_400) * NANOS,
                ..changed_at
            };
            let reference = state.reference_unique();
            let kind = *state.rng.pick(&PW_KINDS);
            let pw_state = *state.rng.pick(&PW_STATES);
            let currency = *state.rng.pick(&PW_CURRENCIES);
            let magnitude = state.random_minor(currency);
            let account = |rng: &mut Prng| -> Option<String> {
                (!uuids.is_empty()).then(|| rng.pick(&uuids).clone())
            };
            let (value_minor, from_account, to_account) = match kind {
                "CARD" => (magnitude, None, account(&mut state.rng)),
                "INTERNAL" => {
                    let from = account(&mut state.rng);
                    let mut to = account(&mut state.rng);
                    if to == from && uuids.len() > 1 {
                        to = uuids.iter().find(|u| Some(*u) != from.as_ref()).cloned();
                    }
                    (-magnitude, from, to)
                }
                _ => (-magnitude, account(&mut state.rng), None),
            };
            let tags = if state.rng.chance(1, 6) {
                json!({})
            } else {
                let channel = *state.rng.pick(&["web", "api", "file"]);
                json!({"channel": channel, "batch": state.rng.range(1, 20)})
            };
            state.transactions.push(PwTransaction {
                reference: reference.clone(),
                booked_at,
                changed_at,
                money: PwMoney::new(value_minor, currency),
                kind: kind.to_owned(),
                state: pw_state.to_owned(),
                from_account,
                to_account,
                tags,
            });
            refs.push(reference);
        }
        refs
    }

    /// Adds an account opened at `opened_at` (default: now, in UTC), without balances.
    pub fn add_account(&self, label: &str, owner: &str, opened_at: Option<PwTime>) -> String {
        let mut state = lock(&self.state);
        let opened_at = opened_at.unwrap_or_else(|| state.now());
        let uuid = state.uuid_unique();
        state.accounts.push(PwAccount {
            uuid: uuid.clone(),
            label: label.to_owned(),
            opened_at,
            owner_name: owner.to_owned(),
            balances: Vec::new(),
        });
        uuid
    }

    /// Replaces an account's balances, given as `(value_minor, CURRENCY)`. False if unknown.
    pub fn set_balances(&self, uuid: &str, balances: &[(i64, &str)]) -> bool {
        let mut state = lock(&self.state);
        match state.accounts.iter_mut().find(|a| a.uuid == uuid) {
            Some(account) => {
                account.balances = balances
                    .iter()
                    .map(|(minor, currency)| PwMoney::new(*minor, currency))
                    .collect();
                true
            }
            None => false,
        }
    }

    pub fn add_counterparty(&self, full_name: &str, created_at: Option<PwTime>) -> String {
        let mut state = lock(&self.state);
        let created_at = created_at.unwrap_or_else(|| state.now());
        let id = state.uuid_unique();
        state.counterparties.push(PwCounterparty {
            id: id.clone(),
            full_name: full_name.to_owned(),
            created_at,
        });
        id
    }

    /// Adds a transaction; returns its `ref`.
    pub fn add_transaction(&self, spec: PwNewTransaction) -> String {
        let mut state = lock(&self.state);
        let now = state.now();
        let changed_at = spec.changed_at.unwrap_or(now);
        let booked_at = spec.booked_at.unwrap_or(changed_at);
        let reference = state.reference_unique();
        state.transactions.push(PwTransaction {
            reference: reference.clone(),
            booked_at,
            changed_at,
            money: PwMoney::new(spec.value_minor, &spec.currency),
            kind: spec.kind,
            state: spec.state,
            from_account: spec.from_account,
            to_account: spec.to_account,
            tags: spec.tags,
        });
        reference
    }

    /// Sets a transaction's `changed_at` to `at` (default: now, in the transaction's zone) and,
    /// if given, its state. False if unknown.
    pub fn update_transaction(
        &self,
        reference: &str,
        new_state: Option<&str>,
        at: Option<PwTime>,
    ) -> bool {
        let mut state = lock(&self.state);
        let now = state.now();
        match state
            .transactions
            .iter_mut()
            .find(|t| t.reference == reference)
        {
            Some(transaction) => {
                transaction.changed_at =
                    at.unwrap_or(now.with_offset(transaction.changed_at.offset_minutes));
                if let Some(new_state) = new_state {
                    transaction.state = new_state.to_owned();
                }
                true
            }
            None => false,
        }
    }

    // ---- ground truth ----

    /// Every account, in creation order.
    pub fn accounts(&self) -> Vec<PwAccount> {
        lock(&self.state).accounts.clone()
    }

    pub fn counterparties(&self) -> Vec<PwCounterparty> {
        lock(&self.state).counterparties.clone()
    }

    /// Every transaction, in creation order.
    pub fn transactions(&self) -> Vec<PwTransaction> {
        lock(&self.state).transactions.clone()
    }

    pub fn transaction(&self, reference: &str) -> Option<PwTransaction> {
        lock(&self.state)
            .transactions
            .iter()
            .find(|t| t.reference == reference)
            .cloned()
    }

    pub fn balances(&self, uuid: &str) -> Option<Vec<PwMoney>> {
        lock(&self.state)
            .accounts
            .iter()
            .find(|a| a.uuid == uuid)
            .map(|a| a.balances.clone())
    }

    /// The statements `/api/v2/statements` serves for that filter, all pages together.
    pub fn statements(&self, changed_since: Option<PwTime>) -> Vec<PwStatement> {
        lock(&self.state).statements(changed_since)
    }

    // ---- calls and faults ----

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
    /// not affected) is answered `status` with `Retry-After: secs` when given. `n == 0`
    /// disables.
    pub fn fail_every(&self, n: usize, status: u16, retry_after_secs: Option<u64>) {
        self.control
            .fail_every("/api/", n, status, retry_after_secs);
    }

    /// Like `fail_every`, for requests whose path starts with `path_prefix` (`/oauth/token`).
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

    /// The next `count` API requests are answered `status`.
    pub fn fail_next(&self, count: usize, status: u16, retry_after_secs: Option<u64>) {
        self.control
            .fail_next("/api/", count, status, retry_after_secs);
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
