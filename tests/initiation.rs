//! Payment initiation end to end: the `cursorpay` example (generated from its connector.yaml,
//! built, started on loopback) in front of the Cursorpay mock, driven the way Formance drives
//! it: the same `idempotencyKey` again after time-outs, 5xx, 425 and restarts. What is
//! checked is the provider's ground truth: how many payments it holds per key.
//!
//! Each test has its own mock and its own store, except the PostgreSQL one, which starts its
//! own server from the distribution's packages.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};

use support::formance::{Kind, Poller};
use support::initiate::{created_id, initiate, initiate_at, post_once};
use support::mock_cursor::Cursorpay;
use support::postgres::Postgres;
use support::{API_KEY, Server, TestCrate, error_detail, fresh_store_path};

const CP_TOKEN: &str = "sk_test_initiation";

fn binary() -> &'static PathBuf {
    static BINARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    built_once(&BINARY, "cursorpay", |mapping| mapping)
}

/// The cursorpay example built with `--features postgres`, as replicas sharing a store are.
fn postgres_binary() -> &'static PathBuf {
    static BINARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            std::panic::catch_unwind(|| {
                let rename = |mapping: String| mapping.replace("name: cursorpay", "name: cursorpg");
                TestCrate::from_example("initiation-cursorpg", "cursorpay", "cursorpg", rename)
                    .build_with_features(&["postgres"])
            })
            .ok()
        })
        .as_ref()
        .expect("generating or building cursorpg failed; see the first failing test")
}

/// The cursorpay example without its `lookup`s: only the key it forwards protects a retry.
fn binary_without_lookup() -> &'static PathBuf {
    static BINARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    built_once(&BINARY, "keyonly", without_lookups)
}

/// Builds once per test binary; a failed build fails every test that needs it.
fn built_once(
    cell: &'static OnceLock<Option<PathBuf>>,
    name: &str,
    mapping: fn(String) -> String,
) -> &'static PathBuf {
    cell.get_or_init(|| std::panic::catch_unwind(|| build(name, mapping)).ok())
        .as_ref()
        .unwrap_or_else(|| {
            panic!("generating or building {name} failed; see the first failing test")
        })
}

fn without_lookups(mapping: String) -> String {
    let mut kept = Vec::new();
    let mut skipping = false;
    for line in mapping.lines() {
        if line.trim_start().starts_with("lookup:") {
            skipping = true;
            continue;
        }
        if skipping && (line.starts_with("      ") || line.trim().is_empty()) {
            continue;
        }
        skipping = false;
        kept.push(line);
    }
    let text = kept.join("\n") + "\n";
    assert!(!text.contains("lookup"), "{text}");
    text.replace("name: cursorpay", "name: keyonly")
}

/// The cursorpay example as it is checked in (its connector.yaml, edited by `mapping`, and
/// user files), generated anew and built into the shared e2e target.
fn build(name: &str, mapping: impl Fn(String) -> String) -> PathBuf {
    TestCrate::from_example(&format!("initiation-{name}"), "cursorpay", name, mapping).build()
}

fn start(cp: &Cursorpay, extra: &[(&str, &str)]) -> Server {
    start_binary(binary(), cp, extra)
}

fn start_binary(executable: &Path, cp: &Cursorpay, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("CURSORPAY_BASE_URL".to_owned(), cp.url()),
        ("CURSORPAY_API_KEY".to_owned(), CP_TOKEN.to_owned()),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Server::start(executable, &env)
}

fn payout(key: &str, amount: &str) -> Value {
    json!({
        "idempotencyKey": key,
        "amount": amount,
        "currency": "EUR/2",
        "sourceAccountId": "acct_1",
        "destinationAccountId": "rcp_1",
        "description": "invoice 42",
        "metadata": {"order": "42"},
    })
}

fn transfer(key: &str, amount: &str) -> Value {
    json!({
        "idempotencyKey": key,
        "amount": amount,
        "currency": "JPY/0",
        "sourceAccountId": "acct_1",
        "destinationAccountId": "acct_2",
    })
}

/// Every transaction the connector serves, synced as Formance does.
fn synced_transactions(server: &Server) -> Vec<Value> {
    let mut poller = Poller::new(&format!("http://{}", server.addr), API_KEY, 10);
    poller.sync(Kind::Transactions).unwrap();
    poller
        .records(Kind::Transactions)
        .values()
        .map(|record| record.json.clone())
        .collect()
}

