//! "Cursorpay": a mock payment provider shaped like Stripe, for end-to-end tests of mapped
//! connectors.
//!
//! - Times are UNIX SECONDS (integers), whole seconds, with many ties.
//! - Amounts are DECIMAL STRINGS in major units with the currency's exponent (`"1234.56"` eur,
//!   `"1500"` jpy, `"1.250"` kwd, `"-12.34"` = money out); currencies are lower-case ISO codes.
//! - Lists are NEWEST FIRST: by the list's time field descending, ties by `id` descending
//!   (byte-wise string order, so `txn_9` comes before `txn_10`), cursor-paginated with
//!   `starting_after=<id of the last record of the previous page>`. Payouts and transfers are
//!   the exception: one page, OLDEST FIRST.
//! - Auth: `Authorization: Bearer <token>`.
//!
//! HTTP API (GET, except the two POSTs below; any other method is 405; unknown paths 404):
//!
//! | method and path | query or body | answer |
//! |---|---|---|
//! | `GET /v1/accounts` | `limit`, `starting_after`, `created[gte]` | list of accounts |
//! | `GET /v1/accounts/{id}/balance` | none | balance |
//! | `GET /v1/recipients` | `limit`, `starting_after`, `created[gte]` | list of recipients |
//! | `GET /v1/transactions` | `limit`, `starting_after`, `updated[gte]`, `type` | list of transactions (of one type) |
//! | `POST /v1/payouts` | JSON initiation body, `Idempotency-Key` header | the created payout |
//! | `GET /v1/payouts` | `reference` | list of payouts (all of them, oldest first) |
//! | `GET /v1/payouts/{id}` | none | payout; unknown id 404 |
//! | `POST /v1/transfers` | JSON initiation body, `Idempotency-Key` header | the created transfer |
//! | `GET /v1/transfers` | `reference` | list of transfers (all of them, oldest first) |
//! | `GET /v1/transfers/{id}` | none | transfer; unknown id 404 |
//!
//! - List envelope: `{"object":"list","url":"/v1/accounts","has_more":bool,"data":[...]}`.
//! - `limit`: integer 1..=100, default 10 (else 400). `starting_after`: an existing id of that
//!   list (else 400); the page holds the records after it in the current order that pass the
//!   filter. `created[gte]` / `updated[gte]`: integer unix seconds, inclusive. Unknown or repeated
//!   query parameters are 400 (as Stripe does), so a mapping that sends a wrong name fails loudly.
//! - account: `{"id":"acct_1","object":"account","name":"...","created":1772366400,
//!   "default_currency":"eur","country":"FR","settings":{"payouts":{"schedule":"daily"},
//!   "statement_descriptor":"ACME"}}`
//! - balance: `{"object":"balance","account":"acct_1","available":[{"amount":"1234.56",
//!   "currency":"eur"},{"amount":"1500","currency":"jpy"}]}`; unknown account 404.
//! - recipient: `{"id":"rcp_1","name":"...","created":1772366400,"email":"..."}`
//! - transaction: `{"id":"txn_1","created":..,"updated":..,"amount":"-12.34","currency":"eur",
//!   "type":"payment|payout|transfer|refund|adjustment","status":"succeeded|pending|failed|
//!   canceled|requires_action","source":"acct_1"|null,"destination":"acct_2"|null,
//!   "description":"...","origin":"po_1"|"tr_1"|null}`. Signs: payment +, payout -, transfer -
//!   (from `source` to `destination`), refund -, adjustment either. `origin` is the payout or
//!   transfer that created the transaction, null for every other one.
//! - Errors: `{"error":{"type":"invalid_request_error","message":"...","param":"..."}}` (400,
//!   404), 401 `{"error":{"type":"invalid_request_error","message":"Invalid API Key"}}`,
//!   injected faults: 429 `{"error":{"type":"rate_limit_error",...}}` or 5xx
//!   `{"error":{"type":"api_error",...}}` with `Retry-After` when configured.
//!
//! Payment initiation (`POST /v1/payouts`, `POST /v1/transfers`):
//!
//! - Body: `{"amount":"12.34","currency":"eur","source":"acct_1","destination":"rcp_3",
//!   "reference":"...","description":"..."?,"metadata":{...}?}`. `amount`: a positive decimal
//!   string in canonical form with exactly the currency's exponent digits (`"12.34"` eur,
//!   `"1500"` jpy, `"1.250"` kwd); `currency`: one of [`CP_CURRENCIES`] (lower-case);
//!   `source`, `destination`, `reference`: non-empty strings; `description`: string or null;
//!   `metadata`: object or null. A body that is not a JSON object is 400 without `param`; a
//!   missing, mistyped or invalid field, or an unknown key, is 400 with that `param`.
//! - 200 with the created object: `{"id":"po_1","object":"payout","amount":"12.34",
//!   "currency":"eur","source":"acct_1","destination":"rcp_3","reference":"...",
//!   "description":"..."|null,"metadata":{...},"status":"pending","created":<now>}`; a transfer
//!   is the same with `"id":"tr_1","object":"transfer"`. Ids count from 1 per kind. Each one
//!   also adds a transaction (`txn_<n>`, `type` payout/transfer, the amount negated, status
//!   pending, created = updated = now, `origin` its id, description the given one or
//!   `"payout po_1"`).
//! - `Idempotency-Key` (per kind): the first request with a key that creates a payment is
//!   remembered (status and body); the same key with the same body (compared as JSON) gets that
//!   response again with `Idempotent-Replayed: true` and creates nothing; with another body it
//!   is 400 `idempotency_error`; while the first one's response is held (see
//!   [`Cursorpay::hold_initiations`]) it is 409 `idempotency_error`. Requests that fail
//!   validation or fail before acceptance are not remembered (as Stripe does).
//! - Faults ([`Cursorpay::set_initiation_faults`]), drawn from the seed for each request that
//!   passed validation and is not a replay: 500 `api_error` before anything is created, or
//!   after the payment was created (a remembered key then replays the success).
//! - `GET` lists take only `reference` (others are 400) and are never paged: `has_more` false.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::mock_http::{Call, Control, Handler, MockServer, Prng, Request, Response, lock};

