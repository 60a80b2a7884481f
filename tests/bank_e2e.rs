//! End-to-end tests of the bank-shaped example: `nordbank` is generated from its
//! `generated-examples/nordbank/connector.yaml`, built, started against the Nordbank mock of
//! `tests/support/mock_bank.rs` and polled exactly as Formance polls.
//!
//! Nordbank lists transactions per account only, inside mandatory windows of at most 31 days,
//! writes amounts as JSON numbers with a separate credit flag, times as Oslo wall-clock text
//! without an offset, and pays without idempotency keys. What is checked is the mock's ground
//! truth: every record once, converted as the mapping says (an ambiguous autumn time read as
//! its earlier instant, the rule the mapping's zone documents), the upstream calls bounded by
//! the accounts, their windows and the records, and every payment executed once.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use support::formance::{Kind, Poller, format_rfc3339_nanos};
use support::initiate::{created_id, initiate, post_once};
use support::mock_bank::{
    Fold, NbCounterparty, NbNewTransaction, NbTransaction, Nordbank, oslo_is_ambiguous,
    oslo_resolve,
};
use support::mock_cursor::currency_exponent;
use support::mock_http::Call;
use support::sync_check::{
    EnumRule, Example, NANOS, Truth, Want, base_url, check_metrics, check_never_plain_4xx,
    check_received, check_served_order, count_calls, example, only, operation_of, sync,
    unix_now_nanos, variant,
};
use support::{API_KEY, Server, fresh_store_path};

const CLIENT_ID: &str = "nb-client-e2e";
const CLIENT_SECRET: &str = "nb-secret-e2e";
/// The mapping's page size at the bank.
const PROVIDER_PAGE: usize = 200;
/// The mapping's window cap and where its walk starts (2025-01-01T00:00:00Z).
const WINDOW_SECS: i128 = 31 * 86_400;
const WALK_START_SECS: i128 = 1_735_689_600;
/// Calls per account beyond one per window and provider page: a window split where a walk
/// ends, and a full last page that takes one more request to tell it is the last.
const SLACK_PER_ACCOUNT: usize = 2;

/// The example as it is: transactions walked oldest first.
fn nordbank() -> &'static Example {
    example("nordbank")
}

/// The example with `order: newest_first` on transactions, as Modulr serves them.
fn nordbank_newest_first() -> &'static Example {
    variant("nordnewest", "nordbank", |mapping| {
        let transactions = mapping.find("  getTransactions:").expect("getTransactions");
        let (before, after) = mapping.split_at(transactions);
        let after = after.replacen("order: oldest_first", "order: newest_first", 1);
        format!("{before}{after}").replacen("name: nordbank", "name: nordnewest", 1)
    })
}

fn start(nb: &Nordbank) -> Server {
    start_with(nb, nordbank(), &[])
}

fn start_with(nb: &Nordbank, example: &Example, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("NORDBANK_BASE_URL".to_owned(), nb.url()),
        ("NORDBANK_TOKEN_URL".to_owned(), nb.token_url()),
        ("NORDBANK_CLIENT_ID".to_owned(), CLIENT_ID.to_owned()),
        (
            "NORDBANK_CLIENT_SECRET".to_owned(),
            CLIENT_SECRET.to_owned(),
        ),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Server::start(&example.binary, &env)
}

fn nb_operation(path: &str) -> &'static str {
    match path {
        "/oauth2/token" => "token",
        "/api/accounts" => "getAccounts",
        "/api/beneficiaries" => "getBeneficiaries",
        "/api/payments" => "payments",
        p if p.starts_with("/api/accounts/") && p.ends_with("/transactions") => "getTransactions",
        p if p.starts_with("/api/accounts/") => "getAccountBalances",
        _ => "unknown",
    }
}

/// How many windows of at most 31 days a walk from `from` (unix nanoseconds) to now takes.
fn windows_from(from: i128) -> usize {
    let seconds = (unix_now_nanos() - from).max(0) / NANOS;
    (seconds as u128).div_ceil(WINDOW_SECS as u128) as usize
}

// =============================================================================================
// Ground truth
// =============================================================================================

