//! End-to-end tests of `auth.login` and form-encoded payment bodies: a crate generated from the
//! mapping below (a provider shaped like Currencycloud: a form login returning `auth_token`,
//! sent as `X-Auth-Token`, and payouts posted as forms with bracket nesting), built, started
//! against a loopback mock provider and polled as Formance polls.
//!
//! The mock issues tokens that die quickly and refuses stale ones with 401. What is checked:
//! every list served completely, tokens renewed before they expire when the provider says how
//! long they live, at most one login per refused token however many requests it was refused
//! to (several pollers at once), and the payout body arriving form-encoded and exact.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::formance::{Kind, Poller};
use support::initiate::{created_id, initiate};
use support::mock_http::{MockServer, Request, Response, lock};
use support::sync_check::{NANOS, Truth, Want, base_url, check_received, sync};
use support::{API_KEY, Server, TestCrate};

const LOGIN_ID: &str = "ops@example.com";
const LOGIN_KEY: &str = "k3y&=+/é";
const ACCOUNTS: usize = 23;
const TRANSACTIONS: usize = 61;
/// The mapping's page size at the provider.
const PROVIDER_PAGE: usize = 5;

const MAPPING: &str = r#"version: 1
name: loginpay
upstream:
  base_url: ${env:LOGINPAY_BASE_URL}
  auth:
    login:
      url: /v2/authenticate/api
      body_encoding: form
      body:
        login_id: ${env:LOGINPAY_LOGIN_ID}
        api_key: ${env:LOGINPAY_API_KEY}
      token: auth_token
      expires_in: expires_in
      expires_after: 25m
      header: X-Auth-Token
  retry:
    attempts: 1

operations:
  getAccounts:
    request:
      path: /v2/accounts
    records: accounts
    paging:
      page_number: { param: page, first: 1, total_pages: pagination.total_pages }
    page_size: { param: per_page, value: 5 }
    order: oldest_first
    fields:
      id: id
      accountName: account_name
      createdAt: { path: created_at, time: rfc3339 }

  getTransactions:
    request:
      path: /v2/transactions
    records: transactions
    paging:
      page_number: { param: page, first: 1, total_pages: pagination.total_pages }
    page_size: { param: per_page, value: 5 }
    order: oldest_first
    fields:
      id: id
      createdAt: { path: created_at, time: rfc3339 }
      updatedAt: { path: created_at, time: rfc3339 }
      amount: { path: amount, amount: { currency: currency, format: decimal } }
      currency: { path: currency, currency: true }
      type: { const: PAYIN }
      status: { const: SUCCEEDED }
      destinationAccountID: account_id
      # The payout a transaction settles, for payouts made through this connector.
      relatedTransactionID: { initiation: payment_id }

  createPayout:
    request:
      path: /v2/payments/create
    body_encoding: form
    idempotency_key: { body: unique_request_id }
    body:
      amount: { path: amount, amount: { currency: currency, format: decimal } }
      currency: { path: currency, currency: true }
      beneficiary_id: destinationAccountId
      metadata.source: sourceAccountId
      metadata.note: description
      reason: { const: "Invoice 7 & co = paid" }
      payment_date: { now: true, time: { pattern: "%Y-%m-%d", utc_offset: "+00:00" } }
    fields:
      id: id
      status: { const: PENDING }
      createdAt: { path: created_at, time: rfc3339 }
"#;

/// The crate, generated and built once per test binary.
fn binary() -> &'static std::path::Path {
    static BUILT: OnceLock<std::path::PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let krate = TestCrate::empty("login-e2e", "loginpay");
        krate.write("connector.yaml", MAPPING);
        krate.generate(None, &[]).assert_code(0);
        krate.build()
    })
}

// =============================================================================================
// The mock provider
// =============================================================================================

type Form = Vec<(String, String)>;

struct Issued {
    token: String,
    at: Instant,
}