/// 2026-03-01T12:00:00Z, the default "now".
pub const CURSORPAY_EPOCH: i64 = 1_772_366_400;
pub const CURSORPAY_MAX_LIMIT: usize = 100;
pub const CURSORPAY_DEFAULT_LIMIT: usize = 10;
/// Mixed into the seed for the initiation faults' own random stream.
const FAULT_STREAM: u64 = 0x6661_756c_7473_0001;

pub const CP_TYPES: [&str; 5] = ["payment", "payout", "transfer", "refund", "adjustment"];
pub const CP_STATUSES: [&str; 5] = [
    "succeeded",
    "pending",
    "failed",
    "canceled",
    "requires_action",
];

/// The currency codes payouts and transfers accept (lower-case, as served).
pub const CP_CURRENCIES: [&str; 32] = [
    "eur", "usd", "gbp", "chf", "cad", "aud", "nzd", "sek", "nok", "dkk", "pln", "czk", "huf",
    "ron", "mxn", "brl", "inr", "cny", "hkd", "sgd", "zar", "jpy", "krw", "clp", "vnd", "isk",
    "kwd", "bhd", "omr", "jod", "tnd", "iqd",
];

/// Decimal digits of a currency's major unit (ISO 4217), for the codes the mocks use.
pub fn currency_exponent(currency: &str) -> u32 {
    match currency.to_ascii_lowercase().as_str() {
        "jpy" | "krw" | "clp" | "vnd" | "isk" => 0,
        "kwd" | "bhd" | "omr" | "jod" | "tnd" | "lyd" | "iqd" => 3,
        _ => 2,
    }
}

/// `123456, 2` -> `"1234.56"`; `-5, 2` -> `"-0.05"`; `1250, 3` -> `"1.250"`; `1500, 0` -> `"1500"`.
pub fn format_decimal(minor: i64, exponent: u32) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if exponent == 0 {
        return format!("{sign}{abs}");
    }
    let scale = 10u64.pow(exponent);
    format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = exponent as usize
    )
}

/// The inverse of [`format_decimal`]: `"-12.34", 2` -> `-1234`. Fewer fractional digits than
/// the exponent are padded (`"10.5"` -> 1050); more, or anything malformed, is None.
pub fn parse_decimal(text: &str, exponent: u32) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > exponent as usize
        || (digits.contains('.') && frac.is_empty())
    {
        return None;
    }
    let mut value: i64 = int.parse().ok()?;
    for i in 0..exponent as usize {
        let d = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        value = value.checked_mul(10)?.checked_add(d)?;
    }
    Some(if negative { -value } else { value })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpMoney {
    /// Decimal string as served (`"1234.56"`).
    pub amount: String,
    /// Lower-case ISO code as served (`"eur"`).
    pub currency: String,
}

impl CpMoney {
    pub fn new(amount: &str, currency: &str) -> CpMoney {
        CpMoney {
            amount: amount.to_owned(),
            currency: currency.to_owned(),
        }
    }

    /// The amount in minor units, per [`currency_exponent`].
    pub fn minor(&self) -> Option<i64> {
        parse_decimal(&self.amount, currency_exponent(&self.currency))
    }

    pub fn to_json(&self) -> Value {
        json!({"amount": self.amount, "currency": self.currency})
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpAccount {
    pub id: String,
    pub name: String,
    pub created: i64,
    pub default_currency: String,
    pub country: String,
    pub payout_schedule: String,
    pub statement_descriptor: String,
    pub balances: Vec<CpMoney>,
}

impl CpAccount {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "account",
            "name": self.name,
            "created": self.created,
            "default_currency": self.default_currency,
            "country": self.country,
            "settings": {
                "payouts": {"schedule": self.payout_schedule},
                "statement_descriptor": self.statement_descriptor,
            },
        })
    }

    pub fn balance_json(&self) -> Value {
        json!({
            "object": "balance",
            "account": self.id,
            "available": self.balances.iter().map(CpMoney::to_json).collect::<Vec<_>>(),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpRecipient {
    pub id: String,
    pub name: String,
    pub created: i64,
    pub email: String,
}

impl CpRecipient {
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "name": self.name, "created": self.created, "email": self.email})
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpTransaction {
    pub id: String,
    pub created: i64,
    pub updated: i64,
    /// Decimal string as served; negative = money out.
    pub amount: String,
    pub currency: String,
    /// The `type` field.
    pub kind: String,
    pub status: String,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub description: String,
    /// The payout or transfer (`po_1`, `tr_1`) that created it; None for the others.
    pub origin: Option<String>,
}

impl CpTransaction {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "created": self.created,
            "updated": self.updated,
            "amount": self.amount,
            "currency": self.currency,
            "type": self.kind,
            "status": self.status,
            "source": self.source,
            "destination": self.destination,
            "description": self.description,
            "origin": self.origin,
        })
    }

    /// The signed amount in minor units.
    pub fn minor(&self) -> Option<i64> {
        parse_decimal(&self.amount, currency_exponent(&self.currency))
    }
}

/// What [`Cursorpay::add_transaction`] creates; `created` / `updated` default to the clock.
#[derive(Clone, Debug)]
pub struct CpNewTransaction {
    pub amount: String,
    pub currency: String,
    pub kind: String,
    pub status: String,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub description: String,
    pub created: Option<i64>,
    pub updated: Option<i64>,
    pub origin: Option<String>,
}

impl Default for CpNewTransaction {
    fn default() -> Self {
        CpNewTransaction {
            amount: "10.00".to_owned(),
            currency: "eur".to_owned(),
            kind: "payment".to_owned(),
            status: "succeeded".to_owned(),
            source: None,
            destination: None,
            description: "test transaction".to_owned(),
            created: None,
            updated: None,
            origin: None,
        }
    }
}

