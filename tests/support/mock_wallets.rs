//! "Walletpay": a mock e-money provider shaped like Mangopay (users own wallets, wallets hold
//! transactions), for end-to-end tests of mapped connectors that fan out over parents, read
//! minor-unit amounts in nested objects, treat `""` as missing and initiate payments that need
//! a look-up first.
//!
//! # Values
//!
//! - Times are UNIX SECONDS as JSON integers (`CreationDate`, `ExecutionDate`), with many ties
//!   inside one second.
//! - Money is `{"Currency":"EUR","Amount":1250}`: MINOR UNITS as JSON integers (exact; some
//!   seeded amounts exceed 2^53, so a client reading them as `f64` loses digits), upper-case
//!   ISO codes (EUR, GBP, USD 2 decimals; JPY 0; KWD 3).
//! - Ids are numeric strings from one counter shared by every kind of object, all with 7
//!   digits (`"1000042"`), so byte-wise order is numeric order is creation order.
//!
//! # HTTP API
//!
//! Every request needs HTTP Basic authentication, `Authorization: Basic base64(clientId:apiKey)`
//! (no token endpoint); else 401 with `WWW-Authenticate: Basic realm="walletpay"`. Only these
//! routes exist (another method 405, another path 404); unknown or repeated query parameters are
//! 400 (stricter than Mangopay, which ignores them, so that a wrong name fails loudly).
//!
//! | method and path | query or body | answer |
//! |---|---|---|
//! | `GET /v2/users` | `page`, `per_page`, `Sort` | array of users |
//! | `GET /v2/users/{userId}` | none | one user |
//! | `GET /v2/users/{userId}/wallets` | `page`, `per_page`, `Sort` | array of the user's wallets |
//! | `GET /v2/users/{userId}/bankaccounts` | `page`, `per_page`, `Sort` | array of the user's bank accounts |
//! | `GET /v2/wallets/{walletId}` | none | one wallet |
//! | `GET /v2/wallets/{walletId}/transactions` | `page`, `per_page`, `Sort`, `AfterDate`, `BeforeDate` | array of transactions |
//! | `POST /v2/payouts/bankwire` | JSON body, `Idempotency-Key` header | the payout |
//! | `GET /v2/payouts/{payoutId}` | none | one payout (any `Type` PAYOUT transaction) |
//! | `POST /v2/transfers` | JSON body, `Idempotency-Key` header | the transfer |
//! | `GET /v2/transfers/{transferId}` | none | one transfer (any `Type` TRANSFER transaction) |
//! | `GET /v2/responses/{idempotencyKey}` | none | the response first given for that key |
//!
//! - Lists are BARE JSON ARRAYS (no envelope). `page` counts FROM 1 (default 1), `per_page`
//!   1..=100 (default 10); else 400. Headers `X-Number-Of-Pages: ceil(items / per_page)` and
//!   `X-Number-Of-Items`. A page past the end is 200 `[]`. Stop rule: a page shorter than
//!   `per_page`, or `page >= X-Number-Of-Pages` (the last page may be full).
//! - Order: `Sort=CreationDate:DESC` (the DEFAULT, newest first) or `Sort=CreationDate:ASC`
//!   (oldest first); ties (same `CreationDate` second) by `Id` in the same direction. Any other
//!   `Sort` is 400. The same for users, wallets, bank accounts and transactions.
//! - user: NATURAL `{"Id","PersonType":"NATURAL","FirstName","LastName","Email","CreationDate",
//!   "Tag"}`, LEGAL `{"Id","PersonType":"LEGAL","Name","Email","CreationDate","Tag"}`.
//! - wallet: `{"Id","Owners":["<userId>"],"Description","Currency":"EUR","Balance":{"Currency":
//!   "EUR","Amount":123456},"FundsType":"DEFAULT","CreationDate","Tag"}`; one owner each.
//! - bank account: `{"Id","UserId","Type":"IBAN","OwnerName","IBAN","BIC","Active":true|false,
//!   "CreationDate","Tag"}` (IBANs are not checksum-valid).
//! - transaction: `{"Id","Tag":".."|null,"CreationDate":1767225600,"ExecutionDate":1767225660|
//!   null,"AuthorId","CreditedUserId":"<userId>"|null,"DebitedFunds":{..},"CreditedFunds":{..},
//!   "Fees":{..},"Status":"CREATED"|"SUCCEEDED"|"FAILED","ResultCode":"000000"|"001001"|..|null,
//!   "ResultMessage":".."|null,"Type":"PAYIN"|"PAYOUT"|"TRANSFER","Nature":"REGULAR"|"REFUND"|
//!   "REPUDIATION","DebitedWalletId":"<walletId>"|"","CreditedWalletId":"<walletId>"|""}`.
//!   - The side without a wallet is the EMPTY STRING `""`, never null: PAYIN has
//!     `DebitedWalletId: ""`, PAYOUT has `CreditedWalletId: ""`, TRANSFER has both set.
//!   - `CreditedFunds = DebitedFunds - Fees`, all three in one currency.
//!   - `ExecutionDate` is null while `Status` is CREATED (pending), set when it SUCCEEDED or
//!     FAILED. `ResultCode`/`ResultMessage` are null while CREATED, `000000`/`Success` when
//!     SUCCEEDED, `001001` (insufficient balance) or `001999` (generic) when FAILED.
//!   - A TRANSFER between two wallets is ONE transaction listed under BOTH wallets with the
//!     same `Id` (a fan-out over wallets sees it twice). `AuthorId` is the owner of the debited
//!     wallet (of the credited one for PAYIN); `CreditedUserId` the owner of the credited
//!     wallet, null when there is none.
//!   - REFUND and REPUDIATION natures: a PAYOUT/REFUND or PAYOUT/REPUDIATION takes money out of
//!     the wallet (a refunded or disputed pay-in), a TRANSFER/REFUND sends it back from the
//!     credited wallet to the debited one of the original.
//! - `AfterDate` and `BeforeDate` (optional, integer unix seconds) filter `CreationDate`:
//!   `AfterDate <= CreationDate < BeforeDate` (After INCLUSIVE, Before EXCLUSIVE). Both given
//!   with `BeforeDate <= AfterDate` is 400. No cap on the span. `CreationDate` never changes:
//!   a status change sets `ExecutionDate`, so a poll filtering on `CreationDate` never sees a
//!   pending transaction become SUCCEEDED or FAILED.
//!
//! # Payments
//!
//! - `POST /v2/payouts/bankwire`: `{"AuthorId","DebitedWalletId","DebitedFunds":{"Currency",
//!   "Amount"},"Fees":{"Currency","Amount"},"BankAccountId","BankWireRef"?,"Tag"?}`. `AuthorId`
//!   must be the OWNER of the debited wallet (so a connector that knows only the wallet must
//!   look it up first), `BankAccountId` an active bank account OF THAT USER, amounts integers
//!   (`DebitedFunds.Amount > 0`, `0 <= Fees.Amount <= DebitedFunds.Amount`) in the wallet's
//!   currency, `BankWireRef` at most 12 of `A-Z a-z 0-9` and space, `Tag` a string of at most
//!   255 characters or null; no other keys. 200 with the payout: the transaction fields plus
//!   `"BankAccountId","BankWireRef","PaymentType":"BANK_WIRE"`, `Type` PAYOUT, `Nature`
//!   REGULAR, `CreditedWalletId` `""`, `Status` CREATED (the wallet is debited at once;
//!   seeded payouts read through `GET /v2/payouts/{id}` have `BankAccountId` and
//!   `BankWireRef` null);
//!   [`Walletpay::settle_payouts`] makes them SUCCEEDED, [`Walletpay::fail_payout`] FAILED
//!   (money back).
//! - `POST /v2/transfers`: `{"AuthorId","DebitedWalletId","CreditedWalletId","DebitedFunds",
//!   "Fees","CreditedUserId"?,"Tag"?}`, two different wallets of one currency, `AuthorId` the
//!   debited wallet's owner, `CreditedUserId` (if given) the credited wallet's. 200 with the
//!   transfer, `Status` SUCCEEDED at once (debited wallet -Debited, credited +Credited).
//! - Insufficient balance is NOT an HTTP error: the payout or transfer is created with
//!   `Status` FAILED, `ResultCode` "001001", `ExecutionDate` now, and no money moves (as
//!   Mangopay does).
//! - Executed payouts and transfers appear in their wallets' transaction lists with the SAME
//!   `Id` as the payout or transfer, `CreationDate` the clock's time.
//! - `Idempotency-Key` (optional header): 16 to 36 characters of `A-Z a-z 0-9 -`, else 400
//!   with `Errors: {"Idempotency-Key": ..}`. The first request with a key that is executed is
//!   remembered (its path, body as JSON, status and response body); the same key again on the
//!   same path with an equal body gets that same status and body and executes nothing; with
//!   another body or path it is 409 `idempotency_conflict`. Requests that fail validation are
//!   not remembered. `GET /v2/responses/{key}` answers `{"StatusCode":200,"Date":..,
//!   "RequestURL":"/v2/payouts/bankwire","Resource":{..}}` (404 if unknown).
//! - Errors: `{"Message":"..","Type":"param_error"|"resource_not_found"|"unauthorized"|
//!   "idempotency_conflict"|"rate_limit"|"internal_error"|..,"Id":"err_<n>","Date":<now>,
//!   "Errors":{"<Field>":".."}}` (`Errors` may be empty). Injected faults (before routing, so
//!   they execute nothing): 429 `rate_limit`, 5xx `internal_error`, with `Retry-After` when
//!   configured. [`Walletpay::fail_after_executing`] makes the next payments EXECUTE (and be
//!   remembered under their key), then answer 500.
//!
//! The clock does not follow real time: it starts at [`WALLETPAY_EPOCH`] and moves only when
//! set. Seeded transactions lie between 120 days and 1 day before the epoch.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::mock_http::{Call, Control, Handler, MockServer, Prng, Request, Response, lock};

