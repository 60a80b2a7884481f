//! End-to-end tests of the declarative examples: `cursorpay` and `pageworks` are generated
//! from their `generated-examples/<name>/connector.yaml` (with the example's own handlers.rs),
//! built, started against the mock providers of `tests/support/`, and polled exactly as
//! Formance polls. Every record received is compared with the mock's ground truth: nothing
//! lost, nothing duplicated, every value converted as the mapping says.
//!
//! Each test starts its own mock and its own connector processes. A full sync at one page
//! size always runs against a fresh connector process, so that its upstream call count is
//! that sync's alone (a connector keeps its list windows between requests).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::time::{Duration, Instant};

use serde_json::{Map, json};

use support::formance::{Kind, PollError, Poller, format_rfc3339_nanos};
use support::mock_cursor::{CpNewTransaction, Cursorpay, currency_exponent};
use support::mock_pages::{Pageworks, PwNewTransaction, PwTime, pw_currency_exponent};
use support::sync_check::{
    EnumRule, Example, NANOS, Truth, Want, base_url, check_metrics, check_never_plain_4xx,
    check_received, check_served_order, count_calls, example, flatten, only, operation_of, sync,
    transaction_sign, unix_now_nanos, variant,
};
use support::{API_KEY, Server, TestCrate};

const CP_TOKEN: &str = "sk_test_mapped_e2e";
const PW_CLIENT_ID: &str = "pw-client-e2e";
const PW_CLIENT_SECRET: &str = "pw-secret-e2e";
/// Upstream calls a full sync of one kind may make beyond `ceil(N / 100)` (100 is the
/// providers' page size in both mappings). When a protocol page comes out short after the
/// walk reached the provider's end, the connector looks again for records that arrived
/// meanwhile: a newest-first provider is walked again over the records of the filter's second
/// on. A sync ends with one or two such short pages; with bursts of 150 records sharing one
/// second that re-reads up to 2 + 3 pages.
const CALL_SLACK: usize = 6;
/// Upstream calls of a sync of one kind when only a few records arrived or changed.
const INCREMENTAL_CALLS: usize = 3;

// =============================================================================================
// The examples' processes
// =============================================================================================

fn start_cursorpay(cp: &Cursorpay, provider_key: &str) -> Server {
    let env = [
        ("CURSORPAY_BASE_URL".to_owned(), cp.url()),
        ("CURSORPAY_API_KEY".to_owned(), provider_key.to_owned()),
    ];
    Server::start(&example("cursorpay").binary, &env)
}

fn start_pageworks(pw: &Pageworks, client_secret: &str) -> Server {
    let env = [
        ("PAGEWORKS_BASE_URL".to_owned(), pw.url()),
        ("PAGEWORKS_TOKEN_URL".to_owned(), pw.token_url()),
        ("PAGEWORKS_CLIENT_ID".to_owned(), PW_CLIENT_ID.to_owned()),
        (
            "PAGEWORKS_CLIENT_SECRET".to_owned(),
            client_secret.to_owned(),
        ),
    ];
    Server::start(&example("pageworks").binary, &env)
}

// =============================================================================================
// Upstream calls by operation
// =============================================================================================

fn cp_operation(path: &str) -> &'static str {
    match path {
        "/v1/accounts" => "getAccounts",
        "/v1/recipients" => "getBeneficiaries",
        "/v1/transactions" => "getTransactions",
        p if p.starts_with("/v1/accounts/") && p.ends_with("/balance") => "getAccountBalances",
        _ => "unknown",
    }
}

fn pw_operation(path: &str) -> &'static str {
    match path {
        "/oauth/token" => "token",
        "/api/v2/accounts" => "getAccounts",
        "/api/v2/counterparties" => "getBeneficiaries",
        "/api/v2/statements" => "getTransactions",
        p if p.starts_with("/api/v2/accounts/") && p.ends_with("/balances") => "getAccountBalances",
        _ => "unknown",
    }
}

// =============================================================================================
// Cursorpay
// =============================================================================================

/// Accounts (one without balances: the override's case), recipients, transactions in
/// bursts sharing one `updated` second, and one transaction with values no table maps.
fn seed_cursorpay(cp: &Cursorpay, accounts: usize, recipients: usize, txs: usize, burst: usize) {
    let ids = cp.seed_accounts(accounts);
    cp.add_account("Closed account", None);
    cp.seed_recipients(recipients);
    cp.seed_transactions(txs, burst);
    cp.add_transaction(CpNewTransaction {
        amount: "-0.05".to_owned(),
        currency: "kwd".to_owned(),
        kind: "dispute".to_owned(),
        status: "under_review".to_owned(),
        source: ids.first().cloned(),
        description: "unmapped values".to_owned(),
        ..CpNewTransaction::default()
    });
}

