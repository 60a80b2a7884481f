//! `connector-gen preview`: a mapping's records from a saved provider answer, checked against
//! what the generated connector serves for the same answer, and its reports and refusals.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use support::mock_http::{MockServer, Request, Response, lock};
use support::sync_check::{base_url, example};
use support::{Run, Server, connector_gen, workspace};

const TOKEN: &str = "sk_test_preview";

fn cursorpay_mapping() -> PathBuf {
    workspace().join("generated-examples/cursorpay/connector.yaml")
}

/// A page of Cursorpay transactions: ties on the second, newest first, three currencies,
/// unknown types (the fallback), optional sides and descriptions.
fn transactions(count: usize) -> Value {
    let types = ["payment", "payout", "transfer", "refund", "chargeback"];
    let statuses = ["succeeded", "pending", "failed", "canceled"];
    let currencies = [("eur", "12.34"), ("usd", "-0.99"), ("jpy", "1500")];
    let mut data: Vec<Value> = (0..count)
        .map(|i| {
            let (currency, amount) = currencies[i % currencies.len()];
            let created = 1_700_000_000 + (i as i64) / 3;
            let mut record = json!({
                "id": format!("tx_{i:05}"),
                "object": "transaction",
                "created": created,
                "updated": created + (i as i64 % 7),
                "amount": amount,
                "currency": currency,
                "type": types[i % types.len()],
                "status": statuses[i % statuses.len()],
            });
            if i % 2 == 0 {
                record["source"] = json!(format!("acc_{}", i % 5));
            }
            if i % 3 == 0 {
                record["destination"] = json!(format!("acc_{}", i % 4));
                record["description"] = json!(format!("invoice {i}"));
            }
            record
        })
        .collect();
    data.reverse();
    json!({"object": "list", "data": data, "has_more": false})
}

fn write_sample(name: &str, body: &Value) -> PathBuf {
    let dir = workspace().join("target/preview-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(body).unwrap()).unwrap();
    path
}

fn preview(mapping: &std::path::Path, args: &[&str]) -> Run {
    let mut all = vec![
        "preview".to_owned(),
        "--mapping".to_owned(),
        mapping.display().to_string(),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    connector_gen(all)
}

/// `preview --live` of a cursorpay operation against the provider at `base_url`, with its API
/// key in the environment or not.
fn live(operation: &str, base_url: &str, api_key: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_connector-gen"));
    command
        .args(["preview", "--operation", operation, "--live", "--mapping"])
        .arg(cursorpay_mapping())
        .env("CURSORPAY_BASE_URL", base_url);
    match api_key {
        Some(key) => command.env("CURSORPAY_API_KEY", key),
        None => command.env_remove("CURSORPAY_API_KEY"),
    };
    Run::of(&mut command)
}

fn records(run: &Run) -> Vec<Value> {
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("preview printed no JSON ({e})\n{run}"));
    report["records"].as_array().cloned().unwrap_or_default()
}

/// Every transaction the server lists, page after page.
fn served_transactions(server: &Server) -> Vec<Value> {
    let mut all = Vec::new();
    for page in 1.. {
        let response = server.get(&format!("/transactions?pageSize=100&page={page}"));
        assert_eq!(response.status, 200, "{}", response.text());
        let items = response.json().as_array().cloned().unwrap_or_default();
        let short = items.len() < 100;
        all.extend(items);
        if short {
            break;
        }
    }
    all
}

#[test]
fn preview_prints_exactly_what_the_generated_server_serves_for_the_same_page() {
    let page = transactions(250);
    let served_page = page.clone();
    let provider = MockServer::from_fn(move |request: &Request| {
        if request.path == "/v1/transactions" && request.bearer() == Some(TOKEN) {
            Response::json(200, &served_page)
        } else {
            Response::json(404, &json!({"error": "not here"}))
        }
    });
    let built = example("cursorpay");
    let server = Server::start(
        &built.binary,
        &[
            ("CURSORPAY_BASE_URL".to_owned(), provider.url()),
            ("CURSORPAY_API_KEY".to_owned(), TOKEN.to_owned()),
        ],
    );
    let served = served_transactions(&server);
    assert_eq!(served.len(), 250, "served by {}", base_url(&server));

    let sample = write_sample("cursorpay-transactions.json", &page);
    let run = preview(
        &cursorpay_mapping(),
        &["--operation", "getTransactions", "--sample"],
    );
    run.assert_code(2);
    let run = preview(
        &cursorpay_mapping(),
        &[
            "--operation",
            "getTransactions",
            "--sample",
            &sample.display().to_string(),
        ],
    );
    run.assert_code(0);
    let previewed = records(&run);
    assert_eq!(previewed.len(), 250, "{run}");
    for (index, (preview, server)) in previewed.iter().zip(&served).enumerate() {
        assert_eq!(preview, server, "record {index} differs");
    }
    assert_eq!(previewed, served);
    assert!(
        run.stderr
            .contains("getTransactions: 250 records converted, 0 failed"),
        "{run}"
    );
}

#[test]
fn a_failing_record_names_its_field_the_provider_value_and_the_mapping_line() {
    let mut page = transactions(4);
    page["data"][1]["amount"] = json!("1.234");
    page["data"][2]
        .as_object_mut()
        .unwrap()
        .remove("created")
        .unwrap();
    let sample = write_sample("cursorpay-failing.json", &page);
    let mapping = cursorpay_mapping();
    let run = preview(
        &mapping,
        &[
            "--operation",
            "getTransactions",
            "--sample",
            &sample.display().to_string(),
        ],
    );
    run.assert_code(1);
    assert_eq!(records(&run).len(), 2, "{run}");
    let text = std::fs::read_to_string(&mapping).unwrap();
    let operation = text
        .lines()
        .position(|line| line == "  getTransactions:")
        .unwrap();
    let line_of = |needle: &str| {
        text.lines()
            .skip(operation)
            .position(|line| line == needle)
            .unwrap_or_else(|| panic!("no line {needle:?}"))
            + operation
            + 1
    };
    let amount_line =
        line_of("        amount: { currency: currency, format: decimal, sign: absolute }");
    let created_line = line_of("      createdAt: { path: created, time: unix_seconds }");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2, "{run}");
    assert_eq!(failures[0]["record"], 2);
    assert_eq!(failures[0]["pointer"], "/data/1");
    assert_eq!(failures[0]["field"], "amount");
    assert_eq!(failures[0]["value"], "1.234");
    assert_eq!(
        failures[0]["mapping"],
        format!("{}:{amount_line}:9", mapping.display())
    );
    assert!(
        failures[0]["error"]
            .as_str()
            .unwrap()
            .contains("never rounded"),
        "{run}"
    );
    assert_eq!(failures[1]["field"], "createdAt");
    assert!(failures[1].get("value").is_none(), "{run}");
    assert_eq!(
        failures[1]["mapping"],
        format!("{}:{created_line}:26", mapping.display())
    );
    // And for a person, on stderr.
    assert!(
        run.stderr
            .contains("error: record 2 of 4 (/data/1) fails at field `amount`"),
        "{run}"
    );
    assert!(run.stderr.contains("provider value: \"1.234\""), "{run}");
    assert!(
        run.stderr
            .contains(&format!("--> {}:{amount_line}:9", mapping.display())),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("getTransactions: 2 records converted, 2 failed"),
        "{run}"
    );
}