// =============================================================================================
// One key, one payment
// =============================================================================================

#[test]
fn a_payout_is_sent_in_the_providers_terms_and_echoed_in_the_protocols() {
    let cp = Cursorpay::start(1, CP_TOKEN);
    let server = start(&cp, &[]);
    let (status, body) = initiate(&server, "/payouts", &payout("key-echo", "1234"));
    let id = created_id(status, &body);
    assert_eq!(body["idempotencyKey"], "key-echo");
    assert_eq!(body["amount"], "1234");
    assert_eq!(body["currency"], "EUR/2");
    assert_eq!(body["sourceAccountId"], "acct_1");
    assert_eq!(body["destinationAccountId"], "rcp_1");
    assert_eq!(body["status"], "PENDING");
    assert!(
        body["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );
    let sent = cp.payouts();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["id"], id.as_str());
    assert_eq!(sent[0]["amount"], "12.34");
    assert_eq!(sent[0]["currency"], "eur");
    assert_eq!(sent[0]["reference"], "key-echo");
    assert_eq!(sent[0]["metadata"], json!({"order": "42"}));

    let (status, body) = initiate(&server, "/transfers", &transfer("key-jpy", "1500"));
    created_id(status, &body);
    assert_eq!(cp.transfers()[0]["amount"], "1500");
    assert_eq!(cp.transfers()[0]["currency"], "jpy");
}

#[test]
fn a_retry_gets_the_stored_answer_and_a_different_request_a_409() {
    let cp = Cursorpay::start(2, CP_TOKEN);
    let server = start(&cp, &[]);
    let (status, first) = initiate(&server, "/payouts", &payout("key-retry", "500"));
    created_id(status, &first);
    let posts = cp.initiation_posts();
    for _ in 0..3 {
        let (status, again) = initiate(&server, "/payouts", &payout("key-retry", "500"));
        assert_eq!(status, 201);
        assert_eq!(again, first, "a retry must get the very same answer");
    }
    assert_eq!(
        cp.initiation_posts(),
        posts,
        "a retry must not reach the provider"
    );

    let mut changed = payout("key-retry", "501");
    changed["currency"] = json!("USD/2");
    let response = server.post_json("/payouts", &changed);
    assert_eq!(response.status, 409, "{response:?}");
    let detail = response.json()["Detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("amount, currency"), "{detail}");
    assert!(detail.contains("key-retry"), "{detail}");
    assert_eq!(cp.payments_for_reference("key-retry"), 1);
    let metrics = server.get("/metrics").text();
    for counted in [
        "connector_initiations_total{operation=\"createPayout\",outcome=\"first\"} 1",
        "connector_initiations_total{operation=\"createPayout\",outcome=\"replayed\"} 3",
        "connector_initiations_total{operation=\"createPayout\",outcome=\"conflict\"} 1",
    ] {
        assert!(metrics.contains(counted), "{counted} not in:\n{metrics}");
    }
}

#[test]
fn fifty_simultaneous_requests_with_one_key_make_one_payment() {
    let cp = Cursorpay::start(3, CP_TOKEN);
    cp.set_initiation_latency(Duration::from_millis(300));
    let server = Arc::new(start(&cp, &[]));
    let barrier = Arc::new(Barrier::new(50));
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let (server, barrier) = (Arc::clone(&server), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let (status, body) = initiate(&server, "/payouts", &payout("key-50", "999"));
                created_id(status, &body)
            })
        })
        .collect();
    let ids: BTreeSet<String> = callers.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(ids.len(), 1, "callers got different payments: {ids:?}");
    assert_eq!(cp.payments_for_reference("key-50"), 1);
    assert_eq!(cp.initiation_posts(), 1, "one request reaches the provider");
}

#[test]
fn provider_failures_after_it_accepted_do_not_pay_twice() {
    let cp = Cursorpay::start(4, CP_TOKEN);
    // Half the POSTs fail after the provider made the payment, a quarter before.
    cp.set_initiation_faults(250, 500);
    let server = start(&cp, &[]);
    for n in 0..20 {
        let key = format!("key-faulty-{n}");
        let (status, body) = initiate(&server, "/payouts", &payout(&key, "100"));
        let id = created_id(status, &body);
        assert_eq!(cp.payments_for_reference(&key), 1, "{key}");
        let (_, again) = initiate(&server, "/payouts", &payout(&key, "100"));
        assert_eq!(again["id"], id.as_str());
    }
    assert!(cp.duplicate_references().is_empty());
    assert!(cp.initiation_posts() > 20, "the faults were not exercised");
}