/// 2026-03-01T12:00:00Z in unix seconds, the default "now".
pub const WALLETPAY_EPOCH: i64 = 1_772_366_400;
pub const WALLETPAY_MAX_PER_PAGE: usize = 100;
pub const WALLETPAY_DEFAULT_PER_PAGE: usize = 10;
/// Idempotency keys' allowed lengths.
pub const WALLETPAY_KEY_LENGTHS: std::ops::RangeInclusive<usize> = 16..=36;
const DAY: i64 = 86_400;
const FIRST_ID: u64 = 1_000_001;

/// Currencies of seeded wallets (exponents 2, 2, 2, 0, 3).
pub const WP_CURRENCIES: [&str; 6] = ["EUR", "EUR", "GBP", "USD", "JPY", "KWD"];

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WpUser {
    pub id: String,
    /// NATURAL or LEGAL.
    pub person_type: String,
    /// NATURAL: "First Last"; LEGAL: the company name.
    pub name: String,
    pub email: String,
    pub created: i64,
    pub tag: Option<String>,
}

impl WpUser {
    pub fn to_json(&self) -> Value {
        let mut user = json!({
            "Id": self.id,
            "PersonType": self.person_type,
            "Email": self.email,
            "CreationDate": self.created,
            "Tag": self.tag,
        });
        if self.person_type == "NATURAL" {
            let (first, last) = self.name.split_once(' ').unwrap_or((&self.name, ""));
            user["FirstName"] = json!(first);
            user["LastName"] = json!(last);
        } else {
            user["Name"] = json!(self.name);
        }
        user
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WpWallet {
    pub id: String,
    pub owner: String,
    pub description: String,
    pub currency: String,
    pub balance: i64,
    pub created: i64,
    pub tag: Option<String>,
}

impl WpWallet {
    pub fn to_json(&self) -> Value {
        json!({
            "Id": self.id,
            "Owners": [self.owner],
            "Description": self.description,
            "Currency": self.currency,
            "Balance": funds(&self.currency, self.balance),
            "FundsType": "DEFAULT",
            "CreationDate": self.created,
            "Tag": self.tag,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WpBankAccount {
    pub id: String,
    pub user_id: String,
    pub owner_name: String,
    pub iban: String,
    pub bic: String,
    pub active: bool,
    pub created: i64,
    pub tag: Option<String>,
}

impl WpBankAccount {
    pub fn to_json(&self) -> Value {
        json!({
            "Id": self.id,
            "UserId": self.user_id,
            "Type": "IBAN",
            "OwnerName": self.owner_name,
            "IBAN": self.iban,
            "BIC": self.bic,
            "Active": self.active,
            "CreationDate": self.created,
            "Tag": self.tag,
        })
    }
}

fn funds(currency: &str, amount: i64) -> Value {
    json!({"Currency": currency, "Amount": amount})
}

/// A transaction; payouts and transfers made through the API are transactions too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WpTransaction {
    pub id: String,
    /// PAYIN, PAYOUT or TRANSFER.
    pub kind: String,
    /// REGULAR, REFUND or REPUDIATION.
    pub nature: String,
    /// CREATED, SUCCEEDED or FAILED.
    pub status: String,
    pub created: i64,
    pub executed: Option<i64>,
    pub author_id: String,
    pub credited_user_id: Option<String>,
    pub debited_wallet: Option<String>,
    pub credited_wallet: Option<String>,
    pub currency: String,
    pub debited_amount: i64,
    pub fees_amount: i64,
    pub result_code: Option<String>,
    pub result_message: Option<String>,
    pub tag: Option<String>,
    /// Payouts only.
    pub bank_account_id: Option<String>,
    pub bank_wire_ref: Option<String>,
    /// The key of the API request that created it.
    pub idempotency_key: Option<String>,
    /// Made by `POST /v2/payouts/bankwire` or `POST /v2/transfers`.
    pub initiated: bool,
}

impl WpTransaction {
    pub fn credited_amount(&self) -> i64 {
        self.debited_amount - self.fees_amount
    }

    /// Whether `wallet`'s transaction list holds it.
    pub fn touches(&self, wallet: &str) -> bool {
        self.debited_wallet.as_deref() == Some(wallet)
            || self.credited_wallet.as_deref() == Some(wallet)
    }

    /// An item of a wallet's transaction list.
    pub fn to_json(&self) -> Value {
        json!({
            "Id": self.id,
            "Tag": self.tag,
            "CreationDate": self.created,
            "ExecutionDate": self.executed,
            "AuthorId": self.author_id,
            "CreditedUserId": self.credited_user_id,
            "DebitedFunds": funds(&self.currency, self.debited_amount),
            "CreditedFunds": funds(&self.currency, self.credited_amount()),
            "Fees": funds(&self.currency, self.fees_amount),
            "Status": self.status,
            "ResultCode": self.result_code,
            "ResultMessage": self.result_message,
            "Type": self.kind,
            "Nature": self.nature,
            "DebitedWalletId": self.debited_wallet.clone().unwrap_or_default(),
            "CreditedWalletId": self.credited_wallet.clone().unwrap_or_default(),
        })
    }

    /// `GET /v2/payouts/{id}` (and the POST's answer): the list item plus the payout fields.
    pub fn payout_json(&self) -> Value {
        let mut value = self.to_json();
        value["BankAccountId"] = json!(self.bank_account_id);
        value["BankWireRef"] = json!(self.bank_wire_ref);
        value["PaymentType"] = json!("BANK_WIRE");
        value
    }

    /// Sets the status with its result (`000000` when SUCCEEDED, the generic `001999` when
    /// FAILED, none while CREATED) and `ExecutionDate` (`at`, none while CREATED).
    fn set_result(&mut self, status: &str, at: i64) {
        let (code, message) = match status {
            "SUCCEEDED" => (Some("000000"), Some("Success")),
            "FAILED" => (Some("001999"), Some("Generic operation error")),
            _ => (None, None),
        };
        self.status = status.to_owned();
        self.result_code = code.map(str::to_owned);
        self.result_message = message.map(str::to_owned);
        self.executed = (status != "CREATED").then_some(at);
    }

    /// FAILED at `at` for want of funds (`001001`).
    fn set_insufficient(&mut self, at: i64) {
        self.set_result("FAILED", at);
        self.result_code = Some("001001".to_owned());
        self.result_message = Some("Insufficient wallet balance".to_owned());
    }
}

/// What [`Walletpay::add_transaction`] creates; `created` defaults to the clock. `executed`
/// and the result follow the status; `author_id` and `credited_user_id` are derived from the
/// wallets' owners.
#[derive(Clone, Debug)]
pub struct WpNewTransaction {
    pub kind: String,
    pub nature: String,
    pub status: String,
    pub debited_wallet: Option<String>,
    pub credited_wallet: Option<String>,
    pub currency: String,
    pub debited_amount: i64,
    pub fees_amount: i64,
    pub created: Option<i64>,
    pub tag: Option<String>,
}

impl Default for WpNewTransaction {
    fn default() -> Self {
        WpNewTransaction {
            kind: "PAYIN".to_owned(),
            nature: "REGULAR".to_owned(),
            status: "SUCCEEDED".to_owned(),
            debited_wallet: None,
            credited_wallet: None,
            currency: "EUR".to_owned(),
            debited_amount: 1000,
            fees_amount: 0,
            created: None,
            tag: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/// What an idempotency key stands for.
#[derive(Clone, Debug)]
struct Remembered {
    path: String,
    body: Value,
    status: u16,
    response: Value,
    date: i64,
}

struct WpState {
    client_id: String,
    api_key: String,
    now: i64,
    rng: Prng,
    next_id: u64,
    next_error: u64,
    user_seed: i64,
    users: Vec<WpUser>,
    wallets: Vec<WpWallet>,
    bank_accounts: Vec<WpBankAccount>,
    transactions: Vec<WpTransaction>,
    keys: HashMap<String, Remembered>,
    fail_after_executing: usize,
}

impl WpState {
    fn new_id(&mut self) -> String {
        let id = self.next_id.to_string();
        self.next_id += 1;
        id
    }

    fn wallet(&self, id: &str) -> Option<&WpWallet> {
        self.wallets.iter().find(|w| w.id == id)
    }

    fn wallet_mut(&mut self, id: &str) -> Option<&mut WpWallet> {
        self.wallets.iter_mut().find(|w| w.id == id)
    }

    fn owner(&self, wallet: Option<&str>) -> Option<String> {
        wallet.and_then(|w| self.wallet(w)).map(|w| w.owner.clone())
    }

    fn error(&mut self, status: u16, kind: &str, message: &str, errors: Value) -> Response {
        self.next_error += 1;
        Response::json(
            status,
            &json!({
                "Message": message,
                "Type": kind,
                "Id": format!("err_{}", self.next_error),
                "Date": self.now,
                "Errors": errors,
            }),
        )
    }

    fn param_error(&mut self, field: &str, message: &str) -> Response {
        self.error(
            400,
            "param_error",
            "One or several required parameters are missing or incorrect.",
            json!({ field: message }),
        )
    }

    fn not_found(&mut self, what: &str) -> Response {
        self.error(
            404,
            "resource_not_found",
            "The resource does not exist",
            json!({ "ResourceNotFound": what }),
        )
    }

    fn random_amount(&mut self, currency: &str) -> i64 {
        let unit = 10i64.pow(exponent(currency));
        match self.rng.below(25) {
            0 => self.rng.range(1, 99),
            // Odd numbers between 2^53 and 2^54: no f64 holds them.
            1 => self.rng.range(1 << 52, (1 << 52) + 1_000_000) * 2 + 1,
            2 | 3 => self.rng.range(1, 500) * unit,
            _ => self.rng.range(100, 5_000 * unit),
        }
    }

    fn push_transaction(&mut self, spec: WpNewTransaction) -> String {
        let id = self.new_id();
        let created = spec.created.unwrap_or(self.now);
        let author_wallet = if spec.kind == "PAYIN" {
            spec.credited_wallet.as_deref()
        } else {
            spec.debited_wallet.as_deref()
        };
        let author_id = self.owner(author_wallet).unwrap_or_default();
        let credited_user_id = self.owner(spec.credited_wallet.as_deref());
        let mut transaction = WpTransaction {
            id: id.clone(),
            kind: spec.kind,
            nature: spec.nature,
            status: String::new(),
            created,
            executed: None,
            author_id,
            credited_user_id,
            debited_wallet: spec.debited_wallet,
            credited_wallet: spec.credited_wallet,
            currency: spec.currency,
            debited_amount: spec.debited_amount,
            fees_amount: spec.fees_amount,
            result_code: None,
            result_message: None,
            tag: spec.tag,
            bank_account_id: None,
            bank_wire_ref: None,
            idempotency_key: None,
            initiated: false,
        };
        transaction.set_result(&spec.status, created);
        self.transactions.push(transaction);
        id
    }

    /// The wallet's transactions passing `[after, before)`, in the requested order.
    fn wallet_transactions(
        &self,
        wallet: &str,
        after: Option<i64>,
        before: Option<i64>,
        ascending: bool,
    ) -> Vec<&WpTransaction> {
        let mut items: Vec<&WpTransaction> = self
            .transactions
            .iter()
            .filter(|t| {
                t.touches(wallet)
                    && after.is_none_or(|a| t.created >= a)
                    && before.is_none_or(|b| t.created < b)
            })
            .collect();
        sort_by_creation(&mut items, |t| (t.created, &t.id), ascending);
        items
    }
}

fn exponent(currency: &str) -> u32 {
    super::mock_cursor::currency_exponent(currency)
}

fn sort_by_creation<T>(items: &mut [&T], key: impl Fn(&T) -> (i64, &String), ascending: bool) {
    items.sort_by(|a, b| key(a).cmp(&key(b)));
    if !ascending {
        items.reverse();
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

fn fault_response(status: u16, _retry_after: Option<u64>) -> Response {
    let (kind, message) = if status == 429 {
        ("rate_limit", "Too many requests")
    } else {
        ("internal_error", "The service is temporarily unavailable")
    };
    Response::json(
        status,
        &json!({"Message": message, "Type": kind, "Id": "err_fault", "Date": 0, "Errors": {}}),
    )
}

struct ListQuery {
    page: usize,
    per_page: usize,
    ascending: bool,
    after: Option<i64>,
    before: Option<i64>,
}

fn list_query(state: &mut WpState, request: &Request, dates: bool) -> Result<ListQuery, Response> {
    let mut query = ListQuery {
        page: 1,
        per_page: WALLETPAY_DEFAULT_PER_PAGE,
        ascending: false,
        after: None,
        before: None,
    };
    let mut seen = HashSet::new();
    for (key, value) in &request.query {
        if !seen.insert(key.as_str()) {
            return Err(state.param_error(key, "given more than once"));
        }
        match key.as_str() {
            "page" => {
                query.page = value
                    .parse()
                    .ok()
                    .filter(|p| *p >= 1)
                    .ok_or_else(|| state.param_error("page", "must be an integer >= 1"))?;
            }
            "per_page" => {
                query.per_page = value
                    .parse()
                    .ok()
                    .filter(|p| (1..=WALLETPAY_MAX_PER_PAGE).contains(p))
                    .ok_or_else(|| {
                        state.param_error(
                            "per_page",
                            &format!("must be an integer from 1 to {WALLETPAY_MAX_PER_PAGE}"),
                        )
                    })?;
            }
            "Sort" => {
                query.ascending = match value.as_str() {
                    "CreationDate:ASC" => true,
                    "CreationDate:DESC" => false,
                    _ => {
                        return Err(state
                            .param_error("Sort", "must be CreationDate:ASC or CreationDate:DESC"));
                    }
                };
            }
            "AfterDate" | "BeforeDate" if dates => {
                let Ok(secs) = value.parse::<i64>() else {
                    return Err(state.param_error(key, "must be an integer (unix seconds)"));
                };
                if key == "AfterDate" {
                    query.after = Some(secs);
                } else {
                    query.before = Some(secs);
                }
            }
            _ => return Err(state.param_error(key, "unknown query parameter")),
        }
    }
    if let (Some(after), Some(before)) = (query.after, query.before)
        && before <= after
    {
        return Err(state.param_error("BeforeDate", "must be after AfterDate"));
    }
    Ok(query)
}

fn page_of<T>(query: &ListQuery, items: &[T], to_json: impl Fn(&T) -> Value) -> Response {
    let total = items.len();
    let start = (query.page - 1).saturating_mul(query.per_page).min(total);
    let end = (start + query.per_page).min(total);
    let page: Vec<Value> = items[start..end].iter().map(to_json).collect();
    Response::json(200, &Value::Array(page))
        .with_header(
            "X-Number-Of-Pages",
            &total.div_ceil(query.per_page).to_string(),
        )
        .with_header("X-Number-Of-Items", &total.to_string())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Payout,
    Transfer,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Payout => "/v2/payouts/bankwire",
            Kind::Transfer => "/v2/transfers",
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Payout => &[
                "AuthorId",
                "DebitedWalletId",
                "DebitedFunds",
                "Fees",
                "BankAccountId",
                "BankWireRef",
                "Tag",
            ],
            Kind::Transfer => &[
                "AuthorId",
                "DebitedWalletId",
                "CreditedWalletId",
                "DebitedFunds",
                "Fees",
                "CreditedUserId",
                "Tag",
            ],
        }
    }
}

fn initiation_kind(request: &Request) -> Option<Kind> {
    if request.method != "POST" {
        return None;
    }
    match request.path.as_str() {
        "/v2/payouts/bankwire" => Some(Kind::Payout),
        "/v2/transfers" => Some(Kind::Transfer),
        _ => None,
    }
}

/// A validated payout or transfer.
struct Order {
    kind: Kind,
    author: String,
    debited: WpWallet,
    credited: Option<WpWallet>,
    amount: i64,
    fees: i64,
    bank_account: Option<String>,
    bank_wire_ref: Option<String>,
    tag: Option<String>,
}

/// Whether an `Idempotency-Key` is acceptable: 16 to 36 of `A-Z a-z 0-9 -`.
pub fn walletpay_key_ok(key: &str) -> bool {
    WALLETPAY_KEY_LENGTHS.contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn string_field<'a>(
    state: &mut WpState,
    body: &'a Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<Option<&'a str>, Response> {
    match body.get(key) {
        Some(Value::String(text)) if !text.is_empty() => Ok(Some(text)),
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => {
            Err(state.param_error(key, &format!("The {key} field is required.")))
        }
        Some(_) => Err(state.param_error(key, "must be a non-empty string")),
    }
}

/// `{"Currency","Amount"}` in `currency`, with `Amount` a JSON integer >= `min`.
fn funds_field(
    state: &mut WpState,
    body: &Map<String, Value>,
    key: &str,
    currency: &str,
    min: i64,
) -> Result<i64, Response> {
    let Some(Value::Object(funds)) = body.get(key) else {
        return Err(state.param_error(key, &format!("The {key} field is required.")));
    };
    if funds.len() != 2 || !funds.contains_key("Currency") || !funds.contains_key("Amount") {
        return Err(state.param_error(key, "must be {\"Currency\", \"Amount\"}"));
    }
    if funds["Currency"] != currency {
        return Err(state.param_error(
            &format!("{key}.Currency"),
            &format!("must be the wallet's currency {currency}"),
        ));
    }
    match funds["Amount"].as_i64() {
        Some(amount) if amount >= min => Ok(amount),
        _ => Err(state.param_error(
            &format!("{key}.Amount"),
            &format!("must be an integer >= {min} (minor units)"),
        )),
    }
}

fn validate(state: &mut WpState, kind: Kind, body: Option<&Value>) -> Result<Order, Response> {
    let Some(Value::Object(body)) = body else {
        return Err(state.param_error("body", "must be a JSON object"));
    };
    if let Some(key) = body.keys().find(|k| !kind.keys().contains(&k.as_str())) {
        return Err(state.param_error(key, "unknown field"));
    }
    let author = string_field(state, body, "AuthorId", true)?.unwrap();
    let debited_id = string_field(state, body, "DebitedWalletId", true)?.unwrap();
    let Some(debited) = state.wallet(debited_id).cloned() else {
        return Err(state.param_error("DebitedWalletId", &format!("no wallet {debited_id}")));
    };
    if debited.owner != author {
        return Err(state.param_error(
            "AuthorId",
            "The AuthorId must be the owner of the debited wallet",
        ));
    }
    let amount = funds_field(state, body, "DebitedFunds", &debited.currency, 1)?;
    let fees = funds_field(state, body, "Fees", &debited.currency, 0)?;
    if fees > amount {
        return Err(state.param_error("Fees.Amount", "must not exceed DebitedFunds.Amount"));
    }
    let tag = match body.get("Tag") {
        None | Some(Value::Null) => None,
        Some(Value::String(tag)) if tag.chars().count() <= 255 => Some(tag.clone()),
        Some(_) => return Err(state.param_error("Tag", "must be a string of at most 255")),
    };
    let mut order = Order {
        kind,
        author: author.to_owned(),
        debited,
        credited: None,
        amount,
        fees,
        bank_account: None,
        bank_wire_ref: None,
        tag,
    };
    match kind {
        Kind::Payout => {
            let id = string_field(state, body, "BankAccountId", true)?.unwrap();
            let usable = state
                .bank_accounts
                .iter()
                .any(|b| b.id == id && b.user_id == author && b.active);
            if !usable {
                return Err(state.param_error(
                    "BankAccountId",
                    "must be an active bank account of the AuthorId user",
                ));
            }
            order.bank_account = Some(id.to_owned());
            order.bank_wire_ref = match body.get("BankWireRef") {
                None | Some(Value::Null) => None,
                Some(Value::String(text))
                    if text.len() <= 12
                        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ') =>
                {
                    Some(text.clone())
                }
                Some(_) => {
                    return Err(
                        state.param_error("BankWireRef", "at most 12 letters, digits and spaces")
                    );
                }
            };
        }
        Kind::Transfer => {
            let id = string_field(state, body, "CreditedWalletId", true)?.unwrap();
            let Some(credited) = state.wallet(id).cloned() else {
                return Err(state.param_error("CreditedWalletId", &format!("no wallet {id}")));
            };
            if credited.id == order.debited.id {
                return Err(
                    state.param_error("CreditedWalletId", "must differ from DebitedWalletId")
                );
            }
            if credited.currency != order.debited.currency {
                return Err(state.param_error(
                    "CreditedWalletId",
                    "must hold the debited wallet's currency",
                ));
            }
            if let Some(user) = string_field(state, body, "CreditedUserId", false)?
                && user != credited.owner
            {
                return Err(
                    state.param_error("CreditedUserId", "must be the owner of the credited wallet")
                );
            }
            order.credited = Some(credited);
        }
    }
    Ok(order)
}

/// Creates the payout or transfer (FAILED when the balance is short) and moves the money.
fn execute(state: &mut WpState, order: Order, key: Option<&str>) -> WpTransaction {
    let now = state.now;
    let id = state.new_id();
    let funded = order.debited.balance >= order.amount;
    let (kind, status) = match order.kind {
        Kind::Payout => ("PAYOUT", "CREATED"),
        Kind::Transfer => ("TRANSFER", "SUCCEEDED"),
    };
    let mut transaction = WpTransaction {
        id,
        kind: kind.to_owned(),
        nature: "REGULAR".to_owned(),
        status: String::new(),
        created: now,
        executed: None,
        author_id: order.author,
        credited_user_id: order.credited.as_ref().map(|w| w.owner.clone()),
        debited_wallet: Some(order.debited.id.clone()),
        credited_wallet: order.credited.as_ref().map(|w| w.id.clone()),
        currency: order.debited.currency.clone(),
        debited_amount: order.amount,
        fees_amount: order.fees,
        result_code: None,
        result_message: None,
        tag: order.tag,
        bank_account_id: order.bank_account,
        bank_wire_ref: order.bank_wire_ref,
        idempotency_key: key.map(str::to_owned),
        initiated: true,
    };
    if funded {
        transaction.set_result(status, now);
    } else {
        transaction.set_insufficient(now);
    }
    if funded {
        if let Some(wallet) = state.wallet_mut(&order.debited.id) {
            wallet.balance -= order.amount;
        }
        if let Some(credited) = &order.credited
            && let Some(wallet) = state.wallet_mut(&credited.id)
        {
            wallet.balance += order.amount - order.fees;
        }
    }
    state.transactions.push(transaction.clone());
    transaction
}

fn initiate(state: &mut WpState, request: &Request, kind: Kind) -> Response {
    let body = request.json();
    let key = request.header("idempotency-key").map(str::to_owned);
    if let Some(key) = &key {
        if !walletpay_key_ok(key) {
            return state.param_error(
                "Idempotency-Key",
                "must be 16 to 36 characters of A-Z a-z 0-9 and -",
            );
        }
        if let Some(remembered) = state.keys.get(key).cloned() {
            if remembered.path == request.path && body.as_ref() == Some(&remembered.body) {
                return Response::json(remembered.status, &remembered.response);
            }
            return state.error(
                409,
                "idempotency_conflict",
                "This Idempotency-Key was already used with another request",
                json!({}),
            );
        }
    }
    let order = match validate(state, kind, body.as_ref()) {
        Ok(order) => order,
        Err(response) => return response,
    };
    let transaction = execute(state, order, key.as_deref());
    let response = match kind {
        Kind::Payout => transaction.payout_json(),
        Kind::Transfer => transaction.to_json(),
    };
    if let (Some(key), Some(body)) = (key, body) {
        let remembered = Remembered {
            path: request.path.clone(),
            body,
            status: 200,
            response: response.clone(),
            date: state.now,
        };
        state.keys.insert(key, remembered);
    }
    if state.fail_after_executing > 0 {
        state.fail_after_executing -= 1;
        return state.error(500, "internal_error", "Internal server error", json!({}));
    }
    Response::json(200, &response)
}

fn list<T>(
    state: &mut WpState,
    request: &Request,
    dates: bool,
    items: impl Fn(&WpState, &ListQuery) -> Vec<T>,
    to_json: impl Fn(&T) -> Value,
) -> Response {
    match list_query(state, request, dates) {
        Ok(query) => {
            let items = items(state, &query);
            page_of(&query, &items, to_json)
        }
        Err(response) => response,
    }
}

fn route(state: &Mutex<WpState>, request: &Request) -> Response {
    let mut state = lock(state);
    let state = &mut *state;
    let authorised = request
        .basic_auth()
        .is_some_and(|(id, key)| id == state.client_id && key == state.api_key);
    if !authorised {
        return state
            .error(
                401,
                "unauthorized",
                "Authentication failed: send HTTP Basic clientId:apiKey",
                json!({}),
            )
            .with_header("WWW-Authenticate", "Basic realm=\"walletpay\"");
    }
    if let Some(kind) = initiation_kind(request) {
        return initiate(state, request, kind);
    }
    let segments = request.segments();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let known = matches!(
        segments.as_slice(),
        ["v2", "users"]
            | ["v2", "users", _]
            | ["v2", "users", _, "wallets" | "bankaccounts"]
            | ["v2", "wallets", _]
            | ["v2", "wallets", _, "transactions"]
            | ["v2", "payouts", _]
            | ["v2", "transfers", _]
            | ["v2", "responses", _]
            | ["v2", "transfers"]
    );
    if !known {
        return state.not_found(&format!("no route for {}", request.path));
    }
    if request.method != "GET" {
        return state.error(
            405,
            "method_not_allowed",
            &format!("{} is not allowed here", request.method),
            json!({}),
        );
    }
    let user_exists = |state: &WpState, id: &str| state.users.iter().any(|u| u.id == id);
    match segments.as_slice() {
        ["v2", "users"] => list(
            state,
            request,
            false,
            |state, query| {
                let mut users: Vec<&WpUser> = state.users.iter().collect();
                sort_by_creation(&mut users, |u| (u.created, &u.id), query.ascending);
                users.into_iter().cloned().collect()
            },
            WpUser::to_json,
        ),
        ["v2", "users", id] => match state.users.iter().find(|u| u.id == *id) {
            Some(user) => Response::json(200, &user.to_json()),
            None => state.not_found(&format!("no user {id}")),
        },
        ["v2", "users", id, "wallets"] if user_exists(state, id) => list(
            state,
            request,
            false,
            |state, query| {
                let mut wallets: Vec<&WpWallet> =
                    state.wallets.iter().filter(|w| w.owner == *id).collect();
                sort_by_creation(&mut wallets, |w| (w.created, &w.id), query.ascending);
                wallets.into_iter().cloned().collect()
            },
            WpWallet::to_json,
        ),
        ["v2", "users", id, "bankaccounts"] if user_exists(state, id) => list(
            state,
            request,
            false,
            |state, query| {
                let mut accounts: Vec<&WpBankAccount> = state
                    .bank_accounts
                    .iter()
                    .filter(|b| b.user_id == *id)
                    .collect();
                sort_by_creation(&mut accounts, |b| (b.created, &b.id), query.ascending);
                accounts.into_iter().cloned().collect()
            },
            WpBankAccount::to_json,
        ),
        ["v2", "users", id, _] => state.not_found(&format!("no user {id}")),
        ["v2", "wallets", id] => match state.wallet(id) {
            Some(wallet) => Response::json(200, &wallet.to_json()),
            None => state.not_found(&format!("no wallet {id}")),
        },
        ["v2", "wallets", id, "transactions"] => {
            if state.wallet(id).is_none() {
                return state.not_found(&format!("no wallet {id}"));
            }
            list(
                state,
                request,
                true,
                |state, query| {
                    state
                        .wallet_transactions(id, query.after, query.before, query.ascending)
                        .into_iter()
                        .cloned()
                        .collect()
                },
                WpTransaction::to_json,
            )
        }
        ["v2", "payouts", id] => {
            let found = state
                .transactions
                .iter()
                .find(|t| t.id == *id && t.kind == "PAYOUT")
                .map(WpTransaction::payout_json);
            match found {
                Some(payout) => Response::json(200, &payout),
                None => state.not_found(&format!("no payout {id}")),
            }
        }
        ["v2", "transfers", id] => {
            let found = state
                .transactions
                .iter()
                .find(|t| t.id == *id && t.kind == "TRANSFER")
                .map(WpTransaction::to_json);
            match found {
                Some(transfer) => Response::json(200, &transfer),
                None => state.not_found(&format!("no transfer {id}")),
            }
        }
        ["v2", "responses", key] => match state.keys.get(*key) {
            Some(remembered) => Response::json(
                200,
                &json!({
                    "StatusCode": remembered.status,
                    "Date": remembered.date,
                    "RequestURL": remembered.path,
                    "Resource": remembered.response,
                }),
            ),
            None => state.not_found(&format!("no response for key {key}")),
        },
        _ => state.not_found(&format!("no route for {}", request.path)),
    }
}

// ---------------------------------------------------------------------------------------------
// The mock
// ---------------------------------------------------------------------------------------------

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
const COMPANIES: [&str; 4] = ["Acme SAS", "Globex GmbH", "Initech BV", "Hooli SRL"];
const TAGS: [Option<&str>; 6] = [
    None,
    Some(""),
    Some("order 4711"),
    Some("cart #12 \"gift\""),
    Some("Überweisung"),
    Some("x"),
];

pub struct Walletpay {
    server: MockServer,
    state: Arc<Mutex<WpState>>,
    control: Arc<Control>,
    posts: Arc<AtomicUsize>,
}

impl Walletpay {
    /// A Walletpay with no data, the clock at [`WALLETPAY_EPOCH`], accepting HTTP Basic
    /// `client_id:api_key`.
    pub fn start(seed: u64, client_id: &str, api_key: &str) -> Walletpay {
        let state = Arc::new(Mutex::new(WpState {
            client_id: client_id.to_owned(),
            api_key: api_key.to_owned(),
            now: WALLETPAY_EPOCH,
            rng: Prng::new(seed),
            next_id: FIRST_ID,
            next_error: 0,
            user_seed: WALLETPAY_EPOCH - 240 * DAY,
            users: Vec::new(),
            wallets: Vec::new(),
            bank_accounts: Vec::new(),
            transactions: Vec::new(),
            keys: HashMap::new(),
            fail_after_executing: 0,
        }));
        let control = Arc::new(Control::new());
        let route_state = Arc::clone(&state);
        let routed = control.wrap(fault_response, move |request| route(&route_state, request));
        // Counted before the control, so that POSTs answered by an injected fault count too.
        let posts = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&posts);
        let handler: Handler = Arc::new(move |request: &Request| {
            if initiation_kind(request).is_some() {
                count.fetch_add(1, Ordering::SeqCst);
            }
            routed(request)
        });
        Walletpay {
            server: MockServer::start(handler),
            state,
            control,
            posts,
        }
    }

    fn state(&self) -> MutexGuard<'_, WpState> {
        lock(&self.state)
    }

    /// `http://127.0.0.1:PORT` (the API lives under `/v2`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// The `Authorization` header value the mock accepts.
    pub fn basic_auth(&self) -> String {
        let state = self.state();
        format!(
            "Basic {}",
            super::mock_http::base64_encode(
                format!("{}:{}", state.client_id, state.api_key).as_bytes()
            )
        )
    }

    // ---- clock ----

    /// "Now" in unix seconds: the `CreationDate` of payments and default records.
    pub fn now(&self) -> i64 {
        self.state().now
    }

    pub fn set_now(&self, now: i64) {
        self.state().now = now;
    }

    pub fn advance(&self, secs: i64) {
        self.state().now += secs;
    }

    // ---- seeding and changes ----

    /// Adds `n` users (three in four NATURAL) with increasing `CreationDate` from 240 days
    /// before the epoch (a third tie with the previous second). Returns their ids.
    pub fn seed_users(&self, n: usize) -> Vec<String> {
        let mut state = self.state();
        (0..n)
            .map(|_| {
                if !state.rng.chance(1, 3) {
                    state.user_seed += state.rng.range(1, 3 * 3600);
                }
                let created = state.user_seed;
                let natural = !state.rng.chance(1, 4);
                let name = if natural {
                    state.rng.pick(&PEOPLE).to_string()
                } else {
                    state.rng.pick(&COMPANIES).to_string()
                };
                let tag = (*state.rng.pick(&TAGS)).map(str::to_owned);
                push_user(&mut state, natural, &name, created, tag)
            })
            .collect()
    }

    /// Adds `per_user` wallets to every user, created 1 to 30 days after the user (ties
    /// among a user's wallets), currencies from [`WP_CURRENCIES`], random balances. Returns
    /// their ids.
    pub fn seed_wallets(&self, per_user: usize) -> Vec<String> {
        let mut state = self.state();
        let users = state.users.clone();
        let mut ids = Vec::new();
        for user in &users {
            let created = user.created + state.rng.range(DAY, 30 * DAY);
            for k in 0..per_user {
                let currency = state.rng.pick(&WP_CURRENCIES).to_string();
                let balance = state.random_amount(&currency);
                let description = format!("{} wallet {}", currency, k + 1);
                let tag = (*state.rng.pick(&TAGS)).map(str::to_owned);
                let id = state.new_id();
                let created = created + state.rng.range(0, 1);
                state.wallets.push(WpWallet {
                    id: id.clone(),
                    owner: user.id.clone(),
                    description,
                    currency,
                    balance,
                    created,
                    tag,
                });
                ids.push(id);
            }
        }
        ids
    }

    /// Adds `per_user` IBAN bank accounts to every user (one in six inactive). Returns ids.
    pub fn seed_bank_accounts(&self, per_user: usize) -> Vec<String> {
        let mut state = self.state();
        let users = state.users.clone();
        let mut ids = Vec::new();
        for user in &users {
            for _ in 0..per_user {
                let created = user.created + state.rng.range(0, 60 * DAY);
                let active = !state.rng.chance(1, 6);
                ids.push(push_bank_account(
                    &mut state, &user.id, &user.name, created, active,
                ));
            }
        }
        ids
    }

    /// Adds about `per_wallet` transactions to every wallet, with `CreationDate` from 120 days
    /// to 1 day before the epoch, in bursts of 1 to 4 records (one in five times 6 to 15), each
    /// on the previous one's second three times in four (else 1 to 3 s later). Types: PAYIN/REGULAR (fees up to 3%), PAYOUT/REGULAR, TRANSFER/REGULAR
    /// to another wallet of the same currency (listed under both), and a few PAYOUT/REFUND,
    /// PAYOUT/REPUDIATION and TRANSFER/REFUND; statuses SUCCEEDED (3/4), CREATED, FAILED;
    /// `ExecutionDate` 0 to 300 s after creation. Balances are left as they are. Returns ids.
    pub fn seed_transactions(&self, per_wallet: usize) -> Vec<String> {
        let mut state = self.state();
        let first = state.transactions.len();
        let wallets = state.wallets.clone();
        for wallet in &wallets {
            let mut made = 0;
            while made < per_wallet {
                let mut t = state
                    .rng
                    .range(WALLETPAY_EPOCH - 120 * DAY, WALLETPAY_EPOCH - DAY);
                let size = if state.rng.chance(1, 5) {
                    state.rng.range(6, 15)
                } else {
                    state.rng.range(1, 4)
                } as usize;
                for _ in 0..size.min(per_wallet - made) {
                    seed_one(&mut state, wallet, t);
                    made += 1;
                    if state.rng.chance(1, 4) {
                        t += state.rng.range(1, 3);
                    }
                }
            }
        }
        state.transactions[first..]
            .iter()
            .map(|t| t.id.clone())
            .collect()
    }

    pub fn add_user(&self, natural: bool, name: &str, created: Option<i64>) -> String {
        let mut state = self.state();
        let created = created.unwrap_or(state.now);
        push_user(&mut state, natural, name, created, None)
    }

    pub fn add_wallet(
        &self,
        owner: &str,
        currency: &str,
        balance: i64,
        created: Option<i64>,
    ) -> String {
        let mut state = self.state();
        let created = created.unwrap_or(state.now);
        let id = state.new_id();
        state.wallets.push(WpWallet {
            id: id.clone(),
            owner: owner.to_owned(),
            description: format!("{currency} wallet"),
            currency: currency.to_owned(),
            balance,
            created,
            tag: None,
        });
        id
    }

    pub fn add_bank_account(&self, user: &str, active: bool, created: Option<i64>) -> String {
        let mut state = self.state();
        let created = created.unwrap_or(state.now);
        let name = state
            .users
            .iter()
            .find(|u| u.id == user)
            .map_or_else(String::new, |u| u.name.clone());
        push_bank_account(&mut state, user, &name, created, active)
    }

    /// Sets a wallet's balance (minor units). False if unknown.
    pub fn set_balance(&self, wallet: &str, amount: i64) -> bool {
        match self.state().wallet_mut(wallet) {
            Some(w) => {
                w.balance = amount;
                true
            }
            None => false,
        }
    }

    pub fn add_transaction(&self, spec: WpNewTransaction) -> String {
        self.state().push_transaction(spec)
    }

    /// Sets a transaction's status; `ExecutionDate` becomes `at` (default: now) unless the
    /// status is CREATED. `CreationDate` does not change. False if unknown.
    pub fn update_transaction(&self, id: &str, status: &str, at: Option<i64>) -> bool {
        let mut state = self.state();
        let at = at.unwrap_or(state.now);
        match state.transactions.iter_mut().find(|t| t.id == id) {
            Some(t) => {
                t.set_result(status, at);
                true
            }
            None => false,
        }
    }

    /// Every CREATED payout made through the API becomes SUCCEEDED now. Returns how many.
    pub fn settle_payouts(&self) -> usize {
        let mut state = self.state();
        let now = state.now;
        let mut count = 0;
        for t in state.transactions.iter_mut() {
            if t.initiated && t.kind == "PAYOUT" && t.status == "CREATED" {
                t.set_result("SUCCEEDED", now);
                count += 1;
            }
        }
        count
    }

    /// A CREATED payout becomes FAILED now and its wallet gets the money back. False if
    /// unknown or not CREATED.
    pub fn fail_payout(&self, id: &str) -> bool {
        let mut state = self.state();
        let now = state.now;
        let Some(t) = state
            .transactions
            .iter_mut()
            .find(|t| t.id == id && t.initiated && t.kind == "PAYOUT" && t.status == "CREATED")
        else {
            return false;
        };
        t.set_result("FAILED", now);
        let (wallet, amount) = (t.debited_wallet.clone(), t.debited_amount);
        if let Some(w) = wallet.and_then(|w| state.wallet_mut(&w)) {
            w.balance += amount;
        }
        true
    }

    // ---- ground truth ----

    pub fn users(&self) -> Vec<WpUser> {
        self.state().users.clone()
    }

    pub fn wallets(&self) -> Vec<WpWallet> {
        self.state().wallets.clone()
    }

    pub fn wallet(&self, id: &str) -> Option<WpWallet> {
        self.state().wallet(id).cloned()
    }

    pub fn bank_accounts(&self) -> Vec<WpBankAccount> {
        self.state().bank_accounts.clone()
    }

    /// Every transaction, payouts and transfers included, in creation order.
    pub fn transactions(&self) -> Vec<WpTransaction> {
        self.state().transactions.clone()
    }

    pub fn transaction(&self, id: &str) -> Option<WpTransaction> {
        self.state()
            .transactions
            .iter()
            .find(|t| t.id == id)
            .cloned()
    }

    /// What `/v2/wallets/{id}/transactions` serves for that filter and order, all pages.
    pub fn wallet_transactions(
        &self,
        wallet: &str,
        after: Option<i64>,
        before: Option<i64>,
        ascending: bool,
    ) -> Vec<WpTransaction> {
        self.state()
            .wallet_transactions(wallet, after, before, ascending)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Payouts executed through the API (FAILED ones included), in creation order.
    pub fn payouts(&self) -> Vec<WpTransaction> {
        self.state()
            .transactions
            .iter()
            .filter(|t| t.initiated && t.kind == "PAYOUT")
            .cloned()
            .collect()
    }

    /// Transfers executed through the API (FAILED ones included), in creation order.
    pub fn transfers(&self) -> Vec<WpTransaction> {
        self.state()
            .transactions
            .iter()
            .filter(|t| t.initiated && t.kind == "TRANSFER")
            .cloned()
            .collect()
    }

    /// Payouts and transfers executed with that `Idempotency-Key` (0 or 1 by design).
    pub fn executions_for_key(&self, key: &str) -> usize {
        self.state()
            .transactions
            .iter()
            .filter(|t| t.idempotency_key.as_deref() == Some(key))
            .count()
    }

    /// `POST /v2/payouts/bankwire` and `POST /v2/transfers` received, whatever their outcome.
    pub fn payment_posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }

    // ---- faults and calls ----

    /// The next `count` payments that pass validation are executed (and remembered under
    /// their key), then answered 500.
    pub fn fail_after_executing(&self, count: usize) {
        self.state().fail_after_executing = count;
    }

    pub fn calls(&self, path_prefix: &str) -> usize {
        self.control.calls(path_prefix)
    }

    pub fn call_log(&self) -> Vec<Call> {
        self.control.call_log()
    }

    pub fn reset_calls(&self) {
        self.control.reset_calls();
    }

    /// Every `n`-th request whose path starts with `path_prefix` (counted from now) is
    /// answered `status` with `Retry-After: secs` when given, before routing. `n == 0`
    /// disables.
    pub fn fail_every(
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
    pub fn fail_next(
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

fn push_user(
    state: &mut WpState,
    natural: bool,
    name: &str,
    created: i64,
    tag: Option<String>,
) -> String {
    let id = state.new_id();
    let email = format!(
        "{}@example.com",
        name.to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), ".")
    );
    state.users.push(WpUser {
        id: id.clone(),
        person_type: if natural { "NATURAL" } else { "LEGAL" }.to_owned(),
        name: name.to_owned(),
        email,
        created,
        tag,
    });
    id
}

fn push_bank_account(
    state: &mut WpState,
    user: &str,
    owner_name: &str,
    created: i64,
    active: bool,
) -> String {
    let id = state.new_id();
    let iban = format!(
        "FR76{:010}{:013}",
        state.rng.range(0, 9_999_999_999),
        state.rng.range(0, 9_999_999_999_999)
    );
    state.bank_accounts.push(WpBankAccount {
        id: id.clone(),
        user_id: user.to_owned(),
        owner_name: owner_name.to_owned(),
        iban,
        bic: "WALPFRPPXXX".to_owned(),
        active,
        created,
        tag: None,
    });
    id
}

/// One seeded transaction of `wallet` at `created`.
fn seed_one(state: &mut WpState, wallet: &WpWallet, created: i64) {
    let partner = {
        let others: Vec<String> = state
            .wallets
            .iter()
            .filter(|w| w.id != wallet.id && w.currency == wallet.currency)
            .map(|w| w.id.clone())
            .collect();
        (!others.is_empty()).then(|| state.rng.pick(&others).clone())
    };
    let roll = state.rng.below(20);
    let (kind, nature) = match roll {
        0..=7 => ("PAYIN", "REGULAR"),
        8..=11 => ("PAYOUT", "REGULAR"),
        12..=16 if partner.is_some() => ("TRANSFER", "REGULAR"),
        17 => ("PAYOUT", "REFUND"),
        18 => ("PAYOUT", "REPUDIATION"),
        19 if partner.is_some() => ("TRANSFER", "REFUND"),
        _ => ("PAYIN", "REGULAR"),
    };
    let (debited, credited) = match (kind, nature) {
        ("PAYIN", _) => (None, Some(wallet.id.clone())),
        ("PAYOUT", _) => (Some(wallet.id.clone()), None),
        // A refund of a transfer goes back to this wallet.
        (_, "REFUND") => (partner.clone(), Some(wallet.id.clone())),
        _ => (Some(wallet.id.clone()), partner.clone()),
    };
    let amount = state.random_amount(&wallet.currency);
    let fees = if kind == "PAYIN" && state.rng.chance(1, 2) {
        amount / 100 * state.rng.range(0, 3)
    } else {
        0
    };
    let status = *state.rng.pick(&[
        "SUCCEEDED",
        "SUCCEEDED",
        "SUCCEEDED",
        "SUCCEEDED",
        "SUCCEEDED",
        "SUCCEEDED",
        "CREATED",
        "FAILED",
    ]);
    let tag = (*state.rng.pick(&TAGS)).map(str::to_owned);
    let insufficient = state.rng.chance(1, 2);
    let executed_after = state.rng.range(0, 300);
    let id = state.push_transaction(WpNewTransaction {
        kind: kind.to_owned(),
        nature: nature.to_owned(),
        status: "CREATED".to_owned(),
        debited_wallet: debited,
        credited_wallet: credited,
        currency: wallet.currency.clone(),
        debited_amount: amount,
        fees_amount: fees,
        created: Some(created),
        tag,
    });
    let transaction = state.transactions.iter_mut().find(|t| t.id == id).unwrap();
    match status {
        "FAILED" if insufficient => transaction.set_insufficient(created + executed_after),
        "CREATED" => {}
        _ => transaction.set_result(status, created + executed_after),
    }
}