fn cp_truth(cp: &Cursorpay) -> BTreeMap<Kind, Truth> {
    let ex = example("cursorpay");
    let (types, statuses) = (EnumRule::of(ex, "type"), EnumRule::of(ex, "status"));
    let sign = transaction_sign(ex);
    let secs = |s: i64| i128::from(s) * NANOS;
    let accounts = cp
        .accounts()
        .into_iter()
        .map(|a| {
            let json = json!({
                "id": a.id,
                "accountName": a.name,
                "metadata": {
                    "country": a.country,
                    "default_currency": a.default_currency,
                    "settings.payouts.schedule": a.payout_schedule,
                    "settings.statement_descriptor": a.statement_descriptor,
                },
            });
            let times = vec![("createdAt", secs(a.created))];
            (a.id, Want { json, times })
        })
        .collect();
    let recipients = cp
        .recipients()
        .into_iter()
        .map(|r| {
            let json = json!({
                "id": r.id,
                "ownerName": r.name,
                "metadata": {"email": r.email},
            });
            let times = vec![("createdAt", secs(r.created))];
            (r.id, Want { json, times })
        })
        .collect();
    let transactions = cp
        .transactions()
        .into_iter()
        .map(|t| {
            let minor = t.minor().expect("a decimal amount");
            let mut json = json!({
                "id": t.id,
                "amount": sign(minor).to_string(),
                "currency": format!("{}/{}", t.currency.to_ascii_uppercase(), currency_exponent(&t.currency)),
                "type": types.apply(&t.kind),
                "status": statuses.apply(&t.status),
                "metadata": {"description": t.description},
            });
            if let Some(source) = &t.source {
                json["sourceAccountID"] = json!(source);
            }
            if let Some(destination) = &t.destination {
                json["destinationAccountID"] = json!(destination);
            }
            let times = vec![("createdAt", secs(t.created)), ("updatedAt", secs(t.updated))];
            (t.id, Want { json, times })
        })
        .collect();
    BTreeMap::from([
        (Kind::Accounts, accounts),
        (Kind::Beneficiaries, recipients),
        (Kind::Transactions, transactions),
    ])
}

/// The balances of every account: the mapped conversion (decimal to minor units, sign
/// kept, UMN currency) and handlers.rs's override (no balance: one zero EUR balance).
#[track_caller]
fn check_cp_balances(poller: &mut Poller, cp: &Cursorpay, context: &str) -> usize {
    let accounts = cp.accounts();
    let mut overridden = 0;
    for account in &accounts {
        let before = unix_now_nanos();
        let got = poller
            .balances(&account.id)
            .unwrap_or_else(|e| panic!("{context}: balances of {}: {e}", account.id));
        let after = unix_now_nanos();
        assert_eq!(got.account_id, account.id, "{context}");
        assert_eq!(got.id, format!("{}-balance", account.id), "{context}");
        // `at: { now: true }`: the time of the answer.
        assert!(
            got.at >= before.div_euclid(NANOS) * NANOS && got.at <= after,
            "{context}: at {} is not the time of the answer",
            format_rfc3339_nanos(got.at)
        );
        let want: Vec<(String, String)> = if account.balances.is_empty() {
            overridden += 1;
            vec![("0".to_owned(), "EUR/2".to_owned())]
        } else {
            account
                .balances
                .iter()
                .map(|m| {
                    let currency = m.currency.to_ascii_uppercase();
                    let umn = format!("{currency}/{}", currency_exponent(&m.currency));
                    (m.minor().expect("a decimal amount").to_string(), umn)
                })
                .collect()
        };
        assert_eq!(got.balances, want, "{context}: balances of {}", account.id);
    }
    assert!(
        overridden > 0,
        "the seed data has an account without balances"
    );
    accounts.len()
}

/// A full sync of every kind and every balance with a fresh connector at `page_size`;
/// checks everything against the ground truth, the upstream call bound and /metrics.
/// Returns the upstream calls per kind.
fn cp_full_sync(cp: &Cursorpay, page_size: usize, check_order: bool) -> BTreeMap<Kind, usize> {
    let truth = cp_truth(cp);
    let server = start_cursorpay(cp, CP_TOKEN);
    let mut poller = Poller::new(&base_url(&server), API_KEY, page_size);
    let context = format!("cursorpay, page size {page_size}");
    let mut calls = Vec::new();
    let mut counts = BTreeMap::new();
    cp.reset_calls();
    for kind in Kind::ALL {
        let requests = poller.requests();
        let cycles = sync(&mut poller, kind, &context);
        let made = cp.call_log();
        cp.reset_calls();
        let records = truth[&kind].len();
        let upstream = count_calls(&made, cp_operation, operation_of(kind));
        assert_eq!(upstream, made.len(), "{context}: {kind:?}: other calls");
        let bound = records.div_ceil(100) + CALL_SLACK;
        eprintln!(
            "{context}: {kind:?}: {records} records, {cycles} cycles, {} connector requests, \
             {upstream} upstream calls (bound {bound})",
            poller.requests() - requests
        );
        assert!(
            upstream <= bound,
            "{context}: {kind:?}: {upstream} upstream calls for {records} records (bound {bound})"
        );
        counts.insert(kind, upstream);
        calls.extend(made);
    }
    for kind in Kind::ALL {
        check_received(&poller, kind, &truth[&kind], &context);
    }
    let accounts = check_cp_balances(&mut poller, cp, &context);
    let made = cp.call_log();
    cp.reset_calls();
    assert_eq!(
        count_calls(&made, cp_operation, "getAccountBalances"),
        accounts,
        "one upstream call per balance"
    );
    calls.extend(made);
    check_never_plain_4xx(&poller);
    check_metrics(&server, &calls, cp_operation);
    if check_order {
        for kind in Kind::ALL {
            check_served_order(&server, kind, &truth[&kind], 100);
        }
    }
    counts
}

#[test]
fn cursorpay_full_sync_at_page_sizes_7_and_100_loses_nothing_in_bursts_of_ties() {
    let cp = Cursorpay::start(11, CP_TOKEN);
    seed_cursorpay(&cp, 60, 45, 2_500, 150);
    for page_size in [100, 7] {
        cp_full_sync(&cp, page_size, page_size == 100);
    }
}

/// Every type of Cursorpay's transactions, the one no enum maps included.
const CP_TYPES: [&str; 6] = [
    "payment",
    "payout",
    "transfer",
    "refund",
    "adjustment",
    "dispute",
];