struct CpState {
    token: String,
    now: i64,
    /// Where seeding places its next record (moves forward only).
    seed_time: i64,
    rng: Prng,
    next_account: u64,
    next_recipient: u64,
    next_transaction: u64,
    accounts: Vec<CpAccount>,
    recipients: Vec<CpRecipient>,
    transactions: Vec<CpTransaction>,
    payouts: Book,
    transfers: Book,
    /// Payouts and transfers per reference, both kinds together.
    references: HashMap<String, usize>,
    /// Draws the initiation faults (its own stream, so faults do not change seeded data).
    fault_rng: Prng,
    before_accept_per_mille: u32,
    after_accept_per_mille: u32,
    hold: bool,
    /// How many times the hold was released: a held response waits for this to change.
    hold_releases: u64,
    /// Moves on whenever the records may have changed: the lists' orders are then stale.
    version: u64,
    /// The order of each list (by path and `type`) as of `version`.
    orders: HashMap<String, ListOrder>,
}

impl CpState {
    /// Advances the seed time: 0 (a tie) a third of the time, else 1..=max_gap seconds.
    fn seed_step(&mut self, max_gap: i64) -> i64 {
        if !self.rng.chance(1, 3) {
            self.seed_time += self.rng.range(1, max_gap);
        }
        if self.now < self.seed_time {
            self.now = self.seed_time;
        }
        self.seed_time
    }

    fn random_money(&mut self, currency: &str) -> CpMoney {
        let exponent = currency_exponent(currency);
        let minor = match self.rng.below(10) {
            0 => self.rng.range(1, 99), // sub-unit amounts: "0.05"
            1 => 0,
            _ => self.rng.range(100, 10i64.pow(exponent) * 5_000),
        };
        let minor = if self.rng.chance(1, 8) { -minor } else { minor };
        CpMoney::new(&format_decimal(minor, exponent), currency)
    }

    fn book(&self, kind: Kind) -> &Book {
        match kind {
            Kind::Payout => &self.payouts,
            Kind::Transfer => &self.transfers,
        }
    }

    fn book_mut(&mut self, kind: Kind) -> &mut Book {
        match kind {
            Kind::Payout => &mut self.payouts,
            Kind::Transfer => &mut self.transfers,
        }
    }

    fn accepted(&self) -> usize {
        self.payouts.objects.len() + self.transfers.objects.len()
    }

    /// One draw per request that would create a payment, when any fault is configured.
    fn roll_fault(&mut self) -> Option<Fault> {
        let (before, after) = (self.before_accept_per_mille, self.after_accept_per_mille);
        if before == 0 && after == 0 {
            return None;
        }
        let roll = self.fault_rng.below(1000) as u32;
        if roll < before {
            Some(Fault::BeforeAccept)
        } else if roll < before + after {
            Some(Fault::AfterAccept)
        } else {
            None
        }
    }

    /// Creates the payment and its transaction; returns the payment's JSON.
    fn create(&mut self, kind: Kind, order: Initiation) -> Value {
        let now = self.now;
        let exponent = currency_exponent(&order.currency);
        let book = self.book_mut(kind);
        let index = book.objects.len();
        let id = format!("{}_{}", kind.prefix(), index + 1);
        let payment = CpPayment {
            id: id.clone(),
            kind,
            amount: order.amount,
            currency: order.currency,
            source: order.source,
            destination: order.destination,
            reference: order.reference,
            description: order.description,
            metadata: order.metadata,
            status: "pending".to_owned(),
            created: now,
        };
        let body = payment.to_json();
        book.by_reference
            .entry(payment.reference.clone())
            .or_default()
            .push(index);
        let transaction = CpNewTransaction {
            amount: format_decimal(-order.minor, exponent),
            currency: payment.currency.clone(),
            kind: kind.object().to_owned(),
            status: payment.status.clone(),
            source: Some(payment.source.clone()),
            destination: Some(payment.destination.clone()),
            description: payment
                .description
                .clone()
                .unwrap_or_else(|| format!("{} {id}", kind.object())),
            created: Some(now),
            updated: Some(now),
            origin: Some(id),
        };
        *self
            .references
            .entry(payment.reference.clone())
            .or_default() += 1;
        self.book_mut(kind).objects.push(payment);
        push_transaction(self, transaction);
        body
    }
}

// ---------------------------------------------------------------------------------------------
// Payment initiation
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Payout,
    Transfer,
}

impl Kind {
    fn object(self) -> &'static str {
        match self {
            Kind::Payout => "payout",
            Kind::Transfer => "transfer",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Kind::Payout => "po",
            Kind::Transfer => "tr",
        }
    }

    fn url(self) -> &'static str {
        match self {
            Kind::Payout => "/v1/payouts",
            Kind::Transfer => "/v1/transfers",
        }
    }

    fn of_segment(segment: &str) -> Option<Kind> {
        match segment {
            "payouts" => Some(Kind::Payout),
            "transfers" => Some(Kind::Transfer),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// 500, nothing created.
    BeforeAccept,
    /// 500, the payment exists.
    AfterAccept,
}

/// A payout or a transfer.
#[derive(Clone, Debug)]
struct CpPayment {
    id: String,
    kind: Kind,
    amount: String,
    currency: String,
    source: String,
    destination: String,
    reference: String,
    description: Option<String>,
    /// Always an object.
    metadata: Value,
    status: String,
    created: i64,
}

impl CpPayment {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": self.kind.object(),
            "amount": self.amount,
            "currency": self.currency,
            "source": self.source,
            "destination": self.destination,
            "reference": self.reference,
            "description": self.description,
            "metadata": self.metadata,
            "status": self.status,
            "created": self.created,
        })
    }
}

/// A validated initiation body.
struct Initiation {
    amount: String,
    minor: i64,
    currency: String,
    source: String,
    destination: String,
    reference: String,
    description: Option<String>,
    metadata: Value,
}

/// What an idempotency key stands for.
struct Remembered {
    /// The first request's body, compared as JSON.
    body: Value,
    response: Response,
    /// The first request's response is still held.
    in_progress: bool,
}

/// The payouts or the transfers, with their indexes.
#[derive(Default)]
struct Book {
    /// Creation order; `po_<n>` is at `n - 1`.
    objects: Vec<CpPayment>,
    /// Positions in `objects` per reference, oldest first.
    by_reference: HashMap<String, Vec<usize>>,
    keys: HashMap<String, Remembered>,
}