/// A Currencycloud-shaped provider. Each token lives `lifetime` from its login; the login's
/// answer says it lives `advertised` seconds (which may be a lie).
struct Provider {
    lifetime: Duration,
    advertised: u64,
    issued: Mutex<Vec<Issued>>,
    /// Tokens refused with 401, each once however often it was refused.
    refused: Mutex<BTreeSet<String>>,
    refusals: AtomicUsize,
    /// Each payout's raw body and its decoded pairs.
    payouts: Mutex<Vec<(String, Form)>>,
    bad_logins: AtomicUsize,
    revoke: AtomicBool,
    list_calls: AtomicU64,
    /// The transactions of executed payouts, after the fixed ones.
    settled: Mutex<Vec<Value>>,
}

impl Provider {
    fn start(lifetime: Duration, advertised: u64) -> (Arc<Provider>, MockServer) {
        let provider = Arc::new(Provider {
            lifetime,
            advertised,
            issued: Mutex::new(Vec::new()),
            refused: Mutex::new(BTreeSet::new()),
            refusals: AtomicUsize::new(0),
            payouts: Mutex::new(Vec::new()),
            bad_logins: AtomicUsize::new(0),
            revoke: AtomicBool::new(false),
            list_calls: AtomicU64::new(0),
            settled: Mutex::new(Vec::new()),
        });
        let handler = Arc::clone(&provider);
        let server = MockServer::from_fn(move |request| handler.answer(request));
        (provider, server)
    }

    fn logins(&self) -> usize {
        lock(&self.issued).len()
    }

    fn answer(&self, request: &Request) -> Response {
        if request.path == "/v2/authenticate/api" {
            return self.login(request);
        }
        // A valid token is one the provider issued that has not died yet.
        let sent = request
            .header("x-auth-token")
            .unwrap_or_default()
            .to_owned();
        let alive = !self.revoke.load(Ordering::SeqCst)
            && lock(&self.issued)
                .iter()
                .any(|issued| issued.token == sent && issued.at.elapsed() < self.lifetime);
        if !alive {
            self.refusals.fetch_add(1, Ordering::SeqCst);
            lock(&self.refused).insert(sent);
            // A slow refusal: the other pollers' requests are sent with the same stale token
            // meanwhile, and refused too.
            std::thread::sleep(Duration::from_millis(150));
            return Response::json(401, &json!({"error_code": "auth_failed"}));
        }
        // A little latency, so that syncs span several token lifetimes.
        std::thread::sleep(Duration::from_millis(15));
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/v2/accounts") => {
                self.list_calls.fetch_add(1, Ordering::SeqCst);
                page(request, "accounts", &accounts())
            }
            ("GET", "/v2/transactions") => {
                self.list_calls.fetch_add(1, Ordering::SeqCst);
                let mut all = transactions();
                all.extend(lock(&self.settled).iter().cloned());
                page(request, "transactions", &all)
            }
            ("POST", "/v2/payments/create") => {
                let content_type = request.header("content-type").unwrap_or_default();
                if content_type != "application/x-www-form-urlencoded" {
                    return Response::json(415, &json!({"error": content_type}));
                }
                let Some(form) = request.form() else {
                    return Response::json(400, &json!({"error": "not a form"}));
                };
                let mut payouts = lock(&self.payouts);
                let id = format!("pay_{}", payouts.len() + 1);
                let field = |name: &str| {
                    form.iter()
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| value.clone())
                        .unwrap_or_default()
                };
                // Executed at once: its transaction is listed from now on.
                lock(&self.settled).push(json!({
                    "id": format!("tx-{id}"),
                    "created_at": "2025-03-01T10:00:00Z",
                    "amount": field("amount"),
                    "currency": field("currency"),
                    "account_id": field("beneficiary_id"),
                    "payment_id": id,
                }));
                payouts.push((request.body_text(), form));
                Response::json(
                    200,
                    &json!({"id": id, "status": "ready_to_send", "created_at": "2025-03-01T10:00:00Z"}),
                )
            }
            _ => Response::json(404, &json!({"error": "no such path"})),
        }
    }

    fn login(&self, request: &Request) -> Response {
        let form: BTreeMap<String, String> =
            request.form().unwrap_or_default().into_iter().collect();
        let expected: BTreeMap<String, String> = [
            ("login_id".to_owned(), LOGIN_ID.to_owned()),
            ("api_key".to_owned(), LOGIN_KEY.to_owned()),
        ]
        .into();
        if request.method != "POST"
            || request.header("content-type") != Some("application/x-www-form-urlencoded")
            || form != expected
        {
            self.bad_logins.fetch_add(1, Ordering::SeqCst);
            return Response::json(401, &json!({"error_code": "invalid_supplied_credentials"}));
        }
        let mut issued = lock(&self.issued);
        let token = format!("tok{}", issued.len());
        issued.push(Issued {
            token: token.clone(),
            at: Instant::now(),
        });
        self.revoke.store(false, Ordering::SeqCst);
        Response::json(
            200,
            &json!({"auth_token": token, "expires_in": self.advertised}),
        )
    }
}

