//! `connector-gen draft` on small made-up documents, one per shape the drafter must read: the
//! drafted mapping passes the real `check` and `generate`, and the report says what was found.

use std::path::{Path, PathBuf};
use std::process::Command;

use connector_gen::diagnostics::SourceFile;
use connector_gen::draft;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_connector-gen");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/draft")
        .join(name)
}

fn source(name: &str) -> SourceFile {
    let path = fixture(name);
    SourceFile::new(name, std::fs::read_to_string(&path).unwrap())
}

fn report(names: &[&str]) -> Value {
    let sources: Vec<SourceFile> = names.iter().map(|n| source(n)).collect();
    let drafted = draft::draft(&sources, "acme", None).unwrap();
    serde_json::from_str(&drafted.report).unwrap()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_shape_drafts_a_mapping_that_checks_and_generates() {
    for name in [
        "cursorbank.yaml",
        "pagebank.json",
        "swaggerbank.yaml",
        "nokeybank.yaml",
        "perbank.yaml",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("acme");
        let (code, _, stderr) = run(&[
            "draft",
            "--from-openapi",
            fixture(name).to_str().unwrap(),
            "--name",
            "acme",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{name}: {stderr}");
        let mut files: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["connector.yaml", "draft-report.json"], "{name}");
        let mapping = out.join("connector.yaml");
        let (code, stdout, stderr) = run(&["check", "--mapping", mapping.to_str().unwrap()]);
        assert_eq!(
            code,
            0,
            "{name}: check failed:\n{stderr}\n{}",
            std::fs::read_to_string(&mapping).unwrap()
        );
        assert!(
            stdout.contains("no errors") || stdout.contains("no problems"),
            "{stdout}"
        );
        let (code, _, stderr) = run(&["generate", "--mapping", mapping.to_str().unwrap()]);
        assert_eq!(code, 0, "{name}: generate failed:\n{stderr}");
        assert!(out.join("src/generated").is_dir());
    }
}

#[test]
fn cursor_by_record_id_deep_object_filters_and_minor_units() {
    let r = report(&["cursorbank.yaml"]);
    assert_eq!(r["auth"]["kind"], "bearer");
    let accounts = &r["operations"]["getAccounts"];
    assert_eq!(accounts["decision"], "mapped");
    assert_eq!(accounts["path"], "/v1/accounts");
    assert_eq!(accounts["records"], "data");
    assert_eq!(accounts["paging"]["kind"], "cursor_record");
    assert_eq!(accounts["paging"]["param"], "starting_after");
    assert_eq!(accounts["paging"]["from"], "id");
    assert_eq!(accounts["paging"]["has_more"], "has_more");
    assert_eq!(accounts["since"]["param"], "created[gte]");
    assert_eq!(accounts["since"]["format"], "unix_seconds");
    assert_eq!(accounts["since"]["inclusive"], true);
    assert_eq!(accounts["order"], "newest_first");
    let tx = &r["operations"]["getTransactions"];
    assert_eq!(
        tx["path"], "/v1/transactions",
        "the card-charge list is not the ledger"
    );
    assert_eq!(tx["since"]["param"], "updated[gte]");
    assert_eq!(tx["fields"]["amount"]["format"], "minor_units");
    assert_eq!(tx["fields"]["status"]["map"]["canceled"], "CANCELLED");
    assert!(
        tx["fields"]["status"]["map"].get("on_fire").is_none(),
        "unknown values fall back"
    );
    let balances = &r["operations"]["getAccountBalances"];
    assert_eq!(balances["path"], "/v1/accounts/{account}/balance");
    assert_eq!(balances["decision"], "mapped");
    let payout = &r["operations"]["createPayout"];
    assert_eq!(payout["idempotency"]["header"], "Idempotency-Key");
    assert_eq!(payout["body"]["amount"]["format"], "minor_units_number");
    assert_eq!(payout["body"]["currency"]["case"], "lower");
    assert_eq!(payout["body"]["destinationAccountId"]["key"], "destination");
    assert_eq!(r["operations"]["createTransfer"]["decision"], "none");
    assert_eq!(r["operations"]["getBeneficiaries"]["decision"], "none");
}

#[test]
fn openapi_31_pages_from_zero_offsets_and_next_links() {
    let r = report(&["pagebank.json"]);
    assert_eq!(r["auth"]["kind"], "oauth2");
    assert_eq!(r["auth"]["token_url"], "/oauth/token");
    let accounts = &r["operations"]["getAccounts"];
    assert_eq!(accounts["paging"]["kind"], "page_number");
    assert_eq!(accounts["paging"]["first"], 0);
    assert_eq!(accounts["paging"]["path"], "totalPages");
    assert_eq!(accounts["since"]["param"], "createdFrom");
    assert_eq!(accounts["fields"]["accountName"]["path"], "label");
    let counterparties = &r["operations"]["getBeneficiaries"];
    assert_eq!(counterparties["paging"]["kind"], "offset");
    assert_eq!(counterparties["paging"]["path"], "total");
    assert_eq!(counterparties["fields"]["ownerName"]["path"], "holder_name");
    let entries = &r["operations"]["getTransactions"];
    assert_eq!(entries["paging"]["kind"], "next_url");
    assert_eq!(entries["paging"]["path"], "_links.next.href");
    assert_eq!(entries["fields"]["amount"]["path"], "money.value");
    assert_eq!(entries["fields"]["amount"]["format"], "decimal");
    assert_eq!(entries["fields"]["updatedAt"]["path"], "changed_at");
}

#[test]
fn swagger_20_login_form_bodies_pages_from_one_and_body_cursors() {
    let r = report(&["swaggerbank.yaml"]);
    assert_eq!(r["auth"]["kind"], "login");
    assert_eq!(r["auth"]["header"], "X-Auth-Token");
    let tx = &r["operations"]["getTransactions"];
    assert_eq!(tx["path"], "/transactions/find");
    assert_eq!(tx["records"], "transactions");
    assert_eq!(tx["paging"]["kind"], "page_number");
    assert_eq!(tx["paging"]["first"], 1);
    assert_eq!(tx["paging"]["path"], "pagination.total_pages");
    assert_eq!(tx["since"]["param"], "updated_at_from");
    assert!(
        tx["todo"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().contains("LOGIN"))
    );
    let beneficiaries = &r["operations"]["getBeneficiaries"];
    assert_eq!(beneficiaries["paging"]["kind"], "cursor_body");
    assert_eq!(beneficiaries["paging"]["from"], "next_cursor");
    let payout = &r["operations"]["createPayout"];
    assert_eq!(payout["decision"], "stub");
    assert_eq!(payout["blocked_by"], serde_json::json!(["FORM"]));
    assert_eq!(payout["idempotency"]["body"], "unique_request_id");
    assert_eq!(
        payout["body"]["amount"]["format"], "decimal",
        "a form sends the number as text"
    );
    let mapping = draft::draft(&[source("swaggerbank.yaml")], "acme", None)
        .unwrap()
        .mapping;
    assert!(
        mapping.contains(
            "  base_url: ${env:ACME_BASE_URL}  # documented: https://api.swaggerbank.test/v2"
        ),
        "{mapping}"
    );
    assert!(
        mapping.contains("  # createPayout: a stub, not mapped (needs FORM)."),
        "{mapping}"
    );
    assert!(
        mapping.contains("    X-Auth-Token: ${env:ACME_X_AUTH_TOKEN}"),
        "{mapping}"
    );
}

#[test]
fn lists_per_account_fan_out_and_one_account_object_is_a_balance() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("perbank");
    let (code, _, stderr) = run(&[
        "draft",
        "--from-openapi",
        fixture("perbank.yaml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let mapping = std::fs::read_to_string(out.join("connector.yaml")).unwrap();
    let yaml: serde_yaml::Value = serde_yaml::from_str(&mapping).unwrap();
    let transactions = &yaml["operations"]["getTransactions"];
    assert_eq!(transactions["for_each"], "getAccounts", "{mapping}");
    assert_eq!(
        transactions["request"]["path"], "/accounts/{parent.id}/transactions",
        "{mapping}"
    );
    assert!(
        mapping.contains("walked once per record of `getAccounts`"),
        "the fan-out is a todo to confirm:\n{mapping}"
    );
    // GET /accounts/{accountId} is a weak match for balances (a stub to confirm), but its
    // drafted fields read the account's own balance as a list of one.
    for line in [
        "#       path: \"/accounts/{accountId}\"",
        "#       at: { now: true }",
        "#         each: \".\"",
        "#           amount: { path: balance, amount: { currency: currency, format: decimal } }",
    ] {
        assert!(mapping.contains(line), "no `{line}` in:\n{mapping}");
    }
}

#[test]
fn a_provider_without_idempotency_gets_a_lookup_and_a_todo() {
    let r = report(&["nokeybank.yaml"]);
    let payout = &r["operations"]["createPayout"];
    assert_eq!(payout["decision"], "mapped");
    assert_eq!(payout["idempotency"], Value::Null);
    assert!(
        payout["todo"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().contains("may pay twice"))
    );
    assert_eq!(payout["body"]["amount"]["format"], "decimal_number");
    let mapping = draft::draft(&[source("nokeybank.yaml")], "acme", None)
        .unwrap()
        .mapping;
    assert!(!mapping.contains("idempotency_key: {"), "{mapping}");
    assert!(
        mapping.contains("      reference: idempotencyKey"),
        "{mapping}"
    );
    assert!(
        mapping.contains("        query: { reference: \"{idempotencyKey}\" }"),
        "{mapping}"
    );
    assert_eq!(r["auth"]["header"], "X-Api-Key");
}

#[test]
fn drafts_are_the_same_bytes_every_time() {
    let sources = [source("cursorbank.yaml"), source("pagebank.json")];
    let first = draft::draft(&sources, "acme", None).unwrap();
    let second = draft::draft(&sources, "acme", None).unwrap();
    assert_eq!(first.mapping, second.mapping);
    assert_eq!(first.report, second.report);
}

#[test]
fn hints_pin_endpoints_and_leave_operations_out() {
    let hints = SourceFile::new(
        "hints.yaml",
        "getTransactions: GET /v1/charges\ngetAccounts: none\n",
    );
    let drafted = draft::draft(&[source("cursorbank.yaml")], "acme", Some(&hints)).unwrap();
    let r: Value = serde_json::from_str(&drafted.report).unwrap();
    assert_eq!(r["operations"]["getTransactions"]["path"], "/v1/charges");
    assert_eq!(r["operations"]["getTransactions"]["confidence"], 1.0);
    assert_eq!(r["operations"]["getAccounts"]["decision"], "none");
    let bad = SourceFile::new("hints.yaml", "getTransaction: GET /v1/charges\n");
    let errors = draft::draft(&[source("cursorbank.yaml")], "acme", Some(&bad)).unwrap_err();
    assert_eq!(
        errors[0].help.as_deref(),
        Some("did you mean `getTransactions`?")
    );
}

#[test]
fn malformed_documents_are_refused_with_their_pointer() {
    let cases = [
        ("openapi: 3.0.0\npaths: [1, 2]\n", "#/paths"),
        ("openapi: 3.0.0\npaths:\n  /x: nope\n", "#/paths/~1x"),
        ("swagger: '1.2'\npaths: {}\n", "#/swagger"),
        ("- just\n- a list\n", "#"),
    ];
    for (text, pointer) in cases {
        let errors = draft::draft(&[SourceFile::new("p.yaml", text)], "acme", None).unwrap_err();
        assert_eq!(
            errors[0].location.as_ref().unwrap().pointer.as_deref(),
            Some(pointer),
            "{text}"
        );
    }
    let errors = draft::draft(
        &[SourceFile::new(
            "p.json",
            "{\"openapi\": \"3.0.0\",\n \"paths\": {,}}",
        )],
        "acme",
        None,
    )
    .unwrap_err();
    assert!(
        errors[0].message.starts_with("invalid JSON"),
        "{}",
        errors[0].message
    );
}

#[test]
fn check_prints_every_todo_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let (code, _, stderr) = run(&[
        "draft",
        "--from-openapi",
        fixture("nokeybank.yaml").to_str().unwrap(),
        "--name",
        "acme",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let mapping = out.join("connector.yaml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    let (code, _, stderr) = run(&["check", "--mapping", mapping.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let todo_line = text
        .lines()
        .position(|l| l.contains("may pay twice"))
        .unwrap()
        + 1;
    let column = text.lines().nth(todo_line - 1).unwrap().find("- ").unwrap() + 3;
    assert!(
        stderr.contains(
            "warning: todo in `createPayout`: idempotency: the document declares no idempotency key"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("connector.yaml:{todo_line}:{column}")),
        "{stderr}"
    );
    let (code, _, stderr) = run(&[
        "draft",
        "--from-openapi",
        fixture("nokeybank.yaml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        code, 2,
        "a second draft does not replace the first without --force"
    );
    assert!(stderr.contains("--force"), "{stderr}");
}

#[test]
fn check_against_spec_points_at_what_the_provider_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("connector.yaml");
    let text = "version: 1\nname: acme\nupstream:\n  base_url: ${env:ACME_BASE_URL}\noperations:\n  getAccounts:\n    request:\n      path: /v1/accounts\n    records: data\n    paging:\n      cursor: { param: startng_after, from_record: id }\n    order: newest_first\n    fields:\n      id: id\n      accountName: nmae\n      createdAt: { path: created, time: rfc3339 }\n  getTransactions:\n    request:\n      path: /v1/transfers\n    records: data\n    order: newest_first\n    fields:\n      id: id\n      createdAt: { path: created, time: unix_seconds }\n      updatedAt: { path: updated, time: unix_seconds }\n      amount: { path: amount, amount: { currency: currency, format: decimal } }\n      currency: { path: currency, currency: true }\n      type: { const: OTHER }\n      status: { const: OTHER }\n";
    std::fs::write(&mapping, text).unwrap();
    let (code, _, stderr) = run(&[
        "check",
        "--mapping",
        mapping.to_str().unwrap(),
        "--against-spec",
        fixture("cursorbank.yaml").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    let at = |needle: &str| {
        let line = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let col = text.lines().nth(line - 1).unwrap().find(needle).unwrap() + 1;
        format!("connector.yaml:{line}:{col}")
    };
    assert!(
        stderr.contains("error: GET /v1/accounts takes no `startng_after` query parameter"),
        "{stderr}"
    );
    assert!(stderr.contains(&at("startng_after")), "{stderr}");
    assert!(
        stderr.contains("help: did you mean `starting_after`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: the provider's record has no `nmae`"),
        "{stderr}"
    );
    assert!(stderr.contains(&at("nmae")), "{stderr}");
    assert!(
        stderr.contains("error: the provider's value is a number; RFC 3339 times are strings"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: the provider's document has no GET /v1/transfers"),
        "{stderr}"
    );
    assert!(stderr.contains(&at("/v1/transfers")), "{stderr}");
}

#[test]
fn check_against_spec_warns_of_unmapped_values_and_unit_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("connector.yaml");
    let text = "version: 1\nname: acme\nupstream:\n  base_url: ${env:ACME_BASE_URL}\noperations:\n  getTransactions:\n    request:\n      path: /v1/transactions\n    records: data\n    order: newest_first\n    fields:\n      id: id\n      createdAt: { path: created, time: unix_seconds }\n      updatedAt: { path: updated, time: unix_seconds }\n      amount: { path: amount, amount: { currency: currency, format: decimal } }\n      currency: { path: currency, currency: true }\n      type: { const: OTHER }\n      status:\n        path: status\n        enum: { map: { succeeded: SUCCEEDED }, fallback: OTHER }\n";
    std::fs::write(&mapping, text).unwrap();
    let (code, stdout, stderr) = run(&[
        "check",
        "--mapping",
        mapping.to_str().unwrap(),
        "--against-spec",
        fixture("cursorbank.yaml").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning: the provider declares values the map does not name: pending, failed, canceled, on_fire (they become OTHER)"), "{stderr}");
    assert!(
        stderr.contains(
            "warning: the provider's amount is an integer, which is usually in minor units"
        ),
        "{stderr}"
    );
    assert!(stdout.contains("no errors"), "{stdout}");
}

#[test]
fn check_against_spec_follows_each_over_an_object_and_items() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("connector.yaml");
    let balances = |list: &str| {
        format!(
            "version: 1\nname: acme\nupstream:\n  base_url: ${{env:ACME_BASE_URL}}\noperations:\n  getAccountBalances:\n    request:\n      path: /v1/accounts/{{accountId}}/balance\n    fields:\n      id: account\n      accountID: account\n      at: {{ now: true }}\n      balances:\n{list}"
        )
    };
    let check = |text: &str| {
        std::fs::write(&mapping, text).unwrap();
        run(&[
            "check",
            "--mapping",
            mapping.to_str().unwrap(),
            "--against-spec",
            fixture("cursorbank.yaml").to_str().unwrap(),
        ])
    };
    // `each: .` maps the answer itself as the one element: its fields are the answer's.
    let text = balances(
        "        each: .\n        fields:\n          amount: { path: \"available[0].amount\", amount: { currency: \"available[0].currency\", format: minor_units } }\n          currency: { path: \"available[0].currency\", currency: true }\n",
    );
    let (code, _, stderr) = check(&text);
    assert_eq!(code, 0, "{stderr}");
    // A scalar can be neither: what can only fail is refused.
    let text = balances(
        "        each: account\n        fields:\n          amount: { path: amount, amount: { currency: currency, format: minor_units } }\n          currency: { path: currency, currency: true }\n",
    );
    let (code, _, stderr) = check(&text);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: the provider's record has no list or object `account`"),
        "{stderr}"
    );
    // `items` entries read the answer.
    let text = balances(
        "        items:\n          - amount: { path: avail, amount: { currency: \"available[0].currency\", format: minor_units } }\n            currency: { path: \"available[0].currency\", currency: true }\n",
    );
    let (code, _, stderr) = check(&text);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: the provider's record has no `avail`"),
        "{stderr}"
    );
}