impl Book {
    fn find(&self, kind: Kind, id: &str) -> Option<&CpPayment> {
        let n: usize = id
            .strip_prefix(kind.prefix())?
            .strip_prefix('_')?
            .parse()
            .ok()?;
        self.objects
            .get(n.checked_sub(1)?)
            .filter(|payment| payment.id == id)
    }

    fn list(&self, kind: Kind, request: &Request) -> Response {
        let mut reference: Option<&str> = None;
        for (index, (key, value)) in request.query.iter().enumerate() {
            if request.query[..index].iter().any(|(k, _)| k == key) {
                return invalid(&format!("Received repeated parameter: {key}"), key);
            }
            if key != "reference" {
                return invalid(&format!("Received unknown parameter: {key}"), key);
            }
            reference = Some(value);
        }
        let data: Vec<Value> = match reference {
            None => self.objects.iter().map(CpPayment::to_json).collect(),
            Some(reference) => self
                .by_reference
                .get(reference)
                .map(|positions| {
                    positions
                        .iter()
                        .map(|&i| self.objects[i].to_json())
                        .collect()
                })
                .unwrap_or_default(),
        };
        Response::json(
            200,
            &json!({"object": "list", "url": kind.url(), "has_more": false, "data": data}),
        )
    }
}

const INITIATION_KEYS: [&str; 7] = [
    "amount",
    "currency",
    "source",
    "destination",
    "reference",
    "description",
    "metadata",
];

/// A required non-empty string field.
fn required_string(body: &Map<String, Value>, key: &str) -> Result<String, Response> {
    match body.get(key) {
        None | Some(Value::Null) => Err(invalid(&format!("Missing required param: {key}."), key)),
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        Some(_) => Err(invalid(
            &format!("Invalid {key}: must be a non-empty string"),
            key,
        )),
    }
}

fn validate(body: Option<&Value>) -> Result<Initiation, Response> {
    let Some(Value::Object(body)) = body else {
        return Err(error(
            400,
            "invalid_request_error",
            "The request body must be a JSON object",
            None,
        ));
    };
    if let Some(key) = body.keys().find(|k| !INITIATION_KEYS.contains(&k.as_str())) {
        return Err(invalid(&format!("Received unknown parameter: {key}"), key));
    }
    let amount = required_string(body, "amount")?;
    let currency = required_string(body, "currency")?;
    if !CP_CURRENCIES.contains(&currency.as_str()) {
        return Err(invalid(
            &format!("Invalid currency: {currency} (a lower-case ISO code is expected)"),
            "currency",
        ));
    }
    let exponent = currency_exponent(&currency);
    let minor = parse_decimal(&amount, exponent)
        .filter(|minor| *minor > 0 && format_decimal(*minor, exponent) == amount)
        .ok_or_else(|| {
            invalid(
                &format!(
                    "Invalid amount: {amount:?} (a positive decimal string with {exponent} \
                     decimals is expected for {currency})"
                ),
                "amount",
            )
        })?;
    let source = required_string(body, "source")?;
    let destination = required_string(body, "destination")?;
    let reference = required_string(body, "reference")?;
    let description = match body.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            return Err(invalid(
                "Invalid description: must be a string",
                "description",
            ));
        }
    };
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(map)) => Value::Object(map.clone()),
        Some(_) => return Err(invalid("Invalid metadata: must be an object", "metadata")),
    };
    Ok(Initiation {
        amount,
        minor,
        currency,
        source,
        destination,
        reference,
        description,
        metadata,
    })
}

/// What the server shares with the handler.
struct CpShared {
    state: Mutex<CpState>,
    /// Notified when a payment is created and when the hold is released.
    changed: Condvar,
    /// Initiation POSTs received (injected faults and rejections included).
    posts: AtomicUsize,
    /// Extra latency of initiation POSTs, in microseconds.
    latency_micros: AtomicU64,
}

impl CpShared {
    fn wait<'a>(&self, guard: MutexGuard<'a, CpState>) -> MutexGuard<'a, CpState> {
        self.changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// `POST /v1/payouts` or `POST /v1/transfers`. Everything up to the response is atomic under
/// the state mutex; a held response waits on the condition variable, which releases it.
fn initiate(shared: &CpShared, request: &Request, kind: Kind) -> Response {
    let latency = shared.latency_micros.load(Ordering::Relaxed);
    if latency > 0 {
        thread::sleep(Duration::from_micros(latency));
    }
    let mut state = lock(&shared.state);
    state.version += 1;
    if request.bearer() != Some(state.token.as_str()) {
        return error(401, "invalid_request_error", "Invalid API Key", None);
    }
    let body = request.json();
    let key = request.header("idempotency-key").map(str::to_owned);
    if let Some(key) = &key {
        if key.is_empty() {
            return invalid(
                "Invalid Idempotency-Key: must not be empty",
                "Idempotency-Key",
            );
        }
        if let Some(remembered) = state.book(kind).keys.get(key) {
            if body.as_ref() != Some(&remembered.body) {
                return error(
                    400,
                    "idempotency_error",
                    &format!(
                        "Keys for idempotent requests can only be used with the same parameters \
                         they were first used with. Try using a key other than '{key}' if you \
                         meant to execute a different request."
                    ),
                    None,
                );
            }
            if remembered.in_progress {
                return error(
                    409,
                    "idempotency_error",
                    "Conflict: a request with this key is in progress",
                    None,
                );
            }
            return remembered
                .response
                .clone()
                .with_header("Idempotent-Replayed", "true");
        }
    }
    let order = match validate(body.as_ref()) {
        Ok(order) => order,
        Err(response) => return response,
    };
    let fault = state.roll_fault();
    if fault == Some(Fault::BeforeAccept) {
        return internal_error();
    }
    let created = Response::json(200, &state.create(kind, order));
    let hold = state.hold;
    if let (Some(key), Some(body)) = (&key, body) {
        let remembered = Remembered {
            body,
            response: created.clone(),
            in_progress: hold,
        };
        state.book_mut(kind).keys.insert(key.clone(), remembered);
    }
    shared.changed.notify_all();
    if hold {
        let release = state.hold_releases;
        while state.hold_releases == release {
            state = shared.wait(state);
        }
        if let Some(key) = &key
            && let Some(remembered) = state.book_mut(kind).keys.get_mut(key)
        {
            remembered.in_progress = false;
        }
    }
    match fault {
        Some(Fault::AfterAccept) => internal_error(),
        _ => created,
    }
}