fn accounts() -> Vec<Value> {
    (0..ACCOUNTS)
        .map(|i| {
            json!({
                "id": format!("acc-{i:03}"),
                "account_name": format!("Account {i}"),
                "created_at": format!("2025-01-{:02}T08:00:00Z", 1 + i % 28),
            })
        })
        .collect()
}

fn transactions() -> Vec<Value> {
    (0..TRANSACTIONS)
        .map(|i| {
            json!({
                "id": format!("tx-{i:03}"),
                "created_at": format!("2025-02-{:02}T{:02}:{:02}:00Z", 1 + i / 24, i % 24, i % 60),
                "amount": format!("{}.{:02}", 10 + i, i % 100),
                "currency": "EUR",
                "account_id": format!("acc-{:03}", i % ACCOUNTS),
            })
        })
        .collect()
}

/// `page` (from 1) of `per_page` records, with the page count.
fn page(request: &Request, key: &str, records: &[Value]) -> Response {
    let number: usize = request
        .query_param("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let size: usize = request
        .query_param("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(10);
    let total_pages = records.len().div_ceil(size);
    let items: Vec<Value> = records
        .iter()
        .skip((number.max(1) - 1) * size)
        .take(size)
        .cloned()
        .collect();
    Response::json(
        200,
        &json!({key: items, "pagination": {"total_pages": total_pages, "current_page": number}}),
    )
}

fn start(provider: &MockServer) -> Server {
    let env = [
        ("LOGINPAY_BASE_URL", provider.url()),
        ("LOGINPAY_LOGIN_ID", LOGIN_ID.to_owned()),
        ("LOGINPAY_API_KEY", LOGIN_KEY.to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    Server::start(binary(), &env)
}

/// Syncs `kind` to its end and checks that every provider record was served once.
fn sync_all_of(server: &Server, kind: Kind, context: &str) {
    let mut poller = Poller::new(&base_url(server), API_KEY, 4);
    sync(&mut poller, kind, context);
    let got: BTreeSet<String> = poller.records(kind).keys().cloned().collect();
    let want: BTreeSet<String> = match kind {
        Kind::Accounts => (0..ACCOUNTS).map(|i| format!("acc-{i:03}")).collect(),
        _ => (0..TRANSACTIONS).map(|i| format!("tx-{i:03}")).collect(),
    };
    assert_eq!(got, want, "{context}: {kind:?} served completely");
    for (id, record) in poller.records(kind) {
        let (field, expected) = match kind {
            Kind::Accounts => {
                let i: usize = id[4..].parse().unwrap();
                ("accountName", json!(format!("Account {i}")))
            }
            _ => {
                let i: usize = id[3..].parse().unwrap();
                ("amount", json!(format!("{}{:02}", 10 + i, i % 100)))
            }
        };
        assert_eq!(
            record.json[field], expected,
            "{context}: {id}: {}",
            record.json
        );
    }
}

// =============================================================================================
// The tests
// =============================================================================================

/// Tokens live two seconds and the login says so: the connector renews them at half their
/// life, before the provider would refuse them, and never sees a 401.
#[test]
fn tokens_are_renewed_before_they_expire() {
    let (provider, mock) = Provider::start(Duration::from_secs(2), 2);
    let server = start(&mock);
    let started = Instant::now();
    for round in 0..3 {
        sync_all_of(&server, Kind::Accounts, &format!("round {round}"));
        sync_all_of(&server, Kind::Transactions, &format!("round {round}"));
    }
    let elapsed = started.elapsed();
    let logins = provider.logins();
    assert_eq!(provider.bad_logins.load(Ordering::SeqCst), 0);
    assert_eq!(
        provider.refusals.load(Ordering::SeqCst),
        0,
        "a token renewed in time is never refused"
    );
    // One login, then one per second of sync at most (renewal at half of two seconds).
    let bound = 1 + elapsed.as_secs_f64().ceil() as usize;
    eprintln!("{logins} logins in {elapsed:?}, no refusal");
    assert!(
        logins >= 2 && logins <= bound,
        "{logins} logins in {elapsed:?} (at most {bound})"
    );
    // Every list request was answered: pages of five, one sync per round and kind.
    let pages = (ACCOUNTS.div_ceil(PROVIDER_PAGE) + TRANSACTIONS.div_ceil(PROVIDER_PAGE)) as u64;
    assert!(provider.list_calls.load(Ordering::SeqCst) >= 3 * pages);
}

/// The provider says tokens live an hour but drops them after 300 ms, and several pollers
/// sync at once: every refused token causes one login, never one per refused request, and
/// the lists are still served completely.
#[test]
fn stale_tokens_cause_one_login_per_refusal_under_concurrency() {
    let (provider, mock) = Provider::start(Duration::from_millis(300), 3600);
    let server = Arc::new(start(&mock));
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let server = Arc::clone(&server);
            std::thread::spawn(move || {
                let kind = if n % 2 == 0 {
                    Kind::Accounts
                } else {
                    Kind::Transactions
                };
                for round in 0..2 {
                    sync_all_of(&server, kind, &format!("poller {n}, round {round}"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a poller");
    }
    let logins = provider.logins();
    let refused = lock(&provider.refused).len();
    let refusals = provider.refusals.load(Ordering::SeqCst);
    eprintln!("{logins} logins, {refused} tokens refused, {refusals} refused requests");
    assert!(refused >= 2, "the tokens did go stale: {refused} refused");
    assert!(
        logins <= 1 + refused,
        "{logins} logins for {refused} refused tokens ({refusals} refusals): a login storm"
    );
    assert!(
        refusals > refused,
        "several requests were refused the same token ({refusals} refusals of {refused} tokens), so the bound above means something"
    );
}

/// A payout is posted as a form with bracket nesting, its key in `unique_request_id`; a token
/// revoked just before is renewed once and the payout still arrives, once.
#[test]
fn payouts_arrive_form_encoded_after_a_refused_token() {
    let (provider, mock) = Provider::start(Duration::from_secs(3600), 3600);
    let server = start(&mock);
    sync_all_of(&server, Kind::Accounts, "before the payout");
    assert_eq!(provider.logins(), 1);
    provider.revoke.store(true, Ordering::SeqCst);
    let key = "payout-key-0001";
    let body = json!({
        "idempotencyKey": key,
        "amount": "12345",
        "currency": "EUR/2",
        "sourceAccountId": "acc-001",
        "destinationAccountId": "ben/42 & co",
        "description": "rent: march",
    });
    let (status, paid) = initiate(&server, "/payouts", &body);
    assert_eq!(created_id(status, &paid), "pay_1");
    assert_eq!(provider.logins(), 2, "one login for the refused token");
    assert_eq!(provider.refusals.load(Ordering::SeqCst), 1);
    let payouts = lock(&provider.payouts);
    assert_eq!(payouts.len(), 1, "one payout");
    let (raw, form) = &payouts[0];
    let mut form: BTreeMap<&str, &str> =
        form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // `now` as a date alone, in UTC (the day may turn between the two readings).
    let date = form.remove("payment_date").expect("a payment date");
    let today = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d").to_string();
    let now = chrono::Utc::now();
    assert!(
        date == today(now) || date == today(now - chrono::Duration::seconds(60)),
        "payment_date {date}"
    );
    assert_eq!(
        form,
        BTreeMap::from([
            ("amount", "123.45"),
            ("beneficiary_id", "ben/42 & co"),
            ("currency", "EUR"),
            ("metadata[note]", "rent: march"),
            ("metadata[source]", "acc-001"),
            ("reason", "Invoice 7 & co = paid"),
            ("unique_request_id", key),
        ]),
        "{raw}"
    );
    assert!(
        raw.contains("metadata%5Bsource%5D=acc-001")
            && raw.contains("reason=Invoice+7+%26+co+%3D+paid"),
        "percent-encoded: {raw}"
    );
}

/// What Formance must receive of the provider's records: every value, every time.
fn truth(provider: &Provider, kind: Kind, payout_keys: &BTreeMap<String, String>) -> Truth {
    let second = |text: &str| {
        i128::from(
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp(),
        ) * NANOS
    };
    match kind {
        Kind::Accounts => accounts()
            .into_iter()
            .map(|a| {
                let id = a["id"].as_str().unwrap().to_owned();
                let json = json!({"id": id, "accountName": a["account_name"]});
                let times = vec![("createdAt", second(a["created_at"].as_str().unwrap()))];
                (id, Want { json, times })
            })
            .collect(),
        _ => {
            let mut all = transactions();
            all.extend(lock(&provider.settled).iter().cloned());
            all.into_iter()
                .map(|t| {
                    let id = t["id"].as_str().unwrap().to_owned();
                    let minor = t["amount"].as_str().unwrap().replace('.', "");
                    let mut json = json!({
                        "id": id,
                        "amount": minor.trim_start_matches('0'),
                        "currency": "EUR/2",
                        "type": "PAYIN",
                        "status": "SUCCEEDED",
                        "destinationAccountID": t["account_id"],
                    });
                    if let Some(key) = t["payment_id"].as_str().and_then(|p| payout_keys.get(p)) {
                        json["relatedTransactionID"] = json!(key);
                        json["type"] = json!("PAYOUT");
                    }
                    let at = second(t["created_at"].as_str().unwrap());
                    (
                        id,
                        Want {
                            json,
                            times: vec![("createdAt", at), ("updatedAt", at)],
                        },
                    )
                })
                .collect()
        }
    }
}

/// Full syncs at Formance's page sizes while tokens die every 700 ms, checked value by value
/// against the provider; then a payout, replayed, is executed once, and its transaction is
/// linked to Formance's key.
#[test]
fn full_syncs_match_the_provider_and_payouts_execute_once_and_link() {
    let (provider, mock) = Provider::start(Duration::from_millis(700), 3600);
    let server = start(&mock);
    let no_payouts = BTreeMap::new();
    for page_size in [100, 7] {
        let context = format!("loginpay, page size {page_size}");
        let mut poller = Poller::new(&base_url(&server), API_KEY, page_size);
        for kind in [Kind::Accounts, Kind::Transactions] {
            sync(&mut poller, kind, &context);
            check_received(
                &poller,
                kind,
                &truth(&provider, kind, &no_payouts),
                &context,
            );
        }
    }
    let key = "formance-payout-0001";
    let body = json!({
        "idempotencyKey": key,
        "amount": "2500",
        "currency": "EUR/2",
        "sourceAccountId": "acc-003",
        "destinationAccountId": "acc-007",
        "description": "supplier",
    });
    let (status, first) = initiate(&server, "/payouts", &body);
    let id = created_id(status, &first);
    let (status, replay) = initiate(&server, "/payouts", &body);
    assert_eq!(
        created_id(status, &replay),
        id,
        "the replay answers the same payout"
    );
    assert_eq!(lock(&provider.payouts).len(), 1, "executed once");
    let payout_keys = BTreeMap::from([(id.clone(), key.to_owned())]);
    let mut poller = Poller::new(&base_url(&server), API_KEY, 7);
    sync(&mut poller, Kind::Transactions, "after the payout");
    check_received(
        &poller,
        Kind::Transactions,
        &truth(&provider, Kind::Transactions, &payout_keys),
        "after the payout",
    );
    let linked = &poller.records(Kind::Transactions)[&format!("tx-{id}")].json;
    assert_eq!(linked["relatedTransactionID"], key, "{linked}");
    let refused = lock(&provider.refused).len();
    eprintln!(
        "{} logins, {refused} tokens refused over the syncs",
        provider.logins()
    );
    assert!(
        provider.logins() <= 1 + refused,
        "one login per refused token"
    );
}