#[test]
fn a_payment_the_provider_refuses_is_a_final_400_given_again_on_retries() {
    let cp = Cursorpay::start(10, CP_TOKEN);
    let server = start(&cp, &[]);
    let mut refused = payout("key-refused", "100");
    refused["sourceAccountId"] = json!("");
    let response = server.post_json("/payouts", &refused);
    let detail = error_detail(&response, 400);
    assert!(
        detail.contains("the provider refused POST /v1/payouts"),
        "{detail}"
    );
    let again = server.post_json("/payouts", &refused);
    assert_eq!(error_detail(&again, 400), detail);
    assert_eq!(
        cp.initiation_posts(),
        1,
        "the stored refusal is given again"
    );
}

/// Kills the connector while the provider holds its answer to an accepted payout, restarts
/// it on the same store and retries as Formance does; returns the restarted server.
fn crash_and_retry(
    binary: &Path,
    cp: &Cursorpay,
    key: &str,
    before_retry: impl Fn(&Server),
) -> Server {
    let store = fresh_store_path();
    let settings = [
        ("CONNECTOR_STORE", store.as_str()),
        ("CONNECTOR_INITIATION_TIMEOUT", "2s"),
    ];
    let server = start_binary(binary, cp, &settings);
    cp.hold_initiations(true);
    let addr = server.addr;
    let request = payout(key, "4200");
    let body = request.clone();
    let caller = std::thread::spawn(move || post_once(addr, "/payouts", &body));
    assert!(
        cp.wait_accepted(1, Duration::from_secs(30)),
        "the provider never got the payout"
    );
    let pid = server.process.pid().to_string();
    support::Run::of(std::process::Command::new("kill").args(["-KILL", &pid])).assert_code(0);
    assert_eq!(
        caller.join().unwrap(),
        None,
        "the caller must see the connection fail"
    );
    drop(server);
    cp.hold_initiations(false);

    let restarted = start_binary(binary, cp, &settings);
    before_retry(&restarted);
    let (status, body) = initiate(&restarted, "/payouts", &request);
    let id = created_id(status, &body);
    assert_eq!(cp.payments_for_reference(key), 1);
    assert_eq!(cp.payouts()[0]["id"], id.as_str());
    assert!(
        restarted.process.logs().contains("recovering it"),
        "{}",
        restarted.process.logs()
    );
    restarted
}

#[test]
fn a_crash_is_recovered_by_the_forwarded_key_alone() {
    let cp = Cursorpay::start(11, CP_TOKEN);

    crash_and_retry(binary_without_lookup(), &cp, "key-crash-keyonly", |_| {});
    assert_eq!(
        cp.initiation_posts(),
        2,
        "the retry sends the payout again, with the same key"
    );
}

#[test]
fn a_connector_killed_after_the_provider_accepted_does_not_pay_again() {
    let cp = Cursorpay::start(5, CP_TOKEN);
    // Formance may poll transactions before it retries the payout: the provider's transaction
    // is already there, and must carry the key.
    let linked_before_the_retry = |server: &Server| {
        let served = synced_transactions(server);
        assert_eq!(served.len(), 1);
        assert_eq!(
            served[0]["relatedTransactionID"], "key-crash",
            "{}",
            served[0]
        );
        assert_eq!(served[0]["type"], "PAYOUT");
    };
    crash_and_retry(binary(), &cp, "key-crash", linked_before_the_retry);
    assert_eq!(
        cp.initiation_posts(),
        1,
        "the recovery looks the payout up instead of paying"
    );
}

#[test]
fn an_attempt_past_its_time_out_is_stopped_and_recovered_by_the_retry() {
    let cp = Cursorpay::start(12, CP_TOKEN);
    cp.set_initiation_latency(Duration::from_millis(1500));
    let server = start(&cp, &[("CONNECTOR_INITIATION_TIMEOUT", "1s")]);
    let first = server.post_json("/payouts", &payout("key-slow", "800"));
    assert_eq!(first.status, 503, "{first:?}");
    let (status, body) = initiate(&server, "/payouts", &payout("key-slow", "800"));
    let id = created_id(status, &body);
    assert_eq!(cp.payments_for_reference("key-slow"), 1);
    assert_eq!(cp.payouts()[0]["id"], id.as_str());
}