fn internal_error() -> Response {
    error(
        500,
        "api_error",
        "An unexpected error occurred while processing the request.",
        None,
    )
}

/// The kind of `POST /v1/payouts` and `POST /v1/transfers`, None for any other request.
fn initiation_kind(request: &Request) -> Option<Kind> {
    if request.method != "POST" {
        return None;
    }
    match request.segments().as_slice() {
        [v1, kind] if v1 == "v1" => Kind::of_segment(kind),
        _ => None,
    }
}

pub struct Cursorpay {
    server: MockServer,
    shared: Arc<CpShared>,
    control: Arc<Control>,
}

fn error(status: u16, kind: &str, message: &str, param: Option<&str>) -> Response {
    let mut error = json!({"type": kind, "message": message});
    if let Some(param) = param {
        error["param"] = json!(param);
    }
    Response::json(status, &json!({ "error": error }))
}

fn invalid(message: &str, param: &str) -> Response {
    error(400, "invalid_request_error", message, Some(param))
}

fn fault_response(status: u16, _retry_after: Option<u64>) -> Response {
    if status == 429 {
        error(
            429,
            "rate_limit_error",
            "Too many requests hit the API too quickly.",
            None,
        )
    } else {
        error(
            status,
            "api_error",
            "The service is temporarily unavailable.",
            None,
        )
    }
}

struct ListParams {
    limit: usize,
    starting_after: Option<String>,
    gte: Option<i64>,
}

fn list_params(request: &Request, filter_key: &str) -> Result<ListParams, Response> {
    let mut params = ListParams {
        limit: CURSORPAY_DEFAULT_LIMIT,
        starting_after: None,
        gte: None,
    };
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in &request.query {
        if seen.contains(&key.as_str()) {
            return Err(invalid(&format!("Received repeated parameter: {key}"), key));
        }
        seen.push(key);
        if key == "limit" {
            params.limit = match value.parse::<usize>() {
                Ok(n) if (1..=CURSORPAY_MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(invalid(
                        &format!(
                            "Invalid limit: must be an integer between 1 and {CURSORPAY_MAX_LIMIT}"
                        ),
                        "limit",
                    ));
                }
            };
        } else if key == "starting_after" {
            params.starting_after = Some(value.clone());
        } else if key == "type" && filter_key == "updated[gte]" {
            // Transactions only, as Stripe's balance transactions: read by the route.
        } else if key == filter_key {
            params.gte = Some(value.parse::<i64>().map_err(|_| {
                invalid(
                    &format!("Invalid {key}: must be an integer (unix seconds)"),
                    key,
                )
            })?);
        } else {
            return Err(invalid(&format!("Received unknown parameter: {key}"), key));
        }
    }
    Ok(params)
}

/// A list's records as it serves them, newest first (by time, then id), and each id's place
/// in that order: kept while the records do not change, so that a page costs its own size,
/// not the list's, at a million records.
struct ListOrder {
    version: u64,
    /// Positions in the list's records, sorted.
    sorted: Vec<usize>,
    /// Each sorted record's time, for the filter.
    times: Vec<i64>,
    place: HashMap<String, usize>,
}

impl ListOrder {
    fn of(version: u64, records: Vec<(i64, &str, usize)>) -> ListOrder {
        let mut records = records;
        records.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(a.1)));
        ListOrder {
            version,
            sorted: records.iter().map(|r| r.2).collect(),
            times: records.iter().map(|r| r.0).collect(),
            place: records
                .iter()
                .enumerate()
                .map(|(at, r)| (r.1.to_owned(), at))
                .collect(),
        }
    }
}

/// The order of list `key`, built from `records` (time, id, position) when stale.
fn list_order<'s, 'r>(
    orders: &'s mut HashMap<String, ListOrder>,
    version: u64,
    key: String,
    records: impl FnOnce() -> Vec<(i64, &'r str, usize)>,
) -> &'s ListOrder {
    let order = orders
        .entry(key)
        .or_insert_with(|| ListOrder::of(u64::MAX, Vec::new()));
    if order.version != version {
        *order = ListOrder::of(version, records());
    }
    order
}

/// One page of a newest-first list.
fn list_page<T>(
    request: &Request,
    url: &str,
    filter_key: &str,
    order: &ListOrder,
    items: &[T],
    to_json: impl Fn(&T) -> Value,
) -> Response {
    let params = match list_params(request, filter_key) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let start = match &params.starting_after {
        None => 0,
        Some(cursor) => match order.place.get(cursor) {
            Some(pos) => pos + 1,
            None => {
                return invalid(&format!("No such object: '{cursor}'"), "starting_after");
            }
        },
    };
    // Newest first: the records at or after `gte` are the first ones.
    let end = params.gte.map_or(order.times.len(), |gte| {
        order.times.partition_point(|time| *time >= gte)
    });
    let rest = order.sorted.get(start..end.max(start)).unwrap_or_default();
    let data: Vec<Value> = rest
        .iter()
        .take(params.limit)
        .map(|&at| to_json(&items[at]))
        .collect();
    let has_more = rest.len() > params.limit;
    Response::json(
        200,
        &json!({"object": "list", "url": url, "has_more": has_more, "data": data}),
    )
}