/// Cursorpay's transactions listed one type a request (as Stripe lists charges, refunds and
/// payouts apart): a `union` whose requests each set `listed_as`, kept in the metadata.
fn cursorpay_union() -> &'static Example {
    variant("cursorunion", "cursorpay", |mapping| {
        let union: String = CP_TYPES
            .iter()
            .map(|kind| {
                format!(
                    "      - request: {{ path: /v1/transactions, query: {{ type: {kind} }} }}\n        set: {{ listed_as: {kind} }}\n"
                )
            })
            .collect();
        mapping
            .replacen(
                "  getTransactions:\n    request:\n      path: /v1/transactions\n",
                &format!("  getTransactions:\n    union:\n{union}"),
                1,
            )
            .replacen(
                "          fields: [description]",
                "          fields: [description, listed_as]",
                1,
            )
            .replacen("name: cursorpay", "name: cursorunion", 1)
    })
}

#[test]
fn a_union_of_one_request_per_type_serves_every_transaction_once_with_its_constant() {
    let cp = Cursorpay::start(13, CP_TOKEN);
    seed_cursorpay(&cp, 4, 2, 900, 60);
    let kinds: BTreeMap<String, String> = cp
        .transactions()
        .into_iter()
        .map(|t| (t.id, t.kind))
        .collect();
    let mut truth = cp_truth(&cp).remove(&Kind::Transactions).unwrap();
    for (id, want) in &mut truth {
        want.json["metadata"]["listed_as"] = json!(kinds[id]);
    }
    let env = [
        ("CURSORPAY_BASE_URL".to_owned(), cp.url()),
        ("CURSORPAY_API_KEY".to_owned(), CP_TOKEN.to_owned()),
    ];
    for page_size in [100, 7] {
        let context = format!("cursorpay as a union, page size {page_size}");
        let server = Server::start(&cursorpay_union().binary, &env);
        let mut poller = Poller::new(&base_url(&server), API_KEY, page_size);
        cp.reset_calls();
        let cycles = sync(&mut poller, Kind::Transactions, &context);
        check_received(&poller, Kind::Transactions, &truth, &context);
        let made = cp.call_log();
        let upstream = count_calls(&made, cp_operation, "getTransactions");
        assert_eq!(upstream, made.len(), "{context}: other calls");
        let per_type: usize = CP_TYPES
            .iter()
            .map(|kind| kinds.values().filter(|k| k == kind).count().div_ceil(100))
            .sum();
        let bound = per_type + CP_TYPES.len() * CALL_SLACK;
        eprintln!(
            "{context}: {} records, {cycles} cycles, {upstream} upstream calls (bound {bound})",
            truth.len()
        );
        assert!(
            upstream <= bound,
            "{context}: {upstream} upstream calls (bound {bound})"
        );
        check_never_plain_4xx(&poller);
    }
}

/// Cursorpay's transactions joined with their source account's balance (as Wise's transfers
/// are with their recipient): the balance's first currency is kept in the metadata.
fn cursorpay_join() -> &'static Example {
    variant("cursorjoin", "cursorpay", |mapping| {
        let transactions = mapping.find("  getTransactions:").expect("getTransactions");
        let (before, after) = mapping.split_at(transactions);
        let after = after
            .replacen(
                "    records: data\n",
                "    records: data\n    join:\n      - name: source_balance\n        request: { path: \"/v1/accounts/{source}/balance\" }\n",
                1,
            )
            .replacen(
                "          fields: [description]",
                "          fields: { description: description, source_currency: \"source_balance.available[0].currency\" }",
                1,
            );
        format!("{before}{after}").replacen("name: cursorpay", "name: cursorjoin", 1)
    })
}

#[test]
fn a_join_calls_each_source_account_once_and_sets_its_answer_in_the_records() {
    let cp = Cursorpay::start(14, CP_TOKEN);
    seed_cursorpay(&cp, 12, 2, 700, 40);
    let currencies: BTreeMap<String, String> = cp
        .accounts()
        .into_iter()
        .filter_map(|a| Some((a.id, a.balances.first()?.currency.clone())))
        .collect();
    let mut truth = cp_truth(&cp).remove(&Kind::Transactions).unwrap();
    let mut sources = BTreeSet::new();
    for t in cp.transactions() {
        if let Some(source) = &t.source {
            sources.insert(source.clone());
            if let Some(currency) = currencies.get(source) {
                truth.get_mut(&t.id).unwrap().json["metadata"]["source_currency"] = json!(currency);
            }
        }
    }
    assert!(
        truth
            .values()
            .any(|w| w.json["metadata"].get("source_currency").is_none()),
        "some transactions have no source with a balance"
    );
    let env = [
        ("CURSORPAY_BASE_URL".to_owned(), cp.url()),
        ("CURSORPAY_API_KEY".to_owned(), CP_TOKEN.to_owned()),
    ];
    for page_size in [100, 7] {
        let context = format!("cursorpay with a join, page size {page_size}");
        let server = Server::start(&cursorpay_join().binary, &env);
        let mut poller = Poller::new(&base_url(&server), API_KEY, page_size);
        cp.reset_calls();
        let cycles = sync(&mut poller, Kind::Transactions, &context);
        check_received(&poller, Kind::Transactions, &truth, &context);
        let made = cp.call_log();
        let lists = count_calls(&made, cp_operation, "getTransactions");
        let joins = count_calls(&made, cp_operation, "getAccountBalances");
        assert_eq!(lists + joins, made.len(), "{context}: other calls");
        // One call per source account: answers are kept for a minute.
        let bound = sources.len();
        eprintln!(
            "{context}: {} records, {} source accounts, {cycles} cycles, {lists} list calls, \
             {joins} join calls (bound {bound})",
            truth.len(),
            sources.len()
        );
        assert!(joins >= sources.len().min(1), "{context}: no join call");
        assert!(
            joins <= bound,
            "{context}: {joins} join calls (bound {bound})"
        );
        check_never_plain_4xx(&poller);
    }
}