// =============================================================================================
// Linking: the provider's transaction carries Formance's key
// =============================================================================================

#[test]
fn transactions_of_initiated_payments_carry_the_key_also_after_a_restart() {
    let cp = Cursorpay::start(6, CP_TOKEN);
    let store = fresh_store_path();
    let settings = [("CONNECTOR_STORE", store.as_str())];
    let server = start(&cp, &settings);
    let (status, paid) = initiate(&server, "/payouts", &payout("key-link-payout", "700"));
    let payout_id = created_id(status, &paid);
    let (status, moved) = initiate(&server, "/transfers", &transfer("key-link-transfer", "300"));
    let transfer_id = created_id(status, &moved);
    cp.advance(5);

    let check = |server: &Server| {
        let mut poller = Poller::new(&format!("http://{}", server.addr), API_KEY, 10);
        poller.sync(Kind::Transactions).unwrap();
        let records = poller.records(Kind::Transactions);
        let with = |origin: &str| {
            let id = cp
                .transactions()
                .into_iter()
                .find(|t| t.origin.as_deref() == Some(origin))
                .unwrap_or_else(|| panic!("the provider has no transaction from {origin}"))
                .id;
            records
                .get(&id)
                .unwrap_or_else(|| panic!("transaction {id} was not served"))
                .json
                .clone()
        };
        let payout_tx = with(&payout_id);
        assert_eq!(
            payout_tx["relatedTransactionID"], "key-link-payout",
            "{payout_tx}"
        );
        assert_eq!(payout_tx["type"], "PAYOUT");
        let transfer_tx = with(&transfer_id);
        assert_eq!(
            transfer_tx["relatedTransactionID"], "key-link-transfer",
            "{transfer_tx}"
        );
        assert_eq!(transfer_tx["type"], "TRANSFER");
        records.len()
    };
    let served = check(&server);
    assert_eq!(served, cp.transactions().len());
    drop(server);
    let restarted = start(&cp, &settings);
    check(&restarted);
}