fn route(shared: &CpShared, request: &Request) -> Response {
    if let Some(kind) = initiation_kind(request) {
        return initiate(shared, request, kind);
    }
    if request.method != "GET" {
        return error(
            405,
            "invalid_request_error",
            &format!("Method not allowed: {}", request.method),
            None,
        );
    }
    let mut state = lock(&shared.state);
    if request.bearer() != Some(state.token.as_str()) {
        return error(401, "invalid_request_error", "Invalid API Key", None);
    }
    let segments = request.segments();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let state = &mut *state;
    let version = state.version;
    match segments.as_slice() {
        ["v1", "accounts"] => {
            let accounts = &state.accounts;
            let order = list_order(&mut state.orders, version, "accounts".into(), || {
                let records = accounts.iter().enumerate();
                records
                    .map(|(at, a)| (a.created, a.id.as_str(), at))
                    .collect()
            });
            list_page(
                request,
                "/v1/accounts",
                "created[gte]",
                order,
                accounts,
                CpAccount::to_json,
            )
        }
        ["v1", "accounts", id, "balance"] => match state.accounts.iter().find(|a| a.id == *id) {
            Some(account) => Response::json(200, &account.balance_json()),
            None => {
                let mut response = invalid(&format!("No such account: '{id}'"), "account");
                response.status = 404;
                response
            }
        },
        ["v1", "recipients"] => {
            let recipients = &state.recipients;
            let order = list_order(&mut state.orders, version, "recipients".into(), || {
                let records = recipients.iter().enumerate();
                records
                    .map(|(at, r)| (r.created, r.id.as_str(), at))
                    .collect()
            });
            list_page(
                request,
                "/v1/recipients",
                "created[gte]",
                order,
                recipients,
                CpRecipient::to_json,
            )
        }
        ["v1", "transactions"] => {
            // `type=payout`: only the transactions of that type.
            let kind = request.query_param("type");
            let transactions = &state.transactions;
            let key = format!("transactions?type={}", kind.unwrap_or("*"));
            let order = list_order(&mut state.orders, version, key, || {
                let records = transactions.iter().enumerate();
                records
                    .filter(|(_, t)| kind.is_none_or(|kind| t.kind == kind))
                    .map(|(at, t)| (t.updated, t.id.as_str(), at))
                    .collect()
            });
            list_page(
                request,
                "/v1/transactions",
                "updated[gte]",
                order,
                transactions,
                CpTransaction::to_json,
            )
        }
        ["v1", kind] if Kind::of_segment(kind).is_some() => {
            let kind = Kind::of_segment(kind).unwrap();
            state.book(kind).list(kind, request)
        }
        ["v1", kind, id] if Kind::of_segment(kind).is_some() => {
            let kind = Kind::of_segment(kind).unwrap();
            match state.book(kind).find(kind, id) {
                Some(payment) => Response::json(200, &payment.to_json()),
                None => {
                    let mut response = invalid(&format!("No such {}: '{id}'", kind.object()), "id");
                    response.status = 404;
                    response
                }
            }
        }
        _ => error(
            404,
            "invalid_request_error",
            &format!(
                "Unrecognized request URL ({}: {})",
                request.method, request.path
            ),
            None,
        ),
    }
}

const NAMES: [&str; 8] = [
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell",
];
const PURPOSES: [&str; 6] = [
    "Treasury",
    "Payroll",
    "Operations",
    "Escrow",
    "Sales",
    "Reserve",
];
const PEOPLE: [&str; 8] = [
    "Ada Lovelace",
    "Alan Turing",
    "Grace Hopper",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "Ken Thompson",
];
const COUNTRIES: [(&str, &str); 5] = [
    ("FR", "eur"),
    ("DE", "eur"),
    ("US", "usd"),
    ("JP", "jpy"),
    ("KW", "kwd"),
];
const CURRENCIES: [&str; 4] = ["eur", "usd", "jpy", "kwd"];

impl Cursorpay {
    /// A Cursorpay with no data, the clock at [`CURSORPAY_EPOCH`], accepting `Bearer <token>`.
    pub fn start(seed: u64, token: &str) -> Cursorpay {
        let state = CpState {
            token: token.to_owned(),
            now: CURSORPAY_EPOCH,
            seed_time: CURSORPAY_EPOCH - 30 * 86_400,
            rng: Prng::new(seed),
            next_account: 1,
            next_recipient: 1,
            next_transaction: 1,
            accounts: Vec::new(),
            recipients: Vec::new(),
            transactions: Vec::new(),
            payouts: Book::default(),
            transfers: Book::default(),
            references: HashMap::new(),
            fault_rng: Prng::new(seed ^ FAULT_STREAM),
            before_accept_per_mille: 0,
            after_accept_per_mille: 0,
            hold: false,
            hold_releases: 0,
            version: 0,
            orders: HashMap::new(),
        };
        let shared = Arc::new(CpShared {
            state: Mutex::new(state),
            changed: Condvar::new(),
            posts: AtomicUsize::new(0),
            latency_micros: AtomicU64::new(0),
        });
        let control = Arc::new(Control::new());
        let route_shared = Arc::clone(&shared);
        let routed = control.wrap(fault_response, move |request| route(&route_shared, request));
        // Counted before the control, so that requests answered by an injected fault count too.
        let count_shared = Arc::clone(&shared);
        let handler: Handler = Arc::new(move |request: &Request| {
            if initiation_kind(request).is_some() {
                count_shared.posts.fetch_add(1, Ordering::SeqCst);
            }
            routed(request)
        });
        Cursorpay {
            server: MockServer::start(handler),
            shared,
            control,
        }
    }