/// The instant the mapping's zoned time rule gives an Oslo wall-clock text: the one instant
/// it names, the earlier one in the autumn overlap, the winter reading in the spring gap.
fn oslo_nanos(text: &str) -> i128 {
    let millis = oslo_resolve(text, Fold::Earlier).unwrap_or_else(|| panic!("time {text}"));
    i128::from(millis) * 1_000_000
}

fn umn(currency: &str) -> String {
    format!("{currency}/{}", currency_exponent(currency))
}

fn account_truth(nb: &Nordbank) -> Truth {
    nb.accounts()
        .into_iter()
        .map(|a| {
            let text = a.to_json()["createdDate"].as_str().unwrap().to_owned();
            let json = json!({
                "id": a.id,
                "accountName": a.name,
                "metadata": {"currency": a.currency, "status": "ACTIVE"},
            });
            let times = vec![("createdAt", oslo_nanos(&text))];
            (a.id, Want { json, times })
        })
        .collect()
}

fn beneficiary_truth(nb: &Nordbank) -> Truth {
    nb.beneficiaries()
        .into_iter()
        .map(|b| {
            let text = b.to_json()["createdDate"].as_str().unwrap().to_owned();
            let json = json!({
                "id": b.id,
                "ownerName": b.name,
                "metadata": {"iban": b.iban},
            });
            let times = vec![("createdAt", oslo_nanos(&text))];
            (b.id, Want { json, times })
        })
        .collect()
}

/// One transaction as the mapping converts it; `links` maps a payment's reference to the
/// idempotency key that made it.
fn transaction_want(
    t: &NbTransaction,
    types: &EnumRule,
    statuses: &EnumRule,
    links: &BTreeMap<String, String>,
) -> Want {
    let served = t.to_json();
    let mut metadata = Map::new();
    metadata.insert("description".to_owned(), json!(t.description));
    match &t.counterparty {
        NbCounterparty::Name(name) => {
            metadata.insert("counterpartyName".to_owned(), json!(name));
        }
        NbCounterparty::Empty => {
            metadata.insert("counterpartyName".to_owned(), json!(""));
        }
        NbCounterparty::Null | NbCounterparty::Absent => {}
    }
    let mut json = json!({
        "id": t.id,
        "amount": t.amount_minor.to_string(),
        "currency": umn(&t.currency),
        "type": types.apply(&t.kind),
        "status": statuses.apply(&t.status),
        "metadata": metadata,
    });
    let (source, destination) = if t.credit {
        (
            t.counterparty_account_id.clone(),
            Some(t.account_id.clone()),
        )
    } else {
        (
            Some(t.account_id.clone()),
            t.counterparty_account_id.clone(),
        )
    };
    if let Some(source) = source {
        json["sourceAccountID"] = json!(source);
    }
    if let Some(destination) = destination {
        json["destinationAccountID"] = json!(destination);
    }
    if let Some(key) = links.get(&t.reference) {
        json["relatedTransactionID"] = json!(key);
    }
    let time = |field: &str| oslo_nanos(served[field].as_str().unwrap());
    let times = vec![
        ("createdAt", time("transactionDate")),
        ("updatedAt", time("lastUpdated")),
    ];
    Want { json, times }
}

fn transaction_truth(nb: &Nordbank, links: &BTreeMap<String, String>) -> Truth {
    let ex = nordbank();
    let (types, statuses) = (EnumRule::of(ex, "type"), EnumRule::of(ex, "status"));
    nb.transactions()
        .into_iter()
        // Card authorisations are holds: the mapping's filter leaves them out.
        .filter(|t| t.kind != "CARD_AUTH")
        .map(|t| (t.id.clone(), transaction_want(&t, &types, &statuses, links)))
        .collect()
}

fn truth(nb: &Nordbank, links: &BTreeMap<String, String>) -> BTreeMap<Kind, Truth> {
    BTreeMap::from([
        (Kind::Accounts, account_truth(nb)),
        (Kind::Beneficiaries, beneficiary_truth(nb)),
        (Kind::Transactions, transaction_truth(nb, links)),
    ])
}