#[test]
fn cursorpay_full_sync_at_page_size_1() {
    let cp = Cursorpay::start(12, CP_TOKEN);
    seed_cursorpay(&cp, 15, 12, 180, 12);
    cp_full_sync(&cp, 1, false);
}

#[test]
fn cursorpay_delivers_exactly_what_arrived_or_changed_between_polls() {
    let cp = Cursorpay::start(13, CP_TOKEN);
    seed_cursorpay(&cp, 12, 10, 600, 40);
    let server = start_cursorpay(&cp, CP_TOKEN);
    let mut poller = Poller::new(&base_url(&server), API_KEY, 7);
    let context = "cursorpay, first sync";
    let truth = cp_truth(&cp);
    let newest_synced = cp
        .transactions()
        .into_iter()
        .max_by_key(|t| (t.updated, t.id.clone()))
        .unwrap()
        .id;
    for kind in Kind::ALL {
        sync(&mut poller, kind, context);
        check_received(&poller, kind, &truth[&kind], context);
        poller.clear_records(kind);
    }

    // Time passes; new records arrive (ties among them) and some transactions change.
    cp.advance(30);
    let mut changed: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
    let accounts: Vec<String> = (0..3)
        .map(|i| cp.add_account(&format!("New account {i}"), None))
        .collect();
    changed.insert(Kind::Accounts, accounts.iter().cloned().collect());
    let recipients = (0..4)
        .map(|i| {
            cp.add_recipient(
                &format!("New person {i}"),
                &format!("p{i}@example.com"),
                None,
            )
        })
        .collect();
    changed.insert(Kind::Beneficiaries, recipients);
    let mut transactions = BTreeSet::new();
    for i in 0..20 {
        let kind = ["payment", "payout", "transfer", "refund"][i % 4];
        transactions.insert(cp.add_transaction(CpNewTransaction {
            amount: if kind == "payment" { "12.34" } else { "-0.99" }.to_owned(),
            kind: kind.to_owned(),
            status: "pending".to_owned(),
            source: (kind != "payment").then(|| accounts[0].clone()),
            destination: (kind != "payout").then(|| accounts[1].clone()),
            description: format!("new {i}"),
            ..CpNewTransaction::default()
        }));
    }
    cp.advance(1);
    // Spread over the list, and the newest one synced.
    let old = cp.transactions();
    let mut updated: Vec<String> = old.iter().step_by(23).map(|t| t.id.clone()).collect();
    updated.push(newest_synced);
    let statuses = ["failed", "canceled", "succeeded", "requires_action"];
    for (i, id) in updated.iter().enumerate() {
        assert!(cp.update_transaction(id, Some(statuses[i % 4]), None));
    }
    transactions.extend(updated.iter().cloned());
    changed.insert(Kind::Transactions, transactions);

    let truth = cp_truth(&cp);
    let context = "cursorpay, after changes";
    cp.reset_calls();
    for kind in Kind::ALL {
        sync(&mut poller, kind, context);
        check_received(
            &poller,
            kind,
            &only(&truth[&kind], &changed[&kind]),
            context,
        );
        poller.clear_records(kind);
    }
    for id in &updated {
        let t = cp.transaction(id).unwrap();
        assert_eq!(t.updated, cp.now(), "the update moved {id} forward");
    }
    let calls = cp.call_log().len();
    eprintln!("cursorpay incremental sync: {calls} upstream calls");
    assert!(calls <= 3 * INCREMENTAL_CALLS, "{calls} upstream calls");

    // Nothing changed: nothing is received.
    for kind in Kind::ALL {
        sync(&mut poller, kind, "cursorpay, no changes");
        assert!(poller.records(kind).is_empty(), "{kind:?}: repeated");
    }
    check_never_plain_4xx(&poller);
}

#[test]
fn cursorpay_sync_survives_rate_limits_and_outages() {
    let cp = Cursorpay::start(14, CP_TOKEN);
    seed_cursorpay(&cp, 8, 10, 700, 35);
    let truth = cp_truth(&cp);
    let server = start_cursorpay(&cp, CP_TOKEN);

    // Every third provider request fails with 503, then every fifth with 429 and
    // `Retry-After`: the connector retries them and nothing is lost.
    for (page_size, status, retry_after) in [(7, 503, None), (100, 429, Some(1))] {
        cp.fail_every(if status == 503 { 3 } else { 5 }, status, retry_after);
        let context = format!("cursorpay with {status} faults, page size {page_size}");
        let mut poller = Poller::new(&base_url(&server), API_KEY, page_size);
        for kind in Kind::ALL {
            sync(&mut poller, kind, &context);
            check_received(&poller, kind, &truth[&kind], &context);
        }
        check_cp_balances(&mut poller, &cp, &context);
        check_never_plain_4xx(&poller);
        let faults = cp.call_log().iter().filter(|c| c.status == status).count();
        eprintln!("{context}: {faults} faults injected");
        assert!(faults > 3, "{context}: only {faults} faults injected");
    }

    // The provider keeps failing past the connector's retries: 503 or 429 to Formance (which
    // retries), with the provider's Retry-After passed on, never a plain 4xx.
    cp.fail_next(4, 503, None);
    let response = server.get("/transactions?pageSize=10");
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(response.header("retry-after"), Some("1"), "{response:?}");
    let body = response.json();
    assert_eq!(body["Title"], "Service Unavailable", "{response:?}");
    assert!(
        body["Detail"].as_str().unwrap().contains("503"),
        "{response:?}"
    );
    // A Retry-After beyond the retry deadline: answered at once, the wait passed on.
    cp.fail_next(1, 429, Some(25));
    let started = Instant::now();
    let response = server.get("/transactions?pageSize=10");
    assert_eq!(response.status, 429, "{response:?}");
    assert_eq!(response.header("retry-after"), Some("25"), "{response:?}");
    assert_eq!(
        response.json()["Title"],
        "Too Many Requests",
        "{response:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited instead of answering"
    );

    // Through the poller: the connector's 503 is retried by Formance and the sync completes.
    cp.fail_next(5, 503, None);
    let mut poller = Poller::new(&base_url(&server), API_KEY, 100);
    sync(&mut poller, Kind::Accounts, "after a 503");
    check_received(
        &poller,
        Kind::Accounts,
        &truth[&Kind::Accounts],
        "after a 503",
    );
    assert!(
        poller.exchanges().iter().any(|e| e.status == Some(503)),
        "the connector gave up once: {:?}",
        poller.exchanges()
    );
    check_never_plain_4xx(&poller);
    cp.clear_faults();
    check_metrics(&server, &cp.call_log(), cp_operation);
}

