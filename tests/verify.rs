//! `connector-gen verify` over real sockets: a correct connector passes, each deliberately
//! broken one is caught with the finding that names its flaw, the generated examples pass
//! against their mock providers, and the exit codes say which is which.

mod support;

use std::fs;
use std::net::TcpListener;

use serde_json::Value;

use support::fake_connector::{FAKE_KEY, FakeConnector, Flaws};
use support::mock_cursor::Cursorpay;
use support::mock_pages::Pageworks;
use support::{API_KEY, Run, Server, TestCrate, connector_gen, workspace};

/// `verify URL --api-key KEY --report FILE EXTRA...`; returns the run and the JSON report.
fn verify(url: &str, key: &str, extra: &[&str]) -> (Run, Value) {
    let dir = workspace().join("target/verify-reports");
    fs::create_dir_all(&dir).unwrap();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let report = dir.join(format!("{}-{n}.json", std::process::id()));
    let _ = fs::remove_file(&report);
    let mut args = vec!["verify", url, "--api-key", key, "--quiet", "--report"];
    let report_arg = report.display().to_string();
    args.push(&report_arg);
    args.extend_from_slice(extra);
    let run = connector_gen(&args);
    let json = fs::read_to_string(&report)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    (run, json)
}

fn checks(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .map(|findings| {
            findings
                .iter()
                .map(|f| f["check"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn finding<'r>(report: &'r Value, check: &str) -> &'r Value {
    report["findings"]
        .as_array()
        .and_then(|findings| findings.iter().find(|f| f["check"] == check))
        .unwrap_or_else(|| panic!("no {check} finding in {report:#}"))
}

/// Verifies a fake connector with `flaws`, expecting exit 1 and the `check` finding.
#[track_caller]
fn caught(flaws: Flaws, extra: &[&str], check: &str) -> Value {
    let fake = FakeConnector::start(flaws);
    let (run, report) = verify(&fake.url(), FAKE_KEY, extra);
    run.assert_code(1);
    let found = finding(&report, check).clone();
    assert!(
        run.stdout.contains(found["summary"].as_str().unwrap()),
        "the summary is printed\n{run}"
    );
    found
}

#[test]
fn a_correct_connector_passes_with_payments_replayed_and_linked() {
    let fake = FakeConnector::start(Flaws::default());
    let (run, report) = verify(&fake.url(), FAKE_KEY, &["--initiate"]);
    run.assert_code(0);
    assert_eq!(checks(&report), Vec::<String>::new(), "{report:#}");
    assert!(run.stdout.contains("no findings"), "{run}");
    assert_eq!(report["initiations_checked"], 2, "{report:#}");
    assert_eq!(report["balances_checked"], 3);
    assert_eq!(report["page_sizes"], serde_json::json!([100, 7]));
    for list in report["lists"].as_array().unwrap() {
        assert_eq!(list["served"], list["ingested"], "{list}");
    }
    let lists = report["lists"].as_array().unwrap();
    let transactions = lists
        .iter()
        .find(|l| l["list"] == "transactions" && l["page_size"] == 7)
        .unwrap();
    assert_eq!(transactions["served"], 60);
    assert!(report["requests"].as_u64().unwrap() > 20);
}

#[test]
fn ties_served_as_they_are_lose_records_at_page_boundaries() {
    let found = caught(
        Flaws {
            ties_as_is: true,
            ..Flaws::default()
        },
        &["--page-size", "7"],
        "ties-lost",
    );
    assert_eq!(found["endpoint"], "GET /transactions");
    assert_eq!(found["effect"], "record-lost-forever");
    // Bursts of 10 cut after 7: 3 of each burst of 6 are skipped.
    assert_eq!(found["count"], 18, "{found:#}");
    assert_eq!(
        found["example"]["lost"]["updatedAt"], found["example"]["batchEndedWith"]["updatedAt"],
        "{found:#}"
    );
}

#[test]
fn descending_order_is_caught() {
    let found = caught(
        Flaws {
            descending: true,
            ..Flaws::default()
        },
        &[],
        "unsorted",
    );
    assert_eq!(found["endpoint"], "GET /accounts");
    assert_eq!(found["example"].as_array().unwrap().len(), 2);
}

#[test]
fn an_enum_value_outside_the_spec_rejects_the_page() {
    let found = caught(
        Flaws {
            bad_enum: true,
            ..Flaws::default()
        },
        &["--page-size", "100"],
        "undecodable",
    );
    assert_eq!(found["endpoint"], "GET /transactions");
    assert_eq!(found["effect"], "page-rejected");
    assert_eq!(found["example"]["status"], "SETTLED", "{found:#}");
    assert_eq!(found["example"]["id"], "tx_025");
    assert!(found["summary"].as_str().unwrap().contains("/24/status"));
}

#[test]
fn an_exclusive_time_filter_is_caught() {
    let found = caught(
        Flaws {
            exclusive_filter: true,
            ..Flaws::default()
        },
        &[],
        "exclusive-filter",
    );
    assert_eq!(found["effect"], "record-lost-forever");
    assert!(
        found["example"]["request"]
            .as_str()
            .unwrap()
            .contains("From=2026-03-01T12%3A"),
        "{found:#}"
    );
}

#[test]
fn a_short_page_before_the_end_is_caught() {
    let found = caught(
        Flaws {
            short_page: true,
            ..Flaws::default()
        },
        &["--page-size", "7"],
        "short-page",
    );
    assert_eq!(found["effect"], "cycle-cut-short");
}

#[test]
fn a_change_without_a_new_updated_at_is_caught() {
    let found = caught(
        Flaws {
            silent_change: true,
            ..Flaws::default()
        },
        &["--page-size", "100"],
        "silent-change",
    );
    assert_eq!(found["example"]["ingested"]["status"], "SUCCEEDED");
    assert_eq!(found["example"]["servedNow"]["status"], "FAILED");
}

#[test]
fn a_connector_without_authentication_is_caught() {
    caught(
        Flaws {
            no_auth: true,
            ..Flaws::default()
        },
        &["--page-size", "100"],
        "no-auth",
    );
}

#[test]
fn a_replay_that_pays_twice_is_caught() {
    let found = caught(
        Flaws {
            replay_pays_twice: true,
            ..Flaws::default()
        },
        &["--page-size", "100", "--initiate"],
        "paid-twice",
    );
    assert_eq!(found["endpoint"], "POST /payouts");
    assert_eq!(found["effect"], "paid-twice");
}

#[test]
fn an_unlinked_payment_transaction_is_caught() {
    let found = caught(
        Flaws {
            unlinked: true,
            ..Flaws::default()
        },
        &["--page-size", "100", "--initiate", "--source", "acc_2"],
        "unlinked",
    );
    assert_eq!(found["effect"], "recorded-twice");
    assert_eq!(found["example"]["type"], "PAYOUT");
    assert_eq!(found["example"]["sourceAccountID"], "acc_2");
}

#[test]
fn exit_code_2_for_an_unreachable_connector_a_refused_key_or_bad_usage() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (run, _) = verify(&format!("http://127.0.0.1:{port}"), "k", &[]);
    run.assert_code(2);
    assert!(run.stderr.contains("cannot reach"), "{run}");

    let fake = FakeConnector::start(Flaws::default());
    let (run, _) = verify(&fake.url(), "wrong-key", &[]);
    run.assert_code(2);
    assert!(run.stderr.contains("refused the API key (401)"), "{run}");

    let (run, _) = verify(&format!("{}/v2", fake.url()), FAKE_KEY, &[]);
    run.assert_code(2);
    assert!(run.stderr.contains("answered 404: is"), "{run}");

    let (run, _) = verify(&fake.url(), FAKE_KEY, &["--page-size", "0"]);
    run.assert_code(2);
    let (run, _) = verify("ftp://example.invalid", FAKE_KEY, &[]);
    run.assert_code(2);
    let run = connector_gen(["verify", &fake.url()]);
    run.assert_code(2);
}

#[test]
fn progress_goes_to_stderr_and_the_summary_to_stdout() {
    let fake = FakeConnector::start(Flaws::default());
    let run = connector_gen([
        "verify",
        &fake.url(),
        "--api-key",
        FAKE_KEY,
        "--page-size",
        "50",
    ]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("verify: transactions at page size 50"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("transactions   page size   50: 60 served, 60 ingested"),
        "{run}"
    );
}

// =============================================================================================
// The generated examples against their mock providers
// =============================================================================================

fn build_example(name: &str) -> std::path::PathBuf {
    TestCrate::from_example(&format!("verify-{name}"), name, name, |text| text).build()
}

#[test]
fn the_cursorpay_example_passes_with_payouts_and_transfers() {
    let binary = build_example("cursorpay");
    let cp = Cursorpay::start(31, "sk_test_verify");
    cp.seed_accounts(8);
    cp.seed_recipients(6);
    cp.seed_transactions(400, 25);
    // Payments made now come after every seeded record.
    cp.advance(120);
    let env = [
        ("CURSORPAY_BASE_URL".to_owned(), cp.url()),
        ("CURSORPAY_API_KEY".to_owned(), "sk_test_verify".to_owned()),
    ];
    let server = Server::start(&binary, &env);
    let url = format!("http://{}", server.addr);
    let (run, report) = verify(&url, API_KEY, &["--initiate"]);
    run.assert_code(0);
    assert_eq!(checks(&report), Vec::<String>::new(), "{run}");
    assert_eq!(report["initiations_checked"], 2, "{report:#}");
    assert_eq!(report["balances_checked"], 8);
    assert_eq!(
        cp.accepted(),
        2,
        "one payout and one transfer reached the provider"
    );
}

#[test]
fn the_pageworks_example_passes() {
    let binary = build_example("pageworks");
    let pw = Pageworks::start(32, "pw-verify", "pw-verify-secret");
    pw.seed_accounts(8);
    pw.seed_counterparties(6);
    pw.seed_transactions(400, 25);
    let env = [
        ("PAGEWORKS_BASE_URL".to_owned(), pw.url()),
        ("PAGEWORKS_TOKEN_URL".to_owned(), pw.token_url()),
        ("PAGEWORKS_CLIENT_ID".to_owned(), "pw-verify".to_owned()),
        (
            "PAGEWORKS_CLIENT_SECRET".to_owned(),
            "pw-verify-secret".to_owned(),
        ),
    ];
    let server = Server::start(&binary, &env);
    let url = format!("http://{}", server.addr);
    let (run, report) = verify(&url, API_KEY, &["--page-size", "100,7,1", "--initiate"]);
    run.assert_code(0);
    assert_eq!(checks(&report), Vec::<String>::new(), "{run}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("createPayout: not implemented (501), skipped"),
        "{notes}"
    );
}