    fn state(&self) -> MutexGuard<'_, CpState> {
        let mut state = lock(&self.shared.state);
        // Whoever asks may change records: the lists are ordered again on their next call.
        state.version += 1;
        state
    }

    /// `http://127.0.0.1:PORT` (the API lives under `/v1`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn server(&self) -> &MockServer {
        &self.server
    }

    pub fn token(&self) -> String {
        self.state().token.clone()
    }

    // ---- clock ----

    /// "Now", in unix seconds: what records added without a time get.
    pub fn now(&self) -> i64 {
        self.state().now
    }

    pub fn set_now(&self, unix: i64) {
        self.state().now = unix;
    }

    pub fn advance(&self, secs: i64) {
        self.state().now += secs;
    }

    // ---- seeding and changes ----

    /// Adds `n` accounts with increasing `created` times (a third of them tie with the
    /// previous one), each with 1 to 3 balances. Returns their ids.
    pub fn seed_accounts(&self, n: usize) -> Vec<String> {
        let mut state = self.state();
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let created = state.seed_step(120);
            let name = format!("{} {}", state.rng.pick(&NAMES), state.rng.pick(&PURPOSES));
            let id = push_account(&mut state, &name, created);
            let (country, currency) = *state.rng.pick(&COUNTRIES);
            let extra = state.rng.below(3) as usize;
            let mut balances = vec![state.random_money(currency)];
            for c in CURRENCIES.iter().filter(|c| **c != currency).take(extra) {
                let money = state.random_money(c);
                balances.push(money);
            }
            let schedule = state.rng.pick(&["daily", "weekly", "manual"]).to_string();
            let account = state.accounts.last_mut().unwrap();
            account.country = country.to_owned();
            account.default_currency = currency.to_owned();
            account.balances = balances;
            account.payout_schedule = schedule;
            ids.push(id);
        }
        ids
    }

    /// Adds `n` recipients with increasing `created` times (a third tie). Returns their ids.
    pub fn seed_recipients(&self, n: usize) -> Vec<String> {
        let mut state = self.state();
        (0..n)
            .map(|_| {
                let created = state.seed_step(120);
                let name = state.rng.pick(&PEOPLE).to_string();
                let email = format!(
                    "{}@example.com",
                    name.to_ascii_lowercase().replace(' ', ".")
                );
                push_recipient(&mut state, &name, &email, created)
            })
            .collect()
    }

    /// Adds `n` transactions in bursts: each run of `burst` consecutive transactions shares
    /// one `updated` second (bursts are 1 to 3 seconds apart). Half of them have
    /// `created == updated`, the others were created up to a day earlier. Random types,
    /// statuses, currencies; source/destination drawn from the existing accounts.
    pub fn seed_transactions(&self, n: usize, burst: usize) -> Vec<String> {
        let burst = burst.max(1);
        let mut state = self.state();
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            if i % burst == 0 {
                state.seed_time += state.rng.range(1, 3);
                if state.now < state.seed_time {
                    state.now = state.seed_time;
                }
            }
            let updated = state.seed_time;
            let created = if state.rng.chance(1, 2) {
                updated
            } else {
                updated - state.rng.range(1, 86_400)
            };
            let kind = *state.rng.pick(&CP_TYPES);
            let status = *state.rng.pick(&CP_STATUSES);
            let currency = *state.rng.pick(&["eur", "eur", "usd", "jpy", "kwd"]);
            let mut money = state.random_money(currency);
            let magnitude = money.minor().unwrap_or(0).abs().max(1);
            let account_ids: Vec<String> = state.accounts.iter().map(|a| a.id.clone()).collect();
            let pick_account = |rng: &mut Prng| -> Option<String> {
                (!account_ids.is_empty()).then(|| rng.pick(&account_ids).clone())
            };
            let (signed, source, destination) = match kind {
                "payment" => (magnitude, None, pick_account(&mut state.rng)),
                "payout" | "refund" => (-magnitude, pick_account(&mut state.rng), None),
                "transfer" => {
                    let source = pick_account(&mut state.rng);
                    let mut destination = pick_account(&mut state.rng);
                    if destination == source && account_ids.len() > 1 {
                        let other = account_ids.iter().find(|id| Some(*id) != source.as_ref());
                        destination = other.cloned();
                    }
                    (-magnitude, source, destination)
                }
                _ => {
                    if state.rng.chance(1, 2) {
                        (magnitude, None, pick_account(&mut state.rng))
                    } else {
                        (-magnitude, pick_account(&mut state.rng), None)
                    }
                }
            };
            money.amount = format_decimal(signed, currency_exponent(currency));
            let id = push_transaction(
                &mut state,
                CpNewTransaction {
                    amount: money.amount,
                    currency: currency.to_owned(),
                    kind: kind.to_owned(),
                    status: status.to_owned(),
                    source,
                    destination,
                    description: String::new(),
                    created: Some(created),
                    updated: Some(updated),
                    origin: None,
                },
            );
            let description = format!("{kind} {id}");
            state.transactions.last_mut().unwrap().description = description;
            ids.push(id);
        }
        ids
    }

    /// Adds an account created at `created` (default: now), country FR, currency eur, no
    /// balances. Returns its id.
    pub fn add_account(&self, name: &str, created: Option<i64>) -> String {
        let mut state = self.state();
        let created = created.unwrap_or(state.now);
        push_account(&mut state, name, created)
    }

    /// Replaces an account's balances, given as `(amount, currency)`. False if unknown.
    pub fn set_balance(&self, id: &str, balances: &[(&str, &str)]) -> bool {
        let mut state = self.state();
        match state.accounts.iter_mut().find(|a| a.id == id) {
            Some(account) => {
                account.balances = balances
                    .iter()
                    .map(|(amount, currency)| CpMoney::new(amount, currency))
                    .collect();
                true
            }
            None => false,
        }
    }

    pub fn add_recipient(&self, name: &str, email: &str, created: Option<i64>) -> String {
        let mut state = self.state();
        let created = created.unwrap_or(state.now);
        push_recipient(&mut state, name, email, created)
    }

    /// Adds a transaction (times default to now). Returns its id.
    pub fn add_transaction(&self, spec: CpNewTransaction) -> String {
        push_transaction(&mut self.state(), spec)
    }

    /// Sets a transaction's `updated` to `at` (default: now) and, if given, its status.
    /// False if unknown.
    pub fn update_transaction(&self, id: &str, status: Option<&str>, at: Option<i64>) -> bool {
        let mut state = self.state();
        let now = state.now;
        match state.transactions.iter_mut().find(|t| t.id == id) {
            Some(transaction) => {
                transaction.updated = at.unwrap_or(now);
                if let Some(status) = status {
                    transaction.status = status.to_owned();
                }
                true
            }
            None => false,
        }
    }

    /// Sets a transaction's `amount` as served, as the provider correcting a record does
    /// (its `updated` moves to now). False if unknown.
    pub fn set_transaction_amount(&self, id: &str, amount: &str) -> bool {
        let mut state = self.state();
        let now = state.now;
        match state.transactions.iter_mut().find(|t| t.id == id) {
            Some(transaction) => {
                transaction.amount = amount.to_owned();
                transaction.updated = now;
                true
            }
            None => false,
        }
    }

    // ---- ground truth ----

    /// Every account, in creation order.
    pub fn accounts(&self) -> Vec<CpAccount> {
        self.state().accounts.clone()
    }

    pub fn recipients(&self) -> Vec<CpRecipient> {
        self.state().recipients.clone()
    }

    pub fn transactions(&self) -> Vec<CpTransaction> {
        self.state().transactions.clone()
    }

    pub fn transaction(&self, id: &str) -> Option<CpTransaction> {
        self.state()
            .transactions
            .iter()
            .find(|t| t.id == id)
            .cloned()
    }

    /// The account's balances as served, None if unknown.
    pub fn balance(&self, id: &str) -> Option<Vec<CpMoney>> {
        self.state()
            .accounts
            .iter()
            .find(|a| a.id == id)
            .map(|a| a.balances.clone())
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

    /// Every `n`-th request from now on (any path) is answered `status` (429, 503, ...) with a
    /// JSON error and `Retry-After: secs` when given. `n == 0` disables.
    pub fn fail_every(&self, n: usize, status: u16, retry_after_secs: Option<u64>) {
        self.control.fail_every("/", n, status, retry_after_secs);
    }

    /// The next `count` requests are answered `status`.
    pub fn fail_next(&self, count: usize, status: u16, retry_after_secs: Option<u64>) {
        self.control.fail_next("/", count, status, retry_after_secs);
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

    // ---- payment initiation ----

    /// Initiation POSTs that pass validation and are not replays fail with 500 `api_error`:
    /// `before_accept_per_mille` of them before anything is created, `after_accept_per_mille`
    /// of them after the payment was created (an `Idempotency-Key` then remembers the success).
    /// Drawn from the mock's seed, one draw per such request. `(0, 0)` disables.
    pub fn set_initiation_faults(&self, before_accept_per_mille: u32, after_accept_per_mille: u32) {
        assert!(
            before_accept_per_mille + after_accept_per_mille <= 1000,
            "initiation faults above 1000 per mille"
        );
        let mut state = self.state();
        state.before_accept_per_mille = before_accept_per_mille;
        state.after_accept_per_mille = after_accept_per_mille;
    }

    /// Every initiation POST waits this long before it is processed (on top of
    /// [`Cursorpay::set_latency`]).
    pub fn set_initiation_latency(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.shared.latency_micros.store(micros, Ordering::Relaxed);
    }

    /// While on, an accepted POST creates its payment, then holds its response until the hold
    /// is turned off (other requests are served meanwhile; a POST with the same
    /// `Idempotency-Key` is answered 409). Turning it off releases every held response; so does
    /// dropping the mock.
    pub fn hold_initiations(&self, on: bool) {
        let mut state = self.state();
        state.hold = on;
        if !on {
            state.hold_releases += 1;
        }
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Payouts and transfers created so far.
    pub fn accepted(&self) -> usize {
        self.state().accepted()
    }

    /// Waits until at least `n` payouts and transfers exist; false after `timeout`.
    pub fn wait_accepted(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            if state.accepted() >= n {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Every payout as served, in creation order.
    pub fn payouts(&self) -> Vec<Value> {
        self.state()
            .payouts
            .objects
            .iter()
            .map(CpPayment::to_json)
            .collect()
    }

    /// Every transfer as served, in creation order.
    pub fn transfers(&self) -> Vec<Value> {
        self.state()
            .transfers
            .objects
            .iter()
            .map(CpPayment::to_json)
            .collect()
    }

    /// Payouts plus transfers with that reference.
    pub fn payments_for_reference(&self, reference: &str) -> usize {
        self.state().references.get(reference).copied().unwrap_or(0)
    }

    /// The references of more than one payout or transfer, sorted.
    pub fn duplicate_references(&self) -> Vec<String> {
        let mut duplicates: Vec<String> = self
            .state()
            .references
            .iter()
            .filter(|(_, count)| **count > 1)
            .map(|(reference, _)| reference.clone())
            .collect();
        duplicates.sort();
        duplicates
    }

    /// `POST /v1/payouts` and `POST /v1/transfers` received, whatever their outcome.
    pub fn initiation_posts(&self) -> usize {
        self.shared.posts.load(Ordering::SeqCst)
    }
}

impl Drop for Cursorpay {
    /// Releases held responses, so that the server's threads can be joined.
    fn drop(&mut self) {
        self.hold_initiations(false);
    }
}

fn push_account(state: &mut CpState, name: &str, created: i64) -> String {
    let id = format!("acct_{}", state.next_account);
    state.next_account += 1;
    state.accounts.push(CpAccount {
        id: id.clone(),
        name: name.to_owned(),
        created,
        default_currency: "eur".to_owned(),
        country: "FR".to_owned(),
        payout_schedule: "daily".to_owned(),
        statement_descriptor: name
            .to_ascii_uppercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
            .take(22)
            .collect(),
        balances: Vec::new(),
    });
    id
}

fn push_recipient(state: &mut CpState, name: &str, email: &str, created: i64) -> String {
    let id = format!("rcp_{}", state.next_recipient);
    state.next_recipient += 1;
    state.recipients.push(CpRecipient {
        id: id.clone(),
        name: name.to_owned(),
        created,
        email: email.to_owned(),
    });
    id
}

fn push_transaction(state: &mut CpState, spec: CpNewTransaction) -> String {
    let id = format!("txn_{}", state.next_transaction);
    state.next_transaction += 1;
    let created = spec.created.unwrap_or(state.now);
    let updated = spec.updated.unwrap_or(created.max(state.now));
    state.transactions.push(CpTransaction {
        id: id.clone(),
        created,
        updated,
        amount: spec.amount,
        currency: spec.currency,
        kind: spec.kind,
        status: spec.status,
        source: spec.source,
        destination: spec.destination,
        description: spec.description,
        origin: spec.origin,
    });
    id
}