/// Accounts in several currencies, beneficiaries, transactions in bursts of millisecond ties,
/// card holds, internal transfers, and (from 8 per account) on every account records on both
/// sides of the spring gap and in both occurrences of the autumn overlap hour.
fn seed(nb: &Nordbank, accounts: usize, beneficiaries: usize, per_account: usize) {
    nb.seed_accounts(accounts);
    nb.seed_beneficiaries(beneficiaries);
    nb.seed_transactions(per_account);
    let all = nb.transactions();
    if per_account >= 8 {
        assert!(all.iter().any(|t| oslo_is_ambiguous(t.updated_ms)));
    }
}

// =============================================================================================
// Checks
// =============================================================================================

/// The balance of every account: the bank's `balance` in minor units, at the time of the
/// answer.
#[track_caller]
fn check_balances(poller: &mut Poller, nb: &Nordbank, context: &str) -> usize {
    let accounts = nb.accounts();
    for account in &accounts {
        let before = unix_now_nanos();
        let got = poller
            .balances(&account.id)
            .unwrap_or_else(|e| panic!("{context}: balances of {}: {e}", account.id));
        let after = unix_now_nanos();
        assert_eq!(got.account_id, account.id, "{context}");
        assert_eq!(got.id, format!("{}-balance", account.id), "{context}");
        assert!(
            got.at >= before.div_euclid(NANOS) * NANOS && got.at <= after,
            "{context}: at {} is not the time of the answer",
            format_rfc3339_nanos(got.at)
        );
        let want = vec![(account.balance_minor.to_string(), umn(&account.currency))];
        assert_eq!(got.balances, want, "{context}: balances of {}", account.id);
    }
    accounts.len()
}

/// The most calls a full sync of `kind` may make. For the global lists, one per provider
/// page. For transactions, per account: one per window and provider page from the mapping's
/// start to now, then, when the sync's last page comes out short, a look again at every
/// window from Formance's state (the newest record) to now, for what arrived meanwhile.
fn call_bound(kind: Kind, truth: &Truth, accounts: usize) -> usize {
    let pages = truth.len().div_ceil(PROVIDER_PAGE);
    match kind {
        Kind::Transactions => {
            let newest = truth
                .values()
                .flat_map(|want| want.times.iter().map(|(_, time)| *time))
                .max()
                .unwrap_or(WALK_START_SECS * NANOS);
            let per_account =
                windows_from(WALK_START_SECS * NANOS) + windows_from(newest) + SLACK_PER_ACCOUNT;
            accounts * per_account + pages
        }
        _ => pages + 2,
    }
}

/// A full sync of every kind and every balance with a fresh connector at `page_size`,
/// checked against the ground truth, the call bounds and /metrics.
fn full_sync(nb: &Nordbank, example: &Example, page_size: usize, check_order: bool) {
    let truth = truth(nb, &BTreeMap::new());
    let accounts = truth[&Kind::Accounts].len();
    let server = start_with(nb, example, &[]);
    let mut poller = Poller::new(&base_url(&server), API_KEY, page_size);
    let context = format!("nordbank, page size {page_size}");
    let mut calls: Vec<Call> = Vec::new();
    nb.reset_calls();
    for kind in Kind::ALL {
        let requests = poller.requests();
        let cycles = sync(&mut poller, kind, &context);
        let made = nb.call_log();
        nb.reset_calls();
        let records = truth[&kind].len();
        let upstream = count_calls(&made, nb_operation, operation_of(kind));
        let parents = count_calls(&made, nb_operation, "getAccounts");
        let bound = call_bound(kind, &truth[&kind], accounts);
        eprintln!(
            "{context}: {kind:?}: {records} records, {cycles} cycles, {} connector requests, \
             {upstream} upstream calls (bound {bound}), {} token requests",
            poller.requests() - requests,
            count_calls(&made, nb_operation, "token"),
        );
        assert!(
            upstream <= bound,
            "{context}: {kind:?}: {upstream} upstream calls for {records} records (bound {bound})"
        );
        if kind == Kind::Transactions {
            // The fan-out reads the accounts when the walk starts, and again for the look
            // again at its end (an account opened meanwhile has new records too).
            assert!(
                parents <= 2 * accounts.div_ceil(PROVIDER_PAGE),
                "{context}: {parents} account list calls for the fan-out"
            );
        }
        calls.extend(made);
    }
    for kind in Kind::ALL {
        check_received(&poller, kind, &truth[&kind], &context);
    }
    let balances = check_balances(&mut poller, nb, &context);
    let made = nb.call_log();
    nb.reset_calls();
    assert_eq!(
        count_calls(&made, nb_operation, "getAccountBalances"),
        balances,
        "one upstream call per balance"
    );
    calls.extend(made);
    check_never_plain_4xx(&poller);
    check_metrics(&server, &calls, nb_operation);
    if check_order {
        for kind in Kind::ALL {
            check_served_order(&server, kind, &truth[&kind], 100);
        }
    }
}