#[test]
fn cursorpay_refused_credentials_answer_502_naming_upstream_auth() {
    let cp = Cursorpay::start(15, CP_TOKEN);
    seed_cursorpay(&cp, 3, 2, 5, 2);
    let server = start_cursorpay(&cp, "sk_test_revoked");
    for path in [
        "/accounts",
        "/beneficiaries",
        "/transactions",
        "/accounts/acct_1/balances",
    ] {
        let response = server.get(path);
        assert_eq!(response.status, 502, "{path}: {response:?}");
        let body = response.json();
        assert_eq!(body["Title"], "Bad Gateway", "{path}: {response:?}");
        let detail = body["Detail"].as_str().unwrap();
        assert!(detail.contains("upstream.auth"), "{path}: {detail}");
    }
    // Refused credentials are not retried against the provider.
    assert_eq!(cp.calls("/v1/"), 4, "{:?}", cp.call_log());
    assert!(cp.call_log().iter().all(|c| c.status == 401));
    // Formance retries a 502 and then reports it; it never sees a 4xx.
    let mut poller =
        Poller::new(&base_url(&server), API_KEY, 100).with_retries(2, Duration::from_millis(1));
    match poller.sync(Kind::Accounts) {
        Err(PollError::Exhausted { last, .. }) => assert!(last.starts_with("502"), "{last}"),
        other => panic!("expected the poller to give up on 502s, got {other:?}"),
    }
    check_metrics(&server, &cp.call_log(), cp_operation);
}

// =============================================================================================
// Pageworks
// =============================================================================================

/// Accounts (one without balances), counterparties (one whose holder name needs trimming),
/// transactions in bursts, one with values no table maps and nested tags.
fn seed_pageworks(
    pw: &Pageworks,
    accounts: usize,
    counterparties: usize,
    txs: usize,
    burst: usize,
) {
    let uuids = pw.seed_accounts(accounts);
    pw.add_account("Dormant", "Nobody Ltd", None);
    pw.seed_counterparties(counterparties);
    pw.add_counterparty("  Chien-Shiung   Wu \t", None);
    pw.seed_transactions(txs, burst);
    pw.add_transaction(PwNewTransaction {
        value_minor: -250,
        currency: "JPY".to_owned(),
        kind: "CHARGEBACK".to_owned(),
        state: "ON_HOLD".to_owned(),
        from_account: uuids.first().cloned(),
        tags: json!({"channel": "api", "batch": 3, "review": {"by": "ops", "urgent": true}}),
        ..PwNewTransaction::default()
    });
}

fn pw_nanos(time: &PwTime) -> i128 {
    i128::from(time.unix_nanos)
}

fn pw_truth(pw: &Pageworks) -> BTreeMap<Kind, Truth> {
    let ex = example("pageworks");
    let (types, statuses) = (EnumRule::of(ex, "type"), EnumRule::of(ex, "status"));
    let sign = transaction_sign(ex);
    let accounts = pw
        .accounts()
        .into_iter()
        .map(|a| {
            let json = json!({
                "id": a.uuid,
                "accountName": a.label,
                "metadata": {"owner": a.owner_name},
            });
            let times = vec![("createdAt", pw_nanos(&a.opened_at))];
            (a.uuid, Want { json, times })
        })
        .collect();
    let counterparties = pw
        .counterparties()
        .into_iter()
        .map(|c| {
            // handlers.rs's owner_name: the holder's name, trimmed.
            let json = json!({"id": c.id, "ownerName": c.full_name.trim()});
            let times = vec![("createdAt", pw_nanos(&c.created_at))];
            (c.id, Want { json, times })
        })
        .collect();
    let transactions = pw
        .transactions()
        .into_iter()
        .map(|t| {
            let mut metadata = Map::new();
            flatten(&mut metadata, "tags", &t.tags);
            let currency = &t.money.currency;
            let mut json = json!({
                "id": t.reference,
                "amount": sign(t.money.value_minor).to_string(),
                "currency": format!("{currency}/{}", pw_currency_exponent(currency)),
                "type": types.apply(&t.kind),
                "status": statuses.apply(&t.state),
                "metadata": metadata,
            });
            if let Some(from) = &t.from_account {
                json["sourceAccountID"] = json!(from);
            }
            if let Some(to) = &t.to_account {
                json["destinationAccountID"] = json!(to);
            }
            let times = vec![
                ("createdAt", pw_nanos(&t.booked_at)),
                ("updatedAt", pw_nanos(&t.changed_at)),
            ];
            (t.reference, Want { json, times })
        })
        .collect();
    BTreeMap::from([
        (Kind::Accounts, accounts),
        (Kind::Beneficiaries, counterparties),
        (Kind::Transactions, transactions),
    ])
}