#[test]
fn a_payout_made_elsewhere_is_not_linked() {
    let cp = Cursorpay::start(7, CP_TOKEN);
    let server = start(&cp, &[]);
    // Made directly at the provider, as from its dashboard: an origin the store never saw.
    let direct = support::formance::http_request(
        "POST",
        &format!("{}/v1/payouts", cp.url()),
        &[
            ("Authorization", &format!("Bearer {CP_TOKEN}")),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"amount":"1.00","currency":"eur","source":"acct_1","destination":"rcp_1","reference":"dashboard"}"#),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(direct.status, 200, "{}", direct.text());
    let served = synced_transactions(&server);
    assert_eq!(served.len(), 1);
    assert_eq!(served[0]["type"], "PAYOUT");
    assert!(
        served[0]
            .get("relatedTransactionID")
            .is_none_or(Value::is_null),
        "{}",
        served[0]
    );
}

// =============================================================================================
// Bad input never reaches the provider
// =============================================================================================

#[test]
fn malformed_payouts_are_400s_naming_the_field_and_never_reach_the_provider() {
    let cp = Cursorpay::start(8, CP_TOKEN);
    let server = start(&cp, &[]);
    let forty_digits = "1".repeat(40);
    let cases: Vec<(Value, &str)> = vec![
        (payout("k1", "12.5"), "amount"),
        (payout("k2", ""), "amount"),
        (payout("k3", "-1"), "amount"),
        (payout("k4", "0"), "amount"),
        (payout("k5", "1e3"), "amount"),
        (payout("k6", &forty_digits), "amount"),
        (
            json!({"idempotencyKey": "k7", "amount": 100, "currency": "EUR/2", "sourceAccountId": "a", "destinationAccountId": "b"}),
            "amount",
        ),
        (
            {
                let mut p = payout("k8", "100");
                p["currency"] = json!("XXQ/2");
                p
            },
            "currency",
        ),
        (
            {
                let mut p = payout("k9", "100");
                p["currency"] = json!("eur");
                p
            },
            "currency",
        ),
        (
            {
                let mut p = payout("k10", "100");
                p["currency"] = json!("EUR/3");
                p
            },
            "currency",
        ),
        (
            {
                let mut p = payout("k11", "100");
                p.as_object_mut().unwrap().remove("sourceAccountId");
                p
            },
            "sourceAccountId",
        ),
        (
            {
                let mut p = payout("k12", "100");
                p.as_object_mut().unwrap().remove("idempotencyKey");
                p
            },
            "idempotencyKey",
        ),
        (
            {
                let mut p = payout("k13", "100");
                p["metadata"] = json!({"n": 1});
                p
            },
            "metadata",
        ),
        (payout("", "100"), "idempotencyKey"),
        (payout(&"k".repeat(256), "100"), "idempotencyKey"),
    ];
    for (body, field) in cases {
        let response = server.post_json("/payouts", &body);
        let detail = error_detail(&response, 400);
        assert!(
            detail.contains(field),
            "{body}: {detail:?} does not name {field}"
        );
    }
    let response = server.post_json("/transfers", &transfer("", "100"));
    assert!(error_detail(&response, 400).contains("idempotencyKey"));
    assert_eq!(
        cp.initiation_posts(),
        0,
        "a bad request reached the provider"
    );
    let metrics = server.request("GET", "/metrics").send().text();
    assert!(
        !metrics
            .lines()
            .any(|line| line.starts_with("connector_initiations_total{")),
        "a bad request reached the store:\n{metrics}"
    );
}

// =============================================================================================
// Two replicas on one PostgreSQL
// =============================================================================================

#[test]
fn two_replicas_on_one_postgres_make_one_payment_per_key() {
    let postgres = Postgres::start("initiation").unwrap_or_else(|e| panic!("{e}"));
    let url = postgres.url();
    let cp = Cursorpay::start(9, CP_TOKEN);
    cp.set_initiation_latency(Duration::from_millis(200));
    let settings = [("DATABASE_URL", url.as_str())];
    let replicas = [
        start_binary(postgres_binary(), &cp, &settings),
        start_binary(postgres_binary(), &cp, &settings),
    ];
    let addrs: Vec<std::net::SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    let keys = ["pg-key-1", "pg-key-2", "pg-key-3"];
    let barrier = Arc::new(Barrier::new(keys.len() * 20));
    let callers: Vec<_> = (0..keys.len() * 20)
        .map(|n| {
            let (addrs, barrier) = (addrs.clone(), Arc::clone(&barrier));
            let key = keys[n % keys.len()];
            std::thread::spawn(move || {
                barrier.wait();
                let (status, body) = initiate_at(&addrs, "/payouts", &payout(key, "250"), n);
                (key, created_id(status, &body))
            })
        })
        .collect();
    let results: Vec<(&str, String)> = callers.into_iter().map(|c| c.join().unwrap()).collect();
    for key in keys {
        let ids: BTreeSet<&String> = results
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, id)| id)
            .collect();
        assert_eq!(
            ids.len(),
            1,
            "{key}: callers got different payments: {ids:?}"
        );
        assert_eq!(cp.payments_for_reference(key), 1, "{key}");
    }
    assert_eq!(cp.initiation_posts(), keys.len());
    let stored = postgres
        .psql("SELECT count(*) FROM connector_initiations WHERE status = 201")
        .unwrap();
    assert_eq!(stored.trim(), "3");
    // A replica of an older connector refuses a store a newer one set up.
    postgres
        .psql("UPDATE connector_schema SET version = 99")
        .unwrap();
    let mut older = support::Process::spawn(
        std::process::Command::new(postgres_binary())
            .env("CONNECTOR_API_KEY", API_KEY)
            .env("CONNECTOR_LISTEN", "127.0.0.1:0")
            .env("CURSORPAY_BASE_URL", cp.url())
            .env("CURSORPAY_API_KEY", CP_TOKEN)
            .env("DATABASE_URL", &url),
    );
    assert!(!older.wait_exit().success());
    assert!(
        older
            .logs()
            .contains("its schema is version 99, newer than this connector's 2"),
        "{}",
        older.logs()
    );
    for replica in &replicas {
        assert!(
            replica
                .process
                .logs()
                .contains("initiation store ready store=postgres://"),
            "{}",
            replica.process.logs()
        );
    }
}