// =============================================================================================
// Listing
// =============================================================================================

#[test]
fn nordbank_full_sync_at_page_sizes_100_and_7_loses_nothing_across_accounts_and_windows() {
    let nb = Nordbank::start(21, CLIENT_ID, CLIENT_SECRET);
    seed(&nb, 9, 40, 60);
    for page_size in [100, 7] {
        full_sync(&nb, nordbank(), page_size, page_size == 100);
    }
}

#[test]
fn nordbank_serving_newest_first_at_page_sizes_100_and_7_loses_nothing() {
    let nb = Nordbank::start(27, CLIENT_ID, CLIENT_SECRET);
    nb.set_newest_first(true);
    seed(&nb, 5, 10, 70);
    for page_size in [100, 7] {
        full_sync(&nb, nordbank_newest_first(), page_size, page_size == 100);
    }
}

#[test]
fn nordbank_full_sync_at_page_size_1() {
    let nb = Nordbank::start(22, CLIENT_ID, CLIENT_SECRET);
    seed(&nb, 3, 6, 14);
    full_sync(&nb, nordbank(), 1, false);
}

#[test]
fn nordbank_delivers_exactly_what_arrived_or_changed_between_polls() {
    let nb = Nordbank::start(23, CLIENT_ID, CLIENT_SECRET);
    seed(&nb, 5, 8, 30);
    let server = start(&nb);
    let mut poller = Poller::new(&base_url(&server), API_KEY, 7);
    let first = truth(&nb, &BTreeMap::new());
    for kind in Kind::ALL {
        sync(&mut poller, kind, "first sync");
        check_received(&poller, kind, &first[&kind], "first sync");
        poller.clear_records(kind);
    }

    // An hour later: a new account with its first records, new records on old accounts,
    // pending ones booked (their lastUpdated moves to now), a new beneficiary, and a card hold
    // that the filter keeps out.
    nb.advance_millis(3_600_000);
    let pending: Vec<String> = nb
        .transactions()
        .into_iter()
        .filter(|t| t.status == "PENDING")
        .take(4)
        .map(|t| t.id)
        .collect();
    assert!(!pending.is_empty(), "the seed has pending transactions");
    for id in &pending {
        assert!(nb.update_transaction(id, "PROCESSED", None));
    }
    let fresh_account = nb.add_account("Savings", "EUR", None);
    let old_account = nb.accounts()[0].id.clone();
    let mut arrived = BTreeSet::new();
    for (account, credit) in [
        (&fresh_account, true),
        (&old_account, false),
        (&old_account, true),
    ] {
        arrived.insert(nb.add_transaction(NbNewTransaction {
            account_id: account.clone(),
            kind: if credit { "PI_SECT" } else { "PO_SECT" }.to_owned(),
            credit,
            amount_minor: 123_456,
            ..NbNewTransaction::default()
        }));
    }
    nb.add_transaction(NbNewTransaction {
        account_id: old_account.clone(),
        kind: "CARD_AUTH".to_owned(),
        status: "HELD".to_owned(),
        credit: false,
        ..NbNewTransaction::default()
    });
    let beneficiary = nb.add_beneficiary("Ola Nordmann", None);

    let second = truth(&nb, &BTreeMap::new());
    let changed: BTreeSet<String> = arrived.iter().chain(&pending).cloned().collect();
    let want = BTreeMap::from([
        (
            Kind::Accounts,
            only(&second[&Kind::Accounts], &BTreeSet::from([fresh_account])),
        ),
        (
            Kind::Beneficiaries,
            only(
                &second[&Kind::Beneficiaries],
                &BTreeSet::from([beneficiary]),
            ),
        ),
        (
            Kind::Transactions,
            only(&second[&Kind::Transactions], &changed),
        ),
    ]);
    nb.reset_calls();
    for kind in Kind::ALL {
        sync(&mut poller, kind, "second sync");
        check_received(&poller, kind, &want[&kind], "second sync");
    }
    // The second walk starts from Formance's state, the newest record's time: a few windows
    // per account, not the whole history again.
    let made = nb.call_log();
    let walked = count_calls(&made, nb_operation, "getTransactions");
    let accounts = second[&Kind::Accounts].len();
    let newest = first[&Kind::Transactions]
        .values()
        .flat_map(|w| w.times.iter().map(|(_, t)| *t))
        .max()
        .unwrap();
    let windows = windows_from(newest);
    let bound = accounts * (2 * windows + SLACK_PER_ACCOUNT);
    eprintln!("second sync: {walked} transaction calls (bound {bound}, {windows} windows)");
    assert!(
        walked <= bound,
        "{walked} transaction calls (bound {bound})"
    );
    check_never_plain_4xx(&poller);
}