/// Every account's balances: minor units kept as they are, sign kept, UMN currency; the id
/// from the template, `at` the provider's `as_of`. No override: no balance is an empty list.
#[track_caller]
fn check_pw_balances(poller: &mut Poller, pw: &Pageworks, context: &str) -> usize {
    let accounts = pw.accounts();
    let mut empty = 0;
    for account in &accounts {
        let got = poller
            .balances(&account.uuid)
            .unwrap_or_else(|e| panic!("{context}: balances of {}: {e}", account.uuid));
        let as_of = pw.now().with_offset(account.opened_at.offset_minutes);
        assert_eq!(got.account_id, account.uuid, "{context}");
        assert_eq!(
            got.id,
            format!("{}@{}", account.uuid, as_of.rfc3339()),
            "{context}"
        );
        assert_eq!(got.at, pw_nanos(&as_of), "{context}: at");
        let want: Vec<(String, String)> = account
            .balances
            .iter()
            .map(|m| {
                let umn = format!("{}/{}", m.currency, pw_currency_exponent(&m.currency));
                (m.value_minor.to_string(), umn)
            })
            .collect();
        empty += usize::from(want.is_empty());
        assert_eq!(
            got.balances, want,
            "{context}: balances of {}",
            account.uuid
        );
    }
    assert!(empty > 0, "the seed data has an account without balances");
    accounts.len()
}

fn pw_full_sync(pw: &Pageworks, page_size: usize, check_order: bool) -> BTreeMap<Kind, usize> {
    let truth = pw_truth(pw);
    let server = start_pageworks(pw, PW_CLIENT_SECRET);
    let mut poller = Poller::new(&base_url(&server), API_KEY, page_size);
    let context = format!("pageworks, page size {page_size}");
    pw.reset_calls();
    let mut calls = Vec::new();
    let tokens = pw.token_requests();
    let mut counts = BTreeMap::new();
    for kind in Kind::ALL {
        let requests = poller.requests();
        let cycles = sync(&mut poller, kind, &context);
        let made = pw.call_log();
        pw.reset_calls();
        let upstream = count_calls(&made, pw_operation, operation_of(kind));
        let tokens = count_calls(&made, pw_operation, "token");
        assert_eq!(
            upstream + tokens,
            made.len(),
            "{context}: {kind:?}: other calls"
        );
        let records = truth[&kind].len();
        // The provider's pages hold 100 items; transactions come 1 to 4 per statement, so
        // their pages are counted in statements.
        let items = if kind == Kind::Transactions {
            pw.statements(None).len()
        } else {
            records
        };
        let bound = items.div_ceil(100) + CALL_SLACK;
        eprintln!(
            "{context}: {kind:?}: {records} records ({items} provider items), {cycles} cycles, \
             {} connector requests, {upstream} upstream calls (bound {bound})",
            poller.requests() - requests
        );
        assert!(
            upstream <= bound,
            "{context}: {kind:?}: {upstream} upstream calls for {items} items (bound {bound})"
        );
        counts.insert(kind, upstream);
        calls.extend(made);
    }
    for kind in Kind::ALL {
        check_received(&poller, kind, &truth[&kind], &context);
    }
    let accounts = check_pw_balances(&mut poller, pw, &context);
    let made = pw.call_log();
    pw.reset_calls();
    assert_eq!(
        count_calls(&made, pw_operation, "getAccountBalances"),
        accounts
    );
    calls.extend(made);
    assert_eq!(
        pw.token_requests() - tokens,
        1,
        "{context}: one OAuth2 token for the whole sync"
    );
    assert!(calls.iter().all(|c| c.status == 200), "{context}: refusals");
    check_never_plain_4xx(&poller);
    check_metrics(&server, &calls, pw_operation);
    if check_order {
        for kind in Kind::ALL {
            check_served_order(&server, kind, &truth[&kind], 100);
        }
    }
    counts
}

#[test]
fn pageworks_full_sync_at_page_sizes_7_and_100_loses_nothing_in_bursts_of_ties() {
    let pw = Pageworks::start(21, PW_CLIENT_ID, PW_CLIENT_SECRET);
    seed_pageworks(&pw, 60, 45, 2_500, 150);
    for page_size in [100, 7] {
        pw_full_sync(&pw, page_size, page_size == 100);
    }
}

#[test]
fn pageworks_full_sync_at_page_size_1() {
    let pw = Pageworks::start(22, PW_CLIENT_ID, PW_CLIENT_SECRET);
    seed_pageworks(&pw, 15, 12, 180, 12);
    pw_full_sync(&pw, 1, false);
}