#[test]
fn format_table_prints_one_row_per_record_in_served_order() {
    let sample = write_sample("cursorpay-table.json", &transactions(3));
    let run = preview(
        &cursorpay_mapping(),
        &[
            "--operation",
            "getTransactions",
            "--sample",
            &sample.display().to_string(),
            "--format",
            "table",
        ],
    );
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{run}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        &header[..4],
        &["id", "createdAt", "updatedAt", "currency"],
        "{run}"
    );
    assert!(lines[1].starts_with("-----"), "{run}");
    assert!(lines[2].starts_with("tx_00000 "), "{run}");
    assert!(lines[3].starts_with("tx_00001 "), "{run}");
    assert!(lines[4].contains("JPY/0"), "{run}");
}

#[test]
fn live_sends_the_first_request_with_the_mappings_credentials() {
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let log = Arc::clone(&seen);
    let page = transactions(5);
    let provider = MockServer::from_fn(move |request: &Request| {
        lock(&log).push(request.clone());
        if request.bearer() != Some(TOKEN) {
            return Response::json(401, &json!({"error": "who are you"}));
        }
        Response::json(200, &page)
    });
    let run = live("getTransactions", &provider.url(), Some(TOKEN));
    run.assert_code(0);
    assert_eq!(records(&run).len(), 5, "{run}");
    let requests = lock(&seen).clone();
    assert_eq!(requests.len(), 1, "one request: {requests:?}");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/v1/transactions");
    assert_eq!(requests[0].bearer(), Some(TOKEN));
    assert_eq!(requests[0].query_param("limit"), Some("100"));
    assert!(
        run.stderr.contains("GET http://") && run.stderr.contains("-> 200"),
        "{run}"
    );
    assert!(
        !run.stderr.contains(TOKEN),
        "the token is never printed\n{run}"
    );

    // Without the credentials, the variables are named.
    let run = live("getTransactions", &provider.url(), None);
    run.assert_code(2);
    assert!(run.stderr.contains("CURSORPAY_API_KEY"), "{run}");
    assert_eq!(lock(&seen).len(), 1, "nothing sent without credentials");
}