#[test]
fn nordbank_tokens_that_expire_mid_sync_are_fetched_again_without_a_failed_answer() {
    let nb = Nordbank::start(24, CLIENT_ID, CLIENT_SECRET);
    seed(&nb, 4, 10, 20);
    let truth = truth(&nb, &BTreeMap::new());
    let server = start(&nb);
    let mut poller = Poller::new(&base_url(&server), API_KEY, 7);
    for kind in Kind::ALL {
        poller
            .sync_with(kind, |_| nb.expire_tokens())
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        check_received(&poller, kind, &truth[&kind], "tokens expiring");
    }
    check_never_plain_4xx(&poller);
    let refused = nb.call_log().iter().filter(|c| c.status == 401).count();
    assert!(
        refused > 0 && nb.tokens_issued() > 3,
        "the tokens did expire: {refused} refusals, {} tokens",
        nb.tokens_issued()
    );
    // One new token per refusal at most: an expired token is replaced, not retried.
    assert!(
        nb.token_requests() <= refused + 1,
        "{} token requests for {refused} refusals",
        nb.token_requests()
    );
}

// =============================================================================================
// Payments
// =============================================================================================

fn payout(key: &str, minor: &str, currency: &str, source: &str, beneficiary: &str) -> Value {
    json!({
        "idempotencyKey": key,
        "amount": minor,
        "currency": currency,
        "sourceAccountId": source,
        "destinationAccountId": beneficiary,
        "description": "invoice",
    })
}

/// The bank's payment behind a connector's answer, and its reference.
fn payment_reference(nb: &Nordbank, payment_id: &str) -> String {
    nb.payments()
        .into_iter()
        .find(|p| p.id == payment_id)
        .unwrap_or_else(|| panic!("the bank has no payment {payment_id}"))
        .reference
}