#[test]
fn pageworks_delivers_exactly_what_arrived_or_changed_between_polls() {
    let pw = Pageworks::start(23, PW_CLIENT_ID, PW_CLIENT_SECRET);
    seed_pageworks(&pw, 12, 10, 500, 25);
    // The provider's last page of statements holds a single statement, as it does whenever
    // the count is one past a multiple of 100.
    for _ in 0..500 {
        if pw.statements(None).len() % 100 == 1 {
            break;
        }
        pw.seed_transactions(1, 1);
    }
    assert_eq!(pw.statements(None).len() % 100, 1);
    let server = start_pageworks(&pw, PW_CLIENT_SECRET);
    let mut poller = Poller::new(&base_url(&server), API_KEY, 7);
    let context = "pageworks, first sync";
    let truth = pw_truth(&pw);
    let newest_synced = pw
        .transactions()
        .into_iter()
        .max_by_key(|t| (t.changed_at.unix_nanos, t.reference.clone()))
        .unwrap()
        .reference;
    for kind in Kind::ALL {
        sync(&mut poller, kind, context);
        check_received(&poller, kind, &truth[&kind], context);
        poller.clear_records(kind);
    }

    // Time passes; new records arrive (ties among them) and some transactions change.
    pw.advance_millis(30_000);
    let mut changed: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
    let accounts: Vec<String> = (0..3)
        .map(|i| pw.add_account(&format!("New {i}"), "Newco SA", None))
        .collect();
    changed.insert(Kind::Accounts, accounts.iter().cloned().collect());
    let counterparties = (0..4)
        .map(|i| pw.add_counterparty(&format!("New Holder {i}"), None))
        .collect();
    changed.insert(Kind::Beneficiaries, counterparties);
    let mut transactions = BTreeSet::new();
    for i in 0..20 {
        transactions.insert(pw.add_transaction(PwNewTransaction {
            value_minor: 1000 + i,
            kind: ["CARD", "SEPA_OUT", "INTERNAL", "FEE"][i as usize % 4].to_owned(),
            state: "PENDING".to_owned(),
            from_account: Some(accounts[0].clone()),
            to_account: Some(accounts[1].clone()),
            tags: json!({"channel": "web", "batch": i}),
            ..PwNewTransaction::default()
        }));
    }
    pw.advance_millis(1_250);
    // Spread over the list, and the newest one synced (still held by the connector).
    let old = pw.transactions();
    let mut updated: Vec<String> = old
        .iter()
        .step_by(37)
        .map(|t| t.reference.clone())
        .collect();
    updated.push(newest_synced);
    for (i, reference) in updated.iter().enumerate() {
        let state = ["BOOKED", "REJECTED", "REVERSED", "SETTLING"][i % 4];
        assert!(pw.update_transaction(reference, Some(state), None));
    }
    transactions.extend(updated.iter().cloned());
    changed.insert(Kind::Transactions, transactions);

    let truth = pw_truth(&pw);
    let context = "pageworks, after changes";
    pw.reset_calls();
    for kind in Kind::ALL {
        sync(&mut poller, kind, context);
        check_received(
            &poller,
            kind,
            &only(&truth[&kind], &changed[&kind]),
            context,
        );
        poller.clear_records(kind);
    }
    let calls = pw.call_log().len();
    eprintln!("pageworks incremental sync: {calls} upstream calls");
    assert!(calls <= 3 * INCREMENTAL_CALLS, "{calls} upstream calls");

    for kind in Kind::ALL {
        sync(&mut poller, kind, "pageworks, no changes");
        assert!(poller.records(kind).is_empty(), "{kind:?}: repeated");
    }
    check_never_plain_4xx(&poller);
}

#[test]
fn pageworks_sync_survives_rate_limits_and_outages() {
    let pw = Pageworks::start(24, PW_CLIENT_ID, PW_CLIENT_SECRET);
    seed_pageworks(&pw, 8, 10, 700, 35);
    let truth = pw_truth(&pw);
    let server = start_pageworks(&pw, PW_CLIENT_SECRET);
    // While the token endpoint is down, the connector answers 503 (Formance retries), not a
    // refusal: its own retries are spent on the token request.
    pw.fail_every_on("/oauth/token", 1, 503, None);
    let response = server.get("/accounts?pageSize=1");
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(response.header("retry-after"), Some("1"), "{response:?}");
    assert_eq!(pw.calls("/oauth/token"), 3, "the default 3 attempts");
    assert_eq!(pw.calls("/api/"), 0);
    pw.clear_faults();
    for (page_size, status, retry_after) in [(7, 503, None), (100, 429, Some(0))] {
        pw.fail_every(if status == 503 { 3 } else { 4 }, status, retry_after);
        let context = format!("pageworks with {status} faults, page size {page_size}");
        let mut poller = Poller::new(&base_url(&server), API_KEY, page_size);
        for kind in Kind::ALL {
            sync(&mut poller, kind, &context);
            check_received(&poller, kind, &truth[&kind], &context);
        }
        check_pw_balances(&mut poller, &pw, &context);
        check_never_plain_4xx(&poller);
        let faults = pw.call_log().iter().filter(|c| c.status == status).count();
        eprintln!("{context}: {faults} faults injected");
        assert!(faults > 3, "{context}: only {faults} faults injected");
    }
    pw.clear_faults();
    check_metrics(&server, &pw.call_log(), pw_operation);
}