#[test]
fn live_refuses_a_payout() {
    let run = live("createPayout", "http://127.0.0.1:9", Some(TOKEN));
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "createPayout is a POST operation (it initiates a payment): --live sends only GET requests"
        ),
        "{run}"
    );
    assert!(run.stdout.is_empty(), "{run}");
    // A request naming a protocol parameter preview has no value for is not sent either.
    let run = live("getAccountBalances", "http://127.0.0.1:9", Some(TOKEN));
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("names the protocol parameter `{accountId}`"),
        "{run}"
    );
}

#[test]
fn a_bad_sample_is_named_with_its_json_position() {
    let dir = workspace().join("target/preview-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let sample = dir.join("broken.json");
    std::fs::write(
        &sample,
        "{\n  \"data\": [\n    {\"id\": \"tx_1\",}\n  ]\n}\n",
    )
    .unwrap();
    let run = preview(
        &cursorpay_mapping(),
        &[
            "--operation",
            "getTransactions",
            "--sample",
            &sample.display().to_string(),
        ],
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!(
            "error: {}:3:19: expected the provider's JSON answer",
            sample.display()
        )),
        "{run}"
    );
    let missing = dir.join("no-such-file.json");
    let run = preview(
        &cursorpay_mapping(),
        &[
            "--operation",
            "getTransactions",
            "--sample",
            &missing.display().to_string(),
        ],
    );
    run.assert_code(2);
    assert!(
        run.stderr
            .contains(&format!("cannot read {}", missing.display())),
        "{run}"
    );
}

#[test]
fn an_unknown_operation_lists_the_mapped_ones() {
    let sample = write_sample("cursorpay-unknown.json", &transactions(1));
    let run = preview(
        &cursorpay_mapping(),
        &[
            "--operation",
            "getTransaction",
            "--sample",
            &sample.display().to_string(),
        ],
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "connector.yaml maps no operation `getTransaction` (did you mean `getTransactions`?)"
        ),
        "{run}"
    );
    assert!(
        run.stderr.contains(
            "the mapped operations are: createPayout, createTransfer, getAccountBalances, getAccounts, getBeneficiaries, getTransactions"
        ),
        "{run}"
    );
}

#[test]
fn a_fan_out_takes_its_parent_from_a_file_or_says_it_is_left_empty() {
    let mapping = workspace().join("generated-examples/nordbank/connector.yaml");
    // One page of one Nordbank account's transactions: money out names the account (the
    // parent) as its source.
    let page = json!({"content": [{
        "id": "t1", "transactionDate": "2025-03-01T10:00:00.000",
        "lastUpdated": "2025-03-01T10:00:00.000", "amount": "-12.50", "currency": "NOK",
        "type": "PO_SEPA_INST", "status": "PROCESSED", "credit": false,
        "counterpartyAccountId": "ext-1"
    }], "totalPages": 1});
    let sample = write_sample("nordbank-transactions.json", &page);
    let sample = sample.display().to_string();
    let without = preview(
        &mapping,
        &["--operation", "getTransactions", "--sample", &sample],
    );
    without.assert_code(0);
    assert!(
        without.stderr.contains(
            "getTransactions is listed once per parent record: `{parent.…}` values are left empty"
        ),
        "{without}"
    );
    assert_eq!(
        records(&without)[0].get("sourceAccountID"),
        None,
        "{without}"
    );
    let parent = write_sample(
        "nordbank-account.json",
        &json!({"id": "acc-7", "name": "Ops"}),
    );
    let with = preview(
        &mapping,
        &[
            "--operation",
            "getTransactions",
            "--sample",
            &sample,
            "--parent",
            &parent.display().to_string(),
        ],
    );
    with.assert_code(0);
    assert!(!with.stderr.contains("listed once per parent"), "{with}");
    let record = &records(&with)[0];
    assert_eq!(record["sourceAccountID"], "acc-7", "{with}");
    assert_eq!(record["destinationAccountID"], "ext-1", "{with}");
    assert_eq!(
        record["createdAt"], "2025-03-01T09:00:00Z",
        "Oslo is UTC+1 in March"
    );
}

#[test]
fn help_shows_examples_and_exit_codes() {
    let run = connector_gen(["preview", "--help"]);
    run.assert_code(0);
    assert!(
        run.stdout
            .contains("connector-gen preview --operation getTransactions --sample response.json"),
        "{run}"
    );
    assert!(run.stdout.contains("--parent FILE"), "{run}");
    assert!(
        run.stdout
            .contains("Exit codes: 0 every record converted, 1 some records failed"),
        "{run}"
    );
    let run = connector_gen(["--help"]);
    assert!(run.stdout.contains("connector-gen preview"), "{run}");
    // Neither a sample nor --live: a usage error.
    let run = connector_gen(["preview", "--operation", "getTransactions"]);
    run.assert_code(2);
}