#[test]
fn nordbank_payments_execute_once_and_every_leg_links_to_its_key() {
    let nb = Nordbank::start(25, CLIENT_ID, CLIENT_SECRET);
    seed(&nb, 4, 3, 8);
    let accounts = nb.accounts();
    let source = &accounts[0];
    let partner = accounts[1..]
        .iter()
        .find(|a| a.currency == source.currency)
        .map(|a| a.id.clone())
        .unwrap_or_else(|| nb.add_account("Partner", &source.currency, None));
    let beneficiary = nb.beneficiaries()[0].id.clone();
    let currency = umn(&source.currency);
    let exponent = currency_exponent(&source.currency);
    let server = start(&nb);

    // Formance's keys are longer than the bank's 18-character references.
    let payout_key = "pi_01J9Z6Q4Y8M2T7R3K5W1X0B6CD:payout";
    let (status, paid) = initiate(
        &server,
        "/payouts",
        &payout(payout_key, "12345", &currency, &source.id, &beneficiary),
    );
    let payout_id = created_id(status, &paid);
    assert_eq!(paid["idempotencyKey"], payout_key, "{paid}");
    assert_eq!(paid["amount"], "12345", "{paid}");
    assert_eq!(paid["status"], "PENDING", "{paid}");
    let payout_reference = payment_reference(&nb, &payout_id);
    assert!(
        (6..=18).contains(&payout_reference.len())
            && payout_reference.chars().all(|c| c.is_ascii_alphanumeric()),
        "reference {payout_reference:?}"
    );
    let sent = nb
        .payments()
        .into_iter()
        .find(|p| p.id == payout_id)
        .unwrap();
    assert_eq!(sent.amount_minor, 12345);
    assert_eq!(sent.destination_type, "BENEFICIARY");
    assert_eq!(
        sent.amount_text(),
        support::mock_bank::nb_number_text(12345, exponent)
    );

    // The same key again: the stored answer, no second execution.
    let (status, again) = initiate(
        &server,
        "/payouts",
        &payout(payout_key, "12345", &currency, &source.id, &beneficiary),
    );
    assert_eq!(created_id(status, &again), payout_id);

    // The bank executes the next payment and then answers 500: Formance's retry finds it by
    // its reference instead of paying twice.
    nb.fail_after_executing(1);
    let transfer_key = "pi_01J9Z6Q4Y8M2T7R3K5W1X0B6CD:transfer";
    let body = json!({
        "idempotencyKey": transfer_key,
        "amount": "500",
        "currency": currency,
        "sourceAccountId": source.id,
        "destinationAccountId": partner,
    });
    let (status, moved) = initiate(&server, "/transfers", &body);
    let transfer_id = created_id(status, &moved);
    let transfer_reference = payment_reference(&nb, &transfer_id);
    assert_ne!(transfer_reference, payout_reference);
    assert_eq!(nb.executions_for_reference(&payout_reference), 1);
    assert_eq!(nb.executions_for_reference(&transfer_reference), 1);
    assert!(nb.payment_posts() >= 2);

    // Settled later: every leg carries the key of the payment that made it, and its type.
    nb.advance_millis(60_000);
    nb.settle_payments();
    let links = BTreeMap::from([
        (payout_reference.clone(), payout_key.to_owned()),
        (transfer_reference.clone(), transfer_key.to_owned()),
    ]);
    let truth = transaction_truth(&nb, &links);
    let mut poller = Poller::new(&base_url(&server), API_KEY, 10);
    sync(&mut poller, Kind::Transactions, "after payments");
    check_received(&poller, Kind::Transactions, &truth, "after payments");
    let legs: Vec<&Value> = poller
        .records(Kind::Transactions)
        .values()
        .map(|r| &r.json)
        .filter(|json| json["relatedTransactionID"].is_string())
        .collect();
    let of = |key: &str| -> Vec<&str> {
        legs.iter()
            .filter(|json| json["relatedTransactionID"] == key)
            .map(|json| json["type"].as_str().unwrap())
            .collect()
    };
    assert_eq!(of(payout_key), ["PAYOUT"]);
    assert_eq!(of(transfer_key), ["TRANSFER", "TRANSFER"]);
}

#[test]
fn nordbank_a_restarted_connector_finds_the_payment_its_crashed_attempt_made() {
    let nb = Nordbank::start(26, CLIENT_ID, CLIENT_SECRET);
    seed(&nb, 2, 2, 4);
    let source = nb.accounts()[0].clone();
    let beneficiary = nb.beneficiaries()[0].id.clone();
    let body = payout(
        "pi_restart_0001",
        "700",
        &umn(&source.currency),
        &source.id,
        &beneficiary,
    );
    let store = fresh_store_path();
    // The bank executes the payment and answers 500; the connector answers Formance with a
    // retryable error and goes down before the retry.
    nb.fail_after_executing(1);
    let server = start_with(&nb, nordbank(), &[("CONNECTOR_STORE", &store)]);
    let first = post_once(server.addr, "/payouts", &body);
    assert!(
        first.as_ref().is_some_and(|(status, _)| *status >= 500),
        "{first:?}"
    );
    drop(server);
    let restarted = start_with(&nb, nordbank(), &[("CONNECTOR_STORE", &store)]);
    let (status, paid) = initiate(&restarted, "/payouts", &body);
    let id = created_id(status, &paid);
    assert_eq!(nb.executions_for_reference(&payment_reference(&nb, &id)), 1);
    assert_eq!(nb.payments().len(), 1);
}