#[test]
fn pageworks_refused_client_credentials_answer_502_naming_upstream_auth() {
    let pw = Pageworks::start(25, PW_CLIENT_ID, PW_CLIENT_SECRET);
    seed_pageworks(&pw, 2, 2, 5, 2);
    let server = start_pageworks(&pw, "not-the-secret");
    for path in ["/accounts", "/transactions", "/accounts/x/balances"] {
        let response = server.get(path);
        assert_eq!(response.status, 502, "{path}: {response:?}");
        let detail = response.json()["Detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("upstream.auth"), "{path}: {detail}");
    }
    assert_eq!(pw.calls("/api/"), 0, "no API call without a token");
    assert!(pw.token_requests() >= 3);
    check_metrics(&server, &pw.call_log(), pw_operation);
}

#[test]
fn pageworks_reuses_its_oauth2_token_and_refreshes_it() {
    let pw = Pageworks::start(26, PW_CLIENT_ID, PW_CLIENT_SECRET);
    seed_pageworks(&pw, 10, 8, 300, 20);
    let truth = pw_truth(&pw);
    let server = start_pageworks(&pw, PW_CLIENT_SECRET);
    let mut poller = Poller::new(&base_url(&server), API_KEY, 100);
    for kind in Kind::ALL {
        sync(&mut poller, kind, "pageworks oauth");
        check_received(&poller, kind, &truth[&kind], "pageworks oauth");
    }
    check_pw_balances(&mut poller, &pw, "pageworks oauth");
    assert_eq!(pw.token_requests(), 1, "one token for the whole sync");
    assert_eq!(pw.tokens_issued(), 1);

    // The provider revokes the token early: one 401, one new token, and the answer.
    pw.expire_tokens();
    let mut poller = Poller::new(&base_url(&server), API_KEY, 100);
    sync(&mut poller, Kind::Accounts, "after revocation");
    check_received(
        &poller,
        Kind::Accounts,
        &truth[&Kind::Accounts],
        "after revocation",
    );
    assert_eq!(pw.token_requests(), 2);
    let refused = pw.call_log().iter().filter(|c| c.status == 401).count();
    assert_eq!(refused, 1, "{:?}", pw.call_log());
    check_metrics(&server, &pw.call_log(), pw_operation);

    // Short-lived tokens: reused while fresh, replaced before the provider refuses them.
    pw.set_token_ttl(Duration::from_secs(3));
    pw.reset_calls();
    let before = pw.token_requests();
    let server = start_pageworks(&pw, PW_CLIENT_SECRET);
    for path in ["/accounts", "/beneficiaries", "/transactions"] {
        let response = server.get(path);
        assert_eq!(response.status, 200, "{path}: {response:?}");
    }
    assert_eq!(pw.token_requests() - before, 1, "a fresh token is reused");
    std::thread::sleep(Duration::from_millis(3_200));
    for path in ["/accounts?page=2", "/transactions?page=2"] {
        let response = server.get(path);
        assert_eq!(response.status, 200, "{path}: {response:?}");
    }
    assert_eq!(pw.token_requests() - before, 2, "the token was renewed");
    assert!(
        pw.call_log().iter().all(|c| c.status == 200),
        "renewed before it was refused: {:?}",
        pw.call_log()
    );
}

#[test]
fn pageworks_owner_name_comes_from_the_rust_function_in_handlers() {
    let pw = Pageworks::start(27, PW_CLIENT_ID, PW_CLIENT_SECRET);
    pw.seed_counterparties(6);
    let padded = pw.add_counterparty("\t Emmy   Noether  ", None);
    let truth = pw_truth(&pw);
    let server = start_pageworks(&pw, PW_CLIENT_SECRET);
    let mut poller = Poller::new(&base_url(&server), API_KEY, 7);
    sync(&mut poller, Kind::Beneficiaries, "owner names");
    check_received(
        &poller,
        Kind::Beneficiaries,
        &truth[&Kind::Beneficiaries],
        "owner names",
    );
    assert_eq!(
        poller.record(Kind::Beneficiaries, &padded).unwrap()["ownerName"],
        "Emmy   Noether"
    );
    // A holder without a name: the function's error, in context, as a 502.
    pw.add_counterparty("   ", None);
    let response = server.get("/beneficiaries");
    assert_eq!(response.status, 502, "{response:?}");
    let detail = response.json()["Detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("getBeneficiaries")
            && detail.contains("ownerName")
            && detail.contains("the counterparty has no holder name"),
        "{detail}"
    );
    let metrics = server.request("GET", "/metrics").send().text();
    assert!(
        metrics.contains(
            "connector_conversion_failures_total{field=\"getBeneficiaries.ownerName\"} 1"
        ),
        "{metrics}"
    );
}

#[test]
fn a_fresh_handlers_file_stubs_each_rust_function_with_its_signature() {
    let krate = TestCrate::empty("mapped-rust-stub", "stubworks");
    let mapping = fs::read_to_string(
        support::workspace().join("generated-examples/pageworks/connector.yaml"),
    )
    .unwrap()
    .replace("name: pageworks", "name: stubworks");
    krate.write("connector.yaml", &mapping);
    krate.generate(None, &[]).assert_code(0);
    let handlers = krate.read("src/handlers.rs");
    assert!(
        handlers.contains(
            "pub fn owner_name(record: &serde_json::Value) -> Result<String, ConversionError> {"
        ),
        "{handlers}"
    );
    assert!(
        handlers.contains("use crate::generated::convert::ConversionError;"),
        "{handlers}"
    );

    let pw = Pageworks::start(28, PW_CLIENT_ID, PW_CLIENT_SECRET);
    pw.seed_counterparties(2);
    let env = [
        ("PAGEWORKS_BASE_URL".to_owned(), pw.url()),
        ("PAGEWORKS_TOKEN_URL".to_owned(), pw.token_url()),
        ("PAGEWORKS_CLIENT_ID".to_owned(), PW_CLIENT_ID.to_owned()),
        (
            "PAGEWORKS_CLIENT_SECRET".to_owned(),
            PW_CLIENT_SECRET.to_owned(),
        ),
    ];
    let server = Server::start(&krate.build(), &env);
    let response = server.get("/beneficiaries");
    assert_eq!(response.status, 502, "{response:?}");
    let detail = response.json()["Detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("ownerName") && detail.contains("owner_name is not written yet"),
        "{detail}"
    );
}
